//! The bus benchmark: events through the daemon to a subscriber, compared in the same run with
//! the same payloads through bare mosquitto (pub → sub).
//!
//! Run: `cargo bench --bench bus` (needs Debian's `mosquitto`; `scripts/setup-test-deps.sh`
//! installs it). `BUS_BENCH_EVENTS` sets N (default 20000). Results go to stdout; the numbers
//! and the command are recorded in docs/PERFORMANCE.md.
//!
//! Paths measured:
//! - `mosquitto pub→sub`: a QoS 1 publisher and a QoS 1 subscriber on bare mosquitto.
//! - `embedded pub→sub`: the same payloads from a bot on its own topic (`stream/synthetic/bench`)
//!   through the daemon's embedded broker, which checks topic authority for every publish and
//!   also logs it. With `BUS_BENCH_BASELINE=<an earlier ongwatch binary>` this path and the
//!   next are measured on that binary too, in the same run.
//! - `trigger → daemon → sub`: trigger requests on `stream/command/trigger`, normalized by the
//!   daemon and published as `stream/support/cheers` (two broker hops plus normalization).
//!
//! Latency is measured at 1,000 events/s on each path from the publisher's send to the
//! subscriber's receipt (both in this process, one clock).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use support::{
    client, paced_latencies, quantile, start_binary, start_daemon, start_mosquitto, status_kib,
    subscriber,
};

/// What one measured path publishes for event `n`: (topic, payload, the id the subscriber sees).
type Shape = fn(u64) -> (String, Bytes, String);

fn cheer_event(n: u64) -> (String, Bytes, String) {
    let id = format!("bench:{n}");
    let payload = serde_json::json!({
        "v": 1, "id": id, "provider": "twitch", "channel": "bench", "time": "2026-03-13T20:01:02.345Z",
        "test": true, "type": "cheer", "user": "alinsa_vix", "user_id": "141981764",
        "display_name": "Alinsa_Vix", "amount": 2490, "currency": "bits", "message": "Cheer2490 CHAOS", "anonymous": false
    });
    (
        "stream/support/cheers".into(),
        Bytes::from(payload.to_string()),
        id,
    )
}

/// The same payload as a bot's own topic: what a bot may publish under topic authority.
fn bot_event(n: u64) -> (String, Bytes, String) {
    let (_, payload, id) = cheer_event(n);
    ("stream/synthetic/bench".into(), payload, id)
}

fn trigger_request(n: u64) -> (String, Bytes, String) {
    let request = serde_json::json!({"id": format!("bench-{n}"), "type": "cheer", "user": "alinsa_vix", "amount": 2490.0, "message": "Cheer2490 CHAOS"});
    (
        "stream/command/trigger".into(),
        Bytes::from(request.to_string()),
        format!("twitch:bench-{n}"),
    )
}

struct Measured {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

async fn measure(port: u16, filter: &str, shape: Shape, events: u64, offset: u64) -> Measured {
    // Throughput: publish N as fast as the client pipeline allows, time until the last arrives.
    let mut rx = subscriber(port, filter).await;
    let (publisher, mut eventloop) = client(
        port,
        &format!("bench-pub-{}", uuid::Uuid::new_v4().simple()),
    );
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let start = Instant::now();
    let send = {
        let publisher = publisher.clone();
        tokio::spawn(async move {
            for n in offset..offset + events {
                let (topic, payload, _) = shape(n);
                publisher
                    .publish_bytes(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
            }
        })
    };
    let mut received = 0;
    while received < events {
        match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
            Ok(Some(_)) => received += 1,
            _ => break,
        }
    }
    let elapsed = start.elapsed();
    send.await.unwrap();
    let rate = received as f64 / elapsed.as_secs_f64();

    // Latency at 1,000 events/s.
    let latency_events = 3000u64;
    let latencies = paced_latencies(&mut rx, offset + events, latency_events, async |n| {
        let (topic, payload, id) = shape(n);
        publisher
            .publish_bytes(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        id
    })
    .await;
    Measured {
        rate,
        p50: quantile(&latencies, 0.50),
        p99: quantile(&latencies, 0.99),
    }
}

fn report(name: &str, m: &Measured, baseline: f64) {
    println!(
        "{name:<28} {:>10.0} events/s ({:>5.1} % of mosquitto)   p50 {:>7.3} ms   p99 {:>7.3} ms",
        m.rate,
        100.0 * m.rate / baseline,
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly then.
    let benching = std::env::args().any(|a| a == "--bench");
    let events: u64 = std::env::var("BUS_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if benching { 20_000 } else { 200 });
    let dir = tempfile::tempdir().unwrap();

    let (_mosquitto, mosquitto_port) = start_mosquitto(dir.path());
    let bare = measure(
        mosquitto_port,
        "stream/support/cheers",
        cheer_event,
        events,
        0,
    )
    .await;

    let baseline = match std::env::var_os("BUS_BENCH_BASELINE") {
        Some(binary) => {
            let baseline_dir = dir.path().join("baseline");
            std::fs::create_dir_all(&baseline_dir).unwrap();
            let old = start_binary(Path::new(&binary), &baseline_dir);
            tokio::time::sleep(Duration::from_secs(1)).await;
            let embedded = measure(
                old.mqtt_port,
                "stream/synthetic/bench",
                bot_event,
                events,
                3_000_000,
            )
            .await;
            let through = measure(
                old.mqtt_port,
                "stream/support/cheers",
                trigger_request,
                events,
                4_000_000,
            )
            .await;
            Some((embedded, through))
        }
        None => None,
    };

    let daemon = start_daemon(dir.path());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = status_kib(daemon.pid, "VmRSS:");
    let embedded = measure(
        daemon.mqtt_port,
        "stream/synthetic/bench",
        bot_event,
        events,
        1_000_000,
    )
    .await;
    let through = measure(
        daemon.mqtt_port,
        "stream/support/cheers",
        trigger_request,
        events,
        2_000_000,
    )
    .await;
    let busy_rss = status_kib(daemon.pid, "VmRSS:");

    println!("bus benchmark: {events} events per path, QoS 1, payload = the seed cheer");
    report("mosquitto pub→sub", &bare, bare.rate);
    if let Some((embedded, through)) = &baseline {
        report("baseline embedded pub→sub", embedded, bare.rate);
        report("baseline trigger → … → sub", through, bare.rate);
    }
    report("embedded pub→sub", &embedded, bare.rate);
    report("trigger → daemon → sub", &through, bare.rate);
    println!(
        "daemon: ready after {:.1} ms (spawn → runtime.json), idle RSS {:.1} MiB, RSS after load {:.1} MiB",
        daemon.ready_after.as_secs_f64() * 1e3,
        idle_rss as f64 / 1024.0,
        busy_rss as f64 / 1024.0
    );
}
