//! Topic authority and bot presence on the embedded broker (CONTRACT §3, "Topic authority").
//!
//! Nobody may speak for anyone else on the shared bus:
//! - the topics ongwatch publishes are reserved ([`RESERVED_SUFFIXES`] under the root): only
//!   the daemon's own login publishes there, so a bot cannot fake a Twitch cheer;
//! - a filter under `[bots.<name>] publish` belongs to the client logged in as `<name>`;
//! - any other topic under the root belongs to the first client that publishes it, while that
//!   client is connected and for [`OWNER_GRACE`] after it leaves, so a restarting bot gets its
//!   topic back and nobody else can squat on it meanwhile. A client that logs in is the same
//!   owner under any client id (a bot library that makes up a new id per start keeps its topics).
//!
//! The broker asks [`Authority::check_publish`] for every publish of a client that is not the
//! daemon (rmqtt skips the hook for superusers). The same table counts what each client
//! published and had refused, and its connects and disconnects, which the presence task puts on
//! the bus as retained `R/system/bots/<client id>` state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::BotConfig;
use crate::event::{
    BotPresence, RESERVED_SUFFIXES, TopicRoot, filter_matches, filters_overlap, format_time, now,
    sanitize_level,
};
use crate::hub::{Message, Origin, Publisher};
use crate::section::Problem;

/// How long a first publisher keeps its topic after it disconnects.
pub const OWNER_GRACE: Duration = Duration::from_secs(60);
/// Counter-only presence changes are published at most this often per sweep; connects and
/// disconnects go out at once.
const COUNTER_INTERVAL: Duration = Duration::from_secs(5);
/// An offline client that owns nothing is forgotten (its retained presence cleared) after this.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Distinct refused topics remembered per client; more are only counted, so a client spraying
/// refused publishes over many topics cannot grow the table without bound.
const MAX_REFUSED_TOPICS: usize = 100;

/// Why a publish was refused; the words appear in the log, `/api/bots` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The topic is one ongwatch publishes.
    Reserved,
    /// `[bots.<name>] publish` gives it to another login.
    Bot(String),
    /// Another client published it first and is still here (or left less than 60 s ago).
    Owner(String),
    /// `R/command/#` and the client is not in `[mqtt] command_clients`.
    CommandClients,
}

impl Rule {
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Reserved => "reserved",
            Rule::Bot(_) => "bot",
            Rule::Owner(_) => "owner",
            Rule::CommandClients => "command_clients",
        }
    }

    fn explain(&self) -> String {
        match self {
            Rule::Reserved => "only ongwatch publishes this topic (topic authority)".into(),
            Rule::Bot(name) => format!("[bots.{name}] publish gives this topic to login {name:?}"),
            Rule::Owner(client) => format!(
                "client {client:?} published it first and owns it while connected and {} s after",
                OWNER_GRACE.as_secs()
            ),
            Rule::CommandClients => "only [mqtt] command_clients may publish commands".into(),
        }
    }
}

/// The rules, from config alone: reserved filters, bot filters, command rights.
#[derive(Debug, Clone)]
pub struct Rules {
    root: TopicRoot,
    root_filter: String,
    reserved: Vec<String>,
    command_filter: String,
    command_clients: BTreeSet<String>,
    /// `[bots.<name>] publish`, in config order.
    bots: Vec<(String, Vec<String>)>,
}

impl Rules {
    pub fn new(
        root: &TopicRoot,
        bots: &BTreeMap<String, BotConfig>,
        command_clients: &[String],
    ) -> Self {
        Self {
            root: root.clone(),
            root_filter: root.filter_all(),
            reserved: RESERVED_SUFFIXES
                .iter()
                .map(|suffix| root.filter_suffix(suffix))
                .collect(),
            command_filter: root.filter_suffix("command/#"),
            command_clients: command_clients.iter().cloned().collect(),
            bots: bots
                .iter()
                .map(|(name, bot)| (name.clone(), bot.publish.clone()))
                .collect(),
        }
    }

    /// The filters only ongwatch publishes on.
    pub fn reserved_filters(&self) -> &[String] {
        &self.reserved
    }

    pub fn command_filter(&self) -> &str {
        &self.command_filter
    }

    pub fn command_clients(&self) -> &BTreeSet<String> {
        &self.command_clients
    }

    pub fn bots(&self) -> &[(String, Vec<String>)] {
        &self.bots
    }

    pub fn is_reserved(&self, topic: &str) -> bool {
        self.root.is_reserved(topic)
    }

    /// The rules that need no state: reserved topics, bot filters, command rights.
    /// `Ok(true)` means the topic is free for the first-publisher rule.
    fn static_check(&self, login: Option<&str>, topic: &str) -> Result<bool, Rule> {
        if self.is_reserved(topic) {
            return Err(Rule::Reserved);
        }
        if filter_matches(&self.command_filter, topic) {
            let allowed = self.command_clients.is_empty()
                || login.is_some_and(|name| self.command_clients.contains(name));
            return if allowed {
                Ok(false)
            } else {
                Err(Rule::CommandClients)
            };
        }
        if let Some((name, _)) = self
            .bots
            .iter()
            .find(|(_, filters)| filters.iter().any(|f| filter_matches(f, topic)))
        {
            return if login == Some(name.as_str()) {
                Ok(false)
            } else {
                Err(Rule::Bot(name.clone()))
            };
        }
        Ok(filter_matches(&self.root_filter, topic))
    }

    /// `[bots.*]` problems: a login that is not in `users` (`None`: an external broker keeps
    /// the logins), a filter that is not a filter or overlaps a reserved topic, two bots owning
    /// overlapping filters.
    pub fn problems(
        &self,
        users: Option<&BTreeMap<String, String>>,
        config_file: &str,
        credentials_file: &str,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| {
            problems.push(Problem {
                file: config_file.to_owned(),
                key,
                message,
            })
        };
        for (i, (name, filters)) in self.bots.iter().enumerate() {
            if users.is_some_and(|users| !users.contains_key(name)) {
                problem(
                    format!("bots.{name}"),
                    format!(
                        "no login {name:?} in {credentials_file} [mqtt.users]; add {name} = \"password\" there so the bot can log in as its owner"
                    ),
                );
            }
            if filters.is_empty() {
                problem(
                    format!("bots.{name}.publish"),
                    "is empty; list the topics the bot owns, e.g. [\"stream/synthetic/bpm\"]"
                        .into(),
                );
            }
            for filter in filters {
                if crate::event::validate_filter(filter).is_err() {
                    problem(
                        format!("bots.{name}.publish"),
                        format!(
                            "{filter:?} is not an MQTT topic filter ('+' alone in a level, '#' only last)"
                        ),
                    );
                    continue;
                }
                if let Some(reserved) = self.reserved.iter().find(|r| filters_overlap(r, filter)) {
                    problem(
                        format!("bots.{name}.publish"),
                        format!(
                            "{filter:?} overlaps {reserved:?}, which only ongwatch publishes; pick a topic outside it, e.g. under synthetic/"
                        ),
                    );
                }
                if filters_overlap(&self.command_filter, filter) {
                    problem(
                        format!("bots.{name}.publish"),
                        format!(
                            "{filter:?} overlaps the command topics {:?}; [mqtt] command_clients governs those",
                            self.command_filter
                        ),
                    );
                }
                for (other, other_filters) in &self.bots[i + 1..] {
                    if let Some(clash) = other_filters.iter().find(|f| filters_overlap(f, filter)) {
                        problem(
                            format!("bots.{name}.publish"),
                            format!(
                                "{filter:?} overlaps {clash:?} of [bots.{other}]; a topic can have one owner"
                            ),
                        );
                    }
                }
            }
        }
        problems
    }
}

/// The inbound command topics a client may publish requests on (their `/result` is ours).
const COMMAND_REQUESTS: [&str; 4] = [
    "command/trigger",
    "command/chat/send",
    "command/obs/scene",
    "command/obs/request",
];

impl Rules {
    /// A mosquitto `acl_file` for an external broker where `daemon_user` is ongwatch's login.
    ///
    /// mosquitto's "deny" also stops reading, and an acl_file cannot say "the first publisher
    /// owns a topic", so writes are granted, never denied: every client reads everything and
    /// may publish commands and take over `R/synthetic/hype`; a `[bots.<name>]` login gets its
    /// filters; ongwatch's own login gets everything. Any other topic needs a `[bots.*]` entry
    /// (or a line the streamer adds, e.g. for `house/#` outside the root).
    pub fn mosquitto_acl(&self, daemon_user: &str) -> String {
        let hype = self.root.filter_suffix("synthetic/hype");
        let hype_owned = self
            .bots
            .iter()
            .any(|(_, filters)| filters.iter().any(|f| filters_overlap(f, &hype)));
        let commands: Vec<String> = COMMAND_REQUESTS
            .iter()
            .map(|suffix| self.root.filter_suffix(suffix))
            .collect();
        let mut out = String::new();
        let mut line = |text: &str| {
            out.push_str(text);
            out.push('\n');
        };
        line("# Topic authority for an external mosquitto, from `ongwatch acl --mosquitto`.");
        line(
            "# In mosquitto.conf: acl_file <this file>, with a password_file for the logins below.",
        );
        line("# Writes are granted, never denied (a mosquitto deny also stops reading): topics");
        line("# ongwatch publishes are writable by ongwatch's login alone. An acl_file cannot say");
        line(
            "# \"the first publisher owns a topic\": on this broker a bot publishes under the root",
        );
        line(
            "# only what a [bots.<name>] entry gives its login. Topics of your own outside the root",
        );
        line("# need a line of your own, e.g. `pattern write house/#`.");
        line("");
        line("# Every client, logged in or not, reads everything.");
        line("pattern read #");
        if !hype_owned {
            line("# Any bot may take over the built-in hype meter's topic.");
            line(&format!("pattern write {hype}"));
        }
        if self.command_clients.is_empty() {
            line("# Commands ([mqtt] command_clients is empty: every client).");
            for topic in &commands {
                line(&format!("pattern write {topic}"));
            }
        }
        line("");
        line("# ongwatch itself: the login of [mqtt] url.");
        line(&format!("user {daemon_user}"));
        line("topic readwrite #");
        let mut users: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (name, filters) in &self.bots {
            users
                .entry(name)
                .or_default()
                .extend(filters.iter().cloned());
        }
        for name in &self.command_clients {
            users
                .entry(name)
                .or_default()
                .extend(commands.iter().cloned());
        }
        for (name, topics) in users {
            line("");
            line(&format!("# [bots.{name}] / [mqtt] command_clients"));
            line(&format!("user {name}"));
            for topic in topics {
                line(&format!("topic write {topic}"));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub topic: String,
    pub rule: &'static str,
    pub detail: String,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BotInfo {
    pub client_id: String,
    #[serde(flatten)]
    pub presence: BotPresence,
    pub refusals: Vec<Refusal>,
}

struct Client {
    login: Option<String>,
    online: bool,
    /// rmqtt's connection create time: a disconnect of a connection this client id already
    /// replaced (a reconnect that kicked the old session) must not mark it offline.
    connection: i64,
    since: DateTime<Utc>,
    left: Option<Instant>,
    published: u64,
    refused: u64,
    last_publish: Option<DateTime<Utc>>,
    /// topic → (rule, count); one log line per new entry.
    refusals: BTreeMap<String, (Rule, u64)>,
}

impl Client {
    fn new(login: Option<String>, connection: i64) -> Self {
        Self {
            login,
            online: true,
            connection,
            since: now(),
            left: None,
            published: 0,
            refused: 0,
            last_publish: None,
            refusals: BTreeMap::new(),
        }
    }

    fn active(&self, at: Instant) -> bool {
        self.online
            || self
                .left
                .is_some_and(|left| at.duration_since(left) < OWNER_GRACE)
    }
}

#[derive(Default)]
struct Registry {
    clients: BTreeMap<String, Client>,
    /// First-publisher topics → owning client id.
    owners: HashMap<String, String>,
    /// Clients whose presence changed: `true` when it must go out at once.
    dirty: BTreeMap<String, bool>,
    /// Some dirty entry is urgent: wake the presence task.
    urgent: bool,
}

impl Registry {
    fn owns(&self, client_id: &str) -> Vec<String> {
        let mut owns: Vec<String> = self
            .owners
            .iter()
            .filter(|(_, owner)| owner.as_str() == client_id)
            .map(|(topic, _)| topic.clone())
            .collect();
        owns.sort();
        owns
    }

    fn presence(&self, client_id: &str, bot_filters: &[String]) -> Option<BotPresence> {
        let client = self.clients.get(client_id)?;
        let mut owns = self.owns(client_id);
        owns.extend(bot_filters.iter().cloned());
        Some(BotPresence {
            state: if client.online { "online" } else { "offline" }.into(),
            since: format_time(&client.since),
            login: client.login.clone(),
            owns,
            published: client.published,
            refused: client.refused,
            last_publish: client.last_publish.as_ref().map(format_time),
        })
    }

    fn mark(&mut self, client_id: &str, urgent: bool) {
        let entry = self.dirty.entry(client_id.to_owned()).or_insert(false);
        *entry |= urgent;
        self.urgent |= urgent;
    }
}

/// The shared table: rules plus who is connected, who owns what, and the counters.
pub struct Authority {
    rules: Rules,
    registry: Mutex<Registry>,
    changed: Notify,
}

impl Authority {
    pub fn new(rules: Rules) -> Arc<Self> {
        Arc::new(Self {
            rules,
            registry: Mutex::new(Registry::default()),
            changed: Notify::new(),
        })
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves counters, never broken invariants: go on.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bot_filters(&self, login: Option<&str>) -> &[String] {
        login
            .and_then(|login| self.rules.bots.iter().find(|(name, _)| name == login))
            .map(|(_, filters)| filters.as_slice())
            .unwrap_or_default()
    }

    pub fn connected(&self, client_id: &str, login: Option<&str>, connection: i64) {
        let mut registry = self.registry();
        let login = login.map(str::to_owned);
        match registry.clients.get_mut(client_id) {
            // A reconnect keeps the counters and refusals of the earlier connections.
            Some(client) => {
                client.login = login;
                client.online = true;
                client.connection = connection;
                client.since = now();
                client.left = None;
            }
            None => {
                registry
                    .clients
                    .insert(client_id.to_owned(), Client::new(login, connection));
            }
        }
        registry.mark(client_id, true);
        drop(registry);
        self.changed.notify_one();
    }

    pub fn disconnected(&self, client_id: &str, connection: i64) {
        let mut registry = self.registry();
        let Some(client) = registry.clients.get_mut(client_id) else {
            return;
        };
        if client.connection != connection || !client.online {
            return;
        }
        client.online = false;
        client.since = now();
        client.left = Some(Instant::now());
        registry.mark(client_id, true);
        drop(registry);
        self.changed.notify_one();
    }

    /// Whether `client_id` (logged in as `login`) may publish on `topic`; counts either way.
    pub fn check_publish(
        &self,
        client_id: &str,
        login: Option<&str>,
        topic: &str,
    ) -> Result<(), Rule> {
        let verdict = self.rules.static_check(login, topic);
        let mut registry = self.registry();
        let at = Instant::now();
        let verdict = match verdict {
            Ok(true) => Self::first_publisher(&mut registry, client_id, login, topic, at),
            Ok(false) => Ok(()),
            Err(rule) => Err(rule),
        };
        let registry = &mut *registry;
        let client = registry
            .clients
            .entry(client_id.to_owned())
            .or_insert_with(|| Client::new(login.map(str::to_owned), 0));
        let mut urgent = false;
        match &verdict {
            Ok(()) => {
                client.published += 1;
                client.last_publish = Some(now());
            }
            Err(rule) => {
                client.refused += 1;
                let known = client.refusals.contains_key(topic);
                if known || client.refusals.len() < MAX_REFUSED_TOPICS {
                    let entry = client
                        .refusals
                        .entry(topic.to_owned())
                        .or_insert_with(|| (rule.clone(), 0));
                    entry.1 += 1;
                }
                if !known {
                    urgent = true;
                    tracing::warn!(
                        client_id,
                        login = login.unwrap_or("(anonymous)"),
                        topic,
                        rule = rule.name(),
                        "refused a publish: {}; further refusals of this client on this topic are only counted",
                        rule.explain()
                    );
                }
            }
        }
        registry.mark(client_id, urgent);
        // Counters alone wait for the presence task's next tick.
        if std::mem::take(&mut registry.urgent) {
            self.changed.notify_one();
        }
        verdict
    }

    fn first_publisher(
        registry: &mut Registry,
        client_id: &str,
        login: Option<&str>,
        topic: &str,
        at: Instant,
    ) -> Result<(), Rule> {
        if let Some(owner) = registry.owners.get(topic) {
            if owner == client_id {
                return Ok(());
            }
            let same_login = login.is_some()
                && registry
                    .clients
                    .get(owner)
                    .is_some_and(|o| o.login.as_deref() == login);
            let active = registry.clients.get(owner).is_some_and(|o| o.active(at));
            if active && !same_login {
                return Err(Rule::Owner(owner.clone()));
            }
            let previous = owner.clone();
            registry.mark(&previous, true);
        }
        registry
            .owners
            .insert(topic.to_owned(), client_id.to_owned());
        registry.mark(client_id, true);
        Ok(())
    }

    /// The client (by id) that owns `topic` now, under the first-publisher rule.
    pub fn owner_of(&self, topic: &str) -> Option<String> {
        let registry = self.registry();
        let owner = registry.owners.get(topic)?;
        registry
            .clients
            .get(owner)
            .filter(|c| c.active(Instant::now()))
            .map(|_| owner.clone())
    }

    /// Every client seen, for `/api/bots`.
    pub fn bots(&self) -> Vec<BotInfo> {
        let registry = self.registry();
        registry
            .clients
            .iter()
            .filter_map(|(id, client)| {
                let presence = registry.presence(id, self.bot_filters(client.login.as_deref()))?;
                Some(BotInfo {
                    client_id: id.clone(),
                    presence,
                    refusals: client
                        .refusals
                        .iter()
                        .map(|(topic, (rule, count))| Refusal {
                            topic: topic.clone(),
                            rule: rule.name(),
                            detail: rule.explain(),
                            count: *count,
                        })
                        .collect(),
                })
            })
            .collect()
    }

    /// Drains the changed clients: urgent ones always, the rest only when `all`. Forgets
    /// clients gone for [`FORGET_AFTER`] that own nothing (their presence becomes `None`).
    fn take_changes(&self, all: bool) -> Vec<(String, Option<BotPresence>)> {
        let mut registry = self.registry();
        registry.urgent = false;
        let at = Instant::now();
        let forget: Vec<String> = registry
            .clients
            .iter()
            .filter(|(_, c)| {
                all && c
                    .left
                    .is_some_and(|left| at.duration_since(left) > FORGET_AFTER)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &forget {
            registry.clients.remove(id);
            registry.owners.retain(|_, owner| owner != id);
            registry.dirty.insert(id.clone(), true);
        }
        if all {
            // Ownership lapses 60 s after the owner left: drop it from the table, so `owns`
            // says so and a bot publishing many topics does not leave them behind forever.
            let registry = &mut *registry;
            let lapsed: Vec<String> = registry
                .owners
                .iter()
                .filter(|(_, owner)| {
                    !registry
                        .clients
                        .get(owner.as_str())
                        .is_some_and(|c| c.active(at))
                })
                .map(|(topic, _)| topic.clone())
                .collect();
            for topic in lapsed {
                if let Some(owner) = registry.owners.remove(&topic) {
                    registry.dirty.insert(owner, true);
                }
            }
        }
        let ids: Vec<String> = registry
            .dirty
            .iter()
            .filter(|(_, urgent)| all || **urgent)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .map(|id| {
                registry.dirty.remove(&id);
                let login = registry.clients.get(&id).and_then(|c| c.login.clone());
                let presence = registry.presence(&id, self.bot_filters(login.as_deref()));
                (id, presence)
            })
            .collect()
    }
}

/// Publishes presence changes as retained `R/system/bots/<client id>` through the hub until
/// `stop`: connects, disconnects and first refusals at once, counters every few seconds.
pub async fn publish_presence(
    authority: Arc<Authority>,
    publisher: Publisher,
    root: TopicRoot,
    channel: String,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(COUNTER_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let all = tokio::select! {
            _ = authority.changed.notified() => false,
            _ = tick.tick() => true,
            _ = stop.cancelled() => return,
        };
        for (client_id, presence) in authority.take_changes(all) {
            let topic = root.topic(
                &channel,
                &format!("system/bots/{}", sanitize_level(&client_id)),
            );
            // An empty retained payload clears the topic on the broker (a forgotten client).
            let payload = presence
                .map(|p| Bytes::from(serde_json::to_vec(&p).unwrap_or_default()))
                .unwrap_or_else(|| Bytes::from_static(b"\"\""));
            let message = Message {
                topic,
                payload,
                retain: true,
                origin: Origin::Daemon,
                id: None,
            };
            if publisher.message(message).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[bots.*]` of an ongwatch.toml text.
    fn bots(text: &str) -> BTreeMap<String, BotConfig> {
        let table: toml::Table = toml::from_str(text).unwrap();
        table
            .get("bots")
            .map(|bots| bots.clone().try_into().unwrap())
            .unwrap_or_default()
    }

    fn root() -> TopicRoot {
        TopicRoot::new("stream").unwrap()
    }

    fn authority(text: &str) -> Arc<Authority> {
        Authority::new(Rules::new(&root(), &bots(text), &[]))
    }

    #[test]
    fn nobody_speaks_for_twitch() {
        let a = authority("");
        a.connected("spoofer", None, 1);
        for topic in [
            "stream/support/cheers",
            "stream/system/ongwatch",
            "stream/system/bots/x",
            "stream/status",
            "stream/synthetic/totals",
            "stream/raw/twitch/x",
            "stream/command/chat/send/result",
        ] {
            assert_eq!(
                a.check_publish("spoofer", None, topic),
                Err(Rule::Reserved),
                "{topic}"
            );
        }
        assert_eq!(
            a.check_publish("spoofer", None, "stream/command/trigger"),
            Ok(())
        );
        assert_eq!(a.check_publish("spoofer", None, "house/lights/1"), Ok(()));
        let bots = a.bots();
        assert_eq!(bots[0].presence.refused, 7);
        assert_eq!(bots[0].presence.published, 2);
        assert!(bots[0].presence.owns.is_empty(), "commands are not owned");
    }

    #[test]
    fn first_publisher_owns_until_sixty_seconds_after_leaving() {
        let a = authority("");
        a.connected("hypebot", None, 1);
        a.connected("other", None, 2);
        assert_eq!(
            a.check_publish("hypebot", None, "stream/synthetic/hype"),
            Ok(())
        );
        assert_eq!(
            a.check_publish("other", None, "stream/synthetic/hype"),
            Err(Rule::Owner("hypebot".into()))
        );
        assert_eq!(
            a.owner_of("stream/synthetic/hype").as_deref(),
            Some("hypebot")
        );
        a.disconnected("hypebot", 1);
        assert_eq!(
            a.check_publish("other", None, "stream/synthetic/hype"),
            Err(Rule::Owner("hypebot".into())),
            "still within the grace period"
        );
        // Sixty seconds later (moved back in time instead of waiting).
        {
            let mut registry = a.registry();
            let client = registry.clients.get_mut("hypebot").unwrap();
            client.left = Instant::now().checked_sub(OWNER_GRACE + Duration::from_secs(1));
        }
        assert_eq!(a.owner_of("stream/synthetic/hype"), None);
        assert_eq!(
            a.check_publish("other", None, "stream/synthetic/hype"),
            Ok(())
        );
        assert_eq!(
            a.owner_of("stream/synthetic/hype").as_deref(),
            Some("other")
        );
    }

    #[test]
    fn a_stale_disconnect_does_not_take_a_reconnected_client_offline() {
        let a = authority("");
        a.connected("bot", None, 1);
        a.connected("bot", None, 2);
        a.disconnected("bot", 1);
        assert_eq!(a.bots()[0].presence.state, "online");
        a.disconnected("bot", 2);
        assert_eq!(a.bots()[0].presence.state, "offline");
    }

    #[test]
    fn bot_filters_belong_to_their_login() {
        let a = authority("[bots.bpm]\npublish = [\"stream/synthetic/bpm\"]\n");
        assert_eq!(
            a.check_publish("x", Some("bpm"), "stream/synthetic/bpm"),
            Ok(())
        );
        assert_eq!(
            a.check_publish("y", None, "stream/synthetic/bpm"),
            Err(Rule::Bot("bpm".into()))
        );
        assert_eq!(
            a.check_publish("z", Some("lights"), "stream/synthetic/bpm"),
            Err(Rule::Bot("bpm".into()))
        );
    }

    #[test]
    fn the_same_login_keeps_its_topics_under_a_new_client_id() {
        let a = authority("");
        a.connected("crowd-1", Some("crowd"), 1);
        assert_eq!(
            a.check_publish("crowd-1", Some("crowd"), "stream/synthetic/crowd"),
            Ok(())
        );
        a.disconnected("crowd-1", 1);
        a.connected("crowd-2", Some("crowd"), 2);
        assert_eq!(
            a.check_publish("crowd-2", Some("crowd"), "stream/synthetic/crowd"),
            Ok(())
        );
        assert_eq!(
            a.owner_of("stream/synthetic/crowd").as_deref(),
            Some("crowd-2")
        );
    }

    #[test]
    fn bot_config_problems_name_the_key() {
        let bots = bots(
            "[bots.bpm]\npublish = [\"stream/synthetic/bpm\"]\n[bots.cheats]\npublish = [\"stream/support/#\"]\n[bots.tempo]\npublish = [\"stream/synthetic/+\"]\n",
        );
        let rules = Rules::new(&root(), &bots, &[]);
        let users = BTreeMap::from([("bpm".to_owned(), "x".to_owned())]);
        let problems: Vec<String> = rules
            .problems(Some(&users), "ongwatch.toml", "credentials.toml")
            .iter()
            .map(|p| p.to_string())
            .collect();
        let all = problems.join("\n");
        assert!(
            all.contains("bots.cheats") && all.contains("[mqtt.users]"),
            "{all}"
        );
        assert!(all.contains("overlaps \"stream/support/#\""), "{all}");
        assert!(all.contains("of [bots.tempo]"), "{all}");
        assert!(
            !all.contains("bots.bpm:") || !all.contains("no login \"bpm\""),
            "{all}"
        );
    }
}
