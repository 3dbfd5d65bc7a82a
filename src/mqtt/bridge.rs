//! The daemon's MQTT connection: an output (hub → broker) and a source (broker → hub) at once.
//!
//! Outbound, it publishes every record the hub hands it at QoS 1, retained for state topics.
//! Its queue drops the oldest when full, so a dead broker never stalls the other outputs; the
//! session is persistent (clean start off), so QoS 1 messages in flight when the broker goes away
//! are sent again when it comes back, provided the broker kept the session.
//!
//! Inbound, it subscribes to everything under the topic root (with a `{channel}` root: under
//! the roots of the channels this instance serves) with "no local" (its own
//! publishes do not come back) and hands what bots publish to the hub, which writes it to the
//! log and the WebSocket clients. Retained messages replayed at subscribe time are not new and
//! are skipped.
//!
//! The will is the retained `R/system/ongwatch` = offline: an external broker announces a
//! crash by itself. After a reconnect the online state is published again, since the broker
//! may have fired the will meanwhile; the first online state comes through the hub like any
//! other event, and so does the offline state of a clean shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, LastWill, Packet};
use rumqttc::v5::{AsyncClient, Event as MqttEvent, EventLoop};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Endpoint;
use super::authority::Rules;
use crate::hub::{BoundedQueue, Delivery, Message, Origin, Publisher};

/// Requests waiting inside the MQTT client. Kept small: if the broker comes back without our
/// session, these are the messages MQTT allows it to forget.
const CLIENT_CHANNEL: usize = 64;

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
}

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
    let (client, eventloop) = AsyncClient::new(mqtt_options, CLIENT_CHANNEL);

    let stop_loop = CancellationToken::new();
    let loop_task = tokio::spawn(drive(
        eventloop,
        client.clone(),
        options.endpoint.clone(),
        options.subscribe.clone(),
        (options.system_topic.clone(), options.online.clone()),
        options.refuse_reserved,
        inbound,
        status.clone(),
        stop_loop.clone(),
    ));

    while let Some(record) = outbound.pop().await {
        let message = &record.message;
        let sent = client
            .publish_bytes(
                message.topic.clone(),
                QoS::AtLeastOnce,
                message.retain,
                wire_payload(&message.payload),
            )
            .await;
        if sent.is_err() {
            break;
        }
        outbound.mark_delivered(1);
    }

    // The daemon already queued the offline state through the hub; the disconnect goes out
    // after everything queued before it.
    let _ = client.disconnect().await;
    if tokio::time::timeout(Duration::from_secs(3), loop_task)
        .await
        .is_err()
    {
        tracing::warn!("MQTT broker did not take the disconnect in time");
    }
    stop_loop.cancel();
}

/// What goes on the wire for a bus payload. The bus carries JSON; a JSON string is sent as its
/// plain text, since that is what a text payload such as a light's `ON` means on MQTT (and how
/// a bot's non-JSON publish is carried on the bus in the first place).
fn wire_payload(payload: &Bytes) -> Bytes {
    if payload.first() == Some(&b'"')
        && let Ok(text) = serde_json::from_slice::<String>(payload)
    {
        return Bytes::from(text);
    }
    payload.clone()
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut eventloop: EventLoop,
    client: AsyncClient,
    endpoint: Endpoint,
    subscribe: Vec<String>,
    online: (String, Bytes),
    refuse_reserved: Option<Rules>,
    inbound: Publisher,
    status: Arc<BridgeStatus>,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    let mut reported_outage = false;
    loop {
        let polled = tokio::select! {
            polled = eventloop.poll() => polled,
            _ = stop.cancelled() => return,
        };
        match polled {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                status.connected.store(true, Ordering::Relaxed);
                let reconnect = status.connects.fetch_add(1, Ordering::Relaxed) > 0;
                backoff = Duration::from_millis(200);
                reported_outage = false;
                tracing::info!(broker = %endpoint, "connected to MQTT broker");
                // Never await the client inside the loop that drains it: try_* or spawn.
                let client = client.clone();
                let (topic, payload) = online.clone();
                let subscribe = subscribe.clone();
                tokio::spawn(async move {
                    let filters = subscribe.into_iter().map(|path| {
                        let mut filter = Filter::new(path, QoS::AtLeastOnce);
                        filter.nolocal = true;
                        filter
                    });
                    let _ = client.subscribe_many(filters).await;
                    if reconnect {
                        let _ = client
                            .publish_bytes(topic, QoS::AtLeastOnce, true, payload)
                            .await;
                    }
                });
            }
            Ok(MqttEvent::Incoming(Packet::Publish(publish))) => {
                if publish.retain {
                    continue;
                }
                let Ok(topic) = String::from_utf8(publish.topic.to_vec()) else {
                    continue;
                };
                if let Some(rules) = &refuse_reserved
                    && rules.is_reserved(&topic)
                {
                    status.refused.fetch_add(1, Ordering::Relaxed);
                    if status.refused.load(Ordering::Relaxed) == 1 {
                        tracing::warn!(%topic, "ignored a publish on a topic only ongwatch publishes; the external broker allowed it: install the rules of `ongwatch acl --mosquitto`. Further ones are only counted");
                    }
                    continue;
                }
                status.received.fetch_add(1, Ordering::Relaxed);
                let message = Message::from_bytes(topic, &publish.payload, false, Origin::Mqtt);
                if inbound.message(message).await.is_err() {
                    return;
                }
            }
            Ok(MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                let was_connected = status.connected.swap(false, Ordering::Relaxed);
                if was_connected || !reported_outage {
                    tracing::warn!(broker = %endpoint, error = %e, "MQTT broker unreachable; retrying with backoff, events wait in a bounded queue");
                    reported_outage = true;
                }
                let jitter = rand::random_range(0..=backoff.as_millis() as u64 / 4);
                tokio::select! {
                    _ = tokio::time::sleep(backoff + Duration::from_millis(jitter)) => {}
                    _ = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_go_out_as_plain_text() {
        assert_eq!(wire_payload(&Bytes::from_static(br#""ON""#)), "ON");
        assert_eq!(wire_payload(&Bytes::from_static(br#""a\"b""#)), r#"a"b"#);
        assert_eq!(
            wire_payload(&Bytes::from_static(br#"{"level":3}"#)),
            r#"{"level":3}"#
        );
        assert_eq!(wire_payload(&Bytes::from_static(b"42")), "42");
    }
}
