//! `kind = "nats"`: publish every record on a subject made from its topic (`/` → `.`).
//!
//! When a JetStream stream covers the subject, the publish waits for the stream's ack and
//! carries `Nats-Msg-Id` (the event id, else the seq), so a retry after a lost ack is stored
//! once. Otherwise it is a core publish (at most once, like any core NATS message).
//!
//! Which subjects a stream covers is asked of the JetStream API the first time a subject is
//! seen, and the answer is believed for `RECHECK`; after that it is asked again in the
//! background while publishes go on with the old answer, so no delivery waits for a re-ask.
//! A server without JetStream (nats-server's default) answers the API with "no responders":
//! from then on every subject is published core at once without asking, and the API is asked
//! again in the background every `RECHECK` in case JetStream was turned on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{
    GetStreamByNameErrorKind, RequestError as JetStreamRequestError, RequestErrorKind,
};
use async_nats::jetstream::{self, context::PublishAckFuture};
use async_nats::{Client, ConnectOptions, HeaderMap, header::NATS_MESSAGE_ID};
use async_trait::async_trait;
use serde::Deserialize;
use tokio::task::JoinSet;
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
            streams: Arc::default(),
            asking: JoinSet::new(),
        })
    }
}

struct Nats {
    settings: Settings,
    client: Option<(Client, jetstream::Context)>,
    streams: Arc<Mutex<Streams>>,
    /// Background re-asks of the JetStream API; aborted when the output is dropped.
    asking: JoinSet<()>,
}

/// What the JetStream API said, shared with the background re-asks.
#[derive(Default)]
struct Streams {
    /// When the API last had no responders: the server has no JetStream, so no stream
    /// covers any subject.
    absent_since: Option<Instant>,
    /// Subject → (a stream covers it, when that was learned).
    subjects: HashMap<String, (bool, Instant)>,
    /// Subjects with a re-ask running, so a busy subject is not asked about twice at once.
    asking: HashSet<String>,
}

/// One answer of the JetStream API about one subject.
enum Answer {
    Covered(bool),
    /// No responders: the server runs without JetStream.
    NoJetStream,
    Failed(String),
}

impl Streams {
    /// Takes in an answer; `true` when it changed whether the server has JetStream.
    fn learn(&mut self, subject: &str, answer: &Answer) -> bool {
        let now = Instant::now();
        match answer {
            Answer::Covered(covered) => {
                self.subjects.insert(subject.to_owned(), (*covered, now));
                self.absent_since.take().is_some()
            }
            Answer::NoJetStream => {
                // Whatever was learned about streams no longer holds.
                self.subjects.clear();
                self.absent_since.replace(now).is_none()
            }
            // Believed as "no stream" until the next re-ask, as a core publish beats none.
            Answer::Failed(_) => {
                self.subjects.insert(subject.to_owned(), (false, now));
                false
            }
        }
    }

    fn forget(&mut self) {
        self.subjects.clear();
        self.absent_since = None;
    }
}

/// Asks the JetStream API whether a stream covers `subject`.
async fn ask(jetstream: &jetstream::Context, subject: &str) -> Answer {
    match jetstream.stream_by_subject(subject).await {
        Ok(_) => Answer::Covered(true),
        Err(e) if e.kind() == GetStreamByNameErrorKind::NotFound => Answer::Covered(false),
        Err(e) if no_responders(&e) => Answer::NoJetStream,
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// Whether the error comes from a JetStream API request nobody answered (the server's
/// immediate "no responders" status, not a timeout).
fn no_responders(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<JetStreamRequestError>()
            .is_some_and(|e| e.kind() == RequestErrorKind::NoResponders)
        {
            return true;
        }
        source = e.source();
    }
    false
}

fn log_change(subject: &str, answer: &Answer) {
    match answer {
        Answer::NoJetStream => tracing::info!(
            %subject,
            "NATS server has no JetStream (no responders on its API): publishing core NATS at once; asking again every {} s",
            RECHECK.as_secs()
        ),
        _ => {
            tracing::info!(%subject, "NATS server has JetStream now: asking which streams cover each subject")
        }
    }
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
    fn streams(&self) -> std::sync::MutexGuard<'_, Streams> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a stream covers `subject`. Only a subject never seen before on a server that
    /// may have JetStream waits for the API; anything else is answered from what is known,
    /// with a re-ask started in the background when that is older than `RECHECK`.
    async fn has_stream(
        &mut self,
        client: &Client,
        jetstream: &jetstream::Context,
        subject: &str,
    ) -> Result<bool, OutputError> {
        while self.asking.try_join_next().is_some() {}
        let (known, reask) = {
            let mut streams = self.streams();
            // Without JetStream one re-ask stands for the whole server (key "", no subject).
            let (known, key) = match (streams.subjects.get(subject), streams.absent_since) {
                (Some(&(covered, at)), _) => (Some((covered, at)), subject),
                (None, Some(since)) => (Some((false, since)), ""),
                (None, None) => (None, subject),
            };
            let reask = known.is_some_and(|(_, at)| at.elapsed() >= RECHECK)
                && streams.asking.insert(key.to_owned());
            (known, reask.then(|| key.to_owned()))
        };
        if let Some(key) = reask {
            let (jetstream, shared, subject) =
                (jetstream.clone(), self.streams.clone(), subject.to_owned());
            self.asking.spawn(async move {
                let answer = ask(&jetstream, &subject).await;
                let mut streams = shared.lock().unwrap_or_else(|e| e.into_inner());
                streams.asking.remove(&key);
                if streams.learn(&subject, &answer) {
                    log_change(&subject, &answer);
                }
            });
        }
        if let Some((covered, _)) = known {
            return Ok(covered);
        }
        let answer = ask(jetstream, subject).await;
        if let Answer::Failed(e) = &answer {
            if client.connection_state() != async_nats::connection::State::Connected {
                return Err(OutputError::transient(format!("NATS: {e}")));
            }
            tracing::warn!(%subject, error = %e, "JetStream did not say whether a stream covers the subject; publishing core NATS");
        }
        if self.streams().learn(subject, &answer) {
            log_change(subject, &answer);
        }
        Ok(matches!(answer, Answer::Covered(true)))
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
            self.streams().forget();
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

    #[test]
    fn no_responders_stands_for_every_subject_until_jetstream_answers() {
        let mut streams = Streams::default();
        assert!(!streams.learn("a", &Answer::Covered(true)));
        assert!(streams.learn("b", &Answer::NoJetStream), "a change");
        assert!(
            streams.subjects.is_empty(),
            "what a stream covered no longer holds"
        );
        assert!(streams.absent_since.is_some());
        assert!(!streams.learn("c", &Answer::NoJetStream), "no change");
        assert!(
            streams.learn("c", &Answer::Covered(false)),
            "JetStream is back"
        );
        assert_eq!(streams.absent_since, None);
        assert!(!streams.learn("d", &Answer::Failed("timed out".into())));
        assert_eq!(
            streams.subjects.get("d").map(|&(covered, _)| covered),
            Some(false)
        );
    }
}
