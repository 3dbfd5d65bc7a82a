//! `ongwatch trigger`: a test event described by the user, turned into the upstream shape of
//! the provider that really sends that kind, then run through that provider's normalizer, so
//! a triggered cheer is exactly what a real cheer would be, plus `"test": true`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::Event;
use crate::sources::twitch::eventsub;

/// Every kind `ongwatch trigger` accepts.
pub const KINDS: &[&str] = &[
    "cheer",
    "tip",
    "sub",
    "resub",
    "gift",
    "follow",
    "raid",
    "redemption",
    "chat",
    "online",
    "offline",
    "hypetrain",
    "poll",
    "prediction",
];

/// What `ongwatch trigger`, `POST /api/trigger` and `R/command/trigger` carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// Request id; the event id is derived from it, so a redelivered command is published once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// cheer, tip, sub, resub, gift, follow, raid, redemption, chat, online, offline,
    /// hypetrain, poll, prediction.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The channel (broadcaster login) it happens in; the configured channel when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `--field k=v`: any upstream field to set or override.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Error)]
pub enum TriggerError {
    #[error("unknown trigger type {0:?}; use one of: {kinds}", kinds = KINDS.join(", "))]
    UnknownKind(String),
    #[error("--amount {0} must be a finite number of at least 0")]
    BadAmount(f64),
    #[error("the {kind} trigger did not normalize: {detail}")]
    Normalize { kind: String, detail: String },
}

/// Where triggered events happen when the request does not say.
#[derive(Debug, Clone)]
pub struct Context {
    pub channel: String,
    pub broadcaster_id: String,
}

pub fn validate(request: &TriggerRequest) -> Result<(), TriggerError> {
    if !KINDS.contains(&request.kind.as_str()) {
        return Err(TriggerError::UnknownKind(request.kind.clone()));
    }
    if let Some(amount) = request.amount
        && !(amount.is_finite() && amount >= 0.0)
    {
        return Err(TriggerError::BadAmount(amount));
    }
    Ok(())
}

/// Builds the upstream payload and normalizes it; every event comes out with `test: true`.
pub fn normalize(request: &TriggerRequest, context: &Context) -> Result<Vec<Event>, TriggerError> {
    validate(request)?;
    let channel = request
        .channel
        .as_deref()
        .map(str::to_lowercase)
        .unwrap_or_else(|| context.channel.clone());
    let failed = |detail: String| TriggerError::Normalize {
        kind: request.kind.clone(),
        detail,
    };
    let message_id = request
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

    if let Some(mut notification) =
        eventsub::trigger_notification(request, &channel, &context.broadcaster_id)
    {
        notification.message_id = message_id;
        let ctx = eventsub::Context::new(context.broadcaster_id.clone(), channel);
        let event = eventsub::normalize(&notification, &ctx)
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| failed("it duplicates another Twitch report".into()))?;
        return Ok(vec![event.test(true)]);
    }

    // TEMPORARY until the StreamElements normalizer lands (same session).
    Err(failed(format!(
        "tip triggers arrive with StreamElements ({message_id})"
    )))
}
