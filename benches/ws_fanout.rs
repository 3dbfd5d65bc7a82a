//! The WebSocket fan-out benchmark (issue 6): many `/ws/events` clients, a steady event rate,
//! delivery latency, the daemon's CPU and RSS, and what stalled clients cost the others.
//!
//! Run: `cargo bench --bench ws_fanout` — 1,000 clients, 1,000 events/s, 60 s per phase.
//! Under `cargo test --benches` (no `--bench` argument) it runs a short smoke version.
//! Environment: `WS_FANOUT_CLIENTS`, `WS_FANOUT_RATE` (events/s), `WS_FANOUT_SECONDS` (per
//! phase), `WS_FANOUT_STALLED` (10), `WS_FANOUT_PROBES` (20), `WS_FANOUT_BATCH_MS` (10),
//! `WS_FANOUT_BASELINE` (path of another ongwatch binary, e.g. one built from an earlier
//! commit: it runs the same phases first, for a same-run comparison).
//! Results go to stdout; docs/PERFORMANCE.md records them.
//!
//! The release daemon runs as its own process (CPU from `/proc/<pid>/stat`, RSS from
//! `/proc/<pid>/status`). One extra WebSocket client publishes `{"p": phase, "t": µs}` with the
//! `publish` op at the given rate. The clients share the machine with the daemon, so they are
//! kept cheap: raw sockets, and all but `WS_FANOUT_PROBES` of them are read by one task every
//! `WS_FANOUT_BATCH_MS` that only counts frames (the daemon still writes every frame to every
//! socket). The probes run on a thread of their own, read at once and stamp receipt on the
//! publisher's clock, so latency is publish → daemon (hub, event log, fan-out) → client. Phase 1 runs with the clients only;
//! phase 2 adds stalled clients that complete the handshake and never read a byte.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use support::{Daemon, start_binary, start_daemon, status_kib};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// Latency histogram resolution and range: 10 µs buckets up to 2 s, the rest in the last one.
const BUCKET_US: u64 = 10;
const BUCKETS: usize = 200_000;
const TOPIC: &str = "stream/bench/fanout";

struct Settings {
    clients: usize,
    rate: u64,
    seconds: u64,
    stalled: usize,
    /// Clients that read at once and measure latency; the others read every `batch`.
    probes: usize,
    batch: Duration,
}

impl Settings {
    fn from_env() -> Self {
        // `cargo bench` passes --bench; `cargo test --benches` does not: keep that one short.
        let full = std::env::args().any(|a| a == "--bench");
        let var = |name: &str, full_value: u64, short_value: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(if full { full_value } else { short_value })
        };
        Self {
            clients: usize::try_from(var("WS_FANOUT_CLIENTS", 1000, 20)).unwrap_or(1000),
            rate: var("WS_FANOUT_RATE", 1000, 200).max(1),
            seconds: var("WS_FANOUT_SECONDS", 60, 2).max(1),
            stalled: usize::try_from(var("WS_FANOUT_STALLED", 10, 2)).unwrap_or(10),
            probes: usize::try_from(var("WS_FANOUT_PROBES", 20, 5)).unwrap_or(20),
            batch: Duration::from_millis(var("WS_FANOUT_BATCH_MS", 10, 10)),
        }
    }
}

/// What the clients saw in one phase.
struct Phase {
    buckets: Vec<AtomicU32>,
    /// Latency samples (probes) ...
    samples: AtomicU64,
    /// ... and frames delivered to any client.
    received: AtomicU64,
    max_us: AtomicU64,
}

impl Phase {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            samples: AtomicU64::new(0),
            received: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }

    fn record(&self, micros: u64) {
        let index = usize::try_from(micros / BUCKET_US)
            .unwrap_or(BUCKETS - 1)
            .min(BUCKETS - 1);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(micros, Ordering::Relaxed);
        self.count();
    }

    fn count(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// The latency below which `q` of the samples fall, in milliseconds (bucket upper bound).
    fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.samples.load(Ordering::Relaxed);
        let wanted = ((total as f64) * q).ceil() as u64;
        let mut seen = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            seen += u64::from(bucket.load(Ordering::Relaxed));
            if seen >= wanted.max(1) {
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        f64::NAN
    }
}

/// The `"p"` and `"t"` numbers of a server frame, found without parsing the whole JSON (the
/// clients' CPU is shared with the daemon, so they must stay cheap).
fn stamp(frame: &str) -> Option<(usize, u64)> {
    let number = |key: &str| -> Option<u64> {
        let start = frame.find(key)? + key.len();
        let digits: &str = &frame[start..];
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        digits[..end].parse().ok()
    };
    Some((usize::try_from(number("\"p\":")?).ok()?, number("\"t\":")?))
}

/// User + system CPU time of `pid` in seconds.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may contain spaces; the fields after it are fixed.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / ticks_per_second
}

/// `VmRSS` and `VmHWM` of `pid` in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let mib = |key| status_kib(pid, key) as f64 / 1024.0;
    (mib("VmRSS:"), mib("VmHWM:"))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

async fn api_status(http: &str) -> serde_json::Value {
    let client = ongwatch::net::http_client();
    match client.get(format!("http://{http}/api/status")).send().await {
        Ok(response) => response.json().await.unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}

/// Opens `/ws/events` on a raw TCP socket: the upgrade request, then the 101 head. Returns
/// the stream and whatever frame bytes came with the head.
async fn upgrade(addr: &str, recv_buffer: Option<u32>) -> Option<(tokio::net::TcpStream, Vec<u8>)> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).ok()?;
    }
    let mut stream = socket.connect(addr.parse().ok()?).await.ok()?;
    stream.set_nodelay(true).ok()?;
    let request = format!(
        "GET /ws/events?topics={TOPIC} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buffer = Vec::with_capacity(4096);
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buffer.starts_with(b"HTTP/1.1 101") {
                return None;
            }
            return Some((stream, buffer.split_off(end + 4)));
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// One complete server frame at the start of `buffer`: `(opcode, payload range, frame length)`.
/// Server frames are never masked.
fn frame(buffer: &[u8]) -> Option<(u8, std::ops::Range<usize>, usize)> {
    let opcode = *buffer.first()? & 0x0f;
    let (len, head) = match *buffer.get(1)? & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes([*buffer.get(2)?, *buffer.get(3)?])),
            4,
        ),
        127 => (
            usize::try_from(u64::from_be_bytes(buffer.get(2..10)?.try_into().ok()?)).ok()?,
            10,
        ),
        n => (usize::from(n), 2),
    };
    (buffer.len() >= head + len).then_some((opcode, head..head + len, head + len))
}

/// Reads the complete frames at the start of `buffer`, hands each text payload to `seen`,
/// and drops them; `false` once the daemon sent a close frame.
fn take_frames(buffer: &mut Vec<u8>, mut seen: impl FnMut(&str)) -> bool {
    let mut consumed = 0;
    let mut open = true;
    while let Some((opcode, payload, length)) = frame(&buffer[consumed..]) {
        let payload = &buffer[consumed..][payload];
        if opcode == 8 {
            open = false;
        } else if opcode == 1
            && let Ok(text) = std::str::from_utf8(payload)
        {
            seen(text);
        }
        consumed += length;
    }
    buffer.drain(..consumed);
    open
}

/// A probe on a raw socket (tungstenite's per-message work in this process would make the
/// clients, not the daemon, the bottleneck): reads as soon as bytes arrive and records each
/// frame's latency.
async fn probe(addr: String, start: Instant, phases: Arc<[Phase; 2]>) {
    let Some((mut stream, mut buffer)) = upgrade(&addr, None).await else {
        eprintln!("a probe could not connect");
        return;
    };
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        let open = take_frames(&mut buffer, |text| {
            if let Some((phase, sent)) = stamp(text)
                && let Some(phase) = phases.get(phase)
            {
                let now = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                phase.record(now.saturating_sub(sent));
            }
        });
        if !open {
            return;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The load clients: every `batch`, one task reads whatever each socket has and counts the
/// frames. One task and one timer for all of them, and sockets outside the reactor (they are
/// only read on the tick, so epoll would wake this process for every packet for nothing): the
/// load generator's own overhead is CPU the daemon does not get on a shared two-core machine.
/// The daemon still writes every frame to every socket.
async fn load_clients(
    clients: Vec<(tokio::net::TcpStream, Vec<u8>)>,
    phases: Arc<[Phase; 2]>,
    batch: Duration,
) {
    // `into_std` leaves the socket non-blocking and out of tokio's epoll set.
    let mut clients: Vec<(std::net::TcpStream, Vec<u8>)> = clients
        .into_iter()
        .filter_map(|(stream, buffer)| Some((stream.into_std().ok()?, buffer)))
        .collect();
    let mut chunk = vec![0u8; 256 * 1024];
    let mut tick = tokio::time::interval(batch);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !clients.is_empty() {
        tick.tick().await;
        clients.retain_mut(|(stream, buffer)| {
            loop {
                match std::io::Read::read(stream, &mut chunk) {
                    Ok(0) => return false,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            take_frames(buffer, |text| {
                if let Some((phase, _)) = stamp(text)
                    && let Some(phase) = phases.get(phase)
                {
                    phase.count();
                }
            })
        });
    }
}

/// A client that completes the WebSocket handshake and then never reads: its socket buffers
/// fill, then its queue in the daemon, until the daemon cuts it off.
async fn stalled(addr: &str) -> Option<tokio::net::TcpStream> {
    upgrade(addr, Some(4096)).await.map(|(stream, _)| stream)
}

/// Publishes `rate` events/s for `seconds`, stamped with the phase and the send time.
async fn publish(publisher: &mut Publisher, phase: usize, rate: u64, seconds: u64, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    for _ in 0..rate * seconds {
        tick.tick().await;
        let t = start.elapsed().as_micros();
        let frame =
            format!(r#"{{"op":"publish","topic":"{TOPIC}","payload":{{"p":{phase},"t":{t}}}}}"#);
        if publisher.send(Message::text(frame)).await.is_err() {
            panic!("the publisher lost its connection");
        }
    }
}

type Publisher = futures::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

struct Report {
    phase: &'static str,
    sent: u64,
    received: u64,
    p50: f64,
    p99: f64,
    max: f64,
    cpu_percent: f64,
    /// This process (the clients and the publisher), to show who had the CPU.
    clients_cpu_percent: f64,
    rss: f64,
}

async fn run(settings: &Settings, daemon: &Daemon, probes: &tokio::runtime::Handle) -> Vec<Report> {
    let start = Instant::now();
    let ticks = clock_ticks();
    let phases = Arc::new([Phase::new(), Phase::new()]);
    let mut clients = Vec::with_capacity(settings.probes + 1);
    for _ in 0..settings.probes.min(settings.clients) {
        // The probes have a thread of their own: behind the load clients on the same workers
        // they would measure the bench's own run queue, not the daemon's delivery.
        clients.push(probes.spawn(probe(daemon.http.clone(), start, phases.clone())));
    }
    let connecting: Vec<_> = (settings.probes..settings.clients)
        .map(|_| {
            let addr = daemon.http.clone();
            tokio::spawn(async move { upgrade(&addr, None).await })
        })
        .collect();
    let mut load = Vec::with_capacity(connecting.len());
    for connection in connecting {
        match connection.await {
            Ok(Some(client)) => load.push(client),
            _ => eprintln!("a client could not connect"),
        }
    }
    clients.push(tokio::spawn(load_clients(
        load,
        phases.clone(),
        settings.batch,
    )));
    loop {
        let status = api_status(&daemon.http).await;
        if status["websocket"]["clients"].as_u64() >= Some(settings.clients as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (publisher, mut replies) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/events?topics=", daemon.http))
            .await
            .expect("the publisher connects")
            .0
            .split();
    // The daemon answers every publish; those answers must be read or the publisher is cut off.
    let drain = tokio::spawn(async move { while replies.next().await.is_some() {} });
    let mut publisher = publisher;

    let mut reports = Vec::new();
    let mut stalled_streams = Vec::new();
    for (index, name) in [(0, "clients only"), (1, "with stalled clients")] {
        if index == 1 {
            for _ in 0..settings.stalled {
                stalled_streams.extend(stalled(&daemon.http).await);
            }
        }
        let cpu_before = cpu_seconds(daemon.pid, ticks);
        let own_before = cpu_seconds(std::process::id(), ticks);
        let wall = Instant::now();
        publish(
            &mut publisher,
            index,
            settings.rate,
            settings.seconds,
            start,
        )
        .await;
        let busy = cpu_seconds(daemon.pid, ticks) - cpu_before;
        let own = cpu_seconds(std::process::id(), ticks) - own_before;
        let elapsed = wall.elapsed().as_secs_f64();
        // Let the last frames arrive before reading the counts.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let phase = &phases[index];
        reports.push(Report {
            phase: name,
            sent: settings.rate * settings.seconds * settings.clients as u64,
            received: phase.received.load(Ordering::Relaxed),
            p50: phase.quantile_ms(0.50),
            p99: phase.quantile_ms(0.99),
            max: phase.max_us.load(Ordering::Relaxed) as f64 / 1000.0,
            cpu_percent: busy / elapsed * 100.0,
            clients_cpu_percent: own / elapsed * 100.0,
            rss: rss_mib(daemon.pid).0,
        });
    }
    let status = api_status(&daemon.http).await;
    println!(
        "stalled clients connected: {} of {}; cut off by the daemon (1008): {}",
        stalled_streams.len(),
        settings.stalled,
        status["websocket"]["cut_off"]
    );
    drop(stalled_streams);
    drain.abort();
    for client in clients {
        client.abort();
    }
    reports
}

fn main() {
    let settings = Settings::from_env();
    println!(
        "ws_fanout: {} clients ({} probes, the others read every {:?}), {} events/s, {} s per phase, {} stalled clients in phase 2",
        settings.clients,
        settings.probes,
        settings.batch,
        settings.rate,
        settings.seconds,
        settings.stalled
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let probes = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("probes")
        .enable_all()
        .build()
        .expect("the probes' runtime");
    if let Ok(baseline) = std::env::var("WS_FANOUT_BASELINE") {
        let dir = tempfile::tempdir().expect("a temp dir");
        let daemon = start_binary(std::path::Path::new(&baseline), dir.path());
        let reports = runtime.block_on(run(&settings, &daemon, probes.handle()));
        print_reports(&format!("baseline {baseline}"), &reports, &daemon);
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let daemon = start_daemon(dir.path());
    let reports = runtime.block_on(run(&settings, &daemon, probes.handle()));
    print_reports("this build", &reports, &daemon);
}

fn print_reports(binary: &str, reports: &[Report], daemon: &Daemon) {
    println!(
        "{binary}:\n| phase | frames delivered | p50 | p99 | max | daemon CPU | clients CPU | daemon RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in reports {
        println!(
            "| {} | {} of {} | {:.2} ms | {:.2} ms | {:.1} ms | {:.0} % | {:.0} % | {:.1} MiB |",
            r.phase,
            r.received,
            r.sent,
            r.p50,
            r.p99,
            r.max,
            r.cpu_percent,
            r.clients_cpu_percent,
            r.rss
        );
    }
    println!("daemon peak RSS: {:.1} MiB", rss_mib(daemon.pid).1);
}
