//! `ongwatch tail`: what goes over the bus, one readable line per message (or JSON).

use std::io::Write;
use std::time::Duration;

use super::reach::{START_THE_DAEMON, TAIL_RETRY, Unreached, reach_daemon};
use super::{Failure, Global};
use crate::config::Config;
use crate::event::validate_filter;
use crate::mqtt::client::ClientError;

pub(super) async fn tail(
    config: &Config,
    global: &Global,
    filters: Vec<String>,
    json: bool,
    count: Option<u64>,
    wait: bool,
) -> Result<(), Failure> {
    let filters = if filters.is_empty() {
        vec![config.topic_root.filter_all()]
    } else {
        filters
    };
    for filter in &filters {
        validate_filter(filter).map_err(Failure::usage)?;
    }
    let stdout = std::io::stdout();
    let mut seen = 0u64;
    // Whether the current wait was announced: one line per outage, however long it lasts (a
    // lost connection announces the wait that follows it).
    let mut announced = false;
    let mut waits = wait;
    'connection: loop {
        // Zero patience: a lost connection is reported at once, and the next one is looked up
        // in runtime.json again (a restarted daemon may listen on another port).
        let mut client = loop {
            let reached = reach_daemon(config, global, "ongwatch-tail", Duration::ZERO).await;
            let unreached = match reached {
                Ok(mut client) => match client.subscribe(&filters).await {
                    Ok(()) => break client,
                    // Gone between the CONNACK and the SUBACK: as absent as never there.
                    Err(e) => Unreached::Absent(e.to_string()),
                },
                Err(unreached) => unreached,
            };
            let why = match unreached {
                Unreached::Absent(why) if waits => why,
                unreached => return Err(unreached.into_failure()),
            };
            if !announced {
                eprintln!("tail: waiting for the daemon: {why}; {START_THE_DAEMON}");
                announced = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(TAIL_RETRY) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        };
        eprintln!(
            "tail: subscribed to {} on {}",
            filters.join(" "),
            client.endpoint()
        );
        while count.is_none_or(|count| seen < count) {
            let publish = tokio::select! {
                publish = client.next_publish() => publish,
                _ = tokio::signal::ctrl_c() => break,
            };
            let publish = match publish {
                Ok(publish) => publish,
                Err(e) => {
                    let why = match e {
                        ClientError::Unreachable { detail, .. } => detail,
                        refused @ ClientError::Refused { .. } => refused.to_string(),
                    };
                    eprintln!(
                        "tail: the daemon at {} went away ({why}); waiting for it to come back",
                        client.endpoint()
                    );
                    announced = true;
                    waits = true;
                    continue 'connection;
                }
            };
            let topic = String::from_utf8_lossy(&publish.topic).into_owned();
            let event: serde_json::Value =
                serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                    serde_json::Value::String(
                        String::from_utf8_lossy(&publish.payload).into_owned(),
                    )
                });
            let line = if json {
                serde_json::json!({"topic": topic, "event": event}).to_string()
            } else {
                readable(&topic, &event, publish.retain)
            };
            let mut out = stdout.lock();
            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                break;
            }
            seen += 1;
        }
        client.disconnect().await;
        return Ok(());
    }
}

/// One human line: time, topic, then what matters of the payload.
fn readable(topic: &str, event: &serde_json::Value, retained: bool) -> String {
    let text = |key: &str| event.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let time = text("time")
        .and_then(|t| t.get(11..23).map(str::to_owned))
        .unwrap_or_else(|| "--:--:--.---".into());
    let mut parts = Vec::new();
    if let Some(kind) = text("type") {
        parts.push(kind);
    }
    if let Some(user) = text("display_name").or_else(|| text("user")) {
        parts.push(user);
    }
    if let Some(amount) = event
        .get("amount")
        .or_else(|| event.get("count"))
        .or_else(|| event.get("viewers"))
    {
        let currency = text("currency").unwrap_or_default();
        parts.push(format!("{amount} {currency}").trim_end().to_owned());
    }
    for key in ["state", "level", "phase", "title", "reward_title"] {
        if let Some(value) = event.get(key) {
            parts.push(format!(
                "{key}={}",
                value
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| value.to_string())
            ));
        }
    }
    if let Some(message) = text("message") {
        parts.push(format!("{message:?}"));
    }
    if parts.is_empty() {
        parts.push(event.to_string());
    }
    let mut flags = String::new();
    if event.get("test").and_then(|v| v.as_bool()) == Some(true) {
        flags.push_str(" [test]");
    }
    if retained {
        flags.push_str(" [retained]");
    }
    format!("{time}  {topic}  {}{flags}", parts.join("  "))
}
