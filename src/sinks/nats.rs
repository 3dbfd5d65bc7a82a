//! `kind = "nats"`: publish every record on a subject made from its topic (`/` → `.`).
//!
//! When a JetStream stream covers the subject, the publish waits for the stream's ack and
//! carries `Nats-Msg-Id` (the event id, else the seq), so a retry after a lost ack is stored
//! once. Otherwise it is a core publish (at most once, like any core NATS message). Which
//! subjects a stream covers is asked once per subject and again after `RECHECK`.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::context::GetStreamByNameErrorKind;
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::{Client, ConnectOptions, HeaderMap, header::NATS_MESSAGE_ID};
use async_trait::async_trait;
use serde::Deserialize;
use tokio::time::Instant;

use super::output::{Context, Factory, Health, KeyProblems, Kind, Output, OutputError, keys};
use crate::hub::Delivery;

pub const KIND: Kind = Kind {
    name: "nats",
    parse,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long "this subject has (no) stream" is believed before asking again.
const RECHECK: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    url: String,
    /// Put before every subject, e.g. "ongwatch." gives `ongwatch.stream.support.cheers`.
    #[serde(default)]
    subject_prefix: String,
}

#[derive(Debug, Clone)]
struct Settings {
    url: String,
    subject_prefix: String,
}

fn parse(table: toml::Table) -> Result<Box<dyn Factory>, KeyProblems> {
    let keys: Keys = keys(table)?;
    let mut problems = Vec::new();
    match url::Url::parse(&keys.url) {
        Ok(url) if matches!(url.scheme(), "nats" | "tls") && url.host_str().is_some() => {}
        _ => problems.push((
            "url".into(),
            format!(
                "{:?} is not a NATS URL; use e.g. \"nats://127.0.0.1:4222\" or \"tls://user:pass@host:4222\"",
                keys.url
            ),
        )),
    }
    let prefix = &keys.subject_prefix;
    if !prefix.is_empty()
        && (!prefix.ends_with('.')
            || prefix.contains(['*', '>', ' '])
            || prefix.split('.').rev().skip(1).any(str::is_empty))
    {
        problems.push((
            "subject_prefix".into(),
            format!(
                "{prefix:?} is not a subject prefix; use tokens ending in a dot, e.g. \"ongwatch.\""
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Box::new(Settings {
        url: keys.url,
        subject_prefix: keys.subject_prefix,
    }))
}

impl Factory for Settings {
    fn build(&self, _context: &Context) -> Box<dyn Output> {
        Box::new(Nats {
            settings: self.clone(),
            client: None,
            streams: HashMap::new(),
        })
    }
}

struct Nats {
    settings: Settings,
    client: Option<(Client, jetstream::Context)>,
    /// Subject → (a stream covers it, when that was learned).
    streams: HashMap<String, (bool, Instant)>,
}

/// `stream/support/cheers` → `stream.support.cheers`; empty levels become `_` because NATS
/// has no empty tokens, and characters NATS reserves in tokens become `_` too.
fn subject(prefix: &str, topic: &str) -> String {
    let mut subject = String::with_capacity(prefix.len() + topic.len());
    subject.push_str(prefix);
    for (i, level) in topic.split('/').enumerate() {
        if i > 0 {
            subject.push('.');
        }
        if level.is_empty() {
            subject.push('_');
        }
        subject.extend(level.chars().map(|c| match c {
            '.' | '*' | '>' | ' ' | '\t' | '\r' | '\n' => '_',
            c => c,
        }));
    }
    subject
}

impl Nats {
    async fn has_stream(
        &mut self,
        client: &Client,
        jetstream: &jetstream::Context,
        subject: &str,
    ) -> Result<bool, OutputError> {
        if let Some(&(known, at)) = self.streams.get(subject)
            && at.elapsed() < RECHECK
        {
            return Ok(known);
        }
        let known = match jetstream.stream_by_subject(subject).await {
            Ok(_) => true,
            Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => false,
            // No JetStream on this server (nobody answers its API): core publish.
            Err(e) if client.connection_state() == async_nats::connection::State::Connected => {
                tracing::debug!(%subject, error = %e, "no JetStream answer; publishing core NATS");
                false
            }
            Err(e) => return Err(OutputError::transient(format!("NATS: {e}"))),
        };
        self.streams
            .insert(subject.to_owned(), (known, Instant::now()));
        Ok(known)
    }
}

#[async_trait]
impl Output for Nats {
    async fn start(&mut self) -> Result<(), OutputError> {
        // Once connected, the client reconnects by itself and keeps what is published meanwhile.
        if self.client.is_some() {
            return Ok(());
        }
        let client = ConnectOptions::new()
            .connection_timeout(CONNECT_TIMEOUT)
            .name("ongwatch")
            .connect(self.settings.url.as_str())
            .await
            .map_err(|e| OutputError::transient(format!("cannot connect to NATS: {e}")))?;
        let jetstream = jetstream::new(client.clone());
        self.client = Some((client, jetstream));
        Ok(())
    }

    async fn deliver(&mut self, batch: &[Delivery]) -> Result<(), OutputError> {
        let Some((client, jetstream)) = self.client.clone() else {
            return Err(OutputError::transient("not connected to NATS"));
        };
        let mut acks: Vec<(usize, PublishAckFuture)> = Vec::new();
        let mut failed: Option<OutputError> = None;
        let mut published_core = false;
        for (i, record) in batch.iter().enumerate() {
            let subject = subject(&self.settings.subject_prefix, &record.message.topic);
            let payload = record.message.payload.clone();
            let sent = match self.has_stream(&client, &jetstream, &subject).await {
                Err(e) => Err(e),
                Ok(true) => {
                    let mut headers = HeaderMap::new();
                    let id = match &record.message.id {
                        Some(id) => id.clone(),
                        None => format!("seq:{}", record.seq),
                    };
                    headers.insert(NATS_MESSAGE_ID, id.as_str());
                    jetstream
                        .publish_with_headers(subject, headers, payload)
                        .await
                        .map(|ack| acks.push((i, ack)))
                        .map_err(|e| OutputError::transient(format!("NATS: {e}")))
                }
                Ok(false) => {
                    published_core = true;
                    client
                        .publish(subject, payload)
                        .await
                        .map_err(|e| OutputError::transient(format!("NATS: {e}")))
                }
            };
            if let Err(e) = sent {
                failed = Some(e.after(i));
                break;
            }
        }
        // Acks come back in order; the first one missing is where a retry starts.
        for (i, ack) in acks {
            if failed.as_ref().is_some_and(|e| e.delivered <= i) {
                break;
            }
            if let Err(e) = ack.await {
                failed = Some(
                    OutputError::transient(format!("NATS: no ack from JetStream: {e}")).after(i),
                );
                break;
            }
        }
        if let Some(e) = failed {
            // A new answer may be due: the stream may have been created or deleted meanwhile.
            self.streams.clear();
            return Err(e);
        }
        if published_core {
            client
                .flush()
                .await
                .map_err(|e| OutputError::transient(format!("NATS: {e}")))?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), OutputError> {
        if let Some((client, _)) = &self.client {
            client
                .flush()
                .await
                .map_err(|e| OutputError::transient(format!("NATS: {e}")))?;
        }
        Ok(())
    }

    fn health(&self) -> Health {
        match &self.client {
            None => Health::Down("not connected".into()),
            Some((client, _)) => match client.connection_state() {
                async_nats::connection::State::Connected => Health::Up,
                state => Health::Down(format!("NATS connection {state:?}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_become_subjects() {
        assert_eq!(
            subject("", "stream/support/cheers"),
            "stream.support.cheers"
        );
        assert_eq!(
            subject("ow.", "stream/raw/twitch/channel.goal.begin"),
            "ow.stream.raw.twitch.channel_goal_begin"
        );
        assert_eq!(subject("", "a//b"), "a._.b");
    }
}
