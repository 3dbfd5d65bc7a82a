//! `ongwatch replay`: a recorded event log published again as test events, with a summary of
//! what was published, skipped and refused per topic family.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::reach::{CLI_PATIENCE, Unreached, reach_daemon};
use super::{Failure, Global};
use crate::config::Config;
use crate::event::TopicRoot;
use crate::mqtt::client::Rejected;

pub(super) struct ReplayOptions {
    pub(super) speed: f64,
    pub(super) as_live: bool,
    pub(super) all_topics: bool,
}

/// Topic families `replay` leaves out unless `--all-topics`, and why.
fn left_out(family: &str) -> Option<&'static str> {
    match family {
        "command" => Some(
            "they would act again (trigger events, send chat, switch OBS scenes) as if asked now",
        ),
        "system" => Some("they describe the daemon that recorded the log, not the stream"),
        "bots" => Some("they describe the MQTT clients of the daemon that recorded the log"),
        _ => None,
    }
}

/// The family of a topic in replay's summary: its first level under the root (`support`,
/// `chat`, `system`, ...), with bot presence (`system/bots/...`) on its own, and `other` for
/// topics outside the configured root.
fn topic_family(root: &TopicRoot, topic: &str) -> String {
    match root.strip(topic) {
        Some((_, suffix)) if suffix.starts_with("system/bots/") => "bots".into(),
        Some((_, suffix)) => suffix.split('/').next().unwrap_or(suffix).to_owned(),
        None => "other".into(),
    }
}

/// What `replay` did with each line, per topic family.
#[derive(Default)]
struct ReplayTally {
    lines: u64,
    published: BTreeMap<String, u64>,
    left_out: BTreeMap<String, u64>,
    /// Acknowledged with an error reason (e.g. another client owns the topic), with the last one.
    refused: BTreeMap<String, (u64, String)>,
    unreadable: u64,
    first_unreadable: Option<usize>,
}

impl ReplayTally {
    /// The closing summary: a headline, then one line per family and outcome with the reason.
    fn summary(&self, file: &Path, as_live: bool) -> String {
        let published: u64 = self.published.values().sum();
        let how = if as_live {
            "as live (original ids and test flags)"
        } else {
            "as test events with new ids"
        };
        let mut rows: Vec<(&str, &str, u64, String)> = Vec::new();
        for (family, n) in &self.published {
            rows.push(("published", family, *n, String::new()));
        }
        for (family, n) in &self.left_out {
            let why = left_out(family).unwrap_or_default();
            rows.push((
                "skipped",
                family,
                *n,
                format!("{family} topics are not replayed: {why}; --all-topics includes them"),
            ));
        }
        for (family, (n, reason)) in &self.refused {
            rows.push((
                "refused",
                family,
                *n,
                format!("the broker refused them ({reason}): only their owner may publish there"),
            ));
        }
        if self.unreadable > 0 {
            let first = self
                .first_unreadable
                .map(|line| format!(" (first: line {line})"))
                .unwrap_or_default();
            rows.push((
                "skipped",
                "unreadable",
                self.unreadable,
                format!("not {{\"seq\",\"topic\",\"event\"}} lines{first}"),
            ));
        }
        let width = rows.iter().map(|row| row.1.len()).max().unwrap_or(0);
        let mut text = format!(
            "replay: {published} of {} lines published from {} {how}",
            self.lines,
            file.display()
        );
        for (outcome, family, n, why) in rows {
            let line = format!("\n  {outcome:<9}  {family:<width$}  {n:>6}  {why}");
            text.push_str(line.trim_end());
        }
        text
    }
}

pub(super) async fn replay(
    config: &Config,
    global: &Global,
    file: &Path,
    options: ReplayOptions,
) -> Result<(), Failure> {
    let reader = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .map_err(|e| Failure::usage(format!("{}: cannot read it ({e})", file.display())))?;
    let mut client = reach_daemon(config, global, "ongwatch-replay", CLI_PATIENCE)
        .await
        .map_err(Unreached::into_failure)?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut previous: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut tally = ReplayTally::default();
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Failure::runtime(format!("{}: {e}", file.display())))?;
        if line.trim().is_empty() {
            continue;
        }
        tally.lines += 1;
        let Some((topic, mut event)) = parse_log_line(&line) else {
            tally.unreadable += 1;
            tally.first_unreadable.get_or_insert(number + 1);
            continue;
        };
        let family = topic_family(&config.topic_root, &topic);
        if !options.all_topics && left_out(&family).is_some() {
            *tally.left_out.entry(family).or_default() += 1;
            continue;
        }
        if let Some(time) = event
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
        {
            if let Some(previous) = previous
                && options.speed > 0.0
            {
                let gap = (time - previous)
                    .to_std()
                    .unwrap_or_default()
                    .min(Duration::from_secs(60));
                tokio::time::sleep(gap.div_f64(options.speed)).await;
            }
            previous = Some(time);
        }
        if !options.as_live
            && let Some(object) = event.as_object_mut()
        {
            object.insert("test".into(), serde_json::Value::Bool(true));
            if let Some(id) = object.get("id").and_then(|id| id.as_str()) {
                let id = format!("{id}#replay-{run}");
                object.insert("id".into(), serde_json::Value::String(id));
            }
        }
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        match client
            .publish(&topic, Bytes::from(payload), false)
            .await
            .map_err(Failure::runtime)?
        {
            Ok(()) => *tally.published.entry(family).or_default() += 1,
            Err(Rejected(reason)) => {
                let refused = tally.refused.entry(family).or_default();
                refused.0 += 1;
                refused.1 = reason;
            }
        }
    }
    client.disconnect().await;
    println!("{}", tally.summary(file, options.as_live));
    Ok(())
}

fn parse_log_line(line: &str) -> Option<(String, serde_json::Value)> {
    let mut value: serde_json::Value = serde_json::from_str(line).ok()?;
    let topic = value.get("topic")?.as_str()?.to_owned();
    let event = value.get_mut("event")?.take();
    Some((topic, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_summary_names_each_family_and_why_it_was_left_out() {
        let root = TopicRoot::new("stream").unwrap();
        assert_eq!(topic_family(&root, "stream/support/cheers"), "support");
        assert_eq!(topic_family(&root, "stream/system/bots/bpm"), "bots");
        assert_eq!(topic_family(&root, "stream/system/ongwatch"), "system");
        assert_eq!(topic_family(&root, "elsewhere/x"), "other");
        let mut tally = ReplayTally {
            lines: 5,
            unreadable: 1,
            first_unreadable: Some(2),
            ..ReplayTally::default()
        };
        tally.published.insert("support".into(), 2);
        tally.left_out.insert("command".into(), 1);
        tally
            .refused
            .insert("synthetic".into(), (1, "NotAuthorized".into()));
        let summary = tally.summary(Path::new("rec.jsonl"), false);
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(
            lines[0],
            "replay: 2 of 5 lines published from rec.jsonl as test events with new ids"
        );
        assert!(lines[1].contains("published") && lines[1].contains("support"));
        assert!(
            lines[2].contains("skipped") && lines[2].contains("command topics are not replayed")
        );
        assert!(lines[2].ends_with("--all-topics includes them"));
        assert!(lines[3].contains("refused") && lines[3].contains("NotAuthorized"));
        assert!(lines[4].contains("unreadable") && lines[4].contains("line 2"));
    }
}
