//! Session totals: what the current stream brought in, on retained `R/synthetic/totals`.
//!
//! A session runs from an `online` event to the next `offline` event of the same channel. An
//! `online` starts fresh totals (a repeated `online` for the same stream does not); after
//! `offline` the final totals stay published and nothing more is added until the next
//! `online`. Before the first `online` ever seen (ongwatch started mid-stream, or only test
//! triggers so far) everything is counted, with no `session_started_at`.
//!
//! The state is kept in `<state dir>/totals.json` (atomic write): at once on `online` and
//! `offline`, otherwise at most [`SAVE_DELAY`] after a change and when the daemon stops, so a
//! burst of support costs one disk write, and a restart within the session continues the count.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use crate::event::{Direction, Event, EventKind, Kind, Totals, format_time};
use crate::hub::{BoundedQueue, Delivery, Publisher};

/// The file in the state dir.
pub const FILE: &str = "totals.json";
/// How long a change may wait before it is written (a crash loses at most this much).
const SAVE_DELAY: Duration = Duration::from_secs(1);
/// During a burst the totals are published at most this often: the first change at once, the
/// latest of each channel when the interval is over. A cheer storm then puts ten totals a
/// second on the bus instead of one per cheer, which had doubled the records every output
/// carries; an overlay or a bot still sees every change within this time.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(100);

/// What the totals count; the hub wakes it for these topics only.
pub(super) const KINDS: &[Kind] = &[
    Kind::Online,
    Kind::Offline,
    Kind::Cheer,
    Kind::Powerup,
    Kind::Tip,
    Kind::Sub,
    Kind::Resub,
    Kind::Gift,
    Kind::Follow,
    Kind::Raid,
];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Session {
    live: bool,
    totals: Totals,
}

/// Every channel's session, as stored in the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sessions {
    channels: BTreeMap<String, Session>,
}

/// What an event did to the sessions.
#[derive(Debug, PartialEq)]
pub enum Change {
    /// Nothing (not support, or outside a session).
    None,
    /// Totals changed; publish them, save soon.
    Counted(Totals),
    /// A session started or ended; publish, save now.
    Session(Totals),
}

impl Sessions {
    /// Reads the file; a missing one is an empty state, a broken one is logged and replaced.
    pub fn load(path: &Path) -> Self {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "session totals unreadable; starting from zero");
                Self::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "session totals unreadable; starting from zero");
                Self::default()
            }
        }
    }

    pub fn totals(&self) -> impl Iterator<Item = (&String, &Totals)> {
        self.channels
            .iter()
            .map(|(channel, s)| (channel, &s.totals))
    }

    pub fn apply(&mut self, event: &Event) -> Change {
        // Support given in a partner channel of a shared chat session is theirs, not ours.
        if event.is_partner() {
            return Change::None;
        }
        let session = self.channels.entry(event.channel.clone()).or_default();
        match &event.kind {
            EventKind::Online(online) => {
                let started = online
                    .started_at
                    .clone()
                    .unwrap_or_else(|| format_time(&event.time));
                if session.live && session.totals.session_started_at.as_deref() == Some(&started) {
                    return Change::None;
                }
                *session = Session {
                    live: true,
                    totals: Totals {
                        session_started_at: Some(started),
                        ..Totals::default()
                    },
                };
                return Change::Session(session.totals.clone());
            }
            EventKind::Offline(_) => {
                if !session.live {
                    return Change::None;
                }
                session.live = false;
                return Change::Session(session.totals.clone());
            }
            _ => {}
        }
        let counting = session.live || session.totals.session_started_at.is_none();
        if !counting {
            return Change::None;
        }
        let totals = &mut session.totals;
        match &event.kind {
            EventKind::Cheer(cheer) => totals.bits += cheer.amount,
            EventKind::Powerup(powerup) => totals.bits += powerup.amount,
            EventKind::Tip(tip) if tip.amount.is_finite() => {
                let sum = totals
                    .tips
                    .entry(tip.currency.to_ascii_uppercase())
                    .or_default();
                // Cents added as floats drift (0.1 + 0.2); four decimals cover every currency.
                *sum = ((*sum + tip.amount) * 10_000.0).round() / 10_000.0;
            }
            // Gifted subs are counted once, as gifts.
            EventKind::Sub(sub) if !sub.is_gift => totals.subs += 1,
            EventKind::Resub(_) => totals.subs += 1,
            EventKind::Gift(gift) => totals.gifts += u64::from(gift.count),
            EventKind::Follow(_) => totals.follows += 1,
            EventKind::Raid(raid) if raid.direction == Direction::Incoming => totals.raids += 1,
            _ => return Change::None,
        }
        Change::Counted(totals.clone())
    }
}

fn totals_event(channel: &str, totals: Totals) -> Event {
    Event::new(
        format!("ongwatch:totals:{}", uuid::Uuid::new_v4().simple()),
        "ongwatch",
        channel,
        EventKind::Totals(totals),
    )
}

async fn save(path: &Path, sessions: &Sessions) {
    let Ok(bytes) = serde_json::to_vec_pretty(sessions) else {
        return;
    };
    let path_buf = path.to_path_buf();
    let written =
        tokio::task::spawn_blocking(move || crate::state::write_private_atomic(&path_buf, &bytes))
            .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the session totals")
        }
        Err(e) => tracing::warn!(error = %e, "the session totals writer failed"),
    }
}

/// Totals waiting for the end of the publish interval, per channel.
#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    pending: BTreeMap<String, Totals>,
}

impl Throttle {
    /// Takes a change: `Some` to publish at once, `None` when it waits for [`Self::due`].
    fn counted(&mut self, channel: &str, totals: Totals, now: Instant) -> Option<Totals> {
        let free =
            self.pending.is_empty() && self.last.is_none_or(|last| now >= last + PUBLISH_INTERVAL);
        if free {
            self.last = Some(now);
            return Some(totals);
        }
        self.pending.insert(channel.to_owned(), totals);
        None
    }

    /// A session began or ended: published at once, replacing what waited for that channel.
    fn session(&mut self, channel: &str, now: Instant) {
        self.pending.remove(channel);
        self.last = Some(now);
    }

    fn due(&self) -> Option<Instant> {
        let last = self.last?;
        (!self.pending.is_empty()).then(|| last + PUBLISH_INTERVAL)
    }

    fn take(&mut self, now: Instant) -> BTreeMap<String, Totals> {
        self.last = Some(now);
        std::mem::take(&mut self.pending)
    }
}

async fn publish_all(publisher: &Publisher, totals: BTreeMap<String, Totals>) -> bool {
    for (channel, totals) in totals {
        if publisher
            .event(totals_event(&channel, totals))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

/// Runs until the hub closes `queue`, then saves. Publishes the stored totals at start.
pub async fn run(queue: Arc<BoundedQueue<Delivery>>, publisher: Publisher, state_dir: PathBuf) {
    let path = state_dir.join(FILE);
    let mut sessions = Sessions::load(&path);
    let root = publisher.root().clone();
    let stored: BTreeMap<String, Totals> = sessions
        .totals()
        .map(|(channel, totals)| (channel.clone(), totals.clone()))
        .collect();
    if !publish_all(&publisher, stored).await {
        return;
    }
    let mut save_at: Option<Instant> = None;
    let mut throttle = Throttle::default();
    loop {
        tokio::select! {
            record = queue.pop() => {
                let Some(record) = record else { break };
                queue.mark_delivered(1);
                let Some(event) = super::event_of(&record, &root, KINDS) else { continue };
                let now = Instant::now();
                let totals = match sessions.apply(event) {
                    Change::None => continue,
                    Change::Counted(totals) => {
                        save_at.get_or_insert_with(|| now + SAVE_DELAY);
                        throttle.counted(&event.channel, totals, now)
                    }
                    Change::Session(totals) => {
                        save(&path, &sessions).await;
                        save_at = None;
                        throttle.session(&event.channel, now);
                        Some(totals)
                    }
                };
                if let Some(totals) = totals
                    && publisher.event(totals_event(&event.channel, totals)).await.is_err()
                {
                    break;
                }
            }
            _ = super::hype::sleep_until(throttle.due()) => {
                if !publish_all(&publisher, throttle.take(Instant::now())).await {
                    break;
                }
            }
            _ = super::hype::sleep_until(save_at) => {
                save(&path, &sessions).await;
                save_at = None;
            }
        }
    }
    // What still waited is in the saved state, published again at the next start if the hub
    // no longer takes it now.
    publish_all(&publisher, throttle.take(Instant::now())).await;
    if save_at.is_some() {
        save(&path, &sessions).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cheer, Follow, Offline, Online, Tip, UserRef};

    fn event(kind: EventKind) -> Event {
        Event::new("x", "twitch", "chan", kind)
    }

    fn cheer(bits: u64) -> Event {
        event(EventKind::Cheer(Cheer {
            user: UserRef::named("a"),
            amount: bits,
            currency: "bits".into(),
            message: String::new(),
            anonymous: false,
        }))
    }

    fn tip(amount: f64) -> Event {
        event(EventKind::Tip(Tip {
            user: UserRef::named("a"),
            amount,
            currency: "usd".into(),
            message: String::new(),
        }))
    }

    fn online(started: &str) -> Event {
        event(EventKind::Online(Online {
            started_at: Some(started.into()),
            title: None,
            category: None,
        }))
    }

    fn counted(change: Change) -> Totals {
        match change {
            Change::Counted(totals) | Change::Session(totals) => totals,
            Change::None => panic!("nothing changed"),
        }
    }

    #[test]
    fn a_session_runs_from_online_to_offline() {
        let mut sessions = Sessions::default();
        assert_eq!(counted(sessions.apply(&cheer(10))).bits, 10);
        let fresh = counted(sessions.apply(&online("2026-03-13T20:00:00Z")));
        assert_eq!(fresh.bits, 0);
        assert_eq!(
            fresh.session_started_at.as_deref(),
            Some("2026-03-13T20:00:00Z")
        );
        sessions.apply(&cheer(100));
        sessions.apply(&tip(0.1));
        sessions.apply(&tip(0.2));
        sessions.apply(&event(EventKind::Follow(Follow {
            user: UserRef::named("b"),
        })));
        // The same stream announced twice is one session.
        assert_eq!(
            sessions.apply(&online("2026-03-13T20:00:00Z")),
            Change::None
        );
        let end = counted(sessions.apply(&event(EventKind::Offline(Offline {}))));
        assert_eq!(end.bits, 100);
        assert_eq!(end.tips["USD"], 0.3);
        assert_eq!(end.follows, 1);
        assert_eq!(sessions.apply(&cheer(5)), Change::None);
        assert_eq!(
            counted(sessions.apply(&online("2026-03-14T20:00:00Z"))).bits,
            0
        );
        // A partner channel's cheer during shared chat is not ours to count.
        let partner = cheer(500).from_partner(None, Some("112233".into()));
        assert_eq!(sessions.apply(&partner), Change::None);
        assert_eq!(counted(sessions.apply(&cheer(7))).bits, 7);
    }

    #[tokio::test]
    async fn totals_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let mut sessions = Sessions::default();
        sessions.apply(&online("2026-03-13T20:00:00Z"));
        sessions.apply(&cheer(42));
        save(&path, &sessions).await;
        assert_eq!(Sessions::load(&path), sessions);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(Sessions::load(&path), Sessions::default());
    }

    #[test]
    fn a_burst_publishes_the_first_change_at_once_and_the_latest_after_the_interval() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let with_bits = |bits| Totals {
            bits,
            ..Totals::default()
        };
        let mut throttle = Throttle::default();
        assert_eq!(
            throttle.counted("a", with_bits(1), at(0)),
            Some(with_bits(1))
        );
        assert_eq!(throttle.due(), None);
        assert_eq!(throttle.counted("a", with_bits(2), at(10)), None);
        assert_eq!(throttle.counted("a", with_bits(3), at(20)), None);
        assert_eq!(throttle.counted("b", with_bits(7), at(30)), None);
        assert_eq!(throttle.due(), Some(at(100)));
        let waiting = throttle.take(at(100));
        assert_eq!(waiting["a"], with_bits(3));
        assert_eq!(waiting["b"], with_bits(7));
        assert_eq!(throttle.due(), None);
        // Within the interval after that publish a change waits again; a session change does
        // not, and what waited for its channel is superseded.
        assert_eq!(throttle.counted("a", with_bits(4), at(150)), None);
        throttle.session("a", at(160));
        assert_eq!(throttle.due(), None);
        // After a quiet interval the next change goes out at once.
        assert_eq!(
            throttle.counted("a", with_bits(5), at(300)),
            Some(with_bits(5))
        );
    }
}
