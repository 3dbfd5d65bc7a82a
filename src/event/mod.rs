//! The event contract: the one JSON shape every bot, overlay and output relies on.
//!
//! This module depends on nothing else in the crate on purpose. Sources translate upstream
//! payloads *into* these types, outputs only ever see them (or the raw JSON a bot published),
//! and `ongwatch schema` generates the published JSON Schema and AsyncAPI document from them.
//! Changing a field here changes the public contract (`../shared/CONTRACT.md` §3–4), and the
//! schema snapshot test fails until the committed documents are regenerated.

mod kinds;
mod presence;
pub mod schema;
mod time;
mod topic;

pub use kinds::*;
pub use presence::BotPresence;
pub use time::{format_time, now};
pub use topic::{
    Kind, RESERVED_SUFFIXES, TopicError, TopicRoot, filter_matches, filters_overlap,
    sanitize_level, validate_filter, validate_topic,
};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the payload shape. Bumped only for incompatible changes.
pub const CONTRACT_VERSION: u8 = 1;

/// One normalized event: the common fields, then the kind's own fields, all flat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Payload shape version, always 1.
    pub v: u8,
    /// Stable unique id. Derived from the upstream message id where there is one, so a
    /// redelivered upstream event keeps its id and is published once.
    pub id: String,
    /// Where it came from: `twitch`, `streamelements`, `streamlabs`, `demo`, `ongwatch`, ...
    pub provider: String,
    /// The channel (login) the event belongs to.
    pub channel: String,
    /// When it happened upstream (or when ongwatch saw it), RFC 3339 UTC with milliseconds.
    #[serde(with = "time::millis")]
    #[schemars(with = "String")]
    pub time: DateTime<Utc>,
    /// True for simulated, triggered, replayed and provider test events.
    pub test: bool,
    /// Where the supporter acted, on every support and community event: `twitch`, `youtube`,
    /// `kick`, `facebook`, `trovo`, `tiktok`, or `web` for a tip page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// During a Twitch shared chat session: the partner channel (login) the event happened in.
    /// Absent on the own channel's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_channel: Option<String>,
    /// The partner channel's user id, next to `source_channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_channel_id: Option<String>,
    /// The kind-specific fields, flattened next to the common ones; `type` names the kind.
    #[serde(flatten)]
    pub kind: EventKind,
    /// The upstream payload, present only with `[bus] include_raw = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<serde_json::Value>,
}

impl Event {
    pub fn new(
        id: impl Into<String>,
        provider: impl Into<String>,
        channel: impl Into<String>,
        kind: EventKind,
    ) -> Self {
        Self {
            v: CONTRACT_VERSION,
            id: id.into(),
            provider: provider.into(),
            channel: channel.into(),
            time: now(),
            test: false,
            platform: None,
            source_channel: None,
            source_channel_id: None,
            kind,
            raw: None,
        }
    }

    /// A provider's connection state for `R/system/providers/<provider>`, stamped `at`. Each
    /// report gets a fresh id: the same state may be reported again, and each report is news.
    pub fn provider_state(
        provider: &str,
        channel: impl Into<String>,
        state: ProviderState,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            format!("{provider}:state:{}", uuid::Uuid::new_v4()),
            provider,
            channel,
            EventKind::ProviderState(state),
        )
        .at(at)
    }

    /// A provider state with no upstream subscriptions (`since` = now), e.g. the hype meter's or
    /// OBS's connection.
    pub fn plain_provider_state(
        provider: &str,
        channel: impl Into<String>,
        state: ConnectionState,
        detail: String,
    ) -> Self {
        let at = now();
        Self::provider_state(
            provider,
            channel,
            ProviderState {
                state,
                detail,
                since: format_time(&at),
                subscriptions: Vec::new(),
            },
            at,
        )
    }

    pub fn at(mut self, time: DateTime<Utc>) -> Self {
        self.time = time;
        self
    }

    pub fn test(mut self, test: bool) -> Self {
        self.test = test;
        self
    }

    /// Stamps `platform` on support and community events; other kinds carry none.
    pub fn on_platform(mut self, platform: &str) -> Self {
        if self.kind.kind().carries_platform() {
            self.platform = Some(platform.to_owned());
        }
        self
    }

    /// Marks the event as one from a partner channel of a shared chat session.
    pub fn from_partner(mut self, channel: Option<String>, channel_id: Option<String>) -> Self {
        if channel.is_some() || channel_id.is_some() {
            self.source_channel = channel;
            self.source_channel_id = channel_id;
        }
        self
    }

    /// Whether it happened in a partner channel of a shared chat session, not in ours:
    /// totals, hype, alerts and the announcer leave such events alone.
    pub fn is_partner(&self) -> bool {
        self.source_channel.is_some() || self.source_channel_id.is_some()
    }

    /// The topic below the root, e.g. `support/cheers` or `raw/twitch/channel.suspicious_user.update`.
    pub fn topic_suffix(&self) -> String {
        match &self.kind {
            EventKind::Raw(raw) => format!(
                "raw/{}/{}",
                topic::sanitize_level(&self.provider),
                topic::sanitize_level(&raw.upstream_type)
            ),
            EventKind::ProviderState(_) => {
                format!("system/providers/{}", topic::sanitize_level(&self.provider))
            }
            EventKind::ObsEvent(obs) => {
                format!("obs/events/{}", topic::sanitize_level(&obs.event_type))
            }
            kind => kind.kind().topic_suffix().to_owned(),
        }
    }

    /// Whether this is retained state (`R/status`, `R/synthetic/*`, `R/system/*`) rather than an event.
    pub fn is_state(&self) -> bool {
        self.kind.kind().is_state()
    }

    pub fn to_json(&self) -> serde_json::Value {
        // Serializing these plain data types cannot fail: every map key is a string.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
