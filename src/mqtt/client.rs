//! A short-lived MQTT client for the CLI (`trigger`, `replay`, `tail`).
//!
//! The first connection is bounded by [`CONNECT_TIMEOUT`]: a CLI command against a daemon that is
//! not there must say so at once instead of retrying. Publishing is one message at a time, each
//! confirmed by its PUBACK before the next; if the broker goes away later, the client reconnects
//! within its patience and sends the unconfirmed message again. A repeat is harmless: every
//! command and replayed event carries an id the hub deduplicates.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PubAckReason, Publish};
use rumqttc::v5::{AsyncClient, Event as MqttEvent, EventLoop};
use thiserror::Error;

use super::Endpoint;

/// How long the first connection (TCP, TLS and CONNACK) may take. Loopback answers in
/// microseconds; this bounds a remote broker that drops packets instead of refusing, so that a
/// CLI command with no daemon behind it ends within the 5 s CONTRACT §1 promises.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Error)]
pub enum ClientError {
    /// Nothing answered (connection refused, no route, no CONNACK in time), or the connection
    /// was lost and did not come back within the client's patience.
    #[error("nothing answers at {endpoint} ({detail})")]
    Unreachable { endpoint: String, detail: String },
    #[error("the MQTT broker at {endpoint} refused the connection: {detail}")]
    Refused { endpoint: String, detail: String },
}

/// The broker answered a publish with an error reason code (MQTT 5), e.g. "not authorized"
/// when the topic belongs to someone else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected(pub String);

pub struct CliClient {
    client: AsyncClient,
    eventloop: EventLoop,
    endpoint: Endpoint,
    /// How long to keep trying to reach a broker that went away; zero: report it at once.
    patience: Duration,
    /// Subscribed filters, renewed after a reconnect (the session is not kept).
    filters: Vec<Filter>,
}

impl CliClient {
    /// Connects and waits for the broker's CONNACK, at most [`CONNECT_TIMEOUT`].
    pub async fn connect(
        endpoint: Endpoint,
        client_prefix: &str,
        patience: Duration,
    ) -> Result<Self, ClientError> {
        let id = format!("{client_prefix}-{}", uuid::Uuid::new_v4().simple());
        let mut options = endpoint.options(&id, None);
        options.set_clean_start(true);
        let (client, eventloop) = AsyncClient::new(options, 16);
        let mut this = Self {
            client,
            eventloop,
            endpoint,
            patience,
            filters: Vec::new(),
        };
        let unreachable = |endpoint: &Endpoint, detail: String| ClientError::Unreachable {
            endpoint: endpoint.to_string(),
            detail,
        };
        let first = tokio::time::timeout(CONNECT_TIMEOUT, async {
            loop {
                match this.eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
                        return Err(ClientError::Refused {
                            endpoint: this.endpoint.to_string(),
                            detail: format!("{code:?}"),
                        });
                    }
                    Err(e) => return Err(unreachable(&this.endpoint, connect_detail(&e))),
                }
            }
        })
        .await;
        match first {
            Ok(Ok(())) => Ok(this),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(unreachable(
                &this.endpoint,
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            )),
        }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Polls once, turning connection errors into a retry until `patience` runs out.
    async fn poll(
        &mut self,
        outage_since: &mut Option<tokio::time::Instant>,
    ) -> Result<Option<Packet>, ClientError> {
        match self.eventloop.poll().await {
            Ok(MqttEvent::Incoming(packet)) => {
                *outage_since = None;
                Ok(Some(packet))
            }
            Ok(MqttEvent::Outgoing(_)) => Ok(None),
            Err(rumqttc::v5::ConnectionError::ConnectionRefused(code)) => {
                Err(ClientError::Refused {
                    endpoint: self.endpoint.to_string(),
                    detail: format!("{code:?}"),
                })
            }
            Err(e) => {
                let since = *outage_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= self.patience {
                    return Err(ClientError::Unreachable {
                        endpoint: self.endpoint.to_string(),
                        detail: connect_detail(&e),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(None)
            }
        }
    }

    /// Publishes at QoS 1 and waits for the broker's acknowledgement; `Ok(Err(_))` when the
    /// broker acknowledged it with an error reason (the message went nowhere).
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: Bytes,
        retain: bool,
    ) -> Result<Result<(), Rejected>, ClientError> {
        let mut outage_since = None;
        let mut needs_send = true;
        loop {
            if needs_send {
                // Never blocks: the channel is drained by the poll below before the next send.
                let _ = self
                    .client
                    .try_publish(topic, QoS::AtLeastOnce, retain, payload.clone());
                needs_send = false;
            }
            let lost_connection = outage_since.is_some();
            match self.poll(&mut outage_since).await? {
                Some(Packet::PubAck(ack)) => {
                    return Ok(match ack.reason {
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                        reason => Err(Rejected(format!("{reason:?}"))),
                    });
                }
                Some(Packet::ConnAck(connack)) => {
                    // A dropped connection moved our message into the client's pending list,
                    // and a fresh session forgets that list: send it again ourselves.
                    needs_send = lost_connection && !connack.session_present;
                }
                _ => {}
            }
        }
    }

    /// Subscribes and returns once the broker confirmed.
    pub async fn subscribe(&mut self, filters: &[String]) -> Result<(), ClientError> {
        self.filters = filters
            .iter()
            .map(|f| Filter::new(f.clone(), QoS::AtLeastOnce))
            .collect();
        let _ = self.client.try_subscribe_many(self.filters.clone());
        let mut outage_since = None;
        loop {
            if let Some(Packet::SubAck(_)) = self.poll(&mut outage_since).await? {
                return Ok(());
            }
        }
    }

    /// The next message on a subscribed topic.
    pub async fn next_publish(&mut self) -> Result<Publish, ClientError> {
        let mut outage_since = None;
        loop {
            match self.poll(&mut outage_since).await? {
                Some(Packet::Publish(publish)) => return Ok(publish),
                Some(Packet::ConnAck(_)) => {
                    let _ = self.client.try_subscribe_many(self.filters.clone());
                }
                _ => {}
            }
        }
    }

    pub async fn disconnect(mut self) {
        let _ = self.client.try_disconnect();
        let drain = async {
            while let Ok(event) = self.eventloop.poll().await {
                if matches!(event, MqttEvent::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
}

/// The cause of a connection error without rumqttc's wrapping ("I/O: ...").
fn connect_detail(e: &rumqttc::v5::ConnectionError) -> String {
    match e {
        rumqttc::v5::ConnectionError::Io(io) => io.to_string(),
        rumqttc::v5::ConnectionError::MqttState(state) => state.to_string(),
        other => other.to_string(),
    }
}
