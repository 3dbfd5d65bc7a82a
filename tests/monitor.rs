//! Issue 7's stream monitor and chat announcer end to end: the real binary against the
//! in-repo fake Twitch (Get Streams, EventSub) and a scripted IRC server for chat. Nothing
//! asserts on wall-clock time: "nothing more happens" is checked after the daemon has made a
//! few more Get Streams calls, counted by the fake.

#[path = "support/fake_twitch.rs"]
mod fake_twitch;
#[path = "support/irc_server.rs"]
mod irc_server;
mod support;

use std::path::Path;

use fake_twitch::{CLIENT_ID, LOGIN, USER_ID, all_scopes as broadcaster_scopes, start as twitch};
use irc_server::ScriptedIrc;
use ongwatch::sources::twitch::auth::{Account, StoredToken};
use ongwatch::sources::twitch::fake::FakeTwitch;
use serde_json::{Value, json};
use support::*;

const STATUS: &str = "stream/status";

/// `[twitch]` pointing at the fake, and `[monitor]` polling `channels` often.
fn config(fake: &FakeTwitch, channels: &[&str], extra: &str) -> String {
    format!(
        "{EPHEMERAL}[twitch]\nauth_url = \"{}\"\napi_url = \"{}\"\neventsub_url = \"{}\"\nretry_initial_seconds = 0.05\nretry_max_seconds = 0.5\n[monitor]\nchannels = {}\npolling_interval = 0.1\n{extra}",
        fake.auth_url(),
        fake.api_url(),
        fake.eventsub_url(),
        serde_json::to_string(channels).unwrap(),
    )
}

/// credentials.toml with the fake's client id, and a login of `account` stored in the state dir.
/// The broadcaster logged in with every scope the default subscriptions need.
fn log_in_broadcaster(fake: &FakeTwitch, dir: &Path) {
    log_in(
        fake,
        dir,
        Account::Broadcaster,
        LOGIN,
        &broadcaster_scopes(),
    );
}

fn log_in(fake: &FakeTwitch, dir: &Path, account: Account, login: &str, scopes: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{CLIENT_ID}'\n"),
    )
    .unwrap();
    let user_id = if account == Account::Broadcaster {
        USER_ID
    } else {
        "777"
    };
    let (access, refresh) = fake.issue_token(CLIENT_ID, login, user_id, scopes);
    let now = chrono::Utc::now();
    StoredToken {
        account,
        client_id: CLIENT_ID.into(),
        login: login.into(),
        user_id: user_id.into(),
        scopes: scopes.to_vec(),
        access_token: access,
        refresh_token: Some(refresh),
        expires_at: Some(now + chrono::TimeDelta::hours(4)),
        obtained_at: now,
    }
    .save(&StoredToken::path(&dir.join("state"), account))
    .unwrap();
}

/// The events of `kind` (`online`, `offline`, `status`) for `channel` in the event log.
fn logged(daemon: &Daemon, kind: &str, channel: &str) -> Vec<Value> {
    daemon
        .log_lines()
        .into_iter()
        .map(|l| l["event"].clone())
        .filter(|e| e["type"] == kind && e["channel"] == channel)
        .collect()
}

fn wait_logged(
    daemon: &Daemon,
    kind: &str,
    channel: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(&format!("{kind} of {channel} in the log"), || {
        logged(daemon, kind, channel)
            .into_iter()
            .rfind(|e| check(e))
    })
}

/// Lets the daemon poll Get Streams `rounds` more times, so a late duplicate would be logged.
fn settle(fake: &FakeTwitch, rounds: u64) {
    let from = fake.stats().streams_requests;
    wait_for("more Get Streams calls", || {
        (fake.stats().streams_requests >= from + rounds).then_some(())
    });
}

fn wait_retained(port: u16, topic: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("the retained {topic}"), || {
        Some(retained(port, topic)).filter(|v| check(v))
    })
}

#[test]
fn polling_offline_online_offline_gives_one_event_each_and_the_retained_status() {
    let fake = twitch();
    let dir = tempfile::tempdir().unwrap();
    log_in_broadcaster(&fake, dir.path());
    let daemon = Daemon::start_in(dir.path(), &config(&fake, &["ninja"], ""), &[]);
    let port = daemon.mqtt_port();

    // The first poll is the baseline: offline, and no event.
    wait_logged(&daemon, "status", "ninja", |s| s["live"] == false);
    let started_at = fake.go_live("ninja", "Any% speedrun", "Celeste", 42);
    let online = wait_logged(&daemon, "online", "ninja", |_| true);
    assert_eq!(online["id"], format!("monitor:ninja:online:{started_at}"));
    assert_eq!(online["title"], "Any% speedrun");
    assert_eq!(online["category"], "Celeste");
    assert_eq!(online["test"], false);
    let status = wait_retained(port, STATUS, |s| s["live"] == true);
    assert_eq!(status["channel"], "ninja");
    assert_eq!(status["viewers"], 42);
    assert_eq!(status["title"], "Any% speedrun");
    assert_eq!(status["category"], "Celeste");
    assert_eq!(status["started_at"], started_at);

    // Viewers are refreshed while live.
    fake.set_viewers("ninja", 99);
    wait_retained(port, STATUS, |s| s["viewers"] == 99);

    fake.go_offline("ninja");
    let offline = wait_logged(&daemon, "offline", "ninja", |_| true);
    assert_eq!(offline["id"], format!("monitor:ninja:offline:{started_at}"));
    let status = wait_retained(port, STATUS, |s| s["live"] == false);
    assert_eq!(status["viewers"], 0);

    settle(&fake, 5);
    assert_eq!(logged(&daemon, "online", "ninja").len(), 1);
    assert_eq!(logged(&daemon, "offline", "ninja").len(), 1);
    // The order on the bus: the status changes before the transition is announced.
    let kinds: Vec<String> = daemon
        .log_lines()
        .iter()
        .map(|l| &l["event"])
        .filter(|e| e["channel"] == "ninja" && (e["type"] == "online" || e["type"] == "offline"))
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["online", "offline"]);
}

#[test]
fn a_restart_while_live_publishes_no_second_online() {
    let fake = twitch();
    let dir = tempfile::tempdir().unwrap();
    log_in_broadcaster(&fake, dir.path());
    let config = config(&fake, &["ninja", "shroud"], "");
    let mut daemon = Daemon::start_in(dir.path(), &config, &[]);
    wait_logged(&daemon, "status", "ninja", |s| s["live"] == false);
    let started_at = fake.go_live("ninja", "Day 2", "Minecraft", 5);
    wait_logged(&daemon, "online", "ninja", |_| true);
    assert_eq!(daemon.proc.terminate(), Some(0));
    let saved: Value =
        serde_json::from_slice(&std::fs::read(daemon.state_dir.join("monitor.json")).unwrap())
            .unwrap();
    assert_eq!(saved["channels"]["ninja"]["live"], true);
    assert_eq!(saved["channels"]["ninja"]["started_at"], started_at);

    // Still live when it comes back: the status is republished, the online is not.
    let before = daemon.log_lines().len();
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    settle(&fake, 5);
    // Both channels share the fixed root's `stream/status`: the log tells them apart.
    let status = wait_for("ninja's status after the restart", || {
        daemon.log_lines()[before..]
            .iter()
            .map(|l| l["event"].clone())
            .find(|e| e["type"] == "status" && e["channel"] == "ninja")
    });
    assert_eq!(status["live"], true);
    assert_eq!(status["started_at"], started_at);
    assert_eq!(logged(&daemon, "online", "ninja").len(), 1);

    fake.go_offline("ninja");
    wait_logged(&daemon, "offline", "ninja", |_| true);
    settle(&fake, 5);
    assert_eq!(logged(&daemon, "online", "ninja").len(), 1);
    assert_eq!(logged(&daemon, "offline", "ninja").len(), 1);
    assert!(logged(&daemon, "online", "shroud").is_empty());
}

/// `kill -9` between saving a transition and logging it leaves it in monitor.json's
/// `unannounced`: the next start publishes it once; the hub drops it if the log has it.
#[test]
fn a_transition_the_log_missed_is_published_once_after_a_restart() {
    let fake = twitch();
    let dir = tempfile::tempdir().unwrap();
    log_in_broadcaster(&fake, dir.path());
    let config = config(&fake, &["ninja"], "");
    let mut daemon = Daemon::start_in(dir.path(), &config, &[]);
    wait_logged(&daemon, "status", "ninja", |s| s["live"] == false);
    fake.go_live("ninja", "Day 3", "Chess", 5);
    let online = wait_logged(&daemon, "online", "ninja", |_| true);
    assert_eq!(daemon.proc.terminate(), Some(0));
    let state_file = daemon.state_dir.join("monitor.json");
    let mut saved: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert!(
        saved.get("unannounced").is_none(),
        "seen back, so not pending: {saved}"
    );
    let log_file = daemon.state_dir.join("events.jsonl");
    let mark_unannounced = |saved: &mut Value| {
        saved["unannounced"] = json!([online.clone()]);
        std::fs::write(&state_file, serde_json::to_vec(saved).unwrap()).unwrap();
    };

    // The log has it: published again, dropped by the hub.
    mark_unannounced(&mut saved);
    let mut daemon = Daemon::start_in(dir.path(), &config, &[]);
    daemon.proc.wait_line(&["publishing again the transitions"]);
    settle(&fake, 5);
    assert_eq!(logged(&daemon, "online", "ninja").len(), 1);
    assert_eq!(daemon.proc.terminate(), Some(0));

    // The log lost it (the kill came before the write): published now, once.
    let text = std::fs::read_to_string(&log_file).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains(online["id"].as_str().unwrap()))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&log_file, kept).unwrap();
    mark_unannounced(&mut saved);
    let mut daemon = Daemon::start_in(dir.path(), &config, &[]);
    let again = wait_logged(&daemon, "online", "ninja", |_| true);
    assert_eq!(again["id"], online["id"]);
    settle(&fake, 5);
    assert_eq!(logged(&daemon, "online", "ninja").len(), 1);
    assert_eq!(daemon.proc.terminate(), Some(0));
    let saved: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    assert!(saved.get("unannounced").is_none(), "{saved}");
}

#[test]
fn eventsub_and_polling_together_report_each_transition_of_the_broadcaster_once() {
    let fake = twitch();
    let dir = tempfile::tempdir().unwrap();
    log_in_broadcaster(&fake, dir.path());
    let mut daemon = Daemon::start_in(dir.path(), &config(&fake, &[LOGIN], ""), &[]);
    daemon.proc.wait_line(&["monitor", "streamer via EventSub"]);
    let port = daemon.mqtt_port();
    wait_logged(&daemon, "status", LOGIN, |s| s["live"] == false);

    // EventSub tells first; Get Streams lists the same stream right after.
    let started_at = "2026-03-13T20:00:00Z";
    let notification = json!({
        "id": "9001",
        "broadcaster_user_id": USER_ID,
        "broadcaster_user_login": LOGIN,
        "broadcaster_user_name": "Streamer",
        "type": "live",
        "started_at": started_at,
    });
    let message_id = fake
        .notify("stream.online", notification)
        .expect("an enabled stream.online subscription");
    let live = fake.go_live(LOGIN, "Live looping all night", "Music", 7);
    let online = wait_logged(&daemon, "online", LOGIN, |_| true);
    assert_eq!(online["id"], format!("twitch:{message_id}"));
    // The status gets the details stream.online does not carry from Get Streams.
    let status = wait_retained(port, STATUS, |s| s["live"] == true && s["viewers"] == 7);
    assert_eq!(status["title"], "Live looping all night");
    assert_eq!(
        status["started_at"], started_at,
        "EventSub's start names the stream"
    );
    assert_ne!(live, started_at);

    let offline = json!({
        "broadcaster_user_id": USER_ID,
        "broadcaster_user_login": LOGIN,
        "broadcaster_user_name": "Streamer",
    });
    fake.notify("stream.offline", offline)
        .expect("an enabled stream.offline subscription");
    wait_logged(&daemon, "offline", LOGIN, |_| true);
    wait_retained(port, STATUS, |s| s["live"] == false);
    // Get Streams lags behind and still lists the stream for a while: no second transition.
    settle(&fake, 5);
    fake.go_offline(LOGIN);
    settle(&fake, 5);
    assert_eq!(logged(&daemon, "online", LOGIN).len(), 1);
    assert_eq!(logged(&daemon, "offline", LOGIN).len(), 1);
}

#[test]
fn an_online_with_a_600_character_title_is_announced_once_within_500_characters() {
    let fake = twitch();
    let irc = ScriptedIrc::start(|_| Vec::new());
    let dir = tempfile::tempdir().unwrap();
    log_in_broadcaster(&fake, dir.path());
    // The bot sends over IRC (without user:write:chat, Helix is not tried).
    log_in(
        &fake,
        dir.path(),
        Account::Bot,
        "ongbot",
        &["chat:read".into(), "chat:edit".into()],
    );
    let extra = format!(
        "[chat]\nserver = \"127.0.0.1:{}\"\ntls = false\n[announce]\nchat_channel = \"{LOGIN}\"\n[[announce.channels]]\nchannel = \"ninja\"\nonline = {{ template = \"{{channel}} is live: {{title}} ({{game_name}}, {{viewer_count}} viewers) {{url}}\" }}\n",
        irc.port
    );
    let daemon = Daemon::start_in(dir.path(), &config(&fake, &["ninja"], &extra), &[]);
    wait_logged(&daemon, "status", "ninja", |s| s["live"] == false);

    let title = "speedrun ".repeat(66) + "end!!!";
    assert_eq!(title.chars().count(), 600);
    fake.go_live("ninja", &title, "Celeste", 42);

    let command = wait_for("the announcement command", || {
        daemon
            .log_lines()
            .into_iter()
            .find(|l| l["topic"] == "stream/command/chat/send")
            .map(|l| l["event"].clone())
    });
    let message = command["message"].as_str().unwrap().to_owned();
    assert!(
        message.chars().count() <= 500,
        "{}",
        message.chars().count()
    );
    assert!(
        message.starts_with("ninja is live: speedrun speedrun"),
        "{message}"
    );
    assert!(message.ends_with("speedrun…"), "{message}");
    assert_eq!(command["channel"], LOGIN);

    let line = irc.wait_for("the announcement in chat", |l| {
        l.starts_with("PRIVMSG #streamer :ninja is live:")
    });
    assert_eq!(line.split_once(" :").unwrap().1, message);
    let result = wait_for("the send result", || {
        daemon
            .log_lines()
            .into_iter()
            .map(|l| l["event"].clone())
            .find(|r| r["id"] == command["id"] && r.get("is_sent").is_some())
    });
    assert_eq!(result["is_sent"], true, "{result}");
    assert_eq!(result["parts"], 1);

    settle(&fake, 5);
    let commands = daemon
        .log_lines()
        .into_iter()
        .filter(|l| l["topic"] == "stream/command/chat/send")
        .count();
    assert_eq!(commands, 1);
    assert_eq!(
        irc.received()
            .iter()
            .filter(|l| l.starts_with("PRIVMSG #streamer"))
            .count(),
        1
    );
}

#[test]
fn bad_monitor_and_announce_keys_are_reported_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[monitor]\nchannels = [\"no spaces\"]\nmethod = \"psychic\"\n[announce]\n[[announce.channels]]\nchannel = \"ninja\"\noffline = { enabled = true, template = \"{channel} left {nope}\" }\n";
    std::fs::write(dir.path().join("ongwatch.toml"), config).unwrap();
    let out = ongwatch()
        .current_dir(dir.path())
        .args(["check", "--config", "ongwatch.toml", "--state-dir", "state"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("monitor"), "{text}");
    assert!(
        text.contains("announce.channels[1].offline.template"),
        "{text}"
    );
    assert!(text.contains("{nope}"), "{text}");
}
