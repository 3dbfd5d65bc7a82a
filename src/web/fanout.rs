//! The web output: one hub output feeding every `/ws/events` client.
//!
//! The hub's queue for this output drops the oldest when full, so the web side can never
//! stall the bus. Each frame is serialized once, and each batch is framed once per distinct
//! filter set: every client with those filters gets the same bytes (server frames are not
//! masked), written to its socket by this task when the socket takes them at once, or queued
//! for the client's own task when not (`wire::Conn`). A client with more than `client_queue`
//! frames waiting is cut off (close 1008) instead of anyone waiting for it. The fan-out also
//! keeps what the dashboard needs from the bus (retained provider states, hype, totals) and
//! the per-topic counters of `/metrics`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;

use super::wire::{Conn, Push, text_frames};
use crate::event::{TopicRoot, filter_matches};
use crate::hub::{BoundedQueue, Delivery, Record};

/// Label sets `/metrics` keeps for events per topic family and provider; more are counted
/// under `family="other"` so a bot publishing many topics cannot blow up the metrics.
const MAX_COUNTER_LABELS: usize = 256;
/// While events flow, a round of socket writes starts at most once per `LINGER`, and at most
/// once per `ROUND_SPACING` times as long as the last round took: what arrives meanwhile goes
/// out in the next round. One write per client per round is the cost of a large fan-out (on
/// loopback TCP about 4 µs each, most of it the kernel's), so with many clients the rounds
/// space out (1,000 clients: every 10 ms, about 60 % of one core at 1,000 events/s) while a
/// few clients get an event within `LINGER`. An event after a quiet spell goes out at once.
const LINGER: Duration = Duration::from_millis(2);
const ROUND_SPACING: u32 = 4;
/// The longest wait between rounds, whatever a round cost: bounds the added latency.
const MAX_LINGER: Duration = Duration::from_millis(10);
/// From this many clients on, a round's writes are split between two tasks.
const SPLIT_AT: usize = 64;
/// Most records taken from the hub queue for one batch.
const MAX_BATCH: usize = 4096;

/// One server frame's text, serialized once and shared by every client that wants it.
#[derive(Clone)]
pub struct Frame {
    pub seq: u64,
    pub text: Bytes,
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

/// Frames handed to clients together, shared by every client with the same filters.
pub type Batch = Arc<[Frame]>;

struct Slot {
    filters: Vec<String>,
    conn: Arc<Conn>,
}

struct Clients {
    slots: HashMap<u64, Slot>,
    /// Seq of the last record handed to the clients; a new client gets every later one.
    last_seq: u64,
    closed: bool,
}

/// A registered client: its id, and where its live feed starts.
pub struct Registration {
    pub id: u64,
    /// Every record after this seq that matches reaches the connection; replay covers the rest.
    pub live_after: u64,
}

pub struct Fanout {
    root: TopicRoot,
    client_queue: usize,
    clients: Mutex<Clients>,
    view: Mutex<BusView>,
    counts: Mutex<HashMap<(String, String), u64>>,
    next_id: AtomicU64,
    pub cut_off: AtomicU64,
    pub frames_sent: Arc<AtomicU64>,
}

/// Every critical section here and in `wire` leaves its data consistent, so a panic elsewhere
/// changes nothing.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
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
            frames_sent: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn client_queue(&self) -> usize {
        self.client_queue
    }

    /// The sending side for a new client's socket, bounded by `[http] client_queue`.
    pub fn connection(&self, io: super::wire::Writer, since: u64) -> Arc<Conn> {
        Arc::new(Conn::new(
            io,
            self.client_queue,
            self.frames_sent.clone(),
            since,
        ))
    }

    /// Adds a client; `None` once the daemon is shutting down.
    pub fn register(&self, filters: Vec<String>, conn: Arc<Conn>) -> Option<Registration> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut clients = lock(&self.clients);
        if clients.closed {
            return None;
        }
        clients.slots.insert(id, Slot { filters, conn });
        Some(Registration {
            id,
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
        let waiting = clients.slots.values().map(|s| s.conn.waiting()).sum();
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
        let mut next_round: Option<tokio::time::Instant> = None;
        let mut records = Vec::new();
        while let Some(first) = queue.pop().await {
            records.push(first);
            if let Some(next) = next_round {
                tokio::time::sleep_until(next).await;
            }
            queue.drain_up_to(MAX_BATCH - 1, &mut records);
            let started = tokio::time::Instant::now();
            queue.mark_delivered(records.len() as u64);
            self.dispatch(&records).await;
            next_round =
                Some(started + (started.elapsed() * ROUND_SPACING).clamp(LINGER, MAX_LINGER));
            records.clear();
        }
        let mut clients = lock(&self.clients);
        clients.closed = true;
        for (_, slot) in clients.slots.drain() {
            slot.conn.close_going_away();
        }
    }

    /// Serializes `records` once, frames them once per filter set and hands every client its
    /// frames.
    async fn dispatch(self: &Arc<Self>, records: &[Delivery]) {
        let Some(last) = records.last() else {
            return;
        };
        for record in records {
            self.observe(record);
        }
        // The batches are built under the lock, the sockets written after it: a round of
        // writes takes milliseconds, and clients come and go meanwhile.
        let mut batches: Vec<(Batch, Bytes)> = Vec::new();
        let mut targets: Vec<(u64, Arc<Conn>, usize)> = Vec::new();
        {
            let mut clients = lock(&self.clients);
            clients.last_seq = last.seq;
            if clients.slots.is_empty() {
                return;
            }
            let frames: Vec<Frame> = records
                .iter()
                .map(|record| Frame {
                    seq: record.seq,
                    text: Bytes::from(frame_text(record)),
                })
                .collect();
            // Overlays mostly share their filters: match and frame each distinct set once.
            let mut by_filters: HashMap<&[String], usize> = HashMap::new();
            for (id, slot) in &clients.slots {
                let index = *by_filters.entry(&slot.filters).or_insert_with(|| {
                    let batch: Batch = records
                        .iter()
                        .zip(&frames)
                        .filter(|(record, _)| {
                            slot.filters
                                .iter()
                                .any(|f| filter_matches(f, &record.message.topic))
                        })
                        .map(|(_, frame)| frame.clone())
                        .collect();
                    let bytes = text_frames(batch.iter().map(|frame| &frame.text[..]));
                    batches.push((batch, bytes));
                    batches.len() - 1
                });
                if !batches[index].0.is_empty() {
                    targets.push((*id, slot.conn.clone(), index));
                }
            }
        }
        let batches: Arc<[(Batch, Bytes)]> = batches.into();
        // Many clients: the other worker thread writes half of them meanwhile.
        let other_half = (targets.len() >= SPLIT_AT).then(|| {
            let half = targets.split_off(targets.len() / 2);
            let (fanout, batches) = (self.clone(), batches.clone());
            tokio::spawn(async move { fanout.write(half, &batches) })
        });
        let mut gone = self.write(targets, &batches);
        if let Some(task) = other_half
            && let Ok(more) = task.await
        {
            gone.extend(more);
        }
        if !gone.is_empty() {
            let mut clients = lock(&self.clients);
            for id in gone {
                clients.slots.remove(&id);
            }
        }
    }

    /// Hands each client its batch; returns the clients that are gone or cut off.
    fn write(&self, targets: Vec<(u64, Arc<Conn>, usize)>, batches: &[(Batch, Bytes)]) -> Vec<u64> {
        let mut gone = Vec::new();
        for (id, conn, index) in targets {
            let (batch, bytes) = &batches[index];
            match conn.push_live(batch, bytes) {
                Push::Queued => {}
                Push::CutOff => {
                    self.cut_off.fetch_add(1, Ordering::Relaxed);
                    gone.push(id);
                }
                Push::Closed => gone.push(id),
            }
        }
        gone
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
    use crate::web::wire::parse_frames;
    use tokio::io::AsyncReadExt;

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
        let (writer, mut cheers_socket) = tokio::io::duplex(1 << 16);
        let cheers_conn = fanout.connection(Box::new(writer), 0);
        let cheers = fanout
            .register(vec!["stream/support/#".into()], cheers_conn.clone())
            .unwrap();
        cheers_conn.go_live(cheers.live_after);
        // A socket that takes one byte: everything else waits in the client's queue.
        let (writer, _stalled_socket) = tokio::io::duplex(1);
        let stalled_conn = fanout.connection(Box::new(writer), 0);
        fanout
            .register(vec!["stream/#".into()], stalled_conn.clone())
            .unwrap();
        stalled_conn.go_live(0);
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

        drop(cheers_conn);
        let mut bytes = Vec::new();
        cheers_socket.read_to_end(&mut bytes).await.unwrap();
        assert_eq!(
            parse_frames(&bytes),
            [
                r#"{"seq":11,"topic":"stream/support/cheers","event":{"provider":"twitch","amount":5}}"#,
                "close 1001"
            ],
            "its frames, then closed at shutdown"
        );
        assert_eq!(
            fanout.cut_off.load(Ordering::Relaxed),
            1,
            "a full queue cuts the client off"
        );
        let view = fanout.view();
        assert_eq!(view.hype.unwrap()["level"], 3);
        assert_eq!(view.providers["twitch"]["state"], "connected");
        let (writer, _) = tokio::io::duplex(1);
        assert!(
            fanout
                .register(vec![], fanout.connection(Box::new(writer), 0))
                .is_none(),
            "no new clients after shutdown"
        );
        let counts = fanout.event_counts();
        assert!(counts.contains(&(("support/cheers".into(), "twitch".into()), 1)));
    }
}
