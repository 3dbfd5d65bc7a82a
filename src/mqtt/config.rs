//! `[mqtt]` and `[bots.<name>]` of ongwatch.toml: where the bus is and who may publish what
//! (docs/BOTS.md).

use std::net::SocketAddr;

use serde::Deserialize;

use crate::section::{Section, parse_listen};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttMode {
    Embedded,
    External,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    pub mode: MqttMode,
    pub listen: String,
    pub ws_listen: String,
    pub url: String,
    pub client_id: String,
    /// Which embedded-broker listeners make clients log in with a `[mqtt.users]` entry.
    pub login: MqttLogin,
    /// `[mqtt.users]` names allowed to publish on `R/command/#`; empty: every client.
    pub command_clients: Vec<String>,
    /// Browser origins allowed on `ws_listen` besides ongwatch's own pages.
    pub ws_origins: Vec<String>,
}

/// `[bots.<name>]`: a bot that logs in as `<name>` and owns the topics it lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotConfig {
    /// MQTT topic filters only this bot may publish on.
    pub publish: Vec<String>,
}

/// Which listeners of the embedded broker require a username and password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttLogin {
    /// Listeners on a non-loopback address; loopback clients may stay anonymous.
    Remote,
    Always,
    /// No listener: only for a network where everyone may drive the bus.
    Never,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self {
            mode: MqttMode::Embedded,
            listen: "127.0.0.1:1883".into(),
            ws_listen: "127.0.0.1:9001".into(),
            url: "mqtt://127.0.0.1:1883".into(),
            client_id: "ongwatch".into(),
            login: MqttLogin::Remote,
            command_clients: Vec::new(),
            ws_origins: Vec::new(),
        }
    }
}

impl MqttConfig {
    /// The embedded broker's TCP listener (checked by [`Section::problems`]).
    pub fn listen_addr(&self) -> SocketAddr {
        listen_or_unspecified(&self.listen)
    }

    /// The embedded broker's WebSocket listener.
    pub fn ws_listen_addr(&self) -> SocketAddr {
        listen_or_unspecified(&self.ws_listen)
    }

    /// The external broker (`mode = "external"`).
    pub fn broker_url(&self) -> url::Url {
        parse_mqtt_url(&self.url).unwrap_or_else(|| {
            url::Url::parse("mqtt://127.0.0.1:1883").unwrap_or_else(|_| unreachable!())
        })
    }
}

fn listen_or_unspecified(value: &str) -> SocketAddr {
    parse_listen(value).unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn parse_mqtt_url(value: &str) -> Option<url::Url> {
    url::Url::parse(value)
        .ok()
        .filter(|url| matches!(url.scheme(), "mqtt" | "mqtts") && url.host_str().is_some())
}

impl Section for MqttConfig {
    const KEY: &'static str = "mqtt";

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("mqtt.listen", &self.listen),
            ("mqtt.ws_listen", &self.ws_listen),
        ] {
            if let Err(why) = parse_listen(value) {
                problems.push((
                    key.to_owned(),
                    format!("{value:?} {why}; use host:port, e.g. \"127.0.0.1:1883\""),
                ));
            }
        }
        if parse_mqtt_url(&self.url).is_none() {
            problems.push((
                "mqtt.url".into(),
                format!(
                    "{:?} is not an MQTT URL; use mqtt://host:1883 or mqtts://user:pass@host:8883",
                    self.url
                ),
            ));
        }
        if self.client_id.is_empty() {
            problems.push((
                "mqtt.client_id".into(),
                "must not be empty; e.g. \"ongwatch\"".into(),
            ));
        }
        for origin in &self.ws_origins {
            let usable = url::Url::parse(origin).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.path() == "/"
                    && !origin.ends_with('/')
            });
            if !usable {
                problems.push((
                    "mqtt.ws_origins".into(),
                    format!(
                        "{origin:?} is not a browser origin; use scheme://host[:port] with no path, e.g. \"https://overlays.example\""
                    ),
                ));
            }
        }
        if self.command_clients.iter().any(|name| name.is_empty()) {
            problems.push((
                "mqtt.command_clients".into(),
                "holds an empty name; list [mqtt.users] names of credentials.toml, e.g. [\"lightbot\"]".into(),
            ));
        }
        problems
    }
}
