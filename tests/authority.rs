//! Topic authority and bot presence on the shared bus (issue 13, CONTRACT §3), against the real
//! binary with real clients: mosquitto_pub (MQTT 3.1.1 and 5), MQTT.js, paho-mqtt running the
//! seed's example bot, mosquitto_sub as a bot that gets killed, and a browser-style WebSocket
//! handshake from a foreign origin.

#[path = "support/socketio_server.rs"]
mod socketio_server;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite;

const SPOOF: &str = r#"{"v":1,"id":"twitch:spoofed","provider":"twitch","type":"cheer","channel":"ongwatch","user":"spoofer","amount":100000,"currency":"bits","time":"2026-12-06T15:00:00.000Z","test":false}"#;

/// The whole HTTP/1.1 response to `GET path` from the daemon's web server.
fn http(daemon: &Daemon, path: &str) -> String {
    let addr = daemon.runtime.http.expect("HTTP address");
    let mut stream = TcpStream::connect(addr).expect("connect to the web server");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn http_get(daemon: &Daemon, path: &str) -> Value {
    let response = http(daemon, path);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

fn bot<'a>(bots: &'a Value, client_id: &str) -> Option<&'a Value> {
    bots["bots"]
        .as_array()?
        .iter()
        .find(|b| b["client_id"] == client_id)
}

fn pub_v(port: u16, version: &str, client_id: &str, topic: &str, message: &str) -> Output {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-V", version, "-i", client_id, "-t", topic, "-m", message])
        .output()
        .expect("run mosquitto_pub")
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// An MQTT 5 publish refused with PUBACK 0x87, as mosquitto_pub reports it.
fn assert_refused(output: &Output) {
    assert!(
        output_text(output)
            .to_lowercase()
            .contains("not authorized"),
        "{}",
        output_text(output)
    );
}

fn node_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bots")
        .join(name)
}

#[test]
fn nobody_can_speak_for_twitch() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let mut sub = mosquitto_sub(port, "stream/support/#", &[]);
    let web = daemon.runtime.http.unwrap();
    let (mut ws, _) =
        tungstenite::client::connect(format!("ws://{web}/ws/events?topics=stream/support/%23"))
            .expect("a /ws/events client");

    // MQTT 3.1.1: no negative acknowledgement exists, the publish is dropped.
    let v311 = pub_v(
        port,
        "mqttv311",
        "spoofer311",
        "stream/support/cheers",
        SPOOF,
    );
    assert!(v311.status.success(), "{}", output_text(&v311));
    // MQTT 5: PUBACK reason 0x87, which mosquitto_pub reports.
    for _ in 0..2 {
        let v5 = pub_v(port, "mqttv5", "spoofer5", "stream/support/cheers", SPOOF);
        assert_refused(&v5);
    }
    // MQTT.js, MQTT 5: the reason code itself.
    let js = Command::new("node")
        .arg(node_script("mqttjs_publish.js"))
        .args([
            &format!("mqtt://127.0.0.1:{port}"),
            "stream/support/cheers",
            SPOOF,
        ])
        .output()
        .expect("run node");
    assert_eq!(
        String::from_utf8_lossy(&js.stdout).trim(),
        "refused 135",
        "{}",
        output_text(&js)
    );

    // A real cheer afterwards marks the end: everything before it has been delivered.
    let trigger = daemon.cli(&["trigger", "cheer", "--user", "marker", "--amount", "5"]);
    assert!(trigger.status.success(), "{}", output_text(&trigger));
    sub.wait_line(&["stream/support/cheers", "marker"]);
    loop {
        let tungstenite::Message::Text(text) = ws.read().expect("a frame") else {
            continue;
        };
        assert!(!text.contains("spoofer"), "a /ws/events client got {text}");
        if text.contains("marker") {
            break;
        }
    }
    assert_eq!(sub.count_lines("spoofer"), 0, "a subscriber got the spoof");
    assert!(
        !daemon
            .log_lines()
            .iter()
            .any(|l| l["topic"] == "stream/support/cheers" && l["event"]["user"] == "spoofer"),
        "the spoof is in the event log"
    );

    let bots = http_get(&daemon, "/api/bots");
    let spoofer = bot(&bots, "spoofer5").expect("spoofer5 in /api/bots");
    assert_eq!(spoofer["refused"], 2, "{bots}");
    assert_eq!(spoofer["refusals"][0]["rule"], "reserved", "{bots}");
    assert_eq!(bot(&bots, "spoofer311").unwrap()["refused"], 1, "{bots}");
    let metrics = http(&daemon, "/metrics");
    assert!(
        metrics.contains("ongwatch_bot_refused_total{client_id=\"spoofer5\"} 2"),
        "{metrics}"
    );
    daemon.proc.pump();
    let logged = daemon
        .proc
        .seen
        .iter()
        .filter(|l| l.contains("refused a publish") && l.contains("spoofer5"))
        .count();
    assert_eq!(logged, 1, "one log line per client and topic");
    assert!(
        !daemon
            .proc
            .seen
            .iter()
            .any(|l| l.contains("twitch:spoofed")),
        "a refusal never logs the payload"
    );
}

#[test]
fn the_seed_bot_takes_over_the_hype_topic_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let mut hype = mosquitto_sub(port, "stream/synthetic/hype", &[]);
    let Some(python) = require(socketio_server::venv_python()) else {
        return;
    };
    let mut seed = seed_bot(&python, port);
    let trigger = daemon.cli(&["trigger", "cheer", "--user", "fan", "--amount", "2490"]);
    assert!(trigger.status.success(), "{}", output_text(&trigger));
    seed.wait_line(&["cheer fan 2490"]);
    hype.wait_line(&["stream/synthetic/hype", "\"level\": 1, \"score\": 2490"]);

    // The built-in meter stepped aside and says so.
    wait_for("the hype meter to step aside", || {
        let state = retained(port, "stream/system/providers/hype");
        (state["state"] == "disabled").then_some(state)
    });
    let aside_seq = daemon
        .log_lines()
        .iter()
        .filter(|l| l["topic"] == "stream/system/providers/hype")
        .filter_map(|l| l["seq"].as_u64())
        .max()
        .expect("the meter's state in the log");
    // More support would raise the built-in level: it stays the bot's topic.
    let trigger = daemon.cli(&["trigger", "cheer", "--user", "fan2", "--amount", "100000"]);
    assert!(trigger.status.success());
    seed.wait_line(&["published hype 2"]);
    hype.wait_line(&["stream/synthetic/hype", "\"level\": 2, \"score\": 100000"]);
    // Once the meter has taken a later record off its queue, whatever it made of the cheer is
    // on the bus before anything triggered after that.
    let marker = daemon.cli(&["trigger", "follow", "--user", "marker"]);
    assert!(marker.status.success());
    wait_for("the meter to take the marker", || {
        let logged = daemon
            .log_lines()
            .iter()
            .any(|l| l["event"]["user"] == "marker");
        let status = http_get(&daemon, "/api/status");
        (logged && status["outputs"]["hype"]["depth"] == 0).then_some(())
    });
    let marker = daemon.cli(&["trigger", "follow", "--user", "marker2"]);
    assert!(marker.status.success());
    wait_for("the second marker in the log", || {
        daemon
            .log_lines()
            .iter()
            .any(|l| l["event"]["user"] == "marker2")
            .then_some(())
    });
    let builtin_after: Vec<Value> = daemon
        .log_lines()
        .into_iter()
        .filter(|l| {
            l["topic"] == "stream/synthetic/hype"
                && l["event"]["provider"] == "ongwatch"
                && l["seq"].as_u64() > Some(aside_seq)
        })
        .collect();
    assert!(
        builtin_after.is_empty(),
        "the meter published after stepping aside: {builtin_after:?}"
    );
    assert_eq!(retained(port, "stream/synthetic/hype")["level"], 2);

    // Presence: the bot is online and owns the topic.
    let presence = wait_for("the bot's presence", || {
        let p = retained(port, "stream/system/bots/seed-hype-bot");
        (p["published"] == 2).then_some(p)
    });
    assert_eq!(presence["state"], "online");
    assert_eq!(presence["owns"], json!(["stream/synthetic/hype"]));

    // A second publisher is refused while the bot is here, and within 60 s after it left.
    let other = || {
        pub_v(
            port,
            "mqttv5",
            "other",
            "stream/synthetic/hype",
            "{\"level\":9}",
        )
    };
    assert_refused(&other());
    seed.kill9();
    assert_refused(&other());
}

#[test]
fn a_topic_is_free_again_sixty_seconds_after_its_owner_left() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let first = pub_v(port, "mqttv5", "first", "stream/synthetic/crowd", "1");
    assert!(first.status.success(), "{}", output_text(&first));
    let left = Instant::now();
    let second = pub_v(port, "mqttv5", "second", "stream/synthetic/crowd", "2");
    assert_refused(&second);
    // The owner's grace is a minute of real time; the broker has no clock to move. It runs from
    // when the daemon saw the owner go, a moment after its publish returned: asked again until
    // the broker takes it, with room for a slow machine but not for a longer grace.
    std::thread::sleep(Duration::from_secs(60));
    loop {
        let second = pub_v(port, "mqttv5", "second", "stream/synthetic/crowd", "2");
        if second.status.success() {
            break;
        }
        assert!(
            left.elapsed() < Duration::from_secs(75),
            "still refused {:?} after the owner left: {}",
            left.elapsed(),
            output_text(&second)
        );
        std::thread::sleep(OFTEN);
    }
    // Presence goes out through the hub after the broker took the publish: wait for it rather
    // than read the first retained copy, which may still be the one from the connect.
    wait_for("the second client's presence to own the topic", || {
        let presence = retained(port, "stream/system/bots/second");
        (presence["owns"] == json!(["stream/synthetic/crowd"])).then_some(())
    });
}

#[test]
fn a_configured_bot_owns_its_topic_on_every_listener() {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("credentials.toml");
    std::fs::write(
        &credentials,
        "[mqtt.users]\nbpm = \"bpm-s3cret\"\nlights = \"l1ghts-s3cret\"\n",
    )
    .unwrap();
    let config = "[mqtt]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n[bots.bpm]\npublish = [\"stream/synthetic/bpm\"]\n";
    let daemon = Daemon::start_in(
        dir.path(),
        config,
        &["--credentials", credentials.to_str().unwrap()],
    );
    // The same rules on a listener that makes everyone log in.
    let public_dir = dir.path().join("public");
    let public = Daemon::start_in(
        &public_dir,
        &config.replace("listen = \"127.0.0.1:0\"\nws", "listen = \"0.0.0.0:0\"\nws"),
        &["--credentials", credentials.to_str().unwrap()],
    );
    for port in [daemon.mqtt_port(), public.mqtt_port()] {
        let login = |user: &str, password: &str| {
            Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
                .args(["-V", "mqttv5", "-t", "stream/synthetic/bpm", "-m", "120"])
                .args(["-u", user, "-P", password])
                .output()
                .unwrap()
        };
        let bpm = login("bpm", "bpm-s3cret");
        assert!(bpm.status.success(), "{}", output_text(&bpm));
        let lights = login("lights", "l1ghts-s3cret");
        assert_refused(&lights);
    }
    let anonymous = pub_v(
        daemon.mqtt_port(),
        "mqttv5",
        "anon",
        "stream/synthetic/bpm",
        "1",
    );
    assert_refused(&anonymous);
}

#[test]
fn a_foreign_web_page_cannot_open_the_broker_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let ws = daemon.runtime.mqtt_ws.expect("MQTT WebSocket address");
    let http_port = daemon.runtime.http.unwrap().port();
    let handshake = |origin: &str| {
        let mut stream = TcpStream::connect(ws).unwrap();
        write!(
            stream,
            "GET /mqtt HTTP/1.1\r\nHost: {ws}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n{origin}\r\n"
        )
        .unwrap();
        let mut head = [0u8; 64];
        let n = stream.read(&mut head).unwrap();
        String::from_utf8_lossy(&head[..n]).into_owned()
    };
    assert!(
        handshake("Origin: https://evil.example\r\n").starts_with("HTTP/1.1 403"),
        "a foreign origin is refused before any MQTT"
    );
    assert!(
        handshake(&format!("Origin: http://127.0.0.1:{http_port}\r\n")).starts_with("HTTP/1.1 101")
    );
    assert!(
        handshake("").starts_with("HTTP/1.1 101"),
        "non-browser clients send no origin"
    );

    // A real MQTT.js client through the front door still works end to end.
    let mut client = Proc::spawn(
        "mqtt.js",
        Command::new("node")
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/ws_client.js"))
            .args([&format!("ws://{ws}/mqtt"), "stream/support/#"]),
    );
    client.wait_line(&["subscribed"]);
    let trigger = daemon.cli(&["trigger", "cheer", "--user", "viaws", "--amount", "1"]);
    assert!(trigger.status.success());
    client.wait_line(&["stream/support/cheers", "viaws"]);
}

#[test]
fn a_killed_bot_goes_offline() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let mut bot = Proc::spawn(
        "bot",
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-i", "lightbot", "-k", "5", "-t", "stream/#"]),
    );
    wait_for("the bot online", || {
        let p = retained(port, "stream/system/bots/lightbot");
        (p["state"] == "online").then_some(())
    });
    bot.kill9();
    let presence = wait_for("the bot offline", || {
        let p = retained(port, "stream/system/bots/lightbot");
        (p["state"] == "offline").then_some(p)
    });
    assert!(presence["since"].is_string(), "{presence}");
}

#[test]
fn an_external_mosquitto_with_the_generated_acl_enforces_authority() {
    let dir = tempfile::tempdir().unwrap();
    let broker_dir = dir.path().join("mosquitto");
    std::fs::create_dir_all(&broker_dir).unwrap();
    let port = free_port();
    let config = format!(
        "[mqtt]\nmode = \"external\"\nurl = \"mqtt://ongwatch:d4emon-pw@127.0.0.1:{port}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[bots.bpm]\npublish = [\"stream/synthetic/bpm\"]\n"
    );
    let config_path = dir.path().join("acl.toml");
    std::fs::write(&config_path, &config).unwrap();
    let acl = ongwatch()
        .args(["acl", "--mosquitto", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(acl.status.success(), "{}", output_text(&acl));
    let acl_text = String::from_utf8(acl.stdout).unwrap();
    assert!(
        acl_text.contains("user ongwatch\ntopic readwrite #"),
        "{acl_text}"
    );
    assert!(
        acl_text.contains("user bpm\ntopic write stream/synthetic/bpm"),
        "{acl_text}"
    );
    // The test's own readiness probes, as a streamer adds topics of their own.
    std::fs::write(
        broker_dir.join("acl"),
        format!("pattern write probe/#\n{acl_text}"),
    )
    .unwrap();
    let passwords = broker_dir.join("passwords");
    std::fs::write(&passwords, "ongwatch:d4emon-pw\nbpm:bpm-pw\n").unwrap();
    let converted = Command::new("mosquitto_passwd")
        .arg("-U")
        .arg(&passwords)
        .output()
        .unwrap();
    assert!(converted.status.success(), "{}", output_text(&converted));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["acl", "passwords"] {
            let _ = std::fs::set_permissions(
                broker_dir.join(file),
                std::fs::Permissions::from_mode(0o644),
            );
        }
    }
    let conf = broker_dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npassword_file {}\nacl_file {}\nlog_dest stderr\nlog_type error\n",
            passwords.display(),
            broker_dir.join("acl").display()
        ),
    )
    .unwrap();
    let mosquitto_bin = if std::path::Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    };
    let _broker = Proc::spawn(
        "mosquitto",
        Command::new(mosquitto_bin).arg("-c").arg(&conf),
    );
    wait_for("mosquitto to listen", || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    let mut sub = mosquitto_sub(port, "stream/#", &[]);

    let spoof = pub_v(port, "mqttv5", "spoofer", "stream/support/cheers", SPOOF);
    assert_refused(&spoof);
    let bpm = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-V", "mqttv5", "-t", "stream/synthetic/bpm", "-m", "128"])
        .args(["-u", "bpm", "-P", "bpm-pw"])
        .output()
        .unwrap();
    assert!(bpm.status.success(), "{}", output_text(&bpm));
    sub.wait_line(&["stream/synthetic/bpm 128"]);
    let squatter = pub_v(port, "mqttv5", "squatter", "stream/synthetic/bpm", "1");
    assert_refused(&squatter);
    let hype = pub_v(
        port,
        "mqttv5",
        "hypebot",
        "stream/synthetic/hype",
        "{\"level\":3}",
    );
    assert!(hype.status.success(), "{}", output_text(&hype));

    // The daemon, logged in as ongwatch, still publishes its own topics.
    let trigger = daemon.cli(&["trigger", "cheer", "--user", "real", "--amount", "7"]);
    assert!(trigger.status.success(), "{}", output_text(&trigger));
    sub.wait_line(&["stream/support/cheers", "\"user\":\"real\""]);
    assert_eq!(sub.count_lines("spoofer"), 0);
}
