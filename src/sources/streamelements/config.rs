//! `[streamelements]` of ongwatch.toml: the Astro and legacy realtime endpoints and which
//! transport to use.

use serde::Deserialize;

use crate::section::{Section, url_problem};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamElementsConfig {
    pub astro_url: String,
    pub realtime_url: String,
    pub transport: String,
}

impl Default for StreamElementsConfig {
    fn default() -> Self {
        Self {
            astro_url: "wss://astro.streamelements.com".into(),
            realtime_url: "https://realtime.streamelements.com".into(),
            transport: "astro".into(),
        }
    }
}

impl Section for StreamElementsConfig {
    const KEY: &'static str = "streamelements";

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems: Vec<(String, String)> = [
            ("streamelements.astro_url", &self.astro_url),
            ("streamelements.realtime_url", &self.realtime_url),
        ]
        .into_iter()
        .filter_map(|(key, value)| url_problem(key, value))
        .collect();
        if !matches!(self.transport.as_str(), "astro" | "realtime") {
            problems.push((
                "streamelements.transport".into(),
                format!(
                    "{:?} is not a transport; use \"astro\" or \"realtime\"",
                    self.transport
                ),
            ));
        }
        problems
    }
}
