//! The bot authors' kit (issue 19): every example in examples/ runs against the real daemon with
//! its real client library (paho-mqtt in the test venv, MQTT.js under node, the browser pages in
//! headless Chromium), and shows what its README says you will see.

#[path = "support/socketio_server.rs"]
mod socketio_server;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use support::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The test venv's python (paho-mqtt), made by the setup script if needed.
fn venv_python() -> PathBuf {
    socketio_server::venv_python().unwrap_or_else(|why| {
        panic!("missing test dependency: {why}; install it with scripts/setup-test-deps.sh")
    })
}

/// `node examples/js/<script>`, with MQTT.js from examples/node_modules.
fn node_example(script: &str) -> Command {
    assert!(
        repo().join("examples/node_modules/mqtt").exists(),
        "examples/node_modules is missing: run scripts/setup-test-deps.sh (npm ci in examples/)"
    );
    let mut command = Command::new("node");
    command.arg(repo().join("examples/js").join(script));
    command
}

fn python_example(script: &str) -> Command {
    let mut command = Command::new(venv_python());
    command
        .arg("-u")
        .arg(repo().join("examples/python").join(script));
    command
}

fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn trigger(daemon: &Daemon, args: &[&str]) {
    let out = daemon.cli(&[&["trigger"], args].concat());
    assert!(out.status.success(), "{}", output_text(&out));
}

/// A v5 publish by another client; true when the broker refused it.
fn squatter_refused(port: u16, topic: &str) -> bool {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-V", "mqttv5", "-i", "squatter", "-t", topic, "-m", "1"])
        .output()
        .expect("run mosquitto_pub");
    output_text(&out).to_lowercase().contains("not authorized")
}

/// examples/ongwatch.toml as the README runs it, with its listeners moved to free ports and the
/// example pages' origin set to where the test serves them.
fn example_config(pages_origin: &str, http_listen: &str) -> String {
    let text = std::fs::read_to_string(repo().join("examples/ongwatch.toml")).unwrap();
    assert!(text.contains("\"http://127.0.0.1:8000\""), "{text}");
    text.replace("\"http://127.0.0.1:8000\"", &format!("{pages_origin:?}"))
        .lines()
        .map(|line| match line {
            "[mqtt]" => "[mqtt]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"".to_owned(),
            "[http]" => format!("[http]\nlisten = {http_listen:?}"),
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn start_example_daemon(dir: &Path, pages_origin: &str, http_listen: &str) -> Daemon {
    let credentials = repo().join("examples/credentials.toml");
    Daemon::start_in(
        dir,
        &example_config(pages_origin, http_listen),
        &["--credentials", credentials.to_str().unwrap()],
    )
}

/// `python3 -m http.server` on a free port serving examples/browser, as the README runs it.
fn serve_pages() -> (Proc, String) {
    let mut server = Proc::spawn(
        "http.server",
        Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(repo().join("examples/browser")),
    );
    let line = server.wait_line(&["Serving HTTP on 127.0.0.1 port"]);
    let port: u16 = line
        .split("port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    (server, format!("http://127.0.0.1:{port}"))
}

/// Waits for the browser driver's verdict: "ok", or the first "fail: ..." line.
fn verdict(driver: &mut Proc) {
    let line = wait_for("the browser driver's verdict", || {
        driver
            .pump()
            .iter()
            .find(|l| *l == "ok" || l.starts_with("fail"))
            .cloned()
    });
    assert_eq!(line, "ok", "{:?}", driver.seen);
}

fn browser(url: &str, expected: &[&str]) -> Proc {
    Proc::spawn(
        "chromium",
        Command::new("node")
            .arg(repo().join("tests/browser/examples.js"))
            .arg(url)
            .args(expected),
    )
}

#[test]
fn the_alert_bot_prints_a_line_per_cheer() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let mut bot = Proc::spawn(
        "alert_bot.py",
        python_example("alert_bot.py").arg(format!("mqtt://127.0.0.1:{}", daemon.mqtt_port())),
    );
    bot.wait_line(&["alert bot: subscribed to stream/support/cheers"]);
    trigger(
        &daemon,
        &[
            "cheer",
            "--user",
            "alinsa_vix",
            "--amount",
            "2490",
            "--message",
            "Cheer2490 CHAOS",
        ],
    );
    bot.wait_line(&["alinsa_vix cheered 2490 bits: Cheer2490 CHAOS (test)"]);
    // Only cheers: a tip is not its topic.
    trigger(&daemon, &["tip", "--user", "tipper", "--amount", "5"]);
    trigger(&daemon, &["cheer", "--user", "marker", "--amount", "1"]);
    bot.wait_line(&["marker cheered 1 bits"]);
    assert_eq!(bot.count_lines("tipper"), 0);
}

#[test]
fn the_alert_bot_shows_a_redelivered_cheer_once() {
    // Under another root than the daemon's, the test may publish the cheer itself: twice, with
    // the same id, as an at-least-once redelivery would.
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let mut bot = Proc::spawn(
        "alert_bot.py",
        python_example("alert_bot.py")
            .arg(format!("mqtt://127.0.0.1:{port}"))
            .env("ONGWATCH_ROOT", "replay"),
    );
    bot.wait_line(&["alert bot: subscribed to replay/support/cheers"]);
    let cheer = |id: &str, user: &str| {
        json!({"v": 1, "id": id, "type": "cheer", "provider": "twitch", "channel": "c",
            "user": user, "amount": 5, "currency": "bits", "message": "hi", "anonymous": false,
            "time": "2026-03-13T20:01:02.345Z", "test": false})
        .to_string()
    };
    mosquitto_pub(
        port,
        "replay/support/cheers",
        &cheer("twitch:a", "twice"),
        &[],
    );
    mosquitto_pub(
        port,
        "replay/support/cheers",
        &cheer("twitch:a", "twice"),
        &[],
    );
    mosquitto_pub(
        port,
        "replay/support/cheers",
        &cheer("twitch:b", "marker"),
        &[],
    );
    bot.wait_line(&["marker cheered 5 bits: hi"]);
    assert_eq!(bot.count_lines("twice cheered"), 1, "{:?}", bot.seen);
}

#[test]
fn the_crowd_bot_owns_its_topic_and_leaves_a_will() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let mut bot = Proc::spawn(
        "crowd_bot.py",
        Command::new(venv_python())
            .arg("-u")
            .arg(repo().join("examples/python/crowd_bot.py"))
            .env("ONGWATCH_MQTT", format!("mqtt://127.0.0.1:{port}")),
    );
    bot.wait_line(&["crowd bot: subscribed, publishing stream/synthetic/crowd"]);
    trigger(&daemon, &["follow", "--user", "newfan"]);
    trigger(&daemon, &["chat", "--user", "talker", "--message", "hi"]);
    bot.wait_line(&["crowd: {\"chatters\": 1, \"follows\": 1}"]);
    bot.wait_line(&[
        "presence: online, owns stream/synthetic/crowd, stream/synthetic/crowd/status",
    ]);
    assert_eq!(
        retained(port, "stream/synthetic/crowd"),
        json!({"chatters": 1, "follows": 1})
    );
    assert!(squatter_refused(port, "stream/synthetic/crowd"));

    bot.kill9();
    wait_for("the will on the status topic", || {
        let out = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", "stream/synthetic/crowd/status", "-C", "1", "-W", "10"])
            .output()
            .ok()?;
        (String::from_utf8_lossy(&out.stdout).trim() == "offline").then_some(())
    });
    let presence = wait_for("the bot offline", || {
        let p = retained(port, "stream/system/bots/crowd-bot");
        (p["state"] == "offline").then_some(p)
    });
    assert_eq!(
        presence["owns"],
        json!(["stream/synthetic/crowd", "stream/synthetic/crowd/status"])
    );
    // Still its topic for a minute, so a restarting bot gets it back.
    assert!(squatter_refused(port, "stream/synthetic/crowd"));
}

#[test]
fn the_bpm_bot_owns_its_topic_by_login() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_example_daemon(dir.path(), "http://127.0.0.1:8000", "127.0.0.1:0");
    let port = daemon.mqtt_port();
    let mut sub = mosquitto_sub(port, "stream/synthetic/bpm", &[]);
    let mut bot = Proc::spawn(
        "bpm_bot.js",
        node_example("bpm_bot.js").arg(format!("mqtt://127.0.0.1:{port}")),
    );
    bot.wait_line(&["bpm bot: connected to", "as bpm"]);
    bot.wait_line(&["bpm bot: published 100 on stream/synthetic/bpm"]);
    sub.wait_line(&["stream/synthetic/bpm {\"bpm\":100}"]);
    assert!(squatter_refused(port, "stream/synthetic/bpm"));
    let bpm: Value = retained(port, "stream/synthetic/bpm");
    assert!(bpm["bpm"].is_u64(), "{bpm}");
    let presence = wait_for("the bot's presence", || {
        let p = retained(port, "stream/system/bots/bpm-bot");
        (p["published"].as_u64() > Some(0)).then_some(p)
    });
    assert_eq!(presence["login"], "bpm");

    // A wrong password is refused at the door, and the bot says so.
    let mut intruder = Proc::spawn(
        "bpm_bot.js with a wrong password",
        node_example("bpm_bot.js")
            .arg(format!("mqtt://127.0.0.1:{port}"))
            .env("ONGWATCH_BOT_PASSWORD", "wrong"),
    );
    intruder.wait_line(&["bpm bot: Connection refused: Bad User Name or Password"]);
    assert_eq!(intruder.count_lines("published"), 0);
}

#[test]
fn the_lights_bot_drives_the_lamp_page() {
    let dir = tempfile::tempdir().unwrap();
    let (_pages, origin) = serve_pages();
    let daemon = start_example_daemon(dir.path(), &origin, "127.0.0.1:0");
    let port = daemon.mqtt_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut bpm = Proc::spawn("bpm_bot.js", node_example("bpm_bot.js").arg(&url));
    bpm.wait_line(&["bpm bot: published 100"]);
    let mut lights = Proc::spawn("lights_bot.js", node_example("lights_bot.js").arg(&url));
    lights.wait_line(&["lights: listening on"]);
    lights.wait_line(&["lights: set", "\"pulse_bpm\":100"]);

    let page = format!(
        "{origin}/lights.html?mqtt=ws://{}/mqtt&http=http://{}",
        daemon.runtime.mqtt_ws.unwrap(),
        daemon.runtime.http.unwrap()
    );
    let mut lamp = browser(&page, &["fan: 2490 bits"]);
    lamp.wait_line(&["ready"]);
    trigger(&daemon, &["cheer", "--user", "fan", "--amount", "2490"]);
    lights.wait_line(&["lights: flash for fan (2490 bits)"]);
    verdict(&mut lamp);
}

#[test]
fn the_overlay_resumes_with_since_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_pages, origin) = serve_pages();
    let http_listen = format!("127.0.0.1:{}", free_port());
    let mut daemon = start_example_daemon(dir.path(), &origin, &http_listen);
    let page =
        format!("{origin}/overlay.html?http=http://{http_listen}&token=example-overlay-token");
    let mut overlay = browser(&page, &["first cheered 11 bits", "second cheered 22 bits"]);
    overlay.wait_line(&["ready"]);
    trigger(&daemon, &["cheer", "--user", "first", "--amount", "11"]);
    overlay.wait_line(&["shown first cheered 11 bits"]);
    let first_seq = daemon
        .log_lines()
        .iter()
        .find(|l| l["topic"] == "stream/support/cheers" && l["event"]["user"] == "first")
        .and_then(|l| l["seq"].as_u64())
        .expect("the first cheer in the log");

    // ongwatch restarts; the page reconnects from where it was.
    assert_eq!(daemon.proc.terminate(), Some(0));
    let daemon = start_example_daemon(dir.path(), &origin, &http_listen);
    trigger(&daemon, &["cheer", "--user", "second", "--amount", "22"]);
    verdict(&mut overlay);
    let text = overlay.wait_line(&["text "]);
    assert_eq!(
        text.matches("first cheered 11 bits").count(),
        1,
        "shown once: {text}"
    );
    // The number itself: `since=3` must not pass as `since=30`.
    let resumed_from: Vec<u64> = overlay
        .pump()
        .iter()
        .filter_map(|line| line.split("since=").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        resumed_from.contains(&first_seq),
        "the page reconnected with since={first_seq}: {:?}",
        overlay.pump()
    );
}
