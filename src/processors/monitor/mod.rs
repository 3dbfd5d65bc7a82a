//! The stream monitor: online / offline of many channels, retained `R/status` per channel.
//!
//! Two ways to learn about a channel:
//!
//! - **EventSub** `stream.online` / `stream.offline`: only for the broadcaster's own channel,
//!   which the Twitch provider's connection already subscribes to at cost 0. Other channels
//!   would cost 1 each out of a total of 10 per WebSocket, so they are polled instead.
//! - **Helix Get Streams** polling: up to 100 logins per call, every `polling_interval`
//!   seconds, stretched when needed to stay within [`BUDGET_PER_MINUTE`].
//!
//! Every channel is polled: that is what refreshes the viewers while live and finds the state
//! at start-up. Whether a poll may also *decide* a transition depends on `method`: a channel
//! covered by EventSub leaves transitions to EventSub, because Get Streams lags behind it
//! by up to minutes and would otherwise announce a stale state.
//!
//! Exactly once per transition: the last known state of each channel is kept in
//! `<state dir>/monitor.json`, written after the transition is published. Event ids are stable
//! per transition (`monitor:<channel>:online:<started_at>`), so a crash between publishing and
//! saving is caught by the hub's dedup, which is seeded from the event log at start. A channel
//! seen for the first time is taken as it is, without an event: a stream that has been live
//! for hours is not announced as if it just started.

mod poller;
mod tracker;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::credentials::ProviderCredentials;
use crate::event::{
    Event, EventKind, Kind, Offline, Online, SessionPhase, SharedChatSession, Status, format_time,
};
use crate::hub::{BoundedQueue, Delivery, Publisher};
use crate::net::http_client;
use crate::section::Section;
use crate::sources::twitch::auth::{Account, StoredToken};
use crate::sources::twitch::config::TwitchConfig;
use crate::sources::twitch::helix::{Helix, HelixError};

/// The file in the state dir.
pub const FILE: &str = "monitor.json";
/// Logins per Get Streams call (Twitch's maximum).
pub const BATCH: usize = 100;
/// Get Streams calls per minute the monitor allows itself: half of Twitch's 800 points per
/// minute and token, the rest is left to EventSub and chat.
pub const BUDGET_PER_MINUTE: f64 = 400.0;
/// The events' provider: the data is Twitch's.
const PROVIDER: &str = "twitch";

/// How transitions are detected (`[monitor] method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Per channel: EventSub while it covers the channel, polling otherwise.
    #[default]
    Auto,
    /// EventSub decides for the broadcaster's channel even while it is down; other channels
    /// cannot use it at cost 0 and are polled.
    Eventsub,
    /// Polling decides for every channel.
    Polling,
}

/// `[monitor]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Channel logins to watch; empty: the monitor is off.
    pub channels: Vec<String>,
    pub method: Method,
    /// Seconds between two Get Streams rounds.
    pub polling_interval: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            method: Method::Auto,
            polling_interval: 60.0,
        }
    }
}

impl MonitorConfig {
    /// The channels as logins, deduplicated, in the given order.
    pub fn logins(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.channels
            .iter()
            .filter_map(|c| crate::sources::twitch::irc::channel_login(c))
            .filter(|login| seen.insert(login.clone()))
            .collect()
    }
}

use poller::*;
use tracker::*;

/// Everything the monitor needs from the config, the credentials and the state dir.
#[derive(Debug, Clone)]
pub struct Settings {
    pub channels: Vec<String>,
    pub method: Method,
    pub interval: Duration,
    /// `<api_url>/streams`
    pub streams_url: String,
    /// `None`: no Twitch app in credentials.toml, so nothing can be polled.
    pub client_id: Option<String>,
    /// `environment = "localdev"`: the placeholder token, no login.
    pub localdev: bool,
    pub state_dir: PathBuf,
    /// `[twitch] channel`: the broadcaster until the Twitch provider names it.
    pub broadcaster: Option<String>,
}

impl Settings {
    /// `None` when `[monitor] channels` is empty. `app`: the `[twitch.<environment>]`
    /// credentials; `localdev`: `environment = "localdev"`.
    pub fn from_config(
        monitor: &MonitorConfig,
        twitch: &TwitchConfig,
        app: Option<&ProviderCredentials>,
        localdev: bool,
        state_dir: &Path,
    ) -> Option<Self> {
        let channels = monitor.logins();
        if channels.is_empty() {
            return None;
        }
        let client_id = app
            .and_then(|c| c.client_id.clone())
            .filter(|c| !c.is_empty());
        Some(Self {
            channels,
            method: monitor.method,
            interval: Duration::try_from_secs_f64(monitor.polling_interval)
                .unwrap_or(Duration::from_secs(60)),
            streams_url: format!("{}/streams", twitch.api_url.trim_end_matches('/')),
            client_id,
            localdev,
            state_dir: state_dir.to_path_buf(),
            broadcaster: crate::sources::twitch::irc::channel_login(&twitch.channel),
        })
    }

    /// The configured interval, stretched so that one round of `batches` calls stays within
    /// the budget.
    fn round_interval(&self) -> Duration {
        let batches = self.channels.len().div_ceil(BATCH).max(1) as f64;
        self.interval
            .max(Duration::from_secs_f64(batches * 60.0 / BUDGET_PER_MINUTE))
    }
}

/// Runs until the hub closes `queue`; polls until `stop` (the sources' shutdown).
pub async fn run(
    queue: Arc<BoundedQueue<Delivery>>,
    publisher: Publisher,
    settings: Settings,
    stop: CancellationToken,
) {
    let path = settings.state_dir.join(FILE);
    let saved = load(&path);
    let helix = settings.client_id.as_ref().map(|client_id| {
        Helix::new(
            http_client(),
            settings.streams_url.clone(),
            client_id.clone(),
        )
    });
    if helix.is_none() {
        tracing::warn!(
            "monitor: credentials.toml has no Twitch client_id for this environment, so Get Streams cannot be polled; only EventSub's online/offline of the broadcaster's channel are seen"
        );
    }
    let mut monitor = Monitor {
        broadcaster: settings.broadcaster.clone(),
        tracker: Tracker::new(saved),
        publisher,
        helix,
        path,
        covered: None,
        problem: None,
        poll_now: false,
        settings,
    };
    for channel in &monitor.settings.channels {
        tracing::info!(channel = %channel, "monitor: {channel} via {}", monitor.describe(channel));
    }
    if monitor.settings.round_interval() > monitor.settings.interval {
        tracing::warn!(
            "monitor: {} channels need {} Get Streams calls per round; polling every {:.1?} to stay within {BUDGET_PER_MINUTE} calls per minute",
            monitor.settings.channels.len(),
            monitor.settings.channels.len().div_ceil(BATCH),
            monitor.settings.round_interval()
        );
    }
    // Once: the hub drops those the log already has, and a copy that stayed marked could be
    // published again after the dedup window has forgotten it.
    let unannounced = std::mem::take(&mut monitor.tracker.unannounced);
    if !unannounced.is_empty() {
        tracing::info!(
            count = unannounced.len(),
            "monitor: publishing again the transitions a crash may have kept out of the log"
        );
        for event in unannounced {
            if monitor.publisher.event(event).await.is_err() {
                return;
            }
        }
        monitor.save().await;
    }
    let restored = monitor.tracker.restore(&monitor.settings.channels);
    if !monitor
        .publish(Change {
            events: restored,
            save: false,
        })
        .await
    {
        return;
    }
    let provider_filter = monitor
        .publisher
        .root()
        .filter_suffix("system/providers/twitch");
    let mut polling = true;
    let mut next_poll = Instant::now();
    loop {
        tokio::select! {
            record = queue.pop() => {
                let Some(record) = record else { break };
                queue.mark_delivered(1);
                if !monitor.observe(&record, &provider_filter).await {
                    break;
                }
                if std::mem::take(&mut monitor.poll_now) {
                    next_poll = Instant::now();
                }
            }
            () = tokio::time::sleep_until(next_poll), if polling => {
                // A call in flight may take up to the HTTP timeout; shutdown does not wait.
                tokio::select! {
                    round = monitor.poll_round() => match round {
                        Ok(wait) => next_poll = Instant::now() + wait,
                        Err(()) => break,
                    },
                    () = stop.cancelled() => polling = false,
                }
            }
            () = stop.cancelled(), if polling => polling = false,
        }
    }
    monitor.save().await;
}

impl Section for MonitorConfig {
    const KEY: &'static str = "monitor";

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for channel in &self.channels {
            if crate::sources::twitch::irc::channel_login(channel).is_none() {
                problems.push((
                    "monitor.channels".into(),
                    format!("{channel:?} is not a Twitch channel; use logins, e.g. [\"ninja\"]"),
                ));
            }
        }
        if !(self.polling_interval.is_finite() && (0.1..=86_400.0).contains(&self.polling_interval))
        {
            problems.push((
                "monitor.polling_interval".into(),
                format!(
                    "{} is out of range; use seconds from 0.1 to 86400, e.g. 60",
                    self.polling_interval
                ),
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(started_at: &str, viewers: u64) -> Stream {
        Stream {
            user_login: "ninja".into(),
            kind: "live".into(),
            title: "title".into(),
            game_name: "Fortnite".into(),
            viewer_count: viewers,
            started_at: started_at.into(),
        }
    }

    fn kinds(change: &Change) -> Vec<(Kind, String)> {
        change
            .events
            .iter()
            .map(|e| (e.kind.kind(), e.id.clone()))
            .collect()
    }

    #[test]
    fn first_sighting_is_a_baseline_and_transitions_happen_once() {
        let mut tracker = Tracker::default();
        let live = stream("2026-03-13T20:00:00Z", 10);
        let first = tracker.poll("ninja", Some(&live), true);
        assert_eq!(first.events.len(), 1);
        assert_eq!(first.events[0].kind.kind(), Kind::Status);
        assert!(first.save);

        // Viewers change: a status, no transition.
        let more = tracker.poll("ninja", Some(&stream("2026-03-13T20:00:00Z", 20)), true);
        assert_eq!(kinds(&more).len(), 1);
        assert!(!more.save);
        assert!(
            tracker
                .poll("ninja", Some(&stream("2026-03-13T20:00:00Z", 20)), true)
                .events
                .is_empty()
        );

        let off = tracker.poll("ninja", None, true);
        let ids: Vec<String> = off.events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(off.events[0].kind.kind(), Kind::Status);
        assert_eq!(ids[1], "monitor:ninja:offline:2026-03-13T20:00:00Z");
        assert!(tracker.poll("ninja", None, true).events.is_empty());

        let on = tracker.poll("ninja", Some(&stream("2026-03-14T20:00:00Z", 1)), true);
        assert_eq!(on.events[1].id, "monitor:ninja:online:2026-03-14T20:00:00Z");
        assert!(on.save);
    }

    #[test]
    fn a_restart_while_live_publishes_no_second_online() {
        let mut before = Tracker::default();
        before.poll("ninja", None, true);
        before.poll("ninja", Some(&stream("2026-03-13T20:00:00Z", 10)), true);
        let mut after = Tracker::new(before.saved());
        let restored = after.restore(&["ninja".into()]);
        assert_eq!(restored.len(), 1);
        let change = after.poll("ninja", Some(&stream("2026-03-13T20:00:00Z", 10)), true);
        assert!(change.events.is_empty(), "{:?}", kinds(&change));
    }

    #[test]
    fn a_stream_that_restarted_while_ongwatch_was_down_ends_and_begins() {
        let mut before = Tracker::default();
        before.poll("ninja", Some(&stream("2026-03-13T20:00:00Z", 10)), true);
        let mut after = Tracker::new(before.saved());
        let change = after.poll("ninja", Some(&stream("2026-03-13T23:00:00Z", 10)), false);
        let ids: Vec<String> = change.events.iter().map(|e| e.id.clone()).collect();
        assert_eq!(
            ids[1..],
            [
                "monitor:ninja:offline:2026-03-13T20:00:00Z".to_owned(),
                "monitor:ninja:online:2026-03-13T23:00:00Z".to_owned()
            ]
        );
    }

    #[test]
    fn eventsub_decides_and_a_lagging_poll_does_not_undo_it() {
        let mut tracker = Tracker::default();
        tracker.poll("me", None, false);
        let online = Event::new(
            "twitch:abc",
            "twitch",
            "me",
            EventKind::Online(Online {
                started_at: Some("2026-03-13T20:00:00Z".into()),
                title: None,
                category: None,
            }),
        );
        let adopted = tracker.adopt(&online);
        assert_eq!(adopted.events.len(), 1);
        assert!(adopted.save);
        assert!(tracker.adopt(&online).events.is_empty());
        // Get Streams does not list it yet: nothing changes while EventSub decides.
        assert!(tracker.poll("me", None, false).events.is_empty());
        // Then it does: details only.
        let details = tracker.poll("me", Some(&stream("2026-03-13T20:00:00Z", 5)), false);
        assert_eq!(kinds(&details).len(), 1);
        assert_eq!(details.events[0].kind.kind(), Kind::Status);
        // Had polling decided, the same stream would not be a new transition either.
        assert!(
            tracker
                .poll("me", Some(&stream("2026-03-13T20:00:00Z", 5)), true)
                .events
                .is_empty()
        );
    }

    #[test]
    fn status_names_the_shared_chat_session_until_it_ends() {
        use crate::event::{SharedChat, SharedChatParticipant};
        let mut tracker = Tracker::default();
        tracker.poll("me", None, false);
        let session = |phase| {
            Event::new(
                "twitch:sc",
                "twitch",
                "me",
                EventKind::SharedChat(SharedChat {
                    phase,
                    session_id: "s1".into(),
                    host_channel: None,
                    host_channel_id: None,
                    participants: if phase == SessionPhase::End {
                        vec![]
                    } else {
                        vec![SharedChatParticipant {
                            channel: "partner".into(),
                            channel_id: "2".into(),
                        }]
                    },
                }),
            )
        };
        let status = |change: Change| match &change.events[0].kind {
            EventKind::Status(s) => s.clone(),
            other => panic!("{other:?}"),
        };
        let begun = status(tracker.adopt(&session(SessionPhase::Begin)));
        let shared = begun.shared_chat.unwrap();
        assert_eq!(
            (shared.session_id.as_str(), shared.participants.len()),
            ("s1", 1)
        );
        assert!(
            tracker
                .adopt(&session(SessionPhase::Begin))
                .events
                .is_empty()
        );
        assert_eq!(
            status(tracker.adopt(&session(SessionPhase::End))).shared_chat,
            None
        );
    }

    #[test]
    fn config_problems_name_the_key() {
        let config = MonitorConfig {
            channels: vec!["not a channel".into()],
            method: Method::Auto,
            polling_interval: 0.0,
        };
        let keys: Vec<String> = config.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["monitor.channels", "monitor.polling_interval"]);
    }

    #[test]
    fn many_channels_stretch_the_interval_to_the_budget() {
        let settings = Settings {
            channels: (0..1000).map(|i| format!("c{i}")).collect(),
            method: Method::Polling,
            interval: Duration::from_secs(1),
            streams_url: String::new(),
            client_id: None,
            localdev: false,
            state_dir: PathBuf::new(),
            broadcaster: None,
        };
        // 10 calls per round at 400 per minute: one round per 1.5 s at most.
        assert_eq!(settings.round_interval(), Duration::from_millis(1500));
    }
}
