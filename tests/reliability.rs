//! Issue 8: bad input, stated (every row of docs/RELIABILITY.md's table that no other test
//! covers) and the security checks, against the real binary. Nothing asserts on wall-clock time.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use ongwatch::sources::twitch::auth::{Account, StoredToken};
use ongwatch::sources::twitch::catalog;
use ongwatch::sources::twitch::fake::{FakeTwitch, Mode};
use serde_json::{Value, json};
use support::*;
use tokio_tungstenite::tungstenite::{self, Message};

const TEN_MB: usize = 10 * 1024 * 1024;

fn http(daemon: &Daemon) -> SocketAddr {
    daemon
        .runtime
        .http
        .expect("runtime.json names the HTTP address")
}

/// One HTTP/1.1 request on its own connection; returns the status and the body.
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before it read a large body: that is the point.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    (status, body.to_owned())
}

fn get(daemon: &Daemon, path: &str) -> (u16, String) {
    request(http(daemon), "GET", path, b"")
}

fn ws(daemon: &Daemon) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(http(daemon)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    tungstenite::client(format!("ws://{}/ws/events", http(daemon)), stream)
        .expect("WebSocket handshake")
        .0
}

fn logged_on(daemon: &Daemon, topic: &str) -> Vec<Value> {
    daemon
        .log_lines()
        .into_iter()
        .filter(|l| l["topic"] == topic)
        .collect()
}

#[test]
fn oversize_and_hostile_web_requests_are_refused_and_the_daemon_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);

    // A 10 MB /ws/events frame closes that connection (1009 "message too big") and no other.
    let mut big = ws(&daemon);
    let sent = big.send(Message::text("x".repeat(TEN_MB)));
    let closed = sent.is_err()
        || loop {
            match big.read() {
                Ok(Message::Close(frame)) => {
                    break frame.is_none_or(|f| u16::from(f.code) == 1009);
                }
                Ok(_) => continue,
                Err(_) => break true,
            }
        };
    assert!(closed, "a 10 MB frame must end the connection");
    let mut client = ws(&daemon);
    client.send(Message::text(r#"{"op":"ping"}"#)).unwrap();
    let pong = loop {
        if let Message::Text(text) = client.read().unwrap() {
            break serde_json::from_str::<Value>(&text).unwrap();
        }
    };
    assert_eq!(pong, json!({"op": "pong"}));

    // A 10 MB /api/publish body is refused before it is parsed.
    let body = json!({"topic": "stream/bots/big", "payload": "x".repeat(TEN_MB)}).to_string();
    assert_eq!(
        request(http(&daemon), "POST", "/api/publish", body.as_bytes()).0,
        413
    );
    // Invalid UTF-8, wildcards and the broker's `$` space in a publish are refused with 4xx.
    let (status, reply) = request(
        http(&daemon),
        "POST",
        "/api/publish",
        b"{\"topic\":\"stream/bots/x\",\"payload\":\"\xff\xfe\"}",
    );
    assert_eq!(status, 400);
    assert_json_error(&reply);
    for topic in ["stream/+/x", "stream/#", "$SYS/x", "", "stream/\u{0}"] {
        let body = json!({"topic": topic, "payload": {}}).to_string();
        let (status, reply) = request(http(&daemon), "POST", "/api/publish", body.as_bytes());
        assert_eq!(status, 400, "{topic:?}: {reply}");
    }
    let (status, reply) = request(
        http(&daemon),
        "POST",
        "/api/trigger",
        b"{\"type\":\"cheer\",\"amount\":\"lots\"}",
    );
    assert!((400..500).contains(&status), "{status}");
    assert_json_error(&reply);
    assert_eq!(get(&daemon, "/api/status").0, 200);
    assert!(logged_on(&daemon, "stream/bots/big").is_empty());
}

/// An API error answer: a JSON body `{"error": "..."}`, whatever went wrong.
fn assert_json_error(reply: &str) {
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or(reply);
    let parsed: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {reply}"));
    assert!(
        parsed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{reply}"
    );
}

/// `mosquitto_pub -f`: the payload is the file's bytes, which need not be UTF-8.
fn pub_file(port: u16, topic: &str, file: &str) {
    let status = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-f", file])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn garbage_on_mqtt_topics_is_logged_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = daemon.mqtt_port();

    // Invalid UTF-8 from a bot is kept with replacement characters, not dropped or fatal.
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, b"\xff\xfeoops\xc3").unwrap();
    let bad = bad.to_str().unwrap();
    pub_file(port, "stream/bots/raw", bad);
    let raw = wait_for("the invalid UTF-8 publish in the log", || {
        logged_on(&daemon, "stream/bots/raw").pop()
    });
    assert_eq!(raw["event"], "\u{fffd}\u{fffd}oops\u{fffd}");
    daemon.proc.wait_line(&["payload is not UTF-8"]);

    // Garbage commands get one warning each and change nothing.
    mosquitto_pub(port, "stream/command/trigger", "not json", &[]);
    pub_file(port, "stream/command/trigger", bad);
    mosquitto_pub(port, "stream/command/trigger", r#"{"type":"nope"}"#, &[]);
    mosquitto_pub(port, "stream/command/chat/send", "{\"message\":", &[]);
    pub_file(port, "stream/command/chat/send", bad);
    daemon.proc.wait_line(&["ignored a chat send command"]);
    wait_for("three trigger warnings", || {
        (daemon.proc.count_lines("ignored a trigger command") >= 3).then_some(())
    });

    // A publish over the broker's 1 MiB packet limit costs the publisher its connection only.
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 2 * 1024 * 1024]).unwrap();
    let refused = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", "stream/bots/big", "-f", big.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());

    // The daemon still works: a real trigger arrives, and nothing bogus was published.
    let out = daemon.cli(&["trigger", "cheer", "--user", "after", "--amount", "5"]);
    assert!(out.status.success(), "{out:?}");
    wait_for("the cheer after the garbage", || {
        logged_on(&daemon, "stream/support/cheers").pop()
    });
    assert!(logged_on(&daemon, "stream/bots/big").is_empty());
    // Its whole output, once it stopped cleanly.
    assert_eq!(daemon.proc.terminate(), Some(0));
    assert_eq!(daemon.proc.count_lines("panicked"), 0);
}

#[test]
fn corrupt_state_files_are_detected_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("totals.json"), b"{\"sessions\": [tru").unwrap();
    let good = r#"{"seq":7,"topic":"stream/bots/old","event":{"id":"old-1"}}"#;
    let torn = r#"{"seq":8,"topic":"stream/bots/old","eve"#;
    std::fs::write(state.join("events.jsonl"), format!("{good}\n{torn}")).unwrap();

    let mut daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    daemon.proc.wait_line(&["session totals unreadable"]);
    mosquitto_pub(
        daemon.mqtt_port(),
        "stream/bots/new",
        r#"{"id":"new-1"}"#,
        &["-i", "bot"],
    );
    // A redelivery of the last logged id is still recognised after the torn line was cut.
    mosquitto_pub(
        daemon.mqtt_port(),
        "stream/bots/old",
        r#"{"id":"old-1"}"#,
        &["-i", "bot"],
    );
    mosquitto_pub(
        daemon.mqtt_port(),
        "stream/bots/new",
        r#"{"id":"new-2"}"#,
        &["-i", "bot"],
    );
    wait_for("the publish after the restart", || {
        logged_on(&daemon, "stream/bots/new")
            .iter()
            .any(|l| l["event"]["id"] == "new-2")
            .then_some(())
    });
    let text = std::fs::read_to_string(state.join("events.jsonl")).unwrap();
    assert!(text.starts_with(&format!("{good}\n")), "{text}");
    assert!(!text.contains(torn), "the torn line was cut");
    let seqs: Vec<u64> = daemon
        .log_lines()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), text.lines().count(), "every line is JSON again");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(
        logged_on(&daemon, "stream/bots/old").len(),
        1,
        "old-1 was not logged again"
    );

    // A garbage runtime.json (a crashed writer) is not taken for a running daemon's address.
    drop(daemon);
    std::fs::write(state.join("runtime.json"), b"\x00\x01garbage").unwrap();
    let out = ongwatch()
        .current_dir(dir.path())
        .args(["trigger", "cheer", "--amount", "1", "--state-dir"])
        .arg(&state)
        .arg("--config")
        .arg(dir.path().join("ongwatch.toml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bad_config_and_credentials_files_exit_2_without_echoing_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ongwatch.toml");
    let credentials = dir.path().join("credentials.toml");
    let check = || {
        ongwatch()
            .arg("check")
            .arg("--config")
            .arg(&config)
            .arg("--credentials")
            .arg(&credentials)
            .output()
            .unwrap()
    };
    std::fs::write(&credentials, "").unwrap();
    for bad in [
        b"[mqtt]\nlisten = \"\xff\xfe\"\n".as_slice(),
        b"\x00\x00\x00",
        format!("[http]\ntoken = \"{}\"\n", "a".repeat(TEN_MB)).as_bytes(),
        // Used to abort with a stack overflow in the CEL parser.
        format!(
            "[[rules]]\nwhen = \"a/b\"\nif = \"{}1{}\"\npublish = {{ topic = \"x/y\", payload = \"ON\" }}\n",
            "(".repeat(3000),
            ")".repeat(3000)
        )
        .as_bytes(),
    ] {
        std::fs::write(&config, bad).unwrap();
        let out = check();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if bad.len() < TEN_MB {
            assert_eq!(out.status.code(), Some(2), "{stderr}");
        }
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.len() < 64 * 1024, "the error does not echo the file");
    }
    std::fs::write(&config, EPHEMERAL).unwrap();
    for bad in [
        "[twitch.test]\nclient_secret = \"cs-LEAK-1\nclient_id = 'x'\n",
        "[twitch.test]\nclient_secret = 'cs-LEAK-1'\nclient_secrte = 'cs-LEAK-1'\n",
        "[twitch.test]\nclient_secret = ['cs-LEAK-1']\n",
    ] {
        std::fs::write(&credentials, bad).unwrap();
        let out = check();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {all}");
        assert!(!all.contains("cs-LEAK-1"), "{bad:?} leaked: {all}");
    }
}

// ---------------------------------------------------------------------------------------------
// Security: secrets never leak, files are private, listeners are loopback.

const CLIENT_ID: &str = "fake-client";
const CLIENT_SECRET: &str = "cs-7c1f0e55-client-secret";
const SE_APIKEY: &str = "se-2b9d41aa-apikey";
const SL_TOKEN: &str = "sl-88e1c0de-socket-token";
const HTTP_TOKEN: &str = "ht-51f3aa09-http-token";
const MQTT_PASSWORD: &str = "mq-4d0c9e21-mqtt-password";

struct Twitch {
    fake: FakeTwitch,
    _rt: tokio::runtime::Runtime,
}

fn twitch() -> Twitch {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeTwitch::start(Mode::Twitch)).unwrap();
    Twitch { fake, _rt: rt }
}

/// A server that answers every request with 401 and records what it was sent, standing in
/// for StreamElements and Streamlabs refusing the credential.
fn refusing_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ = stream.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 12\r\nConnection: close\r\n\r\nunauthorized",
            );
        }
    });
    (addr, seen)
}

fn token_path(dir: &Path) -> std::path::PathBuf {
    StoredToken::path(&dir.join("state"), Account::Broadcaster)
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Local addresses of the TCP sockets `pid` listens on, from /proc/net/tcp{,6}.
fn listening(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Column 3 is the state (0A = LISTEN), column 9 the socket inode.
            if cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]) {
                out.push(cols[1].to_owned());
            }
        }
    }
    out
}

/// `0100007F:1F90` (IPv4, little-endian) or the 32-hex-digit IPv6 form: is it loopback?
fn is_loopback_hex(local: &str) -> bool {
    let addr = local.split(':').next().unwrap_or_default();
    match addr.len() {
        8 => addr.ends_with("7F"),
        32 => {
            addr == "00000000000000000000000001000000"
                || addr.starts_with("0000000000000000FFFF00000")
        }
        _ => false,
    }
}

#[test]
fn a_corrupt_token_file_is_unauthorized_with_the_fix_and_never_quoted() {
    let tw = twitch();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{CLIENT_ID}'\n"),
    )
    .unwrap();
    let path = token_path(dir.path());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{\"access_token\": \"at-LEAK-77\", \xff").unwrap();
    let config = format!(
        "{EPHEMERAL}[twitch]\nauth_url = \"{}\"\napi_url = \"{}\"\neventsub_url = \"{}\"\n",
        tw.fake.auth_url(),
        tw.fake.api_url(),
        tw.fake.eventsub_url()
    );
    let mut daemon = Daemon::start_in(dir.path(), &config, &[]);
    let state = wait_for("the unauthorized state", || {
        logged_on(&daemon, "stream/system/providers/twitch")
            .into_iter()
            .map(|l| l["event"].clone())
            .find(|e| e["state"] == "unauthorized")
    });
    let detail = state["detail"].as_str().unwrap();
    assert!(detail.contains("not a token file"), "{detail}");
    assert!(detail.contains("ongwatch auth twitch"), "{detail}");
    assert_eq!(tw.fake.stats().connections, 0);
    daemon.proc.terminate();
    let output = daemon.proc.pump().join("\n");
    let log = std::fs::read_to_string(dir.path().join("state/events.jsonl")).unwrap();
    assert!(!output.contains("at-LEAK-77") && !log.contains("at-LEAK-77"));
}

#[test]
fn defaults_listen_on_loopback_only() {
    let config = ongwatch::config::Config::defaults();
    for (key, addr) in [
        ("mqtt.listen", config.mqtt_listen),
        ("mqtt.ws_listen", config.mqtt_ws_listen),
        ("http.listen", config.http_listen),
    ] {
        assert!(addr.ip().is_loopback(), "{key} defaults to {addr}");
    }
}

#[test]
fn no_secret_leaks_through_login_refresh_and_errors() {
    no_secret_leaks_at(None);
}

/// Every crate's debug lines too (HTTP, WebSocket and MQTT clients, the broker).
#[test]
fn no_secret_leaks_at_debug_log_level() {
    no_secret_leaks_at(Some("debug"));
}

fn no_secret_leaks_at(log_filter: Option<&str>) {
    let tw = twitch();
    let fake = &tw.fake;
    let dir = tempfile::tempdir().unwrap();
    let (refuser, requests) = refusing_server();
    std::fs::write(
        dir.path().join("credentials.toml"),
        format!(
            "[twitch.test]\nclient_id = '{CLIENT_ID}'\nclient_secret = '{CLIENT_SECRET}'\n\
             [streamelements.test]\napikey = '{SE_APIKEY}'\n\
             [streamlabs.test]\nsocket_token = '{SL_TOKEN}'\n\
             [mqtt.users]\nlights = '{MQTT_PASSWORD}'\n"
        ),
    )
    .unwrap();
    // A short-lived token and a refused first subscription: the daemon refreshes twice.
    let scopes = catalog::requested_scopes(&catalog::resolve(&[]).unwrap());
    fake.set_token_lifetime(3);
    fake.answer_next_subscriptions(401, 1);
    let (access, refresh) = fake.issue_token(CLIENT_ID, "streamer", "4242", &scopes);
    let now = chrono::Utc::now();
    StoredToken {
        account: Account::Broadcaster,
        client_id: CLIENT_ID.into(),
        login: "streamer".into(),
        user_id: "4242".into(),
        scopes: scopes.clone(),
        access_token: access.clone(),
        refresh_token: Some(refresh.clone()),
        expires_at: Some(now + chrono::TimeDelta::seconds(3)),
        obtained_at: now,
    }
    .save(&token_path(dir.path()))
    .unwrap();
    let config = format!(
        "{EPHEMERAL}token = \"{HTTP_TOKEN}\"\n[twitch]\nauth_url = \"{}\"\napi_url = \"{}\"\neventsub_url = \"{}\"\nretry_initial_seconds = 0.05\nretry_max_seconds = 0.5\n\
         [streamelements]\nastro_url = \"ws://{refuser}/astro\"\n[streamlabs]\nurl = \"http://{refuser}\"\n",
        fake.auth_url(),
        fake.api_url(),
        fake.eventsub_url()
    );
    let env: Vec<(&str, &str)> = log_filter
        .map(|f| ("ONGWATCH_LOG", f))
        .into_iter()
        .collect();
    let mut daemon = Daemon::start_with_env(dir.path(), &config, &[], &env);
    // A bot logging in to the embedded broker, and the daemon's own local login.
    mosquitto_pub(
        daemon.mqtt_port(),
        "stream/synthetic/bpm",
        "{}",
        &["-u", "lights", "-P", MQTT_PASSWORD],
    );
    let local_login: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("state/mqtt-local-login.json")).unwrap(),
    )
    .unwrap();
    let local_password = local_login["password"].as_str().unwrap().to_owned();
    let rotated = wait_for("two refreshes", || {
        let stored = StoredToken::load(&token_path(dir.path())).ok()??;
        (fake.stats().refreshes >= 2).then_some(stored)
    });
    wait_for(
        "both socket providers to have tried their credential",
        || {
            let seen = requests.lock().unwrap().join("\n");
            (seen.contains(SE_APIKEY) || seen.contains("astro")).then_some(())?;
            seen.contains(SL_TOKEN).then_some(())
        },
    );
    for provider in ["streamelements", "streamlabs"] {
        wait_for(&format!("{provider} to report the refusal"), || {
            logged_on(&daemon, &format!("stream/system/providers/{provider}"))
                .iter()
                .any(|l| l["event"]["state"] != "connecting")
                .then_some(())
        });
    }
    let out = daemon.cli(&["auth", "status"]);

    let mut exposed = String::new();
    for path in [
        "/",
        "/overlay/alerts",
        "/overlay/hype",
        "/api/status",
        "/api/events?since=0",
        "/metrics",
    ] {
        let (status, body) = get(&daemon, path);
        assert_eq!(status, 200, "{path}");
        exposed.push_str(&body);
    }
    exposed.push_str(&String::from_utf8_lossy(&out.stdout));
    exposed.push_str(&String::from_utf8_lossy(&out.stderr));
    exposed.push_str(&std::fs::read_to_string(dir.path().join("state/events.jsonl")).unwrap());
    exposed.push_str(&std::fs::read_to_string(dir.path().join("state/runtime.json")).unwrap());
    exposed.push_str(&daemon.proc.pump().join("\n"));

    let secrets = [
        CLIENT_SECRET,
        SE_APIKEY,
        SL_TOKEN,
        HTTP_TOKEN,
        MQTT_PASSWORD,
        &local_password,
        &access,
        &refresh,
        &rotated.access_token,
        rotated.refresh_token.as_deref().unwrap(),
    ];
    if log_filter == Some("debug") {
        assert!(exposed.contains(" DEBUG "), "no debug line was printed");
    }
    for secret in secrets {
        assert!(
            !exposed.contains(secret),
            "{secret} leaked at log level {log_filter:?}"
        );
    }

    let state = dir.path().join("state");
    assert_eq!(mode(&state), 0o700);
    for file in [token_path(dir.path()), state.join("events.jsonl")] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
}

#[test]
fn every_listening_socket_is_loopback_and_named_in_runtime_json() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let state = dir.path().join("state");
    assert_eq!(mode(&state.join("runtime.json")), 0o600);
    let named: Vec<SocketAddr> = [
        daemon.runtime.mqtt,
        daemon.runtime.mqtt_ws,
        daemon.runtime.mqtt_ws_backend,
        daemon.runtime.http,
    ]
    .into_iter()
    .map(|a| a.expect("runtime.json names every listener"))
    .collect();
    assert!(named.iter().all(|a| a.ip().is_loopback()), "{named:?}");
    let sockets = listening(daemon.runtime.pid);
    assert_eq!(
        sockets.len(),
        named.len(),
        "unexpected listeners: {sockets:?}"
    );
    for local in &sockets {
        assert!(is_loopback_hex(local), "{local} is not loopback");
        let port = u16::from_str_radix(local.rsplit(':').next().unwrap(), 16).unwrap();
        assert!(
            named.iter().any(|a| a.port() == port),
            "{local} not in runtime.json"
        );
    }
}

/// Issue 16: a task the daemon cannot do without (here the event log writer, made to panic at
/// its start as a bug would) stops the daemon: one error line names the task, the shutdown
/// runs (bounded: with the log gone the hub cannot drain), and the process exits 1 saying why,
/// so a service manager starts a new one.
#[test]
fn a_vital_task_that_fails_stops_the_daemon_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ongwatch.toml");
    std::fs::write(&config, EPHEMERAL).unwrap();
    let mut command = ongwatch();
    command
        .current_dir(dir.path())
        .args(["run", "--demo", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .env("ONGWATCH_TEST_PANIC", "event_log");
    let mut daemon = Proc::spawn("ongwatch run", &mut command);
    let status = wait_for("the daemon to exit", || daemon.child.try_wait().unwrap());
    assert_eq!(status.code(), Some(1));
    daemon.wait_line(&["event_log panicked", "stopping the daemon"]);
    daemon.wait_line(&["stopped because event_log panicked"]);
}
