//! `ongwatch run`: wires sources, the hub and the outputs together, and takes them down in
//! an order that loses nothing.
//!
//! Start-up: state dir → event log (recovers `seq` and recent ids) → hub and its outputs, with
//! what the broker had not acknowledged before a crash queued for MQTT again → MQTT (embedded
//! broker or external, `mqtt.rs`) → chat, commands, processors → a fresh state per configured
//! provider and the sources (`sources.rs`) → web server → online state → `runtime.json` →
//! "ready".
//! Shutdown (SIGINT/SIGTERM, or a failed `stop_daemon` task): sources stop → bot presence stops
//! → cross-checked reports still held go out → the offline state is queued → the hub drains its
//! ingress and closes the output queues → each output empties its queue (the log fsyncs, the
//! MQTT bridge publishes what is left and disconnects) → web server → commands → the broker
//! stops.

mod mqtt;
mod sources;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::chat;
use crate::config::Config;
use crate::credentials::Credentials;
use crate::event::{DaemonState, Event, EventKind, SystemState, format_time, now};
use crate::hub::wal::{self as eventlog, EventLog};
use crate::hub::{Hub, OverflowPolicy};
use crate::mqtt::access::Access;
use crate::mqtt::{MqttMode, acked};
use crate::processors;
use crate::processors::commands;
use crate::sinks;
use crate::sources::{obs, trigger, twitch};
use crate::state::{self, Runtime};
use crate::supervisor::{Policy, Supervisor};
use crate::web;
use mqtt::{Mqtt, Wiring};
use sources::{Sources, twitch_settings};

use crate::VERSION;

/// Capacity of the event log's queue (`block` policy: the hub waits rather than drop).
const LOG_QUEUE: usize = 65_536;
/// Capacity of the command processor's queue (`drop_newest`, counted and logged).
const COMMAND_QUEUE: usize = 10_000;
/// Capacity of the web fan-out's queue (`drop_oldest`: WebSocket clients never stall the bus).
const WEB_QUEUE: usize = 65_536;
/// How long shutdown waits for the command processor to finish what it is doing.
const COMMANDS_GRACE: Duration = Duration::from_secs(5);
/// How long the shutdown after a failed `stop_daemon` task may take before the process exits.
const FATAL_GRACE: Duration = Duration::from_secs(10);

pub struct Options {
    pub config: Config,
    pub credentials: Credentials,
    /// Checked with config and credentials before start, so a problem exits 2.
    pub mqtt_access: Access,
    pub state_dir: PathBuf,
    pub demo: bool,
}

/// Runs until `shutdown` is cancelled, then shuts down cleanly.
pub async fn run(options: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Options {
        config,
        credentials,
        mqtt_access,
        state_dir,
        demo,
    } = options;
    let started = now();
    let started_at = format_time(&started);
    // A fatal task failure stops the daemon as a signal would; ends after this are expected.
    let stopping = shutdown.child_token();
    let supervisor = Supervisor::new(stopping.clone());
    state::ensure_dir(&state_dir)
        .with_context(|| format!("cannot create the state dir {}", state_dir.display()))?;

    let log_path = state_dir.join(&config.log.path);
    let dedup_window = Duration::from_secs(config.bus.dedup_window_seconds);
    let (event_log, recovered) = EventLog::open(&log_path, dedup_window)
        .with_context(|| format!("cannot open the event log {}", log_path.display()))?;
    let mut hub = Hub::new(
        config.topic_root.clone(),
        config.bus.include_raw,
        dedup_window,
        recovered.last_seq,
    );
    hub.remember_ids(recovered.recent_ids);

    // Written before any other output sees a record (see `Hub::add_write_ahead_output`).
    let log_queue = hub.add_write_ahead_output("event_log", LOG_QUEUE);
    let command_queue = hub.add_output("commands", COMMAND_QUEUE, OverflowPolicy::DropNewest, true);
    // The embedded broker takes records in process and never waits for a subscriber (each
    // session queues on its own), so its output can block the hub like the event log: a burst
    // faster than the router then slows the sources instead of dropping the oldest events. An
    // external broker can be away for minutes; there the oldest give way.
    let mqtt_policy = match config.mqtt.mode {
        MqttMode::Embedded => OverflowPolicy::Block,
        _ => OverflowPolicy::DropOldest,
    };
    let mqtt_queue = (config.mqtt.mode != MqttMode::Off)
        .then(|| hub.add_output("mqtt", config.bus.mqtt_queue, mqtt_policy, false));
    let web_queue = hub.add_output("web", WEB_QUEUE, OverflowPolicy::DropOldest, true);
    let processor_outputs =
        processors::Outputs::register(&mut hub, config.processors(), &config.topic_root);
    let output_context = sinks::Context {
        state_dir: state_dir.clone(),
    };
    let history = sinks::Outputs::history(&config.outputs, &output_context);
    let outputs = sinks::Outputs::register(&mut hub, &config.outputs, output_context);
    let output_status = outputs.statuses();
    let monitor = processors::monitor::Settings::from_config(
        &config.monitor,
        &config.twitch,
        config.twitch_app(&credentials),
        config.environment == "localdev",
        &state_dir,
    )
    .map(|settings| {
        let queue = hub.add_output(
            "monitor",
            processors::QUEUE,
            OverflowPolicy::DropOldest,
            true,
        );
        (queue, settings)
    });
    // One token holder per Twitch account, shared by chat and the EventSub source.
    let twitch_tokens = twitch::auth::TokenHolders::from_config(
        &config.twitch,
        config.twitch_app(&credentials),
        &state_dir,
    );
    let output_stats = hub.output_stats();
    let hub_counters = hub.counters.clone();
    // Only StreamElements and Streamlabs report a Twitch event a second time; without them the
    // check would keep every Twitch event for its window for nothing (issue 18: 220 MiB at
    // 15,000 cheers/s).
    let second_reporter = sources::second_reporter(&config, &credentials);
    let twitch_source = twitch_settings(&config, &credentials, &state_dir, &twitch_tokens)
        .map_err(|e| anyhow::anyhow!("twitch.subscriptions: {e}"))?;
    let crosscheck = (config.dedup.enabled && second_reporter)
        .then(|| hub.enable_crosscheck(&config.dedup, twitch_source.is_some()));
    let publisher = hub.publisher();
    let crosscheck_stop = CancellationToken::new();
    let crosscheck_task = crosscheck.map(|check| {
        let (publisher, stop) = (publisher.clone(), crosscheck_stop.clone());
        supervisor.spawn("crosscheck", Policy::Restart, move || {
            crate::hub::crosscheck::release_held(check.clone(), publisher.clone(), stop.clone())
        })
    });
    // What the log has and the broker had not acknowledged when the last run ended (a crash)
    // goes out again first, as it was: not logged or numbered again. Without a watermark
    // (first start) there is nothing to go by, and nothing is published again.
    let acked_seq =
        acked::load(&state_dir).map_or(recovered.last_seq, |seq| seq.min(recovered.last_seq));
    if let Some(queue) = &mqtt_queue {
        match eventlog::unacked_after(&log_path, acked_seq, config.bus.mqtt_queue) {
            Ok(records) => {
                if !records.is_empty() {
                    tracing::info!(
                        events = records.len(),
                        after_seq = acked_seq,
                        "publishing again what the MQTT broker had not acknowledged before the restart"
                    );
                }
                for record in records {
                    queue.push(record).await;
                }
            }
            Err(e) => {
                tracing::error!(path = %log_path.display(), error = %e, "cannot read the event log back; events the MQTT broker had not acknowledged before the restart are not published again");
            }
        }
    } else {
        acked::forget(&state_dir);
    }
    let hub_stop = CancellationToken::new();
    let hub_task = supervisor.spawn_once("hub", hub.run(hub_stop.clone()));
    let log_task = supervisor.spawn_once("event_log", async move {
        if let Err(e) = event_log.run(log_queue).await {
            panic!("the event log failed: {e}");
        }
    });
    let outputs = outputs.spawn();

    let channel = config.default_channel();
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
    let payload_of = |event: &Event| Bytes::from(serde_json::to_vec(event).unwrap_or_default());

    let mut runtime = Runtime {
        pid: std::process::id(),
        version: VERSION.into(),
        started_at: started_at.clone(),
        topic_root: config.topic_root.template().to_owned(),
        mqtt: None,
        mqtt_ws: None,
        mqtt_ws_backend: None,
        mqtt_url: None,
        http: None,
    };
    let wiring = Wiring {
        config: &config,
        state_dir: &state_dir,
        supervisor: &supervisor,
        publisher: &publisher,
        channel: &channel,
        filters: bus_filters(&config, demo),
        queue: mqtt_queue,
        acked_seq,
        online: payload_of(&system_event(DaemonState::Online)),
        offline: payload_of(&system_event(DaemonState::Offline)),
    };
    let mut mqtt = Mqtt::start(wiring, mqtt_access, &mut runtime).await?;

    let trigger_context = trigger::Context {
        channel: channel.clone(),
        broadcaster_id: "0".into(),
    };
    let mut sources = Sources::new();
    let (chat, chat_handles) = chat::Chat::start(
        chat::ChatSettings::from_config(
            &config.chat,
            &config.twitch,
            &twitch_tokens,
            config.bus.include_raw,
            channel.clone(),
        ),
        publisher.clone(),
        sources.token(),
    );
    sources.watch(
        ["chat_irc", "chat_dispatch", "chat_state"]
            .into_iter()
            .zip(chat_handles)
            .map(|(name, handle)| supervisor.watch(name, handle)),
    );
    let obs_settings =
        obs::Settings::from_config(&config.obs, &credentials, &config.environment, &channel);
    let (obs_tx, obs_rx) = obs::Commands::channel();
    let obs_commands = obs::Commands::new(
        obs_settings.is_some().then_some(obs_tx),
        publisher.clone(),
        &config.topic_root,
    );
    let commands_task = {
        let (publisher, root, context, chat) = (
            publisher.clone(),
            config.topic_root.clone(),
            trigger_context.clone(),
            chat.clone(),
        );
        supervisor.spawn("commands", Policy::Restart, move || {
            commands::run(
                command_queue.clone(),
                publisher.clone(),
                root.clone(),
                context.clone(),
                chat.clone(),
                obs_commands.clone(),
            )
        })
    };
    let mut processor_tasks = processor_outputs.spawn(
        &supervisor,
        &publisher,
        config.processors(),
        &channel,
        &state_dir,
    );
    // Polling stops with the sources; the task ends when the hub closes its queue.
    processor_tasks.extend(monitor.map(|(queue, settings)| {
        let (publisher, stop) = (publisher.clone(), sources.token());
        supervisor.spawn("monitor", Policy::Restart, move || {
            processors::monitor::run(
                queue.clone(),
                publisher.clone(),
                settings.clone(),
                stop.clone(),
            )
        })
    }));
    if demo {
        let context = trigger::Context {
            channel: config.demo.channel.clone(),
            ..trigger_context.clone()
        };
        sources.start_demo(&supervisor, &publisher, context, config.demo.rate);
    }
    let logins = Arc::new(twitch::auth::logins::Logins::from_config(
        config.twitch_env(),
        &credentials,
        &state_dir,
    ));
    let twitch_source = twitch_source.map(|settings| twitch::source::Settings {
        relogin: Some(logins.stored()),
        ..settings
    });
    let twitch_runs = sources
        .start_twitch(&supervisor, &publisher, &channel, twitch_source)
        .await;
    sources
        .start_sockets(&supervisor, &config, &credentials, &channel, &publisher)
        .await;
    sources.start_obs(&supervisor, &publisher, obs_settings, obs_rx);

    let web_server = web::start(
        web::WebOptions {
            listen: config.http_listen,
            token: config.http.token.clone(),
            trusted: config.http.trusted.clone(),
            client_queue: config.http.client_queue,
            root: config.topic_root.clone(),
            default_channel: channel.clone(),
            log_path: log_path.clone(),
            last_seq: recovered.last_seq,
            started,
            publisher: publisher.clone(),
            chat: chat.clone(),
            outputs: output_stats,
            sinks: output_status,
            history,
            hub: hub_counters,
            mqtt: mqtt.info(&runtime),
            logins,
            tasks: supervisor.clone(),
        },
        web_queue,
    )
    .await?;
    runtime.http = Some(web_server.addr);
    mqtt.allow_dashboard(web_server.addr.port());

    publisher
        .event(system_event(DaemonState::Online))
        .await
        .ok();
    if !twitch_runs {
        twitch::source::disabled(&publisher, &channel, &config.environment).await;
    }
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

    let fatal = supervisor.fatal();
    tokio::select! {
        () = shutdown.cancelled() => tracing::info!("shutting down: draining queues"),
        () = fatal.cancelled() => {
            tracing::error!("shutting down after a failure: draining queues");
            stopping.cancel();
            // What the failed task held can keep the others waiting (a dead hub never closes
            // their queues), so the process ends within FATAL_GRACE whatever happens.
            let reason = supervisor.fatal_reason().unwrap_or_default();
            tokio::spawn(async move {
                tokio::time::sleep(FATAL_GRACE).await;
                tracing::error!(
                    "stopped because {reason}; the shutdown did not finish within {} s",
                    FATAL_GRACE.as_secs()
                );
                std::process::exit(1);
            });
        }
    }
    sources.stop().await;
    mqtt.stop_presence().await;
    // The sources are done: reports still waiting for an EventSub twin go out now.
    crosscheck_stop.cancel();
    if let Some(task) = crosscheck_task {
        task.wait().await;
    }
    publisher
        .event(system_event(DaemonState::Offline))
        .await
        .ok();
    drop(publisher);
    hub_stop.cancel();
    hub_task.wait().await;
    // Their queues are closed now; the session totals get saved.
    for task in processor_tasks {
        task.wait().await;
    }
    log_task.wait().await;
    outputs.finish().await;
    mqtt.finish_bridge().await;
    web_server.stop().await;
    // Its queue is closed; a chat send still waiting for its result is not waited for.
    if tokio::time::timeout(COMMANDS_GRACE, commands_task.wait())
        .await
        .is_err()
    {
        tracing::warn!("the command processor was still busy at shutdown; left unfinished");
    }
    // The embedded broker stops last.
    drop(mqtt);
    Runtime::remove(&state_dir);
    tracing::info!("stopped");
    match supervisor.fatal_reason() {
        Some(reason) => anyhow::bail!("stopped because {reason}"),
        None => Ok(()),
    }
}

/// What this instance listens to on the bus: its root, and what the processors need outside it.
fn bus_filters(config: &Config, demo: bool) -> Vec<String> {
    let mut filters = root_filters(config, demo);
    filters.extend(processors::subscriptions(config.processors(), &filters));
    filters
}

/// The topic root this instance serves. With a `{channel}` root, several instances can
/// share one broker, each serving its own channels (see docs/SCALING.md).
fn root_filters(config: &Config, demo: bool) -> Vec<String> {
    if !config.topic_root.is_per_channel() {
        return vec![config.topic_root.filter_all()];
    }
    let mut channels = vec![config.default_channel()];
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
