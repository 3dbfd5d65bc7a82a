//! EventSub WebSocket frames: `{metadata, payload}` text messages, typed.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("EventSub frame is not valid JSON or lacks `metadata`: {0}")]
    Json(#[source] serde_json::Error),
    #[error("EventSub {message_type} frame has an unexpected `payload`: {source}")]
    Payload {
        message_type: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("EventSub timestamp {0:?} is not RFC 3339")]
    Timestamp(String),
}

/// One frame from the EventSub WebSocket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `session_welcome`: subscriptions must be created for `session.id` now.
    Welcome(Session),
    /// `session_keepalive`: only proves the socket is alive.
    Keepalive,
    Notification(Notification),
    /// `session_reconnect`: connect to `session.reconnect_url` and keep the subscriptions.
    Reconnect(Session),
    /// `revocation`: Twitch stopped the subscription (see `status` for why).
    Revocation(Subscription),
    /// A `message_type` this version does not know; ignoring it keeps the connection alive.
    Unknown {
        message_type: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Session {
    pub id: String,
    /// Absent in `session_reconnect`, where the old timeout still applies.
    #[serde(default)]
    pub keepalive_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub reconnect_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Subscription {
    #[serde(default)]
    pub id: String,
    /// The subscription type, e.g. `channel.cheer`.
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
    /// `enabled`, or for a revocation the reason, e.g. `authorization_revoked`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub condition: Value,
}

/// One delivered event. The body stays a [`Value`] so new or unknown subscription types
/// still arrive (and reach `R/raw/twitch/<type>`) instead of failing to parse.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Unique per delivery attempt group: a redelivery carries the same id.
    pub message_id: String,
    pub timestamp: DateTime<Utc>,
    pub subscription: Subscription,
    pub event: Value,
}

impl Notification {
    /// From a notification's `payload` text (`{subscription, event}`, the same body webhooks
    /// and the Twitch CLI produce), with the metadata supplied by the caller.
    pub fn from_payload(
        message_id: impl Into<String>,
        timestamp: DateTime<Utc>,
        payload: &str,
    ) -> Result<Self, FrameError> {
        #[derive(Deserialize)]
        struct Payload {
            subscription: Subscription,
            event: Value,
        }
        let payload: Payload =
            serde_json::from_str(payload).map_err(|source| FrameError::Payload {
                message_type: "notification".to_owned(),
                source,
            })?;
        Ok(Self {
            message_id: message_id.into(),
            timestamp,
            subscription: payload.subscription,
            event: payload.event,
        })
    }
}

/// The frame with its payload left unparsed: it is parsed once, into the type its
/// `message_type` names, instead of into a generic tree first and then again from that.
#[derive(Deserialize)]
struct RawFrame<'a> {
    metadata: Metadata,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Metadata {
    message_id: String,
    message_type: String,
    message_timestamp: String,
}

#[derive(Deserialize)]
struct SessionPayload {
    session: Session,
}

#[derive(Deserialize)]
struct RevocationPayload {
    subscription: Subscription,
}

/// Parses one text frame. Errors describe the frame; nothing here panics on bad input.
pub fn parse_frame(text: &str) -> Result<Frame, FrameError> {
    let RawFrame { metadata, payload } = serde_json::from_str(text).map_err(FrameError::Json)?;
    let payload = payload.map_or("null", RawValue::get);
    let payload_error = |source| FrameError::Payload {
        message_type: metadata.message_type.clone(),
        source,
    };
    Ok(match metadata.message_type.as_str() {
        "session_welcome" => {
            let p: SessionPayload = serde_json::from_str(payload).map_err(payload_error)?;
            Frame::Welcome(p.session)
        }
        "session_keepalive" => Frame::Keepalive,
        "session_reconnect" => {
            let p: SessionPayload = serde_json::from_str(payload).map_err(payload_error)?;
            Frame::Reconnect(p.session)
        }
        "revocation" => {
            let p: RevocationPayload = serde_json::from_str(payload).map_err(payload_error)?;
            Frame::Revocation(p.subscription)
        }
        "notification" => {
            let timestamp = parse_timestamp(&metadata.message_timestamp)?;
            Frame::Notification(Notification::from_payload(
                metadata.message_id,
                timestamp,
                payload,
            )?)
        }
        other => Frame::Unknown {
            message_type: other.to_owned(),
        },
    })
}

fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, FrameError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| FrameError::Timestamp(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for text in [
            "",
            "null",
            "[]",
            "{}",
            r#"{"metadata":{}}"#,
            r#"{"metadata":{"message_id":"a","message_type":"session_welcome","message_timestamp":"x"},"payload":{}}"#,
            r#"{"metadata":{"message_id":"a","message_type":"notification","message_timestamp":"nope"},"payload":{}}"#,
            r#"{"metadata":{"message_id":"a","message_type":"notification","message_timestamp":"2024-01-01T00:00:00Z"},"payload":{"subscription":{"type":"x","version":"1"}}}"#,
        ] {
            assert!(parse_frame(text).is_err(), "{text}");
        }
    }

    #[test]
    fn unknown_message_types_are_kept() {
        let frame = parse_frame(
            r#"{"metadata":{"message_id":"a","message_type":"session_party","message_timestamp":"2024-01-01T00:00:00Z"}}"#,
        )
        .unwrap();
        assert_eq!(
            frame,
            Frame::Unknown {
                message_type: "session_party".into()
            }
        );
    }
}
