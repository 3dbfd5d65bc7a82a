//! The payload of `R/system/bots/<client id>`: who is on the bus (CONTRACT §3). Not an
//! [`super::Event`]: it describes an MQTT client, not something that happened upstream.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Presence of an MQTT client that is not ongwatch's own, retained on `R/system/bots/<client id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BotPresence {
    /// `online` while connected, `offline` after a clean disconnect or a dropped connection.
    pub state: String,
    /// When `state` last changed (RFC 3339, UTC).
    pub since: String,
    /// The `[mqtt.users]` login, if the client logged in.
    pub login: Option<String>,
    /// Topics the client owns: its `[bots.<login>] publish` filters and what it published first.
    pub owns: Vec<String>,
    /// Publishes the broker let through.
    pub published: u64,
    /// Publishes refused by topic authority.
    pub refused: u64,
    /// When the last accepted publish came (RFC 3339, UTC).
    pub last_publish: Option<String>,
}

impl BotPresence {
    /// The example in docs/EVENTS.md and the AsyncAPI document.
    pub fn example() -> Self {
        Self {
            state: "online".into(),
            since: "2026-03-13T20:00:00.000Z".into(),
            login: Some("bpm".into()),
            owns: vec!["stream/synthetic/bpm".into()],
            published: 412,
            refused: 0,
            last_publish: Some("2026-03-13T20:01:02.345Z".into()),
        }
    }
}
