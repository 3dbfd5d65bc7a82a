//! `ongwatch trigger`: a test event described by the user, turned into the upstream shape of
//! the provider that really sends that kind, then run through that provider's normalizer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What `ongwatch trigger`, `POST /api/trigger` and `R/command/trigger` carry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerRequest {
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
