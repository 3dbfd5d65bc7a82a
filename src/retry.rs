//! The one retry schedule of every reconnecting component: the socket providers, OBS, Twitch
//! EventSub, the chat client, the MQTT bridge and the `[[outputs]]` runner.
//!
//! A foundation module: it depends on nothing else in the crate. Each component keeps its own
//! loop (what it reports between attempts, when a connection counts as healthy) and asks a
//! [`Backoff`] only how long to wait. The delay of retry `n` (0 = the first) is
//! `initial * 2^n`, capped at `max`, then jittered by the policy's [`Jitter`].
//!
//! backon's builders were weighed and not taken: their jitter only adds (up to twice the cap),
//! they end after three attempts unless told otherwise, and their `Retryable` wraps a single
//! future, while every loop here reports a state between attempts and resets on its own signal.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How a step of the schedule is spread, so many daemons cut off by one outage do not come
/// back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Exactly the step: for delays a status page or a test predicts.
    None,
    /// Uniformly between half and all of the step: never longer than the cap, which the state
    /// messages ("reconnecting in 30 s") promise.
    Spread,
    /// The step plus up to a quarter of it.
    Add,
}

/// Exponential backoff: `initial`, doubling per failure, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub initial: Duration,
    pub max: Duration,
    pub jitter: Jitter,
}

impl Policy {
    /// A policy with [`Jitter::Spread`].
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            jitter: Jitter::Spread,
        }
    }

    pub const fn jitter(self, jitter: Jitter) -> Self {
        Self { jitter, ..self }
    }

    /// The un-jittered delay before retry `n` (0 = the first): `initial * 2^n`, at most `max`.
    pub fn step(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry `n`, jittered.
    pub fn delay(&self, n: u32) -> Duration {
        let step = self.step(n);
        match self.jitter {
            Jitter::None => step,
            Jitter::Spread => step.mul_f64(rand::random_range(0.5..=1.0)),
            Jitter::Add => step.mul_f64(rand::random_range(1.0..=1.25)),
        }
    }

    /// A fresh schedule starting at `initial`.
    pub fn backoff(self) -> Backoff {
        Backoff {
            policy: self,
            failures: 0,
        }
    }
}

/// A schedule in progress: counts the failures since the last healthy connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: Policy,
    failures: u32,
}

impl Backoff {
    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.policy.delay(self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// After a healthy connection: the next failure waits `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }
}

/// Sleeps `delay`, or returns false as soon as `cancel` fires (shutdown).
pub async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn steps_double_up_to_the_cap_without_overflow() {
        let policy = Policy::new(100 * MS, 1000 * MS).jitter(Jitter::None);
        let steps: Vec<u64> = (0..7).map(|n| policy.step(n).as_millis() as u64).collect();
        assert_eq!(steps, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(policy.step(u32::MAX), 1000 * MS);
        let huge = Policy::new(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        assert_eq!(huge.step(40), Duration::MAX);
    }

    #[test]
    fn spread_jitter_stays_between_half_and_the_step() {
        let mut backoff = Policy::new(100 * MS, 1000 * MS).backoff();
        for ceiling in [100, 200, 400, 800, 1000, 1000, 1000] {
            let d = backoff.next_delay();
            let ceiling = ceiling * MS;
            assert!(d <= ceiling && d >= ceiling / 2, "{d:?} vs {ceiling:?}");
        }
        for _ in 0..1000 {
            let d = backoff.next_delay();
            assert!(d >= 500 * MS && d <= 1000 * MS, "{d:?}");
        }
    }

    #[test]
    fn add_jitter_stays_within_a_quarter_above_the_step() {
        let policy = Policy::new(200 * MS, Duration::from_secs(10)).jitter(Jitter::Add);
        for _ in 0..1000 {
            let d = policy.delay(0);
            assert!(d >= 200 * MS && d <= 250 * MS, "{d:?}");
            let d = policy.delay(10);
            assert!(d >= Duration::from_secs(10) && d <= Duration::from_millis(12_500));
        }
    }

    #[test]
    fn no_jitter_is_exact() {
        let policy = Policy::new(50 * MS, 500 * MS).jitter(Jitter::None);
        let delays: Vec<Duration> = {
            let mut backoff = policy.backoff();
            (0..5).map(|_| backoff.next_delay()).collect()
        };
        assert_eq!(delays, [50 * MS, 100 * MS, 200 * MS, 400 * MS, 500 * MS]);
    }

    #[test]
    fn reset_after_a_healthy_connection_starts_over() {
        let mut backoff = Policy::new(100 * MS, Duration::from_secs(60))
            .jitter(Jitter::None)
            .backoff();
        for _ in 0..8 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), Duration::from_secs(25) + 600 * MS);
        backoff.reset();
        assert_eq!(backoff.next_delay(), 100 * MS);
        assert_eq!(backoff.next_delay(), 200 * MS);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_loop_waits_the_schedule_on_the_paused_clock() {
        let mut backoff = Policy::new(Duration::from_secs(1), Duration::from_secs(4))
            .jitter(Jitter::None)
            .backoff();
        let cancel = CancellationToken::new();
        let start = tokio::time::Instant::now();
        for _ in 0..4 {
            assert!(sleep_or_cancel(backoff.next_delay(), &cancel).await);
        }
        // 1 + 2 + 4 + 4 seconds of virtual time, none of it on the wall clock.
        assert_eq!(start.elapsed(), Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_a_wait_short() {
        let cancel = CancellationToken::new();
        let start = tokio::time::Instant::now();
        let waiting = tokio::spawn({
            let cancel = cancel.clone();
            async move { sleep_or_cancel(Duration::from_secs(3600), &cancel).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        cancel.cancel();
        assert!(!waiting.await.unwrap());
        assert!(start.elapsed() < Duration::from_secs(3600));
    }
}
