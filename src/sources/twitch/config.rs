//! `[twitch]` of ongwatch.toml: endpoints (so the daemon can be pointed at a mock), the
//! broadcaster, the EventSub types and the reconnect timing.

use serde::Deserialize;

use crate::section::{Section, url_problem};

/// `[twitch]` endpoint overrides, so the daemon can be pointed at a mock.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TwitchConfig {
    pub auth_url: String,
    pub api_url: String,
    pub eventsub_url: String,
    pub eventsub_subscriptions_url: String,
    /// The broadcaster login that events without a channel (e.g. triggers) belong to.
    pub channel: String,
    /// EventSub types to subscribe to, `type` or `type@version`; empty: the default list
    /// (docs/TWITCH.md).
    pub subscriptions: Vec<String>,
    /// EventSub reconnect backoff: first delay and cap, in seconds.
    pub retry_initial_seconds: f64,
    pub retry_max_seconds: f64,
    /// Added to the session's keepalive timeout before silence means a dead connection.
    pub keepalive_grace_seconds: f64,
}

impl Default for TwitchConfig {
    fn default() -> Self {
        Self {
            auth_url: "https://id.twitch.tv/oauth2".into(),
            api_url: "https://api.twitch.tv/helix".into(),
            eventsub_url: "wss://eventsub.wss.twitch.tv/ws".into(),
            eventsub_subscriptions_url: String::new(),
            channel: String::new(),
            subscriptions: Vec::new(),
            retry_initial_seconds: 1.0,
            retry_max_seconds: 120.0,
            keepalive_grace_seconds: 5.0,
        }
    }
}

impl TwitchConfig {
    /// `<api_url>/eventsub/subscriptions` unless overridden.
    pub fn eventsub_subscriptions_url(&self) -> String {
        if self.eventsub_subscriptions_url.is_empty() {
            format!(
                "{}/eventsub/subscriptions",
                self.api_url.trim_end_matches('/')
            )
        } else {
            self.eventsub_subscriptions_url.clone()
        }
    }

    /// The channel events without one of their own (system state, triggers) belong to.
    pub fn default_channel(&self) -> String {
        if !self.channel.is_empty() {
            self.channel.to_lowercase()
        } else {
            "ongwatch".into()
        }
    }

    /// `environment = "localdev"` points Twitch at the Twitch CLI's mock server unless the
    /// user overrode the endpoints themselves (`table` is the whole file).
    pub fn apply_localdev(&mut self, table: &toml::Table) {
        let overridden = |key: &str| {
            table
                .get("twitch")
                .and_then(|t| t.as_table())
                .is_some_and(|t| t.contains_key(key))
        };
        if !overridden("eventsub_url") {
            self.eventsub_url = "ws://127.0.0.1:8080/ws".into();
        }
        if !overridden("eventsub_subscriptions_url") {
            self.eventsub_subscriptions_url = "http://127.0.0.1:8080/eventsub/subscriptions".into();
        }
    }
}

/// `[twitch]` with the environment whose `[twitch.<environment>]` credentials apply: what the
/// login commands and the dashboard's login read.
#[derive(Clone, Copy)]
pub struct TwitchEnv<'a> {
    pub environment: &'a str,
    pub twitch: &'a TwitchConfig,
}

impl Section for TwitchConfig {
    const KEY: &'static str = "twitch";

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems: Vec<(String, String)> = [
            ("twitch.auth_url", &self.auth_url),
            ("twitch.api_url", &self.api_url),
            ("twitch.eventsub_url", &self.eventsub_url),
        ]
        .into_iter()
        .filter_map(|(key, value)| url_problem(key, value))
        .collect();
        if !self.eventsub_subscriptions_url.is_empty()
            && url::Url::parse(&self.eventsub_subscriptions_url).is_err()
        {
            problems.push((
                "twitch.eventsub_subscriptions_url".into(),
                format!(
                    "{:?} is not a URL; leave it empty for <api_url>/eventsub/subscriptions",
                    self.eventsub_subscriptions_url
                ),
            ));
        }
        for bad in super::catalog::problems(&self.subscriptions) {
            problems.push(("twitch.subscriptions".into(), bad));
        }
        for (key, value) in [
            ("twitch.retry_initial_seconds", self.retry_initial_seconds),
            ("twitch.retry_max_seconds", self.retry_max_seconds),
            (
                "twitch.keepalive_grace_seconds",
                self.keepalive_grace_seconds,
            ),
        ] {
            if !(0.0..=86_400.0).contains(&value) {
                problems.push((
                    key.to_owned(),
                    format!("{value} is out of range; use seconds from 0 to 86400"),
                ));
            }
        }
        problems
    }
}
