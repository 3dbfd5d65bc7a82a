//! OBS Studio over obs-websocket 5 (docs/OBS.md).
//!
//! One connection, kept up with backoff: Hello → Identify (SHA-256 challenge auth) →
//! Identified, then one RequestBatch reads OBS's whole state, so after every (re)connect the
//! retained `R/obs/scene`, `R/obs/outputs` and `R/obs/stats` say what OBS says now. Events
//! keep them current; every other event goes to `R/obs/events/<eventType>`. `GetStats` runs
//! every 5 s and doubles as the liveness check. Commands (`R/command/obs/scene`,
//! `R/command/obs/request`) arrive from the command processor through [`Commands`] and are
//! answered on `<command topic>/result` with OBS's own error comment.

pub mod config;
pub mod protocol;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tokio_util::sync::CancellationToken;

pub use config::ObsConfig;

use crate::credentials::Credentials;
use crate::event::{ConnectionState, Event, EventKind, ObsEvent, ObsOutputs, ObsScene, TopicRoot};
use crate::hub::{BusClosed, Message, Origin, Publisher};
use crate::sources::socketio::provider::{Timing, host_of};

use protocol::Incoming;

pub const PROVIDER: &str = "obs";

/// How often `GetStats` runs (the contract's 5 s).
pub const STATS_INTERVAL: Duration = Duration::from_secs(5);

/// After this long without a frame from OBS (stats answer every 5 s) the link counts as dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(20);

/// How long a clean close may take at shutdown before the socket is just dropped.
const CLOSE_LIMIT: Duration = Duration::from_secs(2);

/// Commands waiting for the connection task; more are refused with an error result.
const COMMAND_QUEUE: usize = 64;

/// The request id of the state batch sent after every Identified.
const STATE_BATCH: &str = "ongwatch-state";

#[derive(Clone)]
pub struct Settings {
    pub url: String,
    /// `[obs.<environment>] password`; never logged.
    pub password: Option<String>,
    pub environment: String,
    pub channel: String,
    pub timing: Timing,
}

impl Settings {
    /// `None` when `[obs] url` is not set.
    pub fn from_config(
        config: &ObsConfig,
        credentials: &Credentials,
        environment: &str,
        channel: &str,
    ) -> Option<Self> {
        if config.url.is_empty() {
            return None;
        }
        Some(Self {
            url: config.url.clone(),
            password: credentials
                .get(PROVIDER, environment)
                .and_then(|c| c.password.clone())
                .filter(|p| !p.is_empty()),
            environment: environment.to_owned(),
            channel: channel.to_owned(),
            timing: Timing {
                // OBS runs next to ongwatch: a restart of OBS is seconds, not minutes.
                max_backoff: Duration::from_secs(30),
                ..Timing::default()
            },
        })
    }
}

/// The line `ongwatch check` prints for `[obs]`.
pub fn check_line(
    config: &ObsConfig,
    credentials: &Credentials,
    environment: &str,
) -> Option<String> {
    let settings = Settings::from_config(config, credentials, environment, "")?;
    Some(match settings.password {
        Some(_) => format!(
            "ok: obs {} with the password of [obs.{}]",
            host_of(&settings.url),
            settings.environment
        ),
        None => format!(
            "note: obs {} without a password; if OBS has authentication on, add [obs.{}] password = \"...\" to credentials.toml",
            host_of(&settings.url),
            settings.environment
        ),
    })
}

/// One OBS command from the bus.
#[derive(Debug)]
pub struct Command {
    action: Action,
    /// The command's `id`, echoed in the result so a bot can match them.
    id: Option<Value>,
    result_topic: String,
}

#[derive(Debug)]
enum Action {
    Scene(String),
    Request {
        request_type: String,
        request_data: Option<Value>,
    },
}

#[derive(Deserialize)]
struct SceneCommand {
    scene: String,
    id: Option<Value>,
}

#[derive(Deserialize)]
struct RequestCommand {
    request_type: String,
    request_data: Option<Value>,
    id: Option<Value>,
}

impl Command {
    fn request(&self) -> (&str, Option<Value>) {
        match &self.action {
            Action::Scene(scene) => ("SetCurrentProgramScene", Some(json!({"sceneName": scene}))),
            Action::Request {
                request_type,
                request_data,
            } => (request_type, request_data.clone()),
        }
    }

    /// The result payload: `{ok, error?, code?, ...}` plus what identifies the command.
    fn result(&self, error: Option<String>, code: Option<u64>, data: Option<Value>) -> Value {
        let mut result = json!({"ok": error.is_none()});
        if let Some(error) = error {
            result["error"] = Value::String(error);
        }
        if let Some(code) = code {
            result["code"] = json!(code);
        }
        match &self.action {
            Action::Scene(scene) => result["scene"] = Value::String(scene.clone()),
            Action::Request { request_type, .. } => {
                result["request_type"] = Value::String(request_type.clone());
                if let Some(data) = data {
                    result["data"] = data;
                }
            }
        }
        if let Some(id) = &self.id {
            result["id"] = id.clone();
        }
        result
    }
}

async fn publish_result(
    publisher: &Publisher,
    topic: &str,
    result: &Value,
) -> Result<(), BusClosed> {
    // No hub id: the result may quote the command's id, which the hub already saw.
    publisher
        .message(Message {
            topic: topic.to_owned(),
            payload: Bytes::from(result.to_string()),
            retain: false,
            origin: Origin::Daemon,
            id: None,
        })
        .await
}

/// The command processor's side: parses OBS commands and hands them to the connection task,
/// or answers at once when there is none.
#[derive(Clone)]
pub struct Commands {
    tx: Option<mpsc::Sender<Command>>,
    publisher: Publisher,
    scene_filter: String,
    request_filter: String,
}

impl Commands {
    /// With `tx` `None` (no `[obs] url`), every command is answered with how to enable OBS.
    pub fn new(tx: Option<mpsc::Sender<Command>>, publisher: Publisher, root: &TopicRoot) -> Self {
        Self {
            tx,
            publisher,
            scene_filter: root.filter_suffix("command/obs/scene"),
            request_filter: root.filter_suffix("command/obs/request"),
        }
    }

    /// The queue the connection task reads.
    pub fn channel() -> (mpsc::Sender<Command>, mpsc::Receiver<Command>) {
        mpsc::channel(COMMAND_QUEUE)
    }

    /// Handles `topic` if it is an OBS command; false if it is not one.
    pub async fn handle(&self, topic: &str, payload: &[u8]) -> Result<bool, BusClosed> {
        let is_scene = crate::event::filter_matches(&self.scene_filter, topic);
        if !is_scene && !crate::event::filter_matches(&self.request_filter, topic) {
            return Ok(false);
        }
        let result_topic = format!("{topic}/result");
        let parsed = if is_scene {
            parse_scene(payload)
        } else {
            serde_json::from_slice::<RequestCommand>(payload)
                .map(|c| (Action::Request {
                    request_type: c.request_type,
                    request_data: c.request_data,
                }, c.id))
                .map_err(|e| format!("not an OBS request ({e}); send {{\"request_type\": \"GetSceneList\", \"request_data\": {{...}}}}"))
        };
        let (action, id) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                tracing::warn!(%topic, "ignored an OBS command: {error}");
                let result = json!({"ok": false, "error": error});
                publish_result(&self.publisher, &result_topic, &result).await?;
                return Ok(true);
            }
        };
        let command = Command {
            action,
            id,
            result_topic,
        };
        let (command, refusal) = match &self.tx {
            None => (
                command,
                "OBS is not configured: set [obs] url in ongwatch.toml",
            ),
            Some(tx) => match tx.try_send(command) {
                Ok(()) => return Ok(true),
                Err(mpsc::error::TrySendError::Full(command)) => {
                    (command, "too many OBS commands are waiting; try again")
                }
                Err(mpsc::error::TrySendError::Closed(command)) => {
                    (command, "the OBS connection has stopped")
                }
            },
        };
        let result = command.result(Some(refusal.into()), None, None);
        publish_result(&self.publisher, &command.result_topic, &result).await?;
        Ok(true)
    }
}

/// `{"scene": "Alerts"}`, or just `"Alerts"` (what `mosquitto_pub -m Alerts` becomes on the bus).
fn parse_scene(payload: &[u8]) -> Result<(Action, Option<Value>), String> {
    if let Ok(Value::String(scene)) = serde_json::from_slice::<Value>(payload) {
        return Ok((Action::Scene(scene), None));
    }
    serde_json::from_slice::<SceneCommand>(payload)
        .map(|c| (Action::Scene(c.scene), c.id))
        .map_err(|e| format!("not a scene command ({e}); send {{\"scene\": \"Alerts\"}}"))
}

/// What ongwatch knows of OBS, kept across reconnects so `previous_scene` survives them.
#[derive(Default)]
struct Known {
    scene: Option<String>,
    previous_scene: Option<String>,
    outputs: Option<ObsOutputs>,
}

/// How one connection ended.
enum Ended {
    Stopped,
    BusClosed,
    Unauthorized(String),
    Failed { reason: String, lasted: Duration },
}

/// What a request in flight was for.
enum Pending {
    Command(Command),
    Stats,
}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The publishing side of the connection task.
struct Bus {
    publisher: Publisher,
    channel: String,
}

impl Bus {
    async fn state(&self, state: ConnectionState, detail: String) -> Result<(), BusClosed> {
        match state {
            ConnectionState::Unauthorized | ConnectionState::Error => {
                tracing::warn!(provider = PROVIDER, "{detail}")
            }
            _ => tracing::info!(provider = PROVIDER, "{detail}"),
        }
        let event = Event::plain_provider_state(PROVIDER, self.channel.clone(), state, detail);
        self.publisher.event(event).await
    }

    async fn event(&self, kind: EventKind) -> Result<(), BusClosed> {
        let id = format!("{PROVIDER}:{}", uuid::Uuid::new_v4());
        self.publisher
            .event(Event::new(id, PROVIDER, self.channel.clone(), kind))
            .await
    }

    async fn scene(&self, known: &Known) -> Result<(), BusClosed> {
        let Some(scene) = &known.scene else {
            return Ok(());
        };
        self.event(EventKind::ObsScene(ObsScene {
            scene: scene.clone(),
            previous_scene: known.previous_scene.clone(),
        }))
        .await
    }
}

/// Keeps the OBS connection up until `stop`, then closes it cleanly. `commands` is shared so
/// that a run started again after a failure takes over the same command channel.
pub async fn run(
    settings: Settings,
    publisher: Publisher,
    commands: Arc<tokio::sync::Mutex<mpsc::Receiver<Command>>>,
    stop: CancellationToken,
) {
    let mut commands = commands.lock().await;
    let bus = Bus {
        publisher,
        channel: settings.channel.clone(),
    };
    let host = host_of(&settings.url);
    let mut known = Known::default();
    let mut backoff = settings.timing.retry().backoff();
    let mut unauthorized = false;
    loop {
        // After a refused password the state stays `unauthorized` through the slow retries.
        if !unauthorized
            && bus
                .state(
                    ConnectionState::Connecting,
                    format!("connecting to OBS at {host}"),
                )
                .await
                .is_err()
        {
            return;
        }
        let ended = connection(&settings, &bus, &mut known, &mut commands, &stop).await;
        let (delay, state, detail) = match ended {
            Ended::Stopped | Ended::BusClosed => return,
            Ended::Unauthorized(reason) => {
                unauthorized = true;
                let delay = settings.timing.unauthorized_backoff;
                let detail = format!(
                    "OBS at {host} refused the login ({reason}): set [obs.{}] password in credentials.toml to OBS's WebSocket server password; retrying in {} s",
                    settings.environment,
                    delay.as_secs()
                );
                (delay, ConnectionState::Unauthorized, detail)
            }
            Ended::Failed { reason, lasted } => {
                unauthorized = false;
                if lasted >= settings.timing.stable_after {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                let detail = format!(
                    "OBS at {host}: {reason}; reconnecting in {:.1} s",
                    delay.as_secs_f64()
                );
                (delay, ConnectionState::Error, detail)
            }
        };
        if bus.state(state, detail).await.is_err() {
            return;
        }
        // Commands that arrive while OBS is away are answered now, not run minutes later.
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => break,
                () = stop.cancelled() => return,
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let result = command.result(Some(format!("OBS is not connected ({host})")), None, None);
                    if publish_result(&bus.publisher, &command.result_topic, &result).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn connection(
    settings: &Settings,
    bus: &Bus,
    known: &mut Known,
    commands: &mut mpsc::Receiver<Command>,
    stop: &CancellationToken,
) -> Ended {
    let started = Instant::now();
    let failed = |reason: String| Ended::Failed {
        reason,
        lasted: started.elapsed(),
    };
    let handshake = tokio::select! {
        result = tokio::time::timeout(settings.timing.connect_timeout, handshake(settings)) => result,
        () = stop.cancelled() => return Ended::Stopped,
    };
    let (mut socket, hello) = match handshake {
        Err(_) => return failed("no answer to the obs-websocket handshake".into()),
        Ok(Err(ended)) => return ended,
        Ok(Ok(connected)) => connected,
    };
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut next_id: u64 = 0;
    let mut connected_reported = false;
    let mut last_frame = Instant::now();
    let mut stats_tick = tokio::time::interval_at(Instant::now() + STATS_INTERVAL, STATS_INTERVAL);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let batch = protocol::batch(STATE_BATCH, &protocol::STATE_REQUESTS);
    if let Err(e) = socket.send(WsMessage::text(batch)).await {
        return failed(format!("cannot send to OBS: {e}"));
    }
    let ended = loop {
        tokio::select! {
            () = stop.cancelled() => {
                close(&mut socket).await;
                break Ended::Stopped;
            }
            command = commands.recv() => {
                let Some(command) = command else {
                    close(&mut socket).await;
                    break Ended::Stopped;
                };
                next_id += 1;
                let request_id = format!("ongwatch-{next_id}");
                let (request_type, data) = command.request();
                let frame = protocol::request(request_type, &request_id, data.as_ref());
                pending.insert(request_id, Pending::Command(command));
                if let Err(e) = socket.send(WsMessage::text(frame)).await {
                    break failed(format!("cannot send to OBS: {e}"));
                }
            }
            _ = stats_tick.tick() => {
                if last_frame.elapsed() >= SILENCE_LIMIT {
                    break failed(format!("OBS did not answer for {} s", SILENCE_LIMIT.as_secs()));
                }
                next_id += 1;
                let request_id = format!("ongwatch-{next_id}");
                pending.insert(request_id.clone(), Pending::Stats);
                if let Err(e) = socket.send(WsMessage::text(protocol::request("GetStats", &request_id, None))).await {
                    break failed(format!("cannot send to OBS: {e}"));
                }
            }
            frame = socket.next() => {
                let text = match frame {
                    None => break failed("OBS closed the connection".into()),
                    Some(Err(e)) => break failed(format!("the connection to OBS broke: {e}")),
                    Some(Ok(WsMessage::Close(frame))) => break failed(match frame {
                        Some(frame) => format!("OBS closed the connection ({} {})", u16::from(frame.code), frame.reason),
                        None => "OBS closed the connection".into(),
                    }),
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(_)) => continue,
                };
                last_frame = Instant::now();
                let incoming = match protocol::parse(&text) {
                    Ok(incoming) => incoming,
                    Err(e) => {
                        tracing::warn!(provider = PROVIDER, "ignored a frame from OBS: {e}");
                        continue;
                    }
                };
                let handled = match incoming {
                    Incoming::BatchResponse { request_id, results } if request_id == STATE_BATCH => {
                        let snapshot = protocol::snapshot(&results);
                        if !connected_reported {
                            connected_reported = true;
                            let detail = format!(
                                "connected to OBS {} (obs-websocket {}, rpc {}) at {}",
                                snapshot.obs_version.as_deref().unwrap_or("?"),
                                snapshot.websocket_version.as_deref().unwrap_or(&hello.obs_web_socket_version),
                                hello.rpc_version,
                                host_of(&settings.url)
                            );
                            if bus.state(ConnectionState::Connected, detail).await.is_err() {
                                break Ended::BusClosed;
                            }
                        }
                        apply_snapshot(bus, known, snapshot).await
                    }
                    Incoming::Response(response) => match response.request_id.as_deref().and_then(|id| pending.remove(id)) {
                        Some(Pending::Stats) => match (response.request_status.result, &response.response_data) {
                            (true, Some(data)) => bus.event(EventKind::ObsStats(protocol::stats(data))).await,
                            _ => Ok(()),
                        },
                        Some(Pending::Command(command)) => {
                            let error = response.error();
                            if let Some(error) = &error {
                                tracing::info!(provider = PROVIDER, request = %response.request_type, "OBS refused a command: {error}");
                            }
                            let code = error.is_some().then_some(response.request_status.code);
                            let result = command.result(error, code, response.response_data);
                            publish_result(&bus.publisher, &command.result_topic, &result).await
                        }
                        None => Ok(()),
                    },
                    Incoming::Event { event_type, data } => on_event(bus, known, event_type, data).await,
                    Incoming::BatchResponse { .. } | Incoming::Hello(_) | Incoming::Identified | Incoming::Other(_) => Ok(()),
                };
                if handled.is_err() {
                    break Ended::BusClosed;
                }
            }
        }
    };
    // Commands OBS never answered get an answer all the same.
    for (_, waiting) in pending {
        if let Pending::Command(command) = waiting {
            let result = command.result(
                Some("the connection to OBS ended before it answered".into()),
                None,
                None,
            );
            if publish_result(&bus.publisher, &command.result_topic, &result)
                .await
                .is_err()
            {
                return Ended::BusClosed;
            }
        }
    }
    ended
}

/// Connects and identifies. OBS answers a wrong password by closing with 4009.
async fn handshake(settings: &Settings) -> Result<(Socket, protocol::Hello), Ended> {
    let started = Instant::now();
    let failed = |reason: String| Ended::Failed {
        reason,
        lasted: started.elapsed(),
    };
    let (mut socket, _) = connect_async(settings.url.as_str())
        .await
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let hello = loop {
        match next_frame(&mut socket).await? {
            Incoming::Hello(hello) => break hello,
            _ => continue,
        }
    };
    let Some(identify) = protocol::identify(&hello, settings.password.as_deref()) else {
        return Err(Ended::Unauthorized(
            "OBS asks for a password and there is none".into(),
        ));
    };
    socket
        .send(WsMessage::text(identify))
        .await
        .map_err(|e| failed(format!("cannot send to OBS: {e}")))?;
    loop {
        if let Incoming::Identified = next_frame(&mut socket).await? {
            return Ok((socket, hello));
        }
    }
}

/// The next obs-websocket frame during the handshake.
async fn next_frame(socket: &mut Socket) -> Result<Incoming, Ended> {
    let failed = |reason: String| Ended::Failed {
        reason,
        lasted: Duration::ZERO,
    };
    loop {
        match socket.next().await {
            None => {
                return Err(failed(
                    "OBS closed the connection during the handshake".into(),
                ));
            }
            Some(Err(e)) => {
                return Err(failed(format!(
                    "the connection broke during the handshake: {e}"
                )));
            }
            Some(Ok(WsMessage::Close(Some(frame))))
                if u16::from(frame.code) == protocol::CLOSE_AUTHENTICATION_FAILED =>
            {
                return Err(Ended::Unauthorized(format!(
                    "{} {}",
                    protocol::CLOSE_AUTHENTICATION_FAILED,
                    frame.reason
                )));
            }
            Some(Ok(WsMessage::Close(frame))) => {
                return Err(failed(match frame {
                    Some(frame) => format!(
                        "OBS closed the connection during the handshake ({} {})",
                        u16::from(frame.code),
                        frame.reason
                    ),
                    None => "OBS closed the connection during the handshake".into(),
                }));
            }
            Some(Ok(WsMessage::Text(text))) => {
                return protocol::parse(&text).map_err(|e| failed(e.to_string()));
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Closes with 1000 and waits (briefly) for OBS's close frame, so OBS logs a clean goodbye.
async fn close(socket: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "ongwatch is stopping".into(),
    };
    let _ = tokio::time::timeout(CLOSE_LIMIT, async {
        if socket.close(Some(frame)).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

async fn apply_snapshot(
    bus: &Bus,
    known: &mut Known,
    snapshot: protocol::Snapshot,
) -> Result<(), BusClosed> {
    if let Some(scene) = snapshot.scene {
        if known.scene.as_ref().is_some_and(|old| *old != scene) {
            known.previous_scene = known.scene.take();
        }
        known.scene = Some(scene);
        bus.scene(known).await?;
    }
    known.outputs = Some(snapshot.outputs.clone());
    bus.event(EventKind::ObsOutputs(snapshot.outputs)).await?;
    if let Some(stats) = snapshot.stats {
        bus.event(EventKind::ObsStats(stats)).await?;
    }
    Ok(())
}

async fn on_event(
    bus: &Bus,
    known: &mut Known,
    event_type: String,
    data: serde_json::Map<String, Value>,
) -> Result<(), BusClosed> {
    if event_type == "CurrentProgramSceneChanged" {
        if let Some(scene) = data.get("sceneName").and_then(Value::as_str) {
            if known.scene.as_deref() != Some(scene) {
                known.previous_scene = known.scene.replace(scene.to_owned());
            }
            return bus.scene(known).await;
        }
        return Ok(());
    }
    let mut outputs = known.outputs.clone().unwrap_or_default();
    if protocol::apply_output_event(&mut outputs, &event_type, &data)
        && known.outputs.as_ref() != Some(&outputs)
    {
        known.outputs = Some(outputs.clone());
        bus.event(EventKind::ObsOutputs(outputs)).await?;
    }
    // Output changes also go out as events: their outputState (starting, stopping, ...) says
    // more than the retained booleans.
    bus.event(EventKind::ObsEvent(ObsEvent {
        event_type,
        data: protocol::flat_event_data(data),
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scene_command_is_an_object_or_just_the_name() {
        let (Action::Scene(scene), id) = parse_scene(br#"{"scene":"Alerts","id":"a1"}"#).unwrap()
        else {
            panic!("not a scene")
        };
        assert_eq!((scene.as_str(), id), ("Alerts", Some(json!("a1"))));
        // What `mosquitto_pub -m Alerts` becomes on the bus (text is stored as a JSON string).
        let (Action::Scene(scene), None) = parse_scene(br#""Alerts""#).unwrap() else {
            panic!("not a scene")
        };
        assert_eq!(scene, "Alerts");
        let error = parse_scene(br#"{"name":"Alerts"}"#).unwrap_err();
        assert!(error.contains(r#"{"scene": "Alerts"}"#), "{error}");
    }

    #[test]
    fn a_result_names_its_command_and_carries_obs_words() {
        let command = Command {
            action: Action::Request {
                request_type: "GetSceneList".into(),
                request_data: None,
            },
            id: Some(json!(7)),
            result_topic: "stream/command/obs/request/result".into(),
        };
        let ok = command.result(None, None, Some(json!({"scenes": []})));
        assert_eq!(
            ok,
            json!({"ok": true, "request_type": "GetSceneList", "data": {"scenes": []}, "id": 7})
        );
        let refused = command.result(Some("No.".into()), Some(600), None);
        assert_eq!(refused["ok"], false);
        assert_eq!(refused["error"], "No.");
        assert_eq!(refused["code"], 600);
    }
}
