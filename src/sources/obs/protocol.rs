//! The obs-websocket 5 wire format: frames `{op, d}`, the challenge authentication, and the
//! pieces of OBS's answers ongwatch turns into contract events. Pure functions, no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::event::{ObsOutputs, ObsStats};

/// The RPC version ongwatch speaks (obs-websocket 5.x).
pub const RPC_VERSION: u64 = 1;

/// Every event category except the high-volume ones (volume meters, active-state changes of
/// every source, transform changes), which would flood the bus with nothing a bot acts on:
/// General, Config, Scenes, Inputs, Transitions, Filters, Outputs, SceneItems, MediaInputs,
/// Vendors, Ui.
pub const EVENT_SUBSCRIPTIONS: u64 = (1 << 11) - 1;

/// obs-websocket's close code for a wrong or missing password.
pub const CLOSE_AUTHENTICATION_FAILED: u16 = 4009;

pub mod op {
    pub const HELLO: u64 = 0;
    pub const IDENTIFY: u64 = 1;
    pub const IDENTIFIED: u64 = 2;
    pub const EVENT: u64 = 5;
    pub const REQUEST: u64 = 6;
    pub const REQUEST_RESPONSE: u64 = 7;
    pub const REQUEST_BATCH: u64 = 8;
    pub const REQUEST_BATCH_RESPONSE: u64 = 9;
}

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("not an obs-websocket frame: {0}")]
    NotAFrame(String),
    #[error("an obs-websocket {what} with an unexpected shape: {error}")]
    BadShape { what: &'static str, error: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub obs_web_socket_version: String,
    pub rpc_version: u64,
    pub authentication: Option<Challenge>,
}

#[derive(Debug, Deserialize)]
pub struct Challenge {
    pub challenge: String,
    pub salt: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub result: bool,
    pub code: u64,
    pub comment: Option<String>,
}

/// A `RequestResponse` (op 7), or one result of a `RequestBatchResponse` (op 9).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub request_type: String,
    #[serde(default)]
    pub request_id: Option<String>,
    pub request_status: Status,
    #[serde(default)]
    pub response_data: Option<Value>,
}

impl Response {
    /// OBS's own words on a failed request; its status code when it gave no comment.
    pub fn error(&self) -> Option<String> {
        (!self.request_status.result).then(|| {
            self.request_status.comment.clone().unwrap_or_else(|| {
                format!(
                    "OBS refused {} (code {})",
                    self.request_type, self.request_status.code
                )
            })
        })
    }

    fn data_field(&self, key: &str) -> Option<&Value> {
        self.response_data.as_ref()?.get(key)
    }

    /// `outputActive` of a successful Get*Status; false when the request failed (an output
    /// OBS does not have, such as the virtual camera without v4l2loopback, is not active).
    pub fn output_active(&self) -> bool {
        self.request_status.result
            && self
                .data_field("outputActive")
                .and_then(Value::as_bool)
                .unwrap_or(false)
    }
}

/// One frame from OBS, by op code.
#[derive(Debug)]
pub enum Incoming {
    Hello(Hello),
    Identified,
    Event {
        event_type: String,
        data: Map<String, Value>,
    },
    Response(Response),
    BatchResponse {
        request_id: String,
        results: Vec<Response>,
    },
    /// An op code ongwatch does not act on (e.g. a newer server's additions).
    Other(u64),
}

#[derive(Deserialize)]
struct Frame {
    op: u64,
    #[serde(default)]
    d: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventFrame {
    event_type: String,
    #[serde(default)]
    event_data: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchFrame {
    request_id: String,
    results: Vec<Response>,
}

fn shape<T: serde::de::DeserializeOwned>(what: &'static str, d: Value) -> Result<T, ProtocolError> {
    serde_json::from_value(d).map_err(|e| ProtocolError::BadShape {
        what,
        error: e.to_string(),
    })
}

pub fn parse(text: &str) -> Result<Incoming, ProtocolError> {
    let frame: Frame =
        serde_json::from_str(text).map_err(|e| ProtocolError::NotAFrame(e.to_string()))?;
    Ok(match frame.op {
        op::HELLO => Incoming::Hello(shape("Hello", frame.d)?),
        op::IDENTIFIED => Incoming::Identified,
        op::EVENT => {
            let event: EventFrame = shape("Event", frame.d)?;
            Incoming::Event {
                event_type: event.event_type,
                data: event.event_data.unwrap_or_default(),
            }
        }
        op::REQUEST_RESPONSE => Incoming::Response(shape("RequestResponse", frame.d)?),
        op::REQUEST_BATCH_RESPONSE => {
            let batch: BatchFrame = shape("RequestBatchResponse", frame.d)?;
            Incoming::BatchResponse {
                request_id: batch.request_id,
                results: batch.results,
            }
        }
        other => Incoming::Other(other),
    })
}

/// The `authentication` string of Identify:
/// `base64(sha256(base64(sha256(password + salt)) + challenge))`.
pub fn authentication(password: &str, challenge: &Challenge) -> String {
    let secret = BASE64.encode(Sha256::digest(
        format!("{password}{}", challenge.salt).as_bytes(),
    ));
    BASE64.encode(Sha256::digest(
        format!("{secret}{}", challenge.challenge).as_bytes(),
    ))
}

/// The Identify frame answering `hello`; `None` when OBS asks for a password and there is none.
pub fn identify(hello: &Hello, password: Option<&str>) -> Option<String> {
    let mut d = json!({
        "rpcVersion": RPC_VERSION,
        "eventSubscriptions": EVENT_SUBSCRIPTIONS,
    });
    if let Some(challenge) = &hello.authentication {
        d["authentication"] = Value::String(authentication(password?, challenge));
    }
    Some(json!({"op": op::IDENTIFY, "d": d}).to_string())
}

pub fn request(request_type: &str, request_id: &str, data: Option<&Value>) -> String {
    let mut d = json!({"requestType": request_type, "requestId": request_id});
    if let Some(data) = data {
        d["requestData"] = data.clone();
    }
    json!({"op": op::REQUEST, "d": d}).to_string()
}

/// A RequestBatch that runs every request even when one fails (the virtual camera or replay
/// buffer may not exist in this OBS).
pub fn batch(request_id: &str, request_types: &[&str]) -> String {
    let requests: Vec<Value> = request_types
        .iter()
        .map(|t| json!({"requestType": t, "requestId": t}))
        .collect();
    json!({
        "op": op::REQUEST_BATCH,
        "d": {"requestId": request_id, "haltOnFailure": false, "requests": requests},
    })
    .to_string()
}

/// The requests that read OBS's whole state after (re)connecting, in this order.
pub const STATE_REQUESTS: [&str; 7] = [
    "GetVersion",
    "GetCurrentProgramScene",
    "GetStreamStatus",
    "GetRecordStatus",
    "GetReplayBufferStatus",
    "GetVirtualCamStatus",
    "GetStats",
];

/// What the state batch said.
#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    pub obs_version: Option<String>,
    pub websocket_version: Option<String>,
    pub scene: Option<String>,
    pub outputs: ObsOutputs,
    pub stats: Option<ObsStats>,
}

pub fn snapshot(results: &[Response]) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let text =
        |r: &Response, key: &str| r.data_field(key).and_then(Value::as_str).map(str::to_owned);
    for result in results {
        match result.request_type.as_str() {
            "GetVersion" => {
                snapshot.obs_version = text(result, "obsVersion");
                snapshot.websocket_version = text(result, "obsWebSocketVersion");
            }
            "GetCurrentProgramScene" => {
                snapshot.scene =
                    text(result, "currentProgramSceneName").or_else(|| text(result, "sceneName"));
            }
            "GetStreamStatus" => snapshot.outputs.streaming = result.output_active(),
            "GetRecordStatus" => {
                snapshot.outputs.recording = result.output_active();
                snapshot.outputs.recording_paused = result.request_status.result
                    && result
                        .data_field("outputPaused")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
            }
            "GetReplayBufferStatus" => snapshot.outputs.replay_buffer = result.output_active(),
            "GetVirtualCamStatus" => snapshot.outputs.virtualcam = result.output_active(),
            "GetStats" if result.request_status.result => {
                snapshot.stats = result.response_data.as_ref().map(stats)
            }
            _ => {}
        }
    }
    snapshot
}

/// `GetStats` in the contract's names and units.
pub fn stats(data: &Value) -> ObsStats {
    let number = |key: &str| data.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let count = |key: &str| data.get(key).and_then(Value::as_u64).unwrap_or(0);
    ObsStats {
        cpu_usage: number("cpuUsage"),
        memory_mb: number("memoryUsage"),
        available_disk_space_mb: number("availableDiskSpace"),
        active_fps: number("activeFps"),
        average_frame_render_time_ms: number("averageFrameRenderTime"),
        render_skipped_frames: count("renderSkippedFrames"),
        render_total_frames: count("renderTotalFrames"),
        output_skipped_frames: count("outputSkippedFrames"),
        output_total_frames: count("outputTotalFrames"),
    }
}

/// Applies an output's state-change event to `outputs`; false for any other event.
pub fn apply_output_event(
    outputs: &mut ObsOutputs,
    event_type: &str,
    data: &Map<String, Value>,
) -> bool {
    let active = data
        .get("outputActive")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match event_type {
        "StreamStateChanged" => outputs.streaming = active,
        "RecordStateChanged" => {
            outputs.recording = active;
            outputs.recording_paused = active
                && data.get("outputState").and_then(Value::as_str)
                    == Some("OBS_WEBSOCKET_OUTPUT_PAUSED");
        }
        "ReplayBufferStateChanged" => outputs.replay_buffer = active,
        "VirtualcamStateChanged" => outputs.virtualcam = active,
        _ => return false,
    }
    true
}

/// `eventData` keys that would overwrite a common field of the contract get a `data_` prefix.
pub fn flat_event_data(mut data: Map<String, Value>) -> Map<String, Value> {
    const COMMON: [&str; 9] = [
        "v",
        "id",
        "type",
        "provider",
        "channel",
        "time",
        "test",
        "raw",
        "event_type",
    ];
    for key in COMMON {
        if let Some(value) = data.remove(key) {
            data.insert(format!("data_{key}"), value);
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_follows_the_protocol_document() {
        // Computed independently with `openssl dgst -sha256 -binary | base64`:
        // secret = base64(sha256("supersecretpassword" + "salt")), then
        // base64(sha256(secret + "challenge")).
        let challenge = Challenge {
            challenge: "challenge".into(),
            salt: "salt".into(),
        };
        assert_eq!(
            authentication("supersecretpassword", &challenge),
            "mIHHpjpK6WDg6ZJBtVx3D2nKe13YKJYtVx9NBIlEt6g="
        );
    }

    #[test]
    fn identify_without_a_needed_password_is_refused_locally() {
        let hello: Hello = serde_json::from_value(json!({
            "obsWebSocketVersion": "5.1.0", "rpcVersion": 1,
            "authentication": {"challenge": "c", "salt": "s"}
        }))
        .unwrap();
        assert!(identify(&hello, None).is_none());
        let frame: Value = serde_json::from_str(&identify(&hello, Some("pw")).unwrap()).unwrap();
        assert_eq!(frame["op"], 1);
        assert_eq!(frame["d"]["rpcVersion"], 1);
        assert!(frame["d"]["authentication"].is_string());
    }

    #[test]
    fn a_failed_request_carries_obs_comment() {
        let Incoming::Response(response) = parse(
            r#"{"op":7,"d":{"requestType":"SetCurrentProgramScene","requestId":"x","requestStatus":{"result":false,"code":600,"comment":"No source was found by the name of `Nope`."}}}"#,
        )
        .unwrap() else {
            panic!("not a response")
        };
        assert_eq!(
            response.error().as_deref(),
            Some("No source was found by the name of `Nope`.")
        );
    }

    #[test]
    fn the_state_batch_becomes_a_snapshot() {
        let Incoming::BatchResponse { results, .. } = parse(
            &json!({"op": 9, "d": {"requestId": "state", "results": [
                {"requestType": "GetVersion", "requestStatus": {"result": true, "code": 100},
                 "responseData": {"obsVersion": "29.0.2", "obsWebSocketVersion": "5.1.0"}},
                {"requestType": "GetCurrentProgramScene", "requestStatus": {"result": true, "code": 100},
                 "responseData": {"currentProgramSceneName": "Main"}},
                {"requestType": "GetStreamStatus", "requestStatus": {"result": true, "code": 100},
                 "responseData": {"outputActive": false}},
                {"requestType": "GetRecordStatus", "requestStatus": {"result": true, "code": 100},
                 "responseData": {"outputActive": true, "outputPaused": true}},
                {"requestType": "GetVirtualCamStatus", "requestStatus": {"result": false, "code": 604, "comment": "no virtualcam"}},
                {"requestType": "GetStats", "requestStatus": {"result": true, "code": 100},
                 "responseData": {"cpuUsage": 2.5, "memoryUsage": 180.25, "activeFps": 10.0, "outputSkippedFrames": 3}}
            ]}})
            .to_string(),
        )
        .unwrap() else {
            panic!("not a batch")
        };
        let snapshot = snapshot(&results);
        assert_eq!(snapshot.obs_version.as_deref(), Some("29.0.2"));
        assert_eq!(snapshot.scene.as_deref(), Some("Main"));
        assert!(snapshot.outputs.recording && snapshot.outputs.recording_paused);
        assert!(!snapshot.outputs.virtualcam);
        let stats = snapshot.stats.unwrap();
        assert_eq!(stats.memory_mb, 180.25);
        assert_eq!(stats.output_skipped_frames, 3);
    }

    #[test]
    fn record_pause_and_resume_events_update_outputs() {
        let mut outputs = ObsOutputs::default();
        let data = |state: &str| {
            json!({"outputActive": true, "outputState": state})
                .as_object()
                .cloned()
                .unwrap()
        };
        assert!(apply_output_event(
            &mut outputs,
            "RecordStateChanged",
            &data("OBS_WEBSOCKET_OUTPUT_PAUSED")
        ));
        assert!(outputs.recording && outputs.recording_paused);
        apply_output_event(
            &mut outputs,
            "RecordStateChanged",
            &data("OBS_WEBSOCKET_OUTPUT_RESUMED"),
        );
        assert!(outputs.recording && !outputs.recording_paused);
        assert!(!apply_output_event(
            &mut outputs,
            "SceneCreated",
            &data("x")
        ));
    }

    #[test]
    fn event_data_never_overwrites_common_fields() {
        let data = json!({"type": "x", "sceneName": "Main"})
            .as_object()
            .cloned()
            .unwrap();
        let flat = flat_event_data(data);
        assert_eq!(flat["data_type"], "x");
        assert_eq!(flat["sceneName"], "Main");
        assert!(!flat.contains_key("type"));
    }
}
