//! A scripted Twitch-like IRC server for tests: plain TCP on a free loopback port, one thread
//! per connection. It welcomes any login, echoes JOIN and PART, answers PING, records every
//! line it receives, and sends what `on_join` returns for a joined channel. Stops (and drops
//! every connection) on drop.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type OnJoin = dyn Fn(&str) -> Vec<String> + Send + Sync;

pub struct ScriptedIrc {
    pub port: u16,
    received: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedIrc {
    pub fn start(on_join: impl Fn(&str) -> Vec<String> + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the IRC server");
        let port = listener.local_addr().expect("local addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let on_join: Arc<OnJoin> = Arc::new(on_join);
        {
            let (received, connections, stop) =
                (received.clone(), connections.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(clone) = stream.try_clone() {
                        connections.lock().unwrap().push(clone);
                    }
                    let (received, on_join) = (received.clone(), on_join.clone());
                    std::thread::spawn(move || serve(stream, &received, &*on_join));
                }
            });
        }
        Self {
            port,
            received,
            connections,
            stop,
        }
    }

    pub fn received(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until a received line satisfies `check`.
    pub fn wait_for(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.received().into_iter().find(|l| check(l)) {
                return line;
            }
            assert!(
                start.elapsed() < super::PATIENCE,
                "the IRC server never received {what}; it got {:#?}",
                self.received()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `line` to every connected client, as if Twitch had just sent it.
    pub fn send(&self, line: &str) {
        for mut connection in self.connections.lock().unwrap().iter() {
            let _ = connection.write_all(format!("{line}\r\n").as_bytes());
        }
    }

    pub fn count(&self, line: &str) -> usize {
        self.received().iter().filter(|l| *l == line).count()
    }
}

impl Drop for ScriptedIrc {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
        // Wakes the accept loop so it sees the stop flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve(stream: TcpStream, received: &Mutex<Vec<String>>, on_join: &OnJoin) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut nick = String::from("unknown");
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        received.lock().unwrap().push(line.clone());
        let mut reply = Vec::new();
        if let Some(n) = line.strip_prefix("NICK ") {
            nick = n.trim().to_owned();
            reply.push(format!(":tmi.twitch.tv 001 {nick} :Welcome, GLHF!"));
        } else if let Some(channel) = line.strip_prefix("JOIN #") {
            reply.push(format!(
                ":{nick}!{nick}@{nick}.tmi.twitch.tv JOIN #{channel}"
            ));
            reply.extend(on_join(channel));
        } else if let Some(channel) = line.strip_prefix("PART #") {
            reply.push(format!(
                ":{nick}!{nick}@{nick}.tmi.twitch.tv PART #{channel}"
            ));
        } else if let Some(arg) = line.strip_prefix("PING ") {
            reply.push(format!(":tmi.twitch.tv PONG tmi.twitch.tv {arg}"));
        }
        for line in reply {
            if out.write_all(format!("{line}\r\n").as_bytes()).is_err() {
                return;
            }
        }
    }
}
