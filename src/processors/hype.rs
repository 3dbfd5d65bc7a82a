//! The hype meter: a leaky bucket over support events.
//!
//! Every support event adds points (its weight times its size) to a per-channel score that
//! halves every `half_life_seconds`. The level is how many `thresholds` the score has reached.
//! Retained `R/synthetic/hype` `{level, score}` is published at start (level 0) and whenever
//! the level changes, whether through new support or through decay: the meter wakes up exactly
//! when the score will fall below the current level's threshold, so it costs nothing while idle.
//!
//! The meter steps aside while a bot owns `R/synthetic/hype` (CONTRACT §3, topic authority): it
//! keeps counting but publishes nothing there, says so on `R/system/providers/hype` and in the
//! log, and publishes its level again once the bot is gone. It learns of the bot from the bus
//! itself: the bot's publishes there, and the bot's presence (`R/system/bots/<id>`, whose
//! `owns` lists the topic while the broker gives it to the bot).
//!
//! Time is tokio's clock, so tests drive decay with a paused clock instead of waiting.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use tokio::time::{Duration, Instant};

use crate::event::{ConnectionState, Direction, Event, EventKind, Hype, Kind, Tier, TopicRoot};
use crate::hub::{BoundedQueue, Delivery, Origin, Publisher, Record};
use crate::section::Section;

/// How long a bot keeps the hype topic after its last sign of life there (its presence going
/// offline, or, with no presence as on an external broker, its last publish). The broker's
/// first-publisher grace.
const BOT_GRACE: Duration = Duration::from_secs(60);
const HYPE_SUFFIX: &str = "synthetic/hype";

/// `[hype]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HypeConfig {
    pub enabled: bool,
    /// Seconds for the score to halve while nothing happens.
    pub half_life_seconds: f64,
    /// Score needed for level 1, 2, 3, ... (strictly increasing).
    pub thresholds: Vec<f64>,
    pub weights: HypeWeights,
}

/// `[hype.weights]`: points per unit of support.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HypeWeights {
    /// Per bit (cheers and power-ups).
    pub bit: f64,
    /// Per unit of a currency not listed in `currencies` (tips and charity).
    pub currency: f64,
    /// Per unit of specific currencies by ISO 4217 code, e.g. `{ JPY = 0.007 }`.
    pub currencies: BTreeMap<String, f64>,
    /// Per sub or resub of each tier.
    pub tier1: f64,
    pub tier2: f64,
    pub tier3: f64,
    pub prime: f64,
    /// Per gifted sub (a gift of 5 counts 5 times).
    pub gift: f64,
    /// Per viewer of an incoming raid.
    pub raid_viewer: f64,
}

impl Default for HypeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            half_life_seconds: 300.0,
            thresholds: vec![5.0, 15.0, 30.0, 60.0, 120.0],
            weights: HypeWeights::default(),
        }
    }
}

impl Default for HypeWeights {
    fn default() -> Self {
        Self {
            bit: 0.01,
            currency: 1.0,
            currencies: BTreeMap::new(),
            tier1: 5.0,
            tier2: 10.0,
            tier3: 25.0,
            prime: 5.0,
            gift: 5.0,
            raid_viewer: 0.1,
        }
    }
}

impl HypeConfig {
    /// Points an event is worth; 0 for anything that is not support.
    pub fn points(&self, event: &Event) -> f64 {
        // A partner channel's support during shared chat does not make our stream hype.
        if event.is_partner() {
            return 0.0;
        }
        let w = &self.weights;
        let per_unit = |currency: &str| {
            w.currencies
                .get(&currency.to_ascii_uppercase())
                .copied()
                .unwrap_or(w.currency)
        };
        let per_tier = |tier: Tier| match tier {
            Tier::One => w.tier1,
            Tier::Two => w.tier2,
            Tier::Three => w.tier3,
            Tier::Prime => w.prime,
        };
        match &event.kind {
            EventKind::Cheer(cheer) => cheer.amount as f64 * w.bit,
            EventKind::Powerup(powerup) => powerup.amount as f64 * w.bit,
            EventKind::Tip(tip) => tip.amount * per_unit(&tip.currency),
            EventKind::Charity(charity) => charity.amount * per_unit(&charity.currency),
            // A gifted sub also arrives as a sub of its recipient; the gift already counted it.
            EventKind::Sub(sub) if sub.is_gift => 0.0,
            EventKind::Sub(sub) | EventKind::Resub(sub) => per_tier(sub.tier),
            EventKind::Gift(gift) => f64::from(gift.count) * w.gift,
            EventKind::Raid(raid) if raid.direction == Direction::Incoming => {
                raid.viewers as f64 * w.raid_viewer
            }
            _ => 0.0,
        }
        .max(0.0)
    }

    pub fn level_of(&self, score: f64) -> u32 {
        self.thresholds.iter().filter(|t| score >= **t).count() as u32
    }
}

/// Event kinds the meter reads.
const SUPPORT: &[Kind] = &[
    Kind::Cheer,
    Kind::Powerup,
    Kind::Tip,
    Kind::Charity,
    Kind::Sub,
    Kind::Resub,
    Kind::Gift,
    Kind::Raid,
];

/// One channel's bucket: the score as of `at`, and the level last published.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    score: f64,
    at: Instant,
    level: u32,
}

/// The meters of every channel seen; pure state, driven by the caller's clock.
#[derive(Debug)]
pub struct Meter {
    config: Arc<HypeConfig>,
    buckets: HashMap<String, Bucket>,
}

impl Meter {
    pub fn new(config: HypeConfig) -> Self {
        Self {
            config: Arc::new(config),
            buckets: HashMap::new(),
        }
    }

    fn decayed(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.score * 0.5f64.powf(elapsed / self.config.half_life_seconds)
    }

    /// Adds an event's points; returns the new state if the level changed.
    pub fn add(&mut self, event: &Event, now: Instant) -> Option<Hype> {
        let points = self.config.points(event);
        if points <= 0.0 {
            return None;
        }
        let current = self.buckets.get(&event.channel).copied().unwrap_or(Bucket {
            score: 0.0,
            at: now,
            level: 0,
        });
        let score = self.decayed(&current, now) + points;
        let level = self.config.level_of(score);
        self.buckets.insert(
            event.channel.clone(),
            Bucket {
                score,
                at: now,
                level,
            },
        );
        (level != current.level).then(|| hype(level, score))
    }

    /// Levels lost to decay by `now`, per channel.
    pub fn decay(&mut self, now: Instant) -> Vec<(String, Hype)> {
        let mut changed = Vec::new();
        let config = self.config.clone();
        for (channel, bucket) in &mut self.buckets {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            let score = bucket.score * 0.5f64.powf(elapsed / config.half_life_seconds);
            let level = config.level_of(score);
            if level != bucket.level {
                *bucket = Bucket {
                    score,
                    at: now,
                    level,
                };
                changed.push((channel.clone(), hype(level, score)));
            }
        }
        changed
    }

    /// A channel's level and score at `now` (level 0 for a channel never seen).
    pub fn current(&self, channel: &str, now: Instant) -> Hype {
        match self.buckets.get(channel) {
            Some(bucket) => {
                let score = self.decayed(bucket, now);
                hype(self.config.level_of(score), score)
            }
            None => hype(0, 0.0),
        }
    }

    /// When the next level drop happens if nothing else does; `None` when every meter is at 0.
    pub fn next_drop(&self) -> Option<Instant> {
        self.buckets
            .values()
            .filter(|bucket| bucket.level > 0)
            .map(|bucket| {
                let threshold = self.config.thresholds[bucket.level as usize - 1];
                let seconds = self.config.half_life_seconds * (bucket.score / threshold).log2();
                // Just past the crossing, so the score is really below the threshold then.
                bucket.at + Duration::from_secs_f64(seconds.max(0.0)) + Duration::from_millis(1)
            })
            .min()
    }
}

fn hype(level: u32, score: f64) -> Hype {
    Hype {
        level,
        // Rounded down, so a score just below a threshold never shows as the threshold itself.
        score: (score * 100.0).floor() / 100.0,
    }
}

fn hype_event(channel: &str, state: Hype) -> Event {
    Event::new(
        format!("ongwatch:hype:{}", uuid::Uuid::new_v4().simple()),
        "ongwatch",
        channel,
        EventKind::Hype(state),
    )
}

/// Which bots hold which channel's hype topic, as the bus tells it.
#[derive(Debug, Default)]
struct Owners {
    /// hype topic → holder (client id, or "" for a bot known only by its publishes) → until
    /// when (`None`: while it stays online).
    held: HashMap<String, HashMap<String, Option<Instant>>>,
}

impl Owners {
    /// Takes what `record` says about hype ownership; true if it was about that.
    fn observe(&mut self, record: &Record, root: &TopicRoot, at: Instant) -> bool {
        let message = &record.message;
        let Some((_, suffix)) = root.strip(&message.topic) else {
            return false;
        };
        if suffix == HYPE_SUFFIX {
            if message.origin == Origin::Mqtt {
                self.held
                    .entry(message.topic.clone())
                    .or_default()
                    .insert(String::new(), Some(at + BOT_GRACE));
                return true;
            }
            return false;
        }
        let Some(client) = suffix.strip_prefix("system/bots/") else {
            return false;
        };
        #[derive(Deserialize)]
        struct Presence {
            state: String,
            #[serde(default)]
            owns: Vec<String>,
        }
        let presence = serde_json::from_slice::<Presence>(&message.payload).ok();
        for holders in self.held.values_mut() {
            holders.remove(client);
        }
        for topic in presence.iter().flat_map(|p| &p.owns) {
            if root.strip(topic).is_some_and(|(_, s)| s == HYPE_SUFFIX) {
                let until = match presence.as_ref().map(|p| p.state.as_str()) {
                    Some("online") => None,
                    _ => Some(at + BOT_GRACE),
                };
                let holders = self.held.entry(topic.clone()).or_default();
                // The broker names the owner now: its publishes need no separate entry.
                holders.remove("");
                holders.insert(client.to_owned(), until);
            }
        }
        true
    }

    /// The bot holding `topic` at `at`, if any ("a bot" when only its publishes are known).
    fn holder(&self, topic: &str, at: Instant) -> Option<&str> {
        self.held.get(topic)?.iter().find_map(|(client, until)| {
            until
                .is_none_or(|until| at < until)
                .then_some(if client.is_empty() {
                    "a bot"
                } else {
                    client.as_str()
                })
        })
    }

    /// When a hold runs out next.
    fn next_expiry(&self, at: Instant) -> Option<Instant> {
        self.held
            .values()
            .flat_map(|holders| holders.values().flatten())
            .filter(|until| **until > at)
            .min()
            .copied()
    }
}

/// `R/system/providers/hype`: whether the built-in meter publishes, or which bot does.
fn meter_state(channel: &str, topic: &str, holder: Option<&str>) -> Event {
    let (state, detail) = match holder {
        None => (
            ConnectionState::Connected,
            format!("the built-in hype meter publishes {topic}"),
        ),
        Some(bot) => (
            ConnectionState::Disabled,
            format!(
                "{bot} publishes {topic}; the built-in hype meter stepped aside until it leaves"
            ),
        ),
    };
    Event::plain_provider_state("hype", channel, state, detail)
}

/// What the meter reads, so the hub wakes it for nothing else: support, the hype topic (a
/// bot's publishes there) and bot presence (which names the topics a bot owns).
pub(super) fn filters(root: &TopicRoot) -> Vec<String> {
    SUPPORT
        .iter()
        .map(|kind| kind.topic_suffix())
        .chain([HYPE_SUFFIX, "system/bots/+"])
        .map(|suffix| root.filter_suffix(suffix))
        .collect()
}

/// Runs until the hub closes `queue`. Publishes level 0 for `channel` at start, so the
/// retained state never shows a level from before a restart.
pub async fn run(
    queue: Arc<BoundedQueue<Delivery>>,
    publisher: Publisher,
    config: HypeConfig,
    channel: String,
) {
    let root: TopicRoot = publisher.root().clone();
    let mut meter = Meter::new(config);
    let mut owners = Owners::default();
    // Hype topic → the holder last announced (None: the meter publishes).
    let mut announced: HashMap<String, Option<String>> = HashMap::new();
    let start_topic = root.topic(&channel, HYPE_SUFFIX);
    announced.insert(start_topic.clone(), None);
    for event in [
        meter_state(&channel, &start_topic, None),
        hype_event(&channel, hype(0, 0.0)),
    ] {
        if publisher.event(event).await.is_err() {
            return;
        }
    }
    loop {
        let at = Instant::now();
        let wake = [meter.next_drop(), owners.next_expiry(at)]
            .into_iter()
            .flatten()
            .min();
        let mut changes = tokio::select! {
            record = queue.pop() => {
                let Some(record) = record else { return };
                queue.mark_delivered(1);
                if owners.observe(&record, &root, Instant::now()) {
                    Vec::new()
                } else {
                    super::event_of(&record, &root, SUPPORT)
                        .and_then(|event| {
                            let state = meter.add(event, Instant::now())?;
                            Some(vec![(event.channel.clone(), state)])
                        })
                        .unwrap_or_default()
                }
            }
            _ = sleep_until(wake) => meter.decay(Instant::now()),
        };
        // Hand-overs: announce them, and publish the meter's level again when a bot left.
        let at = Instant::now();
        let mut states = Vec::new();
        for (topic, last) in &mut announced {
            let holder = owners.holder(topic, at).map(str::to_owned);
            if holder == *last {
                continue;
            }
            let Some(channel) = meter_channel(&root, topic, &channel) else {
                continue;
            };
            match &holder {
                Some(bot) => {
                    tracing::info!(topic = %topic, bot = %bot, "a bot publishes the hype topic: the built-in hype meter steps aside")
                }
                None => {
                    tracing::info!(topic = %topic, "the bot that published the hype topic is gone: the built-in hype meter publishes again");
                    changes.push((channel.clone(), meter.current(&channel, at)));
                }
            }
            states.push(meter_state(&channel, topic, holder.as_deref()));
            *last = holder;
        }
        for (channel, state) in changes {
            let topic = root.topic(&channel, HYPE_SUFFIX);
            let last = announced.entry(topic.clone()).or_insert(None);
            let holder = owners.holder(&topic, at);
            if holder.is_some() {
                if last.is_none() {
                    *last = holder.map(str::to_owned);
                    states.push(meter_state(&channel, &topic, holder));
                }
                continue;
            }
            tracing::debug!(%channel, level = state.level, score = state.score, "hype level changed");
            if publisher.event(hype_event(&channel, state)).await.is_err() {
                return;
            }
        }
        for state in states {
            if publisher.event(state).await.is_err() {
                return;
            }
        }
    }
}

/// The channel a hype topic belongs to: from the topic with a `{channel}` root, else ours.
fn meter_channel(root: &TopicRoot, topic: &str, own: &str) -> Option<String> {
    let (channel, _) = root.strip(topic)?;
    Some(channel.unwrap_or(own).to_owned())
}

/// Sleeps until `at`, or forever without one.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Section for HypeConfig {
    const KEY: &'static str = "hype";

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if !(self.half_life_seconds.is_finite() && self.half_life_seconds > 0.0) {
            problems.push((
                "hype.half_life_seconds".into(),
                format!(
                    "{} must be a number of seconds above 0, e.g. 300",
                    self.half_life_seconds
                ),
            ));
        }
        if self.thresholds.is_empty() {
            problems.push((
                "hype.thresholds".into(),
                "must list at least one score, e.g. [5, 15, 30, 60, 120]".into(),
            ));
        }
        let ascending = self.thresholds.windows(2).all(|pair| pair[0] < pair[1]);
        let positive = self.thresholds.iter().all(|t| t.is_finite() && *t > 0.0);
        if !(ascending && positive) {
            problems.push((
                "hype.thresholds".into(),
                format!(
                    "{:?} must be scores above 0 in increasing order, e.g. [5, 15, 30, 60, 120]",
                    self.thresholds
                ),
            ));
        }
        let w = &self.weights;
        let mut weights: Vec<(String, f64)> = vec![
            ("bit".into(), w.bit),
            ("currency".into(), w.currency),
            ("tier1".into(), w.tier1),
            ("tier2".into(), w.tier2),
            ("tier3".into(), w.tier3),
            ("prime".into(), w.prime),
            ("gift".into(), w.gift),
            ("raid_viewer".into(), w.raid_viewer),
        ];
        for (code, weight) in &w.currencies {
            if !(code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase())) {
                problems.push((
                    format!("hype.weights.currencies.{code}"),
                    "is not an ISO 4217 code; use three capitals, e.g. EUR".into(),
                ));
            }
            weights.push((format!("currencies.{code}"), *weight));
        }
        for (key, weight) in weights {
            if !(weight.is_finite() && weight >= 0.0) {
                problems.push((
                    format!("hype.weights.{key}"),
                    format!("{weight} must be a number of points of at least 0"),
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cheer, Follow, Gift, Sub, Tip, UserRef, filter_matches};

    fn cheer(bits: u64) -> Event {
        Event::new(
            "c",
            "twitch",
            "chan",
            EventKind::Cheer(Cheer {
                user: UserRef::named("a"),
                amount: bits,
                currency: "bits".into(),
                message: String::new(),
                anonymous: false,
            }),
        )
    }

    fn tip(amount: f64, currency: &str) -> Event {
        Event::new(
            "t",
            "streamelements",
            "chan",
            EventKind::Tip(Tip {
                user: UserRef::named("a"),
                amount,
                currency: currency.into(),
                message: String::new(),
            }),
        )
    }

    fn sub(tier: Tier, is_gift: bool) -> Event {
        Event::new(
            "s",
            "twitch",
            "chan",
            EventKind::Sub(Sub {
                user: UserRef::named("a"),
                tier,
                months: 1,
                streak_months: None,
                is_gift,
                message: None,
            }),
        )
    }

    #[test]
    fn weights_apply_per_unit_and_skip_what_is_not_support() {
        let mut config = HypeConfig::default();
        config.weights.currencies.insert("JPY".into(), 0.01);
        assert_eq!(config.points(&cheer(500)), 5.0);
        let partner = cheer(500).from_partner(Some("streamer33".into()), Some("112233".into()));
        assert_eq!(config.points(&partner), 0.0, "a partner channel's cheer");
        assert_eq!(config.points(&tip(3.0, "USD")), 3.0);
        assert_eq!(config.points(&tip(1000.0, "jpy")), 10.0);
        assert_eq!(config.points(&sub(Tier::Three, false)), 25.0);
        assert_eq!(config.points(&sub(Tier::One, true)), 0.0);
        let gift = Event::new(
            "g",
            "twitch",
            "chan",
            EventKind::Gift(Gift {
                user: UserRef::named("a"),
                tier: Tier::One,
                count: 3,
                recipients: vec![],
                anonymous: false,
                cumulative_total: None,
            }),
        );
        assert_eq!(config.points(&gift), 15.0);
        let follow = Event::new(
            "f",
            "twitch",
            "chan",
            EventKind::Follow(Follow {
                user: UserRef::named("a"),
            }),
        );
        assert_eq!(config.points(&follow), 0.0);
    }

    #[test]
    fn the_meter_is_woken_for_support_its_topic_and_presence_only() {
        for (root, prefix) in [("stream", "stream"), ("ow/{channel}", "ow/chan")] {
            let filters = filters(&TopicRoot::new(root).unwrap());
            let wakes = |suffix: &str| {
                let topic = format!("{prefix}/{suffix}");
                filters.iter().any(|f| filter_matches(f, &topic))
            };
            for read in [
                "support/cheers",
                "support/tips",
                "support/subs",
                "community/raids",
                "synthetic/hype",
                "system/bots/bpm-bot",
            ] {
                assert!(wakes(read), "{root}: {read}");
            }
            for ignored in [
                "chat/messages",
                "synthetic/totals",
                "system/providers/twitch",
            ] {
                assert!(!wakes(ignored), "{root}: {ignored}");
            }
        }
    }

    #[test]
    fn bad_settings_name_their_key() {
        let config = HypeConfig {
            half_life_seconds: 0.0,
            thresholds: vec![10.0, 5.0],
            weights: HypeWeights {
                bit: -1.0,
                currencies: BTreeMap::from([("eur".into(), 1.0)]),
                ..HypeWeights::default()
            },
            ..HypeConfig::default()
        };
        let keys: Vec<String> = config.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "hype.half_life_seconds",
                "hype.thresholds",
                "hype.weights.currencies.eur",
                "hype.weights.bit"
            ]
        );
        assert!(HypeConfig::default().problems().is_empty());
    }

    /// Drives the real processor through a hub with tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn levels_rise_with_support_and_fall_after_the_half_life() {
        use crate::hub::{Hub, OverflowPolicy};
        let mut hub = Hub::new(
            TopicRoot::new("stream").unwrap(),
            false,
            std::time::Duration::from_secs(60),
            0,
        );
        let queue = hub.add_output("hype", 100, OverflowPolicy::DropOldest, true);
        let seen = hub.add_output("test", 100, OverflowPolicy::DropOldest, true);
        let publisher = hub.publisher();
        let stop = tokio_util::sync::CancellationToken::new();
        let hub_task = tokio::spawn(hub.run(stop.clone()));
        let config = HypeConfig {
            half_life_seconds: 60.0,
            thresholds: vec![5.0, 15.0, 30.0, 60.0],
            ..HypeConfig::default()
        };
        let task = tokio::spawn(run(queue, publisher.clone(), config, "chan".into()));

        let next_hype = || async {
            loop {
                let record = seen.pop().await.unwrap();
                if record.message.topic == "stream/synthetic/hype" {
                    assert!(record.message.retain);
                    let v: serde_json::Value =
                        serde_json::from_slice(&record.message.payload).unwrap();
                    return (v["level"].as_u64().unwrap(), v["score"].as_f64().unwrap());
                }
            }
        };
        assert_eq!(next_hype().await, (0, 0.0));

        let mut n = 0;
        let mut send = |event: Event| {
            n += 1;
            let event = Event {
                id: format!("e{n}"),
                ..event
            };
            let publisher = publisher.clone();
            async move { publisher.event(event).await.unwrap() }
        };
        send(cheer(600)).await; // 6 points
        assert_eq!(next_hype().await, (1, 6.0));
        send(tip(10.0, "USD")).await; // 16
        assert_eq!(next_hype().await, (2, 16.0));
        send(sub(Tier::Three, false)).await; // 41
        assert_eq!(next_hype().await, (3, 41.0));
        send(cheer(2000)).await; // 61
        assert_eq!(next_hype().await, (4, 61.0));

        // 61 → below 60 after ~1.4 s; below 30 after ~61 s; below 15 after ~121 s ...
        let start = Instant::now();
        for (level, by_seconds) in [(3, 2), (2, 62), (1, 122), (0, 217)] {
            let (got, score) = next_hype().await;
            assert_eq!(got, level);
            let elapsed = start.elapsed().as_secs_f64();
            assert!(elapsed <= by_seconds as f64, "level {level} at {elapsed}s");
            assert!(score < [5.0, 15.0, 30.0, 60.0][level as usize]);
        }
        // Idle at level 0: nothing more is published, and nothing keeps the meter awake.
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(seen.try_pop().is_none());

        drop(publisher);
        stop.cancel();
        hub_task.await.unwrap();
        task.await.unwrap();
    }
}
