//! Real processes for integration tests: the ongwatch binary, mosquitto and its clients,
//! MQTT.js under node. Every process is killed when its handle drops, and every port is
//! either bound as 0 by the process itself or picked free just before use.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const OFTEN: Duration = Duration::from_millis(20);
/// Generous limit for something that should happen soon: only a hang reaches it, not a 2-core
/// machine running every test binary's 10,000-event bursts side by side.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Installs every test dependency (servers, clients, node packages, the Python venv).
pub const SETUP: &str = "scripts/setup-test-deps.sh";

/// Whether this is a CI run (`CI` set, as CI services do, and not "false" or "0").
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// What a test does when a dependency it needs is missing (`why`): under CI it fails, naming
/// the command that installs it, because a CI run must test everything; elsewhere it says
/// "skipped" and the test returns. The harness has no skipped outcome, so the line is written
/// straight to stderr, past the harness's capture, to be seen even when the test "passes".
#[track_caller]
pub fn require<T>(dependency: Result<T, String>) -> Option<T> {
    let why = match dependency {
        Ok(found) => return Some(found),
        Err(why) => why,
    };
    assert!(
        !in_ci(),
        "missing test dependency: {why}; install it with {SETUP} (CI=true: a missing dependency fails the test)"
    );
    use std::io::Write as _;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}; run {SETUP}");
    None
}

pub fn ongwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ongwatch"))
}

/// Polls `check` until it returns Some, or panics after PATIENCE with `what`.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(OFTEN);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed on drop, with its output lines collected on a channel.
pub struct Proc {
    pub child: Child,
    pub name: String,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {name}: {e}; {SETUP} installs what the tests run")
            });
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            name: name.to_owned(),
            lines,
            seen: Vec::new(),
        }
    }

    /// Collects whatever lines arrived so far.
    pub fn pump(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Waits until a line containing every needle has been printed; returns it.
    pub fn wait_line(&mut self, needles: &[&str]) -> String {
        let name = self.name.clone();
        wait_for(&format!("{name} to print {needles:?}"), || {
            self.pump()
                .iter()
                .find(|line| needles.iter().all(|n| line.contains(n)))
                .cloned()
        })
    }

    pub fn count_lines(&mut self, needle: &str) -> usize {
        self.pump().iter().filter(|l| l.contains(needle)).count()
    }

    /// After the process exited: every line still in its pipes, so a check that something was
    /// never printed reads the whole output. Bounded in case a grandchild holds a pipe open.
    fn read_to_end(&mut self) {
        let end = Instant::now() + Duration::from_secs(10);
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
    }

    /// Waits until a server says `ready` (its listener is open); its whole output if it exited
    /// first (its port taken, say). Waiting for the port to answer instead could find another
    /// process that took the port meanwhile.
    pub fn wait_ready(&mut self, ready: &str) -> Result<(), Vec<String>> {
        let name = self.name.clone();
        let exited = wait_for(&format!("{name} to say {ready:?}"), || {
            if self.count_lines(ready) > 0 {
                return Some(false);
            }
            matches!(self.child.try_wait(), Ok(Some(_))).then_some(true)
        });
        if exited {
            self.read_to_end();
            return Err(self.seen.clone());
        }
        Ok(())
    }

    /// [`Proc::wait_ready`], failing the test with the server's output if it exited first.
    pub fn expect_ready(&mut self, ready: &str) {
        if let Err(output) = self.wait_ready(ready) {
            panic!("{} exited before it listened: {output:?}", self.name);
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for exit and the rest of its output; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.read_to_end();
                return status.code();
            }
            if start.elapsed() > PATIENCE {
                self.kill9();
                return None;
            }
            std::thread::sleep(OFTEN);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runtime addresses the daemon wrote to its state dir.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Runtime {
    pub pid: u32,
    pub mqtt: Option<SocketAddr>,
    pub mqtt_ws: Option<SocketAddr>,
    #[serde(default)]
    pub mqtt_ws_backend: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
}

/// A running `ongwatch run` with its own temp dir, config and state dir.
pub struct Daemon {
    pub proc: Proc,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub state_dir: PathBuf,
    pub runtime: Runtime,
}

/// Config that binds every listener to a free port chosen by the OS.
pub const EPHEMERAL: &str = "[mqtt]\nlisten = \"127.0.0.1:0\"\nws_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n";

impl Daemon {
    /// Starts with `config` (TOML text) in the temp dir `dir`, with extra CLI args.
    pub fn start_in(dir: &Path, config: &str, args: &[&str]) -> Self {
        Self::start_with_env(dir, config, args, &[])
    }

    /// `start_in` with extra environment variables, e.g. `ONGWATCH_LOG`.
    pub fn start_with_env(dir: &Path, config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let config_path = dir.join("ongwatch.toml");
        std::fs::create_dir_all(dir).expect("daemon dir");
        std::fs::write(&config_path, config).expect("write config");
        let state_dir = dir.join("state");
        let _ = std::fs::remove_file(state_dir.join("runtime.json"));
        let mut command = ongwatch();
        command
            .current_dir(dir)
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(args)
            .envs(env.iter().copied());
        let proc = Proc::spawn("ongwatch run", &mut command);
        let runtime = wait_for("the daemon's runtime.json", || {
            let text = std::fs::read(state_dir.join("runtime.json")).ok()?;
            serde_json::from_slice::<Runtime>(&text).ok()
        });
        Self {
            proc,
            dir: dir.to_path_buf(),
            config: config_path,
            state_dir,
            runtime,
        }
    }

    pub fn mqtt_port(&self) -> u16 {
        self.runtime.mqtt.expect("embedded broker").port()
    }

    /// `ongwatch <args> --config .. --state-dir ..` run to completion.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        ongwatch()
            .current_dir(&self.dir)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .output()
            .expect("run ongwatch")
    }

    /// `ongwatch tail` as a long-running process, ready once it has subscribed.
    pub fn tail(&self, extra: &[&str]) -> Proc {
        let mut command = ongwatch();
        command
            .current_dir(&self.dir)
            .arg("tail")
            .args(extra)
            .arg("--config")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state_dir);
        let mut tail = Proc::spawn("ongwatch tail", &mut command);
        tail.wait_line(&["tail: subscribed"]);
        tail
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.state_dir.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn mosquitto_binary() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// A real mosquitto on a free loopback port, persistence on, in its own directory.
pub struct Mosquitto {
    pub proc: Proc,
    pub port: u16,
    pub dir: PathBuf,
}

impl Mosquitto {
    /// On a free port; on another one if something took it before mosquitto bound it.
    pub fn start(dir: &Path) -> Self {
        let mut tries = 3;
        loop {
            match Self::try_start_on(dir, free_port()) {
                Ok(broker) => return broker,
                Err(output) if tries > 1 => {
                    tries -= 1;
                    eprintln!("mosquitto did not start, trying another port: {output:?}");
                }
                Err(output) => panic!("mosquitto exited before it listened: {output:?}"),
            }
        }
    }

    /// (Re)starts on a given port, e.g. after `stop`, keeping its persistence file.
    pub fn start_on(dir: &Path, port: u16) -> Self {
        Self::try_start_on(dir, port)
            .unwrap_or_else(|output| panic!("mosquitto exited before it listened: {output:?}"))
    }

    /// Its output if it exited before listening (its port taken, say).
    fn try_start_on(dir: &Path, port: u16) -> Result<Self, Vec<String>> {
        std::fs::create_dir_all(dir).expect("mosquitto dir");
        // Started as root, mosquitto drops to its own user and must still write its database.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
        }
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 100000\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type information\n",
                dir.display()
            ),
        )
        .expect("mosquitto conf");
        let mut proc = Proc::spawn(
            "mosquitto",
            Command::new(mosquitto_binary()).arg("-c").arg(&conf),
        );
        // It says "running" once its listener is open (log_type information).
        proc.wait_ready(" running")?;
        Ok(Self {
            proc,
            port,
            dir: dir.to_path_buf(),
        })
    }

    /// Clean stop (SIGTERM), so it writes its persistence file.
    pub fn stop(mut self) -> (PathBuf, u16) {
        self.proc.terminate();
        (self.dir.clone(), self.port)
    }
}

/// `mosquitto_sub -v` on `port`, ready once a probe message came through.
pub fn mosquitto_sub(port: u16, filter: &str, extra: &[&str]) -> Proc {
    let probe_topic = format!("probe/{}", uuid::Uuid::new_v4().simple());
    let mut command = Command::new("mosquitto_sub");
    command
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v", "-q", "1"])
        .args(["-t", filter, "-t", &probe_topic])
        .args(extra);
    let mut sub = Proc::spawn("mosquitto_sub", &mut command);
    wait_for("mosquitto_sub to be subscribed", || {
        mosquitto_pub(port, &probe_topic, "probe", &[]);
        std::thread::sleep(Duration::from_millis(50));
        (sub.count_lines(&probe_topic) > 0).then_some(())
    });
    sub
}

pub fn mosquitto_pub(port: u16, topic: &str, message: &str, extra: &[&str]) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", message])
        .args(extra)
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success(), "mosquitto_pub failed");
}

/// Parses the JSON payload of a `mosquitto_sub -v` line on `topic`.
pub fn payload_on(line: &str, topic: &str) -> Option<serde_json::Value> {
    let rest = line.strip_prefix(topic)?.strip_prefix(' ')?;
    serde_json::from_str(rest).ok()
}

/// The state on `topic` as a new subscriber gets it: the retained message, or the next one if
/// a new state is published just as it subscribes.
pub fn retained(port: u16, topic: &str) -> serde_json::Value {
    let out = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-C", "1", "-W", "10"])
        .output()
        .expect("run mosquitto_sub");
    assert!(out.status.success(), "no retained message on {topic}");
    serde_json::from_slice(&out.stdout).expect("retained JSON")
}

/// The seed's example bot (tests/bots/seed_bot.py, paho-mqtt) on the broker at `port`, ready
/// once subscribed to cheers; `python` is the test venv's.
pub fn seed_bot(python: &Path, port: u16) -> Proc {
    let mut seed = Proc::spawn(
        "seed bot",
        Command::new(python)
            .arg("-u")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/bots/seed_bot.py"
            ))
            .arg(port.to_string()),
    );
    seed.wait_line(&["subscribed"]);
    seed
}

/// `ongwatch check` on a config file holding `config` (in a fresh temp dir): its exit code and
/// everything it printed.
pub fn check_config(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ongwatch.toml");
    std::fs::write(&path, config).expect("write config");
    let out = ongwatch()
        .arg("check")
        .arg("--config")
        .arg(&path)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .expect("run ongwatch check");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}
