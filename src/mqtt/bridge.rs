//! The daemon's MQTT connection: an output (hub → broker) and a source (broker → hub) at once.
//!
//! Outbound, it publishes every record the hub hands it at QoS 1, retained for state topics.
//! Its queue drops the oldest when full, so a dead broker never stalls the other outputs; the
//! session is persistent (clean start off), so QoS 1 messages in flight when the broker goes away
//! are sent again when it comes back; a broker that lost the session gets them again as new
//! publishes. Each PUBACK moves the watermark of acknowledged records ([`super::acked`]), from
//! which the next start publishes again what a crash left unacknowledged.
//!
//! Inbound, it subscribes to everything under the topic root (with a `{channel}` root: under
//! the roots of the channels this instance serves) with "no local" (its own
//! publishes do not come back) and hands what bots publish to the hub, which writes it to the
//! log and the WebSocket clients. Retained messages replayed at subscribe time are not new and
//! are skipped. Acknowledgements are manual: a QoS 1 publish is acknowledged once the hub has
//! written it to the event log (or dropped it as a duplicate of a logged one), in the order
//! received, so the broker keeps (and after a crash sends again) what the daemon has not logged.
//!
//! The will is the retained `R/system/ongwatch` = offline: an external broker announces a
//! crash by itself. After a reconnect the online state is published again, since the broker
//! may have fired the will meanwhile; the first online state comes through the hub like any
//! other event, and so does the offline state of a clean shutdown.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet, Publish};
use rumqttc::v5::{AsyncClient, ClientError, Event as MqttEvent, EventLoop, Request};
use serde::Serialize;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Endpoint;
use super::acked::{self, Tracker, wire_payload};
use super::authority::Rules;
use crate::hub::{BoundedQueue, Delivery, Logged, Message, Origin, Publisher};
use crate::retry::{Jitter, Policy, sleep_or_cancel};

/// Requests waiting inside the MQTT client. Kept small: if the broker comes back without our
/// session, these are the messages MQTT allows it to forget.
const CLIENT_CHANNEL: usize = 64;
/// How long a clean shutdown waits for the broker to acknowledge what was published.
const SHUTDOWN_PATIENCE: Duration = Duration::from_secs(3);

#[derive(Debug, Default, Serialize)]
pub struct BridgeStatus {
    pub connected: AtomicBool,
    pub connects: AtomicU64,
    pub received: AtomicU64,
    /// External mode: inbound publishes on reserved topics, ignored.
    pub refused: AtomicU64,
}

pub struct BridgeOptions {
    pub endpoint: Endpoint,
    pub client_id: String,
    /// Filters for everything under the root this instance serves, e.g. `stream/#`, or one
    /// `<channel>/#` per owned channel with a `{channel}` root.
    pub subscribe: Vec<String>,
    /// `R/system/ongwatch` and its online/offline payloads.
    pub system_topic: String,
    pub online: Bytes,
    pub offline: Bytes,
    /// External mode: inbound publishes on the topics only ongwatch publishes are dropped
    /// (the external broker let somebody else publish there; see `ongwatch acl`).
    pub refuse_reserved: Option<Rules>,
    /// Where the watermark of acknowledged records is kept, and where it starts: records up
    /// to it count as acknowledged.
    pub state_dir: PathBuf,
    pub acked_seq: u64,
}

/// What the bridge's tasks share (and the in-process link's, `super::inproc`).
pub(super) struct Shared {
    pub(super) tracker: Mutex<Tracker>,
    pub(super) status: Arc<BridgeStatus>,
    /// Inbound publishes handed to the acknowledging task and not acknowledged yet.
    pub(super) acks_due: AtomicUsize,
    /// Fired on every PUBACK and every acknowledgement sent: shutdown waits on it.
    pub(super) progress: Notify,
    /// Fired on every reconnect: the online state goes out again.
    pub(super) reconnected: Notify,
}

impl Shared {
    pub(super) fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        // Every change to the tracker is a few plain assignments: a panic cannot leave it torn.
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An inbound publish to acknowledge, once its signal fires when there is one.
type DueAck = (Publish, Option<oneshot::Receiver<()>>);

/// Connects (retrying in the background) and runs until the output queue is closed by the hub.
pub async fn run(
    options: BridgeOptions,
    outbound: Arc<BoundedQueue<Delivery>>,
    inbound: Publisher,
    status: Arc<BridgeStatus>,
) {
    let will = LastWill::new(
        options.system_topic.clone(),
        options.offline.to_vec(),
        QoS::AtLeastOnce,
        true,
        None,
    );
    let mut mqtt_options = options.endpoint.options(&options.client_id, Some(will));
    mqtt_options.set_clean_start(false);
    // Keep our session (and what bots publish while we restart) for an hour.
    mqtt_options.set_session_expiry_interval(Some(3600));
    mqtt_options.set_manual_acks(true);
    let (client, eventloop) = AsyncClient::new(mqtt_options, CLIENT_CHANNEL);
    let shared = Arc::new(Shared {
        tracker: Mutex::new(Tracker::new(options.acked_seq)),
        status,
        acks_due: AtomicUsize::new(0),
        progress: Notify::new(),
        reconnected: Notify::new(),
    });

    let (due_tx, due_rx) = mpsc::unbounded_channel();
    let acker = tokio::spawn(acknowledge(client.clone(), due_rx, shared.clone()));
    let stop_loop = CancellationToken::new();
    let loop_task = tokio::spawn(drive(
        eventloop,
        client.clone(),
        options.endpoint.clone(),
        options.subscribe.clone(),
        options.refuse_reserved,
        inbound,
        due_tx,
        shared.clone(),
        stop_loop.clone(),
    ));
    let stop_saving = CancellationToken::new();
    let saver = tokio::spawn(save_watermark(
        options.state_dir.clone(),
        options.acked_seq,
        shared.clone(),
        stop_saving.clone(),
    ));

    let online = (options.system_topic.clone(), options.online.clone());
    loop {
        let tag = tokio::select! {
            // After a reconnect the broker may have fired the will: online again, first.
            biased;
            () = shared.reconnected.notified() => None,
            record = outbound.pop() => match record {
                Some(record) => Some(record),
                None => break,
            },
        };
        let (topic, retain, payload) = match &tag {
            Some(record) => {
                let message = &record.message;
                (
                    message.topic.clone(),
                    message.retain,
                    wire_payload(&message.payload),
                )
            }
            None => (online.0.clone(), true, online.1.clone()),
        };
        let is_record = tag.is_some();
        shared.tracker().queued(tag);
        match client
            .publish_bytes(topic, QoS::AtLeastOnce, retain, payload)
            .await
        {
            Ok(()) => {}
            Err(ClientError::TryRequest(request)) => {
                shared.tracker().unqueued();
                if let Request::Publish(publish) = request {
                    let topic = String::from_utf8_lossy(&publish.topic);
                    tracing::warn!(%topic, "not a topic MQTT can publish on; skipped");
                }
            }
            Err(_) => {
                shared.tracker().unqueued();
                break;
            }
        }
        if is_record {
            outbound.mark_delivered(1);
        }
    }

    // What was published and what came in is acknowledged before the disconnect, so a clean
    // stop leaves nothing to publish again or to be sent again by the broker.
    let deadline = tokio::time::Instant::now() + SHUTDOWN_PATIENCE;
    loop {
        let progress = shared.progress.notified();
        tokio::pin!(progress);
        progress.as_mut().enable();
        let done = shared.tracker().settled() && shared.acks_due.load(Ordering::SeqCst) == 0;
        if done
            || !shared.status.connected.load(Ordering::Relaxed)
            || tokio::time::timeout_at(deadline, progress).await.is_err()
        {
            break;
        }
    }
    // The daemon already queued the offline state through the hub; the disconnect goes out
    // after everything queued before it.
    let _ = client.disconnect().await;
    if tokio::time::timeout(SHUTDOWN_PATIENCE, loop_task)
        .await
        .is_err()
    {
        tracing::warn!("MQTT broker did not take the disconnect in time");
    }
    stop_loop.cancel();
    acker.abort();
    stop_saving.cancel();
    let _ = saver.await;
}

/// Writes the watermark when a PUBACK moved it: at most every [`acked::SAVE_EVERY`], or sooner
/// once it moved by [`acked::SAVE_RECORDS`]; and once more when stopped.
pub(super) async fn save_watermark(
    state_dir: PathBuf,
    mut saved: u64,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let mut failed = false;
    let mut save = |saved: &mut u64| {
        let watermark = shared.tracker().watermark();
        if watermark == *saved {
            return;
        }
        match acked::store(&state_dir, watermark) {
            Ok(()) => {
                *saved = watermark;
                failed = false;
            }
            Err(e) if !failed => {
                failed = true;
                tracing::warn!(path = %acked::path(&state_dir).display(), error = %e, "cannot save the MQTT watermark; after a crash more events are published again");
            }
            Err(_) => {}
        }
    };
    let mut next_due: Option<tokio::time::Instant> = None;
    loop {
        let progress = shared.progress.notified();
        tokio::pin!(progress);
        progress.as_mut().enable();
        let watermark = shared.tracker().watermark();
        let due = next_due.is_some_and(|due| tokio::time::Instant::now() >= due);
        if watermark != saved && (due || watermark >= saved + acked::SAVE_RECORDS) {
            save(&mut saved);
            next_due = None;
        } else if watermark != saved && next_due.is_none() {
            next_due = Some(tokio::time::Instant::now() + acked::SAVE_EVERY);
        }
        let until_due = async {
            match next_due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = progress => {}
            () = until_due => {}
            () = stop.cancelled() => {
                save(&mut saved);
                return;
            }
        }
    }
}

/// Acknowledges inbound publishes in the order received, each once the hub has logged it.
async fn acknowledge(
    client: AsyncClient,
    mut due: mpsc::UnboundedReceiver<DueAck>,
    shared: Arc<Shared>,
) {
    while let Some((publish, logged)) = due.recv().await {
        // Unfired means the daemon stopped before logging it: the broker sends it again.
        let log_has_it = match logged {
            Some(logged) => logged.await.is_ok(),
            None => true,
        };
        if log_has_it && client.ack(&publish).await.is_err() {
            return;
        }
        shared.acks_due.fetch_sub(1, Ordering::SeqCst);
        shared.progress.notify_waiters();
    }
}

/// The broker is local or near: reconnect quickly, never wait more than a few seconds.
const RECONNECT: Policy =
    Policy::new(Duration::from_millis(200), Duration::from_secs(10)).jitter(Jitter::Add);

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    endpoint: Endpoint,
    subscribe: Vec<String>,
    refuse_reserved: Option<Rules>,
    inbound: Publisher,
    due: mpsc::UnboundedSender<DueAck>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let status = &shared.status;
    let mut backoff = RECONNECT.backoff();
    let mut reported_outage = false;
    // Hands an inbound publish to the acknowledging task, in the order received.
    let ack_later = |publish: &Publish, logged: Option<oneshot::Receiver<()>>| {
        if publish.qos == QoS::AtMostOnce {
            return;
        }
        shared.acks_due.fetch_add(1, Ordering::SeqCst);
        let _ = due.send((publish.clone(), logged));
    };
    loop {
        let polled = tokio::select! {
            polled = eventloop.poll() => polled,
            _ = stop.cancelled() => return,
        };
        match polled {
            Ok(MqttEvent::Incoming(Packet::ConnAck(connack))) => {
                status.connected.store(true, Ordering::Relaxed);
                let reconnect = status.connects.fetch_add(1, Ordering::Relaxed) > 0;
                backoff.reset();
                reported_outage = false;
                tracing::info!(broker = %endpoint, "connected to MQTT broker");
                if connack.session_present {
                    shared.tracker().session_resumed();
                } else {
                    // rumqttc dropped what it had not got acknowledged; it goes out again
                    // before anything new.
                    let lost = shared.tracker().session_lost();
                    if !lost.is_empty() {
                        tracing::info!(
                            events = lost.len(),
                            "the MQTT broker lost our session; publishing again what it had not acknowledged"
                        );
                    }
                    eventloop
                        .pending
                        .extend(lost.into_iter().map(Request::Publish));
                }
                // Never await the client inside the loop that drains it: try_* or spawn.
                let client = client.clone();
                let subscribe = subscribe.clone();
                tokio::spawn(async move {
                    let filters = subscribe.into_iter().map(|path| {
                        let mut filter = Filter::new(path, QoS::AtLeastOnce);
                        filter.nolocal = true;
                        filter
                    });
                    let _ = client.subscribe_many(filters).await;
                });
                if reconnect {
                    shared.reconnected.notify_one();
                }
            }
            Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                shared.tracker().sent(pkid);
            }
            Ok(MqttEvent::Outgoing(rumqttc::Outgoing::AwaitAck(pkid))) => {
                shared.tracker().collision(pkid);
            }
            Ok(MqttEvent::Incoming(Packet::PubAck(puback))) => {
                shared.tracker().acked(puback.pkid);
                shared.progress.notify_waiters();
            }
            Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                let topic = match String::from_utf8(publish.topic.to_vec()) {
                    Ok(topic) if !publish.retain => topic,
                    // Replayed at subscribe time, not new; or not a topic we can carry.
                    _ => {
                        ack_later(&publish, None);
                        continue;
                    }
                };
                if let Some(rules) = &refuse_reserved
                    && rules.is_reserved(&topic)
                {
                    ack_later(&publish, None);
                    status.refused.fetch_add(1, Ordering::Relaxed);
                    if status.refused.load(Ordering::Relaxed) == 1 {
                        tracing::warn!(%topic, "ignored a publish on a topic only ongwatch publishes; the external broker allowed it: install the rules of `ongwatch acl --mosquitto`. Further ones are only counted");
                    }
                    continue;
                }
                status.received.fetch_add(1, Ordering::Relaxed);
                let message = Message::from_bytes(topic, &publish.payload, false, Origin::Mqtt);
                let handed = if publish.qos == QoS::AtMostOnce {
                    inbound.message(message).await
                } else {
                    let (logged, done) = Logged::new();
                    ack_later(&publish, Some(done));
                    inbound.message_logged(message, logged).await
                };
                if handed.is_err() {
                    return;
                }
            }
            Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                shared.tracker().connection_lost(&eventloop.pending);
                let was_connected = status.connected.swap(false, Ordering::Relaxed);
                if was_connected || !reported_outage {
                    tracing::warn!(broker = %endpoint, error = %e, "MQTT broker unreachable; retrying with backoff, events wait in a bounded queue");
                    reported_outage = true;
                }
                if !sleep_or_cancel(backoff.next_delay(), &stop).await {
                    return;
                }
            }
        }
    }
}
