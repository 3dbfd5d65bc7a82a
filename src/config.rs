//! `ongwatch.toml` and `credentials.toml`.
//!
//! Every key is optional: the defaults start the embedded broker and the HTTP server on
//! loopback. Loading collects every problem it can find (unknown keys, bad values) instead of
//! stopping at the first, so `ongwatch check` can list them all; each problem names the file,
//! the key, the value and the fix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::event::TopicRoot;

/// One thing wrong with a config or credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

/// All problems found while loading; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MqttMode {
    Embedded,
    External,
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    pub topic_root: String,
    pub include_raw: bool,
    /// How long an event id is remembered to drop redeliveries.
    pub dedup_window_seconds: u64,
    /// How many events may wait for the MQTT output before the oldest are dropped.
    pub mqtt_queue: usize,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            topic_root: "stream".into(),
            include_raw: false,
            dedup_window_seconds: 600,
            mqtt_queue: 100_000,
        }
    }
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

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: String,
    pub token: String,
    /// Address blocks let in without the token; everyone else needs it (docs/WEB.md).
    pub trusted: Vec<crate::web::Cidr>,
    /// Frames a `/ws/events` client may have waiting before it is cut off as too slow.
    pub client_queue: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            token: String::new(),
            trusted: crate::web::Cidr::loopback(),
            client_queue: 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub path: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            path: "events.jsonl".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Events per second the demo source emits; the default is human pace.
    pub rate: f64,
    pub channel: String,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            rate: 0.5,
            channel: "ongwatch_demo".into(),
        }
    }
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    pub server: String,
    pub tls: bool,
    pub channels: Vec<String>,
    /// Read chat without logging in, even when a login is stored (docs/CHAT.md).
    pub anonymous: bool,
    /// Which stored login chat uses; unset: the bot, else the broadcaster, else anonymous.
    pub account: Option<crate::sources::twitch::auth::Account>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            server: "irc.chat.twitch.tv:6697".into(),
            tls: true,
            channels: Vec::new(),
            anonymous: false,
            account: None,
        }
    }
}

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

/// `[obs]`: obs-websocket 5 (docs/OBS.md). Enabled when `url` is set; the password is
/// `[obs.<environment>] password` in credentials.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObsConfig {
    pub url: String,
}

/// The whole `ongwatch.toml`, with addresses and URLs already checked.
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
    pub hype: crate::processors::hype::HypeConfig,
    pub homeassistant: crate::processors::homeassistant::HomeAssistantConfig,
    /// `[[rules]]`, checked (see docs/PROCESSORS.md).
    pub rules: Vec<crate::processors::rules::Rule>,
    /// `[[outputs]]`, checked (see docs/OUTPUTS.md).
    pub outputs: Vec<crate::sinks::OutputConfig>,
    /// `[dedup]`: cross-source duplicates (docs/DEDUP.md).
    pub dedup: crate::hub::crosscheck::DedupConfig,
    pub monitor: crate::processors::monitor::MonitorConfig,
    /// `[announce]`, checked (see docs/PROCESSORS.md).
    pub announce: crate::processors::announce::Announce,
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
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                file: name.clone(),
                key: String::new(),
                message: format!("cannot read it ({e}); pass an existing file to --config"),
            }])
        })?;
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
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(Problem {
                file: name.to_owned(),
                key: key.to_owned(),
                message,
            })
        };
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problem(
                    key,
                    format!(
                        "unknown key; the top-level keys are {}",
                        SECTIONS.join(", ")
                    ),
                );
            }
        }
        let environment = match table.get("environment") {
            None => "test".to_owned(),
            Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
            Some(other) => {
                problem(
                    "environment",
                    format!("{other} is not a name; use e.g. environment = \"test\""),
                );
                "test".to_owned()
            }
        };
        let mut section_problems = Vec::new();
        let bus: BusConfig = section(&table, "bus", &mut section_problems);
        let mqtt: MqttConfig = section(&table, "mqtt", &mut section_problems);
        let http: HttpConfig = section(&table, "http", &mut section_problems);
        let log: LogConfig = section(&table, "log", &mut section_problems);
        let demo: DemoConfig = section(&table, "demo", &mut section_problems);
        let mut twitch: TwitchConfig = section(&table, "twitch", &mut section_problems);
        let chat: ChatConfig = section(&table, "chat", &mut section_problems);
        let streamelements: StreamElementsConfig =
            section(&table, "streamelements", &mut section_problems);
        let streamlabs: StreamlabsConfig = section(&table, "streamlabs", &mut section_problems);
        let obs: ObsConfig = section(&table, "obs", &mut section_problems);
        let hype: crate::processors::hype::HypeConfig =
            section(&table, "hype", &mut section_problems);
        let homeassistant: crate::processors::homeassistant::HomeAssistantConfig =
            section(&table, "homeassistant", &mut section_problems);
        section_problems.extend(hype.problems());
        section_problems.extend(homeassistant.problems());
        let (rules, rule_problems) = crate::processors::rules::parse(table.get("rules"));
        section_problems.extend(rule_problems);
        let (outputs, output_problems) = crate::sinks::config::parse(table.get("outputs"));
        section_problems.extend(output_problems);
        let dedup: crate::hub::crosscheck::DedupConfig =
            section(&table, "dedup", &mut section_problems);
        section_problems.extend(dedup.problems());
        let monitor: crate::processors::monitor::MonitorConfig =
            section(&table, "monitor", &mut section_problems);
        section_problems.extend(monitor.problems());
        let (announce, announce_problems) = crate::processors::announce::Announce::compile(
            section(&table, "announce", &mut section_problems),
        );
        section_problems.extend(announce_problems);
        let bots: BTreeMap<String, BotConfig> = section(&table, "bots", &mut section_problems);
        for (key, message) in section_problems {
            problem(&key, message);
        }

        if environment == "localdev" {
            apply_localdev(&table, &mut twitch);
        }

        let topic_root = TopicRoot::new(bus.topic_root.clone()).unwrap_or_else(|e| {
            problem(
                "bus.topic_root",
                format!("{e}; e.g. \"stream\" or \"ongwatch/{{channel}}\""),
            );
            TopicRoot::new("stream").unwrap_or_else(|_| unreachable!("\"stream\" is a valid root"))
        });
        let mut address = |key: &str, value: &str| -> SocketAddr {
            parse_listen(value).unwrap_or_else(|why| {
                problem(
                    key,
                    format!("{value:?} {why}; use host:port, e.g. \"127.0.0.1:1883\""),
                );
                SocketAddr::from(([127, 0, 0, 1], 0))
            })
        };
        let mqtt_listen = address("mqtt.listen", &mqtt.listen);
        let mqtt_ws_listen = address("mqtt.ws_listen", &mqtt.ws_listen);
        let http_listen = address("http.listen", &http.listen);
        let mqtt_url = match url::Url::parse(&mqtt.url) {
            Ok(url) if matches!(url.scheme(), "mqtt" | "mqtts") && url.host_str().is_some() => url,
            Ok(_) | Err(_) => {
                problem(
                    "mqtt.url",
                    format!(
                        "{:?} is not an MQTT URL; use mqtt://host:1883 or mqtts://user:pass@host:8883",
                        mqtt.url
                    ),
                );
                url::Url::parse("mqtt://127.0.0.1:1883").unwrap_or_else(|_| unreachable!())
            }
        };
        for (key, value) in [
            ("twitch.auth_url", &twitch.auth_url),
            ("twitch.api_url", &twitch.api_url),
            ("twitch.eventsub_url", &twitch.eventsub_url),
            ("streamelements.astro_url", &streamelements.astro_url),
            ("streamelements.realtime_url", &streamelements.realtime_url),
            ("streamlabs.url", &streamlabs.url),
        ] {
            if url::Url::parse(value).is_err() {
                problem(
                    key,
                    format!("{value:?} is not a URL; use e.g. \"https://host/path\""),
                );
            }
        }
        if !twitch.eventsub_subscriptions_url.is_empty()
            && url::Url::parse(&twitch.eventsub_subscriptions_url).is_err()
        {
            problem(
                "twitch.eventsub_subscriptions_url",
                format!(
                    "{:?} is not a URL; leave it empty for <api_url>/eventsub/subscriptions",
                    twitch.eventsub_subscriptions_url
                ),
            );
        }
        for bad in crate::sources::twitch::catalog::problems(&twitch.subscriptions) {
            problem("twitch.subscriptions", bad);
        }
        for (key, value) in [
            ("twitch.retry_initial_seconds", twitch.retry_initial_seconds),
            ("twitch.retry_max_seconds", twitch.retry_max_seconds),
            (
                "twitch.keepalive_grace_seconds",
                twitch.keepalive_grace_seconds,
            ),
        ] {
            if !(0.0..=86_400.0).contains(&value) {
                problem(
                    key,
                    format!("{value} is out of range; use seconds from 0 to 86400"),
                );
            }
        }
        if !obs.url.is_empty()
            && !url::Url::parse(&obs.url)
                .is_ok_and(|url| matches!(url.scheme(), "ws" | "wss") && url.host_str().is_some())
        {
            problem(
                "obs.url",
                format!(
                    "{:?} is not a WebSocket URL; use obs-websocket's address, e.g. \"ws://127.0.0.1:4455\"",
                    obs.url
                ),
            );
        }
        if !matches!(streamelements.transport.as_str(), "astro" | "realtime") {
            problem(
                "streamelements.transport",
                format!(
                    "{:?} is not a transport; use \"astro\" or \"realtime\"",
                    streamelements.transport
                ),
            );
        }
        if !(demo.rate > 0.0 && demo.rate <= 100_000.0) {
            problem(
                "demo.rate",
                format!(
                    "{} is out of range; use events per second between 0 (exclusive) and 100000",
                    demo.rate
                ),
            );
        }
        if bus.mqtt_queue == 0 {
            problem("bus.mqtt_queue", "must be at least 1".into());
        }
        for channel in &chat.channels {
            if crate::sources::twitch::irc::channel_login(channel).is_none() {
                problem(
                    "chat.channels",
                    format!("{channel:?} is not a Twitch channel; use logins, e.g. [\"ninja\"]"),
                );
            }
        }
        if chat
            .server
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            problem(
                "chat.server",
                format!(
                    "{:?} has no port; use host:port, e.g. \"irc.chat.twitch.tv:6697\"",
                    chat.server
                ),
            );
        }
        if http.client_queue == 0 {
            problem("http.client_queue", "must be at least 1".into());
        }
        if log.path.is_empty() {
            problem(
                "log.path",
                "must not be empty; e.g. \"events.jsonl\"".into(),
            );
        }
        if mqtt.client_id.is_empty() {
            problem(
                "mqtt.client_id",
                "must not be empty; e.g. \"ongwatch\"".into(),
            );
        }
        for origin in &mqtt.ws_origins {
            let usable = url::Url::parse(origin).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host_str().is_some()
                    && url.path() == "/"
                    && !origin.ends_with('/')
            });
            if !usable {
                problem(
                    "mqtt.ws_origins",
                    format!(
                        "{origin:?} is not a browser origin; use scheme://host[:port] with no path, e.g. \"https://overlays.example\""
                    ),
                );
            }
        }
        if mqtt.command_clients.iter().any(|name| name.is_empty()) {
            problem(
                "mqtt.command_clients",
                "holds an empty name; list [mqtt.users] names of credentials.toml, e.g. [\"lightbot\"]".into(),
            );
        }

        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        Ok(Self {
            path,
            environment,
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
            topic_root,
            mqtt_listen,
            mqtt_ws_listen,
            http_listen,
            mqtt_url,
        })
    }

    /// The channel events without one of their own (system state, triggers) belong to.
    pub fn default_channel(&self) -> String {
        if !self.twitch.channel.is_empty() {
            self.twitch.channel.to_lowercase()
        } else {
            "ongwatch".into()
        }
    }

    /// `<api_url>/eventsub/subscriptions` unless overridden.
    pub fn eventsub_subscriptions_url(&self) -> String {
        if self.twitch.eventsub_subscriptions_url.is_empty() {
            format!(
                "{}/eventsub/subscriptions",
                self.twitch.api_url.trim_end_matches('/')
            )
        } else {
            self.twitch.eventsub_subscriptions_url.clone()
        }
    }
}

/// `environment = "localdev"` points Twitch at the Twitch CLI's mock server unless the user
/// overrode the endpoints themselves.
fn apply_localdev(table: &toml::Table, twitch: &mut TwitchConfig) {
    let overridden = |key: &str| {
        table
            .get("twitch")
            .and_then(|t| t.as_table())
            .is_some_and(|t| t.contains_key(key))
    };
    if !overridden("eventsub_url") {
        twitch.eventsub_url = "ws://127.0.0.1:8080/ws".into();
    }
    if !overridden("eventsub_subscriptions_url") {
        twitch.eventsub_subscriptions_url = "http://127.0.0.1:8080/eventsub/subscriptions".into();
    }
}

fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    name: &str,
    problems: &mut Vec<(String, String)>,
) -> T {
    let Some(value) = table.get(name) else {
        return T::default();
    };
    if !value.is_table() {
        problems.push((name.into(), format!("must be a table: [{name}]")));
        return T::default();
    }
    match value.clone().try_into::<T>() {
        Ok(parsed) => parsed,
        Err(e) => {
            let message = one_line(e.message());
            let key = unknown_field(&message)
                .map(|field| format!("{name}.{field}"))
                .unwrap_or_else(|| name.to_owned());
            problems.push((key, message));
            T::default()
        }
    }
}

/// Pulls the field name out of serde's "unknown field `x`, expected ..." message.
/// `[mqtt.users]` of credentials.toml. Passwords are never quoted in a problem.
fn parse_mqtt_users(
    file: &str,
    value: &toml::Value,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let mut users = BTreeMap::new();
    let mut problem = |key: String, message: &str| {
        problems.push(Problem {
            file: file.to_owned(),
            key,
            message: message.to_owned(),
        })
    };
    let Some(table) = value.as_table() else {
        problem(
            "mqtt".into(),
            "must be a table: [mqtt.users] with name = \"password\" lines",
        );
        return users;
    };
    for (key, value) in table {
        if key != "users" {
            problem(
                format!("mqtt.{key}"),
                "unknown key; [mqtt] holds only [mqtt.users] with name = \"password\" lines",
            );
            continue;
        }
        let Some(entries) = value.as_table() else {
            problem(
                "mqtt.users".into(),
                "must be a table of name = \"password\" lines",
            );
            continue;
        };
        for (user, password) in entries {
            match password.as_str() {
                Some(password) if !password.is_empty() && !user.is_empty() => {
                    users.insert(user.clone(), password.to_owned());
                }
                _ => problem(
                    format!("mqtt.users.{user}"),
                    "must be a non-empty name = \"password\" string",
                ),
            }
        }
    }
    users
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_listen(value: &str) -> Result<SocketAddr, &'static str> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err("has no port");
    };
    let port: u16 = port
        .parse()
        .map_err(|_| "has an invalid port (0 to 65535)")?;
    match host {
        "localhost" => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => Err("is not an IP address and port"),
    }
}

/// `credentials.toml`: `[<provider>.<environment>]` tables, the seed project's format, and
/// `[mqtt.users]` (name = "password") for the embedded broker.
#[derive(Clone, Default)]
pub struct Credentials {
    pub path: Option<PathBuf>,
    providers: BTreeMap<String, BTreeMap<String, ProviderCredentials>>,
    mqtt_users: BTreeMap<String, String>,
}

/// Keys of one `[<provider>.<environment>]` table. Values are secrets: never logged.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub apikey: Option<String>,
    pub jwt: Option<String>,
    pub socket_token: Option<String>,
    /// obs-websocket's server password (`[obs.<environment>]`).
    pub password: Option<String>,
    /// `localdev` only: the placeholder broadcaster's user id and login.
    pub user_id: Option<String>,
    pub login: Option<String>,
}

impl fmt::Debug for ProviderCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| v.as_ref().map(|_| "<set>");
        f.debug_struct("ProviderCredentials")
            .field("client_id", &shown(&self.client_id))
            .field("client_secret", &shown(&self.client_secret))
            .field("apikey", &shown(&self.apikey))
            .field("jwt", &shown(&self.jwt))
            .field("socket_token", &shown(&self.socket_token))
            .field("password", &shown(&self.password))
            .finish()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("path", &self.path)
            .field("providers", &self.providers)
            .field("mqtt_users", &self.mqtt_users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    pub fn load(path: Option<&Path>) -> Result<Self, Problems> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem {
                file: name.clone(),
                key: String::new(),
                message: format!("cannot read it ({e}); pass an existing file to --credentials"),
            }])
        })?;
        Self::parse(Some(path), &text)
    }

    pub fn parse(path: Option<&Path>, text: &str) -> Result<Self, Problems> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "credentials.toml".into());
        let mut problems = Vec::new();
        // The message of a TOML error can quote the offending line, which may hold a secret.
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| format!(" at byte {}", span.start))
                .unwrap_or_default();
            Problems(vec![Problem {
                file: name.clone(),
                key: String::new(),
                message: format!(
                    "not valid TOML{at}; check quotes and [provider.environment] headers"
                ),
            }])
        })?;
        let mut providers = BTreeMap::new();
        let mut mqtt_users = BTreeMap::new();
        for (provider, envs) in table {
            if provider == "mqtt" {
                mqtt_users = parse_mqtt_users(&name, &envs, &mut problems);
                continue;
            }
            let Some(envs) = envs.as_table() else {
                problems.push(Problem {
                    file: name.clone(),
                    key: provider.clone(),
                    message: format!("must be a table per environment, e.g. [{provider}.test]"),
                });
                continue;
            };
            let mut parsed = BTreeMap::new();
            for (env, value) in envs {
                match value.clone().try_into::<ProviderCredentials>() {
                    Ok(creds) => {
                        parsed.insert(env.clone(), creds);
                    }
                    Err(e) => {
                        let message = one_line(e.message());
                        let key = unknown_field(&message)
                            .map(|field| format!("{provider}.{env}.{field}"))
                            .unwrap_or_else(|| format!("{provider}.{env}"));
                        problems.push(Problem {
                            file: name.clone(),
                            key,
                            message: format!(
                                "{message}; known keys are client_id, client_secret, apikey, jwt, socket_token, password, user_id, login"
                            ),
                        });
                    }
                }
            }
            providers.insert(provider, parsed);
        }
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        Ok(Self {
            path: path.map(Path::to_path_buf),
            providers,
            mqtt_users,
        })
    }

    /// `[mqtt.users]`: who may log in to the embedded broker, name → password.
    pub fn mqtt_users(&self) -> &BTreeMap<String, String> {
        &self.mqtt_users
    }

    /// The `[<provider>.<environment>]` table, if present.
    pub fn get(&self, provider: &str, environment: &str) -> Option<&ProviderCredentials> {
        self.providers.get(provider)?.get(environment)
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
        assert_eq!(config.mqtt.mode, MqttMode::Embedded);
        assert_eq!(config.mqtt_listen.to_string(), "127.0.0.1:1883");
        assert_eq!(config.mqtt_ws_listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.http_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.log.path, "events.jsonl");
        assert_eq!(
            config.eventsub_subscriptions_url(),
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
            config.eventsub_subscriptions_url(),
            "http://127.0.0.1:8080/eventsub/subscriptions"
        );
        let overridden = Config::parse(
            None,
            "environment = \"localdev\"\n[twitch]\neventsub_url = \"ws://127.0.0.1:1/ws\"",
        )
        .unwrap();
        assert_eq!(overridden.twitch.eventsub_url, "ws://127.0.0.1:1/ws");
    }

    #[test]
    fn seed_credentials_are_accepted_and_never_printed() {
        let creds = Credentials::parse(
            None,
            "[twitch.test]\nclient_id = 'abc'\nclient_secret = 'zyx-secret'\n[streamelements.test]\napikey = \"se-secret\"\n[streamlabs.test]\nsocket_token = \"sl-secret\"\n",
        )
        .unwrap();
        assert_eq!(
            creds.get("twitch", "test").unwrap().client_id.as_deref(),
            Some("abc")
        );
        let debug = format!("{creds:?}");
        for secret in ["zyx-secret", "se-secret", "sl-secret", "abc"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let err = Credentials::parse(None, "[twitch.test]\nclient_id = 'abc\n").unwrap_err();
        assert!(!err.to_string().contains("abc"), "{err}");
    }
}
