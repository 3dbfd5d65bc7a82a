//! The real path (issue 18): Twitch EventSub notification frames over WebSocket (the in-repo
//! fake Twitch in Twitch-CLI-mock mode) → the daemon (EventSub session, normalizer, hub, event
//! log, embedded broker) → an external QoS 1 subscriber; beside bare mosquitto pub → sub with
//! the same payloads, in the same run.
//!
//! Run: `cargo bench --bench eventsub_bus` (needs Debian's `mosquitto`). `EVENTSUB_BENCH_EVENTS`
//! sets N (default 50000), `EVENTSUB_BENCH_ROUNDS` how often both paths are measured in turn
//! (default 2), `EVENTSUB_BENCH_CONFIG` more of the daemon's config (sections; e.g. to turn a
//! part off and see what it costs); with `EVENTSUB_BENCH_BASELINE=<an earlier ongwatch binary>`
//! that one is measured too, in the same run, on a fake Twitch of its own. `cargo test --benches` runs a smoke version (200 events, 200 for latency).
//!
//! Per path and round:
//! - throughput: N events sent as fast as the sender goes, timed until the subscriber has all;
//! - CPU: user + system time of the broker process (mosquitto, or the whole daemon) over the
//!   throughput phase, per 100,000 events; beside it, in brackets, this process's (the sender
//!   and the subscriber, on the same cores);
//! - latency at 1,000 events/s from the send (the fake's notification frame, or the
//!   publisher's PUBLISH) to the subscriber's receipt, one clock: p50 and p99.
//!
//! The mosquitto publisher is a rumqttc client in this process sending the payload the daemon
//! published for a warm-up notification, with the id changed per event.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ongwatch::sources::twitch::fake::{FakeTwitch, Mode};
use rumqttc::v5::mqttbytes::QoS;
use serde_json::json;
use support::{
    Daemon, client, cpu_time, paced_latencies, quantile, start_configured, start_mosquitto,
    status_kib, subscriber, wait_until,
};

const TOPIC: &str = "stream/support/cheers";
/// The warm-up cheer's number; its payload is the template of mosquitto's.
const WARMUP: u64 = 999_999_999;

/// A viewer's id and login, of the same length for every `n`.
fn viewer(n: u64) -> (String, String) {
    let id = format!("{:09}", n % 1_000_000_000);
    let login = format!("v{id}");
    (id, login)
}

/// Cheer `n`, from a viewer of its own: the same viewer cheering the same amount again and
/// again is a cross-source duplicate candidate the daemon keeps for the dedup window.
fn cheer(n: u64) -> serde_json::Value {
    let (user_id, login) = viewer(n);
    json!({
        "is_anonymous": false, "user_id": user_id, "user_login": login,
        "user_name": login, "broadcaster_user_id": "12345",
        "broadcaster_user_login": "localdev", "broadcaster_user_name": "localdev",
        "message": "Cheer2490 CHAOS", "bits": 2490
    })
}

/// The warm-up cheer's `template` as event `n`: its id (`warm_id` written as `id`) and viewer.
fn copy_of(template: &str, warm_id: &str, id: &str, n: u64) -> String {
    let (warm_user_id, warm_login) = viewer(WARMUP);
    let (user_id, login) = viewer(n);
    template
        .replacen(warm_id, id, 1)
        .replace(&warm_login, &login)
        .replace(&warm_user_id, &user_id)
}

/// How events enter a path: a notification from the fake Twitch, or a publish to mosquitto.
/// Both send a copy of one template with the ids changed, so neither measures building JSON.
enum Sender {
    Twitch {
        fake: FakeTwitch,
        /// The warm-up cheer's notification frame.
        template: String,
    },
    Mosquitto {
        publisher: rumqttc::v5::AsyncClient,
        template: String,
    },
}

impl Sender {
    /// Sends event `n`; returns the id the subscriber will see.
    async fn send(&self, n: u64) -> String {
        let message_id = format!("bench-{n}");
        match self {
            Sender::Twitch { fake, template } => {
                let text = copy_of(template, "\"warmup\"", &format!("\"{message_id}\""), n);
                assert!(
                    fake.send_frame("channel.cheer", text),
                    "the daemon holds no channel.cheer subscription"
                );
            }
            Sender::Mosquitto {
                publisher,
                template,
            } => {
                let payload = copy_of(
                    template,
                    "twitch:warmup",
                    &format!("twitch:{message_id}"),
                    n,
                );
                publisher
                    .publish_bytes(TOPIC, QoS::AtLeastOnce, false, Bytes::from(payload))
                    .await
                    .unwrap();
            }
        }
        format!("twitch:{message_id}")
    }
}

struct Measured {
    rate: f64,
    cpu_per_100k: f64,
    /// This process (the sender and the subscriber), which shares the cores.
    bench_cpu_per_100k: f64,
    p50: Duration,
    p99: Duration,
    received: u64,
}

async fn measure(
    port: u16,
    broker_pid: u32,
    metrics: Option<&str>,
    sender: &Sender,
    events: u64,
    latency_events: u64,
    offset: u64,
) -> Measured {
    let mut rx = subscriber(port, TOPIC).await;
    let cpu_before = cpu_time(broker_pid);
    let bench_cpu_before = cpu_time(std::process::id());
    let start = Instant::now();
    let mut received = 0;
    let mut sent = 0;
    // Sends in slices so the subscriber is drained while sending (one runtime for both).
    while received < events {
        if sent < events {
            for n in sent..(sent + 256).min(events) {
                sender.send(offset + n).await;
            }
            sent = (sent + 256).min(events);
            while let Ok(_got) = rx.try_recv() {
                received += 1;
            }
            tokio::task::yield_now().await;
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(_)) => received += 1,
            _ => break,
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time(broker_pid).saturating_sub(cpu_before);
    let bench_cpu = cpu_time(std::process::id()).saturating_sub(bench_cpu_before);
    if received < events
        && let Some(http) = metrics
    {
        report_losses(http, events - received).await;
    }
    let rate = received as f64 / elapsed.as_secs_f64();
    let cpu_per_100k = cpu.as_secs_f64() * 100_000.0 / received.max(1) as f64;
    let bench_cpu_per_100k = bench_cpu.as_secs_f64() * 100_000.0 / received.max(1) as f64;

    let latencies = paced_latencies(&mut rx, offset + events, latency_events, async |n| {
        sender.send(n).await
    })
    .await;
    Measured {
        rate,
        cpu_per_100k,
        bench_cpu_per_100k,
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
        received,
    }
}

/// What the daemon counted as dropped, when the subscriber did not get every event: a bench
/// that loses events measures nothing, so it says where they went.
async fn report_losses(http: &str, missing: u64) {
    let text = match ongwatch::net::http_client()
        .get(format!("http://{http}/metrics"))
        .send()
        .await
    {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(e) => format!("(metrics unreadable: {e})"),
    };
    println!("{missing} events missing; the daemon's counters of drops:");
    for line in text.lines() {
        if line.contains("dropped") && !line.starts_with('#') && !line.ends_with(" 0") {
            println!("  {line}");
        }
    }
}

fn report(name: &str, m: &Measured, baseline: &Measured) {
    println!(
        "{name:<30} {:>8.0} events/s ({:>5.1} % of mosquitto)  CPU {:>6.2} s/100k events (bench {:.2})  p50 {:>6.3} ms  p99 {:>6.3} ms  (+{:.3} / +{:.3} ms)  [{} received]",
        m.rate,
        100.0 * m.rate / baseline.rate,
        m.cpu_per_100k,
        m.bench_cpu_per_100k,
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3,
        (m.p50.as_secs_f64() - baseline.p50.as_secs_f64()) * 1e3,
        (m.p99.as_secs_f64() - baseline.p99.as_secs_f64()) * 1e3,
        m.received,
    );
}

/// The daemon `binary` in `dir` on a fake Twitch of its own, subscribed to cheers; with what it
/// publishes for a cheer (the payload mosquitto carries too).
async fn start_daemon(binary: &Path, dir: &Path) -> (Daemon, Sender, String) {
    std::fs::create_dir_all(dir).unwrap();
    let fake = FakeTwitch::start(Mode::CliMock).await.unwrap();
    let credentials = dir.join("credentials.toml");
    std::fs::write(&credentials, "[twitch.localdev]\nclient_id = 'debug'\n").unwrap();
    let daemon = start_configured(
        binary,
        dir,
        &format!(
            "environment = \"localdev\"\n{}\n[twitch]\neventsub_url = \"{}\"\neventsub_subscriptions_url = \"{}\"\n",
            std::env::var("EVENTSUB_BENCH_CONFIG").unwrap_or_default(),
            fake.eventsub_url(),
            fake.mock_subscriptions_url()
        ),
        &["--credentials", credentials.to_str().unwrap()],
    );
    wait_until("the channel.cheer subscription", || {
        fake.subscriptions()
            .iter()
            .any(|s| s.kind == "channel.cheer" && s.status == "enabled")
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut warm = subscriber(daemon.mqtt_port, TOPIC).await;
    let frame = fake
        .notification_frame("channel.cheer", cheer(WARMUP), "warmup")
        .expect("the channel.cheer subscription");
    assert!(fake.send_frame("channel.cheer", frame.clone()));
    let (_, payload, _) = tokio::time::timeout(Duration::from_secs(30), warm.recv())
        .await
        .expect("the warm-up cheer through the daemon")
        .unwrap();
    let template = String::from_utf8(payload.to_vec()).unwrap();
    (
        daemon,
        Sender::Twitch {
            fake,
            template: frame,
        },
        template,
    )
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let env = |key: &str, default: u64| {
        std::env::var(key)
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    let events = env("EVENTSUB_BENCH_EVENTS", if benching { 50_000 } else { 200 });
    let latency_events = if benching { 3_000 } else { 200 };
    let rounds = env("EVENTSUB_BENCH_ROUNDS", if benching { 2 } else { 1 });
    let dir = tempfile::tempdir().unwrap();

    let (daemon, twitch_sender, template) = start_daemon(
        Path::new(env!("CARGO_BIN_EXE_ongwatch")),
        &dir.path().join("daemon"),
    )
    .await;
    let idle_rss = status_kib(daemon.pid, "VmRSS:");
    let baseline = match std::env::var_os("EVENTSUB_BENCH_BASELINE") {
        Some(binary) => Some(start_daemon(Path::new(&binary), &dir.path().join("baseline")).await),
        None => None,
    };

    let (mosquitto, mosquitto_port) = start_mosquitto(dir.path());
    let (publisher, mut eventloop) = client(mosquitto_port, "bench-pub");
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let bare_sender = Sender::Mosquitto {
        publisher,
        template: template.clone(),
    };

    println!(
        "EventSub → daemon → subscriber vs mosquitto pub → sub: {events} events per path and round, QoS 1, {} byte payload",
        template.len()
    );
    for round in 0..rounds {
        let offset = round * 10_000_000;
        let bare = measure(
            mosquitto_port,
            mosquitto.0.id(),
            None,
            &bare_sender,
            events,
            latency_events,
            offset,
        )
        .await;
        let real = measure(
            daemon.mqtt_port,
            daemon.pid,
            Some(&daemon.http),
            &twitch_sender,
            events,
            latency_events,
            offset + 5_000_000,
        )
        .await;
        let before = match &baseline {
            Some((old, sender, _)) => Some(
                measure(
                    old.mqtt_port,
                    old.pid,
                    Some(&old.http),
                    sender,
                    events,
                    latency_events,
                    offset + 7_000_000,
                )
                .await,
            ),
            None => None,
        };
        println!("round {}", round + 1);
        report("mosquitto pub→sub", &bare, &bare);
        if let Some(before) = &before {
            report("baseline: EventSub → … → sub", before, &bare);
        }
        report("EventSub → daemon → sub", &real, &bare);
    }
    println!(
        "daemon: ready after {:.1} ms (spawn → runtime.json), idle RSS {:.1} MiB, RSS after load {:.1} MiB",
        daemon.ready_after.as_secs_f64() * 1e3,
        idle_rss as f64 / 1024.0,
        status_kib(daemon.pid, "VmRSS:") as f64 / 1024.0
    );
}
