//! The command line's failure modes and options (CONTRACT §1), through the real binary:
//! `trigger`, `tail` and `replay` with no daemon behind them, `tail --wait` and a daemon that
//! goes away under `tail`, the global options, and replay's summary per topic family.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;

use support::*;

/// Runs `command` to its end; a hang (no exit within PATIENCE) kills it and fails the test.
fn finish(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ongwatch");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("ongwatch output"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{command:?} hung: no exit within {PATIENCE:?}");
        }
    }
}

/// `trigger`, `tail` and `replay` against `config` and `state_dir`, each as it would be typed.
fn bus_commands(dir: &Path, config: &Path, state_dir: &Path) -> Vec<Command> {
    let recording = dir.join("recorded.jsonl");
    std::fs::write(
        &recording,
        r#"{"seq":1,"topic":"stream/community/follows","event":{"type":"follow"}}"#,
    )
    .unwrap();
    let args: [&[&str]; 3] = [
        &["trigger", "cheer"],
        &["tail"],
        &["replay", recording.to_str().unwrap()],
    ];
    args.iter()
        .map(|args| {
            let mut command = ongwatch();
            command
                .current_dir(dir)
                .args(*args)
                .arg("--config")
                .arg(config)
                .arg("--state-dir")
                .arg(state_dir);
            command
        })
        .collect()
}

/// Exit 1, and one line on stderr that names every needle and `ongwatch run` as the fix.
fn assert_one_line_failure(command: &mut Command, needles: &[&str]) {
    let out = finish(command);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{command:?}: {stderr}");
    for needle in needles.iter().chain(&["`ongwatch run`"]) {
        assert!(
            stderr.contains(needle),
            "{command:?}: {needle:?} not in {stderr}"
        );
    }
    assert!(out.stdout.is_empty(), "{command:?}: {out:?}");
}

#[test]
fn no_runtime_json_and_an_ephemeral_port_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ongwatch.toml");
    std::fs::write(&config, EPHEMERAL).unwrap();
    let state_dir = dir.path().join("state");
    let runtime_file = state_dir.join("runtime.json");
    for mut command in bus_commands(dir.path(), &config, &state_dir) {
        assert_one_line_failure(
            &mut command,
            &["no daemon found", runtime_file.to_str().unwrap()],
        );
    }
}

#[test]
fn no_runtime_json_tries_the_configured_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ongwatch.toml");
    let port = free_port();
    std::fs::write(&config, format!("[mqtt]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let state_dir = dir.path().join("state");
    let address = format!("mqtt://127.0.0.1:{port}");
    for mut command in bus_commands(dir.path(), &config, &state_dir) {
        assert_one_line_failure(
            &mut command,
            &["no daemon answers at", &address, "there is no"],
        );
    }
}

#[test]
fn a_stale_runtime_json_of_a_killed_daemon_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let address = format!("mqtt://127.0.0.1:{}", daemon.mqtt_port());
    let pid = daemon.runtime.pid.to_string();
    daemon.proc.kill9();
    assert!(daemon.state_dir.join("runtime.json").exists());
    for mut command in bus_commands(dir.path(), &daemon.config, &daemon.state_dir) {
        assert_one_line_failure(
            &mut command,
            &[&address, &format!("pid {pid}"), "no longer running"],
        );
    }
}

#[test]
fn an_address_that_refuses_is_named_with_the_runtime_json_that_gave_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ongwatch.toml");
    std::fs::write(&config, EPHEMERAL).unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    // A running process (this test) with a port nobody listens on: a daemon whose broker died,
    // or a recycled pid.
    let port = free_port();
    std::fs::write(
        state_dir.join("runtime.json"),
        format!(
            r#"{{"pid":{},"version":"0","started_at":"2026-01-01T00:00:00Z","topic_root":"stream","mqtt":"127.0.0.1:{port}"}}"#,
            std::process::id()
        ),
    )
    .unwrap();
    let address = format!("mqtt://127.0.0.1:{port}");
    for mut command in bus_commands(dir.path(), &config, &state_dir) {
        assert_one_line_failure(&mut command, &["no daemon answers at", &address]);
    }
}

#[test]
fn a_daemon_that_accepts_but_never_answers_is_given_up_on() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let address = format!("mqtt://127.0.0.1:{}", daemon.mqtt_port());
    let pid = daemon.runtime.pid.to_string();
    // Stopped, its kernel still accepts connections, but no CONNACK ever comes.
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    for mut command in bus_commands(dir.path(), &daemon.config, &daemon.state_dir) {
        assert_one_line_failure(&mut command, &[&address, "no answer within"]);
    }
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
}

#[test]
fn tail_wait_says_so_once_and_receives_events_once_a_daemon_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ongwatch.toml");
    std::fs::write(&config, EPHEMERAL).unwrap();
    let state_dir = dir.path().join("state");
    let mut tail = Proc::spawn(
        "ongwatch tail --wait",
        ongwatch()
            .current_dir(dir.path())
            .args(["tail", "--wait", "stream/support/#"])
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(&state_dir),
    );
    tail.wait_line(&[
        "tail: waiting for the daemon",
        "runtime.json",
        "`ongwatch run`",
    ]);

    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    tail.wait_line(&["tail: subscribed"]);
    let out = daemon.cli(&["trigger", "cheer", "--user", "after_wait"]);
    assert!(out.status.success(), "{out:?}");
    tail.wait_line(&["stream/support/cheers", "after_wait"]);
    assert_eq!(
        tail.count_lines("tail: waiting for the daemon"),
        1,
        "{:?}",
        tail.seen
    );
    assert!(tail.child.try_wait().unwrap().is_none(), "tail ended");
}

#[test]
fn tail_reports_a_daemon_going_away_once_and_resumes_after_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let mut tail = daemon.tail(&["stream/support/#"]);
    daemon.proc.kill9();
    tail.wait_line(&[
        "tail: the daemon at",
        "went away",
        "waiting for it to come back",
    ]);

    // Restarted, on another port (the config says port 0): tail finds it in runtime.json.
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    wait_for("tail to subscribe again", || {
        (tail.count_lines("tail: subscribed") == 2).then_some(())
    });
    let out = daemon.cli(&["trigger", "cheer", "--user", "after_restart"]);
    assert!(out.status.success(), "{out:?}");
    tail.wait_line(&["stream/support/cheers", "after_restart"]);
    assert_eq!(tail.count_lines("went away"), 1, "{:?}", tail.seen);
    assert_eq!(
        tail.count_lines("waiting for the daemon"),
        0,
        "{:?}",
        tail.seen
    );
}

#[test]
fn global_options_work_on_trigger_before_and_after_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let credentials = dir.path().join("credentials.toml");
    std::fs::write(&credentials, "").unwrap();
    let mut sub = mosquitto_sub(daemon.mqtt_port(), "stream/support/cheers", &[]);

    let out = finish(
        ongwatch()
            .current_dir(dir.path())
            .args(["trigger", "--credentials"])
            .arg(&credentials)
            .args(["--environment", "prod", "cheer", "--user", "after_name"])
            .arg("--config")
            .arg(&daemon.config)
            .arg("--state-dir")
            .arg(&daemon.state_dir),
    );
    assert!(out.status.success(), "{out:?}");
    sub.wait_line(&["after_name"]);

    let out = finish(
        ongwatch()
            .current_dir(dir.path())
            .arg("--config")
            .arg(&daemon.config)
            .arg("--state-dir")
            .arg(&daemon.state_dir)
            .arg("--credentials")
            .arg(&credentials)
            .args([
                "--environment",
                "prod",
                "trigger",
                "cheer",
                "--user",
                "before_name",
            ]),
    );
    assert!(out.status.success(), "{out:?}");
    sub.wait_line(&["before_name"]);

    // The environment variables stay as fallbacks.
    let out = finish(
        ongwatch()
            .current_dir(dir.path())
            .env("ONGWATCH_CONFIG", &daemon.config)
            .env("ONGWATCH_STATE_DIR", &daemon.state_dir)
            .env("ONGWATCH_CREDENTIALS", &credentials)
            .env("ONGWATCH_ENVIRONMENT", "prod")
            .args(["trigger", "cheer", "--user", "from_env"]),
    );
    assert!(out.status.success(), "{out:?}");
    sub.wait_line(&["from_env"]);
}

#[test]
fn every_help_ends_with_examples() {
    for command in [
        &["--help"][..],
        &["run", "--help"],
        &["trigger", "--help"],
        &["tail", "--help"],
        &["replay", "--help"],
        &["auth", "twitch", "--help"],
    ] {
        let out = finish(ongwatch().args(command));
        assert!(out.status.success(), "{command:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        let examples: Vec<&str> = help
            .split("Examples:")
            .nth(1)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            (2..=3).contains(&examples.len())
                && examples.iter().all(|l| l.starts_with("  ongwatch ")),
            "{command:?} does not end with two or three examples: {help}"
        );
        for global in ["--config", "--credentials", "--state-dir", "--environment"] {
            assert!(help.contains(global), "{command:?} lacks {global}: {help}");
        }
    }
}

/// A recording with one line of each topic family, and one line that is not a record.
fn recording(dir: &Path) -> std::path::PathBuf {
    let event = |id: &str, ty: &str| {
        format!(
            r#"{{"v":1,"id":"{id}","type":"{ty}","provider":"twitch","channel":"c","time":"2026-03-13T20:01:02.345Z","test":false}}"#
        )
    };
    let lines = [
        ("stream/support/cheers", event("a", "cheer")),
        ("stream/support/tips", event("b", "tip")),
        ("stream/community/follows", event("c", "follow")),
        ("stream/chat/messages", event("d", "chat")),
        ("stream/channel/online", event("e", "online")),
        (
            "stream/synthetic/hype",
            r#"{"level":1,"score":2.5}"#.to_owned(),
        ),
        ("stream/system/ongwatch", r#"{"state":"online"}"#.to_owned()),
        (
            "stream/system/providers/twitch",
            r#"{"state":"connected"}"#.to_owned(),
        ),
        ("stream/system/bots/bpm", r#"{"state":"online"}"#.to_owned()),
        (
            "stream/command/trigger",
            r#"{"id":"t1","type":"follow","user":"replayed_command"}"#.to_owned(),
        ),
    ];
    let mut text = String::new();
    for (seq, (topic, event)) in lines.iter().enumerate() {
        text.push_str(&format!(
            "{{\"seq\":{},\"topic\":\"{topic}\",\"event\":{event}}}\n",
            seq + 1
        ));
    }
    text.push_str("torn garbage line\n");
    let path = dir.join("recorded.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

/// The summary row of `family` (`published`, `skipped` or `refused` first).
fn row<'s>(summary: &'s str, family: &str) -> &'s str {
    summary
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().nth(1) == Some(family))
        .unwrap_or_else(|| panic!("no {family} row in {summary}"))
}

#[test]
fn replay_reports_published_and_skipped_per_topic_family() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let recording = recording(dir.path());

    let out = daemon.cli(&["replay", recording.to_str().unwrap(), "--speed", "0"]);
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.starts_with("replay: 6 of 11 lines published from "),
        "{summary}"
    );
    for (family, n) in [
        ("support", 2),
        ("community", 1),
        ("chat", 1),
        ("channel", 1),
        ("synthetic", 1),
    ] {
        let row = row(&summary, family);
        assert!(row.trim_start().starts_with("published"), "{row}");
        assert_eq!(
            row.split_whitespace().nth(2),
            Some(n.to_string().as_str()),
            "{row}"
        );
    }
    for (family, n, why) in [
        (
            "command",
            "1",
            "command topics are not replayed: they would act again",
        ),
        ("system", "2", "system topics are not replayed"),
        ("bots", "1", "bots topics are not replayed"),
    ] {
        let row = row(&summary, family);
        assert!(row.trim_start().starts_with("skipped"), "{row}");
        assert_eq!(row.split_whitespace().nth(2), Some(n), "{row}");
        assert!(row.contains(why), "{row}");
        assert!(row.ends_with("--all-topics includes them"), "{row}");
    }
    let unreadable = row(&summary, "unreadable");
    assert!(unreadable.contains("line 11"), "{unreadable}");

    let out = daemon.cli(&[
        "replay",
        recording.to_str().unwrap(),
        "--speed",
        "0",
        "--all-topics",
    ]);
    assert!(out.status.success(), "{out:?}");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(!summary.contains("--all-topics includes them"), "{summary}");
    for family in ["command", "system", "bots"] {
        let row = row(&summary, family);
        // Published, unless the broker's topic authority refused it (and the summary says so).
        assert!(
            row.trim_start().starts_with("published") || row.trim_start().starts_with("refused"),
            "{row}"
        );
    }
    // The replayed command acted again: the daemon turned it into a follow.
    wait_for("the follow of the replayed trigger command", || {
        daemon
            .log_lines()
            .into_iter()
            .find(|l| l["event"]["user"] == "replayed_command")
    });
}
