//! Logins and command rights on the embedded broker (issue 8), checked with Debian's mosquitto
//! clients: a listener on a non-loopback address refuses anonymous and wrong logins, a
//! `[mqtt.users]` login works, only `[mqtt] command_clients` may publish commands, the CLI
//! keeps working through the daemon's local login, and no password reaches the daemon's output.

mod support;

use std::process::{Command, Output};
use std::time::Duration;

use support::*;

const LIGHTS: (&str, &str) = ("lights", "l1ght-s3cret-pw");
const OVERLAY: (&str, &str) = ("overlay", "0verlay-s3cret-pw");

/// Listens on every interface, so clients must log in even from 127.0.0.1.
const CONFIG: &str = "[mqtt]\nlisten = \"0.0.0.0:0\"\nws_listen = \"127.0.0.1:0\"\ncommand_clients = [\"lights\"]\n[http]\nlisten = \"127.0.0.1:0\"\n";

fn credentials() -> String {
    format!(
        "[mqtt.users]\n{} = \"{}\"\n{} = \"{}\"\n",
        LIGHTS.0, LIGHTS.1, OVERLAY.0, OVERLAY.1
    )
}

fn login_args(login: Option<(&str, &str)>) -> Vec<String> {
    login
        .map(|(user, password)| vec!["-u".into(), user.into(), "-P".into(), password.into()])
        .unwrap_or_default()
}

/// One QoS 1 publish with MQTT 5, which reports a refused publish instead of dropping it.
fn publish(port: u16, login: Option<(&str, &str)>, topic: &str, message: &str) -> Output {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-V", "mqttv5", "-t", topic, "-m", message])
        .args(login_args(login))
        .output()
        .expect("run mosquitto_pub")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A subscriber logged in as `login`, ready once its own probe came back.
fn subscriber(port: u16, login: (&str, &str), filter: &str) -> Proc {
    let probe = format!("probe/{}", uuid::Uuid::new_v4().simple());
    let mut command = Command::new("mosquitto_sub");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v", "-q", "1"])
        .args(["-t", filter, "-t", &probe])
        .args(login_args(Some(login)));
    let mut sub = Proc::spawn("mosquitto_sub", &mut command);
    wait_for("the subscriber", || {
        assert!(publish(port, Some(login), &probe, "probe").status.success());
        std::thread::sleep(Duration::from_millis(50));
        (sub.count_lines(&probe) > 0).then_some(())
    });
    sub
}

fn cheers_from(daemon: &Daemon, user: &str) -> usize {
    daemon
        .log_lines()
        .iter()
        .filter(|line| line["topic"] == "stream/support/cheers" && line["event"]["user"] == user)
        .count()
}

#[test]
fn a_public_listener_needs_a_login_and_commands_need_a_command_client() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credentials.toml"), credentials()).unwrap();
    let mut daemon = Daemon::start_in(dir.path(), CONFIG, &[]);
    let port = daemon.mqtt_port();

    let anonymous = publish(port, None, "stream/synthetic/bpm", "{}");
    assert!(!anonymous.status.success(), "{}", text(&anonymous));
    let wrong = publish(
        port,
        Some((LIGHTS.0, "not-the-password")),
        "stream/synthetic/bpm",
        "{}",
    );
    assert!(!wrong.status.success(), "{}", text(&wrong));
    let stranger = publish(
        port,
        Some(("stranger", LIGHTS.1)),
        "stream/synthetic/bpm",
        "{}",
    );
    assert!(!stranger.status.success(), "{}", text(&stranger));
    daemon
        .proc
        .wait_line(&["refused an MQTT login", "stranger"]);

    let mut overlay = subscriber(port, OVERLAY, "stream/support/cheers");

    // Not a command client: refused, logged once, and nothing happens.
    let refused = publish(
        port,
        Some(OVERLAY),
        "stream/command/trigger",
        r#"{"type":"cheer","user":"fromoverlay","amount":100}"#,
    );
    assert!(
        text(&refused).to_lowercase().contains("not authorized"),
        "{}",
        text(&refused)
    );
    daemon
        .proc
        .wait_line(&["refused a publish", "overlay", "command_clients"]);

    // A command client drives the daemon; the overlay sees the result.
    let allowed = publish(
        port,
        Some(LIGHTS),
        "stream/command/trigger",
        r#"{"type":"cheer","user":"fromlights","amount":100}"#,
    );
    assert!(allowed.status.success(), "{}", text(&allowed));
    overlay.wait_line(&["stream/support/cheers", "fromlights"]);

    // The CLI logs in as the daemon's local user without being told anything.
    let cli = daemon.cli(&["trigger", "cheer", "--user", "fromcli", "--amount", "5"]);
    assert!(cli.status.success(), "{}", text(&cli));
    overlay.wait_line(&["stream/support/cheers", "fromcli"]);
    let login_file = daemon.state_dir.join("mqtt-local-login.json");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&login_file).unwrap().permissions()
        ) & 0o777,
        0o600
    );

    // The log is its own output: wait for the later event there, then look at the earlier ones.
    wait_for("the CLI's cheer in the log", || {
        (cheers_from(&daemon, "fromcli") == 1).then_some(())
    });
    assert_eq!(cheers_from(&daemon, "fromoverlay"), 0);
    assert_eq!(cheers_from(&daemon, "fromlights"), 1);

    daemon.proc.terminate();
    let output = daemon.proc.pump().join("\n");
    let local = std::fs::read_to_string(&login_file).unwrap_or_default();
    for secret in [LIGHTS.1, OVERLAY.1] {
        assert!(
            !output.contains(secret),
            "a password in the daemon's output"
        );
    }
    let local_password = serde_json::from_str::<serde_json::Value>(&local)
        .ok()
        .and_then(|v| v["password"].as_str().map(str::to_owned))
        .unwrap_or_default();
    assert!(local_password.is_empty() || !output.contains(&local_password));
}

#[test]
fn loopback_listeners_stay_open_but_reject_wrong_logins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credentials.toml"), credentials()).unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();
    let anonymous = publish(port, None, "stream/command/trigger", r#"{"type":"follow"}"#);
    assert!(anonymous.status.success(), "{}", text(&anonymous));
    let right = publish(port, Some(OVERLAY), "stream/synthetic/bpm", "{}");
    assert!(right.status.success(), "{}", text(&right));
    let wrong = publish(
        port,
        Some((OVERLAY.0, "nope")),
        "stream/synthetic/bpm",
        "{}",
    );
    assert!(!wrong.status.success(), "{}", text(&wrong));
}

#[test]
fn a_public_listener_without_users_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ongwatch.toml");
    std::fs::write(
        &config,
        "[mqtt]\nlisten = \"0.0.0.0:0\"\ncommand_clients = [\"ghost\"]\n",
    )
    .unwrap();
    for command in ["run", "check"] {
        let output = ongwatch()
            .current_dir(dir.path())
            .args([command, "--config"])
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("mqtt.listen"), "{command}: {stderr}");
        assert!(stderr.contains("[mqtt.users]"), "{command}: {stderr}");
        assert!(stderr.contains("\"ghost\""), "{command}: {stderr}");
    }
}
