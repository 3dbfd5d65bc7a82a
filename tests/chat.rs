//! Twitch chat end to end: the daemon against a scripted IRC server (vector lines onto the bus,
//! the send path, `/ws/chat`), and the IRC client against a real ngircd.

#[path = "support/fake_twitch.rs"]
mod fake_twitch;
#[path = "support/irc_server.rs"]
mod irc_server;
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use irc_server::ScriptedIrc;
use serde_json::{Value, json};
use support::{Daemon, EPHEMERAL, PATIENCE, Proc, free_port, wait_for};
use tokio_tungstenite::tungstenite::{self, Message};

fn chat_config(port: u16, channels: &[&str]) -> String {
    format!(
        "{EPHEMERAL}[chat]\nserver = \"127.0.0.1:{port}\"\ntls = false\nchannels = {}\n",
        serde_json::to_string(channels).unwrap()
    )
}

fn vector_lines() -> Vec<(String, bool)> {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/irc/twitch-irc-rs.jsonl"
    ))
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str::<Value>(l).unwrap())
    .map(|v| {
        (
            v["raw"].as_str().unwrap().to_owned(),
            v["invalid_line"].as_bool().unwrap_or(false),
        )
    })
    .collect()
}

/// Log entries by topic.
fn logged(daemon: &Daemon, topic: &str) -> Vec<Value> {
    daemon
        .log_lines()
        .into_iter()
        .filter(|l| l["topic"] == topic)
        .map(|l| l["event"].clone())
        .collect()
}

#[test]
fn scripted_server_lines_reach_the_right_topics() {
    let lines = vector_lines();
    // RECONNECT ends a session, as on Twitch: it goes last, and the lines are sent once.
    let mut script: Vec<String> = lines.iter().map(|(raw, _)| raw.clone()).collect();
    script.sort_by_key(|line| line.contains(" RECONNECT"));
    let sent = std::sync::atomic::AtomicBool::new(false);
    let server = ScriptedIrc::start(move |channel| {
        if channel == "pajlada" && !sent.swap(true, std::sync::atomic::Ordering::SeqCst) {
            script.clone()
        } else {
            Vec::new()
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(dir.path(), &chat_config(server.port, &["pajlada"]), &[]);

    // What the library's normalizer says each valid line means (ids are stable for every
    // event with a topic of its own; raw events get random ids and are left out).
    let mut expected = BTreeMap::new();
    for (raw, invalid) in &lines {
        if *invalid {
            continue;
        }
        for event in ongwatch::sources::twitch::irc::normalize_line(raw, false).unwrap() {
            let topic = format!("stream/{}", event.topic_suffix());
            if !topic.starts_with("stream/raw/") {
                expected.entry(event.id.clone()).or_insert(topic);
            }
        }
    }
    assert!(expected.values().any(|t| t == "stream/chat/messages"));
    assert!(expected.values().any(|t| t == "stream/support/subs"));
    assert!(expected.values().any(|t| t == "stream/support/gifts"));
    assert!(expected.values().any(|t| t == "stream/community/raids"));
    assert!(expected.values().any(|t| t == "stream/chat/moderation"));

    let nick = server.wait_for("an anonymous NICK", |l| l.starts_with("NICK justinfan"));
    server.wait_for("the CAP request", |l| {
        l == "CAP REQ :twitch.tv/tags twitch.tv/commands twitch.tv/membership"
    });
    assert!(
        !server.received().iter().any(|l| l.starts_with("PASS")),
        "anonymous logins send no password ({nick})"
    );
    server.wait_for("the JOIN", |l| l == "JOIN #pajlada");
    let missing = || {
        let log: BTreeMap<String, String> = daemon
            .log_lines()
            .into_iter()
            .filter_map(|l| {
                Some((
                    l["event"]["id"].as_str()?.to_owned(),
                    l["topic"].as_str()?.to_owned(),
                ))
            })
            .collect();
        expected
            .iter()
            .filter(|(id, topic)| log.get(*id) != Some(topic))
            .map(|(id, topic)| format!("{id} on {topic}, logged on {:?}", log.get(id)))
            .collect::<Vec<_>>()
    };
    let start = std::time::Instant::now();
    while !missing().is_empty() {
        assert!(
            start.elapsed() < PATIENCE,
            "not in the log: {:#?}\ndaemon: {:#?}",
            missing(),
            daemon.proc.pump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Invalid lines were skipped, not fatal.
    assert!(daemon.proc.child.try_wait().unwrap().is_none());

    // The connection's life is on the providers topic: in the channel, then RECONNECT, then back.
    let states = wait_for("chat connected again after RECONNECT", || {
        let states: Vec<(String, String)> = logged(&daemon, "stream/system/providers/twitch_chat")
            .iter()
            .map(|e| {
                (
                    e["state"].as_str().unwrap_or_default().to_owned(),
                    e["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let in_channel = |(state, detail): &(String, String)| {
            state == "connected" && detail.contains("#pajlada")
        };
        let first = states.iter().position(in_channel)?;
        let lost = first
            + 1
            + states[first + 1..]
                .iter()
                .position(|(s, _)| s == "connecting")?;
        states[lost + 1..].iter().any(in_channel).then_some(states)
    });
    assert_eq!(states[0].0, "connecting", "{states:?}");
    assert_eq!(daemon.proc.terminate(), Some(0));
}

fn write_bot_token(state_dir: &Path, scopes: &[&str]) {
    std::fs::create_dir_all(state_dir).unwrap();
    let token = json!({
        "account": "bot",
        "client_id": "test-client",
        "login": "OngBot",
        "user_id": "777",
        "scopes": scopes,
        "access_token": "secret-token",
        "refresh_token": null,
        "expires_at": null,
        "obtained_at": "2026-01-01T00:00:00Z",
    });
    std::fs::write(
        state_dir.join("twitch-bot.json"),
        serde_json::to_vec(&token).unwrap(),
    )
    .unwrap();
}

/// `POST /api/publish` over plain HTTP/1.1; returns the status code.
fn publish(http: SocketAddr, topic: &str, payload: Value) -> u16 {
    let body = json!({"topic": topic, "payload": payload}).to_string();
    let mut stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "POST /api/publish HTTP/1.1\r\nHost: {http}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn chat_send_goes_out_over_irc_and_publishes_its_result() {
    let server = ScriptedIrc::start(|_| Vec::new());
    let dir = tempfile::tempdir().unwrap();
    // Without the user:write:chat scope Helix is not tried: IRC sends.
    write_bot_token(&dir.path().join("state"), &["chat:read", "chat:edit"]);
    let daemon = Daemon::start_in(dir.path(), &chat_config(server.port, &[]), &[]);
    let http = daemon.runtime.http.unwrap();

    let long = "word ".repeat(120);
    let status = publish(
        http,
        "stream/command/chat/send",
        json!({"message": long, "channel": "SomeChan", "id": "req-1", "reply_to": "abc-1"}),
    );
    assert_eq!(status, 202);
    server.wait_for("the bot's password", |l| l == "PASS oauth:secret-token");
    server.wait_for("the bot's nick", |l| l == "NICK ongbot");
    server.wait_for("the channel's JOIN", |l| l == "JOIN #somechan");
    let first = server.wait_for("the reply", |l| {
        l.starts_with("@reply-parent-msg-id=abc-1 PRIVMSG #somechan :word word")
    });
    let second = server.wait_for("the second part", |l| {
        l.starts_with("PRIVMSG #somechan :word")
    });
    let text = |line: &str| line.split_once(" :").unwrap().1.to_owned();
    assert!(text(&first).chars().count() <= 500);
    assert_eq!(
        format!("{} {}", text(&first), text(&second)),
        long.trim_end()
    );

    let result = wait_for("the send result", || {
        logged(&daemon, "stream/command/chat/send/result")
            .into_iter()
            .find(|r| r["id"] == "req-1")
    });
    assert_eq!(result["is_sent"], true);
    assert_eq!(result["parts"], 2);
    assert_eq!(result["via"], "irc");
    assert_eq!(result["as"], "bot");
    assert_eq!(result["channel"], "somechan");

    // No broadcaster login: a result says so, nothing is sent.
    publish(
        http,
        "stream/command/chat/send",
        json!({"message": "hi", "as": "broadcaster", "id": "req-2"}),
    );
    let refused = wait_for("the refusal", || {
        logged(&daemon, "stream/command/chat/send/result")
            .into_iter()
            .find(|r| r["id"] == "req-2")
    });
    assert_eq!(refused["is_sent"], false);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("ongwatch auth twitch"),
        "{refused}"
    );
}

/// With `user:write:chat` the bot sends through Helix (the in-repo fake's Send Chat Message):
/// the channel's id is looked up, replies carry their parent, an expired token is refreshed
/// and the send retried, and a message Twitch holds back comes back with its drop reason.
#[test]
fn chat_send_goes_out_over_helix_with_the_send_scope() {
    use ongwatch::sources::twitch::auth::{Account, StoredToken};

    let twitch = fake_twitch::start();
    twitch.add_user("somechan", "9001");
    let irc = ScriptedIrc::start(|_| Vec::new());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{}'\n", fake_twitch::CLIENT_ID),
    )
    .unwrap();
    let scopes: Vec<String> = ["chat:read", "chat:edit", "user:write:chat"]
        .map(String::from)
        .to_vec();
    let (access, refresh) = twitch.issue_token(fake_twitch::CLIENT_ID, "ongbot", "777", &scopes);
    let now = chrono::Utc::now();
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    StoredToken {
        account: Account::Bot,
        client_id: fake_twitch::CLIENT_ID.into(),
        login: "ongbot".into(),
        user_id: "777".into(),
        scopes,
        access_token: access.clone(),
        refresh_token: Some(refresh),
        expires_at: Some(now + chrono::TimeDelta::hours(4)),
        obtained_at: now,
    }
    .save(&fake_twitch::token_path(&state_dir, Account::Bot))
    .unwrap();
    let config = format!(
        "{}{}",
        chat_config(irc.port, &[]),
        fake_twitch::config_section(&twitch)
    );
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    let http = daemon.runtime.http.unwrap();
    let result = |id: &str| {
        wait_for(&format!("the result of {id}"), || {
            logged(&daemon, "stream/command/chat/send/result")
                .into_iter()
                .find(|r| r["id"] == id)
        })
    };

    let status = publish(
        http,
        "stream/command/chat/send",
        json!({"message": "hello over helix", "channel": "SomeChan", "id": "h-1", "reply_to": "abc-1"}),
    );
    assert_eq!(status, 202);
    let sent = result("h-1");
    assert_eq!(sent["is_sent"], true, "{sent}");
    assert_eq!(sent["via"], "helix", "{sent}");
    assert_eq!(sent["as"], "bot", "{sent}");
    assert_eq!(
        sent["message_ids"].as_array().map(Vec::len),
        Some(1),
        "{sent}"
    );
    let bodies = twitch.chat_messages();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["broadcaster_id"], "9001");
    assert_eq!(bodies[0]["sender_id"], "777");
    assert_eq!(bodies[0]["message"], "hello over helix");
    assert_eq!(bodies[0]["reply_parent_message_id"], "abc-1");

    // The token dies: one refresh, the same request again, and it goes out.
    twitch.expire_token(&access);
    publish(
        http,
        "stream/command/chat/send",
        json!({"message": "after the refresh", "channel": "somechan", "id": "h-2"}),
    );
    let sent = result("h-2");
    assert_eq!(sent["is_sent"], true, "{sent}");
    assert_eq!(sent["via"], "helix", "{sent}");
    assert_eq!(twitch.stats().refreshes, 1);
    let stored = StoredToken::load(&fake_twitch::token_path(&state_dir, Account::Bot))
        .unwrap()
        .unwrap();
    assert_ne!(stored.access_token, access, "the refreshed token is stored");

    twitch.drop_next_chat(
        "msg_duplicate",
        "Your message is identical to the previous one.",
    );
    publish(
        http,
        "stream/command/chat/send",
        json!({"message": "after the refresh", "channel": "somechan", "id": "h-3"}),
    );
    let dropped = result("h-3");
    assert_eq!(dropped["is_sent"], false, "{dropped}");
    assert_eq!(dropped["drop_reason"]["code"], "msg_duplicate", "{dropped}");
    assert_eq!(twitch.chat_messages().len(), 3);
    assert!(
        !irc.received().iter().any(|l| l.contains("PRIVMSG")),
        "Helix sent it: nothing over IRC"
    );
}

type Ws = tungstenite::WebSocket<TcpStream>;

fn ws_chat(http: SocketAddr) -> Ws {
    let stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    tungstenite::client(format!("ws://{http}/ws/chat"), stream)
        .map(|(ws, _)| ws)
        .map_err(|e| format!("{e}"))
        .unwrap()
}

fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).unwrap();
}

fn next_json(ws: &mut Ws) -> Value {
    loop {
        match ws.read().unwrap() {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next frame that is not a chat or event frame.
fn next_reply(ws: &mut Ws) -> Value {
    loop {
        let frame = next_json(ws);
        if !matches!(
            frame["type"].as_str(),
            Some("chat_message" | "twitch_event")
        ) {
            return frame;
        }
    }
}

#[test]
fn ws_chat_shares_joins_and_parts_with_the_last_client() {
    let server = ScriptedIrc::start(|channel| {
        if channel == "ninja" {
            vec![
                "@badges=subscriber/12;color=#FF0000;display-name=Viewer;emotes=;id=m-1;mod=0;subscriber=1;tmi-sent-ts=1594556065407;user-id=42 :viewer!viewer@viewer.tmi.twitch.tv PRIVMSG #ninja :hello ninja".to_owned(),
                "@ban-duration=60;room-id=1;target-user-id=43;tmi-sent-ts=1594553828245 :tmi.twitch.tv CLEARCHAT #ninja :spammer".to_owned(),
            ]
        } else {
            Vec::new()
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), &chat_config(server.port, &[]), &[]);
    let http = daemon.runtime.http.unwrap();

    let mut a = ws_chat(http);
    let mut b = ws_chat(http);
    send(&mut a, "{not json");
    assert_eq!(next_json(&mut a), json!({"error": "Invalid JSON"}));
    send(&mut a, r#"{"command":"dance"}"#);
    assert_eq!(
        next_json(&mut a),
        json!({"error": "Unknown command", "command": "dance"})
    );
    send(&mut a, r#"{"command":"ping"}"#);
    assert_eq!(next_json(&mut a), json!({"type": "pong"}));

    send(&mut a, r#"{"command":"join_channel","channel":"ninja"}"#);
    assert_eq!(
        next_json(&mut a),
        json!({"status": "joined_channel", "channel": "ninja"})
    );
    let chat = next_json(&mut a);
    assert_eq!(chat["type"], "chat_message");
    assert_eq!(chat["channel"], "ninja");
    assert_eq!(chat["message"], "hello ninja");
    assert_eq!(chat["message_id"], "m-1");
    assert_eq!(chat["user"]["username"], "viewer");
    assert_eq!(chat["user"]["display_name"], "Viewer");
    assert_eq!(chat["user"]["user_id"], "42");
    assert_eq!(chat["user"]["color"], "#FF0000");
    assert_eq!(chat["user"]["is_subscriber"], true);
    assert_eq!(chat["user"]["badges"]["subscriber"], "12");
    let timeout = next_json(&mut a);
    assert_eq!(timeout["type"], "twitch_event");
    assert_eq!(timeout["event_type"], "timeout");
    assert_eq!(timeout["data"]["user"], "spammer");

    send(&mut b, r##"{"command":"join_channel","channel":"#Ninja"}"##);
    assert_eq!(
        next_reply(&mut b),
        json!({"status": "joined_channel", "channel": "ninja"})
    );
    send(&mut a, r#"{"command":"leave_channel","channel":"ninja"}"#);
    assert_eq!(
        next_reply(&mut a),
        json!({"status": "left_channel", "channel": "ninja"})
    );
    // The client's commands reach the connection in order and a PART is written at once, so
    // once the JOIN of a later channel arrived, a PART of ninja would have arrived before it.
    send(&mut a, r#"{"command":"join_channel","channel":"later"}"#);
    next_reply(&mut a);
    server.wait_for("the JOIN of the later channel", |l| l == "JOIN #later");
    assert_eq!(server.count("JOIN #ninja"), 1, "one JOIN for two clients");
    assert_eq!(server.count("PART #ninja"), 0, "b still watches ninja");

    drop(b);
    server.wait_for("the PART after the last client left", |l| {
        l == "PART #ninja"
    });
    drop(a);
    server.wait_for("the PART of the later channel", |l| l == "PART #later");
}

/// A real ngircd on a free loopback port, with a config written for the test.
struct Ngircd {
    proc: Proc,
    port: u16,
}

impl Ngircd {
    /// Nicks up to 30 characters, so Twitch's anonymous `justinfan<number>` fits.
    fn start(dir: &Path, port: u16) -> Self {
        Self::start_with(dir, port, "[Limits]\nMaxNickLength = 30\n")
    }

    /// With `extra` config sections; without `[Limits]`, ngircd's defaults (9-character nicks).
    fn start_with(dir: &Path, port: u16, extra: &str) -> Self {
        let conf = dir.join("ngircd.conf");
        std::fs::write(
            &conf,
            format!(
                "[Global]\nName = irc.test.local\nInfo = ongwatch test\nListen = 127.0.0.1\nPorts = {port}\nMotdPhrase = \"test\"\nPidFile = {}/ngircd.pid\n{extra}[Options]\nIdent = no\nPAM = no\nDNS = no\n",
                dir.display()
            ),
        )
        .unwrap();
        let binary = if Path::new("/usr/sbin/ngircd").exists() {
            "/usr/sbin/ngircd"
        } else {
            "ngircd"
        };
        let mut proc = Proc::spawn(
            "ngircd",
            Command::new(binary).arg("-n").arg("-f").arg(&conf),
        );
        proc.expect_ready("Now listening on");
        Self { proc, port }
    }

    fn restart(mut self, dir: &Path) -> Self {
        self.proc.kill9();
        Self::start(dir, self.port)
    }
}

#[test]
fn a_nick_ngircd_refuses_becomes_the_chat_state_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let irc_dir = dir.path().join("ngircd");
    std::fs::create_dir_all(&irc_dir).unwrap();
    // ngircd's default MaxNickLength is 9; the anonymous justinfan<number> is longer.
    let server = Ngircd::start_with(&irc_dir, free_port(), "");
    let daemon = Daemon::start_in(
        &dir.path().join("daemon"),
        &chat_config(server.port, &["ongwatch_test"]),
        &[],
    );
    let (state, detail) = wait_for("the chat state to name the refusal", || {
        logged(&daemon, "stream/system/providers/twitch_chat")
            .iter()
            .map(|e| {
                (
                    e["state"].as_str().unwrap_or_default().to_owned(),
                    e["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .find(|(state, _)| state != "connecting")
    });
    assert_eq!(state, "error", "{detail}");
    for words in [
        "refused the chat login as justinfan",
        "Nickname too long, max. 9 characters",
        "(432)",
    ] {
        assert!(detail.contains(words), "{words:?} missing in {detail:?}");
    }
    // The retained state a dashboard reads says the same, also while it reconnects.
    let retained = support::retained(daemon.mqtt_port(), "stream/system/providers/twitch_chat");
    assert_eq!(retained["state"], "error", "{retained}");
    assert!(
        retained["detail"].as_str().unwrap().contains("(432)"),
        "{retained}"
    );
    drop(server);
}

#[test]
fn ngircd_connect_join_ping_and_rejoin_after_the_server_restarts() {
    use ongwatch::sources::twitch::irc::{self, IrcLogin, IrcSettings, IrcTiming};

    let dir = tempfile::tempdir().unwrap();
    let mut server = Ngircd::start(dir.path(), free_port());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (events_tx, mut events) = tokio::sync::mpsc::channel(1024);
    let settings = IrcSettings {
        server: format!("127.0.0.1:{}", server.port),
        tls: false,
        login: IrcLogin::Anonymous,
        include_raw: false,
        timing: IrcTiming {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            // Pings the server after a short silence, so PING/PONG is exercised at once.
            ping_after: Duration::from_millis(200),
            ..IrcTiming::default()
        },
        joins_per_window: irc::JOINS_PER_WINDOW,
    };
    let (handle, task) =
        runtime.block_on(async { irc::spawn(settings, events_tx, shutdown.clone()) });
    // ngircd's own lines (notices, numerics) become raw events; keep the channel drained.
    runtime.spawn(async move { while events.recv().await.is_some() {} });
    handle.join("ongwatch_test");
    let mut status = handle.status();
    let wait = |status: &mut tokio::sync::watch::Receiver<irc::IrcStatus>,
                what: &str,
                check: &dyn Fn(&irc::IrcStatus) -> bool| {
        runtime
            .block_on(async {
                tokio::time::timeout(PATIENCE, status.wait_for(|s| check(s)))
                    .await
                    .map(|s| s.map(|s| s.clone()))
            })
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .unwrap()
    };
    wait(&mut status, "the join", &|s| {
        s.connected && s.joined.contains("ongwatch_test")
    });
    wait(&mut status, "a PONG", &|s| s.pongs >= 1);
    assert_eq!(status.borrow().sessions, 1);

    server = server.restart(dir.path());
    let after = wait(&mut status, "the rejoin after the restart", &|s| {
        s.sessions >= 2 && s.joined.contains("ongwatch_test")
    });
    assert!(after.connected);
    wait(&mut status, "a PONG from the new server", &|s| {
        s.pongs > after.pongs
    });

    shutdown.cancel();
    runtime.block_on(task).unwrap();
    drop(server);
}
