//! `[bus]` of ongwatch.toml: the topic root, raw payloads, the dedup window and the MQTT
//! output's queue.

use serde::Deserialize;

use crate::event::TopicRoot;
use crate::section::Section;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    pub topic_root: String,
    pub include_raw: bool,
    /// How long an event id is remembered to drop redeliveries.
    pub dedup_window_seconds: u64,
    /// How many events may wait for the MQTT output: the hub then waits (embedded broker) or
    /// the oldest are dropped (external broker).
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

impl BusConfig {
    /// The topic root (checked by [`Section::problems`]; `stream` if it were not).
    pub fn root(&self) -> TopicRoot {
        TopicRoot::new(self.topic_root.clone()).unwrap_or_else(|_| {
            TopicRoot::new("stream").unwrap_or_else(|_| unreachable!("\"stream\" is a valid root"))
        })
    }
}

impl Section for BusConfig {
    const KEY: &'static str = "bus";

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Err(e) = TopicRoot::new(self.topic_root.clone()) {
            problems.push((
                "bus.topic_root".into(),
                format!("{e}; e.g. \"stream\" or \"ongwatch/{{channel}}\""),
            ));
        }
        if self.mqtt_queue == 0 {
            problems.push(("bus.mqtt_queue".into(), "must be at least 1".into()));
        }
        problems
    }
}

/// `[log]`: where the write-ahead event log is, relative to the state directory.
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

impl Section for LogConfig {
    const KEY: &'static str = "log";

    fn problems(&self) -> Vec<(String, String)> {
        if self.path.is_empty() {
            return vec![(
                "log.path".into(),
                "must not be empty; e.g. \"events.jsonl\"".into(),
            )];
        }
        Vec::new()
    }
}
