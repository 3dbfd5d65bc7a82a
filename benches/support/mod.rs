//! What the benchmark binaries share: the daemon under test as a child process, and what
//! `/proc` says about it.
#![allow(dead_code)] // each bench uses a different part of this module

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

/// A child process, killed and reaped on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `ready` every millisecond; a bench that cannot start is a setup failure.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `ongwatch run` on its embedded defaults, every listener on a free port.
pub struct Daemon {
    _child: Killed,
    pub pid: u32,
    pub mqtt_port: u16,
    /// The HTTP listener, `host:port`.
    pub http: String,
    /// Spawn → `runtime.json` written.
    pub ready_after: Duration,
}

pub fn start_daemon(dir: &Path) -> Daemon {
    start_binary(Path::new(env!("CARGO_BIN_EXE_ongwatch")), dir)
}

/// `start_daemon` with another ongwatch binary (e.g. an earlier release, for a same-run baseline).
pub fn start_binary(binary: &Path, dir: &Path) -> Daemon {
    start_configured(binary, dir, "", &[])
}

/// `start_binary` with more config (top-level keys first, then sections) and arguments.
pub fn start_configured(binary: &Path, dir: &Path, extra_config: &str, args: &[&str]) -> Daemon {
    let config = dir.join("ongwatch.toml");
    std::fs::write(
        &config,
        format!("{extra_config}\n[mqtt]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .expect("write the config");
    let state = dir.join("state");
    let started = Instant::now();
    let child = Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .args(args)
        .env("ONGWATCH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let pid = child.id();
    let child = Killed(child);
    let mut runtime = serde_json::Value::Null;
    wait_until("runtime.json", || {
        runtime = std::fs::read(state.join("runtime.json"))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        runtime["mqtt"].is_string() && runtime["http"].is_string()
    });
    let ready_after = started.elapsed();
    let mqtt_port = runtime["mqtt"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("the MQTT port in runtime.json");
    Daemon {
        _child: child,
        pid,
        mqtt_port,
        http: runtime["http"].as_str().unwrap_or_default().to_owned(),
        ready_after,
    }
}

/// A `/proc/<pid>/status` size in KiB, e.g. `VmRSS:` or `VmHWM:`; 0 when unreadable.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of a process so far, from `/proc/<pid>/stat`; zero when unreadable.
pub fn cpu_time(pid: u32) -> Duration {
    let ticks_per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(100);
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The command name may hold spaces; the fields after its closing parenthesis do not.
            let rest = stat.rsplit_once(')')?.1.to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / ticks_per_second as f64)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18830)
}

/// Bare Debian mosquitto on a free loopback port, with unlimited queues (the baseline).
pub fn start_mosquitto(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 1000000\nmax_inflight_messages 0\n"),
    )
    .unwrap();
    let binary = if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    };
    let child = Command::new(binary)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (run scripts/setup-test-deps.sh)");
    wait_until("mosquitto", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (Killed(child), port)
}

pub fn client(port: u16, id: &str) -> (AsyncClient, rumqttc::v5::EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(Some(1024 * 1024));
    AsyncClient::new(options, 1000)
}

/// A QoS 1 subscriber on `filter`; yields (payload id, payload, receive instant) per message.
pub async fn subscriber(
    port: u16,
    filter: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<(String, Bytes, Instant)> {
    let (client, mut eventloop) = client(
        port,
        &format!("bench-sub-{}", uuid::Uuid::new_v4().simple()),
    );
    client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut ready = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let now = Instant::now();
                    let id = serde_json::from_slice::<serde_json::Value>(&p.payload)
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    if tx.send((id, p.payload, now)).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let _ = ready_rx.await;
    rx
}

/// The q-quantile of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q) as usize)
        .copied()
        .unwrap_or_default()
}

/// Latency at 1,000 events/s: sends event `first + i` once per millisecond through `send`
/// (which returns the id the subscriber will see) until `count` of them came back on `rx`,
/// and returns their send → receipt times, sorted. Stops early if nothing arrives for 10 s.
pub async fn paced_latencies(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Bytes, Instant)>,
    first: u64,
    count: u64,
    mut send: impl AsyncFnMut(u64) -> String,
) -> Vec<Duration> {
    let mut sent_at = std::collections::HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut latencies = Vec::with_capacity(count as usize);
    let mut n = first;
    while latencies.len() < count as usize {
        tokio::select! {
            _ = ticker.tick(), if n < first + count => {
                let at = Instant::now();
                let id = send(n).await;
                sent_at.insert(id, at);
                n += 1;
            }
            got = tokio::time::timeout(Duration::from_secs(10), rx.recv()) => match got {
                Ok(Some((id, _, at))) => {
                    if let Some(sent) = sent_at.remove(&id) {
                        latencies.push(at - sent);
                    }
                }
                _ => break,
            }
        }
    }
    latencies.sort();
    latencies
}
