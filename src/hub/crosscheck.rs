//! Cross-source duplicates: the same Twitch cheer, sub, raid or follow reported by Twitch
//! EventSub *and* by StreamElements or Streamlabs is published once (docs/DEDUP.md).
//!
//! The hub's id dedup cannot see these: each provider has its own ids. So reports are matched
//! on what they describe — kind, user login and amount (bits, months, viewers) — within
//! `[dedup] window_seconds`. Matching is one to one: a user who cheers 100 twice gets two
//! cheers, each of which may cancel one report from every other provider.
//!
//! The check runs in [`super::Publisher::event`], before `raw` is stripped, because only the
//! upstream envelope says whether a StreamElements/Streamlabs alert is about Twitch
//! (`provider: "twitch"`, `for: "twitch_account"`); the payload's `platform` is derived from it.
//!
//! With `prefer = "twitch"` (the default) a StreamElements/Streamlabs report of a Twitch event
//! is held for the window: if EventSub reports it, the held one is dropped; if not, it is
//! published when the window ends, so nothing is lost. With `prefer = "first"` whichever
//! report arrives first is published at once and later ones are dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{HubCounters, Publisher};
use crate::event::{Direction, Event, EventKind};
use crate::section::Section;

/// `[dedup]` in ongwatch.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    pub enabled: bool,
    pub prefer: Prefer,
    /// How far apart two reports of one event may arrive, and how long a held report waits.
    pub window_seconds: f64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            prefer: Prefer::Twitch,
            window_seconds: 10.0,
        }
    }
}

impl DedupConfig {
    pub fn window(&self) -> Duration {
        Duration::try_from_secs_f64(self.window_seconds).unwrap_or(Duration::from_secs(10))
    }
}

/// Which report of a cross-source duplicate is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prefer {
    /// EventSub's: it has Twitch's own ids and every field.
    Twitch,
    /// Whichever arrives first; nothing is delayed.
    First,
}

/// What a report is about; two reports with the same key are the same event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    family: Family,
    user: String,
    amount: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    Cheer,
    /// Subs and resubs: Streamlabs calls some resubs `subscription`.
    Sub,
    Raid,
    Follow,
}

struct Entry {
    at: Instant,
    /// Providers that reported this event; each may match it once.
    reporters: Vec<String>,
    /// A StreamElements/Streamlabs report waiting for EventSub's.
    held: Option<Event>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, VecDeque<Entry>>,
    /// Keys in arrival order, so entries expire front to back.
    order: VecDeque<(Instant, Key)>,
}

pub struct CrossCheck {
    window: Duration,
    prefer: Prefer,
    /// Holding only makes sense when an EventSub report can still come.
    twitch_active: bool,
    state: Mutex<State>,
    wake: Notify,
    counters: Arc<HubCounters>,
    held: AtomicU64,
}

const TWITCH: &str = "twitch";

impl CrossCheck {
    pub fn new(config: &DedupConfig, twitch_active: bool, counters: Arc<HubCounters>) -> Self {
        Self {
            window: config.window(),
            prefer: config.prefer,
            twitch_active,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            counters,
            held: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panic elsewhere cannot leave
        // it half-updated.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reports waiting for EventSub right now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// The event to publish now, or `None` when it is a duplicate or held.
    pub fn admit(&self, event: Event, now: Instant) -> Option<Event> {
        let Some(key) = key_of(&event) else {
            return Some(event);
        };
        let from_twitch = event.provider == TWITCH;
        let mut state = self.lock();
        let window = self.window;
        let entries = state.entries.entry(key.clone()).or_default();
        if let Some(entry) = entries.iter_mut().find(|e| {
            now.saturating_duration_since(e.at) < window && !e.reporters.contains(&event.provider)
        }) {
            entry.reporters.push(event.provider.clone());
            let replaces_held =
                self.prefer == Prefer::Twitch && from_twitch && entry.held.is_some();
            let dropped = if replaces_held {
                entry.held.take()
            } else {
                Some(event.clone())
            };
            self.counters.cross_source.fetch_add(1, Ordering::Relaxed);
            if let Some(dropped) = dropped {
                tracing::debug!(id = %dropped.id, provider = %dropped.provider, "cross-source duplicate dropped");
            }
            return if replaces_held {
                self.held.fetch_sub(1, Ordering::Relaxed);
                Some(event)
            } else {
                None
            };
        }
        let hold = self.prefer == Prefer::Twitch && !from_twitch && self.twitch_active;
        let (held, published) = if hold {
            (Some(event), None)
        } else {
            (None, Some(event))
        };
        let provider = held
            .as_ref()
            .or(published.as_ref())
            .map(|e| e.provider.clone())
            .unwrap_or_default();
        entries.push_back(Entry {
            at: now,
            reporters: vec![provider],
            held,
        });
        state.order.push_back((now, key));
        drop(state);
        if hold {
            self.held.fetch_add(1, Ordering::Relaxed);
            self.wake.notify_one();
        }
        published
    }

    /// Forgets entries older than the window; returns the held reports among them, which
    /// EventSub never matched and which are published now. With `all`, every entry goes.
    fn expire(&self, now: Instant, all: bool) -> Vec<Event> {
        let mut state = self.lock();
        let mut released = Vec::new();
        while let Some((at, _)) = state.order.front() {
            if !all && now.saturating_duration_since(*at) < self.window {
                break;
            }
            let Some((_, key)) = state.order.pop_front() else {
                break;
            };
            let emptied = match state.entries.get_mut(&key) {
                Some(list) => {
                    if let Some(held) = list.pop_front().and_then(|e| e.held) {
                        released.push(held);
                    }
                    list.is_empty()
                }
                None => false,
            };
            if emptied {
                state.entries.remove(&key);
            }
        }
        self.held
            .fetch_sub(released.len() as u64, Ordering::Relaxed);
        released
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.lock().order.front().map(|(at, _)| *at + self.window)
    }
}

/// Publishes held reports whose window ended without an EventSub match. At `stop` it
/// publishes whatever is still held, so a shutdown loses nothing; the daemon stops it after
/// the sources and before the hub.
pub async fn release_held(check: Arc<CrossCheck>, publisher: Publisher, stop: CancellationToken) {
    loop {
        let deadline = check.next_deadline();
        tokio::select! {
            () = stop.cancelled() => break,
            () = check.wake.notified() => continue,
            () = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        for event in check.expire(Instant::now(), false) {
            if publisher.send_event(event).await.is_err() {
                return;
            }
        }
    }
    for event in check.expire(Instant::now(), true) {
        if publisher.send_event(event).await.is_err() {
            return;
        }
    }
}

/// The match key of a Twitch-platform cheer/sub/raid/follow; `None` for everything else,
/// which passes untouched. Test events pass too: nothing upstream reports a test twice, and
/// a provider's test alert should show at once.
fn key_of(event: &Event) -> Option<Key> {
    if event.test || !on_twitch(event) {
        return None;
    }
    let (family, user, amount) = match &event.kind {
        EventKind::Cheer(c) => (Family::Cheer, &c.user, c.amount),
        EventKind::Sub(s) | EventKind::Resub(s) => (Family::Sub, &s.user, u64::from(s.months)),
        EventKind::Raid(r) if r.direction == Direction::Incoming => {
            (Family::Raid, &r.user, r.viewers)
        }
        EventKind::Follow(f) => (Family::Follow, &f.user, 0),
        _ => return None,
    };
    let user = user
        .user
        .as_deref()
        .or(user.display_name.as_deref())
        .unwrap_or_default()
        .to_lowercase();
    Some(Key {
        family,
        user,
        amount,
    })
}

/// Whether the event happened on Twitch. StreamElements and Streamlabs say so in their
/// envelope; bits exist only on Twitch, whatever the envelope says.
fn on_twitch(event: &Event) -> bool {
    if event.provider == TWITCH || matches!(event.kind, EventKind::Cheer(_)) {
        return true;
    }
    let raw = event.raw.as_ref();
    let field = |name: &str| {
        raw.and_then(|r| r.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_ascii_lowercase)
    };
    match event.provider.as_str() {
        "streamlabs" => field("for").as_deref() == Some("twitch_account"),
        "streamelements" => field("provider").as_deref() == Some("twitch"),
        _ => false,
    }
}

impl Section for DedupConfig {
    const KEY: &'static str = "dedup";

    fn problems(&self) -> Vec<(String, String)> {
        if (self.window_seconds.is_finite() && self.window_seconds > 0.0)
            && self.window_seconds <= 3600.0
        {
            return Vec::new();
        }
        vec![(
            "dedup.window_seconds".into(),
            format!(
                "{} is out of range; use seconds above 0 and at most 3600, e.g. 10",
                self.window_seconds
            ),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cheer, Follow, Tip, UserRef};
    use serde_json::json;

    fn check(prefer: Prefer, twitch_active: bool) -> CrossCheck {
        CrossCheck::new(
            &DedupConfig {
                enabled: true,
                prefer,
                window_seconds: 10.0,
            },
            twitch_active,
            Arc::default(),
        )
    }

    fn cheer(id: &str, provider: &str, user: &str, bits: u64) -> Event {
        let mut event = Event::new(
            id,
            provider,
            "chan",
            EventKind::Cheer(Cheer {
                user: UserRef::named(user),
                amount: bits,
                currency: "bits".into(),
                message: String::new(),
                anonymous: false,
            }),
        );
        if provider == "streamlabs" {
            event.raw = Some(json!({"type": "bits", "for": "twitch_account"}));
        }
        event
    }

    fn follow(id: &str, provider: &str, raw: serde_json::Value) -> Event {
        let mut event = Event::new(
            id,
            provider,
            "chan",
            EventKind::Follow(Follow {
                user: UserRef::named("Fan"),
            }),
        );
        event.raw = Some(raw);
        event
    }

    fn ids(events: &[Event]) -> Vec<&str> {
        events.iter().map(|e| e.id.as_str()).collect()
    }

    #[test]
    fn twitch_wins_over_a_held_report_in_either_order() {
        let check = check(Prefer::Twitch, true);
        let t0 = Instant::now();
        assert!(
            check
                .admit(cheer("sl:1", "streamlabs", "A", 100), t0)
                .is_none()
        );
        assert_eq!(check.held(), 1);
        let twitch = check.admit(
            cheer("twitch:1", "twitch", "a", 100),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(twitch.map(|e| e.id), Some("twitch:1".into()));
        assert_eq!(check.held(), 0);
        // Twitch first: the later report is dropped at once.
        let t1 = t0 + Duration::from_secs(3);
        assert!(
            check
                .admit(cheer("twitch:2", "twitch", "b", 5), t1)
                .is_some()
        );
        assert!(
            check
                .admit(cheer("sl:2", "streamlabs", "b", 5), t1)
                .is_none()
        );
        assert!(check.expire(t1 + Duration::from_secs(20), false).is_empty());
        assert_eq!(check.counters.cross_source.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn an_unmatched_report_is_released_after_the_window() {
        let check = check(Prefer::Twitch, true);
        let t0 = Instant::now();
        assert!(
            check
                .admit(cheer("sl:1", "streamlabs", "a", 100), t0)
                .is_none()
        );
        assert!(check.expire(t0 + Duration::from_secs(9), false).is_empty());
        let released = check.expire(t0 + Duration::from_secs(10), false);
        assert_eq!(ids(&released), ["sl:1"]);
        // Too late: EventSub's report is published on its own.
        assert!(
            check
                .admit(
                    cheer("twitch:1", "twitch", "a", 100),
                    t0 + Duration::from_secs(11)
                )
                .is_some()
        );
    }

    #[test]
    fn matching_is_one_to_one_and_needs_the_same_amount() {
        let check = check(Prefer::Twitch, true);
        let t0 = Instant::now();
        for id in ["twitch:1", "twitch:2"] {
            assert!(check.admit(cheer(id, "twitch", "a", 100), t0).is_some());
        }
        assert!(
            check
                .admit(cheer("sl:1", "streamlabs", "a", 100), t0)
                .is_none()
        );
        assert!(
            check
                .admit(cheer("sl:2", "streamlabs", "a", 100), t0)
                .is_none()
        );
        // A third Streamlabs cheer has no EventSub twin left: held, then released.
        assert!(
            check
                .admit(cheer("sl:3", "streamlabs", "a", 100), t0)
                .is_none()
        );
        assert!(
            check
                .admit(cheer("sl:4", "streamlabs", "a", 101), t0)
                .is_none()
        );
        let released = check.expire(t0 + Duration::from_secs(10), false);
        assert_eq!(ids(&released), ["sl:3", "sl:4"]);
    }

    #[test]
    fn first_wins_without_delay_and_across_streamelements_and_streamlabs() {
        let check = check(Prefer::First, true);
        let t0 = Instant::now();
        let sl = follow("sl:1", "streamlabs", json!({"for": "twitch_account"}));
        let se = follow("se:1", "streamelements", json!({"provider": "twitch"}));
        assert!(check.admit(sl, t0).is_some());
        assert!(check.admit(se, t0).is_none());
        let twitch = follow("twitch:1", "twitch", json!({}));
        assert!(check.admit(twitch, t0).is_none());
    }

    #[test]
    fn other_platforms_tips_and_tests_pass_untouched() {
        let check = check(Prefer::Twitch, true);
        let t0 = Instant::now();
        let youtube = follow("sl:1", "streamlabs", json!({"for": "youtube_account"}));
        assert!(check.admit(youtube, t0).is_some());
        let tip = Event::new(
            "sl:2",
            "streamlabs",
            "chan",
            EventKind::Tip(Tip {
                user: UserRef::named("a"),
                amount: 5.0,
                currency: "USD".into(),
                message: String::new(),
            }),
        );
        assert!(check.admit(tip, t0).is_some());
        assert!(
            check
                .admit(cheer("sl:3", "streamlabs", "a", 1).test(true), t0)
                .is_some()
        );
        assert_eq!(check.held(), 0);
    }

    #[test]
    fn nothing_is_held_when_twitch_is_not_running() {
        let check = check(Prefer::Twitch, false);
        let t0 = Instant::now();
        assert!(
            check
                .admit(cheer("sl:1", "streamlabs", "a", 100), t0)
                .is_some()
        );
        let se = cheer("se:1", "streamelements", "a", 100);
        assert!(check.admit(se, t0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_releaser_publishes_held_reports_and_flushes_at_stop() {
        let mut hub = super::super::Hub::new(
            crate::event::TopicRoot::new("stream").unwrap(),
            false,
            Duration::from_secs(60),
            0,
        );
        let out = hub.add_output("log", 16, super::super::OverflowPolicy::Block, true);
        let check = hub.enable_crosscheck(
            &DedupConfig {
                enabled: true,
                prefer: Prefer::Twitch,
                window_seconds: 10.0,
            },
            true,
        );
        let publisher = hub.publisher();
        let hub_stop = CancellationToken::new();
        let hub_task = tokio::spawn(hub.run(hub_stop.clone()));
        let stop = CancellationToken::new();
        let releaser = tokio::spawn(release_held(check, publisher.clone(), stop.clone()));

        publisher
            .event(cheer("sl:1", "streamlabs", "a", 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(out.pop().await.unwrap().message.id.as_deref(), Some("sl:1"));
        publisher
            .event(cheer("sl:2", "streamlabs", "a", 2))
            .await
            .unwrap();
        stop.cancel();
        releaser.await.unwrap();
        assert_eq!(out.pop().await.unwrap().message.id.as_deref(), Some("sl:2"));
        drop(publisher);
        hub_stop.cancel();
        hub_task.await.unwrap();
    }
}
