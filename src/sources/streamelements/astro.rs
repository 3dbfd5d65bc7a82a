//! The Astro gateway: plain WebSocket JSON.
//!
//! Client: `{"type":"subscribe","nonce","data":{"topic","token","token_type"}}` per topic.
//! Server: `{"type":"response","nonce","error"?,"data"}` per subscribe, then
//! `{"type":"message","topic","room","data"}` notifications. An `err_unauthorized` error means
//! the token is refused. Astro has no application-level heartbeat we can rely on, so the client
//! sends WebSocket pings and treats silence after one as a dead link.

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use super::{Credential, Settings, TipReview, normalize_astro};
use crate::event::{ConnectionState, SubscriptionHealth};
use crate::sources::socketio::SocketIoError;
use crate::sources::socketio::provider::{Ended, OutClosed, StateReporter, host_of, json::text};

/// What the source subscribes to: activities carry every alert kind, tips carry the richer tip
/// document (the same tip in both is published once, see `normalize`), tip moderation says when
/// a held tip was allowed or rejected.
pub const TOPICS: [&str; 3] = [
    "channel.activities",
    "channel.tips",
    "channel.tips.moderation",
];

/// Error code Astro sends for a refused token.
const UNAUTHORIZED: &str = "err_unauthorized";

/// One server frame, by `type`.
#[derive(Debug, Clone, PartialEq)]
pub enum AstroFrame {
    Response {
        nonce: String,
        /// The error code (`err_unauthorized`, `rate_limit_exceeded`, ...), if the request failed.
        error: Option<String>,
        /// The human-readable explanation, when the server gives one.
        message: Option<String>,
    },
    Message {
        topic: String,
        data: Value,
    },
    /// The server is going away and asks clients to come back.
    Reconnect,
    /// A frame that is not a reply to anything but still carries an error code.
    Error {
        error: String,
        message: Option<String>,
    },
    Other(String),
}

/// Reads one text frame; `None` when it is not a JSON object with a `type`.
pub fn parse_frame(text_frame: &str) -> Option<AstroFrame> {
    let value: Value = serde_json::from_str(text_frame).ok()?;
    let kind = value.get("type").and_then(Value::as_str)?.to_owned();
    let error = text(value.get("error"));
    let message = value
        .get("data")
        .and_then(|d| text(d.get("message")))
        .or_else(|| text(value.get("message")));
    Some(match kind.as_str() {
        "response" => AstroFrame::Response {
            nonce: text(value.get("nonce")).unwrap_or_default(),
            error,
            message,
        },
        "message" => AstroFrame::Message {
            topic: text(value.get("topic")).unwrap_or_default(),
            data: value.get("data").cloned().unwrap_or(Value::Null),
        },
        "reconnect" => AstroFrame::Reconnect,
        _ => match error {
            Some(error) => AstroFrame::Error { error, message },
            None => AstroFrame::Other(kind),
        },
    })
}

fn subscribe_frame(topic: &str, nonce: &str, credential: &Credential) -> String {
    json!({
        "type": "subscribe",
        "nonce": nonce,
        "data": {
            "topic": topic,
            "token": credential.token,
            "token_type": credential.kind.as_str(),
        }
    })
    .to_string()
}

fn describe(error: &str, message: &Option<String>) -> String {
    match message {
        Some(message) => format!("{error}: {message}"),
        None => error.to_owned(),
    }
}

pub(super) async fn connection(
    settings: &Settings,
    credential: &Credential,
    reporter: &StateReporter,
    review: &std::sync::Mutex<TipReview>,
) -> Result<Ended, OutClosed> {
    let host = host_of(&settings.astro_url);
    // A poisoned lock only means another connection panicked mid-update; the set is still
    // usable, so keep going with it.
    let normalize = |topic: &str, data: &serde_json::Value| {
        let mut review = review.lock().unwrap_or_else(|e| e.into_inner());
        normalize_astro(topic, data, &settings.channel, &mut review)
    };
    reporter
        .report(
            ConnectionState::Connecting,
            format!("connecting to {host} (astro)"),
            Vec::new(),
        )
        .await?;
    let timing = &settings.timing;
    let unauthorized = |reason: String| settings.refused(credential, reason);
    let failed = |reason: String, lasted| Ended::Failed { reason, lasted };

    let deadline = Instant::now() + timing.connect_timeout;
    let mut ws = match timeout(
        timing.connect_timeout,
        connect_async(settings.astro_url.as_str()),
    )
    .await
    {
        Err(_) => {
            return Ok(failed(
                format!(
                    "cannot connect to {host}: no answer within {:?}",
                    timing.connect_timeout
                ),
                Duration::ZERO,
            ));
        }
        Ok(Err(error)) => {
            let error = SocketIoError::from(error);
            if error.is_unauthorized() {
                return Ok(unauthorized(error.to_string()));
            }
            return Ok(failed(
                format!("cannot connect to {host}: {error}"),
                Duration::ZERO,
            ));
        }
        Ok(Ok((ws, _response))) => ws,
    };

    let mut pending: HashMap<String, &str> = HashMap::new();
    for topic in TOPICS {
        let nonce = uuid::Uuid::new_v4().to_string();
        let frame = subscribe_frame(topic, &nonce, credential);
        if let Err(error) = ws.send(Message::text(frame)).await {
            return Ok(failed(
                format!("cannot subscribe on {host}: {}", SocketIoError::from(error)),
                Duration::ZERO,
            ));
        }
        pending.insert(nonce, topic);
    }

    let mut health: Vec<SubscriptionHealth> = Vec::new();
    while !pending.is_empty() {
        let frame = match timeout_at(deadline, ws.next()).await {
            Err(_) => {
                return Ok(failed(
                    format!("{host} did not answer every subscribe in time"),
                    Duration::ZERO,
                ));
            }
            Ok(None) => {
                return Ok(failed(
                    format!("{host} closed the connection"),
                    Duration::ZERO,
                ));
            }
            Ok(Some(Err(error))) => {
                return Ok(failed(
                    format!("connection to {host} lost: {}", SocketIoError::from(error)),
                    Duration::ZERO,
                ));
            }
            Ok(Some(Ok(Message::Text(text)))) => parse_frame(text.as_str()),
            Ok(Some(Ok(Message::Close(_)))) => {
                return Ok(failed(
                    format!("{host} closed the connection"),
                    Duration::ZERO,
                ));
            }
            Ok(Some(Ok(_))) => None,
        };
        match frame {
            Some(AstroFrame::Response {
                nonce,
                error,
                message,
            }) => {
                let Some(topic) = pending.remove(&nonce) else {
                    continue;
                };
                match error {
                    Some(error) if error == UNAUTHORIZED => {
                        return Ok(unauthorized(describe(&error, &message)));
                    }
                    Some(error) => health.push(subscription(
                        topic,
                        "failed",
                        Some(describe(&error, &message)),
                    )),
                    None => health.push(subscription(topic, "enabled", None)),
                }
            }
            Some(AstroFrame::Error { error, message }) if error == UNAUTHORIZED => {
                return Ok(unauthorized(describe(&error, &message)));
            }
            Some(AstroFrame::Message { topic, data }) => {
                if let Some(event) = normalize(&topic, &data) {
                    reporter.send(event).await?;
                }
            }
            Some(other) => tracing::debug!("astro: ignoring {other:?} during subscribe"),
            None => {}
        }
    }
    if health.iter().all(|h| h.status != "enabled") {
        let errors: Vec<String> = health
            .iter()
            .filter_map(|h| h.last_error.as_ref().map(|e| format!("{}: {e}", h.kind)))
            .collect();
        return Ok(failed(
            format!(
                "every subscription on {host} failed ({})",
                errors.join("; ")
            ),
            Duration::ZERO,
        ));
    }

    let since = Instant::now();
    reporter
        .report(
            ConnectionState::Connected,
            format!("connected to {host} (astro)"),
            health,
        )
        .await?;

    let mut last_heard = Instant::now();
    let mut pinged: Option<Instant> = None;
    loop {
        let wake = match pinged {
            Some(at) => at + timing.keepalive_timeout,
            None => last_heard + timing.keepalive_interval,
        };
        let frame = tokio::select! {
            frame = ws.next() => frame,
            () = sleep_until(wake) => {
                if pinged.is_some() {
                    return Ok(failed(
                        format!("{host} went silent (no answer to a ping within {:?})", timing.keepalive_timeout),
                        since.elapsed(),
                    ));
                }
                if let Err(error) = ws.send(Message::Ping(Vec::new().into())).await {
                    return Ok(failed(format!("connection to {host} lost: {}", SocketIoError::from(error)), since.elapsed()));
                }
                pinged = Some(Instant::now());
                continue;
            }
        };
        last_heard = Instant::now();
        pinged = None;
        let text = match frame {
            None | Some(Ok(Message::Close(_))) => {
                return Ok(failed(
                    format!("{host} closed the connection"),
                    since.elapsed(),
                ));
            }
            Some(Err(error)) => {
                return Ok(failed(
                    format!("connection to {host} lost: {}", SocketIoError::from(error)),
                    since.elapsed(),
                ));
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
        };
        match parse_frame(text.as_str()) {
            Some(AstroFrame::Message { topic, data }) => {
                if let Some(event) = normalize(&topic, &data) {
                    reporter.send(event).await?;
                }
            }
            Some(AstroFrame::Error { error, message }) if error == UNAUTHORIZED => {
                return Ok(unauthorized(describe(&error, &message)));
            }
            Some(AstroFrame::Reconnect) => {
                return Ok(failed(
                    format!("{host} asked to reconnect"),
                    since.elapsed(),
                ));
            }
            Some(other) => tracing::debug!("astro: ignoring {other:?}"),
            None => tracing::debug!("astro: ignoring a frame that is not a typed JSON object"),
        }
    }
}

fn subscription(topic: &str, status: &str, last_error: Option<String>) -> SubscriptionHealth {
    SubscriptionHealth {
        kind: topic.to_owned(),
        version: "astro".to_owned(),
        status: status.to_owned(),
        last_event: None,
        last_error,
        missing_scopes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::streamelements::TokenKind;

    #[test]
    fn parses_frames() {
        assert_eq!(
            parse_frame(
                r#"{"id":"1","ts":"t","type":"response","nonce":"n","data":{"message":"ok"}}"#
            ),
            Some(AstroFrame::Response {
                nonce: "n".into(),
                error: None,
                message: Some("ok".into())
            })
        );
        assert_eq!(
            parse_frame(
                r#"{"type":"response","nonce":"n","error":"err_unauthorized","data":{"message":"bad token"}}"#
            ),
            Some(AstroFrame::Response {
                nonce: "n".into(),
                error: Some("err_unauthorized".into()),
                message: Some("bad token".into())
            })
        );
        assert_eq!(
            parse_frame(r#"{"type":"message","topic":"channel.tips","room":"r","data":{"a":1}}"#),
            Some(AstroFrame::Message {
                topic: "channel.tips".into(),
                data: json!({"a":1})
            })
        );
        assert_eq!(
            parse_frame(r#"{"type":"reconnect"}"#),
            Some(AstroFrame::Reconnect)
        );
        assert_eq!(
            parse_frame(r#"{"type":"error","error":"rate_limit_exceeded"}"#),
            Some(AstroFrame::Error {
                error: "rate_limit_exceeded".into(),
                message: None
            })
        );
        assert_eq!(
            parse_frame(r#"{"type":"welcome"}"#),
            Some(AstroFrame::Other("welcome".into()))
        );
        for garbage in ["", "x", "[]", "{}", r#"{"type":3}"#, "null"] {
            assert_eq!(parse_frame(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn subscribe_frame_shape() {
        let c = Credential {
            kind: TokenKind::Apikey,
            token: "k".into(),
        };
        let v: Value = serde_json::from_str(&subscribe_frame("channel.tips", "n1", &c)).unwrap();
        assert_eq!(
            v,
            json!({"type":"subscribe","nonce":"n1","data":{"topic":"channel.tips","token":"k","token_type":"apikey"}})
        );
    }
}
