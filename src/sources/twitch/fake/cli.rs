//! What the Twitch CLI's mock EventSub server accepts, as [`super::Mode::CliMock`] enforces it:
//! a subscription only for a type and version `twitch event trigger` can fire over the
//! WebSocket transport, from `tests/data/twitch-cli-trigger-types.json` (written from the
//! CLI's source, which it names). The CLI checks no condition and no scope.

use std::sync::LazyLock;

use serde::Deserialize;

const TABLE: &str = include_str!("../../../../tests/data/twitch-cli-trigger-types.json");

/// One type the CLI can trigger.
#[derive(Debug, Clone, Deserialize)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: String,
    pub versions: Vec<String>,
    /// The CLI's alias for it (`twitch event trigger <alias>`).
    pub trigger: String,
    /// Whether it can be forwarded to the mock WebSocket server (`--transport=websocket`).
    pub websocket: bool,
}

#[derive(Debug, Deserialize)]
struct Table {
    types: Vec<Trigger>,
}

static TRIGGERS: LazyLock<Table> = LazyLock::new(|| {
    // The table is compiled in and covered by tests; a broken one is a build defect.
    serde_json::from_str(TABLE).expect("tests/data/twitch-cli-trigger-types.json is valid")
});

pub fn all() -> &'static [Trigger] {
    &TRIGGERS.types
}

/// Whether the CLI's mock server accepts a subscription of this type and version.
pub fn accepts(kind: &str, version: &str) -> bool {
    all()
        .iter()
        .any(|t| t.websocket && t.kind == kind && t.versions.iter().any(|v| v == version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_what_the_cli_can_fire_over_websocket() {
        assert!(accepts("channel.follow", "2"));
        assert!(accepts("channel.moderate", "2"));
        assert!(!accepts("channel.moderate", "1"));
        assert!(!accepts("channel.chat.message", "1"));
        // Webhook-only in the CLI.
        assert!(!accepts("drop.entitlement.grant", "1"));
    }
}
