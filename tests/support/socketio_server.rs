//! tests/support/socketio_server.py (a real Socket.IO 2 / Engine.IO 3 server, python-socketio
//! 4.6.1) driven from a synchronous test, for tests that run the real daemon against it (the
//! soak). Used through `#[path = "support/socketio_server.rs"] mod socketio_server;`.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{OnceLock, mpsc};

use crate::support::PATIENCE;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Socket.IO test venv's python, made by scripts/setup-socketio-venv.sh if needed (once
/// per test binary); the error says why there is none. `SOCKETIO_VENV` points elsewhere.
pub fn venv_python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = std::env::var_os("SOCKETIO_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target/socketio-venv"));
            let python = venv.join("bin/python");
            let script = root().join("scripts/setup-socketio-venv.sh");
            let output = Command::new("bash")
                .arg(&script)
                .env("SOCKETIO_VENV", &venv)
                .stdin(Stdio::null())
                .output();
            match output {
                Ok(out) if out.status.success() && python.exists() => Ok(python),
                Ok(out) => Err(format!(
                    "no Socket.IO test venv at {}, and {} could not make it ({}: {})",
                    venv.display(),
                    script.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Err(format!(
                    "no Socket.IO test venv at {}: cannot run {}: {e}",
                    venv.display(),
                    script.display()
                )),
            }
        })
        .clone()
}

/// socketio_server.py in one mode, killed on drop.
pub struct SocketIoServer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
    pub port: u16,
}

impl SocketIoServer {
    /// `mode` is `streamlabs` or `streamelements`; `token` the credential it accepts.
    pub fn start(python: &Path, mode: &str, token: &str) -> Self {
        let mut child = Command::new(python)
            .arg(root().join("tests/support/socketio_server.py"))
            .args(["--mode", mode, "--token", token])
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
            seen: Vec::new(),
            port: 0,
        };
        let line = server.wait_line(|l| l.starts_with("port "));
        server.port = line[5..].parse().unwrap();
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Reads lines until one matches; every line is kept in `seen`.
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(PATIENCE)
                .expect("a line from socketio_server.py in time");
            self.seen.push(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }

    /// Sends control commands (see socketio_server.py) and waits until the server carried out
    /// all of them. They are written at once: the server handles them in order.
    pub fn cmds<S: AsRef<str>>(&mut self, commands: &[S]) {
        let mut text = String::new();
        for command in commands {
            text.push_str(command.as_ref());
            text.push('\n');
        }
        self.stdin.write_all(text.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
        let mut acks = 0;
        while acks < commands.len() {
            self.wait_line(|l| l.starts_with("ack "));
            acks += 1;
        }
    }

    pub fn cmd(&mut self, command: &str) {
        self.cmds(&[command]);
    }

    /// Lines so far (read up to a round trip through the control channel) starting with `prefix`.
    pub fn count(&mut self, prefix: &str) -> usize {
        self.cmd("noop");
        self.seen.iter().filter(|l| l.starts_with(prefix)).count()
    }
}

impl Drop for SocketIoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
