//! Message and join limits as sliding windows on tokio's clock (so tests run them on a paused
//! clock).
//!
//! Twitch counts uses in any window of the period ("20 messages per 30 seconds"). A bucket that
//! refills continuously would let a full bucket plus the refill through within one window and
//! get the account locked out; here every use holds a token that comes back exactly one period
//! after it was spent, so no window ever sees more than the limit.

use std::collections::VecDeque;

use tokio::time::{Duration, Instant};

#[derive(Debug)]
pub struct Window {
    limit: usize,
    period: Duration,
    /// When each token still out was spent, oldest first.
    spent: VecDeque<Instant>,
}

impl Window {
    pub fn new(limit: usize, period: Duration) -> Self {
        Self {
            limit: limit.max(1),
            period,
            spent: VecDeque::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the limit (e.g. the account became a moderator); tokens already spent still
    /// count against the new limit.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&oldest) = self.spent.front() {
            if oldest + self.period <= now {
                self.spent.pop_front();
            } else {
                break;
            }
        }
    }

    /// The earliest moment a use is allowed: `now` when a token is free.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        self.expire(now);
        if self.spent.len() < self.limit {
            return now;
        }
        // With a lowered limit more tokens may be out than allowed: wait for enough of them.
        let index = self.spent.len() - self.limit;
        self.spent
            .get(index)
            .map_or(now, |&spent| spent + self.period)
    }

    /// Spends a token if one is free.
    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.ready_at(now) <= now {
            self.spent.push_back(now);
            true
        } else {
            false
        }
    }

    /// Waits for a free token and spends it.
    pub async fn take(&mut self) {
        loop {
            let now = Instant::now();
            if self.try_take(now) {
                return;
            }
            tokio::time::sleep_until(self.ready_at(now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        let start = Instant::now();
        let mut window = Window::new(3, Duration::from_secs(30));
        let mut at = Vec::new();
        for _ in 0..7 {
            window.take().await;
            at.push(Instant::now() - start);
        }
        let secs: Vec<u64> = at.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [0, 0, 0, 30, 30, 30, 60]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowered_limit_waits_for_enough_tokens() {
        let start = Instant::now();
        let mut window = Window::new(5, Duration::from_secs(30));
        for _ in 0..5 {
            window.take().await;
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        window.set_limit(2);
        assert!(!window.try_take(Instant::now()));
        window.take().await;
        assert_eq!((Instant::now() - start).as_secs(), 30);
    }
}
