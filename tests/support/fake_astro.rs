//! An in-process fake of the StreamElements Astro gateway (plain WebSocket JSON) for tests that
//! run the StreamElements source against it: tests/socketio_providers.rs drives the source
//! directly, tests/soak.rs the real daemon. Used through
//! `#[path = "support/fake_astro.rs"] mod fake_astro;`; started on the caller's tokio runtime.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Astro {
    /// Every subscribe succeeds.
    Ok,
    /// `channel.tips` is refused with a non-auth error.
    TipsRefused,
    /// Every subscribe is refused with `err_unauthorized`.
    Unauthorized,
    /// The first connection subscribes fine, then stops reading (so no pongs); later ones are Ok.
    FirstGoesSilent,
}

/// What the test tells the most recent connection.
enum Push {
    Frame(String),
    /// Drop the TCP connection without a close frame.
    Drop,
}

pub struct FakeAstro {
    pub url: String,
    /// Subscribe frames received, across connections.
    pub subscribes: Arc<Mutex<Vec<Value>>>,
    /// TCP connections accepted.
    pub connections: Arc<Mutex<usize>>,
    /// Connections that got an answer to both subscribes (ready for messages).
    ready: Arc<AtomicUsize>,
    /// Sends to the most recent ready connection.
    push: Arc<Mutex<Option<mpsc::UnboundedSender<Push>>>>,
    connected: mpsc::UnboundedReceiver<usize>,
}

impl FakeAstro {
    pub async fn start(behavior: Astro) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let subscribes = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let ready = Arc::new(AtomicUsize::new(0));
        let push = Arc::new(Mutex::new(None));
        let (connected_tx, connected) = mpsc::unbounded_channel();
        let (subs, conns, pushes, readies) = (
            subscribes.clone(),
            connections.clone(),
            push.clone(),
            ready.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = {
                    let mut c = conns.lock().unwrap();
                    *c += 1;
                    *c
                };
                let (subs, pushes, readies, connected_tx) = (
                    subs.clone(),
                    pushes.clone(),
                    readies.clone(),
                    connected_tx.clone(),
                );
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    for _ in 0..ongwatch::sources::streamelements::ASTRO_TOPICS.len() {
                        let Some(Ok(Message::Text(text))) = ws.next().await else {
                            return;
                        };
                        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                        subs.lock().unwrap().push(frame.clone());
                        let error = match (behavior, frame["data"]["topic"].as_str()) {
                            (Astro::Unauthorized, _) => Some("err_unauthorized"),
                            (Astro::TipsRefused, Some("channel.tips")) => Some("err_bad_request"),
                            _ => None,
                        };
                        let mut reply = json!({"id":"r","ts":"2026-01-01T00:00:00Z","type":"response","nonce":frame["nonce"],"data":{"message":"ok"}});
                        if let Some(error) = error {
                            reply["error"] = json!(error);
                            reply["data"] = json!({"message": "refused by the fake"});
                        }
                        if ws.send(Message::text(reply.to_string())).await.is_err() {
                            return;
                        }
                    }
                    let (tx, mut rx) = mpsc::unbounded_channel::<Push>();
                    *pushes.lock().unwrap() = Some(tx);
                    readies.fetch_add(1, Ordering::SeqCst);
                    let _ = connected_tx.send(n);
                    if behavior == Astro::FirstGoesSilent && n == 1 {
                        // Hold the socket without reading: websocket pings go unanswered.
                        let _ = rx.recv().await;
                        return;
                    }
                    loop {
                        tokio::select! {
                            push = rx.recv() => match push {
                                Some(Push::Frame(frame)) => if ws.send(Message::text(frame)).await.is_err() { return },
                                // Dropping the stream closes the TCP connection, no close frame.
                                Some(Push::Drop) | None => return,
                            },
                            incoming = ws.next() => if !matches!(incoming, Some(Ok(_))) { return },
                        }
                    }
                });
            }
        });
        FakeAstro {
            url,
            subscribes,
            connections,
            ready,
            push,
            connected,
        }
    }

    fn frame(topic: &str, data: Value) -> String {
        json!({"id":"m","ts":"2026-01-01T00:00:00Z","type":"message","topic":topic,"room":"5afbafb0c3a79ebedde18249","data":data}).to_string()
    }

    /// Sends a message to the most recent connection; panics when there is none.
    pub fn send(&self, topic: &str, data: Value) {
        assert!(self.try_send(topic, data), "a connected client");
    }

    /// Sends a message to the most recent connection; false when it is gone (Astro would
    /// deliver it to nobody).
    pub fn try_send(&self, topic: &str, data: Value) -> bool {
        self.push
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|tx| tx.send(Push::Frame(Self::frame(topic, data))).is_ok())
    }

    /// Drops the most recent connection without a close frame; false when there is none.
    pub fn drop_connection(&self) -> bool {
        self.push
            .lock()
            .unwrap()
            .take()
            .is_some_and(|tx| tx.send(Push::Drop).is_ok())
    }

    /// Connections that subscribed to both topics so far.
    pub fn ready_count(&self) -> usize {
        self.ready.load(Ordering::SeqCst)
    }

    pub async fn wait_connected(&mut self) -> usize {
        timeout(WAIT, self.connected.recv()).await.unwrap().unwrap()
    }
}
