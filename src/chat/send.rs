//! The send path behind `R/command/chat/send`: one lane per (sender account, channel), each
//! with a bounded queue and its own rate-limit window, and one result per request on
//! `R/command/chat/send/result`.
//!
//! A lane sends its requests strictly in order. Before each message it asks the transport
//! whether the account is a moderator or the broadcaster there (100 messages per 30 s) or not
//! (20 per 30 s) and waits for a token of its window. Messages longer than 500 characters go
//! out as several messages, each counted. A full queue is answered at once with an error result;
//! nothing is dropped silently.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Duration;
use tokio_util::sync::CancellationToken;

use super::split::{MAX_CHARS, split};
use crate::event::TopicRoot;
use crate::hub::{BusClosed, Message, Origin, Publisher};
use crate::limiter::Window;
use crate::sources::twitch::auth::Account;
use crate::sources::twitch::irc::channel_login;

/// Twitch's message window.
pub const PERIOD: Duration = Duration::from_secs(30);
/// Messages per window as an ordinary user.
pub const NORMAL_LIMIT: usize = 20;
/// Messages per window as a moderator or the broadcaster of the channel.
pub const PRIVILEGED_LIMIT: usize = 100;
/// Requests one lane holds before answering "queue full".
pub const LANE_QUEUE: usize = 100;

/// `R/command/chat/send`.
#[derive(Debug, Clone, Deserialize)]
pub struct SendRequest {
    pub message: String,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default, rename = "as")]
    pub account: Option<Account>,
    /// The message id to reply to.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Correlation id, echoed in the result; one is made up when missing.
    #[serde(default, deserialize_with = "id_text")]
    pub id: Option<String>,
}

/// Bots send ids as strings or numbers; both are kept as text.
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    })
}

/// Why Twitch did not deliver a message it accepted (Helix `drop_reason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropReason {
    pub code: String,
    pub message: String,
}

/// What one transport call did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// `helix` or `irc`.
    pub via: &'static str,
    pub message_id: Option<String>,
    pub is_sent: bool,
    pub drop_reason: Option<DropReason>,
}

/// `R/command/chat/send/result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// The request's `id`.
    pub id: String,
    pub channel: String,
    /// The account that sent (or would have sent) it.
    #[serde(rename = "as")]
    pub account: Option<Account>,
    /// True when every part went out.
    pub is_sent: bool,
    /// How many messages the request became (over 500 characters: several).
    pub parts: usize,
    pub sent_parts: usize,
    /// Twitch's ids of the sent messages (Helix only; IRC does not tell).
    pub message_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_reason: Option<DropReason>,
    /// Why nothing (or not everything) was sent, when Twitch gave no drop reason: a full
    /// queue, no account that can send, a refused or failed call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How messages reach Twitch; the daemon's is Helix with IRC as fallback, tests use fakes.
#[async_trait::async_trait]
pub trait Transport: Send + Sync + 'static {
    /// The account that sends a request asking for `requested`, or why none can.
    fn sender(&self, requested: Option<Account>) -> Result<Account, String>;
    /// A lane for (`sender`, `channel`) starts: e.g. join the channel to learn our role there.
    fn open(&self, sender: Account, channel: &str);
    /// Moderator or broadcaster in `channel`: the higher limit applies.
    fn privileged(&self, sender: Account, channel: &str) -> bool;
    async fn send(
        &self,
        sender: Account,
        channel: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<Sent, String>;
}

struct Job {
    id: String,
    message: String,
    reply_to: Option<String>,
}

/// Keyed by the account's name (`Account` is not hashable) and the channel.
type Lanes = HashMap<(&'static str, String), mpsc::Sender<Job>>;

/// Accepts send requests; cheap to share.
pub struct ChatSender {
    transport: Arc<dyn Transport>,
    publisher: Publisher,
    root: TopicRoot,
    lanes: Mutex<Lanes>,
    shutdown: CancellationToken,
}

impl ChatSender {
    pub fn new(
        transport: Arc<dyn Transport>,
        publisher: Publisher,
        root: TopicRoot,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            transport,
            publisher,
            root,
            lanes: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// Queues a request (the channel defaults to `default_channel`), or publishes at once why
    /// it cannot be queued.
    pub async fn submit(
        &self,
        request: SendRequest,
        default_channel: &str,
    ) -> Result<(), BusClosed> {
        let id = request
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let wanted = request.channel.as_deref().unwrap_or(default_channel);
        let refuse = |channel: String, account: Option<Account>, error: String| SendResult {
            id: id.clone(),
            channel,
            account,
            is_sent: false,
            parts: 0,
            sent_parts: 0,
            message_ids: Vec::new(),
            via: None,
            drop_reason: None,
            error: Some(error),
        };
        let Some(channel) = channel_login(wanted) else {
            let error = format!("{wanted:?} is not a Twitch channel; use the channel's login");
            return self.publish(&refuse(wanted.to_owned(), None, error)).await;
        };
        if request.message.trim().is_empty() {
            let error = "the message is empty".to_owned();
            return self.publish(&refuse(channel, None, error)).await;
        }
        let account = match self.transport.sender(request.account) {
            Ok(account) => account,
            Err(error) => return self.publish(&refuse(channel, request.account, error)).await,
        };
        let job = Job {
            id: id.clone(),
            message: request.message,
            reply_to: request.reply_to,
        };
        let queued = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let lane = lanes
                .entry((account.name(), channel.clone()))
                .or_insert_with(|| self.open_lane(account, &channel));
            lane.try_send(job)
        };
        match queued {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let error = format!(
                    "queue full: {LANE_QUEUE} messages to #{channel} as {} are waiting for the rate limit; retry later",
                    account.name()
                );
                self.publish(&refuse(channel, Some(account), error)).await
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let error = "the daemon is shutting down".to_owned();
                self.publish(&refuse(channel, Some(account), error)).await
            }
        }
    }

    fn open_lane(&self, account: Account, channel: &str) -> mpsc::Sender<Job> {
        let (tx, rx) = mpsc::channel(LANE_QUEUE);
        let lane = Lane {
            transport: self.transport.clone(),
            publisher: self.publisher.clone(),
            root: self.root.clone(),
            account,
            channel: channel.to_owned(),
            window: Window::new(NORMAL_LIMIT, PERIOD),
        };
        tokio::spawn(lane.run(rx, self.shutdown.clone()));
        tx
    }

    async fn publish(&self, result: &SendResult) -> Result<(), BusClosed> {
        publish(&self.publisher, &self.root, result).await
    }
}

async fn publish(
    publisher: &Publisher,
    root: &TopicRoot,
    result: &SendResult,
) -> Result<(), BusClosed> {
    let payload = serde_json::to_vec(result).unwrap_or_default();
    // No hub id: the result carries the request's id, which the hub already saw on the request
    // and would otherwise drop as a duplicate.
    publisher
        .message(Message {
            topic: root.topic(&result.channel, "command/chat/send/result"),
            payload: Bytes::from(payload),
            retain: false,
            origin: Origin::Daemon,
            id: None,
        })
        .await
}

struct Lane {
    transport: Arc<dyn Transport>,
    publisher: Publisher,
    root: TopicRoot,
    account: Account,
    channel: String,
    window: Window,
}

impl Lane {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>, shutdown: CancellationToken) {
        self.transport.open(self.account, &self.channel);
        loop {
            let job = tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
                () = shutdown.cancelled() => return,
            };
            let result = tokio::select! {
                result = self.send(job) => result,
                () = shutdown.cancelled() => return,
            };
            if publish(&self.publisher, &self.root, &result).await.is_err() {
                return;
            }
        }
    }

    async fn send(&mut self, job: Job) -> SendResult {
        let parts = split(&job.message, MAX_CHARS);
        let mut result = SendResult {
            id: job.id,
            channel: self.channel.clone(),
            account: Some(self.account),
            is_sent: false,
            parts: parts.len(),
            sent_parts: 0,
            message_ids: Vec::new(),
            via: None,
            drop_reason: None,
            error: None,
        };
        for (i, part) in parts.iter().enumerate() {
            let limit = if self.transport.privileged(self.account, &self.channel) {
                PRIVILEGED_LIMIT
            } else {
                NORMAL_LIMIT
            };
            self.window.set_limit(limit);
            self.window.take().await;
            // Only the first part is the reply; the rest continue it.
            let reply_to = job.reply_to.as_deref().filter(|_| i == 0);
            match self
                .transport
                .send(self.account, &self.channel, part, reply_to)
                .await
            {
                Ok(sent) => {
                    result.via = Some(sent.via.to_owned());
                    result.message_ids.extend(sent.message_id);
                    if !sent.is_sent {
                        result.drop_reason = sent.drop_reason;
                        break;
                    }
                    result.sent_parts += 1;
                }
                Err(error) => {
                    result.error = Some(error);
                    break;
                }
            }
        }
        result.is_sent = result.sent_parts == result.parts;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Hub, OverflowPolicy};
    use tokio::time::Instant;

    struct Fake {
        start: Instant,
        sent: Mutex<Vec<(Duration, String)>>,
        privileged: bool,
    }

    #[async_trait::async_trait]
    impl Transport for Fake {
        fn sender(&self, requested: Option<Account>) -> Result<Account, String> {
            match requested {
                Some(Account::Broadcaster) => Err("no broadcaster login".into()),
                _ => Ok(Account::Bot),
            }
        }
        fn open(&self, _: Account, _: &str) {}
        fn privileged(&self, _: Account, _: &str) -> bool {
            self.privileged
        }
        async fn send(
            &self,
            _: Account,
            _: &str,
            text: &str,
            _: Option<&str>,
        ) -> Result<Sent, String> {
            self.sent
                .lock()
                .unwrap()
                .push((Instant::now() - self.start, text.to_owned()));
            Ok(Sent {
                via: "irc",
                message_id: None,
                is_sent: true,
                drop_reason: None,
            })
        }
    }

    fn setup(
        privileged: bool,
    ) -> (
        Arc<Fake>,
        ChatSender,
        Arc<crate::hub::BoundedQueue<crate::hub::Delivery>>,
    ) {
        let mut hub = Hub::new(
            TopicRoot::new("stream").unwrap(),
            false,
            std::time::Duration::from_secs(60),
            0,
        );
        let out = hub.add_output("test", 10_000, OverflowPolicy::Block, true);
        let publisher = hub.publisher();
        tokio::spawn(hub.run(CancellationToken::new()));
        let fake = Arc::new(Fake {
            start: Instant::now(),
            sent: Mutex::new(Vec::new()),
            privileged,
        });
        let sender = ChatSender::new(
            fake.clone(),
            publisher,
            TopicRoot::new("stream").unwrap(),
            CancellationToken::new(),
        );
        (fake, sender, out)
    }

    fn request(message: &str, id: &str) -> SendRequest {
        SendRequest {
            message: message.into(),
            channel: None,
            account: None,
            reply_to: None,
            id: Some(id.into()),
        }
    }

    async fn results(
        out: &crate::hub::BoundedQueue<crate::hub::Delivery>,
        n: usize,
    ) -> Vec<SendResult> {
        let mut all = Vec::new();
        while all.len() < n {
            let record = out.pop().await.unwrap();
            assert_eq!(record.message.topic, "stream/command/chat/send/result");
            all.push(serde_json::from_slice(&record.message.payload).unwrap());
        }
        all
    }

    #[tokio::test(start_paused = true)]
    async fn burst_of_50_as_a_normal_user_goes_out_20_per_30_seconds_in_order() {
        let (fake, sender, out) = setup(false);
        for i in 0..50 {
            sender
                .submit(request(&format!("m{i}"), &format!("r{i}")), "chan")
                .await
                .unwrap();
        }
        let results = results(&out, 50).await;
        assert!(results.iter().all(|r| r.is_sent && r.channel == "chan"));
        let ids: Vec<_> = results.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, (0..50).map(|i| format!("r{i}")).collect::<Vec<_>>());

        let sent = fake.sent.lock().unwrap().clone();
        let texts: Vec<_> = sent.iter().map(|(_, t)| t.clone()).collect();
        assert_eq!(texts, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
        let in_window = |from: u64| {
            sent.iter()
                .filter(|(at, _)| {
                    *at >= Duration::from_secs(from) && *at < Duration::from_secs(from + 30)
                })
                .count()
        };
        assert_eq!((in_window(0), in_window(30), in_window(60)), (20, 20, 10));
    }

    #[tokio::test(start_paused = true)]
    async fn moderators_get_100_per_window() {
        let (fake, sender, out) = setup(true);
        for i in 0..101 {
            sender
                .submit(request("hi", &format!("r{i}")), "chan")
                .await
                .unwrap();
        }
        results(&out, 101).await;
        let sent = fake.sent.lock().unwrap().clone();
        let first_window = sent
            .iter()
            .filter(|(at, _)| *at < Duration::from_secs(30))
            .count();
        assert_eq!(first_window, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_is_answered_at_once() {
        let (fake, sender, out) = setup(false);
        // Submitting never yields here, so the new lane takes nothing off its queue before the
        // loop ends: the queue holds LANE_QUEUE and the one after is refused.
        for i in 0..=LANE_QUEUE {
            sender
                .submit(request("hi", &format!("r{i}")), "chan")
                .await
                .unwrap();
        }
        let first = results(&out, 1).await.remove(0);
        assert_eq!(first.id, format!("r{LANE_QUEUE}"));
        assert!(!first.is_sent);
        assert!(first.error.unwrap().starts_with("queue full"));
        results(&out, LANE_QUEUE).await;
        assert_eq!(fake.sent.lock().unwrap().len(), LANE_QUEUE);
    }

    #[tokio::test(start_paused = true)]
    async fn long_messages_are_split_and_refusals_reported() {
        let (fake, sender, out) = setup(false);
        let long = "word ".repeat(150);
        sender.submit(request(&long, "long"), "chan").await.unwrap();
        let mut refused = request("hi", "bc");
        refused.account = Some(Account::Broadcaster);
        sender.submit(refused, "chan").await.unwrap();
        let mut bad = request("hi", "bad");
        bad.channel = Some("not a channel".into());
        sender.submit(bad, "chan").await.unwrap();

        let mut results = results(&out, 3).await;
        results.sort_by(|a, b| a.id.cmp(&b.id));
        let [bad, bc, long] = results.try_into().unwrap();
        assert_eq!(
            bad.error.as_deref(),
            Some("\"not a channel\" is not a Twitch channel; use the channel's login")
        );
        assert_eq!(bc.error.as_deref(), Some("no broadcaster login"));
        assert_eq!((long.parts, long.sent_parts, long.is_sent), (2, 2, true));
        let sent = fake.sent.lock().unwrap().clone();
        assert!(sent.iter().all(|(_, t)| t.chars().count() <= MAX_CHARS));
        assert_eq!(sent.len(), 2);
    }
}
