//! `GET /ws/events`: the event stream for overlays and bots.
//!
//! A connection first registers with the fan-out (so live frames start queueing at once),
//! then replays the log from `since` up to the seq where its live feed starts, then gets the
//! live feed, minus anything the replay already sent: no gap and no duplicate. The fan-out
//! writes live frames to the socket itself (`wire::Conn`); this module does the upgrade,
//! the replay and the client's frames, whose replies join the same queue.
//!
//! The upgrade is done here rather than by axum's `WebSocketUpgrade`, which keeps the socket
//! to itself: the fan-out needs the raw writing half to send its pre-framed bytes.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::api::error_response;
use super::wire::{Conn, End, ReadSide, text_frames};
use super::{Web, history};
use crate::event::{validate_filter, validate_topic};
use crate::hub::{Message, Origin};

/// Largest client frame accepted (a publish carries a payload).
const MAX_CLIENT_FRAME: usize = 1024 * 1024;
/// tungstenite's read buffer per connection (its default is 128 KiB): client frames are small
/// ops, and a larger one still arrives whole (up to `MAX_CLIENT_FRAME`), only in more reads.
const READ_BUFFER: usize = 4 * 1024;
/// Replayed lines sent together.
const REPLAY_BATCH: usize = 256;

/// How long a replay waits for the event log writer to catch up with the live feed.
const REPLAY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a client gets to answer our close frame before its socket is closed anyway.
const CLOSE_ANSWER: std::time::Duration = std::time::Duration::from_secs(2);
/// Close codes: 1009 message too big, 1011 error (`wire` has 1001 and 1008).
const CLOSE_TOO_BIG: u16 = 1009;
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
    mut request: Request,
) -> Response {
    let filters = match &query.topics {
        None => vec![web.root.filter_all()],
        Some(list) => match parse_filters(list) {
            Ok(filters) => filters,
            Err(e) => return error_response(StatusCode::BAD_REQUEST, format!("topics: {e}")),
        },
    };
    let accept = match accept_key(request.headers()) {
        Ok(accept) => accept,
        Err((status, error)) => {
            let mut response = error_response(status, error);
            // RFC 6455 §4.4: name the version the server speaks.
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return response;
        }
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return error_response(
            StatusCode::UPGRADE_REQUIRED,
            "/ws/events needs an HTTP/1.1 WebSocket upgrade",
        );
    };
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(web, TokioIo::new(upgraded), filters, query.since).await,
            Err(error) => tracing::debug!(%error, "WebSocket upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// The `Sec-WebSocket-Accept` for a valid upgrade request (RFC 6455 §4.2.1), or why not.
fn accept_key(headers: &HeaderMap) -> Result<HeaderValue, (StatusCode, &'static str)> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "/ws/events is a WebSocket: send Connection: Upgrade and Upgrade: websocket",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or((StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing"))?;
    HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
        .map_err(|_| (StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is not valid"))
}

/// Unregisters the client however its connection ends.
struct Registered(Arc<Web>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.fanout.unregister(self.1);
    }
}

async fn serve(
    web: Arc<Web>,
    socket: TokioIo<hyper::upgrade::Upgraded>,
    filters: Vec<String>,
    since: Option<u64>,
) {
    let (read, write) = tokio::io::split(socket);
    let conn = web.fanout.connection(Box::new(write), since.unwrap_or(0));
    let Some(registration) = web.fanout.register(filters.clone(), conn.clone()) else {
        conn.close_going_away();
        conn.run().await;
        return;
    };
    let id = registration.id;
    let _registered = Registered(web.clone(), id);
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_CLIENT_FRAME))
        .max_frame_size(Some(MAX_CLIENT_FRAME))
        .read_buffer_size(READ_BUFFER);
    let stream = WebSocketStream::from_raw_socket(
        ReadSide {
            read,
            conn: conn.clone(),
        },
        Role::Server,
        Some(config),
    )
    .await;
    let mut reader = tokio::spawn(read_frames(web.clone(), id, stream, conn.clone()));

    // The writer runs from the start: the replay waits for the socket to take each chunk.
    let writer = conn.run();
    tokio::pin!(writer);
    let handover = async {
        let mut last_sent = since.unwrap_or(0);
        if let Some(since) = since.filter(|since| *since < registration.live_after) {
            match replay(&web, &conn, since, registration.live_after, filters).await {
                Ok(last) => last_sent = last.unwrap_or(last_sent),
                Err(error) => {
                    tracing::error!(client = id, %error, "WebSocket replay failed");
                    conn.close(
                        CLOSE_ERROR,
                        "replay from the event log failed; see the daemon log",
                    );
                }
            }
        }
        conn.go_live(last_sent);
    };
    let end = tokio::select! {
        end = &mut writer => end,
        () = handover => writer.await,
    };
    // After our close frame the client answers with its own and the reader sees the end (RFC
    // 6455 §7.1.1); closing the socket before that, with the client's frames unread, would send
    // a reset that can cost the client our close frame and the `since` in it.
    if end == End::ClientGone
        || tokio::time::timeout(CLOSE_ANSWER, &mut reader)
            .await
            .is_err()
    {
        reader.abort();
    }
    if let End::CutOff { last_sent } = end {
        tracing::warn!(
            client = id,
            last_sent,
            "WebSocket client cut off: too slow, more than {} events waiting",
            web.fanout.client_queue()
        );
    }
}

/// Sends the log's lines after `since` up to `until`; returns the last seq sent. A client that
/// goes away or is cut off meanwhile ends it early.
async fn replay(
    web: &Web,
    conn: &Conn,
    since: u64,
    until: u64,
    filters: Vec<String>,
) -> Result<Option<u64>, String> {
    let (lines_tx, mut lines) = mpsc::channel::<history::Line>(REPLAY_BATCH);
    let path = web.log_path.clone();
    let replay = tokio::task::spawn_blocking(move || {
        history::replay(&path, since, until, &filters, REPLAY_PATIENCE, |line| {
            lines_tx.blocking_send(line).is_ok()
        })
    });
    let mut last_sent = None;
    while let Some(line) = lines.recv().await {
        let mut batch = vec![line];
        while batch.len() < REPLAY_BATCH
            && let Ok(line) = lines.try_recv()
        {
            batch.push(line);
        }
        last_sent = batch.last().map(|line| line.seq);
        let bytes = text_frames(batch.iter().map(|line| line.text.as_bytes()));
        if !conn.send(bytes, batch.len(), last_sent).await {
            break;
        }
    }
    drop(lines);
    match replay.await {
        Ok(Ok(()) | Err(history::ReplayError::ClientGone)) => Ok(last_sent),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
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
    mut stream: WebSocketStream<ReadSide<tokio::io::ReadHalf<TokioIo<hyper::upgrade::Upgraded>>>>,
    conn: Arc<Conn>,
) {
    loop {
        conn.drained().await;
        let reply = match stream.next().await {
            Some(Ok(WsMessage::Text(text))) => handle(&web, id, text.as_str()).await,
            Some(Ok(WsMessage::Binary(_))) => {
                error_frame("binary frames are not supported; send JSON text frames")
            }
            Some(Ok(WsMessage::Close(_))) => {
                // tungstenite's reply goes out on the next read, which then ends.
                conn.peer_closing();
                continue;
            }
            Some(Ok(_)) => continue,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { max_size, .. }))) => {
                conn.close(
                    CLOSE_TOO_BIG,
                    &format!("message too big: at most {max_size} bytes"),
                );
                return;
            }
            Some(Err(_)) | None => break,
        };
        if !conn
            .send(text_frames([reply.to_string().as_bytes()]), 0, None)
            .await
        {
            break;
        }
    }
    conn.reader_done();
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
