//! The daemon on its embedded broker without a connection to itself (issue 18).
//!
//! With an external broker the daemon is an ordinary MQTT client ([`super::bridge`]). Its own
//! embedded broker lives in the same process, and going through a TCP client there costs every
//! event a serialization, a loopback round trip, a parse and a second routing (and every bot
//! publish the same on its way back); so in embedded mode the daemon talks to rmqtt directly:
//!
//! - **Outbound**, every record the hub hands the MQTT output goes into rmqtt's router
//!   (`SessionState::forwards`) as a publish of the daemon's own client id and login: QoS 1,
//!   retained for state topics (rmqtt stores it in the retain store and sends it to later
//!   subscribers), queued for offline persistent sessions, compared with that id for a
//!   subscriber's "no local". The broker has a message once `forwards` returned: that is the
//!   acknowledgement that moves the watermark ([`super::acked`]), in order, as PUBACKs do on a
//!   connection, and a crash publishes again what the log has after it.
//! - **Inbound**, the broker's hooks hand over what clients publish under the bus filters:
//!   a bot's publish once topic authority let it through (the `MessagePublishCheckAcl` hook,
//!   [`super::access`]); a publish of the local superuser (`ongwatch trigger`, `replay`) and a
//!   client's will, which rmqtt never asks the ACL hook about, from the `MessagePublish` hook. It enters the hub
//!   as `Origin::Mqtt`, which the MQTT output does not publish again (the broker already
//!   delivered it). The JSON is parsed by a task of its own, not on the client's connection;
//!   the hook waits while the hand-over channel (and behind it the hub's ingress) is full, and
//!   the publishing client with it. A QoS 1 publish is acknowledged to its client by the broker after the hand-over,
//!   without waiting for the event log: the broker and the daemon are one process, so a crash
//!   loses the broker's copy with the daemon's, as it did when the daemon acknowledged its own
//!   delivery only once logged.
//! - No will: the broker and its retained state end with the daemon. The offline state of a
//!   clean stop goes out through the hub like any other record, before the broker stops.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rmqtt::codec::types::QoS;
use rmqtt::context::ServerContext;
use rmqtt::session::SessionState;
use rmqtt::types::{ClientId, CodecPublish, From as Sender, Id, Publish, TopicName, UserName};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::access::LOCAL_USER;
use super::acked::{SAVE_RECORDS, Tracker, wire_payload};
use super::bridge::{BridgeStatus, Shared, save_watermark};
use crate::event::filter_matches;
use crate::hub::{BoundedQueue, Delivery, Message, Origin, Publisher};

/// How long the broker keeps a retained or queued record, as its listeners do for clients.
pub const MESSAGE_EXPIRY: Duration = Duration::from_secs(24 * 60 * 60);

/// Where the hub's records enter the embedded broker.
#[derive(Clone)]
pub struct Link {
    pub(super) scx: ServerContext,
}

/// Client publishes handed over and not yet in the hub's ingress.
const INBOUND_CHANNEL: usize = 1024;

/// What clients publish on the embedded broker, on its way into the hub.
pub struct Inbound {
    tx: mpsc::Sender<(String, Bytes)>,
    /// The bus filters: what the daemon would subscribe to as a client.
    filters: Vec<String>,
    status: Arc<BridgeStatus>,
}

impl Inbound {
    /// Starts the task that turns client publishes into bus messages (parsing and compacting
    /// the JSON there, not on the publishing client's connection).
    pub fn new(publisher: Publisher, filters: Vec<String>, status: Arc<BridgeStatus>) -> Self {
        let (tx, mut rx) = mpsc::channel::<(String, Bytes)>(INBOUND_CHANNEL);
        tokio::spawn(async move {
            while let Some((topic, payload)) = rx.recv().await {
                let message = Message::from_bytes(topic, &payload, false, Origin::Mqtt);
                // Closed means the daemon is stopping: what comes now is not logged, as with
                // a connection that is closing.
                if publisher.message(message).await.is_err() {
                    return;
                }
            }
        });
        Self {
            tx,
            filters,
            status,
        }
    }

    /// Hands a client's publish to the hub when it is under the bus filters; waits while
    /// the hand-over (and behind it the hub's ingress) is full.
    pub(super) async fn publish(&self, topic: &str, payload: &Bytes) {
        if !self.filters.iter().any(|f| filter_matches(f, topic)) {
            return;
        }
        self.status.received.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send((topic.to_owned(), payload.clone())).await;
    }
}

/// Publishes the hub's records into the embedded broker until the hub closes the queue.
pub async fn run(
    link: Link,
    client_id: String,
    state_dir: PathBuf,
    acked_seq: u64,
    outbound: Arc<BoundedQueue<Delivery>>,
    status: Arc<BridgeStatus>,
) {
    status.connected.store(true, Ordering::Relaxed);
    status.connects.fetch_add(1, Ordering::Relaxed);
    let shared = Arc::new(Shared {
        tracker: Mutex::new(Tracker::new(acked_seq)),
        status: status.clone(),
        acks_due: AtomicUsize::new(0),
        progress: Notify::new(),
        reconnected: Notify::new(),
    });
    let stop_saving = CancellationToken::new();
    let saver = tokio::spawn(save_watermark(
        state_dir,
        acked_seq,
        shared.clone(),
        stop_saving.clone(),
    ));
    let id = Id::new(
        link.scx.node.id(),
        0,
        None,
        None,
        ClientId::from(client_id),
        Some(UserName::from(LOCAL_USER)),
    );
    let from = Sender::from_custom(id);
    let warned = AtomicBool::new(false);
    // The watermark saver is woken when a burst ends or has moved the watermark by
    // `SAVE_RECORDS`, not for every record: that was a wake-up (and a lock) per event.
    let mut unannounced = 0;
    while let Some(record) = outbound.pop().await {
        let message = &record.message;
        let publish = Publish::new(
            Box::new(CodecPublish {
                dup: false,
                retain: message.retain,
                qos: QoS::AtLeastOnce,
                topic: TopicName::from(message.topic.as_str()),
                packet_id: None,
                payload: wire_payload(&message.payload),
                properties: None,
            }),
            None,
            None,
            Some(rmqtt::utils::timestamp_millis()),
        );
        shared.tracker().queued(Some(record.clone()));
        let forwarded = SessionState::forwards(
            &link.scx,
            from.clone(),
            publish,
            false,
            Some(MESSAGE_EXPIRY),
        )
        .await;
        if let Err(e) = forwarded
            && !warned.swap(true, Ordering::Relaxed)
        {
            // Like a refused PUBACK: publishing it again would not help either.
            tracing::warn!(topic = %message.topic, error = %e, "the embedded broker did not take an event; further failures are not logged");
        }
        {
            let mut tracker = shared.tracker();
            tracker.sent(1);
            tracker.acked(1);
        }
        unannounced += 1;
        if unannounced >= SAVE_RECORDS || outbound.is_empty() {
            shared.progress.notify_waiters();
            unannounced = 0;
        }
        outbound.mark_delivered(1);
    }
    status.connected.store(false, Ordering::Relaxed);
    stop_saving.cancel();
    let _ = saver.await;
}
