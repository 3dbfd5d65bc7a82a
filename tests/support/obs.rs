//! A real OBS Studio for tests: Debian's obs-studio (obs-websocket 5 built in) under its own
//! Xvfb, with its own HOME holding a small profile (640×360, 10 fps, preview off) and a scene
//! collection with the scenes "Main" and "Alerts". obs-websocket listens on a free port with a
//! random password (it binds every interface). Both processes are killed on drop.
//!
//! Without the `obs` binary a test is skipped, except under `CI=true`, where it fails with the
//! command that installs it (scripts/setup-test-deps.sh runs it).
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::stream::MaybeTlsStream;
use tokio_tungstenite::tungstenite::{self, WebSocket};

use super::{PATIENCE, Proc, free_port, wait_for};

pub const INSTALL: &str =
    "apt-get install -y --no-install-recommends obs-studio xvfb xauth libgl1-mesa-dri";

/// Whether OBS can run here; panics under CI=true when it cannot.
pub fn available() -> bool {
    let found = ["obs", "Xvfb"].iter().all(|binary| {
        Command::new("sh")
            .args(["-c", &format!("command -v {binary}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "OBS Studio or Xvfb is missing; install them with: {INSTALL}"
        );
        eprintln!("skipped: OBS Studio or Xvfb is missing ({INSTALL})");
    }
    found
}

pub struct Obs {
    pub port: u16,
    pub password: String,
    pub home: PathBuf,
    display: String,
    xvfb: Proc,
    pub proc: Option<Proc>,
}

impl Obs {
    /// Xvfb and OBS in `dir`; `None` (skip) when OBS is not installed outside CI.
    pub fn start(dir: &Path) -> Option<Self> {
        if !available() {
            return None;
        }
        let home = dir.join("obs-home");
        let password = uuid::Uuid::new_v4().simple().to_string();
        let port = free_port();
        write_config(&home, port, &password);
        // -displayfd 1: Xvfb picks a free display and prints its number on stdout.
        let mut xvfb = Proc::spawn(
            "Xvfb",
            Command::new("Xvfb").args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x720x24",
                "-nolisten",
                "tcp",
            ]),
        );
        let display = wait_for("Xvfb to print its display", || {
            xvfb.pump()
                .iter()
                .find(|line| !line.is_empty() && line.chars().all(|c| c.is_ascii_digit()))
                .map(|number| format!(":{number}"))
        });
        let mut obs = Self {
            port,
            password,
            home,
            display,
            xvfb,
            proc: None,
        };
        obs.launch();
        Some(obs)
    }

    /// Starts OBS (again, after `kill9`) on the same port, password and HOME.
    pub fn launch(&mut self) {
        let mut command = Command::new("obs");
        command
            .args([
                "--multi",
                "--disable-updater",
                "--disable-missing-files-check",
                "--websocket_port",
                &self.port.to_string(),
                "--websocket_password",
                &self.password,
            ])
            .current_dir(&self.home)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("DISPLAY", &self.display)
            .env("LIBGL_ALWAYS_SOFTWARE", "1");
        let mut proc = Proc::spawn("obs", &mut command);
        let needle = format!("Server started successfully on port {}", self.port);
        proc.wait_line(&[&needle]);
        wait_for("obs-websocket to accept connections", || {
            TcpStream::connect(("127.0.0.1", self.port)).ok()
        });
        self.proc = Some(proc);
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn kill9(&mut self) {
        if let Some(mut proc) = self.proc.take() {
            proc.kill9();
        }
    }

    /// OBS's log lines containing `needle` (its log goes to stdout/stderr).
    pub fn count_lines(&mut self, needle: &str) -> usize {
        self.proc.as_mut().map_or(0, |p| p.count_lines(needle))
    }

    pub fn wait_line(&mut self, needles: &[&str]) -> String {
        self.proc
            .as_mut()
            .expect("OBS is running")
            .wait_line(needles)
    }

    /// A second obs-websocket client, as another tool on the streamer's machine would be.
    pub fn client(&self) -> ObsClient {
        ObsClient::connect(self.port, &self.password)
    }
}

impl Drop for Obs {
    fn drop(&mut self) {
        // OBS first: it must not outlive its display.
        self.kill9();
    }
}

fn write_config(home: &Path, port: u16, password: &str) {
    let config = home.join(".config/obs-studio");
    let profile = config.join("basic/profiles/ongwatch");
    let scenes = config.join("basic/scenes");
    for dir in [&profile, &scenes] {
        std::fs::create_dir_all(dir).expect("OBS config dir");
    }
    // FirstRun=true: the first run is over, so OBS does not open its auto-configuration wizard.
    std::fs::write(
        config.join("global.ini"),
        format!(
            "[General]\nFirstRun=true\n\
             [Basic]\nProfile=ongwatch\nProfileDir=ongwatch\nSceneCollection=ongwatch\nSceneCollectionFile=ongwatch\nConfigOnNewProfile=false\n\
             [BasicWindow]\nPreviewEnabled=false\n\
             [OBSWebSocket]\nFirstLoad=false\nServerEnabled=true\nServerPort={port}\nAlertsEnabled=false\nAuthRequired=true\nServerPassword={password}\n"
        ),
    )
    .expect("global.ini");
    std::fs::write(
        profile.join("basic.ini"),
        format!(
            "[General]\nName=ongwatch\n\
             [Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\nFPSType=1\nFPSInt=10\n\
             [Output]\nMode=Simple\n\
             [SimpleOutput]\nFilePath={}\nRecFormat=mkv\nRecQuality=Stream\nVBitrate=300\n",
            home.display()
        ),
    )
    .expect("basic.ini");
    let scene = |name: &str, n: u32| {
        json!({
            "id": "scene", "versioned_id": "scene", "name": name,
            "uuid": format!("8a4a7f0e-0000-4000-8000-00000000000{n}"),
            "settings": {"items": [], "id_counter": 0, "custom_size": false},
            "enabled": true, "flags": 0, "mixers": 0, "muted": false
        })
    };
    let collection = json!({
        "name": "ongwatch",
        "current_scene": "Main",
        "current_program_scene": "Main",
        "scene_order": [{"name": "Main"}, {"name": "Alerts"}],
        "sources": [scene("Main", 1), scene("Alerts", 2)],
        "transitions": [],
        "current_transition": "Cut",
        "transition_duration": 0
    });
    std::fs::write(scenes.join("ongwatch.json"), collection.to_string()).expect("scenes");
}

/// A blocking obs-websocket 5 client, independent of the daemon's connection.
pub struct ObsClient {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events received while waiting for responses.
    pub events: Vec<Value>,
}

impl ObsClient {
    pub fn connect(port: u16, password: &str) -> Self {
        let (mut socket, _) =
            tungstenite::connect(format!("ws://127.0.0.1:{port}")).expect("connect to OBS");
        if let MaybeTlsStream::Plain(stream) = socket.get_mut() {
            stream
                .set_read_timeout(Some(PATIENCE))
                .expect("read timeout");
        }
        let mut client = Self {
            socket,
            next_id: 0,
            events: Vec::new(),
        };
        let hello = client.read_op(0);
        let hello: ongwatch::sources::obs::protocol::Hello =
            serde_json::from_value(hello).expect("Hello");
        let identify =
            ongwatch::sources::obs::protocol::identify(&hello, Some(password)).expect("Identify");
        client
            .socket
            .send(tungstenite::Message::text(identify))
            .expect("send Identify");
        client.read_op(2);
        client
    }

    fn read_op(&mut self, op: u64) -> Value {
        loop {
            let message = self.socket.read().expect("a frame from OBS");
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(frame) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if frame["op"] == op {
                return frame["d"].clone();
            }
            if frame["op"] == 5 {
                self.events.push(frame["d"].clone());
            }
        }
    }

    /// Runs one request and returns OBS's RequestResponse `d`.
    pub fn request(&mut self, request_type: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = format!("test-{}", self.next_id);
        let frame = ongwatch::sources::obs::protocol::request(
            request_type,
            &id,
            (!data.is_null()).then_some(&data),
        );
        self.socket
            .send(tungstenite::Message::text(frame))
            .expect("send a request");
        loop {
            let response = self.read_op(7);
            if response["requestId"] == id.as_str() {
                return response;
            }
        }
    }

    pub fn program_scene(&mut self) -> String {
        let response = self.request("GetCurrentProgramScene", Value::Null);
        response["responseData"]["currentProgramSceneName"]
            .as_str()
            .expect("a scene name")
            .to_owned()
    }

    pub fn set_scene(&mut self, scene: &str) {
        let response = self.request("SetCurrentProgramScene", json!({"sceneName": scene}));
        assert_eq!(response["requestStatus"]["result"], true, "{response}");
    }
}
