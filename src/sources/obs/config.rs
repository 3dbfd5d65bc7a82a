//! `[obs]` of ongwatch.toml (docs/OBS.md).

use serde::Deserialize;

use crate::section::Section;

/// `[obs]`: obs-websocket 5 (docs/OBS.md). Enabled when `url` is set; the password is
/// `[obs.<environment>] password` in credentials.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObsConfig {
    pub url: String,
}

impl Section for ObsConfig {
    const KEY: &'static str = "obs";

    fn problems(&self) -> Vec<(String, String)> {
        let usable = self.url.is_empty()
            || url::Url::parse(&self.url)
                .is_ok_and(|url| matches!(url.scheme(), "ws" | "wss") && url.host_str().is_some());
        if usable {
            return Vec::new();
        }
        vec![(
            "obs.url".into(),
            format!(
                "{:?} is not a WebSocket URL; use obs-websocket's address, e.g. \"ws://127.0.0.1:4455\"",
                self.url
            ),
        )]
    }
}
