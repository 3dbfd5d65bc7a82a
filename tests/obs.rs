//! Issue 17: OBS on the bus, through the real binary against a real, headless OBS Studio
//! (obs-websocket 5.1 inside Debian's obs-studio 29, see tests/support/obs.rs). A second
//! obs-websocket client in the test checks what OBS itself says.

#[path = "support/obs.rs"]
mod obs;
mod support;

use std::path::Path;

use serde_json::Value;
use support::*;

use obs::Obs;

const SCENE: &str = "stream/obs/scene";
const OUTPUTS: &str = "stream/obs/outputs";
const STATE: &str = "stream/system/providers/obs";
const SCENE_COMMAND: &str = "stream/command/obs/scene";
const SCENE_RESULT: &str = "stream/command/obs/scene/result";
const REQUEST_COMMAND: &str = "stream/command/obs/request";
const REQUEST_RESULT: &str = "stream/command/obs/request/result";

/// The daemon connected to `obs` with `password` in credentials.toml, plus `extra` config.
fn daemon(dir: &Path, obs: &Obs, password: &str, extra: &str) -> Daemon {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("credentials.toml"),
        format!("[obs.test]\npassword = \"{password}\"\n"),
    )
    .unwrap();
    let config = format!("{EPHEMERAL}[obs]\nurl = \"{}\"\n{extra}", obs.url());
    Daemon::start_in(dir, &config, &[])
}

/// Every payload received on `topic` so far, in order.
fn payloads(sub: &mut Proc, topic: &str) -> Vec<Value> {
    sub.pump()
        .iter()
        .filter_map(|line| payload_on(line, topic))
        .collect()
}

/// Waits for the first payload on `topic` that satisfies `check`; returns it.
fn wait_payload(sub: &mut Proc, topic: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("a matching payload on {topic}"), || {
        payloads(sub, topic).into_iter().find(|p| check(p))
    })
}

fn connected(sub: &mut Proc) -> Value {
    wait_payload(sub, STATE, |p| p["state"] == "connected")
}

#[test]
fn scene_and_outputs_are_retained_and_commands_switch_scenes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(obs) = Obs::start(dir.path()) else {
        return;
    };
    let daemon = daemon(&dir.path().join("daemon"), &obs, &obs.password, "");
    let port = daemon.mqtt_port();
    let mut sub = mosquitto_sub(port, "stream/#", &[]);

    // Connected, with OBS's and obs-websocket's versions.
    let state = connected(&mut sub);
    let detail = state["detail"].as_str().unwrap();
    assert!(
        detail.contains("OBS 29.") && detail.contains("obs-websocket 5."),
        "{detail}"
    );

    // A new subscriber gets the current scene and the outputs as retained state.
    let scene = wait_for("the retained scene", || {
        let scene = retained(port, SCENE);
        (scene["type"] == "obs_scene").then_some(scene)
    });
    assert_eq!(scene["scene"], "Main", "{scene}");
    assert_eq!(scene["provider"], "obs");
    let outputs = retained(port, OUTPUTS);
    for key in [
        "streaming",
        "recording",
        "recording_paused",
        "replay_buffer",
        "virtualcam",
    ] {
        assert_eq!(outputs[key], false, "{key} in {outputs}");
    }

    // The scene command switches OBS's program scene; OBS itself says so.
    let mut other = obs.client();
    mosquitto_pub(port, SCENE_COMMAND, r#"{"scene":"Alerts","id":"c1"}"#, &[]);
    let result = wait_payload(&mut sub, SCENE_RESULT, |p| p["id"] == "c1");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["scene"], "Alerts");
    assert_eq!(other.program_scene(), "Alerts");
    let scene = wait_payload(&mut sub, SCENE, |p| p["scene"] == "Alerts");
    assert_eq!(scene["previous_scene"], "Main", "{scene}");

    // An unknown scene: OBS's own error comes back, and everything keeps working.
    mosquitto_pub(port, SCENE_COMMAND, r#"{"scene":"Nope","id":"c2"}"#, &[]);
    let result = wait_payload(&mut sub, SCENE_RESULT, |p| p["id"] == "c2");
    assert_eq!(result["ok"], false, "{result}");
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains("Nope"),
        "OBS's comment names the scene: {error}"
    );
    assert!(result["code"].is_u64(), "{result}");
    // A request without its type: one clear error result, no crash.
    mosquitto_pub(port, REQUEST_COMMAND, r#"{"request_data":{}}"#, &[]);
    let result = wait_payload(&mut sub, REQUEST_RESULT, |p| p["ok"] == false);
    assert!(
        result["error"].as_str().unwrap().contains("request_type"),
        "{result}"
    );

    // The generic request returns OBS's data.
    mosquitto_pub(
        port,
        REQUEST_COMMAND,
        r#"{"request_type":"GetSceneList","id":7}"#,
        &[],
    );
    let result = wait_payload(&mut sub, REQUEST_RESULT, |p| p["id"] == 7);
    assert_eq!(result["ok"], true, "{result}");
    let names: Vec<&str> = result["data"]["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["sceneName"].as_str())
        .collect();
    assert!(
        names.contains(&"Main") && names.contains(&"Alerts"),
        "{result}"
    );

    // A scene changed by another obs-websocket client shows up on the bus.
    other.set_scene("Main");
    let scene = wait_payload(&mut sub, SCENE, |p| {
        p["scene"] == "Main" && p["previous_scene"] == "Alerts"
    });
    assert_eq!(scene["type"], "obs_scene");

    // Recording started elsewhere: outputs follow, and the output event has its own topic.
    let started = other.request("StartRecord", Value::Null);
    assert_eq!(started["requestStatus"]["result"], true, "{started}");
    wait_payload(&mut sub, OUTPUTS, |p| p["recording"] == true);
    wait_payload(&mut sub, "stream/obs/events/RecordStateChanged", |p| {
        p["outputActive"] == true
    });
    // Only what came after the stop counts: the retained state from the start says false too.
    let before = payloads(&mut sub, OUTPUTS).len();
    let stopped = other.request("StopRecord", Value::Null);
    assert_eq!(stopped["requestStatus"]["result"], true, "{stopped}");
    wait_for("recording false after StopRecord", || {
        payloads(&mut sub, OUTPUTS)
            .into_iter()
            .skip(before)
            .find(|p| p["recording"] == false)
    });

    // GetStats every 5 s, retained.
    let stats = wait_payload(&mut sub, "stream/obs/stats", |p| p["type"] == "obs_stats");
    assert!(
        stats["active_fps"].as_f64().is_some() && stats["memory_mb"].as_f64().unwrap() > 0.0,
        "{stats}"
    );

    // Shutdown closes the socket cleanly: OBS logs a normal close (1000) from ongwatch.
    let mut daemon = daemon;
    assert_eq!(daemon.proc.terminate(), Some(0));
    let mut obs = obs;
    obs.wait_line(&["has disconnected with code `1000`", "ongwatch is stopping"]);
}

#[test]
fn a_wrong_password_is_unauthorized_without_a_reconnect_storm() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut obs) = Obs::start(dir.path()) else {
        return;
    };
    let daemon = daemon(&dir.path().join("daemon"), &obs, "not-the-password", "");
    let port = daemon.mqtt_port();
    let mut sub = mosquitto_sub(port, "stream/#", &[]);
    let state = wait_payload(&mut sub, STATE, |p| p["state"] == "unauthorized");
    assert!(
        state["detail"]
            .as_str()
            .unwrap()
            .contains("[obs.test] password"),
        "{state}"
    );
    // A command meanwhile gets a clear answer instead of waiting for OBS.
    mosquitto_pub(port, SCENE_COMMAND, r#"{"scene":"Alerts","id":"x"}"#, &[]);
    let result = wait_payload(&mut sub, SCENE_RESULT, |p| p["id"] == "x");
    assert_eq!(result["ok"], false, "{result}");
    // Observed over a bounded window: one login attempt, and the state stays unauthorized.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(obs.count_lines("New WebSocket client has connected"), 1);
    let states: Vec<Value> = payloads(&mut sub, STATE);
    let refused = states
        .iter()
        .position(|s| s["state"] == "unauthorized")
        .unwrap();
    assert_eq!(
        states.len(),
        refused + 1,
        "no state after unauthorized: {states:?}"
    );
    // The password itself is never logged.
    let mut daemon = daemon;
    daemon.proc.terminate();
    assert!(
        !daemon
            .proc
            .pump()
            .iter()
            .any(|l| l.contains("not-the-password")),
        "the password leaked into the log"
    );
}

#[test]
fn obs_killed_and_restarted_is_reconnected_and_state_republished() {
    let dir = tempfile::tempdir().unwrap();
    let Some(mut obs) = Obs::start(dir.path()) else {
        return;
    };
    let daemon = daemon(&dir.path().join("daemon"), &obs, &obs.password, "");
    let port = daemon.mqtt_port();
    let mut sub = mosquitto_sub(port, "stream/#", &[]);
    connected(&mut sub);
    wait_payload(&mut sub, SCENE, |p| p["scene"] == "Main");

    obs.kill9();
    wait_payload(&mut sub, STATE, |p| p["state"] == "error");
    let before = payloads(&mut sub, SCENE).len();
    // Counted before the launch: the daemon may connect while `launch` waits for OBS.
    let states_before = payloads(&mut sub, STATE)
        .iter()
        .filter(|p| p["state"] == "connected")
        .count();
    obs.launch();
    wait_for("a second connected state", || {
        (payloads(&mut sub, STATE)
            .iter()
            .filter(|p| p["state"] == "connected")
            .count()
            > states_before)
            .then_some(())
    });
    // The state was read again and republished, and matches what OBS says now.
    let current = obs.client().program_scene();
    wait_for("the scene republished after the reconnect", || {
        let scenes = payloads(&mut sub, SCENE);
        (scenes.len() > before && scenes.last()?["scene"] == current.as_str()).then_some(())
    });
    // Commands work on the new connection.
    mosquitto_pub(
        port,
        SCENE_COMMAND,
        r#"{"scene":"Alerts","id":"after"}"#,
        &[],
    );
    let result = wait_payload(&mut sub, SCENE_RESULT, |p| p["id"] == "after");
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(obs.client().program_scene(), "Alerts");
}

#[test]
fn a_rule_switches_to_alerts_on_a_big_cheer() {
    let dir = tempfile::tempdir().unwrap();
    let Some(obs) = Obs::start(dir.path()) else {
        return;
    };
    let rule = r#"
[[rules]]
name = "alerts scene on big cheers"
when = "stream/support/cheers"
if = "amount >= 1000"
on = "every"
publish = { topic = "stream/command/obs/scene", payload = { scene = "Alerts", id = "{id}" } }
"#;
    let daemon = daemon(&dir.path().join("daemon"), &obs, &obs.password, rule);
    let port = daemon.mqtt_port();
    let mut sub = mosquitto_sub(port, "stream/#", &[]);
    connected(&mut sub);
    let cheer = |amount: &str| {
        let out = daemon.cli(&[
            "trigger",
            "cheer",
            "--user",
            "alinsa_vix",
            "--amount",
            amount,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cheer("999");
    cheer("2490");
    let result = wait_payload(&mut sub, SCENE_RESULT, |p| p["ok"] == true);
    assert_eq!(result["scene"], "Alerts");
    assert_eq!(obs.client().program_scene(), "Alerts");
    // The small cheer came first and fired nothing: the one result is the big cheer's.
    let cheers = payloads(&mut sub, "stream/support/cheers");
    let big = cheers.iter().find(|c| c["amount"] == 2490).unwrap();
    assert_eq!(result["id"], big["id"]);
    assert_eq!(payloads(&mut sub, SCENE_RESULT).len(), 1);
}

#[test]
fn check_validates_obs_and_never_prints_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ongwatch.toml");
    let credentials = dir.path().join("credentials.toml");
    std::fs::write(
        &credentials,
        "[obs.test]\npassword = \"obs-check-secret\"\n",
    )
    .unwrap();
    let check = |config_text: &str| {
        std::fs::write(&config, config_text).unwrap();
        ongwatch()
            .arg("check")
            .arg("--config")
            .arg(&config)
            .arg("--credentials")
            .arg(&credentials)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap()
    };
    let ok = check("[obs]\nurl = \"ws://127.0.0.1:4455\"\n");
    let text =
        String::from_utf8_lossy(&ok.stdout).to_string() + &String::from_utf8_lossy(&ok.stderr);
    assert!(ok.status.success(), "{text}");
    assert!(
        text.contains("ok: obs 127.0.0.1:4455 with the password of [obs.test]"),
        "{text}"
    );
    assert!(!text.contains("obs-check-secret"), "{text}");
    let bad = check("[obs]\nurl = \"127.0.0.1:4455\"\n");
    let text = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(text.contains("obs.url"), "{text}");
}
