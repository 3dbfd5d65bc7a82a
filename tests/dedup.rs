//! Issue 5's duplicate policy with the real binary: one cheer reported by Twitch EventSub (the
//! fake Twitch) and by Streamlabs (a real Socket.IO 2 server, tests/support/socketio_server.py)
//! comes out once, as Twitch's; a cheer only Streamlabs reports still comes out, after the
//! window. Nothing asserts how long anything took.

#[path = "support/fake_twitch.rs"]
mod fake_twitch;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;

use serde_json::{Value, json};
use support::*;

const SL_TOKEN: &str = "sl-good-token";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Socket.IO test venv's python (scripts/setup-socketio-venv.sh makes it if needed).
fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("SOCKETIO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/socketio-venv"));
    let status = Command::new("bash")
        .arg(root().join("scripts/setup-socketio-venv.sh"))
        .env("SOCKETIO_VENV", &venv)
        .status();
    let python = venv.join("bin/python");
    match status {
        Ok(s) if s.success() && python.exists() => Some(python),
        other => {
            eprintln!(
                "SKIP: no Socket.IO test venv ({other:?}); run scripts/setup-socketio-venv.sh"
            );
            None
        }
    }
}

/// socketio_server.py playing Streamlabs, killed on drop.
struct Streamlabs {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl Streamlabs {
    fn start(python: &Path) -> Self {
        let mut child = Command::new(python)
            .arg(root().join("tests/support/socketio_server.py"))
            .args(["--mode", "streamlabs", "--token", SL_TOKEN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start socketio_server.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Self {
            child,
            stdin,
            lines,
            port: 0,
        };
        let line = server.wait_line(|l| l.starts_with("port "));
        server.port = line[5..].parse().unwrap();
        server
    }

    fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(PATIENCE)
                .expect("a line from socketio_server.py in time");
            if pred(&line) {
                return line;
            }
        }
    }

    /// Emits `event` with `payload` to every client and waits until the server did.
    fn emit(&mut self, event: &str, payload: &Value) {
        writeln!(self.stdin, "emitjson {event} {payload}").unwrap();
        self.stdin.flush().unwrap();
        self.wait_line(|l| l == "ack emitjson");
    }
}

impl Drop for Streamlabs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn streamlabs_bits(id: &str, user: &str, bits: u64) -> Value {
    json!({
        "type": "bits",
        "for": "twitch_account",
        "event_id": format!("evt-{id}"),
        "message": [{
            "_id": id,
            "name": user,
            "display_name": user,
            "amount": bits.to_string(),
            "message": format!("Cheer{bits} hi"),
        }],
    })
}

fn twitch_cheer(user: &str, bits: u64) -> Value {
    json!({
        "is_anonymous": false,
        "user_id": "777",
        "user_login": user,
        "user_name": user,
        "broadcaster_user_id": fake_twitch::USER_ID,
        "broadcaster_user_login": fake_twitch::LOGIN,
        "broadcaster_user_name": "Streamer",
        "message": format!("Cheer{bits} hi"),
        "bits": bits,
    })
}

fn ids_on(daemon: &Daemon, topic: &str) -> Vec<String> {
    daemon
        .log_lines()
        .iter()
        .filter(|l| l["topic"] == topic)
        .filter_map(|l| l["event"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_cheer_from_eventsub_and_streamlabs_comes_out_once_and_a_streamlabs_only_one_after_the_window()
{
    let Some(python) = venv_python() else {
        return;
    };
    let twitch = fake_twitch::start();
    let mut streamlabs = Streamlabs::start(&python);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("credentials.toml"),
        format!(
            "[twitch.test]\nclient_id = '{}'\n[streamlabs.test]\nsocket_token = '{SL_TOKEN}'\n",
            fake_twitch::CLIENT_ID
        ),
    )
    .unwrap();
    fake_twitch::store_token(
        &twitch,
        &dir.path().join("state"),
        &fake_twitch::all_scopes(),
    );
    let config = format!(
        "{EPHEMERAL}{}[streamlabs]\nurl = \"http://127.0.0.1:{}\"\n[dedup]\nwindow_seconds = 5\n",
        fake_twitch::config_section(&twitch),
        streamlabs.port
    );
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    fake_twitch::wait_subscribed(&twitch);
    wait_for("Streamlabs to connect", || {
        daemon
            .log_lines()
            .iter()
            .any(|l| {
                l["topic"] == "stream/system/providers/streamlabs"
                    && l["event"]["state"] == "connected"
            })
            .then_some(())
    });

    // The same cheer, once from each side.
    streamlabs.emit("event", &streamlabs_bits("sl-dup", "alinsa_vix", 2490));
    let message_id = twitch
        .notify("channel.cheer", twitch_cheer("alinsa_vix", 2490))
        .expect("an enabled channel.cheer subscription");
    // Only Streamlabs reports this one; it is held for the window, then published.
    streamlabs.emit("event", &streamlabs_bits("sl-only", "lonely", 100));

    let cheers = wait_for("the Streamlabs-only cheer after the window", || {
        let ids = ids_on(&daemon, "stream/support/cheers");
        ids.iter()
            .any(|id| id == "streamlabs:sl-only")
            .then_some(ids)
    });
    // Held reports are released oldest first, so the duplicate's fate is settled by now.
    assert_eq!(
        cheers,
        [
            format!("twitch:{message_id}"),
            "streamlabs:sl-only".to_owned()
        ],
        "EventSub's cheer once, the Streamlabs duplicate dropped"
    );

    let http = daemon.runtime.http.unwrap();
    let (_, status) = fake_twitch::http_json("GET", &format!("http://{http}/api/status"), None);
    assert_eq!(status["hub"]["cross_source_duplicates"], 1, "{status}");
}
