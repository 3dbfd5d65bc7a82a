//! Remembers recently seen event ids so a redelivered upstream event is published once.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ids are hashed for every event on the bus; foldhash (seeded per process) instead of SipHash,
/// and one shared copy of each id for the set and the order.
type Ids = HashSet<Arc<str>, foldhash::fast::RandomState>;

/// Ids seen within `window`, bounded to `max_ids` (the oldest are forgotten first).
pub struct DedupWindow {
    window: Duration,
    max_ids: usize,
    seen: Ids,
    order: VecDeque<(Instant, Arc<str>)>,
}

impl DedupWindow {
    pub fn new(window: Duration, max_ids: usize) -> Self {
        Self {
            window,
            max_ids: max_ids.max(1),
            seen: Ids::default(),
            order: VecDeque::new(),
        }
    }

    /// True the first time an id is seen within the window.
    pub fn first_sighting(&mut self, id: &str, now: Instant) -> bool {
        self.expire(now);
        if self.seen.contains(id) {
            return false;
        }
        self.remember(id, now);
        true
    }

    /// Records an id without asking, e.g. when reloading the log after a restart.
    pub fn remember(&mut self, id: &str, now: Instant) {
        let id: Arc<str> = Arc::from(id);
        if self.seen.insert(id.clone()) {
            self.order.push_back((now, id));
            while self.order.len() > self.max_ids {
                if let Some((_, old)) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.duration_since(*at) < self.window {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_repeats_within_the_window_only() {
        let mut dedup = DedupWindow::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        assert!(dedup.first_sighting("a", t0));
        assert!(!dedup.first_sighting("a", t0 + Duration::from_secs(5)));
        assert!(dedup.first_sighting("a", t0 + Duration::from_secs(11)));
    }

    #[test]
    fn is_bounded() {
        let mut dedup = DedupWindow::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        for id in ["a", "b", "c"] {
            assert!(dedup.first_sighting(id, t0));
        }
        assert_eq!(dedup.len(), 2);
        assert!(dedup.first_sighting("a", t0));
    }
}
