//! `[[outputs]]` end to end: the real daemon feeding a real redis-server, a real nats-server
//! in JetStream mode, an HTTP server in this test (webhooks) and its SQLite history. Every
//! server runs on a free loopback port with its own temp dir and is killed on drop.

mod support;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use support::*;

const BURST: usize = 10_000;
const RATE: &str = "2000";

/// Retries quick enough that a server restart costs a second, not the default backoff.
const FAST_RETRY: &str = "retry_initial_ms = 50\nretry_max_seconds = 0.5\nbreaker_failures = 20\nbreaker_cooldown_seconds = 1\ndrain_seconds = 2\n";

fn config(outputs: &str) -> String {
    format!("{EPHEMERAL}{outputs}")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// `ongwatch trigger cheer --repeat n --rate r`, running while the test does other things.
fn burst(daemon: &Daemon, kind: &str, n: usize, rate: &str) -> Child {
    ongwatch()
        .current_dir(&daemon.dir)
        .args(["trigger", kind, "--user", "burst_user", "--amount", "7"])
        .args(["--repeat", &n.to_string(), "--rate", rate])
        .arg("--config")
        .arg(&daemon.config)
        .arg("--state-dir")
        .arg(&daemon.state_dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn finish(mut child: Child) {
    assert!(child.wait().unwrap().success(), "ongwatch trigger failed");
}

/// (seq, event id) of every logged event on `topic`, in log order, once `n` are there.
fn logged(daemon: &Daemon, topic: &str, n: usize) -> Vec<(u64, String)> {
    wait_for(&format!("{n} events on {topic} in the event log"), || {
        let found: Vec<_> = daemon
            .log_lines()
            .into_iter()
            .filter(|l| l["topic"] == topic)
            .map(|l| {
                (
                    l["seq"].as_u64().unwrap(),
                    l["event"]["id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        (found.len() >= n).then_some(found)
    })
}

fn http_get(daemon: &Daemon, path: &str) -> Value {
    let url = format!("http://{}{path}", daemon.runtime.http.unwrap());
    runtime().block_on(async {
        let client = ongwatch::net::http_client();
        client.get(url).send().await.unwrap().json().await.unwrap()
    })
}

/// The output's `/api/status` entry; its counters must add up in every one of them.
fn output_status(daemon: &Daemon, name: &str) -> Value {
    let status = http_get(daemon, "/api/status")["outputs"][name].clone();
    assert_counts_add_up(&status);
    status
}

/// The invariant every output's counters keep at all times (src/sinks/runner.rs `Counts`).
#[track_caller]
fn assert_counts_add_up(status: &Value) {
    let n = |key: &str| {
        status[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {status}"))
    };
    assert_eq!(
        n("enqueued"),
        n("delivered") + n("depth") + n("dropped") + n("failed"),
        "enqueued != delivered + depth (queued) + dropped + failed: {status}"
    );
}

/// The output's status once nothing is queued for it any more, checked on every poll.
fn settled_status(daemon: &Daemon, name: &str) -> Value {
    wait_for(&format!("output {name} to have nothing queued"), || {
        let status = output_status(daemon, name);
        (status["depth"] == 0).then_some(status)
    })
}

// ---------------------------------------------------------------------------------------
// A webhook receiver: records every POST, can sleep, answer with scripted statuses, and be
// restarted (its runtime dropped, which closes every connection) on the same port.

#[derive(Default)]
struct HookState {
    /// (X-Ongwatch-Seq, body) per request, in arrival order.
    got: Mutex<Vec<(Option<u64>, Value)>>,
    delay: Mutex<Duration>,
    /// Answers to give before the normal 204: (status, Retry-After).
    script: Mutex<VecDeque<(u16, Option<&'static str>)>>,
}

struct Hook {
    port: u16,
    state: Arc<HookState>,
    runtime: Option<tokio::runtime::Runtime>,
}

async fn receive(
    State(state): State<Arc<HookState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, retry_after)) = state.script.lock().unwrap().pop_front() {
        let mut response = (
            StatusCode::from_u16(status).unwrap(),
            "{\"retry_after\": 0.3}",
        )
            .into_response();
        if let Some(wait) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", wait.parse().unwrap());
        }
        return response;
    }
    let seq = headers
        .get("x-ongwatch-seq")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    state.got.lock().unwrap().push((seq, body));
    StatusCode::NO_CONTENT.into_response()
}

impl Hook {
    fn start() -> Self {
        let mut hook = Self {
            port: free_port(),
            state: Arc::default(),
            runtime: None,
        };
        hook.restart();
        hook
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    fn restart(&mut self) {
        self.stop();
        let runtime = runtime();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(self.state.clone());
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let listener = wait_for("the webhook port to be free again", || {
            runtime.block_on(tokio::net::TcpListener::bind(addr)).ok()
        });
        runtime.spawn(async move { axum::serve(listener, app).await });
        self.runtime = Some(runtime);
    }

    /// Seqs in order of first arrival; a repeat (a retry after a lost answer) counts once.
    fn unique_seqs(&self) -> Vec<u64> {
        let mut seen = HashSet::new();
        self.state
            .got
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(seq, _)| *seq)
            .filter(|seq| seen.insert(*seq))
            .collect()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop();
    }
}

fn webhook_output(name: &str, hook: &Hook, extra: &str) -> String {
    format!(
        "[[outputs]]\nkind = \"webhook\"\nname = \"{name}\"\nurl = \"{}\"\ntopics = [\"stream/support/#\"]\n{FAST_RETRY}{extra}",
        hook.url()
    )
}

#[test]
fn webhook_gets_a_burst_in_order_and_survives_its_server_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let mut hook = Hook::start();
    let daemon = Daemon::start_in(dir.path(), &config(&webhook_output("hook", &hook, "")), &[]);

    let trigger = burst(&daemon, "cheer", BURST, RATE);
    wait_for("a third of the burst at the webhook", || {
        (hook.unique_seqs().len() > BURST / 3).then_some(())
    });
    hook.stop();
    std::thread::sleep(Duration::from_millis(800));
    hook.restart();
    finish(trigger);

    let expected: Vec<u64> = logged(&daemon, "stream/support/cheers", BURST)
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
    assert_eq!(expected.len(), BURST);
    let got = wait_for("every cheer at the webhook", || {
        output_status(&daemon, "hook");
        let got = hook.unique_seqs();
        (got.len() >= BURST).then_some(got)
    });
    assert_eq!(got, expected, "missing, extra or out-of-order records");
    let bodies = hook.state.got.lock().unwrap();
    let (_, body) = bodies.last().unwrap();
    assert_eq!(body["type"], "cheer");
    assert_eq!(body["user"], "burst_user");
    assert_eq!(body["amount"], 7);
    drop(bodies);

    let status = settled_status(&daemon, "hook");
    assert_eq!(status["kind"], "webhook");
    assert_eq!(status["delivered"], BURST as u64, "{status}");
    assert_eq!(status["dropped"], 0, "{status}");
    assert!(status["retried"].as_u64().unwrap() >= 1, "{status}");
    assert!(status["filtered"].as_u64().unwrap() >= 1, "{status}");
    let metrics = reqwest_text(&daemon, "/metrics");
    assert!(
        metrics.contains(&format!(
            "ongwatch_events_out_total{{output=\"hook\"}} {BURST}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("ongwatch_output_retried_total{output=\"hook\",kind=\"webhook\"}"));
}

fn reqwest_text(daemon: &Daemon, path: &str) -> String {
    let url = format!("http://{}{path}", daemon.runtime.http.unwrap());
    runtime().block_on(async {
        let client = ongwatch::net::http_client();
        client.get(url).send().await.unwrap().text().await.unwrap()
    })
}

#[test]
fn a_tiny_queue_reports_every_drop() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start();
    *hook.state.delay.lock().unwrap() = Duration::from_millis(3);
    let output = webhook_output(
        "tiny",
        &hook,
        "queue = 5\npolicy = \"drop_newest\"\nbatch = 1\n",
    );
    let daemon = Daemon::start_in(dir.path(), &config(&output), &[]);
    let n = 2000;
    finish(burst(&daemon, "cheer", n, "4000"));
    logged(&daemon, "stream/support/cheers", n);

    let status = wait_for("the tiny queue to be settled", || {
        let status = output_status(&daemon, "tiny");
        let settled = status["depth"] == 0
            && status["delivered"].as_u64()? + status["dropped"].as_u64()? == n as u64;
        settled.then_some(status)
    });
    let dropped = status["dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{status}");
    assert_eq!(
        hook.unique_seqs().len() as u64,
        status["delivered"].as_u64().unwrap(),
        "{status}"
    );
    let metrics = reqwest_text(&daemon, "/metrics");
    assert!(
        metrics.contains(&format!(
            "ongwatch_output_dropped_total{{output=\"tiny\"}} {dropped}"
        )),
        "{metrics}"
    );
}

#[test]
fn discord_messages_have_embeds_and_a_429_is_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start();
    hook.state
        .script
        .lock()
        .unwrap()
        .push_back((429, Some("0.3")));
    let output = format!(
        "[[outputs]]\nkind = \"webhook\"\nname = \"discord\"\nformat = \"discord\"\nurl = \"{}\"\n{FAST_RETRY}",
        hook.url()
    );
    let daemon = Daemon::start_in(dir.path(), &config(&output), &[]);
    for kind in ["cheer", "raid", "online", "chat"] {
        let out = daemon.cli(&["trigger", kind, "--user", "viewer_one", "--amount", "100"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let titles = wait_for("three embeds", || {
        let titles: Vec<String> = hook
            .state
            .got
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, body)| body["embeds"].as_array().cloned().unwrap_or_default())
            .map(|embed| embed["title"].as_str().unwrap_or_default().to_owned())
            .collect();
        (titles.len() >= 3).then_some(titles)
    });
    assert!(titles[0].contains("cheered 100 bits"), "{titles:?}");
    assert!(titles[1].contains("is raiding with"), "{titles:?}");
    assert!(titles[2].ends_with("is live"), "{titles:?}");
    let got = hook.state.got.lock().unwrap();
    assert_eq!(got[0].1["allowed_mentions"]["parse"], serde_json::json!([]));
    drop(got);
    let status = settled_status(&daemon, "discord");
    assert!(status["retried"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["breaker"], "closed", "{status}");
}

#[test]
fn a_sleeping_webhook_delays_neither_mqtt_nor_the_other_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start();
    *hook.state.delay.lock().unwrap() = Duration::from_secs(20);
    let outputs = format!(
        "{}[[outputs]]\nkind = \"sqlite\"\nname = \"history\"\n",
        webhook_output("sleepy", &hook, "queue = 100\ntimeout_seconds = 60\n")
    );
    let daemon = Daemon::start_in(dir.path(), &config(&outputs), &[]);
    let mut sub = mosquitto_sub(daemon.mqtt_port(), "stream/support/cheers", &[]);

    finish(burst(&daemon, "cheer", BURST, RATE));
    wait_for("every cheer at the MQTT subscriber", || {
        (sub.count_lines("stream/support/cheers ") >= BURST).then_some(())
    });
    wait_for("every cheer in the SQLite history", || {
        let delivered = output_status(&daemon, "history")["delivered"].as_u64()?;
        (delivered >= BURST as u64).then_some(())
    });
    let history = http_get(
        &daemon,
        "/api/events?topic=stream/support/%23&since=0&limit=10000",
    );
    let history = history["events"].as_array().unwrap();
    assert_eq!(history.len(), BURST);
    let status = output_status(&daemon, "sleepy");
    // All but what its queue holds and the batch stuck in the sleeping POST was dropped.
    let dropped = status["dropped"].as_u64().unwrap();
    assert!(dropped >= (BURST - 300) as u64, "{status}");
    assert!(
        dropped + status["depth"].as_u64().unwrap() <= BURST as u64,
        "{status}"
    );
    assert_eq!(output_status(&daemon, "history")["dropped"], 0);
}

#[test]
fn sqlite_history_survives_a_restart_and_serves_api_events() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = "[[outputs]]\nkind = \"sqlite\"\nretention_days = 30\n";
    let mut daemon = Daemon::start_in(dir.path(), &config(outputs), &[]);
    finish(burst(&daemon, "cheer", BURST, "5000"));
    let expected = logged(&daemon, "stream/support/cheers", BURST);
    wait_for("the history to hold the burst", || {
        (output_status(&daemon, "sqlite")["delivered"].as_u64()? >= BURST as u64).then_some(())
    });
    let status = settled_status(&daemon, "sqlite");
    assert_eq!(status["dropped"], 0, "{status}");
    assert_eq!(daemon.proc.terminate(), Some(0));

    // Something only the database has, to tell where /api/events reads from.
    let db = rusqlite::Connection::open(daemon.state_dir.join("history.db")).unwrap();
    db.execute(
        "INSERT INTO events (seq, time, topic, type, user, id, event) VALUES (900000000, '2030-01-01T00:00:00.000Z', 'stream/support/cheers', 'cheer', 'x', 'sentinel', '{\"id\":\"sentinel\"}')",
        [],
    )
    .unwrap();
    drop(db);

    let daemon = Daemon::start_in(dir.path(), &config(outputs), &[]);
    let events = http_get(
        &daemon,
        "/api/events?topic=stream/support/cheers&since=0&limit=10000",
    );
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), BURST);
    for (event, (seq, id)) in events.iter().zip(&expected) {
        assert_eq!(event["seq"], *seq);
        assert_eq!(event["event"]["id"], id.as_str());
        assert_eq!(event["topic"], "stream/support/cheers");
    }
    let latest = http_get(&daemon, "/api/events?topic=stream/support/cheers&limit=2");
    assert_eq!(latest["events"][1]["event"]["id"], "sentinel", "{latest}");
    assert_eq!(latest["next_since"], 900000000);
}

#[test]
fn check_names_the_output_and_key_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ongwatch.toml");
    std::fs::write(
        &path,
        "[[outputs]]\nkind = \"kafka\"\n[[outputs]]\nkind = \"webhook\"\nurl = \"not a url\"\n[[outputs]]\nkind = \"redis\"\nurl = \"http://127.0.0.1:6379\"\n[[outputs]]\nkind = \"nats\"\nurl = \"nats://127.0.0.1:4222\"\npolicy = \"sometimes\"\n",
    )
    .unwrap();
    let out = ongwatch()
        .args(["check", "--config"])
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    for key in [
        "outputs[1].kind",
        "outputs[2].url",
        "outputs[3].url",
        "outputs[4].policy",
    ] {
        assert!(
            text.contains(&format!("{key}:")),
            "{key} missing in:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Redis

struct RedisServer {
    proc: Proc,
    port: u16,
}

impl RedisServer {
    fn start(dir: &Path, port: u16) -> Self {
        let mut proc = Proc::spawn(
            "redis-server",
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir),
        );
        proc.expect_ready("Ready to accept connections");
        Self { proc, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it saving its data (`--save ''` only turns off the periodic snapshots), as a
    /// server with persistence would keep it across a restart.
    fn restart(self, dir: &Path, down: Duration) -> Self {
        let mut proc = self.proc;
        let _ = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "shutdown", "save"])
            .output();
        let _ = proc.child.wait();
        std::thread::sleep(down);
        Self::start(dir, self.port)
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

/// (seq, event) of every entry in a stream.
fn stream_entries(connection: &mut redis::Connection, key: &str) -> Vec<(u64, Value)> {
    let entries: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(connection)
        .unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            (
                fields["seq"].parse().unwrap(),
                serde_json::from_str(&fields["event"]).unwrap(),
            )
        })
        .collect()
}

#[test]
fn redis_gets_a_burst_in_order_and_survives_its_server_restarting() {
    let dir = tempfile::tempdir().unwrap();
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir_all(&redis_dir).unwrap();
    let server = RedisServer::start(&redis_dir, free_port());
    let outputs = format!(
        "[[outputs]]\nkind = \"redis\"\nurl = \"{}\"\ntopics = [\"stream/support/#\"]\nmaxlen = 50000\npublish = true\n{FAST_RETRY}",
        server.url()
    );
    let daemon = Daemon::start_in(&dir.path().join("daemon"), &config(&outputs), &[]);
    let key = "ongwatch:stream:support:cheers";

    let published = Arc::new(Mutex::new(0usize));
    {
        let published = published.clone();
        let mut subscriber = server.connection();
        let (tx, subscribed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut pubsub = subscriber.as_pubsub();
            pubsub.subscribe("stream/support/cheers").unwrap();
            tx.send(()).unwrap();
            // Ends when the server restarts: the count before that is enough.
            while pubsub.get_message().is_ok() {
                *published.lock().unwrap() += 1;
            }
        });
        subscribed.recv().unwrap();
    }

    let trigger = burst(&daemon, "cheer", BURST, RATE);
    let mut probe = server.connection();
    wait_for("a third of the burst in Redis", || {
        let len: usize = redis::cmd("XLEN").arg(key).query(&mut probe).ok()?;
        (len > BURST / 3).then_some(())
    });
    let server = server.restart(&redis_dir, Duration::from_millis(800));
    finish(trigger);

    let expected = logged(&daemon, "stream/support/cheers", BURST);
    let mut connection = server.connection();
    let entries = wait_for("every cheer in the Redis stream", || {
        output_status(&daemon, "redis");
        let entries = stream_entries(&mut connection, key);
        (entries.len() >= BURST).then_some(entries)
    });
    let seqs: Vec<u64> = entries.iter().map(|(seq, _)| *seq).collect();
    let expected_seqs: Vec<u64> = expected.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs, expected_seqs,
        "missing, repeated or out-of-order entries"
    );
    for ((_, event), (_, id)) in entries.iter().zip(&expected) {
        assert_eq!(event["id"], id.as_str());
        assert_eq!(event["type"], "cheer");
    }
    assert!(*published.lock().unwrap() > 0, "nothing was PUBLISHed");
    let status = settled_status(&daemon, "redis");
    assert_eq!(status["delivered"], BURST as u64, "{status}");
    assert_eq!(status["healthy"], true, "{status}");
}

// ---------------------------------------------------------------------------------------
// NATS

/// nats-server in JetStream mode, storing in `dir`.
fn nats_server(dir: &Path, port: u16) -> Proc {
    nats_server_with(port, |command| {
        command.arg("-js").arg("-sd").arg(dir);
    })
}

/// nats-server as it runs by default: core NATS only, no JetStream.
fn plain_nats_server(port: u16) -> Proc {
    nats_server_with(port, |_| {})
}

fn nats_server_with(port: u16, mode: impl FnOnce(&mut Command)) -> Proc {
    let mut command = Command::new(if Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    });
    command.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
    mode(&mut command);
    let mut proc = Proc::spawn("nats-server", &mut command);
    proc.expect_ready("Server is ready");
    proc
}

#[test]
fn nats_jetstream_gets_a_burst_in_order_and_survives_its_server_restarting() {
    use futures::StreamExt as _;
    let dir = tempfile::tempdir().unwrap();
    let nats_dir = dir.path().join("nats");
    let port = free_port();
    let mut server = nats_server(&nats_dir, port);
    let url = format!("nats://127.0.0.1:{port}");
    let rt = runtime();
    rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await.unwrap();
        async_nats::jetstream::new(client)
            .create_stream(async_nats::jetstream::stream::Config {
                name: "SUPPORT".into(),
                subjects: vec!["stream.support.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
    });
    let outputs = format!(
        "[[outputs]]\nkind = \"nats\"\nurl = \"{url}\"\ntopics = [\"stream/support/#\", \"stream/system/#\"]\n{FAST_RETRY}"
    );
    let daemon = Daemon::start_in(&dir.path().join("daemon"), &config(&outputs), &[]);

    let stored = || {
        rt.block_on(async {
            let client = async_nats::connect(url.as_str()).await.ok()?;
            let mut stream = async_nats::jetstream::new(client)
                .get_stream("SUPPORT")
                .await
                .ok()?;
            Some(stream.info().await.ok()?.state.messages as usize)
        })
    };
    let trigger = burst(&daemon, "cheer", BURST, RATE);
    wait_for("a third of the burst in JetStream", || {
        (stored()? > BURST / 3).then_some(())
    });
    server.terminate();
    std::thread::sleep(Duration::from_millis(800));
    let _server = nats_server(&nats_dir, port);
    finish(trigger);

    let expected = logged(&daemon, "stream/support/cheers", BURST);
    wait_for("every cheer in JetStream", || {
        output_status(&daemon, "nats");
        (stored()? >= BURST).then_some(())
    });
    let ids: Vec<(String, String)> = rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let stream = async_nats::jetstream::new(client)
            .get_stream("SUPPORT")
            .await
            .unwrap();
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap().take(BURST);
        let mut ids = Vec::new();
        while let Some(message) = messages.next().await {
            let message = message.unwrap();
            let event: Value = serde_json::from_slice(&message.payload).unwrap();
            assert_eq!(event["type"], "cheer");
            ids.push((
                message.subject.to_string(),
                event["id"].as_str().unwrap().to_owned(),
            ));
        }
        ids
    });
    assert_eq!(ids.len(), BURST);
    assert!(
        ids.iter()
            .all(|(subject, _)| subject == "stream.support.cheers")
    );
    let got: Vec<&str> = ids.iter().map(|(_, id)| id.as_str()).collect();
    let want: Vec<&str> = expected.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(got, want, "missing, repeated or out-of-order messages");
    let status = settled_status(&daemon, "nats");
    // The client may ride out the restart by itself (it buffers while reconnecting), so
    // retries are possible but not required here.
    assert_eq!(status["delivered"], status["enqueued"], "{status}");
    assert_eq!(status["dropped"], 0, "{status}");
}

#[test]
fn nats_without_jetstream_publishes_a_triggered_cheer_core_at_once() {
    use futures::StreamExt as _;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = plain_nats_server(port);
    let url = format!("nats://127.0.0.1:{port}");
    let rt = runtime();
    let (_client, mut cheers) = rt.block_on(async {
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let cheers = client.subscribe("stream.support.cheers").await.unwrap();
        // The subscription is on the server before anything is published.
        client.flush().await.unwrap();
        (client, cheers)
    });
    let outputs = format!("[[outputs]]\nkind = \"nats\"\nurl = \"{url}\"\n");
    let mut daemon = Daemon::start_in(&dir.path().join("daemon"), &config(&outputs), &[]);

    let out = daemon.cli(&["trigger", "cheer", "--user", "core_fan", "--amount", "42"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let message = rt
        .block_on(async { tokio::time::timeout(PATIENCE, cheers.next()).await })
        .expect("no cheer at the NATS subscriber")
        .expect("the subscription ended");
    let event: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(event["type"], "cheer");
    assert_eq!(event["user"], "core_fan");
    assert_eq!(event["amount"], 42);
    assert!(
        message.headers.is_none(),
        "a core publish carries no Nats-Msg-Id"
    );
    let (_, id) = logged(&daemon, "stream/support/cheers", 1).remove(0);
    assert_eq!(event["id"], id.as_str());

    // The core path was taken because the server answered "no responders" (at once), not
    // because a JetStream request ran into its timeout.
    daemon
        .proc
        .wait_line(&["NATS server has no JetStream", "no responders"]);
    assert_eq!(
        daemon
            .proc
            .count_lines("did not say whether a stream covers"),
        0,
        "a JetStream lookup failed or timed out: {:#?}",
        daemon.proc.seen
    );
    let status = settled_status(&daemon, "nats");
    assert_eq!(status["delivered"], status["enqueued"], "{status}");
    assert_eq!(status["retried"], 0, "{status}");
}
