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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Credentials};
use crate::event::{
    Event, EventKind, Kind, Offline, Online, SessionPhase, SharedChatSession, Status, format_time,
};
use crate::hub::{BoundedQueue, Delivery, Publisher};
use crate::sources::twitch::auth::{Account, StoredToken};
use crate::sources::twitch::helix::{Helix, HelixError, http_client};

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

    pub fn problems(&self) -> Vec<(String, String)> {
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

/// What the monitor knows of one channel; this is what `monitor.json` keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Known {
    live: bool,
    /// The current (or, when offline, the last) stream's start: names the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    viewers: u64,
    /// The Twitch shared chat session the channel is in, from `R/channel/shared_chat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared_chat: Option<SharedChatSession>,
}

impl Known {
    fn status(&self) -> Status {
        Status {
            live: self.live,
            title: self.title.clone(),
            category: self.category.clone(),
            viewers: if self.live { self.viewers } else { 0 },
            started_at: self.started_at.clone().filter(|_| self.live),
            shared_chat: self.shared_chat.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    channels: BTreeMap<String, Known>,
    /// Transitions saved as known but not yet seen back from the hub (so maybe not logged):
    /// published again at the next start, where the hub drops those it already logged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unannounced: Vec<Event>,
}

/// One stream as Get Streams lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Stream {
    pub user_login: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub game_name: String,
    #[serde(default)]
    pub viewer_count: u64,
    #[serde(default)]
    pub started_at: String,
}

#[derive(Deserialize)]
struct Streams {
    #[serde(default)]
    data: Vec<Stream>,
}

/// The pure part: what a poll or a bus event changes, and which events that makes.
#[derive(Debug, Default)]
struct Tracker {
    known: BTreeMap<String, Known>,
    /// See [`Saved::unannounced`].
    unannounced: Vec<Event>,
    /// Channels polled successfully at least once in this run.
    polled: HashSet<String>,
    /// The status last published per channel in this run.
    published: HashMap<String, Status>,
}

/// Events to publish, in order, and whether the state file must be written now.
#[derive(Debug, Default)]
struct Change {
    events: Vec<Event>,
    save: bool,
}

/// Every event id of the monitor starts with this.
const ID_PREFIX: &str = "monitor:";

/// An online or offline of the monitor's own (not a status update).
fn is_transition(event: &Event) -> bool {
    event.id.starts_with(ID_PREFIX)
        && matches!(event.kind, EventKind::Online(_) | EventKind::Offline(_))
}

fn online_event(channel: &str, known: &Known) -> Event {
    let started_at = known.started_at.clone().unwrap_or_default();
    Event::new(
        format!("{ID_PREFIX}{channel}:online:{started_at}"),
        PROVIDER,
        channel,
        EventKind::Online(Online {
            started_at: known.started_at.clone(),
            title: Some(known.title.clone()),
            category: Some(known.category.clone()),
        }),
    )
}

fn offline_event(channel: &str, ended: &Known) -> Event {
    let started_at = ended.started_at.clone().unwrap_or_default();
    Event::new(
        format!("{ID_PREFIX}{channel}:offline:{started_at}"),
        PROVIDER,
        channel,
        EventKind::Offline(Offline {}),
    )
}

impl Tracker {
    fn new(saved: Saved) -> Self {
        Self {
            known: saved.channels,
            unannounced: saved.unannounced,
            ..Self::default()
        }
    }

    fn saved(&self) -> Saved {
        Saved {
            channels: self.known.clone(),
            unannounced: self.unannounced.clone(),
        }
    }

    /// The status event if `channel`'s status differs from what was last published.
    fn status_change(&mut self, channel: &str) -> Option<Event> {
        let status = self.known.get(channel)?.status();
        if self.published.get(channel) == Some(&status) {
            return None;
        }
        self.published.insert(channel.to_owned(), status.clone());
        Some(Event::new(
            format!(
                "{ID_PREFIX}{channel}:status:{}",
                uuid::Uuid::new_v4().simple()
            ),
            PROVIDER,
            channel,
            EventKind::Status(status),
        ))
    }

    /// The state of the known channels as they were before this run, published again at start.
    fn restore(&mut self, channels: &[String]) -> Vec<Event> {
        channels
            .iter()
            .filter_map(|channel| self.status_change(channel))
            .collect()
    }

    /// One poll's answer for `channel`: its stream, or `None` when it is not live.
    /// `decides`: whether this poll may publish a transition (see the module docs).
    fn poll(&mut self, channel: &str, stream: Option<&Stream>, decides: bool) -> Change {
        let first = self.polled.insert(channel.to_owned());
        let decides = decides || first;
        let mut change = Change::default();
        let Some(known) = self.known.get_mut(channel) else {
            // Seen for the first time ever: the baseline, not a transition.
            self.known.insert(channel.to_owned(), from_stream(stream));
            change.save = true;
            change.events.extend(self.status_change(channel));
            return change;
        };
        let mut transition = Vec::new();
        match stream {
            Some(stream) => {
                let same = known.live
                    && known
                        .started_at
                        .as_deref()
                        .is_none_or(|s| s == stream.started_at);
                if same || (!decides && known.live) {
                    // Details of the stream we know (Get Streams may lag behind EventSub's
                    // start time; the id of the transition keeps the first one).
                    known
                        .started_at
                        .get_or_insert_with(|| stream.started_at.clone());
                    known.title.clone_from(&stream.title);
                    known.category.clone_from(&stream.game_name);
                    known.viewers = stream.viewer_count;
                } else if decides {
                    if known.live {
                        // A new stream began while the old one was not seen ending.
                        transition.push(offline_event(channel, known));
                    }
                    *known = Known {
                        shared_chat: known.shared_chat.take(),
                        ..from_stream(Some(stream))
                    };
                    transition.push(online_event(channel, known));
                    tracing::info!(channel, started_at = %stream.started_at, "monitor: went live (Get Streams)");
                    change.save = true;
                }
            }
            None if known.live && decides => {
                transition.push(offline_event(channel, known));
                known.live = false;
                known.viewers = 0;
                tracing::info!(channel, "monitor: went offline (Get Streams)");
                change.save = true;
            }
            None => {}
        }
        change.events.extend(self.status_change(channel));
        change.events.extend(transition);
        change
    }

    /// An `online` / `offline` someone else published (EventSub through the Twitch
    /// provider) for a monitored channel: adopted, so polling does not report the same
    /// transition again.
    fn adopt(&mut self, event: &Event) -> Change {
        let mut change = Change::default();
        let known = self.known.entry(event.channel.clone()).or_default();
        match &event.kind {
            EventKind::Online(online) => {
                let started_at = online
                    .started_at
                    .clone()
                    .unwrap_or_else(|| format_time(&event.time));
                if known.live && known.started_at.as_deref() == Some(started_at.as_str()) {
                    return change;
                }
                known.live = true;
                known.started_at = Some(started_at);
                if let Some(title) = &online.title {
                    known.title.clone_from(title);
                }
                if let Some(category) = &online.category {
                    known.category.clone_from(category);
                }
            }
            EventKind::Offline(_) if known.live => {
                known.live = false;
                known.viewers = 0;
            }
            EventKind::SharedChat(shared) => {
                let session = match shared.phase {
                    SessionPhase::Begin | SessionPhase::Update => Some(SharedChatSession {
                        session_id: shared.session_id.clone(),
                        participants: shared.participants.clone(),
                    }),
                    SessionPhase::End => None,
                };
                if known.shared_chat == session {
                    return change;
                }
                known.shared_chat = session;
            }
            _ => return change,
        }
        tracing::info!(channel = %event.channel, id = %event.id, "monitor: {} per {}", event.kind.kind().type_name(), event.provider);
        change.save = true;
        change.events.extend(self.status_change(&event.channel));
        change
    }
}

fn from_stream(stream: Option<&Stream>) -> Known {
    match stream {
        Some(stream) => Known {
            live: true,
            started_at: Some(stream.started_at.clone()),
            title: stream.title.clone(),
            category: stream.game_name.clone(),
            viewers: stream.viewer_count,
            shared_chat: None,
        },
        None => Known::default(),
    }
}

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
    /// `None` when `[monitor] channels` is empty.
    pub fn from_config(
        config: &Config,
        credentials: &Credentials,
        state_dir: &Path,
    ) -> Option<Self> {
        let channels = config.monitor.logins();
        if channels.is_empty() {
            return None;
        }
        let client_id = credentials
            .get("twitch", &config.environment)
            .and_then(|c| c.client_id.clone())
            .filter(|c| !c.is_empty());
        Some(Self {
            channels,
            method: config.monitor.method,
            interval: Duration::try_from_secs_f64(config.monitor.polling_interval)
                .unwrap_or(Duration::from_secs(60)),
            streams_url: format!("{}/streams", config.twitch.api_url.trim_end_matches('/')),
            client_id,
            localdev: config.environment == "localdev",
            state_dir: state_dir.to_path_buf(),
            broadcaster: crate::sources::twitch::irc::channel_login(&config.twitch.channel),
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

/// What the Twitch provider's retained state says about EventSub.
#[derive(Deserialize)]
struct ProviderState {
    channel: String,
    state: String,
    #[serde(default)]
    subscriptions: Vec<SubscriptionHealth>,
}

#[derive(Deserialize)]
struct SubscriptionHealth {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

impl ProviderState {
    /// The broadcaster's channel when both stream subscriptions are enabled on a live session.
    fn covered(&self) -> Option<&str> {
        let enabled = |kind: &str| {
            self.subscriptions
                .iter()
                .any(|s| s.kind == kind && s.status == "enabled")
        };
        let up = matches!(self.state.as_str(), "connected" | "unauthorized");
        (up && enabled("stream.online") && enabled("stream.offline"))
            .then_some(self.channel.as_str())
    }
}

struct Monitor {
    settings: Settings,
    publisher: Publisher,
    helix: Option<Helix>,
    tracker: Tracker,
    path: PathBuf,
    /// The broadcaster's login, from the Twitch provider (else `[twitch] channel`).
    broadcaster: Option<String>,
    /// The channel EventSub currently covers.
    covered: Option<String>,
    /// The last polling problem logged, so a lasting one is logged once.
    problem: Option<String>,
    /// EventSub said a channel went live: poll now for its title, category and viewers,
    /// which `stream.online` does not carry.
    poll_now: bool,
}

impl Monitor {
    /// Whether polling may decide `channel`'s transitions.
    fn polling_decides(&self, channel: &str) -> bool {
        match self.settings.method {
            Method::Polling => true,
            Method::Auto => self.covered.as_deref() != Some(channel),
            Method::Eventsub => self.broadcaster.as_deref() != Some(channel),
        }
    }

    fn describe(&self, channel: &str) -> &'static str {
        if self.polling_decides(channel) {
            "Get Streams polling"
        } else {
            "EventSub stream.online/offline (polling refreshes viewers)"
        }
    }

    /// Saves first, with the transitions among `change` marked unannounced, then publishes: a
    /// crash in between republishes them at the next start instead of losing them.
    async fn publish(&mut self, change: Change) -> bool {
        self.tracker
            .unannounced
            .extend(change.events.iter().filter(|e| is_transition(e)).cloned());
        if change.save {
            self.save().await;
        }
        for event in change.events {
            if self.publisher.event(event).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn save(&self) {
        let Ok(bytes) = serde_json::to_vec_pretty(&self.tracker.saved()) else {
            return;
        };
        let path = self.path.clone();
        let written =
            tokio::task::spawn_blocking(move || crate::state::write_private_atomic(&path, &bytes))
                .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(path = %self.path.display(), error = %e, "monitor: cannot save the channel states")
            }
            Err(e) => tracing::warn!(error = %e, "monitor: the state writer failed"),
        }
    }

    fn report(&mut self, problem: Option<String>) {
        if problem == self.problem {
            return;
        }
        match &problem {
            Some(text) => tracing::warn!("monitor: {text}"),
            None if self.problem.is_some() => tracing::info!("monitor: polling works again"),
            None => {}
        }
        self.problem = problem;
    }

    /// The access token to poll with: the stored broadcaster login, else the bot's. Read
    /// from disk each time because the Twitch provider refreshes it; the monitor never
    /// refreshes a token itself, since a public client's refresh token dies once used and
    /// two refreshers would log each other out.
    fn token(&self, client_id: &str) -> Result<String, String> {
        if self.settings.localdev {
            return Ok("localdev".into());
        }
        for account in Account::ALL {
            let path = StoredToken::path(&self.settings.state_dir, account);
            if let Ok(Some(token)) = StoredToken::load(&path)
                && token.client_id == client_id
            {
                return Ok(token.access_token);
            }
        }
        Err(format!(
            "no Twitch login to poll Get Streams with; run `{}`",
            Account::Broadcaster.login_command()
        ))
    }

    /// One round over every channel. Returns how long to wait before the next one.
    async fn poll_round(&mut self) -> Result<Duration, ()> {
        let interval = self.settings.round_interval();
        let (Some(helix), Some(client_id)) = (self.helix.clone(), self.settings.client_id.clone())
        else {
            return Ok(interval);
        };
        let token = match self.token(&client_id) {
            Ok(token) => token,
            Err(problem) => {
                self.report(Some(problem));
                return Ok(interval);
            }
        };
        let channels = self.settings.channels.clone();
        for batch in channels.chunks(BATCH) {
            let mut query: Vec<(&str, &str)> =
                batch.iter().map(|c| ("user_login", c.as_str())).collect();
            query.push(("first", "100"));
            let streams = match helix.get::<Streams>(&token, &query).await {
                Ok(streams) => streams,
                Err(e) => {
                    let wait = match &e {
                        HelixError::TooMany {
                            retry_after: Some(after),
                            ..
                        } => (*after).max(interval),
                        _ => interval,
                    };
                    let hint = match e {
                        HelixError::Unauthorized(_) => {
                            " (the Twitch provider renews the token; if it stays, run `ongwatch auth twitch`)"
                        }
                        _ => "",
                    };
                    self.report(Some(format!(
                        "Get Streams failed: {e}{hint}; retrying in {wait:.1?}"
                    )));
                    return Ok(wait);
                }
            };
            self.report(None);
            for channel in batch {
                let stream = streams
                    .data
                    .iter()
                    .find(|s| s.user_login.eq_ignore_ascii_case(channel) && s.kind == "live");
                let decides = self.polling_decides(channel);
                let change = self.tracker.poll(channel, stream, decides);
                if !self.publish(change).await {
                    return Err(());
                }
            }
        }
        Ok(interval)
    }

    /// A message from the bus: the Twitch provider's state, or someone else's online/offline.
    async fn observe(&mut self, record: &Delivery, provider_filter: &str) -> bool {
        let root = self.publisher.root().clone();
        if crate::event::filter_matches(provider_filter, &record.message.topic) {
            let Ok(state) = serde_json::from_slice::<ProviderState>(&record.message.payload) else {
                return true;
            };
            let covered = state.covered().map(str::to_owned);
            if !state.channel.is_empty() {
                self.broadcaster = Some(state.channel.clone());
            }
            if covered != self.covered {
                let before = std::mem::replace(&mut self.covered, covered);
                for channel in before.iter().chain(self.covered.iter()) {
                    if self.settings.channels.contains(channel) {
                        tracing::info!(channel = %channel, "monitor: {channel} via {}", self.describe(channel));
                    }
                }
            }
            return true;
        }
        let Some(event) = super::event_of(
            record,
            &root,
            &[Kind::Online, Kind::Offline, Kind::SharedChat],
        ) else {
            return true;
        };
        if event.id.starts_with(ID_PREFIX) {
            // Our own transition is back from the hub, so the log has it.
            let before = self.tracker.unannounced.len();
            self.tracker.unannounced.retain(|e| e.id != event.id);
            if self.tracker.unannounced.len() != before {
                self.save().await;
            }
            return true;
        }
        // Test events (triggers, replays) say nothing about the real channel.
        let monitored = self.settings.channels.contains(&event.channel);
        if !monitored || event.test {
            return true;
        }
        let change = self.tracker.adopt(event);
        self.poll_now |= change.save && matches!(event.kind, EventKind::Online(_));
        self.publish(change).await
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

fn load(path: &Path) -> Saved {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "monitor: channel states unreadable; every channel starts from its next poll");
            Saved::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "monitor: channel states unreadable; every channel starts from its next poll");
            Saved::default()
        }
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
