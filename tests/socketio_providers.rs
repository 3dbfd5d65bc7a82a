//! Streamlabs and StreamElements sources against real servers on loopback:
//! - a real Socket.IO 2 / Engine.IO 3 server (python-socketio 4.6.1, tests/support/socketio_server.py,
//!   venv from scripts/setup-socketio-venv.sh), playing Streamlabs and StreamElements realtime;
//! - an in-process fake of StreamElements Astro (plain WebSocket JSON, tests/support/fake_astro.rs).
//!
//! Time-dependent behaviour (ping interval, backoff) runs on small configured durations and every
//! wait has a generous timeout; nothing asserts how long something took.

#[path = "support/fake_astro.rs"]
mod fake_astro;
#[path = "support/socketio_server.rs"]
mod socketio_server;
mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fake_astro::{Astro, FakeAstro};
use ongwatch::event::{ConnectionState, Event, EventKind, ProviderState, Tier};
use ongwatch::sources::socketio::provider::Timing;
use ongwatch::sources::{streamelements, streamlabs};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
/// How long "nothing more happens" is watched for; many backoff periods of [`timing`].
const QUIET: Duration = Duration::from_millis(1500);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn sample(name: &str) -> PathBuf {
    root().join("tests/data/se_sl").join(name)
}

fn timing() -> Timing {
    Timing {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        unauthorized_backoff: Duration::from_secs(3600),
        stable_after: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(10),
        keepalive_interval: Duration::from_millis(200),
        // Long enough that a busy machine's scheduling stall does not look like a silent link.
        keepalive_timeout: Duration::from_secs(1),
    }
}

/// tests/support/socketio_server.py, killed when dropped.
struct PyServer {
    _child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line read so far, for counting handshakes.
    seen: Vec<String>,
    port: u16,
}

impl PyServer {
    async fn start(python: &Path, mode: &str, token: &str, ping: (f64, f64)) -> Self {
        let mut child = Command::new(python)
            .arg(root().join("tests/support/socketio_server.py"))
            .args(["--mode", mode, "--token", token])
            .args(["--ping-interval", &ping.0.to_string()])
            .args(["--ping-timeout", &ping.1.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start socketio_server.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = PyServer {
            _child: child,
            stdin,
            lines,
            seen: Vec::new(),
            port: 0,
        };
        let line = server.wait_line(|l| l.starts_with("port ")).await;
        server.port = line[5..].parse().unwrap();
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = timeout(WAIT, self.lines.recv())
                .await
                .expect("server line in time")
                .expect("server still running");
            self.seen.push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }

    /// Sends a control command and waits until the server has carried it out.
    async fn cmd(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let verb = command.split(' ').next().unwrap().to_owned();
        self.wait_line(|l| l == format!("ack {verb}")).await;
    }

    async fn emit_sample(&mut self, name: &str) {
        let file: Value =
            serde_json::from_str(&std::fs::read_to_string(sample(name)).unwrap()).unwrap();
        let event = file["socketio_event"].as_str().unwrap();
        self.cmd(&format!("emit {event} {}", sample(name).display()))
            .await;
    }

    /// Lines so far (read up to a round trip through the control channel) starting with `prefix`.
    async fn count(&mut self, prefix: &str) -> usize {
        self.cmd("noop").await;
        self.seen.iter().filter(|l| l.starts_with(prefix)).count()
    }
}

/// A provider task and its output, stopped on drop.
struct Source {
    rx: mpsc::Receiver<Event>,
    shutdown: CancellationToken,
}

impl Drop for Source {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Source {
    fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(mpsc::Sender<Event>, CancellationToken) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(256);
        let shutdown = CancellationToken::new();
        tokio::spawn(run(tx, shutdown.clone()));
        Source { rx, shutdown }
    }

    async fn next(&mut self) -> Event {
        timeout(WAIT, self.rx.recv())
            .await
            .expect("an event in time")
            .expect("source still running")
    }

    /// Waits for `state`, returning its detail and every other state passed on the way.
    /// Panics on a non-state event: nothing may be invented while (re)connecting.
    async fn state(&mut self, state: ConnectionState) -> ProviderState {
        loop {
            let event = self.next().await;
            match event.kind {
                EventKind::ProviderState(ps) if ps.state == state => return ps,
                EventKind::ProviderState(_) => continue,
                _ => panic!("unexpected event while waiting for {state:?}: {event:?}"),
            }
        }
    }

    /// The next event, which must not be a provider state: the connection is expected to be
    /// stable here.
    async fn data(&mut self) -> Event {
        let event = self.next().await;
        assert!(
            !matches!(event.kind, EventKind::ProviderState(_)),
            "unexpected state change while waiting for data: {event:?}"
        );
        event
    }

    /// Everything emitted within [`QUIET`].
    async fn quiet_period(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let end = tokio::time::Instant::now() + QUIET;
        while let Ok(Some(event)) = tokio::time::timeout_at(end, self.rx.recv()).await {
            events.push(event);
        }
        events
    }
}

fn streamlabs_source(url: String, token: &str) -> Source {
    let settings = streamlabs::Settings {
        url,
        channel: "chan".into(),
        environment: "test".into(),
        timing: timing(),
    };
    let token = token.to_owned();
    Source::spawn(move |tx, shutdown| streamlabs::run(settings, token, tx, shutdown))
}

fn se_settings(transport: streamelements::Transport, url: String) -> streamelements::Settings {
    streamelements::Settings {
        transport,
        astro_url: url.clone(),
        realtime_url: url,
        channel: "chan".into(),
        environment: "test".into(),
        timing: timing(),
    }
}

fn se_source(
    settings: streamelements::Settings,
    kind: streamelements::TokenKind,
    token: &str,
) -> Source {
    let credential = streamelements::Credential {
        kind,
        token: token.to_owned(),
    };
    Source::spawn(move |tx, shutdown| streamelements::run(settings, credential, tx, shutdown))
}

/// The venv's python, or the test returns (outside CI) or fails (under CI): see
/// `support::require`.
macro_rules! python_or_skip {
    () => {
        match support::require(socketio_server::venv_python()) {
            Some(python) => python,
            None => return,
        }
    };
}

#[tokio::test]
async fn streamlabs_good_token_normalizes_every_sample() {
    let python = python_or_skip!();
    let mut server = PyServer::start(&python, "streamlabs", "good-token", (25.0, 60.0)).await;
    let mut source = streamlabs_source(server.url(), "good-token");
    source.state(ConnectionState::Connecting).await;
    source.state(ConnectionState::Connected).await;

    server
        .emit_sample("streamlabs.donation.official-docs.json")
        .await;
    let e = source.data().await;
    assert_eq!(e.topic_suffix(), "support/tips");
    assert_eq!(e.id, "streamlabs:0820c9d5bafd768c9843f5e35c885e71");
    assert_eq!(
        (e.provider.as_str(), e.channel.as_str(), e.test),
        ("streamlabs", "chan", false)
    );
    let j = e.to_json();
    assert_eq!(
        j["amount"],
        json!(13.37),
        "a string amount becomes a number"
    );
    assert_eq!(
        (j["currency"].as_str(), j["message"].as_str()),
        (Some("USD"), Some("test donation"))
    );
    assert_eq!(j["user"], "test");

    server
        .emit_sample("streamlabs.subscription.PARTIAL.official-docs.json")
        .await;
    let e = source.data().await;
    assert_eq!(e.topic_suffix(), "support/subs");
    let EventKind::Sub(sub) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(
        (sub.tier, sub.months, sub.message.as_deref()),
        (Tier::One, 7, Some("sub message"))
    );
    assert_eq!(e.raw.as_ref().unwrap()["for"], "twitch_account");

    server
        .emit_sample("streamlabs.follow.element.streamlabs-socket-client.json")
        .await;
    let e = source.data().await;
    assert_eq!(e.topic_suffix(), "community/follows");
    assert!(e.test, "isTest → test");
    assert_eq!(e.to_json()["user"], "tehkhop");

    server
        .emit_sample("streamlabs.justgivingdonation.element.twitchspawn-issue28.json")
        .await;
    let e = source.data().await;
    assert_eq!(e.topic_suffix(), "raw/streamlabs/justgivingdonation");
    assert_eq!(e.id, "streamlabs:f3d16e85636b8e2fd698b1830d97a427");
    let EventKind::Raw(raw) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(
        (raw.data["for"].as_str(), raw.data["amount"].as_u64()),
        (Some("justgiving"), Some(99))
    );

    // Two items in one message are two events.
    server
        .cmd(r#"emitjson event {"type":"bits","for":"twitch_account","message":[{"name":"alinsa_vix","amount":"2490","message":"Cheer2490 CHAOS","_id":"b1"},{"name":"b","amount":1,"_id":"b2"}]}"#)
        .await;
    let (a, b) = (source.data().await, source.data().await);
    assert_eq!(
        (a.id.as_str(), b.id.as_str()),
        ("streamlabs:b1", "streamlabs:b2")
    );
    let j = a.to_json();
    assert_eq!(
        (
            j["provider"].as_str(),
            j["user"].as_str(),
            j["amount"].as_u64(),
            j["message"].as_str(),
            j["currency"].as_str()
        ),
        (
            Some("streamlabs"),
            Some("alinsa_vix"),
            Some(2490),
            Some("Cheer2490 CHAOS"),
            Some("bits")
        )
    );
    assert_eq!(a.topic_suffix(), "support/cheers");

    assert_eq!(server.count("handshake").await, 1);
}

#[tokio::test]
async fn streamlabs_bad_token_is_unauthorized_without_retry_storm() {
    let python = python_or_skip!();
    let mut server = PyServer::start(&python, "streamlabs", "good-token", (25.0, 60.0)).await;
    let mut source = streamlabs_source(server.url(), "wrong-token");
    let state = source.state(ConnectionState::Unauthorized).await;
    assert!(
        state.detail.contains("[streamlabs.test] socket_token"),
        "{}",
        state.detail
    );
    assert!(
        state.detail.contains("credentials.toml"),
        "{}",
        state.detail
    );
    assert!(
        !state.detail.contains("wrong-token"),
        "the token leaked: {}",
        state.detail
    );

    let later = source.quiet_period().await;
    assert!(
        later.is_empty(),
        "nothing happens while waiting out a refused token: {later:?}"
    );
    assert_eq!(
        server.count("handshake bad").await,
        1,
        "one attempt, no retry storm"
    );
    assert_eq!(server.count("handshake ok").await, 0);
}

#[tokio::test]
async fn streamlabs_reconnects_after_a_drop_and_after_missing_pongs() {
    let python = python_or_skip!();
    // Short server-announced ping timing so liveness failures are seen quickly.
    let mut server = PyServer::start(&python, "streamlabs", "good-token", (0.2, 0.4)).await;
    let mut source = streamlabs_source(server.url(), "good-token");
    source.state(ConnectionState::Connected).await;
    server.wait_line(|l| l.starts_with("connected ")).await;

    server
        .emit_sample("streamlabs.donation.official-docs.json")
        .await;
    assert_eq!(source.data().await.topic_suffix(), "support/tips");

    // 1. The server drops the TCP connection without a close frame.
    server.cmd("drop").await;
    let error = source.state(ConnectionState::Error).await;
    assert!(error.detail.contains("reconnecting"), "{}", error.detail);
    source.state(ConnectionState::Connected).await;
    server.wait_line(|l| l.starts_with("connected ")).await;
    server
        .emit_sample("streamlabs.follow.element.streamlabs-socket-client.json")
        .await;
    let e = source.data().await;
    assert_eq!(
        e.topic_suffix(),
        "community/follows",
        "no replay, nothing invented: {e:?}"
    );

    // 2. The server stays connected but stops answering pings.
    server.cmd("pongs off").await;
    let error = source.state(ConnectionState::Error).await;
    assert!(error.detail.contains("pong"), "{}", error.detail);
    server.cmd("pongs on").await;
    source.state(ConnectionState::Connected).await;
    let connects = server.count("connected ").await;
    assert!(
        connects >= 3,
        "reconnected after the silence ({connects} connects)"
    );
    server
        .emit_sample("streamlabs.justgivingdonation.element.twitchspawn-issue28.json")
        .await;
    let e = source.data().await;
    assert_eq!(
        e.topic_suffix(),
        "raw/streamlabs/justgivingdonation",
        "{e:?}"
    );

    // A connection that stays healthy produces nothing on its own.
    let extra: Vec<_> = source
        .quiet_period()
        .await
        .into_iter()
        .filter(|e| !matches!(e.kind, EventKind::ProviderState(_)))
        .collect();
    assert!(extra.is_empty(), "invented events: {extra:?}");
}

#[tokio::test]
async fn streamelements_realtime_authenticates_and_normalizes() {
    let python = python_or_skip!();
    let mut server = PyServer::start(&python, "streamelements", "se-jwt", (25.0, 60.0)).await;
    let mut source = se_source(
        se_settings(streamelements::Transport::Realtime, server.url()),
        streamelements::TokenKind::Jwt,
        "se-jwt",
    );
    let connected = source.state(ConnectionState::Connected).await;
    assert!(
        connected.detail.contains("5afbafb0c3a79ebedde18249"),
        "{}",
        connected.detail
    );
    server.wait_line(|l| l == "authenticate ok").await;

    server
        .emit_sample("streamelements.tip.sogebot-comment.PARTIAL.json")
        .await;
    let e = source.data().await;
    assert_eq!(e.topic_suffix(), "support/tips");
    assert_eq!(e.id, "streamelements:tip:5d967959531876d2589dd772");
    assert_eq!(
        ongwatch::event::format_time(&e.time),
        "2019-10-03T22:42:33.023Z"
    );
    let j = e.to_json();
    assert_eq!(
        (
            j["provider"].as_str(),
            j["user"].as_str(),
            j["amount"].as_f64(),
            j["currency"].as_str(),
            j["message"].as_str()
        ),
        (
            Some("streamelements"),
            Some("qwe"),
            Some(12.0),
            Some("RUB"),
            Some("saaaaaaa")
        )
    );
    assert!(!e.test);

    server
        .cmd(r#"emitjson event {"_id":"r1","type":"raid","provider":"twitch","isMock":true,"data":{"username":"raider","amount":33}}"#)
        .await;
    let e = source.data().await;
    assert_eq!(
        (e.topic_suffix().as_str(), e.test),
        ("community/raids", true)
    );

    server
        .cmd(r#"emitjson event:test {"listener":"follower-latest","event":{"name":"newbie"}}"#)
        .await;
    let e = source.data().await;
    assert_eq!(
        (e.topic_suffix().as_str(), e.test),
        ("community/follows", true)
    );

    server
        .cmd(r#"emitjson event:update {"name":"tip-latest","data":{"name":"qwe","amount":12}}"#)
        .await;
    assert_eq!(
        source.data().await.topic_suffix(),
        "raw/streamelements/update.tip-latest"
    );

    server
        .cmd(r#"emitjson event {"_id":"x1","type":"merch","data":{"username":"m"}}"#)
        .await;
    assert_eq!(
        source.data().await.topic_suffix(),
        "raw/streamelements/merch"
    );
}

#[tokio::test]
async fn streamelements_realtime_bad_token_is_unauthorized_once() {
    let python = python_or_skip!();
    let mut server = PyServer::start(&python, "streamelements", "se-jwt", (25.0, 60.0)).await;
    let mut source = se_source(
        se_settings(streamelements::Transport::Realtime, server.url()),
        streamelements::TokenKind::Apikey,
        "nope",
    );
    let state = source.state(ConnectionState::Unauthorized).await;
    assert!(
        state.detail.contains("[streamelements.test] apikey"),
        "{}",
        state.detail
    );
    assert!(!state.detail.contains("nope"), "{}", state.detail);
    assert!(source.quiet_period().await.is_empty());
    assert_eq!(server.count("authenticate bad").await, 1);
    assert_eq!(server.count("handshake").await, 1);
}

// ---- the fake Astro gateway (tests/support/fake_astro.rs) ----

fn astro_source(astro: &FakeAstro, token: &str) -> Source {
    se_source(
        se_settings(streamelements::Transport::Astro, astro.url.clone()),
        streamelements::TokenKind::Apikey,
        token,
    )
}

#[tokio::test]
async fn astro_subscribes_with_nonces_and_normalizes_tips_and_activities() {
    let mut astro = FakeAstro::start(Astro::Ok).await;
    let mut source = astro_source(&astro, "se-key");
    let connected = source.state(ConnectionState::Connected).await;
    astro.wait_connected().await;
    let topics: Vec<_> = connected
        .subscriptions
        .iter()
        .map(|s| (s.kind.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        topics,
        [
            ("channel.activities", "enabled"),
            ("channel.tips", "enabled"),
            ("channel.tips.moderation", "enabled")
        ]
    );

    {
        let subs = astro.subscribes.lock().unwrap();
        assert_eq!(subs.len(), 3);
        let nonces: std::collections::HashSet<_> = subs
            .iter()
            .map(|s| s["nonce"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(nonces.len(), 3, "one nonce per subscribe");
        for s in subs.iter() {
            assert_eq!(s["type"], "subscribe");
            assert_eq!(s["data"]["token"], "se-key");
            assert_eq!(s["data"]["token_type"], "apikey");
        }
    }

    astro.send(
        "channel.tips",
        json!({"_id":"5d967959531876d2589dd772","channel":"5afbafb0c3a79ebedde18249","provider":"twitch","approved":"allowed","status":"success",
               "donation":{"user":{"username":"qwe","geo":"RU"},"message":"saaaaaaa","amount":12,"currency":"RUB"},"createdAt":"2019-10-03T22:42:33.023Z"}),
    );
    let tip_doc = source.data().await;
    assert_eq!(tip_doc.topic_suffix(), "support/tips");

    let activity: Value = serde_json::from_str::<Value>(
        &std::fs::read_to_string(sample("streamelements.tip.sogebot-comment.PARTIAL.json"))
            .unwrap(),
    )
    .unwrap()["data"]
        .clone();
    astro.send("channel.activities", activity);
    let tip_activity = source.data().await;
    assert_eq!(tip_activity.topic_suffix(), "support/tips");
    assert_eq!(
        tip_doc.id, tip_activity.id,
        "the same tip on both topics has one id, so the hub publishes it once"
    );

    astro.send(
        "channel.activities",
        json!({"_id":"f1","channel":"c","type":"follow","provider":"twitch","data":{"username":"fan","displayName":"Fan"},"createdAt":"2026-01-01T00:00:00Z"}),
    );
    let follow = source.data().await;
    assert_eq!(
        (follow.topic_suffix().as_str(), follow.id.as_str()),
        ("community/follows", "streamelements:f1")
    );

    astro.send(
        "channel.activities",
        json!({"_id":"s1","type":"subscriber","isMock":true,"data":{"username":"gifted","amount":1,"tier":"1000","gifted":true,"sender":"santa"}}),
    );
    let gifted = source.data().await;
    assert!(gifted.test);
    assert!(matches!(&gifted.kind, EventKind::Sub(s) if s.is_gift));
}

#[tokio::test]
async fn astro_partial_subscribe_error_is_reported_per_topic() {
    let mut astro = FakeAstro::start(Astro::TipsRefused).await;
    let mut source = astro_source(&astro, "se-key");
    let connected = source.state(ConnectionState::Connected).await;
    astro.wait_connected().await;
    let tips = connected
        .subscriptions
        .iter()
        .find(|s| s.kind == "channel.tips")
        .unwrap();
    assert_eq!(tips.status, "failed");
    assert!(
        tips.last_error
            .as_deref()
            .unwrap()
            .contains("err_bad_request")
    );
    astro.send(
        "channel.activities",
        json!({"_id":"c1","type":"cheer","data":{"username":"u","amount":100,"message":"Cheer100"}}),
    );
    assert_eq!(source.data().await.topic_suffix(), "support/cheers");
}

#[tokio::test]
async fn astro_unauthorized_waits_instead_of_retrying() {
    let astro = FakeAstro::start(Astro::Unauthorized).await;
    let mut source = astro_source(&astro, "bad-key");
    let state = source.state(ConnectionState::Unauthorized).await;
    assert!(
        state.detail.contains("err_unauthorized"),
        "{}",
        state.detail
    );
    assert!(
        state.detail.contains("[streamelements.test] apikey"),
        "{}",
        state.detail
    );
    assert!(!state.detail.contains("bad-key"), "{}", state.detail);
    assert!(source.quiet_period().await.is_empty());
    assert_eq!(*astro.connections.lock().unwrap(), 1, "no retry storm");
}

#[tokio::test]
async fn astro_silent_link_is_detected_and_reconnected() {
    let mut astro = FakeAstro::start(Astro::FirstGoesSilent).await;
    let mut source = astro_source(&astro, "se-key");
    source.state(ConnectionState::Connected).await;
    assert_eq!(astro.wait_connected().await, 1);
    let error = source.state(ConnectionState::Error).await;
    assert!(error.detail.contains("silent"), "{}", error.detail);
    source.state(ConnectionState::Connected).await;
    assert_eq!(astro.wait_connected().await, 2);
    astro.send(
        "channel.activities",
        json!({"_id":"r1","type":"host","data":{"username":"h","amount":5}}),
    );
    let e = source.data().await;
    assert_eq!(
        e.topic_suffix(),
        "community/raids",
        "only the new event, nothing invented: {e:?}"
    );
}
