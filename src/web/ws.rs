//! `GET /ws/events`: the event stream for overlays and bots.
//!
//! A connection first registers with the fan-out (so live frames start queueing at once),
//! then replays the log from `since` up to the seq where its live feed starts, then sends the
//! live feed, skipping anything already sent: no gap and no duplicate. Client frames are
//! handled on their own task; replies go through the single writer, ahead of events.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::api::error_response;
use super::{Web, history};
use crate::event::{validate_filter, validate_topic};
use crate::hub::{Message, Origin};

/// Largest client frame accepted (a publish carries a payload).
const MAX_CLIENT_FRAME: usize = 1024 * 1024;
/// How long a client that was cut off or told to go away gets to take its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Live frames gathered for one client before a flush (a batch from the fan-out is never split).
const SEND_BATCH: usize = 256;

/// How long a replay waits for the event log writer to catch up with the live feed.
const REPLAY_PATIENCE: Duration = Duration::from_secs(10);
/// Close codes: 1008 policy violation (too slow), 1001 going away (shutdown), 1011 error.
const CLOSE_TOO_SLOW: u16 = 1008;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_ERROR: u16 = 1011;

#[derive(Deserialize)]
pub struct EventsQuery {
    topics: Option<String>,
    since: Option<u64>,
}

/// Comma-separated MQTT filters; blanks are ignored.
pub fn parse_filters(list: &str) -> Result<Vec<String>, String> {
    let mut filters = Vec::new();
    for filter in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        validate_filter(filter).map_err(|e| e.to_string())?;
        filters.push(filter.to_owned());
    }
    Ok(filters)
}

pub async fn events(
    State(web): State<Arc<Web>>,
    Query(query): Query<EventsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let filters = match &query.topics {
        None => vec![web.root.filter_all()],
        Some(list) => match parse_filters(list) {
            Ok(filters) => filters,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, format!("topics: {e}")),
        },
    };
    upgrade
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| serve(web, socket, filters, query.since))
}

/// Unregisters the client however its connection ends.
struct Registered(Arc<Web>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.fanout.unregister(self.1);
    }
}

type Sink = SplitSink<WebSocket, WsMessage>;

enum End {
    ClientGone,
    CutOff,
    Shutdown,
    ReplayFailed(String),
}

async fn serve(web: Arc<Web>, socket: WebSocket, filters: Vec<String>, since: Option<u64>) {
    let (mut sink, stream) = socket.split();
    let Some(mut sub) = web.fanout.register(filters.clone()) else {
        close(&mut sink, CLOSE_GOING_AWAY, "ongwatch is shutting down").await;
        return;
    };
    let _registered = Registered(web.clone(), sub.id);
    let (replies_tx, mut replies) = mpsc::channel::<Utf8Bytes>(16);
    let reader = tokio::spawn(read_frames(web.clone(), sub.id, stream, replies_tx));

    let mut last_sent = since.unwrap_or(0);
    let end = 'end: {
        if let Some(since) = since.filter(|since| *since < sub.live_after) {
            let (lines_tx, mut lines) = mpsc::channel::<history::Line>(256);
            let path = web.log_path.clone();
            let until = sub.live_after;
            let replay = tokio::task::spawn_blocking(move || {
                history::replay(&path, since, until, &filters, REPLAY_PATIENCE, |line| {
                    lines_tx.blocking_send(line).is_ok()
                })
            });
            loop {
                tokio::select! {
                    biased;
                    _ = sub.cut.cancelled() => break 'end End::CutOff,
                    reply = replies.recv() => match reply {
                        Some(reply) => if !send(&mut sink, reply, &sub.cut, &web).await { break 'end End::ClientGone },
                        None => break 'end End::ClientGone,
                    },
                    line = lines.recv() => match line {
                        Some(line) => {
                            last_sent = line.seq;
                            if !send(&mut sink, line.text.into(), &sub.cut, &web).await { break 'end End::ClientGone }
                        }
                        None => break,
                    },
                }
            }
            match replay.await {
                Ok(Ok(())) => {}
                Ok(Err(history::ReplayError::ClientGone)) => break 'end End::ClientGone,
                Ok(Err(e)) => break 'end End::ReplayFailed(e.to_string()),
                Err(e) => break 'end End::ReplayFailed(e.to_string()),
            }
        }
        // `sub` is borrowed mutably by its own receive below.
        let cut = sub.cut.clone();
        loop {
            tokio::select! {
                biased;
                _ = cut.cancelled() => break 'end End::CutOff,
                reply = replies.recv() => match reply {
                    Some(reply) => if !send(&mut sink, reply, &cut, &web).await { break 'end End::ClientGone },
                    None => break 'end End::ClientGone,
                },
                batch = sub.recv() => match batch {
                    Some(batch) => {
                        // Whatever else is already waiting goes out with it in one flush: one
                        // write per frame per client is what limits a large fan-out.
                        let mut texts = Vec::new();
                        let mut next = Some(batch);
                        while let Some(batch) = next.take() {
                            for frame in batch.iter() {
                                if frame.seq > last_sent {
                                    last_sent = frame.seq;
                                    texts.push(frame.text.clone());
                                }
                            }
                            if texts.len() < SEND_BATCH {
                                next = sub.try_recv();
                            }
                        }
                        if !texts.is_empty() && !send_all(&mut sink, texts, &cut, &web).await {
                            break 'end End::ClientGone
                        }
                    }
                    None => break 'end End::Shutdown,
                },
            }
        }
    };
    reader.abort();
    match end {
        End::ClientGone => {}
        End::CutOff => {
            let reason = format!(
                "too slow: more than {} events waiting; reconnect with since={last_sent}",
                web.fanout.client_queue()
            );
            tracing::warn!(
                client = sub.id,
                last_sent,
                "WebSocket client cut off: {reason}"
            );
            close(&mut sink, CLOSE_TOO_SLOW, &reason).await;
        }
        End::Shutdown => close(&mut sink, CLOSE_GOING_AWAY, "ongwatch is shutting down").await,
        End::ReplayFailed(error) => {
            tracing::error!(client = sub.id, %error, "WebSocket replay failed");
            close(
                &mut sink,
                CLOSE_ERROR,
                "replay from the event log failed; see the daemon log",
            )
            .await;
        }
    }
}

/// Sends one frame. A send blocked by a client that stopped reading is given up
/// `CLOSE_GRACE` after the client was cut off.
async fn send(sink: &mut Sink, text: Utf8Bytes, cut: &CancellationToken, web: &Web) -> bool {
    send_all(sink, vec![text], cut, web).await
}

/// Sends frames with one flush at the end, under the same cut-off rule as [`send`].
async fn send_all(
    sink: &mut Sink,
    texts: Vec<Utf8Bytes>,
    cut: &CancellationToken,
    web: &Web,
) -> bool {
    let count = texts.len() as u64;
    let sending = async {
        for text in texts {
            sink.feed(WsMessage::Text(text)).await?;
        }
        sink.flush().await
    };
    tokio::pin!(sending);
    let sent = tokio::select! {
        sent = &mut sending => sent,
        _ = cut.cancelled() => match tokio::time::timeout(CLOSE_GRACE, &mut sending).await {
            Ok(sent) => sent,
            Err(_) => return false,
        },
    };
    if sent.is_err() {
        return false;
    }
    web.fanout
        .frames_sent
        .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
    true
}

async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let frame = WsMessage::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(frame)).await;
}

/// One client frame on `/ws/events`.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Op {
    Subscribe {
        topics: Vec<String>,
    },
    Unsubscribe {
        topics: Vec<String>,
    },
    Publish {
        topic: String,
        payload: serde_json::Value,
        #[serde(default)]
        retain: bool,
    },
    Ping,
}

async fn read_frames(
    web: Arc<Web>,
    id: u64,
    mut stream: futures::stream::SplitStream<WebSocket>,
    replies: mpsc::Sender<Utf8Bytes>,
) {
    while let Some(Ok(message)) = stream.next().await {
        let reply = match message {
            WsMessage::Text(text) => handle(&web, id, text.as_str()).await,
            WsMessage::Binary(_) => {
                error_frame("binary frames are not supported; send JSON text frames")
            }
            WsMessage::Close(_) => break,
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
        };
        if replies.send(reply.to_string().into()).await.is_err() {
            break;
        }
    }
}

/// Parses one client text frame. Public so the fuzz target exercises the daemon's own parser.
pub fn parse_client_frame(text: &str) -> Result<Op, serde_json::Error> {
    serde_json::from_str(text)
}

fn error_frame(error: impl std::fmt::Display) -> serde_json::Value {
    json!({"op": "error", "error": error.to_string()})
}

async fn handle(web: &Web, id: u64, text: &str) -> serde_json::Value {
    let op = match parse_client_frame(text) {
        Ok(op) => op,
        Err(e) => {
            return error_frame(format!(
                "bad frame ({e}); send {{\"op\":\"subscribe\"|\"unsubscribe\",\"topics\":[...]}}, {{\"op\":\"publish\",\"topic\":\"...\",\"payload\":{{...}}}} or {{\"op\":\"ping\"}}"
            ));
        }
    };
    match op {
        Op::Ping => json!({"op": "pong"}),
        Op::Subscribe { topics } => {
            if let Some(e) = topics.iter().find_map(|t| validate_filter(t).err()) {
                return error_frame(e);
            }
            let now = web.fanout.update_filters(id, |filters| {
                for topic in topics {
                    if !filters.contains(&topic) {
                        filters.push(topic);
                    }
                }
            });
            json!({"op": "subscribed", "topics": now})
        }
        Op::Unsubscribe { topics } => {
            let now = web
                .fanout
                .update_filters(id, |filters| filters.retain(|f| !topics.contains(f)));
            json!({"op": "unsubscribed", "topics": now})
        }
        Op::Publish {
            topic,
            payload,
            retain,
        } => match web.publish(topic.clone(), &payload, retain).await {
            Ok(()) => json!({"op": "published", "topic": topic}),
            Err(e) => error_frame(e),
        },
    }
}

impl Web {
    /// Puts a message on the bus for every output, as published by the API.
    pub async fn publish(
        &self,
        topic: String,
        payload: &serde_json::Value,
        retain: bool,
    ) -> Result<(), PublishError> {
        validate_topic(&topic)?;
        if topic.starts_with('$') {
            return Err(PublishError::Reserved(topic));
        }
        if self.root.is_reserved(&topic) {
            return Err(PublishError::Ongwatch(topic));
        }
        let bytes = serde_json::to_vec(payload).unwrap_or_default();
        let message = Message::from_bytes(topic, &bytes, retain, Origin::Api);
        self.publisher
            .message(message)
            .await
            .map_err(|_| PublishError::ShuttingDown)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Topic(#[from] crate::event::TopicError),
    #[error("topic {0:?} starts with '$', which MQTT reserves for the broker")]
    Reserved(String),
    #[error(
        "only ongwatch publishes {0:?} (topic authority); publish what your tool knows under another topic, e.g. synthetic/<name>"
    )]
    Ongwatch(String),
    #[error("ongwatch is shutting down")]
    ShuttingDown,
}
