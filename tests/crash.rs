//! Issues 8 and 14, crash safety: the real daemon is killed with `kill -9` at random points
//! while events flow, and restarted in the same state dir each time. After every kill the event
//! log, `seq`, the dedup window, the Twitch token and the monitor state must load back intact (a
//! torn last line is detected and cut); after every restart everything the killed run logged has
//! reached the persistent QoS 1 subscriber (what the broker had not acknowledged is published
//! again, with its id), every QoS 1 command published before the kill is in the log, and the
//! retained provider state was replaced at start. Over the whole run every logged id reached the
//! subscriber, every copy of an id is the same message, and everything published is in the log.
//!
//! Set-up: the in-repo fake Twitch (EventSub WebSocket, Helix, OAuth) with short-lived tokens
//! so refreshes happen often, reached for OAuth through a small TCP proxy in this file that can
//! hold back a refresh answer (so a kill lands after Twitch rotated the refresh token but
//! before the daemon saw the new one); a real mosquitto as `[mqtt] mode = "external"`, which
//! outlives the daemon, with a persistent QoS 1 `mosquitto_sub` counting what was published;
//! follow notifications from the fake at a steady pace and trigger commands from a
//! `mosquitto_pub -l` at a slower one; `[monitor]` polling one channel of the fake.
//!
//! Kill points, from a seeded RNG (the seed is printed; `ONGWATCH_CRASH_SEED=<n>` replays a
//! run): a random moment of the steady stream; a refresh whose answer is held; just after a
//! refresh request went out; around a monitor online/offline transition; during a burst of
//! `ongwatch trigger --repeat`. Nothing asserts on wall-clock time.

#[path = "support/fake_twitch.rs"]
mod fake_twitch;
mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_twitch::{CLIENT_ID, all_scopes};
use ongwatch::sources::twitch::auth::{Account, StoredToken};
use ongwatch::sources::twitch::catalog;
use ongwatch::sources::twitch::fake::FakeTwitch;
use serde_json::{Value, json};
use support::*;

/// Lifetime of every token the fake issues: the daemon refreshes a quarter before expiry,
/// so about every 3 seconds.
const TOKEN_LIFETIME: i64 = 4;
/// The channel the monitor polls at the fake.
const WATCHED: &str = "ninja";
const STATUS: &str = "stream/status";
const TWITCH_STATE: &str = "stream/system/providers/twitch";
const FOLLOWS: &str = "stream/community/follows";
const COMMANDS: &str = "stream/command/trigger";
const TORN_WARNING: &str = "event log ended in a torn line";
/// What the Twitch provider says when the stored refresh token is dead.
const UNAUTHORIZED: [&str; 2] = [
    "Twitch no longer accepts the stored login",
    "Twitch refused to renew the broadcaster login",
];

#[test]
fn kill_9_at_random_points_short() {
    crash_loop(KILL_POINTS.len());
}

#[test]
#[ignore = "about 50 kills; run with --ignored --nocapture"]
fn kill_9_at_random_points_full() {
    crash_loop(50);
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness (splitmix64: no dependency, the same sequence on every platform).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max + 1))
    }
}

fn seed() -> u64 {
    match std::env::var("ONGWATCH_CRASH_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .expect("ONGWATCH_CRASH_SEED must be an unsigned integer"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

// ---------------------------------------------------------------------------------------------
// The OAuth proxy: forwards bytes both ways, notes every refresh request, and can hold back
// the answer to one.

#[derive(Default)]
struct ProxyShared {
    stop: AtomicBool,
    hold: AtomicBool,
    /// Refresh requests forwarded to the fake.
    refresh_requests: AtomicU64,
    /// Refresh requests the fake answered (or whose connection ended unanswered).
    refresh_answers: AtomicU64,
    /// Refresh answers currently held back.
    held: AtomicU64,
    /// The refresh token the latest refresh request spent.
    last_spent: Mutex<Option<String>>,
}

struct AuthProxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
}

impl AuthProxy {
    fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ProxyShared::default());
        let accept = shared.clone();
        std::thread::spawn(move || {
            while !accept.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let shared = accept.clone();
                        std::thread::spawn(move || proxy_connection(client, upstream, shared));
                    }
                    Err(_) => std::thread::sleep(OFTEN),
                }
            }
        });
        Self { addr, shared }
    }

    fn requests(&self) -> u64 {
        self.shared.refresh_requests.load(Ordering::SeqCst)
    }

    /// Whether the fake has settled every refresh request it got: once true after a kill,
    /// the fake's refresh tokens no longer change behind the test's back.
    fn settled(&self) -> bool {
        self.shared.refresh_answers.load(Ordering::SeqCst) >= self.requests()
    }

    fn held(&self) -> u64 {
        self.shared.held.load(Ordering::SeqCst)
    }

    fn set_hold(&self, hold: bool) {
        self.shared.hold.store(hold, Ordering::SeqCst);
    }

    fn last_spent(&self) -> Option<String> {
        self.shared.last_spent.lock().unwrap().clone()
    }
}

impl Drop for AuthProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.hold.store(false, Ordering::SeqCst);
    }
}

fn proxy_connection(client: TcpStream, upstream: SocketAddr, shared: Arc<ProxyShared>) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(mut from_client), Ok(mut to_server)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Set before the request is forwarded, so the next bytes from the fake are its answer.
    let refresh_pending = Arc::new(AtomicBool::new(false));
    let server_closed = Arc::new(AtomicBool::new(false));
    let (pending, closed) = (refresh_pending.clone(), server_closed.clone());
    let inspect = shared.clone();
    std::thread::spawn(move || {
        let mut request = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from_client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            request.extend_from_slice(&buf[..n]);
            if let Some(spent) = spent_refresh_token(&request) {
                *inspect.last_spent.lock().unwrap() = Some(spent);
                pending.store(true, Ordering::SeqCst);
                inspect.refresh_requests.fetch_add(1, Ordering::SeqCst);
                request.clear();
            } else if request.len() > 8192 {
                request.drain(..request.len() - 4096);
            }
            let failed = to_server.write_all(&buf[..n]).is_err();
            // Nobody will read an answer any more: the request counts as settled.
            if (failed || closed.load(Ordering::SeqCst)) && pending.swap(false, Ordering::SeqCst) {
                inspect.refresh_answers.fetch_add(1, Ordering::SeqCst);
            }
            if failed {
                break;
            }
        }
        let _ = to_server.shutdown(std::net::Shutdown::Write);
    });
    let (mut from_server, mut to_client) = (server, client);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from_server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if refresh_pending.swap(false, Ordering::SeqCst) {
            shared.refresh_answers.fetch_add(1, Ordering::SeqCst);
            if shared.hold.load(Ordering::SeqCst) {
                // The fake has rotated the refresh token; the daemon does not learn the new one.
                shared.held.fetch_add(1, Ordering::SeqCst);
                while shared.hold.load(Ordering::SeqCst) && !shared.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(OFTEN);
                }
                shared.held.fetch_sub(1, Ordering::SeqCst);
            }
        }
        if to_client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    server_closed.store(true, Ordering::SeqCst);
    if refresh_pending.swap(false, Ordering::SeqCst) {
        shared.refresh_answers.fetch_add(1, Ordering::SeqCst);
    }
    let _ = to_client.shutdown(std::net::Shutdown::Both);
}

/// The refresh token a `grant_type=refresh_token` form spends, once the form is complete
/// (the daemon sends `grant_type`, `refresh_token`, `client_id` in this order).
fn spent_refresh_token(request: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(request);
    let form = &text[text.find("grant_type=refresh_token")?..];
    let start = form.find("&refresh_token=")? + "&refresh_token=".len();
    let value = &form[start..];
    let end = value.find('&')?;
    Some(value[..end].to_owned())
}

// ---------------------------------------------------------------------------------------------
// Feeders: what keeps flowing while the daemon is killed and restarted.

/// `mosquitto_pub -l`: every line written is one QoS 1 message; killed on drop.
struct LinePub {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl LinePub {
    fn start(port: u16, topic: &str) -> Self {
        let mut child = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-i", "crash-commands", "-t", topic, "-l"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto_pub -l");
        let stdin = child.stdin.take();
        Self { child, stdin }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("mosquitto_pub stdin");
        writeln!(stdin, "{line}").expect("write to mosquitto_pub");
        stdin.flush().expect("flush mosquitto_pub");
    }
}

impl Drop for LinePub {
    fn drop(&mut self) {
        // End of input: it publishes what it has read, then exits.
        drop(self.stdin.take());
        let done = Instant::now();
        while done.elapsed() < PATIENCE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(OFTEN);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(id: &str) -> String {
    json!({"id": id, "type": "cheer", "user": "crashbot", "amount": 1}).to_string()
}

/// A follow the fake accepted: its index (for its payload) and upstream message id.
#[derive(Clone)]
struct SentFollow {
    index: usize,
    message_id: String,
}

#[derive(Default)]
struct Sent {
    follows: Vec<SentFollow>,
    /// Follows the fake refused: no enabled subscription on a live session (daemon down).
    follows_refused: u64,
    commands: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Set-up helpers.

fn config(fake: &FakeTwitch, proxy: &AuthProxy, broker_port: u16) -> String {
    format!(
        "[mqtt]\nmode = \"external\"\nurl = \"mqtt://127.0.0.1:{broker_port}\"\nclient_id = \"ongwatch-crash\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\
         [twitch]\nauth_url = \"http://{}/oauth2\"\napi_url = \"{}\"\neventsub_url = \"{}\"\n\
         retry_initial_seconds = 0.05\nretry_max_seconds = 0.5\nkeepalive_grace_seconds = 2.0\n\
         [monitor]\nchannels = [\"{WATCHED}\"]\npolling_interval = 0.1\n",
        proxy.addr,
        fake.api_url(),
        fake.eventsub_url(),
    )
}

fn token_file(state_dir: &Path) -> PathBuf {
    StoredToken::path(state_dir, Account::Broadcaster)
}

/// The stored broadcaster token: it must always parse and be private.
fn load_token(state_dir: &Path) -> StoredToken {
    let path = token_file(state_dir);
    let token = StoredToken::load(&path)
        .unwrap_or_else(|e| panic!("the token file does not load after a kill: {e}"))
        .expect("the token file exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is not 0600");
    }
    token
}

/// The connected sessions once every default subscription is enabled on exactly one of them,
/// and that one is new (not in `before`).
fn wait_new_session(fake: &FakeTwitch, before: &[String]) -> Vec<String> {
    let wanted = catalog::resolve(&[]).unwrap().len();
    wait_for("a new EventSub session with every subscription", || {
        let sessions = fake.sessions();
        (sessions.len() == 1 && !before.contains(&sessions[0]) && fake.enabled() == wanted)
            .then_some(sessions)
    })
}

/// One line of the event log, parsed.
struct LogLine {
    seq: u64,
    topic: String,
    id: Option<String>,
}

fn parse_line(line: &[u8]) -> Option<LogLine> {
    let v: Value = serde_json::from_slice(line).ok()?;
    v.get("event")?;
    Some(LogLine {
        seq: v["seq"].as_u64()?,
        topic: v["topic"].as_str()?.to_owned(),
        id: v["event"]["id"].as_str().map(str::to_owned),
    })
}

/// What a kill left in the log file: the complete lines and the torn tail, if any.
struct LogFile {
    bytes: Vec<u8>,
    lines: Vec<LogLine>,
    /// Length of the part made of complete, parseable lines.
    good_len: usize,
    torn: bool,
}

fn read_log(path: &Path) -> LogFile {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut lines = Vec::new();
    let mut good_len = 0;
    let mut torn = false;
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(pos) => (&rest[..pos], true),
            None => (rest, false),
        };
        let last = !complete || line.len() + 1 == rest.len();
        match parse_line(line) {
            Some(parsed) if complete => {
                lines.push(parsed);
                good_len += line.len() + 1;
            }
            _ => {
                assert!(
                    last,
                    "line {} of the event log is broken but not the last one: {:?}",
                    lines.len() + 1,
                    String::from_utf8_lossy(line)
                );
                torn = true;
            }
        }
        rest = if complete {
            &rest[line.len() + 1..]
        } else {
            &[]
        };
    }
    LogFile {
        bytes,
        lines,
        good_len,
        torn,
    }
}

/// How far from the end of the log's complete part the line with `id` starts.
fn distance_from_end(log: &LogFile, id: &str) -> usize {
    let needle = format!("\"id\":\"{id}\"");
    let good = &log.bytes[..log.good_len];
    String::from_utf8_lossy(good)
        .find(&needle)
        .map_or(0, |at| log.good_len - at)
}

fn assert_seq_increasing(lines: &[LogLine]) {
    for pair in lines.windows(2) {
        assert!(
            pair[1].seq > pair[0].seq,
            "seq {} follows seq {} in the event log (reused or out of order)",
            pair[1].seq,
            pair[0].seq
        );
    }
}

fn id_counts(lines: &[LogLine]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in lines {
        if let Some(id) = &line.id {
            *counts.entry(id.clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// Follows the log as it grows, without reading it all again on every poll. Only complete
/// lines are taken, so a torn tail cut at the next start is never behind `offset`.
struct LogTail {
    path: PathBuf,
    offset: u64,
    counts: HashMap<String, usize>,
}

impl LogTail {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            offset: 0,
            counts: HashMap::new(),
        }
    }

    fn update(&mut self) -> &HashMap<String, usize> {
        use std::io::Seek;
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return &self.counts;
        };
        let mut fresh = Vec::new();
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_ok() {
            let _ = file.read_to_end(&mut fresh);
        }
        if let Some(end) = fresh.iter().rposition(|&b| b == b'\n') {
            for line in fresh[..end].split(|&b| b == b'\n') {
                if let Some(id) = parse_line(line).and_then(|l| l.id) {
                    *self.counts.entry(id).or_insert(0) += 1;
                }
            }
            self.offset += end as u64 + 1;
        }
        &self.counts
    }

    fn has(&mut self, id: &str) -> bool {
        self.update().contains_key(id)
    }
}

/// The persistent `mosquitto_sub` on `stream/#`, with the ids it got from the daemon counted.
struct Subscriber {
    proc: Proc,
    parsed: usize,
    counts: HashMap<String, usize>,
    /// The first copy of each id, to compare the others with.
    first: HashMap<String, String>,
    /// Ids that came again as a different message.
    changed: Vec<String>,
    /// `(id, state, detail)` of every Twitch provider state, in arrival order.
    twitch_states: Vec<(String, String, String)>,
}

impl Subscriber {
    fn update(&mut self) -> &HashMap<String, usize> {
        let lines = self.proc.pump();
        for line in &lines[self.parsed..] {
            let Some((topic, payload)) = line.split_once(' ') else {
                continue;
            };
            if !daemon_topic(topic) {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Value>(payload) else {
                continue;
            };
            let Some(id) = event["id"].as_str().map(str::to_owned) else {
                continue;
            };
            if topic == TWITCH_STATE {
                self.twitch_states.push((
                    id.clone(),
                    event["state"].as_str().unwrap_or_default().to_owned(),
                    event["detail"].as_str().unwrap_or_default().to_owned(),
                ));
            }
            match self.first.get(&id) {
                Some(first) if first != payload => self.changed.push(id.clone()),
                Some(_) => {}
                None => {
                    self.first.insert(id.clone(), payload.to_owned());
                }
            }
            *self.counts.entry(id).or_insert(0) += 1;
        }
        self.parsed = lines.len();
        &self.counts
    }

    fn has(&mut self, id: &str) -> bool {
        self.update().contains_key(id)
    }
}

/// Topics the daemon itself publishes on: not the probe, not the commands of our publishers,
/// not `system/ongwatch` (the bridge publishes it again after every connect, and the broker's
/// will sets it on a kill).
fn daemon_topic(topic: &str) -> bool {
    topic.starts_with("stream/")
        && !topic.starts_with("stream/command/")
        && topic != "stream/system/ongwatch"
}

fn temp_leftovers(state_dir: &Path) -> usize {
    std::fs::read_dir(state_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                .count()
        })
        .unwrap_or(0)
}

fn unauthorized_lines(daemon: &mut Daemon) -> usize {
    daemon
        .proc
        .pump()
        .iter()
        .filter(|l| UNAUTHORIZED.iter().any(|u| l.contains(u)))
        .count()
}

// ---------------------------------------------------------------------------------------------
// The loop.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPoint {
    /// A random moment of the steady stream.
    Steady,
    /// While the answer to a refresh is held back: Twitch has rotated the refresh token.
    RefreshHeld,
    /// A few milliseconds after a refresh request went out.
    RefreshRace,
    /// Around a monitor online/offline transition.
    Transition,
    /// Around a transition while a burst of commands fills the daemon's queues.
    TransitionInBurst,
    /// During a burst of `ongwatch trigger --repeat` (large log batches).
    Burst,
}

const KILL_POINTS: [KillPoint; 6] = [
    KillPoint::Steady,
    KillPoint::RefreshHeld,
    KillPoint::RefreshRace,
    KillPoint::Transition,
    KillPoint::TransitionInBurst,
    KillPoint::Burst,
];

#[derive(Default)]
struct Tally {
    kill_points: BTreeMap<String, u64>,
    torn_natural: u64,
    torn_injected: u64,
    rotations_lost: u64,
    rotations_lost_held: u64,
    relogins: u64,
    /// How often each of [`UNAUTHORIZED`] was what the daemon said first.
    unauthorized_said: [u64; 2],
    resent_follows: u64,
    resent_commands: u64,
    /// `(online?, started_at)` of every transition the fake made.
    transitions: Vec<(bool, String)>,
}

struct Run<'a> {
    fake: &'a FakeTwitch,
    proxy: &'a AuthProxy,
    port: u16,
    daemon_dir: PathBuf,
    state_dir: PathBuf,
    log_path: PathBuf,
    config: String,
    sent: &'a Mutex<Sent>,
    follows_tried: &'a AtomicUsize,
    sub: Subscriber,
    log: LogTail,
    tally: Tally,
    /// The watched channel's stream at the fake, by `started_at`.
    live: Option<String>,
    /// Lines in the log when the current run of the daemon started.
    logged_at_start: usize,
}

impl Run<'_> {
    fn log_in(&self) {
        fake_twitch::store_token_expiring(
            self.fake,
            &self.state_dir,
            &all_scopes(),
            TOKEN_LIFETIME,
        );
    }

    /// The watched channel goes live, or offline when it is live.
    fn transition(&mut self) {
        match self.live.take() {
            Some(started_at) => {
                self.fake.go_offline(WATCHED);
                self.tally.transitions.push((false, started_at));
            }
            None => {
                let started_at = self.fake.go_live(WATCHED, "Crash test", "Chess", 7);
                self.tally.transitions.push((true, started_at.clone()));
                self.live = Some(started_at);
            }
        }
    }

    /// `ongwatch trigger --repeat` as fast as the broker takes it: the daemon's ingress and
    /// log queue fill up.
    fn burst(&self, daemon: &Daemon) -> Proc {
        let mut trigger = ongwatch();
        trigger
            .current_dir(&self.daemon_dir)
            .args(["trigger", "cheer", "--amount", "5", "--repeat", "1500"])
            .arg("--config")
            .arg(&daemon.config)
            .arg("--state-dir")
            .arg(&self.state_dir);
        Proc::spawn("trigger burst", &mut trigger)
    }

    /// Waits until `id` is in the log and at the subscriber.
    fn wait_logged_and_published(&mut self, id: &str) {
        wait_for(&format!("{id} in the log and at the subscriber"), || {
            (self.log.has(id) && self.sub.has(id)).then_some(())
        });
    }

    /// One round: let events flow, kill at `point`, check what is on disk, restart, check the
    /// daemon came back with everything. Returns the restarted daemon and its session.
    fn round(
        &mut self,
        round: usize,
        point: KillPoint,
        rng: &mut Rng,
        mut daemon: Daemon,
        sessions: Vec<String>,
    ) -> (Daemon, Vec<String>) {
        let (fake, proxy) = (self.fake, self.proxy);
        assert_eq!(
            unauthorized_lines(&mut daemon),
            0,
            "round {round}: the daemon said unauthorized though its stored refresh token was good"
        );
        let refreshes_before = proxy.requests();
        let from = self.follows_tried.load(Ordering::SeqCst);
        wait_for("follows flowing", || {
            (self.follows_tried.load(Ordering::SeqCst) >= from + 10).then_some(())
        });

        // --- the kill
        let mut burst = None;
        match point {
            KillPoint::Steady => std::thread::sleep(rng.millis(1500)),
            KillPoint::RefreshHeld => {
                proxy.set_hold(true);
                wait_for("a refresh answer held back", || {
                    (proxy.held() > 0).then_some(())
                });
            }
            KillPoint::RefreshRace => {
                wait_for("a refresh request", || {
                    (proxy.requests() > refreshes_before).then_some(())
                });
                std::thread::sleep(rng.millis(15));
            }
            KillPoint::Transition => {
                self.transition();
                std::thread::sleep(rng.millis(400));
            }
            KillPoint::TransitionInBurst => {
                burst = Some(self.burst(&daemon));
                std::thread::sleep(rng.millis(500));
                self.transition();
                std::thread::sleep(rng.millis(400));
            }
            KillPoint::Burst => {
                burst = Some(self.burst(&daemon));
                std::thread::sleep(rng.millis(1500));
            }
        }
        daemon.proc.kill9();
        proxy.set_hold(false);
        // Every command written to the publisher so far: it publishes them at QoS 1, and the
        // broker keeps them for the daemon until the daemon acknowledges them.
        let commands_before_kill = self.sent.lock().unwrap().commands.len();
        self.sub.update();
        let states_before_restart = self.sub.twitch_states.len();
        // Commands it had not sent yet are not ours to count; what it sent waits at the
        // broker in the daemon's session.
        drop(burst);
        wait_for("the fake to settle the last refresh", || {
            proxy.settled().then_some(())
        });

        // --- what the kill left behind, before the daemon sees it again
        let before = read_log(&self.log_path);
        let mut torn = before.torn;
        if torn {
            self.tally.torn_natural += 1;
        } else if point == KillPoint::Burst || rng.chance(30) {
            // A write cut by the kill, as a crash mid-write leaves it.
            let next = before.lines.last().map_or(1, |l| l.seq + 1);
            let line = format!(
                "{{\"seq\":{next},\"topic\":\"{FOLLOWS}\",\"event\":{{\"id\":\"twitch:torn-{round}\",\"type\":\"follow\"}}}}"
            );
            let cut = 1 + rng.below(line.len() as u64 - 1) as usize;
            let mut torn_line = line.as_bytes()[..cut].to_vec();
            if rng.chance(30) {
                // Cut JSON that still ends in a newline: also a torn write.
                torn_line.push(b'\n');
            }
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.log_path)
                .unwrap();
            file.write_all(&torn_line).unwrap();
            torn = true;
            self.tally.torn_injected += 1;
        }
        let token = load_token(&self.state_dir);
        let refresh = token.refresh_token.clone().expect("a refresh token");
        let rotation_lost = !fake.refresh_token_valid(&refresh);
        if rotation_lost {
            // Only the latest rotation can be lost: the one whose answer never arrived.
            assert_eq!(
                Some(&refresh),
                proxy.last_spent().as_ref(),
                "round {round}: the stored refresh token is dead but is not the last one spent"
            );
            self.tally.rotations_lost += 1;
            if point == KillPoint::RefreshHeld {
                self.tally.rotations_lost_held += 1;
            }
        } else {
            assert_ne!(
                point,
                KillPoint::RefreshHeld,
                "round {round}: a held refresh answer must leave a spent refresh token"
            );
        }
        if let Ok(bytes) = std::fs::read(self.state_dir.join("monitor.json")) {
            serde_json::from_slice::<Value>(&bytes).expect("monitor.json parses after a kill");
        }

        // --- restart in the same state dir
        let mut daemon = Daemon::start_in(&self.daemon_dir, &self.config, &[]);
        if torn {
            daemon.proc.wait_line(&[TORN_WARNING]);
        }
        let after = read_log(&self.log_path);
        assert!(!after.torn, "round {round}: the torn tail was not cut");
        assert_eq!(
            &after.bytes[..before.good_len],
            &before.bytes[..before.good_len],
            "round {round}: the daemon changed complete lines of the log"
        );
        assert_seq_increasing(&after.lines);
        let mut excluded = sessions;
        if rotation_lost {
            let said = wait_for("the daemon to say the Twitch login is unusable", || {
                daemon
                    .proc
                    .pump()
                    .iter()
                    .find_map(|l| UNAUTHORIZED.iter().position(|u| l.contains(u)))
            });
            self.tally.unauthorized_said[said] += 1;
            // A session it may have opened with the old access token is not the one we want.
            excluded.extend(fake.sessions());
            self.log_in();
            self.tally.relogins += 1;
        }
        let sessions = wait_new_session(fake, &excluded);
        if rotation_lost {
            // The re-login answered them; they do not count against the next round.
            daemon
                .proc
                .seen
                .retain(|l| !UNAUTHORIZED.iter().any(|u| l.contains(u)));
        }

        // --- redeliveries of ids already in the log are not published again
        let logged = read_log(&self.log_path);
        let logged_ids: HashSet<&str> = logged
            .lines
            .iter()
            .filter_map(|l| l.id.as_deref())
            .collect();
        let candidates: Vec<SentFollow> = self
            .sent
            .lock()
            .unwrap()
            .follows
            .iter()
            .filter(|f| logged_ids.contains(format!("twitch:{}", f.message_id).as_str()))
            .cloned()
            .collect();
        // The newest (delivered just before the kill) and two older ones.
        let mut resent: Vec<SentFollow> = candidates.iter().rev().take(3).cloned().collect();
        for _ in 0..2 {
            if !candidates.is_empty() {
                resent.push(candidates[rng.below(candidates.len() as u64) as usize].clone());
            }
        }
        for f in &resent {
            assert!(
                fake.notify_as(
                    "channel.follow",
                    fake_twitch::follow(f.index),
                    &f.message_id
                ),
                "the fake could not redeliver"
            );
            self.tally.resent_follows += 1;
        }
        let resent_command = logged
            .lines
            .iter()
            .rev()
            .filter(|l| l.topic == COMMANDS)
            .filter_map(|l| l.id.clone())
            .find(|id| id.starts_with("crash-cmd-"));
        if let Some(id) = &resent_command {
            mosquitto_pub(self.port, COMMANDS, &command(id), &[]);
            self.tally.resent_commands += 1;
        }
        // Fresh ones after them, on both paths: once these are logged and published, so
        // would be any redelivery the daemon let through (each path keeps its order).
        let marker = fake
            .notify("channel.follow", fake_twitch::follow(900_000 + round))
            .expect("the new session takes notifications");
        let command_marker = format!("crash-mark-{round}");
        mosquitto_pub(self.port, COMMANDS, &command(&command_marker), &[]);
        self.wait_logged_and_published(&format!("twitch:{marker}"));
        self.wait_logged_and_published(&format!("twitch:{command_marker}"));
        let counts = self.log.update().clone();
        // Logged once. At the subscriber one may come twice: the restart publishes again what
        // the broker had not acknowledged, with its id.
        for id in resent
            .iter()
            .map(|f| format!("twitch:{}", f.message_id))
            .chain(resent_command.clone())
        {
            assert_eq!(
                counts.get(&id),
                Some(&1),
                "round {round}: {id} logged again after a restart; it was {} bytes before the end of the {}-byte log the daemon started with",
                distance_from_end(&before, &id),
                before.good_len
            );
        }

        // --- no QoS 1 command published before the kill was lost with it
        let commands: Vec<String> =
            self.sent.lock().unwrap().commands[..commands_before_kill].to_vec();
        wait_for("every command sent before the kill in the log", || {
            let logged = self.log.update();
            commands
                .iter()
                .all(|id| logged.contains_key(id))
                .then_some(())
        });

        // --- the retained Twitch state was replaced at start: the first state of the new run
        // (not one of the killed run's, which may come again as unacknowledged) says so
        let killed_ids: HashSet<&str> = before
            .lines
            .iter()
            .filter_map(|l| l.id.as_deref())
            .collect();
        let first_state = self.sub.twitch_states[states_before_restart..]
            .iter()
            .find(|(id, _, _)| !killed_ids.contains(id.as_str()))
            .cloned()
            .expect("a Twitch provider state from the new run");
        assert_eq!(
            (first_state.1.as_str(), first_state.2.as_str()),
            ("connecting", "starting"),
            "round {round}: the first Twitch state after the restart"
        );

        // --- the monitor's state came back: the retained status says what the fake says
        let want = self.live.clone();
        wait_for("the retained status to match the fake", || {
            let status = retained(self.port, STATUS);
            let ok = match &want {
                Some(started_at) => status["live"] == true && status["started_at"] == *started_at,
                None => status["live"] == false,
            };
            ok.then_some(())
        });
        if let Some(started_at) = &self.live {
            let online = format!("monitor:{WATCHED}:online:{started_at}");
            let n = self.log.update().get(&online).copied().unwrap_or(0);
            assert!(n <= 1, "round {round}: {online} is in the log {n} times");
        }
        assert_eq!(
            daemon.proc.count_lines(TORN_WARNING),
            usize::from(torn),
            "round {round}: the torn-line warning"
        );
        // Everything the killed run logged has reached the subscriber: what the broker had not
        // acknowledged was published again at start, ahead of the marker.
        let published = self.sub.update();
        let killed_run = &before.lines[self.logged_at_start..];
        let unpublished: Vec<&str> = killed_run
            .iter()
            .filter(|l| daemon_topic(&l.topic))
            .filter_map(|l| l.id.as_deref())
            .filter(|id| !published.contains_key(*id))
            .collect();
        assert!(
            unpublished.is_empty(),
            "round {round}: logged by the killed run and never published: {unpublished:?}"
        );
        let killed_published: Vec<&str> = killed_run
            .iter()
            .filter(|l| daemon_topic(&l.topic))
            .filter_map(|l| l.id.as_deref())
            .collect();
        let copies: usize = killed_published
            .iter()
            .map(|id| published.get(*id).copied().unwrap_or(0))
            .sum();
        self.logged_at_start = before.lines.len();
        // And the other way round: nothing reaches the subscriber before the log has it.
        let logged_now = self.log.update();
        let not_logged: Vec<&String> = published
            .keys()
            .filter(|id| !logged_now.contains_key(*id))
            .collect();
        assert!(
            not_logged.is_empty(),
            "round {round}: published but not in the log: {not_logged:?}"
        );
        println!(
            "crash: round {round:>2} {point:?}: torn tail {torn}, refresh token lost {rotation_lost}, logged by the killed run {} ({} to publish, received {copies} times), seq {}",
            killed_run.len(),
            killed_published.len(),
            logged.lines.last().map_or(0, |l| l.seq)
        );
        (daemon, sessions)
    }
}

fn crash_loop(kills: usize) {
    let seed = seed();
    println!("crash: seed {seed} (replay with ONGWATCH_CRASH_SEED={seed}), {kills} kills");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let tw = fake_twitch::start();
    let fake = &tw.fake;
    fake.set_token_lifetime(TOKEN_LIFETIME);
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("mosquitto"));
    let port = broker.port;
    let proxy = AuthProxy::start(fake.addr());
    let daemon_dir = dir.path().join("daemon");
    std::fs::create_dir_all(&daemon_dir).unwrap();
    std::fs::write(
        daemon_dir.join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{CLIENT_ID}'\n"),
    )
    .unwrap();
    let sent = Mutex::new(Sent::default());
    let follows_tried = AtomicUsize::new(0);
    let state_dir = daemon_dir.join("state");
    let log_path = state_dir.join("events.jsonl");
    let mut run = Run {
        fake,
        proxy: &proxy,
        port,
        config: config(fake, &proxy, port),
        daemon_dir,
        log: LogTail::new(&log_path),
        state_dir,
        log_path,
        sent: &sent,
        follows_tried: &follows_tried,
        // Persistent QoS 1 subscriber, connected before the daemon ever starts.
        sub: Subscriber {
            proc: mosquitto_sub(port, "stream/#", &["-i", "crash-subscriber", "-c"]),
            parsed: 0,
            counts: HashMap::new(),
            first: HashMap::new(),
            changed: Vec::new(),
            twitch_states: Vec::new(),
        },
        tally: Tally::default(),
        live: None,
        logged_at_start: 0,
    };
    run.log_in();
    let daemon = Daemon::start_in(&run.daemon_dir, &run.config, &[]);
    let sessions = wait_new_session(fake, &[]);

    // Every kill point once first (shuffled), then at random.
    let mut plan: Vec<KillPoint> = KILL_POINTS.to_vec();
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.below(i as u64 + 1) as usize);
    }
    while plan.len() < kills {
        plan.push(KILL_POINTS[rng.below(KILL_POINTS.len() as u64) as usize]);
    }
    plan.truncate(kills);

    let stop = AtomicBool::new(false);
    let mut daemon = std::thread::scope(|scope| {
        // About 100 follows a second from the fake.
        scope.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let notified = fake.notify("channel.follow", fake_twitch::follow(i));
                let mut sent = sent.lock().unwrap();
                match notified {
                    Some(message_id) => sent.follows.push(SentFollow {
                        index: i,
                        message_id,
                    }),
                    None => sent.follows_refused += 1,
                }
                drop(sent);
                i += 1;
                follows_tried.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        // About 20 trigger commands a second through the broker, which queues them in the
        // daemon's persistent session while it is down.
        scope.spawn(|| {
            let mut publisher = LinePub::start(port, COMMANDS);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("crash-cmd-{n}");
                publisher.send(&command(&id));
                sent.lock().unwrap().commands.push(id);
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (mut daemon, mut sessions) = (daemon, sessions);
            for (round, point) in plan.iter().copied().enumerate() {
                *run.tally
                    .kill_points
                    .entry(format!("{point:?}"))
                    .or_default() += 1;
                (daemon, sessions) = run.round(round, point, &mut rng, daemon, sessions);
            }
            daemon
        }));
        stop.store(true, Ordering::SeqCst);
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    });

    // One more of each after the feeders stopped: anything earlier has arrived once they have.
    let marker = fake
        .notify("channel.follow", fake_twitch::follow(999_999))
        .expect("a live session");
    run.wait_logged_and_published(&format!("twitch:{marker}"));
    mosquitto_pub(port, COMMANDS, &command("crash-mark-end"), &[]);
    run.wait_logged_and_published("twitch:crash-mark-end");
    assert_eq!(unauthorized_lines(&mut daemon), 0);
    assert_eq!(daemon.proc.terminate(), Some(0));

    let log = read_log(&run.log_path);
    assert!(!log.torn);
    assert_seq_increasing(&log.lines);
    let counts = id_counts(&log.lines);
    let published = run.sub.update().clone();

    // Every copy of an id is the same message; nothing published that the log lacks.
    assert!(
        run.sub.changed.is_empty(),
        "ids that came again as a different message: {:?}",
        run.sub.changed
    );
    let logged_twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        logged_twice.is_empty(),
        "logged more than once: {logged_twice:?}"
    );
    let missing: Vec<_> = published
        .keys()
        .filter(|id| !counts.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "published but not in the log: {missing:?}"
    );

    // Monitor: each transition at most once.
    let tally = &run.tally;
    let mut transitions_lost = 0;
    for (online, started_at) in &tally.transitions {
        let kind = if *online { "online" } else { "offline" };
        let id = format!("monitor:{WATCHED}:{kind}:{started_at}");
        if !counts.contains_key(&id) {
            transitions_lost += 1;
        }
    }

    // Losses: what the daemon received but had not logged when it was killed, and what went
    // to a socket that was already dead. Not asserted: EventSub does not redeliver.
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    let follows_logged = sent
        .follows
        .iter()
        .filter(|f| counts.contains_key(&format!("twitch:{}", f.message_id)))
        .count();
    let follows_published = sent
        .follows
        .iter()
        .filter(|f| published.contains_key(&format!("twitch:{}", f.message_id)))
        .count();
    let commands_logged = sent
        .commands
        .iter()
        .filter(|id| counts.contains_key(*id))
        .count();
    let cheers_logged = sent
        .commands
        .iter()
        .filter(|id| counts.contains_key(&format!("twitch:{id}")))
        .count();
    let commands_without_cheer = sent
        .commands
        .iter()
        .filter(|id| counts.contains_key(*id) && !counts.contains_key(&format!("twitch:{id}")))
        .count();
    // At least once: every logged id the daemon publishes reached the subscriber.
    let logged_not_published: Vec<&String> = log
        .lines
        .iter()
        .filter(|l| daemon_topic(&l.topic))
        .filter_map(|l| l.id.as_ref())
        .filter(|id| !published.contains_key(*id))
        .collect();
    assert!(
        logged_not_published.is_empty(),
        "logged and never published: {logged_not_published:?}"
    );
    assert_eq!(
        commands_logged,
        sent.commands.len(),
        "QoS 1 commands sent but not logged"
    );
    let deliveries: usize = published.values().sum();
    let duplicates = deliveries - published.len();

    println!("crash: {kills} kills in {:.0?}", started.elapsed());
    println!("crash: kill points {:?}", tally.kill_points);
    println!(
        "crash: event log: {} lines, last seq {}, seq strictly increasing across {kills} restarts; torn tails: {} left by a kill, {} injected, every one cut and reported",
        log.lines.len(),
        log.lines.last().map_or(0, |l| l.seq),
        tally.torn_natural,
        tally.torn_injected
    );
    println!(
        "crash: published: {} ids, all in the log, every logged one at least once; {deliveries} deliveries, {duplicates} duplicates ({:.2}%), each the same message as the first copy",
        published.len(),
        100.0 * duplicates as f64 / published.len().max(1) as f64,
    );
    println!(
        "crash: follows: {} accepted by the fake, {follows_logged} logged, {follows_published} published, {} lost (sent to a dying daemon, or received and not logged yet), {} refused while no session was up",
        sent.follows.len(),
        sent.follows.len() - follows_logged,
        sent.follows_refused
    );
    println!(
        "crash: commands: {} sent, {commands_logged} logged, {cheers_logged} cheers logged, {commands_without_cheer} logged without their cheer",
        sent.commands.len(),
    );
    println!(
        "crash: dedup: {} follows and {} commands redelivered after restarts, 0 logged again",
        tally.resent_follows, tally.resent_commands
    );
    println!(
        "crash: tokens: {} refreshes; refresh token lost {} times ({} with the answer held back, {} killed in the race window), {} re-logins; the file always loaded and was 0600",
        proxy.requests(),
        tally.rotations_lost,
        tally.rotations_lost_held,
        tally.rotations_lost - tally.rotations_lost_held,
        tally.relogins
    );
    println!(
        "crash: tokens: said first after a lost refresh token: {:?} {}x at start-up, {:?} {}x at the next refresh",
        UNAUTHORIZED[0], tally.unauthorized_said[0], UNAUTHORIZED[1], tally.unauthorized_said[1]
    );
    println!(
        "crash: monitor: {} transitions, {} logged once, {transitions_lost} lost, none twice",
        tally.transitions.len(),
        tally.transitions.len() - transitions_lost,
    );
    println!(
        "crash: temp files left in the state dir by kills mid-write: {}",
        temp_leftovers(&run.state_dir)
    );
}
