//! `ongwatch.toml`: reads the file and aggregates every component's section.
//!
//! Every key is optional: the defaults start the embedded broker and the HTTP server on
//! loopback. Each component owns its section type and checks ([`Section`]); this module only
//! knows which top-level key belongs to whom. Loading collects every problem it can find
//! (unknown keys, bad values) instead of stopping at the first, so `ongwatch check` can list
//! them all; each problem names the file, the key, the value and the fix.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::chat::config::ChatConfig;
use crate::credentials::Credentials;
use crate::event::TopicRoot;
use crate::hub::config::{BusConfig, LogConfig};
use crate::hub::crosscheck::DedupConfig;
use crate::mqtt::{BotConfig, MqttConfig};
use crate::processors::announce::Announce;
use crate::processors::homeassistant::HomeAssistantConfig;
use crate::processors::hype::HypeConfig;
use crate::processors::monitor::MonitorConfig;
use crate::processors::rules::{self, Rule};
use crate::section::{Problem, Problems, one_line, read, section};
use crate::sinks::{self, OutputConfig};
use crate::sources::demo::DemoConfig;
use crate::sources::obs::config::ObsConfig;
use crate::sources::streamelements::config::StreamElementsConfig;
use crate::sources::streamlabs::config::StreamlabsConfig;
use crate::sources::twitch::config::TwitchConfig;
use crate::web::config::HttpConfig;

/// The whole `ongwatch.toml`, every section checked by its component.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from, for error messages; `None` when running on defaults.
    pub path: Option<PathBuf>,
    pub environment: String,
    pub bus: BusConfig,
    pub mqtt: MqttConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub demo: DemoConfig,
    pub twitch: TwitchConfig,
    pub chat: ChatConfig,
    pub streamelements: StreamElementsConfig,
    pub streamlabs: StreamlabsConfig,
    pub obs: ObsConfig,
    pub hype: HypeConfig,
    pub homeassistant: HomeAssistantConfig,
    /// `[[rules]]`, checked (see docs/PROCESSORS.md).
    pub rules: Vec<Rule>,
    /// `[[outputs]]`, checked (see docs/OUTPUTS.md).
    pub outputs: Vec<OutputConfig>,
    /// `[dedup]`: cross-source duplicates (docs/DEDUP.md).
    pub dedup: DedupConfig,
    pub monitor: MonitorConfig,
    /// `[announce]`, checked (see docs/PROCESSORS.md).
    pub announce: Announce,
    /// `[bots.<name>]`, by name.
    pub bots: BTreeMap<String, BotConfig>,
    pub topic_root: TopicRoot,
    pub mqtt_listen: SocketAddr,
    pub mqtt_ws_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub mqtt_url: url::Url,
}

const SECTIONS: &[&str] = &[
    "environment",
    "bus",
    "mqtt",
    "http",
    "log",
    "demo",
    "twitch",
    "chat",
    "streamelements",
    "streamlabs",
    "obs",
    "hype",
    "homeassistant",
    "rules",
    "outputs",
    "dedup",
    "monitor",
    "announce",
    "bots",
];

impl Config {
    /// The defaults, as if an empty file had been given.
    pub fn defaults() -> Self {
        match Self::from_table(None, "ongwatch.toml", toml::Table::new()) {
            Ok(config) => config,
            Err(problems) => unreachable!("the defaults are valid: {problems}"),
        }
    }

    /// Reads `path`. A missing file is an error only when the user named it.
    pub fn load(path: Option<&Path>) -> Result<Self, Problems> {
        let Some(path) = path else {
            return Ok(Self::defaults());
        };
        let text = crate::section::read_file(path, "--config")?;
        Self::parse(Some(path), &text)
    }

    pub fn parse(path: Option<&Path>, text: &str) -> Result<Self, Problems> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "ongwatch.toml".into());
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            Problems(vec![Problem {
                file: name.clone(),
                key: String::new(),
                message: format!("not valid TOML: {}", one_line(&e.to_string())),
            }])
        })?;
        Self::from_table(path.map(Path::to_path_buf), &name, table)
    }

    fn from_table(path: Option<PathBuf>, name: &str, table: toml::Table) -> Result<Self, Problems> {
        // `(key, message)` from every section, in file order of the sections above.
        let mut found: Vec<(String, String)> = Vec::new();
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                found.push((
                    key.clone(),
                    format!(
                        "unknown key; the top-level keys are {}",
                        SECTIONS.join(", ")
                    ),
                ));
            }
        }
        let environment = match table.get("environment") {
            None => "test".to_owned(),
            Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => {
                found.push((
                    "environment".into(),
                    format!("{other} is not a name; use e.g. environment = \"test\""),
                ));
                "test".to_owned()
            }
        };
        let bus: BusConfig = read(&table, &mut found);
        let mqtt: MqttConfig = read(&table, &mut found);
        let http: HttpConfig = read(&table, &mut found);
        let log: LogConfig = read(&table, &mut found);
        let demo: DemoConfig = read(&table, &mut found);
        let mut twitch: TwitchConfig = read(&table, &mut found);
        let chat: ChatConfig = read(&table, &mut found);
        let streamelements: StreamElementsConfig = read(&table, &mut found);
        let streamlabs: StreamlabsConfig = read(&table, &mut found);
        let obs: ObsConfig = read(&table, &mut found);
        let hype: HypeConfig = read(&table, &mut found);
        let homeassistant: HomeAssistantConfig = read(&table, &mut found);
        let (rules, rule_problems) = rules::parse(table.get("rules"));
        found.extend(rule_problems);
        let (outputs, output_problems) = sinks::config::parse(table.get("outputs"));
        found.extend(output_problems);
        let dedup: DedupConfig = read(&table, &mut found);
        let monitor: MonitorConfig = read(&table, &mut found);
        let (announce, announce_problems) =
            Announce::compile(section(&table, "announce", &mut found));
        found.extend(announce_problems);
        let bots: BTreeMap<String, BotConfig> = section(&table, "bots", &mut found);
        if !found.is_empty() {
            return Err(Problems(
                found
                    .into_iter()
                    .map(|(key, message)| Problem {
                        file: name.to_owned(),
                        key,
                        message,
                    })
                    .collect(),
            ));
        }
        if environment == "localdev" {
            twitch.apply_localdev(&table);
        }
        Ok(Self {
            path,
            environment,
            topic_root: bus.root(),
            mqtt_listen: mqtt.listen_addr(),
            mqtt_ws_listen: mqtt.ws_listen_addr(),
            http_listen: http.listen_addr(),
            mqtt_url: mqtt.broker_url(),
            bus,
            mqtt,
            http,
            log,
            demo,
            twitch,
            chat,
            streamelements,
            streamlabs,
            obs,
            hype,
            homeassistant,
            rules,
            outputs,
            dedup,
            monitor,
            announce,
            bots,
        })
    }

    /// The channel events without one of their own (system state, triggers) belong to.
    pub fn default_channel(&self) -> String {
        self.twitch.default_channel()
    }

    /// The processors' sections.
    pub fn processors(&self) -> crate::processors::Sections<'_> {
        crate::processors::Sections {
            hype: &self.hype,
            homeassistant: &self.homeassistant,
            rules: &self.rules,
            announce: &self.announce,
        }
    }

    /// The `[twitch.<environment>]` credentials: the Twitch app's client id and secret.
    pub fn twitch_app<'a>(
        &self,
        credentials: &'a Credentials,
    ) -> Option<&'a crate::credentials::ProviderCredentials> {
        credentials.get("twitch", &self.environment)
    }

    /// `[twitch]` with the environment, for the login commands and the dashboard's login.
    pub fn twitch_env(&self) -> crate::sources::twitch::config::TwitchEnv<'_> {
        crate::sources::twitch::config::TwitchEnv {
            environment: &self.environment,
            twitch: &self.twitch,
        }
    }

    /// The embedded broker's access rules: `[mqtt]` and `[bots.*]` checked against
    /// credentials.toml's `[mqtt.users]`.
    pub fn access(
        &self,
        credentials: &Credentials,
    ) -> Result<crate::mqtt::access::Access, Problems> {
        crate::mqtt::access::Access::new(
            &self.mqtt,
            &self.bots,
            &self.topic_root,
            &self.file_name(),
            credentials,
        )
    }

    /// The file name problems and messages name.
    pub fn file_name(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "ongwatch.toml".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_contract_defaults() {
        let config = Config::parse(None, "").unwrap();
        assert_eq!(config.environment, "test");
        assert_eq!(config.bus.topic_root, "stream");
        assert_eq!(config.mqtt.mode, crate::mqtt::MqttMode::Embedded);
        assert_eq!(config.mqtt_listen.to_string(), "127.0.0.1:1883");
        assert_eq!(config.mqtt_ws_listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.log.path, "events.jsonl");
        assert_eq!(
            config.twitch.eventsub_subscriptions_url(),
            "https://api.twitch.tv/helix/eventsub/subscriptions"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = Config::parse(
            None,
            "colour = 1\n[mqtt]\nlisten = \"127.0.0.1:99999\"\nurl = \"http://x\"\n[http]\nlisten = \"nope\"\n[bus]\ntopic_root = \"a/#\"\n[log]\nbogus = 1\n",
        )
        .unwrap_err();
        let text = err.to_string();
        for key in [
            "colour",
            "mqtt.listen",
            "mqtt.url",
            "http.listen",
            "bus.topic_root",
            "log.bogus",
        ] {
            assert!(
                text.contains(&format!(": {key}:")),
                "{key} missing in:\n{text}"
            );
        }
        assert_eq!(err.0.len(), 6, "{text}");
    }

    #[test]
    fn obs_needs_a_websocket_url_and_takes_its_password_from_credentials() {
        let config = Config::parse(None, "[obs]\nurl = \"ws://127.0.0.1:4455\"").unwrap();
        assert_eq!(config.obs.url, "ws://127.0.0.1:4455");
        let err = Config::parse(None, "[obs]\nurl = \"http://127.0.0.1:4455\"").unwrap_err();
        assert!(err.to_string().contains(": obs.url:"), "{err}");
        let credentials =
            Credentials::parse(None, "[obs.test]\npassword = \"obs-secret\"\n").unwrap();
        let obs = credentials.get("obs", "test").unwrap();
        assert_eq!(obs.password.as_deref(), Some("obs-secret"));
        assert!(!format!("{credentials:?}").contains("obs-secret"));
    }

    #[test]
    fn localdev_points_at_the_twitch_cli_mock() {
        let config = Config::parse(None, "environment = \"localdev\"").unwrap();
        assert_eq!(config.twitch.eventsub_url, "ws://127.0.0.1:8080/ws");
        assert_eq!(
            config.twitch.eventsub_subscriptions_url(),
            "http://127.0.0.1:8080/eventsub/subscriptions"
        );
        let overridden = Config::parse(
            None,
            "environment = \"localdev\"\n[twitch]\neventsub_url = \"ws://127.0.0.1:1/ws\"",
        )
        .unwrap();
        assert_eq!(overridden.twitch.eventsub_url, "ws://127.0.0.1:1/ws");
    }
}
