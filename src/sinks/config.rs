//! `[[outputs]]`: the keys every output has, and the dispatch of the rest to its kind.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::output::{Factory, Kind};
use crate::event::validate_filter;
use crate::hub::OverflowPolicy;
use crate::retry::{Jitter, Policy};

/// Every output kind `kind = "..."` can name. A new kind is one file and one line here.
pub const KINDS: &[Kind] = &[
    super::webhook::KIND,
    super::sqlite::KIND,
    super::redis::KIND,
    super::nats::KIND,
];

/// Names the daemon's own outputs use in `/api/status` and `/metrics`.
const RESERVED_NAMES: &[&str] = &[
    "event_log",
    "commands",
    "mqtt",
    "web",
    "hype",
    "totals",
    "homeassistant",
    "rules",
    "monitor",
];

/// The keys every `[[outputs]]` table may have besides `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Common {
    /// Shown in `/api/status` and `/metrics`; defaults to the kind.
    pub name: String,
    /// MQTT filters; empty: everything on the bus.
    pub topics: Vec<String>,
    /// Records that may wait for this output.
    pub queue: usize,
    pub policy: OverflowPolicy,
    /// Records handed to one `deliver` call at most.
    pub batch: usize,
    /// First retry delay; it doubles up to `retry_max_seconds`.
    pub retry_initial_ms: u64,
    pub retry_max_seconds: f64,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before one probe delivery.
    pub breaker_cooldown_seconds: f64,
    /// Longest time one start or delivery attempt may take.
    pub timeout_seconds: f64,
    /// At shutdown, how long the output may keep retrying what is still queued.
    pub drain_seconds: f64,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            name: String::new(),
            topics: Vec::new(),
            queue: 10_000,
            policy: OverflowPolicy::DropOldest,
            batch: 256,
            retry_initial_ms: 100,
            retry_max_seconds: 5.0,
            breaker_failures: 5,
            breaker_cooldown_seconds: 10.0,
            timeout_seconds: 30.0,
            drain_seconds: 10.0,
        }
    }
}

impl Common {
    /// Exactly the documented schedule, no jitter: `retry_initial_ms` doubling up to
    /// `retry_max_seconds`.
    pub fn retry(&self) -> Policy {
        Policy::new(
            Duration::from_millis(self.retry_initial_ms.max(1)),
            Duration::from_secs_f64(self.retry_max_seconds),
        )
        .jitter(Jitter::None)
    }
    pub fn breaker_cooldown(&self) -> Duration {
        Duration::from_secs_f64(self.breaker_cooldown_seconds)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }
    pub fn drain(&self) -> Duration {
        Duration::from_secs_f64(self.drain_seconds)
    }
}

/// One checked `[[outputs]]` table.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub kind: &'static str,
    pub common: Common,
    pub factory: Arc<dyn Factory>,
}

const COMMON_KEYS: &[&str] = &[
    "name",
    "topics",
    "queue",
    "policy",
    "batch",
    "retry_initial_ms",
    "retry_max_seconds",
    "breaker_failures",
    "breaker_cooldown_seconds",
    "timeout_seconds",
    "drain_seconds",
];

/// Parses `[[outputs]]`; problems are (key, message) with keys like `outputs[2].url`.
pub fn parse(value: Option<&toml::Value>) -> (Vec<OutputConfig>, Vec<(String, String)>) {
    let mut outputs = Vec::new();
    let mut problems = Vec::new();
    let Some(value) = value else {
        return (outputs, problems);
    };
    let Some(tables) = value.as_array() else {
        problems.push((
            "outputs".into(),
            "must be a list of [[outputs]] tables (two brackets)".into(),
        ));
        return (outputs, problems);
    };
    let mut names = HashSet::new();
    for (index, table) in tables.iter().enumerate() {
        let at = format!("outputs[{}]", index + 1);
        let Some(table) = table.as_table() else {
            problems.push((at, "must be a table: [[outputs]]".into()));
            continue;
        };
        match parse_one(table, &at) {
            Ok(output) => {
                if !names.insert(output.common.name.clone()) {
                    problems.push((
                        format!("{at}.name"),
                        format!(
                            "{:?} is used by another output; give each its own name",
                            output.common.name
                        ),
                    ));
                }
                outputs.push(output);
            }
            Err(found) => problems.extend(found),
        }
    }
    (outputs, problems)
}

fn parse_one(table: &toml::Table, at: &str) -> Result<OutputConfig, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        let key = if key.is_empty() {
            at.to_owned()
        } else {
            format!("{at}.{key}")
        };
        problems.push((key, message));
    };
    let known = || {
        KINDS
            .iter()
            .map(|k| format!("{:?}", k.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kind = match table.get("kind") {
        None => {
            problem("kind", format!("missing; use one of {}", known()));
            None
        }
        Some(toml::Value::String(name)) => match KINDS.iter().find(|k| k.name == name) {
            Some(kind) => Some(kind),
            None => {
                problem(
                    "kind",
                    format!("{name:?} is not an output kind; use one of {}", known()),
                );
                None
            }
        },
        Some(other) => {
            problem(
                "kind",
                format!("{other} is not a name; use one of {}", known()),
            );
            None
        }
    };
    let (mut common_table, mut own) = (toml::Table::new(), toml::Table::new());
    for (key, value) in table {
        if key == "kind" {
            continue;
        }
        let into = if COMMON_KEYS.contains(&key.as_str()) {
            &mut common_table
        } else {
            &mut own
        };
        into.insert(key.clone(), value.clone());
    }
    let mut common = match super::output::keys::<Common>(common_table) {
        Ok(common) => common,
        Err(found) => {
            for (key, message) in found {
                problem(&key, message);
            }
            Common::default()
        }
    };
    for filter in &common.topics {
        if validate_filter(filter).is_err() {
            problem(
                "topics",
                format!("{filter:?} is not an MQTT filter; e.g. \"stream/support/#\""),
            );
        }
    }
    for (key, value, min) in [
        ("queue", common.queue, 1),
        ("batch", common.batch, 1),
        ("breaker_failures", common.breaker_failures as usize, 1),
    ] {
        if value < min {
            problem(key, format!("must be at least {min}"));
        }
    }
    for (key, value) in [
        ("retry_max_seconds", common.retry_max_seconds),
        ("breaker_cooldown_seconds", common.breaker_cooldown_seconds),
        ("timeout_seconds", common.timeout_seconds),
        ("drain_seconds", common.drain_seconds),
    ] {
        if !(0.0..=86_400.0).contains(&value) || (key == "timeout_seconds" && value == 0.0) {
            problem(
                key,
                format!("{value} is out of range; use seconds up to 86400"),
            );
        }
    }
    let Some(kind) = kind else {
        return Err(problems);
    };
    if common.name.is_empty() {
        common.name = kind.name.to_owned();
    }
    if RESERVED_NAMES.contains(&common.name.as_str()) {
        problem(
            "name",
            format!(
                "{:?} is the name of a built-in output; choose another, e.g. \"{}-1\"",
                common.name, kind.name
            ),
        );
    }
    let factory = (kind.parse)(own);
    if let Err(found) = &factory {
        for (key, message) in found {
            problem(key, message.clone());
        }
    }
    match factory {
        Ok(factory) if problems.is_empty() => Ok(OutputConfig {
            kind: kind.name,
            common,
            factory: Arc::from(factory),
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        let (_, found) = parse(table.get("outputs"));
        found.into_iter().map(|(key, _)| key).collect()
    }

    #[test]
    fn each_problem_names_its_output_and_key() {
        let found = problems(
            r#"
[[outputs]]
kind = "webhook"
url = "https://example.invalid/hook"
[[outputs]]
kind = "kafka"
[[outputs]]
kind = "redis"
url = "http://nope"
queue = 0
topics = ["a/#/b"]
colour = 1
[[outputs]]
kind = "sqlite"
name = "webhook"
"#,
        );
        assert_eq!(
            found,
            [
                "outputs[2].kind",
                "outputs[3].topics",
                "outputs[3].queue",
                "outputs[3].colour",
                "outputs[4].name",
            ],
        );
        // The unknown key is reported even when another of the kind's keys is wrong.
        assert!(
            problems("[[outputs]]\nkind = \"redis\"\nurl = \"redis://h\"\nnope = 1")
                .contains(&"outputs[1].nope".to_owned())
        );
        assert_eq!(problems("outputs = 1"), ["outputs"]);
    }

    #[test]
    fn defaults_fill_the_common_keys() {
        let table: toml::Table =
            toml::from_str("[[outputs]]\nkind = \"sqlite\"\ntopics = [\"stream/support/#\"]")
                .unwrap();
        let (outputs, found) = parse(table.get("outputs"));
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(outputs[0].common.name, "sqlite");
        assert_eq!(outputs[0].common.policy, OverflowPolicy::DropOldest);
        assert_eq!(outputs[0].common.queue, 10_000);
    }
}
