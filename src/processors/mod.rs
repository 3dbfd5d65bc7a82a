//! Processors: hub outputs that read the bus and publish derived state back onto it.
//!
//! Each one drains its own queue (a dropping policy, so a processor that publishes into the
//! hub can never stall it) and ends when the hub closes that queue at shutdown:
//!
//! - [`hype`]: the hype meter, a leaky bucket over support events → retained `R/synthetic/hype`.
//! - [`totals`]: support totals of the current stream session → retained `R/synthetic/totals`,
//!   kept in the state dir across restarts.
//! - [`homeassistant`]: Home Assistant MQTT discovery for the daemon's topics.
//! - [`rules`]: `[[rules]]`, declarative reactions (`when` / `if` / `publish` / `else`).
//! - [`monitor`]: `[monitor]`, online / offline of many channels (EventSub and Helix Get
//!   Streams) → `R/channel/online`, `R/channel/offline`, retained `R/status` per channel. It
//!   also polls, so the daemon starts it itself with the sources' stop signal ([`monitor::run`]).
//! - [`announce`]: `[announce]`, chat announcements of online / offline through
//!   `R/command/chat/send`.
//!
//! See docs/PROCESSORS.md.

pub mod announce;
pub mod commands;
pub mod homeassistant;
pub mod hype;
pub mod monitor;
pub mod rules;
pub mod totals;

use std::path::Path;
use std::sync::Arc;

use crate::event::{Event, Kind, TopicRoot, filters_overlap};
use crate::hub::{BoundedQueue, Delivery, Hub, OverflowPolicy, Publisher, Record};
use crate::supervisor::{Policy, Supervised, Supervisor};

/// Capacity of each processor's queue (`drop_oldest`: a processor that falls this far behind
/// catches up with the present instead of stalling the hub; drops are counted per output).
pub const QUEUE: usize = 10_000;

type Queue = Arc<BoundedQueue<Delivery>>;

/// The processors' sections of ongwatch.toml (the daemon lends them from the whole config).
#[derive(Clone, Copy)]
pub struct Sections<'a> {
    pub hype: &'a hype::HypeConfig,
    pub homeassistant: &'a homeassistant::HomeAssistantConfig,
    pub rules: &'a [rules::Rule],
    pub announce: &'a announce::Announce,
}

/// The queues of the enabled processors, registered with the hub before it starts.
pub struct Outputs {
    hype: Option<Queue>,
    totals: Queue,
    homeassistant: Option<Queue>,
    rules: Option<Queue>,
    announce: Option<Queue>,
}

impl Outputs {
    pub fn register(hub: &mut Hub, config: Sections<'_>, root: &TopicRoot) -> Self {
        // Every processor wants what bots publish too: HA's birth message, a bot's hype. Each
        // is woken only for the topics it reads; rules read whatever their conditions name,
        // so they get everything.
        let kinds = |kinds: &[Kind]| -> Vec<String> {
            kinds
                .iter()
                .map(|kind| root.filter_suffix(kind.topic_suffix()))
                .collect()
        };
        let mut add = |name: &str, filters: Vec<String>| {
            hub.add_filtered_output(name, QUEUE, OverflowPolicy::DropOldest, true, filters)
        };
        Self {
            hype: config
                .hype
                .enabled
                .then(|| add("hype", hype::filters(root))),
            totals: add("totals", kinds(totals::KINDS)),
            homeassistant: config
                .homeassistant
                .enabled
                .then(|| add("homeassistant", vec![config.homeassistant.status_topic()])),
            rules: (!config.rules.is_empty()).then(|| add("rules", Vec::new())),
            announce: config
                .announce
                .is_enabled()
                .then(|| add("announce", kinds(announce::KINDS))),
        }
    }

    /// Starts one supervised task per processor (restarted if one ends early: a processor
    /// owns nothing but its queue, which a new run drains on); each ends when the hub closes
    /// its queue at shutdown.
    pub fn spawn(
        self,
        supervisor: &Supervisor,
        publisher: &Publisher,
        config: Sections<'_>,
        channel: &str,
        state_dir: &Path,
    ) -> Vec<Supervised> {
        let restart = Policy::Restart;
        let (publisher, channel) = (publisher.clone(), channel.to_owned());
        let mut tasks = Vec::new();
        {
            let (queue, publisher, state_dir) =
                (self.totals, publisher.clone(), state_dir.to_path_buf());
            tasks.push(supervisor.spawn("totals", restart, move || {
                totals::run(queue.clone(), publisher.clone(), state_dir.clone())
            }));
        }
        if let Some(queue) = self.hype {
            let (publisher, config, channel) =
                (publisher.clone(), config.hype.clone(), channel.clone());
            tasks.push(supervisor.spawn("hype", restart, move || {
                hype::run(
                    queue.clone(),
                    publisher.clone(),
                    config.clone(),
                    channel.clone(),
                )
            }));
        }
        if let Some(queue) = self.homeassistant {
            let (publisher, config, channel) = (
                publisher.clone(),
                config.homeassistant.clone(),
                channel.clone(),
            );
            tasks.push(supervisor.spawn("homeassistant", restart, move || {
                homeassistant::run(
                    queue.clone(),
                    publisher.clone(),
                    config.clone(),
                    channel.clone(),
                )
            }));
        }
        if let Some(queue) = self.rules {
            let (publisher, rules) = (publisher.clone(), config.rules.to_vec());
            tasks.push(supervisor.spawn("rules", restart, move || {
                rules::run(queue.clone(), publisher.clone(), rules.clone())
            }));
        }
        if let Some(queue) = self.announce {
            let (publisher, config, channel) =
                (publisher.clone(), config.announce.clone(), channel.clone());
            tasks.push(supervisor.spawn("announce", restart, move || {
                announce::run(
                    queue.clone(),
                    publisher.clone(),
                    config.clone(),
                    channel.clone(),
                )
            }));
        }
        tasks
    }
}

/// Filters outside the topic root that the daemon's MQTT connection must also subscribe to so
/// these processors see them: Home Assistant's birth topic and the `when` of every rule.
/// Filters that overlap `root_filters` are left out, since overlapping subscriptions make a
/// broker deliver the same message twice.
pub fn subscriptions(config: Sections<'_>, root_filters: &[String]) -> Vec<String> {
    let mut wanted = Vec::new();
    if config.homeassistant.enabled {
        wanted.push(config.homeassistant.status_topic());
    }
    wanted.extend(config.rules.iter().map(|rule| rule.when.clone()));
    let mut extra: Vec<String> = Vec::new();
    for filter in wanted {
        let covered = root_filters
            .iter()
            .chain(extra.iter())
            .any(|other| filters_overlap(other, &filter));
        if !covered {
            extra.push(filter);
        }
    }
    extra
}

/// The contract event in `record` if its topic under `root` is one of `kinds`; anything else
/// (chat, a bot's own JSON, malformed payloads) is skipped without parsing.
fn event_of<'a>(record: &'a Record, root: &TopicRoot, kinds: &[Kind]) -> Option<&'a Event> {
    let (_, suffix) = root.strip(&record.message.topic)?;
    if !kinds.iter().any(|kind| kind.topic_suffix() == suffix) {
        return None;
    }
    let event = record.event()?;
    kinds.contains(&event.kind.kind()).then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_follows_mqtt_matching() {
        assert!(filters_overlap("stream/#", "stream/synthetic/hype"));
        assert!(filters_overlap("+/#", "house/lights"));
        assert!(filters_overlap("house/+/x", "house/lights/+"));
        assert!(!filters_overlap("stream/#", "homeassistant/status"));
        assert!(!filters_overlap("a/b", "a/b/c"));
        assert!(filters_overlap("a/b/#", "a/b"));
    }

    #[test]
    fn only_topics_outside_the_root_are_added() {
        let table: toml::Table = toml::from_str(
            "[[rules]]\nwhen = \"stream/synthetic/hype\"\npublish = { topic = \"x/y\", payload = \"1\" }\n[[rules]]\nwhen = \"zigbee/button/#\"\npublish = { topic = \"x/z\", payload = \"1\" }\n",
        )
        .unwrap();
        let (rules, problems) = rules::parse(table.get("rules"));
        assert!(problems.is_empty(), "{problems:?}");
        let homeassistant = homeassistant::HomeAssistantConfig {
            enabled: true,
            ..Default::default()
        };
        let sections = Sections {
            hype: &Default::default(),
            homeassistant: &homeassistant,
            rules: &rules,
            announce: &Default::default(),
        };
        let root = vec!["stream/#".to_owned()];
        assert_eq!(
            subscriptions(sections, &root),
            vec!["homeassistant/status".to_owned(), "zigbee/button/#".into()]
        );
    }
}
