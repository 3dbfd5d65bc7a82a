//! `ongwatch run`: wires sources, the hub and the outputs together, and takes them down in
//! an order that loses nothing.
//!
//! Start-up: state dir → event log (recovers `seq` and recent ids) → hub → MQTT (embedded
//! broker or external) → outputs → sources → `runtime.json` → "ready".
//! Shutdown (SIGINT/SIGTERM): sources stop → the offline state is queued → the hub drains its
//! ingress and closes the output queues → each output empties its queue (the log fsyncs, the
//! MQTT bridge publishes what is left and disconnects) → the broker stops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::config::{Config, Credentials, MqttMode};
use crate::event::{DaemonState, Event, EventKind, SystemState, format_time, now};
use crate::hub::{Hub, OverflowPolicy};
use crate::mqtt::{Endpoint, bridge, broker};
use crate::sinks::eventlog::EventLog;
use crate::sources::{demo, trigger};
use crate::state::{self, Runtime};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Capacity of the event log's queue (`block` policy: the hub waits rather than drop).
const LOG_QUEUE: usize = 65_536;
/// Capacity of the command processor's queue (`drop_newest`, counted and logged).
const COMMAND_QUEUE: usize = 10_000;

pub struct Options {
    pub config: Config,
    pub credentials: Credentials,
    pub state_dir: PathBuf,
    pub demo: bool,
}

/// Runs until `shutdown` is cancelled, then shuts down cleanly.
pub async fn run(options: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Options {
        config,
        credentials: _,
        state_dir,
        demo,
    } = options;
    let started = now();
    let started_at = format_time(&started);
    state::ensure_dir(&state_dir)
        .with_context(|| format!("cannot create the state dir {}", state_dir.display()))?;

    let log_path = state_dir.join(&config.log.path);
    let (event_log, recovered) = EventLog::open(&log_path)
        .with_context(|| format!("cannot open the event log {}", log_path.display()))?;
    let mut hub = Hub::new(
        config.topic_root.clone(),
        config.bus.include_raw,
        Duration::from_secs(config.bus.dedup_window_seconds),
        recovered.last_seq,
    );
    hub.remember_ids(recovered.recent_ids);

    let log_queue = hub.add_output("event_log", LOG_QUEUE, OverflowPolicy::Block, true);
    let command_queue = hub.add_output("commands", COMMAND_QUEUE, OverflowPolicy::DropNewest, true);
    let mqtt_queue = (config.mqtt.mode != MqttMode::Off).then(|| {
        hub.add_output(
            "mqtt",
            config.bus.mqtt_queue,
            OverflowPolicy::DropOldest,
            false,
        )
    });
    let publisher = hub.publisher();
    let hub_stop = CancellationToken::new();
    let hub_task = tokio::spawn(hub.run(hub_stop.clone()));
    let log_task = tokio::spawn(event_log.run(log_queue));

    let channel = default_channel(&config);
    let system_event = |state: DaemonState| {
        Event::new(
            format!("ongwatch:system:{}:{state:?}", started.timestamp_millis()),
            "ongwatch",
            channel.clone(),
            EventKind::System(SystemState {
                state,
                version: VERSION.into(),
                started_at: started_at.clone(),
            }),
        )
    };
    let system_topic = config.topic_root.topic(&channel, "system/ongwatch");
    let payload_of = |event: &Event| Bytes::from(serde_json::to_vec(event).unwrap_or_default());

    let mut runtime = Runtime {
        pid: std::process::id(),
        version: VERSION.into(),
        started_at: started_at.clone(),
        topic_root: config.topic_root.template().to_owned(),
        mqtt: None,
        mqtt_ws: None,
        mqtt_url: None,
        http: None,
    };
    let mut embedded = None;
    let endpoint = match config.mqtt.mode {
        MqttMode::Off => None,
        MqttMode::Embedded => {
            let broker = broker::start(config.mqtt_listen, config.mqtt_ws_listen).await?;
            runtime.mqtt = Some(broker.tcp);
            runtime.mqtt_ws = Some(broker.ws);
            let endpoint = Endpoint::local(broker.tcp);
            embedded = Some(broker);
            Some(endpoint)
        }
        MqttMode::External => {
            let endpoint = Endpoint::from_url(&config.mqtt_url)?;
            runtime.mqtt_url = Some(endpoint.to_string());
            Some(endpoint)
        }
    };
    let bridge_task = match (endpoint, mqtt_queue) {
        (Some(endpoint), Some(queue)) => {
            let options = bridge::BridgeOptions {
                endpoint,
                client_id: config.mqtt.client_id.clone(),
                subscribe: bus_filters(&config, demo),
                system_topic: system_topic.clone(),
                online: payload_of(&system_event(DaemonState::Online)),
                offline: payload_of(&system_event(DaemonState::Offline)),
            };
            let status = Arc::new(bridge::BridgeStatus::default());
            Some(tokio::spawn(bridge::run(
                options,
                queue,
                publisher.clone(),
                status,
            )))
        }
        _ => None,
    };

    let trigger_context = trigger::Context {
        channel: channel.clone(),
        broadcaster_id: "0".into(),
    };
    let sources = CancellationToken::new();
    let commands_task = tokio::spawn(commands::run(
        command_queue,
        publisher.clone(),
        config.topic_root.clone(),
        trigger_context.clone(),
    ));
    let demo_task = demo.then(|| {
        tokio::spawn(demo::run(
            publisher.clone(),
            trigger::Context {
                channel: config.demo.channel.clone(),
                ..trigger_context.clone()
            },
            config.demo.rate,
            sources.clone(),
        ))
    });

    publisher
        .event(system_event(DaemonState::Online))
        .await
        .ok();
    runtime
        .write(&state_dir)
        .with_context(|| format!("cannot write {}", state_dir.join(Runtime::FILE).display()))?;
    tracing::info!(
        mqtt = ?runtime.mqtt,
        mqtt_ws = ?runtime.mqtt_ws,
        mqtt_url = ?runtime.mqtt_url,
        log = %log_path.display(),
        seq = recovered.last_seq,
        demo,
        "ready in {} ms",
        (now() - started).num_milliseconds()
    );

    shutdown.cancelled().await;
    tracing::info!("shutting down: draining queues");
    sources.cancel();
    if let Some(task) = demo_task {
        let _ = task.await;
    }
    publisher
        .event(system_event(DaemonState::Offline))
        .await
        .ok();
    drop(publisher);
    hub_stop.cancel();
    let _ = hub_task.await;
    match log_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "the event log failed"),
        Err(e) => tracing::error!(error = %e, "the event log task failed"),
    }
    if let Some(task) = bridge_task {
        let _ = task.await;
    }
    commands_task.abort();
    drop(embedded);
    Runtime::remove(&state_dir);
    tracing::info!("stopped");
    Ok(())
}

/// What this instance listens to on the bus. With a `{channel}` root, several instances can
/// share one broker, each serving its own channels (see docs/SCALING.md).
fn bus_filters(config: &Config, demo: bool) -> Vec<String> {
    if !config.topic_root.is_per_channel() {
        return vec![config.topic_root.filter_all()];
    }
    let mut channels = vec![default_channel(config)];
    channels.extend(
        config
            .chat
            .channels
            .iter()
            .map(|c| c.trim_start_matches('#').to_lowercase()),
    );
    if demo {
        channels.push(config.demo.channel.to_lowercase());
    }
    channels.sort();
    channels.dedup();
    channels
        .iter()
        .map(|channel| config.topic_root.topic(channel, "#"))
        .collect()
}

/// The channel events without one of their own (system state, triggers) belong to.
pub fn default_channel(config: &Config) -> String {
    if !config.twitch.channel.is_empty() {
        config.twitch.channel.to_lowercase()
    } else {
        "ongwatch".into()
    }
}
