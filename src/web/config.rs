//! `[http]` of ongwatch.toml: the dashboard/API listener, its token and who is trusted.

use std::net::SocketAddr;

use serde::Deserialize;

use super::Cidr;
use crate::section::{Section, parse_listen};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    pub token: String,
    /// Address blocks let in without the token; everyone else needs it (docs/WEB.md).
    pub trusted: Vec<Cidr>,
    /// Frames a `/ws/events` client may have waiting before it is cut off as too slow.
    pub client_queue: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            token: String::new(),
            trusted: Cidr::loopback(),
            client_queue: 1024,
        }
    }
}

impl HttpConfig {
    /// The listener (checked by [`Section::problems`]).
    pub fn listen_addr(&self) -> SocketAddr {
        parse_listen(&self.listen).unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

impl Section for HttpConfig {
    const KEY: &'static str = "http";

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Err(why) = parse_listen(&self.listen) {
            problems.push((
                "http.listen".into(),
                format!(
                    "{:?} {why}; use host:port, e.g. \"127.0.0.1:1883\"",
                    self.listen
                ),
            ));
        }
        if self.client_queue == 0 {
            problems.push(("http.client_queue".into(), "must be at least 1".into()));
        }
        problems
    }
}
