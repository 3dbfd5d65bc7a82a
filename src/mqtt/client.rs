//! A short-lived MQTT client for the CLI (`trigger`, `replay`, `tail`).
//!
//! Publishing is one message at a time, each confirmed by its PUBACK before the next; if the
//! broker goes away in between, the client reconnects and sends the unconfirmed message again.
//! A repeat is harmless: every command and replayed event carries an id the hub deduplicates.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish};
use rumqttc::v5::{AsyncClient, Event as MqttEvent, EventLoop};
use thiserror::Error;

use super::Endpoint;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "cannot reach the MQTT broker at {endpoint} ({detail}); is `ongwatch run` running with the same --config and --state-dir?"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error("the MQTT broker at {endpoint} refused the connection: {detail}")]
    Refused { endpoint: String, detail: String },
}

pub struct CliClient {
    client: AsyncClient,
    eventloop: EventLoop,
    endpoint: Endpoint,
    /// How long to keep trying to reach a broker that is down.
    patience: Duration,
    connected_once: bool,
    /// Subscribed filters, renewed after a reconnect (the session is not kept).
    filters: Vec<Filter>,
}

impl CliClient {
    pub fn new(endpoint: Endpoint, client_prefix: &str, patience: Duration) -> Self {
        let id = format!("{client_prefix}-{}", uuid::Uuid::new_v4().simple());
        let mut options = endpoint.options(&id, None);
        options.set_clean_start(true);
        let (client, eventloop) = AsyncClient::new(options, 16);
        Self {
            client,
            eventloop,
            endpoint,
            patience,
            connected_once: false,
            filters: Vec::new(),
        }
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
                        detail: e.to_string(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(None)
            }
        }
    }

    /// Publishes at QoS 1 and waits for the broker's acknowledgement.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: Bytes,
        retain: bool,
    ) -> Result<(), ClientError> {
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
            let lost_connection = self.connected_once && outage_since.is_some();
            match self.poll(&mut outage_since).await? {
                Some(Packet::PubAck(_)) => return Ok(()),
                Some(Packet::ConnAck(connack)) => {
                    // A dropped connection moved our message into the client's pending list,
                    // and a fresh session forgets that list: send it again ourselves.
                    needs_send = lost_connection && !connack.session_present;
                    self.connected_once = true;
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
            match self.poll(&mut outage_since).await? {
                Some(Packet::SubAck(_)) => return Ok(()),
                Some(Packet::ConnAck(_)) => self.connected_once = true,
                _ => {}
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
