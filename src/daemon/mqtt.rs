//! The daemon's side of MQTT, by `[mqtt] mode`: the embedded broker with the daemon in process
//! on it (and bot presence), or a client of an external broker, or nothing. Either way one
//! task takes the hub's `mqtt` output to the broker and bots' publishes back into the hub.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::hub::{BoundedQueue, Delivery, Publisher};
use crate::mqtt::access::Access;
use crate::mqtt::authority::{self, Authority};
use crate::mqtt::broker::{self, EmbeddedBroker};
use crate::mqtt::ws_front::OriginPolicy;
use crate::mqtt::{Endpoint, MqttMode, bridge, inproc};
use crate::state::Runtime;
use crate::supervisor::{Policy, Supervised, Supervisor};
use crate::web;

/// What the MQTT side takes from the rest of the start-up.
pub(super) struct Wiring<'a> {
    pub config: &'a Config,
    pub state_dir: &'a Path,
    pub supervisor: &'a Supervisor,
    pub publisher: &'a Publisher,
    pub channel: &'a str,
    /// The topics the daemon reads from the bus (its root and what the processors need).
    pub filters: Vec<String>,
    /// The hub's `mqtt` output; `None` with `mode = "off"`.
    pub queue: Option<Arc<BoundedQueue<Delivery>>>,
    /// The last `seq` the broker acknowledged before this run.
    pub acked_seq: u64,
    /// The daemon's retained system state, `online` at connect and `offline` as an external
    /// broker's will.
    pub online: Bytes,
    pub offline: Bytes,
}

/// The running MQTT side, taken down in two steps by the daemon's shutdown order.
pub(super) struct Mqtt {
    mode: MqttMode,
    broker: Option<EmbeddedBroker>,
    presence: Option<(CancellationToken, Supervised)>,
    bridge: Option<Supervised>,
    bridge_status: Arc<bridge::BridgeStatus>,
    authority: Arc<Authority>,
    origins: Arc<OriginPolicy>,
}

impl Mqtt {
    /// Starts the broker (embedded mode) and the bridge task; records the addresses in `runtime`.
    pub async fn start(
        wiring: Wiring<'_>,
        access: Access,
        runtime: &mut Runtime,
    ) -> anyhow::Result<Self> {
        let Wiring {
            config,
            state_dir,
            supervisor,
            publisher,
            channel,
            filters,
            queue,
            acked_seq,
            online,
            offline,
        } = wiring;
        let authority = access.authority();
        let mut mqtt = Self {
            mode: config.mqtt.mode,
            broker: None,
            presence: None,
            bridge: None,
            bridge_status: Arc::new(bridge::BridgeStatus::default()),
            authority: authority.clone(),
            origins: OriginPolicy::new(&config.mqtt.ws_origins),
        };
        match (config.mqtt.mode, queue) {
            (MqttMode::Embedded, Some(queue)) => {
                let local_login = access.local_login().clone();
                // The daemon is in process on its own broker (mqtt/inproc.rs), not a client of it.
                let inbound =
                    inproc::Inbound::new(publisher.clone(), filters, mqtt.bridge_status.clone());
                let broker = broker::start(
                    config.mqtt_listen,
                    config.mqtt_ws_listen,
                    access,
                    mqtt.origins.clone(),
                    Some(Arc::new(inbound)),
                )
                .await?;
                runtime.mqtt = Some(broker.tcp);
                runtime.mqtt_ws = Some(broker.ws);
                runtime.mqtt_ws_backend = Some(broker.ws_backend);
                // For `ongwatch trigger`, `tail` and `replay`, which log in as the daemon.
                local_login.write(state_dir).with_context(|| {
                    format!(
                        "cannot write the local MQTT login to {}",
                        state_dir.display()
                    )
                })?;
                let stop = CancellationToken::new();
                let (root, channel, publisher, task_stop) = (
                    config.topic_root.clone(),
                    channel.to_owned(),
                    publisher.clone(),
                    stop.clone(),
                );
                let presence = supervisor.spawn("presence", Policy::Restart, move || {
                    authority::publish_presence(
                        authority.clone(),
                        publisher.clone(),
                        root.clone(),
                        channel.clone(),
                        task_stop.clone(),
                    )
                });
                mqtt.presence = Some((stop, presence));
                mqtt.bridge = Some(supervisor.spawn_once(
                    "mqtt_bridge",
                    inproc::run(
                        broker.link(),
                        config.mqtt.client_id.clone(),
                        state_dir.to_owned(),
                        acked_seq,
                        queue,
                        mqtt.bridge_status.clone(),
                    ),
                ));
                mqtt.broker = Some(broker);
            }
            (MqttMode::External, Some(queue)) => {
                let endpoint = Endpoint::from_url(&config.mqtt_url)?;
                runtime.mqtt_url = Some(endpoint.to_string());
                let options = bridge::BridgeOptions {
                    endpoint,
                    client_id: config.mqtt.client_id.clone(),
                    subscribe: filters,
                    system_topic: config.topic_root.topic(channel, "system/ongwatch"),
                    online,
                    offline,
                    // The embedded broker refuses bots there itself (and `ongwatch replay` may
                    // publish there as the daemon's own login); an external broker is not ours
                    // to trust.
                    refuse_reserved: Some(mqtt.authority.rules().clone()),
                    state_dir: state_dir.to_owned(),
                    acked_seq,
                };
                mqtt.bridge = Some(supervisor.spawn_once(
                    "mqtt_bridge",
                    bridge::run(
                        options,
                        queue,
                        publisher.clone(),
                        mqtt.bridge_status.clone(),
                    ),
                ));
            }
            // `mode = "off"`: the hub has no `mqtt` output.
            _ => {}
        }
        Ok(mqtt)
    }

    /// What `/api/status` and the dashboard show of MQTT.
    pub fn info(&self, runtime: &Runtime) -> web::MqttInfo {
        web::MqttInfo {
            mode: match self.mode {
                MqttMode::Embedded => "embedded",
                MqttMode::External => "external",
                MqttMode::Off => "off",
            },
            tcp: runtime.mqtt,
            ws: runtime.mqtt_ws,
            url: runtime.mqtt_url.clone(),
            bridge: self.bridge.is_some().then(|| self.bridge_status.clone()),
            authority: self.broker.is_some().then(|| self.authority.clone()),
        }
    }

    /// The dashboard's port, whose pages may use MQTT over WebSocket.
    pub fn allow_dashboard(&self, port: u16) {
        self.origins.http_port.store(port, Ordering::Relaxed);
    }

    /// Ends bot presence, which holds a publisher: before the hub drains.
    pub async fn stop_presence(&mut self) {
        if let Some((stop, task)) = self.presence.take() {
            stop.cancel();
            task.wait().await;
        }
    }

    /// Waits for the bridge to publish what is left in its queue, once the hub closed it.
    pub async fn finish_bridge(&mut self) {
        if let Some(task) = self.bridge.take() {
            task.wait().await;
        }
    }
}
