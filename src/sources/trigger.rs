//! `ongwatch trigger`: a test event described by the user, turned into the upstream shape of
//! the provider that really sends that kind, then run through that provider's normalizer, so
//! a triggered cheer is exactly what a real cheer would be, plus `"test": true`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::Event;
use crate::sources::streamelements;
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
    "goal",
    "charity_campaign",
    "sub_end",
    "vip",
    "unvip",
    "mod",
    "unmod",
    "warn",
    "unban_request",
];

/// What `ongwatch trigger`, `POST /api/trigger` and `R/command/trigger` carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerRequest {
    /// Request id; the event id is derived from it, so a redelivered command is published once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// One of [`KINDS`].
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

    // A tip exists only on StreamElements and Streamlabs; the request id becomes the tip id,
    // so a redelivered trigger is still one tip.
    let mut request = request.clone();
    request.fields.entry("tipId".into()).or_insert(message_id);
    let activity = streamelements::trigger_payload(&request, &channel);
    Ok(vec![
        streamelements::normalize(&activity, &channel).test(true),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn context() -> Context {
        Context {
            channel: "jonathanong".into(),
            broadcaster_id: "1337".into(),
        }
    }

    #[test]
    fn every_kind_normalizes_to_one_test_event_with_a_stable_id() {
        for kind in KINDS {
            let request = TriggerRequest {
                id: Some("req-1".into()),
                kind: (*kind).into(),
                user: Some("alinsa_vix".into()),
                amount: Some(5.0),
                ..TriggerRequest::default()
            };
            let first = normalize(&request, &context()).unwrap();
            let again = normalize(&request, &context()).unwrap();
            assert_eq!(first.len(), 1, "{kind}");
            assert!(first[0].test, "{kind}");
            assert_eq!(first[0].id, again[0].id, "{kind}");
            assert_eq!(first[0].channel, "jonathanong", "{kind}");
        }
    }

    #[test]
    fn a_tip_comes_from_streamelements() {
        let request = TriggerRequest {
            kind: "tip".into(),
            user: Some("Kappa_Fan".into()),
            amount: Some(12.5),
            message: Some("loop pedal fund".into()),
            fields: BTreeMap::from([("currency".to_owned(), "EUR".to_owned())]),
            ..TriggerRequest::default()
        };
        let events = normalize(&request, &context()).unwrap();
        let EventKind::Tip(tip) = &events[0].kind else {
            panic!("{:?}", events[0]);
        };
        assert_eq!(events[0].provider, "streamelements");
        assert_eq!((tip.amount, tip.currency.as_str()), (12.5, "EUR"));
        assert_eq!(tip.user.user.as_deref(), Some("kappa_fan"));
    }

    #[test]
    fn unknown_kinds_and_bad_amounts_are_refused() {
        let bad = |kind: &str, amount| TriggerRequest {
            kind: kind.into(),
            amount,
            ..TriggerRequest::default()
        };
        assert!(matches!(
            validate(&bad("confetti", None)),
            Err(TriggerError::UnknownKind(_))
        ));
        assert!(matches!(
            validate(&bad("cheer", Some(-1.0))),
            Err(TriggerError::BadAmount(_))
        ));
        assert!(matches!(
            validate(&bad("cheer", Some(f64::NAN))),
            Err(TriggerError::BadAmount(_))
        ));
    }
}
