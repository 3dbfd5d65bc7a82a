//! `[streamlabs]` of ongwatch.toml: the Socket API endpoint.

use serde::Deserialize;

use crate::section::{Section, url_problem};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamlabsConfig {
    pub url: String,
}

impl Default for StreamlabsConfig {
    fn default() -> Self {
        Self {
            url: "https://sockets.streamlabs.com".into(),
        }
    }
}

impl Section for StreamlabsConfig {
    const KEY: &'static str = "streamlabs";

    fn problems(&self) -> Vec<(String, String)> {
        url_problem("streamlabs.url", &self.url)
            .into_iter()
            .collect()
    }
}
