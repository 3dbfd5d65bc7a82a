//! Outputs the hub feeds, besides the MQTT bridge (which is also a source; see `mqtt`).
//!
//! Everything configured with `[[outputs]]` goes through the output API (`output.rs`) and its runner (`runner.rs`); docs/OUTPUTS.md shows how to
//! add a kind.

pub mod config;
mod discord;
pub mod nats;
pub mod output;
pub mod redis;
mod runner;
pub mod sqlite;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

pub use config::OutputConfig;
pub use output::Context;
pub use runner::{Breaker, OutputStats, OutputStatus};

use crate::hub::{Hub, QueueStats};

/// The configured outputs, registered with the hub and not started yet.
pub struct Outputs {
    registered: Vec<runner::Registered>,
    context: Context,
}

impl Outputs {
    /// Registers each output's queue; call before the hub runs.
    pub fn register(hub: &mut Hub, configs: &[OutputConfig], context: Context) -> Self {
        Self {
            registered: configs
                .iter()
                .map(|config| runner::Running::register(config, hub))
                .collect(),
            context,
        }
    }

    pub fn statuses(&self) -> Vec<Arc<OutputStatus>> {
        self.registered.iter().map(|r| r.status.clone()).collect()
    }

    /// Where `/api/events` reads from instead of the event log, if an output offers that.
    pub fn history(configs: &[OutputConfig], context: &Context) -> Option<sqlite::History> {
        configs.iter().find_map(|c| c.factory.history(context))
    }

    pub fn spawn(self) -> Started {
        Started(
            self.registered
                .into_iter()
                .map(|r| r.spawn(&self.context))
                .collect(),
        )
    }
}

pub struct Started(Vec<runner::Running>);

impl Started {
    /// After the hub closed the queues: each output delivers what is left (all at once, each
    /// within its own `drain_seconds`).
    pub async fn finish(self) {
        futures::future::join_all(self.0.into_iter().map(runner::Running::finish)).await;
    }
}

/// `/api/status` `outputs`: every hub output's queue numbers, with the full counters of the
/// configured outputs in place of their handover queue's.
pub fn status_json(
    queues: BTreeMap<String, QueueStats>,
    outputs: &[Arc<OutputStatus>],
) -> BTreeMap<String, serde_json::Value> {
    let mut all: BTreeMap<_, _> = queues
        .into_iter()
        .map(|(name, stats)| (name, serde_json::to_value(stats).unwrap_or_default()))
        .collect();
    for output in outputs {
        all.insert(
            output.name.clone(),
            serde_json::to_value(output.stats()).unwrap_or_default(),
        );
    }
    all
}

/// The queue numbers `/metrics` reports for a hub output, from its runner when it has one.
pub fn queue_stats(name: &str, outputs: &[Arc<OutputStatus>]) -> Option<QueueStats> {
    outputs
        .iter()
        .find(|o| o.name == name)
        .map(|o| o.queue_stats())
}

/// The `/metrics` families only configured outputs have. `label` escapes label values.
pub fn write_metrics(out: &mut String, outputs: &[Arc<OutputStatus>], label: fn(&str) -> String) {
    if outputs.is_empty() {
        return;
    }
    let stats: Vec<_> = outputs
        .iter()
        .map(|o| (label(&o.name), o.stats()))
        .collect();
    type Pick = fn(&OutputStats) -> u64;
    let families: [(&str, &str, &str, Pick); 5] = [
        (
            "ongwatch_output_failed_total",
            "counter",
            "Records an output gave up on (rejected, or unreachable at shutdown).",
            |s| s.failed,
        ),
        (
            "ongwatch_output_retried_total",
            "counter",
            "Delivery attempts an output retried after a transient failure.",
            |s| s.retried,
        ),
        (
            "ongwatch_output_filtered_total",
            "counter",
            "Records an output's topics did not match.",
            |s| s.filtered,
        ),
        (
            "ongwatch_output_healthy",
            "gauge",
            "1 while an output's destination answers.",
            |s| u64::from(s.healthy),
        ),
        (
            "ongwatch_output_breaker_open",
            "gauge",
            "1 while an output's circuit breaker is open or half-open.",
            |s| u64::from(s.breaker != Breaker::Closed),
        ),
    ];
    for (name, kind, help, pick) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (output, s) in &stats {
            let _ = writeln!(
                out,
                "{name}{{output=\"{output}\",kind=\"{}\"}} {}",
                s.kind,
                pick(s)
            );
        }
    }
}
