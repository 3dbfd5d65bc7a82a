//! The embedded broker's MQTT guarantees, checked with Debian's mosquitto clients and MQTT.js
//! (they have regressed in some broker versions): retained messages, wills, QoS 1 with
//! persistent sessions, and MQTT 3.1.1 and 5 on the same port and over WebSocket.

mod support;

use std::process::Command;

use support::*;

#[test]
fn retained_messages_reach_late_subscribers_until_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    // One client id: the first publisher of a topic owns it (topic authority).
    mosquitto_pub(
        port,
        "stream/synthetic/bpm",
        r#"{"bpm":128}"#,
        &["-r", "-i", "bpm"],
    );
    for version in ["mqttv311", "mqttv5"] {
        let mut late = mosquitto_sub(port, "stream/synthetic/bpm", &["-V", version]);
        late.wait_line(&["stream/synthetic/bpm", "128"]);
    }
    // An empty retained message clears it: a newcomer gets only the live message after it.
    mosquitto_pub(port, "stream/synthetic/bpm", "", &["-r", "-i", "bpm"]);
    let mut fresh = mosquitto_sub(port, "stream/synthetic/bpm", &[]);
    mosquitto_pub(
        port,
        "stream/synthetic/bpm",
        r#"{"bpm":90}"#,
        &["-i", "bpm"],
    );
    fresh.wait_line(&[r#"stream/synthetic/bpm {"bpm":90}"#]);
    // The whole payload: the readiness probe's random topic may contain the digits "128".
    assert_eq!(fresh.count_lines(r#"{"bpm":128}"#), 0, "{:?}", fresh.pump());
}

#[test]
fn a_clients_will_is_published_when_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let mut watcher = mosquitto_sub(port, "bots/lights/status", &[]);
    let mut bot = mosquitto_sub(
        port,
        "bots/lights/cmd",
        &[
            "--will-topic",
            "bots/lights/status",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
        ],
    );
    bot.kill9();
    watcher.wait_line(&["bots/lights/status gone"]);
}

#[test]
fn qos1_messages_wait_for_a_persistent_subscriber() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    for version in ["mqttv311", "mqttv5"] {
        let id = format!("lighting-bot-{version}");
        let session = ["-i", id.as_str(), "-c", "-V", version];
        let mut bot = mosquitto_sub(port, "stream/support/#", &session);
        bot.terminate();
        for amount in 1..=5 {
            let out = daemon.cli(&["trigger", "cheer", "--amount", &amount.to_string()]);
            assert!(out.status.success());
        }
        let mut back = Proc::spawn(
            "mosquitto_sub (resumed)",
            Command::new("mosquitto_sub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v", "-q", "1"])
                .args(["-t", "stream/support/#"])
                .args(session),
        );
        // Each of the five by its amount: a QoS 1 duplicate must not stand in for a lost one.
        wait_for("the 5 cheers queued while the bot was away", || {
            let mut amounts: Vec<u64> = back
                .pump()
                .iter()
                .filter_map(|line| payload_on(line, "stream/support/cheers"))
                .filter_map(|p| p["amount"].as_u64())
                .collect();
            amounts.sort_unstable();
            amounts.dedup();
            (amounts == [1, 2, 3, 4, 5]).then_some(())
        });
    }
}

#[test]
fn mqtt_5_over_websocket_works_for_browsers() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let ws = daemon.runtime.mqtt_ws.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/ws_client.js");
    let mut client = Proc::spawn(
        "node ws_client.js (MQTT 5)",
        Command::new("node").args([
            script,
            &format!("ws://{ws}/mqtt"),
            "stream/synthetic/#",
            "5",
        ]),
    );
    client.wait_line(&["subscribed"]);
    mosquitto_pub(
        daemon.mqtt_port(),
        "stream/synthetic/hype",
        r#"{"level":3,"score":9}"#,
        &[],
    );
    client.wait_line(&["stream/synthetic/hype", "\"level\":3"]);
}

/// The daemon publishes into its embedded broker and takes what clients publish from it in
/// process (src/mqtt/inproc.rs), not as a client of itself: what clients see must not change.
#[test]
fn the_daemon_in_process_keeps_qos1_retained_wills_and_no_local() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();

    // Retained: the daemon's online state reaches a late subscriber with the retain flag, on
    // 3.1.1 and 5.
    for version in ["mqttv311", "mqttv5"] {
        let mut late = mosquitto_sub(
            port,
            "stream/system/ongwatch",
            &["-V", version, "-F", "%r %t %p"],
        );
        late.wait_line(&["1 stream/system/ongwatch", r#""state":"online""#]);
    }

    // QoS 1: an event published while a persistent subscriber is away is queued for it.
    let session = ["-i", "away-bot", "-c", "-V", "mqttv5"];
    let mut away = mosquitto_sub(port, "stream/support/#", &session);
    away.terminate();
    assert!(
        daemon
            .cli(&["trigger", "cheer", "--amount", "7"])
            .status
            .success()
    );
    let mut back = Proc::spawn(
        "mosquitto_sub (resumed)",
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v", "-q", "1"])
            .args(["-t", "stream/support/#"])
            .args(session),
    );
    back.wait_line(&["stream/support/cheers", r#""amount":7"#]);

    // A bot's publish and a bot's will come into the daemon (logged as from MQTT) and reach a
    // subscriber once: the daemon does not publish back what it got from the broker.
    let mut watcher = mosquitto_sub(port, "stream/synthetic/#", &[]);
    mosquitto_pub(
        port,
        "stream/synthetic/bpm",
        r#"{"id":"bpm-1","bpm":128}"#,
        &["-i", "bpm"],
    );
    let mut lights = mosquitto_sub(
        port,
        "stream/synthetic/lights/cmd",
        &[
            "--will-topic",
            "stream/synthetic/lights",
            "--will-payload",
            r#"{"id":"lights-gone"}"#,
            "--will-qos",
            "1",
        ],
    );
    lights.kill9();
    watcher.wait_line(&["stream/synthetic/lights", "lights-gone"]);
    for id in ["bpm-1", "lights-gone"] {
        wait_for(&format!("{id} in the event log"), || {
            daemon
                .log_lines()
                .iter()
                .any(|l| l["event"]["id"] == id && l["origin"] == "mqtt")
                .then_some(())
        });
    }
    // A marker after them: once it is through, any copy sent back would be through too.
    mosquitto_pub(
        port,
        "stream/synthetic/bpm",
        r#"{"id":"bpm-2","bpm":90}"#,
        &["-i", "bpm"],
    );
    watcher.wait_line(&["stream/synthetic/bpm", "bpm-2"]);
    assert_eq!(watcher.count_lines("bpm-1"), 1, "{:?}", watcher.pump());
    assert_eq!(
        watcher.count_lines("lights-gone"),
        1,
        "{:?}",
        watcher.pump()
    );
    let logged = |id: &str| {
        daemon
            .log_lines()
            .iter()
            .filter(|l| l["event"]["id"] == id)
            .count()
    };
    assert_eq!(logged("bpm-1"), 1);
    assert_eq!(logged("lights-gone"), 1);
}
