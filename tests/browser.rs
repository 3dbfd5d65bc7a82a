//! The pages in a real browser: Debian's headless Chromium driven by playwright-core
//! (tests/browser/run.js), against the real daemon. Screenshots go to target/test-artifacts/.
//! `scripts/setup-test-deps.sh` installs Chromium and playwright-core.

#[path = "support/fake_twitch.rs"]
mod fake_twitch;
#[path = "support/obs.rs"]
mod obs;
#[path = "support/socketio_server.rs"]
mod socketio_server;
mod support;

use std::path::PathBuf;
use std::process::Command;

use support::*;

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// `node tests/browser/run.js <scenario> <base url> <artifacts> <args...>`.
fn browser(daemon: &Daemon, scenario: &str, args: &[&str]) -> Proc {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/run.js");
    let base = format!("http://{}", daemon.runtime.http.expect("HTTP address"));
    let mut command = Command::new("node");
    command
        .arg(script)
        .arg(scenario)
        .arg(base)
        .arg(artifacts())
        .args(args);
    Proc::spawn(&format!("browser {scenario}"), &mut command)
}

/// Waits for the script to finish and fails with everything it printed unless it said "ok".
fn expect_ok(mut run: Proc) {
    let status = wait_for("the browser script to finish", || {
        run.child.try_wait().ok().flatten()
    });
    let output = run.pump().join("\n");
    assert!(
        status.success() && output.lines().any(|l| l == "ok"),
        "{output}"
    );
}

fn start() -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    (dir, daemon)
}

#[test]
fn dashboard_loads_cleanly_and_a_test_button_shows_the_event_in_the_feed() {
    let (_dir, daemon) = start();
    expect_ok(browser(&daemon, "dashboard", &["button_fan", "321"]));
}

#[test]
fn dashboard_obs_card_shows_the_scene_and_switches_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(obs) = obs::Obs::start(dir.path()) else {
        return;
    };
    let daemon_dir = dir.path().join("daemon");
    std::fs::create_dir_all(&daemon_dir).unwrap();
    std::fs::write(
        daemon_dir.join("credentials.toml"),
        format!("[obs.test]\npassword = \"{}\"\n", obs.password),
    )
    .unwrap();
    let config = format!("{EPHEMERAL}[obs]\nurl = \"{}\"\n", obs.url());
    let daemon = Daemon::start_in(&daemon_dir, &config, &[]);
    expect_ok(browser(&daemon, "obs", &["Alerts"]));
    assert_eq!(obs.client().program_scene(), "Alerts");
}

#[test]
fn alerts_overlay_shows_a_triggered_cheer_with_user_and_amount() {
    let (_dir, daemon) = start();
    let mut run = browser(&daemon, "alerts", &["alinsa_vix", "2490"]);
    run.wait_line(&["ready"]);
    // Below min_amount=100: filtered out, so the alert shown must be the real one.
    let small = daemon.cli(&["trigger", "cheer", "--user", "tiny", "--amount", "5"]);
    assert!(small.status.success());
    let out = daemon.cli(&[
        "trigger",
        "cheer",
        "--user",
        "alinsa_vix",
        "--amount",
        "2490",
        "--message",
        "Cheer2490 CHAOS",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_ok(run);
}

#[test]
fn mqtt_js_hype_overlay_shows_a_published_hype_level() {
    let (_dir, daemon) = start();
    let mut run = browser(&daemon, "hype", &["7"]);
    run.wait_line(&["ready"]);
    mosquitto_pub(
        daemon.mqtt_port(),
        "stream/synthetic/hype",
        r#"{"level": 7, "score": 70}"#,
        &["-r"],
    );
    expect_ok(run);
}

#[test]
fn dashboard_login_button_shows_the_device_code_and_updates_when_done() {
    let twitch = fake_twitch::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{}'\n", fake_twitch::CLIENT_ID),
    )
    .unwrap();
    let config = format!("{EPHEMERAL}{}", fake_twitch::config_section(&twitch));
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    let mut run = browser(&daemon, "login", &[fake_twitch::LOGIN]);
    let line = run.wait_line(&["code "]);
    let code = line.trim_start_matches("code ").trim();
    assert_eq!(twitch.pending_user_codes(), [code]);
    assert!(twitch.approve_device(code, fake_twitch::LOGIN, fake_twitch::USER_ID));
    expect_ok(run);
}

/// Twitch answers 403 to a subscription whose scope the login lacks; the Providers card names
/// the scope to grant next to that subscription.
#[test]
fn dashboard_names_the_scope_a_refused_subscription_misses() {
    let twitch = fake_twitch::start();
    let dir = tempfile::tempdir().unwrap();
    fake_twitch::logged_in(&twitch, dir.path(), "");
    let config = format!(
        "{EPHEMERAL}{}subscriptions = [\"channel.goal.begin\", \"channel.follow\"]\n",
        fake_twitch::config_section(&twitch)
    );
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    expect_ok(browser(
        &daemon,
        "missing_scope",
        &["channel.goal.begin", "channel:read:goals"],
    ));
}

#[test]
fn no_dashboard_card_overflows_at_1280_and_1920_px() {
    // A logged-in Twitch at the fake, so the Providers card lists every subscription, and the
    // demo, so the hype, totals and feed cards have content.
    let twitch = fake_twitch::start();
    let dir = tempfile::tempdir().unwrap();
    fake_twitch::logged_in(&twitch, dir.path(), "");
    let config = format!("{EPHEMERAL}{}", fake_twitch::config_section(&twitch));
    let daemon = Daemon::start_in(dir.path(), &config, &["--demo"]);
    fake_twitch::wait_subscribed(&twitch);
    expect_ok(browser(&daemon, "overflow", &["1280", "1920"]));
}

#[test]
fn a_bots_payloads_show_readably_on_the_hype_meter_the_overlay_and_the_feed() {
    // No demo: the built-in meter publishes only at start and on support, so the bot's value
    // is the last one on stream/synthetic/hype.
    let (_dir, daemon) = start();
    let steps = [
        (r#"{"level":7,"score":70}"#, "level 7"),
        ("42", "42"),
        (
            r#"{"value":0.7,"source":"midi"}"#,
            "value: 0.7 · source: midi",
        ),
    ];
    let shown: Vec<&str> = steps.iter().map(|(_, text)| *text).collect();
    let mut run = browser(&daemon, "bot_payloads", &shown);
    run.wait_line(&["ready"]);
    // One client id throughout: the first publisher of a topic owns it.
    for (payload, text) in steps {
        mosquitto_pub(
            daemon.mqtt_port(),
            "stream/synthetic/hype",
            payload,
            &["-r", "-i", "hype-bot"],
        );
        run.wait_line(&[&format!("shown {text}")]);
    }
    mosquitto_pub(
        daemon.mqtt_port(),
        "stream/synthetic/bpm",
        r#"{"bpm":128,"source":"midi"}"#,
        &["-i", "bpm-bot"],
    );
    expect_ok(run);
}

#[test]
fn the_seed_bot_shows_on_the_dashboard_with_its_level_and_presence() {
    let (_dir, daemon) = start();
    let Some(python) = require(socketio_server::venv_python()) else {
        return;
    };
    let mut seed = seed_bot(&python, daemon.mqtt_port());
    let mut run = browser(&daemon, "seed_bot", &["seed-hype-bot", "1"]);
    run.wait_line(&["ready"]);
    let trigger = daemon.cli(&["trigger", "cheer", "--user", "fan", "--amount", "100"]);
    assert!(trigger.status.success());
    seed.wait_line(&["published hype 1"]);
    expect_ok(run);
}
