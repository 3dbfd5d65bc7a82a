//! What the benchmark binaries share: the daemon under test as a child process, and what
//! `/proc` says about it.
#![allow(dead_code)] // each bench uses a different part of this module

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    let config = dir.join("ongwatch.toml");
    std::fs::write(
        &config,
        "[mqtt]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("write the config");
    let state = dir.join("state");
    let started = Instant::now();
    let child = Command::new(binary)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
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
