//! The foundation's acceptance, end to end with real processes: the ongwatch binary, the
//! embedded broker, a real mosquitto and its clients, and MQTT.js over WebSocket.

mod support;

use std::collections::HashSet;
use std::process::Command;

use support::*;

fn cheer_args() -> Vec<&'static str> {
    vec![
        "trigger",
        "cheer",
        "--user",
        "alinsa_vix",
        "--amount",
        "2490",
        "--message",
        "Cheer2490 CHAOS",
    ]
}

fn assert_seed_cheer(cheer: &serde_json::Value) {
    assert_eq!(cheer["provider"], "twitch");
    assert_eq!(cheer["user"], "alinsa_vix");
    assert_eq!(cheer["amount"], 2490);
    assert_eq!(cheer["message"], "Cheer2490 CHAOS");
    assert_eq!(cheer["type"], "cheer");
    assert_eq!(cheer["currency"], "bits");
    assert_eq!(cheer["v"], 1);
    assert_eq!(cheer["test"], true);
    for common in ["id", "channel", "time"] {
        assert!(cheer[common].is_string(), "{common} missing in {cheer}");
    }
}

#[test]
fn triggered_cheer_reaches_mosquitto_sub_on_both_protocol_versions() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let mut v311 = mosquitto_sub(port, "stream/#", &["-V", "mqttv311"]);
    let mut v5 = mosquitto_sub(port, "stream/#", &["-V", "mqttv5"]);

    let out = daemon.cli(&cheer_args());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for sub in [&mut v311, &mut v5] {
        let line = sub.wait_line(&["stream/support/cheers "]);
        assert_seed_cheer(&payload_on(&line, "stream/support/cheers").unwrap());
    }
}

#[test]
fn what_a_bot_publishes_reaches_the_log_and_tail() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let mut tail = daemon.tail(&[]);
    let mut tail_json = daemon.tail(&["--json", "stream/synthetic/#"]);

    mosquitto_pub(
        daemon.mqtt_port(),
        "stream/synthetic/hype",
        r#"{"level": 4, "score": 12.5}"#,
        &[],
    );

    tail.wait_line(&["stream/synthetic/hype", "level=4"]);
    // The daemon's own hype meter has a retained level 0 there too; this is the bot's.
    let line = tail_json.wait_line(&["stream/synthetic/hype", "12.5"]);
    let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(parsed["event"]["level"], 4);
    let logged = wait_for("the hype message in the event log", || {
        daemon
            .log_lines()
            .into_iter()
            .find(|l| l["topic"] == "stream/synthetic/hype" && l["event"]["score"] == 12.5)
    });
    assert_eq!(
        logged["event"],
        serde_json::json!({"level": 4, "score": 12.5})
    );
    assert!(logged["seq"].as_u64().unwrap() >= 1);
}

#[test]
fn mqtt_js_over_websocket_receives_events() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let ws = daemon.runtime.mqtt_ws.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/ws_client.js");
    let mut client = Proc::spawn(
        "node ws_client.js",
        Command::new("node").args([script, &format!("ws://{ws}/mqtt"), "stream/#"]),
    );
    client.wait_line(&["subscribed"]);
    let out = daemon.cli(&cheer_args());
    assert!(out.status.success());
    let line = client.wait_line(&["stream/support/cheers "]);
    assert_seed_cheer(&payload_on(&line, "stream/support/cheers").unwrap());
}

#[test]
fn demo_shows_events_in_tail_at_once_on_a_fresh_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &["--demo"]);
    let mut tail = daemon.tail(&["--json"]);
    let line = tail.wait_line(&["\"test\":true"]);
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    // The first demo event is stamped at start-up; "within 5 seconds" is checked on the
    // daemon's own clock, not on how fast this machine runs the test.
    let first =
        chrono::DateTime::parse_from_rfc3339(event["event"]["time"].as_str().unwrap()).unwrap();
    let ready = daemon
        .log_lines()
        .into_iter()
        .find(|l| l["event"]["type"] == "system")
        .and_then(|l| l["event"]["time"].as_str().map(str::to_owned))
        .unwrap();
    let ready = chrono::DateTime::parse_from_rfc3339(&ready).unwrap();
    assert!(
        (first - ready).num_seconds() < 5,
        "first demo event {first}, ready {ready}"
    );
}

#[test]
fn clean_shutdown_says_offline_and_a_restart_says_online_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let mut sub = mosquitto_sub(daemon.mqtt_port(), "stream/system/ongwatch", &[]);
    assert_eq!(daemon.proc.terminate(), Some(0));
    sub.wait_line(&["stream/system/ongwatch", "\"state\":\"offline\""]);
    let before = daemon.log_lines();
    let first_seq = before.last().unwrap()["seq"].as_u64().unwrap();

    let restarted = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let mut sub = mosquitto_sub(restarted.mqtt_port(), "stream/system/ongwatch", &[]);
    sub.wait_line(&["stream/system/ongwatch", "\"state\":\"online\""]);
    // seq continues across restarts, without a gap.
    let lines = restarted.log_lines();
    assert_eq!(lines[before.len()]["seq"].as_u64().unwrap(), first_seq + 1);
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}

fn external_config(port: u16, client_id: &str) -> String {
    format!(
        "[mqtt]\nmode = \"external\"\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"{client_id}\"\n[http]\nlisten = \"127.0.0.1:0\"\n"
    )
}

#[test]
fn external_broker_restart_mid_burst_loses_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("mosquitto"));
    let port = broker.port;
    let daemon = Daemon::start_in(
        &dir.path().join("daemon"),
        &external_config(port, "ongwatch-restart"),
        &[],
    )
    .tap_wait_online(port);
    // A persistent QoS 1 subscriber: fixed id, no clean session.
    let sub_args = ["-i", "persistent-bot", "-c", "-V", "mqttv311"];
    let mut sub = mosquitto_sub(port, "stream/support/cheers", &sub_args);

    let mut burst = support::ongwatch();
    burst
        .current_dir(&daemon.dir)
        .args([
            "trigger", "cheer", "--amount", "100", "--repeat", "1000", "--rate", "400",
        ])
        .arg("--config")
        .arg(&daemon.config)
        .arg("--state-dir")
        .arg(&daemon.state_dir);
    let mut burst = Proc::spawn("trigger burst", &mut burst);

    wait_for("a third of the burst", || {
        (sub.count_lines("stream/support/cheers ") >= 300).then_some(())
    });
    let (broker_dir, port) = broker.stop();
    let _broker = Mosquitto::start_on(&broker_dir, port);

    assert_eq!(
        wait_for("the burst to finish", || burst
            .child
            .try_wait()
            .ok()
            .flatten())
        .code(),
        Some(0),
        "{:?}",
        burst.pump()
    );
    let ids = wait_for("all 1000 distinct ids", || {
        let ids: HashSet<String> = sub
            .pump()
            .iter()
            .filter_map(|l| payload_on(l, "stream/support/cheers"))
            .filter_map(|p| p["id"].as_str().map(str::to_owned))
            .collect();
        (ids.len() >= 1000).then_some(ids)
    });
    assert_eq!(ids.len(), 1000);
}

#[test]
fn external_broker_announces_a_killed_daemon_through_the_will() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("mosquitto"));
    let mut daemon = Daemon::start_in(
        &dir.path().join("daemon"),
        &external_config(broker.port, "ongwatch-will"),
        &[],
    )
    .tap_wait_online(broker.port);
    daemon.proc.kill9();
    // A subscriber arriving afterwards sees the retained offline state.
    let mut late = mosquitto_sub(broker.port, "stream/system/ongwatch", &[]);
    late.wait_line(&["stream/system/ongwatch", "\"state\":\"offline\""]);
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (config, key) in [
        ("[mqtt]\nlisten = \"127.0.0.1:99999\"\n", "mqtt.listen"),
        ("[mqtt]\nurl = \"ftp://nope\"\n", "mqtt.url"),
        (
            "[http]\nlisten = \"127.0.0.1:8080\"\ncolour = \"red\"\n",
            "http.colour",
        ),
        ("colour = \"red\"\n", "colour"),
        ("[bus\n", "not valid TOML"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, config).unwrap();
        for command in ["run", "check"] {
            let out = ongwatch()
                .arg(command)
                .arg("--config")
                .arg(&path)
                .arg("--state-dir")
                .arg(dir.path().join("state"))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command} {config:?}: {stderr}");
            assert!(stderr.contains(key), "{command} {config:?}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{command} {config:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn check_lists_every_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[mqtt]\nlisten = \"x\"\nws_listen = \"y\"\n[bus]\ntopic_root = \"#\"\n",
    )
    .unwrap();
    let out = ongwatch()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for key in ["mqtt.listen", "mqtt.ws_listen", "bus.topic_root"] {
        assert!(stderr.contains(key), "{stderr}");
    }
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
}

#[test]
fn unknown_trigger_type_is_a_usage_error() {
    let out = ongwatch().args(["trigger", "confetti"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown trigger type \"confetti\""));
}

trait WaitOnline {
    fn tap_wait_online(self, port: u16) -> Self;
}

impl WaitOnline for Daemon {
    /// Waits until the daemon's retained online state is on the external broker.
    fn tap_wait_online(self, port: u16) -> Self {
        let mut sub = mosquitto_sub(port, "stream/system/ongwatch", &[]);
        sub.wait_line(&["\"state\":\"online\""]);
        self
    }
}

#[test]
fn replay_republishes_a_log_as_test_events_with_new_ids() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let recording = dir.path().join("recorded.jsonl");
    std::fs::write(
        &recording,
        concat!(
            r#"{"seq":1,"topic":"stream/support/cheers","event":{"v":1,"id":"twitch:a","provider":"twitch","channel":"c","time":"2026-03-13T20:01:02.345Z","test":false,"type":"cheer","amount":5}}"#,
            "\n",
            "torn garbage line\n",
            r#"{"seq":2,"topic":"stream/system/ongwatch","event":{"state":"online"}}"#,
            "\n",
            r#"{"seq":3,"topic":"stream/community/follows","event":{"v":1,"id":"twitch:b","provider":"twitch","channel":"c","time":"2026-03-13T20:01:02.845Z","test":false,"type":"follow","user":"x"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let mut sub = mosquitto_sub(daemon.mqtt_port(), "stream/#", &[]);
    let out = daemon.cli(&["replay", recording.to_str().unwrap(), "--speed", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.starts_with("replay: 2 of 4 lines published from "),
        "{summary}"
    );
    assert!(
        summary.contains("system topics are not replayed"),
        "{summary}"
    );
    let cheer = payload_on(
        &sub.wait_line(&["stream/support/cheers "]),
        "stream/support/cheers",
    )
    .unwrap();
    assert_eq!(cheer["test"], true);
    assert!(
        cheer["id"]
            .as_str()
            .unwrap()
            .starts_with("twitch:a#replay-")
    );
    sub.wait_line(&["stream/community/follows "]);
    // The daemon's own state is not replayed, and the replay reaches the log like any bot's publish.
    assert_eq!(
        sub.count_lines("\"state\":\"online\""),
        1,
        "only the live daemon's retained state"
    );
    wait_for("the replayed follow in the log", || {
        daemon
            .log_lines()
            .into_iter()
            .find(|l| l["topic"] == "stream/community/follows")
    });
}

#[test]
fn mqtt_off_runs_without_a_bus_and_the_cli_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(
        dir.path(),
        "[mqtt]\nmode = \"off\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
        &[],
    );
    assert!(daemon.runtime.mqtt.is_none());
    let out = daemon.cli(&["trigger", "cheer"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtt.mode is \"off\""));
    wait_for("the online state in the log", || {
        daemon
            .log_lines()
            .into_iter()
            .find(|l| l["event"]["state"] == "online")
    });
}

#[test]
fn schema_prints_the_committed_documents() {
    let schema = ongwatch().arg("schema").output().unwrap();
    assert!(schema.status.success());
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/schema/events.schema.json"
    ))
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&schema.stdout), committed);
    let asyncapi = ongwatch().args(["schema", "--asyncapi"]).output().unwrap();
    let document: serde_json::Value = serde_json::from_slice(&asyncapi.stdout).unwrap();
    assert_eq!(document["asyncapi"], "3.0.0");
    assert!(document["channels"]["support_cheers"]["address"] == "{root}/support/cheers");
}
