//! The web output: one hub output feeding every `/ws/events` client its own bounded queue.
//!
//! The hub's queue for this output drops the oldest when full, so the web side can never
//! stall the bus. Each frame is serialized once; clients get batches of frames shared by
//! reference (`Arc<[Frame]>`, one per distinct filter set), so a client's queue costs a
//! pointer per batch, not a copy per frame. A client with more than `client_queue` frames
//! waiting is cut off (its writer closes with 1008) instead of anyone waiting for it. The
//! fan-out also keeps what the dashboard needs from the bus (retained provider states, hype,
//! totals) and the per-topic counters of `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::event::{TopicRoot, filter_matches};
use crate::hub::{BoundedQueue, Delivery, Record};

/// Label sets `/metrics` keeps for events per topic family and provider; more are counted
/// under `family="other"` so a bot publishing many topics cannot blow up the metrics.
const MAX_COUNTER_LABELS: usize = 256;
/// Under load the clients are fed at most once per `LINGER`: what arrives meanwhile goes out
/// in the next batch. One wake-up and one socket write per client per batch is what makes
/// 1,000 clients × 1,000 events/s fit on two cores; an event after a quiet spell goes out at
/// once, so this only delays frames while others are flowing.
const LINGER: Duration = Duration::from_millis(5);
/// Most records taken from the hub queue for one batch.
const MAX_BATCH: usize = 4096;

/// One server frame, serialized once and shared by every client that wants it.
#[derive(Clone)]
pub struct Frame {
    pub seq: u64,
    pub text: Utf8Bytes,
}

/// `{"seq":N,"topic":"...","event":<payload>}`: the event log's line format.
pub fn frame_text(record: &Record) -> String {
    let topic = serde_json::to_string(&record.message.topic).unwrap_or_default();
    let payload = String::from_utf8_lossy(&record.message.payload);
    format!(
        "{{\"seq\":{},\"topic\":{topic},\"event\":{payload}}}",
        record.seq
    )
}

/// What the dashboard and `/api/status` show from the bus itself.
#[derive(Default, Clone)]
pub struct BusView {
    /// Latest retained `R/system/providers/<provider>` payload per provider.
    pub providers: BTreeMap<String, serde_json::Value>,
    pub hype: Option<serde_json::Value>,
    pub totals: Option<serde_json::Value>,
}

/// Frames handed to a client together, shared by every client with the same filters.
pub type Batch = Arc<[Frame]>;

struct Slot {
    filters: Vec<String>,
    tx: mpsc::UnboundedSender<Batch>,
    /// Frames queued for the client and not yet taken by its writer: the `client_queue` bound.
    waiting: Arc<AtomicUsize>,
    cut: CancellationToken,
}

struct Clients {
    slots: HashMap<u64, Slot>,
    /// Seq of the last record handed to the clients; a new client gets every later one.
    last_seq: u64,
    closed: bool,
}

/// A client's end: its queue, the token fired when it is cut off, and where live starts.
pub struct Subscription {
    pub id: u64,
    rx: mpsc::UnboundedReceiver<Batch>,
    waiting: Arc<AtomicUsize>,
    pub cut: CancellationToken,
    /// Every record after this seq that matches arrives here; replay covers the rest.
    pub live_after: u64,
}

impl Subscription {
    /// The next batch; `None` once the daemon is shutting down.
    pub async fn recv(&mut self) -> Option<Batch> {
        let batch = self.rx.recv().await?;
        self.waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        Some(batch)
    }

    /// A batch that is already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Batch> {
        let batch = self.rx.try_recv().ok()?;
        self.waiting.fetch_sub(batch.len(), Ordering::Relaxed);
        Some(batch)
    }
}

pub struct Fanout {
    root: TopicRoot,
    client_queue: usize,
    clients: Mutex<Clients>,
    view: Mutex<BusView>,
    counts: Mutex<HashMap<(String, String), u64>>,
    next_id: AtomicU64,
    pub cut_off: AtomicU64,
    pub frames_sent: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a panic elsewhere changes nothing.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Fanout {
    pub fn new(root: TopicRoot, client_queue: usize, last_seq: u64) -> Self {
        Self {
            root,
            client_queue: client_queue.max(1),
            clients: Mutex::new(Clients {
                slots: HashMap::new(),
                last_seq,
                closed: false,
            }),
            view: Mutex::new(BusView::default()),
            counts: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            cut_off: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
        }
    }

    pub fn client_queue(&self) -> usize {
        self.client_queue
    }

    /// Adds a client; `None` once the daemon is shutting down.
    pub fn register(&self, filters: Vec<String>) -> Option<Subscription> {
        // Unbounded channel, bounded by `waiting`: the fan-out cuts the client off instead of
        // queueing more than `client_queue` frames.
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let cut = CancellationToken::new();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut clients = lock(&self.clients);
        if clients.closed {
            return None;
        }
        clients.slots.insert(
            id,
            Slot {
                filters,
                tx,
                waiting: waiting.clone(),
                cut: cut.clone(),
            },
        );
        Some(Subscription {
            id,
            rx,
            waiting,
            cut,
            live_after: clients.last_seq,
        })
    }

    pub fn unregister(&self, id: u64) {
        lock(&self.clients).slots.remove(&id);
    }

    /// Changes a client's filters; returns them as they are now.
    pub fn update_filters(&self, id: u64, change: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
        let mut clients = lock(&self.clients);
        match clients.slots.get_mut(&id) {
            Some(slot) => {
                change(&mut slot.filters);
                slot.filters.clone()
            }
            None => Vec::new(),
        }
    }

    pub fn view(&self) -> BusView {
        lock(&self.view).clone()
    }

    /// (clients, frames waiting in their queues).
    pub fn client_stats(&self) -> (usize, usize) {
        let clients = lock(&self.clients);
        let waiting = clients
            .slots
            .values()
            .map(|s| s.waiting.load(Ordering::Relaxed))
            .sum();
        (clients.slots.len(), waiting)
    }

    /// Events seen per (topic family, provider), sorted.
    pub fn event_counts(&self) -> Vec<((String, String), u64)> {
        let mut counts: Vec<_> = lock(&self.counts)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        counts.sort();
        counts
    }

    /// Runs until the hub closes the queue, then ends every client (they close with 1001).
    pub async fn run(self: Arc<Self>, queue: Arc<BoundedQueue<Delivery>>) {
        let mut last_batch: Option<tokio::time::Instant> = None;
        let mut records = Vec::new();
        while let Some(first) = queue.pop().await {
            records.push(first);
            if let Some(last) = last_batch {
                tokio::time::sleep_until(last + LINGER).await;
            }
            queue.drain_up_to(MAX_BATCH - 1, &mut records);
            last_batch = Some(tokio::time::Instant::now());
            queue.mark_delivered(records.len() as u64);
            self.dispatch(&records);
            records.clear();
        }
        let mut clients = lock(&self.clients);
        clients.closed = true;
        clients.slots.clear();
    }

    /// Serializes `records` once and queues each client the frames its filters match.
    fn dispatch(&self, records: &[Delivery]) {
        let Some(last) = records.last() else {
            return;
        };
        for record in records {
            self.observe(record);
        }
        let mut clients = lock(&self.clients);
        clients.last_seq = last.seq;
        if clients.slots.is_empty() {
            return;
        }
        let frames: Vec<Frame> = records
            .iter()
            .map(|record| Frame {
                seq: record.seq,
                text: Utf8Bytes::from(frame_text(record)),
            })
            .collect();
        // Overlays mostly share their filters: match each distinct set once per batch.
        let mut batches: HashMap<&[String], Batch> = HashMap::new();
        let mut gone = Vec::new();
        for (id, slot) in &clients.slots {
            let batch = batches.entry(&slot.filters).or_insert_with(|| {
                records
                    .iter()
                    .zip(&frames)
                    .filter(|(record, _)| {
                        slot.filters
                            .iter()
                            .any(|f| filter_matches(f, &record.message.topic))
                    })
                    .map(|(_, frame)| frame.clone())
                    .collect()
            });
            if batch.is_empty() {
                continue;
            }
            let waiting = slot.waiting.fetch_add(batch.len(), Ordering::Relaxed) + batch.len();
            if waiting > self.client_queue {
                self.cut_off.fetch_add(1, Ordering::Relaxed);
                gone.push(*id);
            } else if slot.tx.send(batch.clone()).is_err() {
                gone.push(*id);
            }
        }
        drop(batches);
        for id in gone {
            if let Some(slot) = clients.slots.remove(&id) {
                slot.cut.cancel();
            }
        }
    }

    fn observe(&self, record: &Record) {
        #[derive(Deserialize)]
        struct Head {
            #[serde(default)]
            provider: Option<String>,
        }
        let suffix = self
            .root
            .strip(&record.message.topic)
            .map(|(_, suffix)| suffix)
            .unwrap_or(&record.message.topic);
        let family = suffix.splitn(3, '/').take(2).collect::<Vec<_>>().join("/");
        // A contract event is parsed once for every output; anything else only here.
        let provider = match record.event() {
            Some(event) => event.provider.clone(),
            None => serde_json::from_slice::<Head>(&record.message.payload)
                .ok()
                .and_then(|h| h.provider)
                .unwrap_or_default(),
        };

        let state = || serde_json::from_slice::<serde_json::Value>(&record.message.payload).ok();
        match suffix {
            "synthetic/hype" => lock(&self.view).hype = state(),
            "synthetic/totals" => lock(&self.view).totals = state(),
            _ => {
                if let Some(name) = suffix.strip_prefix("system/providers/")
                    && let Some(state) = state()
                {
                    lock(&self.view).providers.insert(name.to_owned(), state);
                }
            }
        }

        let mut counts = lock(&self.counts);
        let key = (family, provider);
        if counts.len() >= MAX_COUNTER_LABELS && !counts.contains_key(&key) {
            *counts.entry(("other".into(), key.1)).or_default() += 1;
        } else {
            *counts.entry(key).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Message, Origin, OverflowPolicy};

    fn record(seq: u64, topic: &str, payload: &str) -> Delivery {
        Arc::new(Record::new(
            seq,
            Message::from_bytes(topic.into(), payload.as_bytes(), false, Origin::Daemon),
        ))
    }

    #[tokio::test]
    async fn filters_cut_off_and_view() {
        let fanout = Arc::new(Fanout::new(TopicRoot::new("stream").unwrap(), 2, 10));
        let queue = Arc::new(BoundedQueue::new(64, OverflowPolicy::DropOldest));
        let mut cheers = fanout.register(vec!["stream/support/#".into()]).unwrap();
        let stalled = fanout.register(vec!["stream/#".into()]).unwrap();
        assert_eq!(cheers.live_after, 10);
        let task = tokio::spawn(fanout.clone().run(queue.clone()));

        queue
            .push(record(
                11,
                "stream/support/cheers",
                r#"{"provider":"twitch","amount":5}"#,
            ))
            .await;
        queue
            .push(record(
                12,
                "stream/synthetic/hype",
                r#"{"level":3,"score":1.5}"#,
            ))
            .await;
        queue
            .push(record(
                13,
                "stream/system/providers/twitch",
                r#"{"state":"connected"}"#,
            ))
            .await;
        queue.close();
        task.await.unwrap();

        let batch = cheers.recv().await.unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(
            batch[0].text.as_str(),
            r#"{"seq":11,"topic":"stream/support/cheers","event":{"provider":"twitch","amount":5}}"#
        );
        assert!(cheers.recv().await.is_none(), "closed at shutdown");
        assert!(
            stalled.cut.is_cancelled(),
            "a full queue cuts the client off"
        );
        assert!(!cheers.cut.is_cancelled());
        assert_eq!(fanout.cut_off.load(Ordering::Relaxed), 1);
        let view = fanout.view();
        assert_eq!(view.hype.unwrap()["level"], 3);
        assert_eq!(view.providers["twitch"]["state"], "connected");
        assert!(
            fanout.register(vec![]).is_none(),
            "no new clients after shutdown"
        );
        let counts = fanout.event_counts();
        assert!(counts.contains(&(("support/cheers".into(), "twitch".into()), 1)));
    }
}
