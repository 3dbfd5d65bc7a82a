//! The hub: every message on the bus passes through here exactly once.
//!
//! Sources (providers, the demo, triggers) and the MQTT bridge (whatever bots publish) send
//! [`Message`]s into one bounded ingress channel; senders wait when it is full, so ingress never
//! drops. The hub drops repeated event ids within the dedup window, numbers each message with
//! a monotonic `seq` (continued from the event log after a restart), and pushes it into every
//! output's own [`BoundedQueue`]. Each output states its overflow policy; a slow output with a
//! dropping policy never slows the others.
//!
//! Write-ahead: with an output registered by [`Hub::add_write_ahead_output`] (the event log),
//! a record reaches the other outputs only once that one has marked it delivered (written).
//! So nothing is published on MQTT, to WebSocket clients or to processors that a `kill -9`
//! could still take out of the log, where it would be missing from history, from the dedup
//! window seeded at the next start, and its `seq` would be given out again.
//!
//! A message can carry a [`Logged`] signal ([`Publisher::message_logged`]): the hub fires it
//! once the write-ahead output has the record, or when it drops the message as a duplicate.
//! The MQTT bridge acknowledges an inbound QoS 1 publish only then, so a crash never loses a
//! command the broker already considers delivered.

pub mod config;
pub mod crosscheck;
mod dedup;
pub mod queue;
pub mod wal;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use dedup::DedupWindow;
pub use queue::{BoundedQueue, OverflowPolicy, QueueStats};

use crate::event::{Event, TopicRoot, filter_matches};

/// Who put a message on the bus. Outputs use it to avoid echoing: the MQTT bridge does not
/// republish what it received from the broker, since the broker already delivered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A provider, the demo, a trigger, a processor of this daemon.
    Daemon,
    /// Received from the MQTT broker (a bot, `mosquitto_pub`, `ongwatch replay`).
    Mqtt,
    /// Received over the HTTP/WebSocket API.
    Api,
}

/// One message on the bus. `payload` is always compact, single-line JSON.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    pub origin: Origin,
    /// The event id when the payload has one; used for deduplication.
    pub id: Option<String>,
}

impl Message {
    /// Turns any payload into the bus form: JSON is compacted; other text becomes a JSON
    /// string; bytes that are not UTF-8 are replaced lossily (the only lossy path, logged).
    pub fn from_bytes(topic: String, payload: &[u8], retain: bool, origin: Origin) -> Self {
        let (payload, id) = match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(value) => {
                let id = value
                    .get("id")
                    .and_then(|id| id.as_str())
                    .map(str::to_owned);
                (compact(&value), id)
            }
            Err(_) => {
                let text = match std::str::from_utf8(payload) {
                    Ok(text) => text.to_owned(),
                    Err(_) => {
                        tracing::warn!(%topic, "payload is not UTF-8; stored with replacement characters");
                        String::from_utf8_lossy(payload).into_owned()
                    }
                };
                (compact(&serde_json::Value::String(text)), None)
            }
        };
        Self {
            topic,
            payload,
            retain,
            origin,
            id,
        }
    }
}

fn compact(value: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Fired by the hub once a message is in the event log (or was dropped as a duplicate, so it
/// is in the log already); dropped unfired if the daemon stops before that.
#[derive(Debug)]
pub struct Logged(oneshot::Sender<()>);

impl Logged {
    /// The signal, and what resolves once it is fired (`Err` if it was dropped unfired).
    pub fn new() -> (Self, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (Self(tx), rx)
    }

    fn fire(self) {
        // The waiter may be gone (its connection ended); then nobody needs the answer.
        let _ = self.0.send(());
    }
}

/// What travels through the ingress channel: a message, who waits for it to be logged, and
/// the event it was serialized from, if any.
struct Ingress {
    message: Message,
    logged: Option<Logged>,
    event: Option<Event>,
}

/// A message after the hub accepted it.
#[derive(Debug)]
pub struct Record {
    pub seq: u64,
    pub message: Message,
    /// The contract event in the payload: the one a source published, or parsed once by the
    /// first output that asks; shared by every output.
    event: OnceLock<Option<Event>>,
}

impl Record {
    pub fn new(seq: u64, message: Message) -> Self {
        Self {
            seq,
            message,
            event: OnceLock::new(),
        }
    }

    /// The contract event in the payload, `None` for anything else (chat, a bot's own JSON).
    pub fn event(&self) -> Option<&Event> {
        self.event
            .get_or_init(|| serde_json::from_slice(&self.message.payload).ok())
            .as_ref()
    }
}

pub type Delivery = Arc<Record>;

#[derive(Debug, Default)]
pub struct HubCounters {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    /// Reports dropped as the same Twitch event from another provider (docs/DEDUP.md).
    pub cross_source: AtomicU64,
}

/// How a source puts contract events on the bus: topic from the root, retained for state.
#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::Sender<Ingress>,
    root: TopicRoot,
    include_raw: bool,
    crosscheck: Option<Arc<crosscheck::CrossCheck>>,
}

/// The hub is gone: the daemon is shutting down.
#[derive(Debug, thiserror::Error)]
#[error("the bus is shut down")]
pub struct BusClosed;

impl Publisher {
    pub async fn event(&self, event: Event) -> Result<(), BusClosed> {
        // Before `raw` goes: only the upstream envelope tells the platform.
        let event = match &self.crosscheck {
            Some(check) => match check.admit(event, tokio::time::Instant::now()) {
                Some(event) => event,
                None => return Ok(()),
            },
            None => event,
        };
        self.send_event(event).await
    }

    /// Puts an event on the bus without the cross-source check.
    async fn send_event(&self, mut event: Event) -> Result<(), BusClosed> {
        if !self.include_raw {
            event.raw = None;
        }
        let topic = self.root.topic(&event.channel, &event.topic_suffix());
        let payload = Bytes::from(serde_json::to_vec(&event).unwrap_or_default());
        let message = Message {
            topic,
            payload,
            retain: event.is_state(),
            origin: Origin::Daemon,
            id: Some(event.id.clone()),
        };
        // Outputs that read the event get this one instead of parsing the payload again.
        self.send(Ingress {
            message,
            logged: None,
            event: Some(event),
        })
        .await
    }

    pub async fn message(&self, message: Message) -> Result<(), BusClosed> {
        self.send(Ingress {
            message,
            logged: None,
            event: None,
        })
        .await
    }

    /// Like [`Self::message`], and `logged` is fired once the event log has the message (or
    /// the hub dropped it as a duplicate of one it has).
    pub async fn message_logged(&self, message: Message, logged: Logged) -> Result<(), BusClosed> {
        self.send(Ingress {
            message,
            logged: Some(logged),
            event: None,
        })
        .await
    }

    async fn send(&self, ingress: Ingress) -> Result<(), BusClosed> {
        self.tx.send(ingress).await.map_err(|_| BusClosed)
    }

    pub fn root(&self) -> &TopicRoot {
        &self.root
    }

    pub fn include_raw(&self) -> bool {
        self.include_raw
    }
}

/// One registered output: its queue, and whether it wants what came from the MQTT broker.
pub struct OutputSlot {
    pub name: String,
    pub queue: Arc<BoundedQueue<Delivery>>,
    pub wants_mqtt_origin: bool,
    /// Gets every record first; the others get it once this one delivered it.
    pub write_ahead: bool,
    /// MQTT filters of the topics it reads; empty: every topic. Nothing else wakes it.
    pub filters: Vec<String>,
}

pub struct Hub {
    rx: mpsc::Receiver<Ingress>,
    tx: mpsc::Sender<Ingress>,
    root: TopicRoot,
    include_raw: bool,
    outputs: Vec<OutputSlot>,
    dedup: DedupWindow,
    crosscheck: Option<Arc<crosscheck::CrossCheck>>,
    next_seq: u64,
    pub counters: Arc<HubCounters>,
}

/// Capacity of the ingress channel; senders wait beyond it.
const INGRESS_CAPACITY: usize = 8192;
/// How many ids the dedup window holds at most, whatever the time window. The event log
/// gives back up to this many at start, so a restart forgets no id the window would keep.
pub const DEDUP_MAX_IDS: usize = 200_000;

impl Hub {
    pub fn new(root: TopicRoot, include_raw: bool, dedup_window: Duration, last_seq: u64) -> Self {
        let (tx, rx) = mpsc::channel(INGRESS_CAPACITY);
        Self {
            rx,
            tx,
            root,
            include_raw,
            outputs: Vec::new(),
            dedup: DedupWindow::new(dedup_window, DEDUP_MAX_IDS),
            crosscheck: None,
            next_seq: last_seq + 1,
            counters: Arc::new(HubCounters::default()),
        }
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            tx: self.tx.clone(),
            root: self.root.clone(),
            include_raw: self.include_raw,
            crosscheck: self.crosscheck.clone(),
        }
    }

    /// Turns on the cross-source duplicate check for publishers made from now on. Run
    /// [`crosscheck::release_held`] with the returned handle, or held reports never go out.
    pub fn enable_crosscheck(
        &mut self,
        config: &crosscheck::DedupConfig,
        twitch_active: bool,
    ) -> Arc<crosscheck::CrossCheck> {
        let check = Arc::new(crosscheck::CrossCheck::new(
            config,
            twitch_active,
            self.counters.clone(),
        ));
        self.crosscheck = Some(check.clone());
        check
    }

    /// Ids already published before a restart, so a redelivery after it is still dropped.
    pub fn remember_ids(&mut self, ids: impl IntoIterator<Item = String>) {
        let now = Instant::now();
        for id in ids {
            self.dedup.remember(&id, now);
        }
    }

    /// Registers an output with its own queue.
    pub fn add_output(
        &mut self,
        name: impl Into<String>,
        capacity: usize,
        policy: OverflowPolicy,
        wants_mqtt_origin: bool,
    ) -> Arc<BoundedQueue<Delivery>> {
        self.add_filtered_output(name, capacity, policy, wants_mqtt_origin, Vec::new())
    }

    /// Registers an output that gets only the records on topics matching one of `filters`
    /// (MQTT filters; none means every topic), so it is not woken for the rest.
    pub fn add_filtered_output(
        &mut self,
        name: impl Into<String>,
        capacity: usize,
        policy: OverflowPolicy,
        wants_mqtt_origin: bool,
        filters: Vec<String>,
    ) -> Arc<BoundedQueue<Delivery>> {
        let queue = Arc::new(BoundedQueue::new(capacity, policy));
        self.outputs.push(OutputSlot {
            name: name.into(),
            queue: queue.clone(),
            wants_mqtt_origin,
            write_ahead: false,
            filters,
        });
        queue
    }

    /// Registers the output that gets every record before the others do (policy `block`):
    /// the others get a record once this one has called `mark_delivered` for it, in order. If
    /// its consumer gives up ([`BoundedQueue::abandon`]), records go on to the others without
    /// it. At most one.
    pub fn add_write_ahead_output(
        &mut self,
        name: impl Into<String>,
        capacity: usize,
    ) -> Arc<BoundedQueue<Delivery>> {
        assert!(
            !self.outputs.iter().any(|o| o.write_ahead),
            "one write-ahead output at most"
        );
        let queue = Arc::new(BoundedQueue::new(capacity, OverflowPolicy::Block));
        self.outputs.push(OutputSlot {
            name: name.into(),
            queue: queue.clone(),
            wants_mqtt_origin: true,
            write_ahead: true,
            filters: Vec::new(),
        });
        queue
    }

    /// Stats of every output queue, by name.
    pub fn output_stats(&self) -> Vec<(String, Arc<BoundedQueue<Delivery>>)> {
        self.outputs
            .iter()
            .map(|o| (o.name.clone(), o.queue.clone()))
            .collect()
    }

    /// Runs until `shutdown` fires, then drains what is already in the ingress channel and
    /// closes the output queues so each output can flush and finish.
    pub async fn run(mut self, shutdown: tokio_util::sync::CancellationToken) {
        drop(self.tx);
        let mut ahead = WriteAhead::new(&self.outputs);
        loop {
            let written = ahead.written();
            tokio::select! {
                delivered = written, if ahead.waiting() => {
                    ahead.release(delivered, &self.outputs).await;
                }
                ingress = self.rx.recv() => match ingress {
                    Some(ingress) => {
                        Self::route(&mut self.dedup, &mut self.next_seq, &self.outputs, &mut ahead, &self.counters, ingress).await;
                    }
                    None => break,
                },
                _ = shutdown.cancelled() => {
                    self.rx.close();
                    while let Some(ingress) = self.rx.recv().await {
                        Self::route(&mut self.dedup, &mut self.next_seq, &self.outputs, &mut ahead, &self.counters, ingress).await;
                    }
                    break;
                }
            }
        }
        ahead.finish(&self.outputs).await;
        for output in &self.outputs {
            output.queue.close();
        }
    }

    async fn route(
        dedup: &mut DedupWindow,
        next_seq: &mut u64,
        outputs: &[OutputSlot],
        ahead: &mut WriteAhead,
        counters: &HubCounters,
        ingress: Ingress,
    ) {
        let Ingress {
            message,
            logged,
            event,
        } = ingress;
        counters.received.fetch_add(1, Ordering::Relaxed);
        if let Some(id) = &message.id
            && !dedup.first_sighting(id, Instant::now())
        {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%id, topic = %message.topic, "duplicate event dropped");
            // The earlier copy is logged, or ahead of this one on its way there (in order).
            ahead.settle(logged);
            return;
        }
        let record = Arc::new(Record {
            seq: *next_seq,
            message,
            event: event.map(Some).map(OnceLock::from).unwrap_or_default(),
        });
        *next_seq += 1;
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        ahead.admit(record, logged, outputs).await;
    }
}

/// Pushes a record into every output but the write-ahead one.
async fn fan_out(outputs: &[OutputSlot], record: &Delivery) {
    for output in outputs {
        if output.write_ahead
            || (record.message.origin == Origin::Mqtt && !output.wants_mqtt_origin)
            || !(output.filters.is_empty()
                || output
                    .filters
                    .iter()
                    .any(|filter| filter_matches(filter, &record.message.topic)))
        {
            continue;
        }
        output.queue.push(record.clone()).await;
    }
}

/// Records the write-ahead output has not delivered yet, held back from the others, with the
/// signals to fire once each is written.
struct WriteAhead {
    queue: Option<Arc<BoundedQueue<Delivery>>>,
    pending: VecDeque<(Delivery, Vec<Logged>)>,
    /// Records pushed into `queue` and handed on since; its delivered count counts the same.
    released: u64,
    /// The write-ahead output's consumer gave up; reported once.
    reported: bool,
}

impl WriteAhead {
    fn new(outputs: &[OutputSlot]) -> Self {
        Self {
            queue: outputs
                .iter()
                .find(|o| o.write_ahead)
                .map(|o| o.queue.clone()),
            pending: VecDeque::new(),
            released: 0,
            reported: false,
        }
    }

    fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Resolves with the delivered count once it is past what was released (or the consumer
    /// gave up). Owns what it needs, so the hub can route while it waits.
    fn written(&self) -> impl Future<Output = u64> + use<> {
        let queue = self.queue.clone();
        let released = self.released;
        async move {
            match queue {
                Some(queue) => queue.delivered_beyond(released).await,
                None => std::future::pending().await,
            }
        }
    }

    async fn admit(&mut self, record: Delivery, logged: Option<Logged>, outputs: &[OutputSlot]) {
        let Some(queue) = &self.queue else {
            fan_out(outputs, &record).await;
            if let Some(logged) = logged {
                logged.fire();
            }
            return;
        };
        if !queue.is_abandoned() && queue.push(record.clone()).await {
            self.pending
                .push_back((record, logged.into_iter().collect()));
            return;
        }
        // Nothing to wait for any more: the rest goes on, in order.
        self.release(u64::MAX, outputs).await;
        fan_out(outputs, &record).await;
        if let Some(logged) = logged {
            logged.fire();
        }
    }

    /// Fires `logged` once everything admitted so far is written: a dropped duplicate is
    /// logged when its first copy is, which is at the latest the last one admitted.
    fn settle(&mut self, logged: Option<Logged>) {
        let Some(logged) = logged else { return };
        match self.pending.back_mut() {
            Some((_, signals)) => signals.push(logged),
            None => logged.fire(),
        }
    }

    /// Hands on the records the write-ahead output has delivered (all of them once it gave up).
    async fn release(&mut self, delivered: u64, outputs: &[OutputSlot]) {
        let abandoned = self.queue.as_ref().is_some_and(|q| q.is_abandoned());
        if abandoned && !self.reported {
            self.reported = true;
            tracing::error!(
                "the event log stopped; events go on to the other outputs without being logged"
            );
        }
        while self.released < delivered || (abandoned && !self.pending.is_empty()) {
            let Some((record, signals)) = self.pending.pop_front() else {
                break;
            };
            signals.into_iter().for_each(Logged::fire);
            fan_out(outputs, &record).await;
            self.released += 1;
        }
    }

    /// After the last record: waits until the write-ahead output has everything, hands it on.
    async fn finish(&mut self, outputs: &[OutputSlot]) {
        while self.waiting() {
            let delivered = self.written().await;
            self.release(delivered, outputs).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Follow, UserRef};

    #[tokio::test]
    async fn numbers_dedups_and_skips_echo() {
        let mut hub = Hub::new(
            TopicRoot::new("stream").unwrap(),
            false,
            Duration::from_secs(60),
            41,
        );
        let all = hub.add_output("log", 16, OverflowPolicy::Block, true);
        let mqtt = hub.add_output("mqtt", 16, OverflowPolicy::DropOldest, false);
        let publisher = hub.publisher();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(hub.run(shutdown.clone()));

        let follow = Event::new(
            "twitch:1",
            "twitch",
            "Chan",
            EventKind::Follow(Follow {
                user: UserRef::named("a"),
            }),
        );
        publisher.event(follow.clone()).await.unwrap();
        publisher.event(follow).await.unwrap();
        publisher
            .message(Message::from_bytes(
                "stream/synthetic/bpm".into(),
                b"{\n \"bpm\": 120\n}",
                false,
                Origin::Mqtt,
            ))
            .await
            .unwrap();
        drop(publisher);
        shutdown.cancel();
        task.await.unwrap();

        let first = all.pop().await.unwrap();
        assert_eq!(first.seq, 42);
        assert_eq!(first.message.topic, "stream/community/follows");
        let second = all.pop().await.unwrap();
        assert_eq!(second.seq, 43);
        assert_eq!(&second.message.payload[..], br#"{"bpm":120}"#);
        assert!(all.pop().await.is_none());
        assert_eq!(mqtt.pop().await.unwrap().seq, 42);
        assert!(mqtt.pop().await.is_none());
    }

    #[tokio::test]
    async fn a_filtered_output_gets_only_its_topics_and_the_shared_event() {
        let mut hub = Hub::new(
            TopicRoot::new("stream").unwrap(),
            false,
            Duration::from_secs(60),
            0,
        );
        let follows = hub.add_filtered_output(
            "follows",
            16,
            OverflowPolicy::Block,
            true,
            vec!["stream/community/+".into()],
        );
        let publisher = hub.publisher();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(hub.run(shutdown.clone()));
        publisher
            .message(Message::from_bytes(
                "stream/synthetic/bpm".into(),
                br#"{"bpm":120}"#,
                false,
                Origin::Mqtt,
            ))
            .await
            .unwrap();
        publisher.event(follow("twitch:1")).await.unwrap();
        drop(publisher);
        shutdown.cancel();
        task.await.unwrap();

        let only = follows.pop().await.unwrap();
        assert_eq!(only.message.topic, "stream/community/follows");
        assert_eq!(only.event().map(|e| e.id.as_str()), Some("twitch:1"));
        assert!(follows.pop().await.is_none());
    }

    fn follow(id: &str) -> Event {
        Event::new(
            id,
            "twitch",
            "Chan",
            EventKind::Follow(Follow {
                user: UserRef::named("a"),
            }),
        )
    }

    /// Lets the hub task run as far as it can on this single-threaded runtime.
    async fn settle() {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
    }

    /// A running hub with a write-ahead "log" output and an "mqtt" one.
    struct WriteAheadHub {
        log: Arc<BoundedQueue<Delivery>>,
        mqtt: Arc<BoundedQueue<Delivery>>,
        publisher: Publisher,
        shutdown: tokio_util::sync::CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn write_ahead_hub() -> WriteAheadHub {
        let mut hub = Hub::new(
            TopicRoot::new("stream").unwrap(),
            false,
            Duration::from_secs(60),
            0,
        );
        let log = hub.add_write_ahead_output("log", 16);
        let mqtt = hub.add_output("mqtt", 16, OverflowPolicy::DropOldest, false);
        let publisher = hub.publisher();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(hub.run(shutdown.clone()));
        WriteAheadHub {
            log,
            mqtt,
            publisher,
            shutdown,
            task,
        }
    }

    /// Regression (tests/crash.rs): the MQTT bridge published records the event log had not
    /// written yet, so after a `kill -9` events were published that the log never had.
    #[tokio::test]
    async fn others_get_a_record_only_once_the_write_ahead_output_delivered_it() {
        let WriteAheadHub {
            log,
            mqtt,
            publisher,
            shutdown,
            task,
        } = write_ahead_hub();

        publisher.event(follow("twitch:1")).await.unwrap();
        publisher.event(follow("twitch:2")).await.unwrap();
        assert_eq!(log.pop().await.unwrap().seq, 1);
        assert_eq!(log.pop().await.unwrap().seq, 2);
        settle().await;
        assert!(mqtt.is_empty(), "published before it was written");
        log.mark_delivered(1);
        assert_eq!(mqtt.pop().await.unwrap().seq, 1);
        settle().await;
        assert!(mqtt.is_empty());
        log.mark_delivered(1);
        assert_eq!(mqtt.pop().await.unwrap().seq, 2);

        // At shutdown the hub still waits for the log before handing the rest on.
        publisher.event(follow("twitch:3")).await.unwrap();
        drop(publisher);
        shutdown.cancel();
        assert_eq!(log.pop().await.unwrap().seq, 3);
        settle().await;
        assert!(mqtt.is_empty());
        log.mark_delivered(1);
        assert_eq!(mqtt.pop().await.unwrap().seq, 3);
        task.await.unwrap();
        assert!(mqtt.pop().await.is_none());
        assert!(log.pop().await.is_none());
    }

    #[tokio::test]
    async fn a_failed_write_ahead_output_no_longer_holds_records_back() {
        let WriteAheadHub {
            log,
            mqtt,
            publisher,
            shutdown,
            task,
        } = write_ahead_hub();

        publisher.event(follow("twitch:1")).await.unwrap();
        settle().await;
        assert!(mqtt.is_empty());
        log.abandon();
        assert_eq!(mqtt.pop().await.unwrap().seq, 1);
        publisher.event(follow("twitch:2")).await.unwrap();
        assert_eq!(mqtt.pop().await.unwrap().seq, 2);
        drop(publisher);
        shutdown.cancel();
        task.await.unwrap();
    }

    /// Regression (tests/crash.rs): the bridge acknowledged an inbound QoS 1 publish on
    /// receipt, so a kill before the log had it lost it. The signal fires only once the
    /// write-ahead output delivered the record, and for a dropped duplicate only once
    /// everything before it was delivered.
    #[tokio::test]
    async fn logged_signals_fire_once_the_log_has_the_record() {
        let WriteAheadHub {
            log,
            mqtt: _mqtt,
            publisher,
            shutdown,
            task,
        } = write_ahead_hub();
        let command = |id: &str| {
            Message::from_bytes(
                "stream/command/trigger".into(),
                format!(r#"{{"id":"{id}"}}"#).as_bytes(),
                false,
                Origin::Mqtt,
            )
        };
        let (first, mut first_done) = Logged::new();
        publisher
            .message_logged(command("c1"), first)
            .await
            .unwrap();
        let (again, mut again_done) = Logged::new();
        publisher
            .message_logged(command("c1"), again)
            .await
            .unwrap();
        assert_eq!(log.pop().await.unwrap().seq, 1);
        settle().await;
        assert!(
            first_done.try_recv().is_err(),
            "fired before it was written"
        );
        assert!(
            again_done.try_recv().is_err(),
            "duplicate fired before the first was written"
        );
        log.mark_delivered(1);
        first_done.await.unwrap();
        again_done.await.unwrap();

        // Nothing pending: a duplicate fires at once.
        let (late, late_done) = Logged::new();
        publisher.message_logged(command("c1"), late).await.unwrap();
        late_done.await.unwrap();

        // At shutdown the hub still waits for the log before firing.
        let (last, last_done) = Logged::new();
        publisher.message_logged(command("c2"), last).await.unwrap();
        drop(publisher);
        shutdown.cancel();
        assert_eq!(log.pop().await.unwrap().seq, 2);
        log.mark_delivered(1);
        last_done.await.unwrap();
        task.await.unwrap();
    }
}
