//! Runs one output: its queue, topic filter, retries, circuit breaker, counters and drain.
//!
//! Two tasks per output. The intake moves records from the hub's queue into the output's own
//! bounded queue, dropping the ones its `topics` do not match on the spot, so the bound only
//! ever counts records the output wants and a dead output's queue is not filled with chat it
//! would discard. The delivery task hands batches to the output, retrying transient failures
//! with exponential backoff and pausing behind an open circuit breaker. Neither ever waits on
//! the hub except with `policy = "block"`, so a slow output never delays MQTT or the others.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::{Common, OutputConfig};
use super::output::{Context, Failure, Health, Output, OutputError};
use crate::event::filter_matches;
use crate::hub::{BoundedQueue, Delivery, Hub, OverflowPolicy, QueueStats};

/// Records the hub may hand an output before its intake moved them on; the intake never does
/// I/O, so this only fills while the output's own queue is full under `policy = "block"`.
const HANDOVER: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breaker {
    Closed,
    Open,
    HalfOpen,
}

impl Breaker {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Open,
            2 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

/// What `/api/status` and `/metrics` show about one output.
pub struct OutputStatus {
    pub name: String,
    pub kind: &'static str,
    handover: Arc<BoundedQueue<Delivery>>,
    queue: Arc<BoundedQueue<Delivery>>,
    delivered: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    filtered: AtomicU64,
    breaker: AtomicU8,
    /// `None` while healthy; otherwise why not.
    problem: Mutex<Option<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputStats {
    pub kind: &'static str,
    pub policy: OverflowPolicy,
    pub capacity: usize,
    pub depth: usize,
    pub enqueued: u64,
    pub delivered: u64,
    /// Dropped by the overflow policy.
    pub dropped: u64,
    /// Given up on: rejected by the destination, or still undeliverable when the shutdown
    /// drain ran out of time.
    pub failed: u64,
    pub retried: u64,
    /// Not matched by `topics`.
    pub filtered: u64,
    pub breaker: Breaker,
    pub healthy: bool,
    pub problem: Option<String>,
}

impl OutputStatus {
    pub fn stats(&self) -> OutputStats {
        let own = self.queue.stats();
        let handover = self.handover.stats();
        OutputStats {
            kind: self.kind,
            policy: own.policy,
            capacity: own.capacity,
            depth: own.depth + handover.depth,
            enqueued: own.enqueued,
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: own.dropped + handover.dropped,
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            breaker: Breaker::from_u8(self.breaker.load(Ordering::Relaxed)),
            healthy: self.problem().is_none(),
            problem: self.problem(),
        }
    }

    /// The same numbers in the shape every hub output reports.
    pub fn queue_stats(&self) -> QueueStats {
        let s = self.stats();
        QueueStats {
            policy: s.policy,
            capacity: s.capacity,
            depth: s.depth,
            enqueued: s.enqueued,
            delivered: s.delivered,
            dropped: s.dropped,
        }
    }

    fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_health(&self, health: Health) {
        *self.problem.lock().unwrap_or_else(|e| e.into_inner()) = match health {
            Health::Up => None,
            Health::Down(why) => Some(why),
        };
    }

    fn set_breaker(&self, breaker: Breaker) {
        let value = match breaker {
            Breaker::Closed => 0,
            Breaker::Open => 1,
            Breaker::HalfOpen => 2,
        };
        self.breaker.store(value, Ordering::Relaxed);
    }
}

/// A started output; await [`Running::finish`] after the hub closed its queue.
pub struct Running {
    pub status: Arc<OutputStatus>,
    intake: JoinHandle<()>,
    delivery: JoinHandle<()>,
    draining: CancellationToken,
}

impl Running {
    /// Registers the output's queue with the hub; call before the hub runs.
    pub fn register(config: &OutputConfig, hub: &mut Hub) -> Registered {
        let common = &config.common;
        let handover = hub.add_output(common.name.clone(), HANDOVER, common.policy, true);
        let queue = Arc::new(BoundedQueue::new(common.queue, common.policy));
        Registered {
            config: config.clone(),
            status: Arc::new(OutputStatus {
                name: common.name.clone(),
                kind: config.kind,
                handover,
                queue,
                delivered: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                retried: AtomicU64::new(0),
                filtered: AtomicU64::new(0),
                breaker: AtomicU8::new(0),
                problem: Mutex::new(None),
            }),
        }
    }

    /// Waits until everything queued is delivered or the drain time ran out.
    pub async fn finish(self) {
        // The intake ends when the hub closes its queue; only then does the drain clock start.
        let _ = self.intake.await;
        self.draining.cancel();
        if let Err(e) = self.delivery.await {
            tracing::error!(output = %self.status.name, error = %e, "output task failed");
        }
    }
}

pub struct Registered {
    config: OutputConfig,
    pub status: Arc<OutputStatus>,
}

impl Registered {
    pub fn spawn(self, context: &Context) -> Running {
        let output = self.config.factory.build(context);
        let status = self.status;
        let draining = CancellationToken::new();
        let intake = tokio::spawn(intake(status.clone(), self.config.common.topics.clone()));
        let delivery = tokio::spawn(
            Delivering {
                output,
                status: status.clone(),
                common: self.config.common,
                draining: draining.clone(),
                deadline: None,
            }
            .run(),
        );
        Running {
            status,
            intake,
            delivery,
            draining,
        }
    }
}

async fn intake(status: Arc<OutputStatus>, topics: Vec<String>) {
    while let Some(record) = status.handover.pop().await {
        status.handover.mark_delivered(1);
        if topics.is_empty()
            || topics
                .iter()
                .any(|f| filter_matches(f, &record.message.topic))
        {
            status.queue.push(record).await;
        } else {
            status.filtered.fetch_add(1, Ordering::Relaxed);
        }
    }
    status.queue.close();
}

struct Delivering {
    output: Box<dyn Output>,
    status: Arc<OutputStatus>,
    common: Common,
    draining: CancellationToken,
    /// Set once the drain started: past it, what is left is given up.
    deadline: Option<Instant>,
}

enum Outcome {
    Done,
    /// Shutdown and the drain time is over.
    GaveUp,
}

impl Delivering {
    async fn run(mut self) {
        let name = self.status.name.clone();
        let mut batch = Vec::with_capacity(self.common.batch);
        let mut started = false;
        let mut failures: u32 = 0;
        let mut gave_up = false;
        while let Some(first) = self.status.queue.pop().await {
            batch.push(first);
            self.status
                .queue
                .drain_up_to(self.common.batch - 1, &mut batch);
            if gave_up {
                self.give_up(batch.len());
            } else if let Outcome::GaveUp = self.deliver(&batch, &mut started, &mut failures).await
            {
                gave_up = true;
            }
            self.status.queue.mark_delivered(batch.len() as u64);
            batch.clear();
        }
        if started
            && !gave_up
            && let Err(e) = self.output.flush().await
        {
            tracing::error!(output = %name, error = %e, "output flush failed at shutdown");
        }
    }

    /// Delivers one batch, retrying until it is through, or the drain time is over.
    async fn deliver(
        &mut self,
        batch: &[Delivery],
        started: &mut bool,
        failures: &mut u32,
    ) -> Outcome {
        let mut done = 0;
        while done < batch.len() {
            if self.past_deadline() {
                self.give_up(batch.len() - done);
                return Outcome::GaveUp;
            }
            let limit = self.attempt_timeout();
            let attempt = async {
                if !*started {
                    self.output.start().await?;
                    *started = true;
                }
                self.output.deliver(&batch[done..]).await
            };
            let result = match tokio::time::timeout(limit, attempt).await {
                Ok(result) => result,
                Err(_) => Err(OutputError::transient(format!(
                    "no answer within {} s",
                    self.common.timeout_seconds
                ))),
            };
            self.status.set_health(self.output.health());
            let error = match result {
                Ok(()) => {
                    self.count(&self.status.delivered, batch.len() - done);
                    *failures = 0;
                    self.status.set_breaker(Breaker::Closed);
                    return Outcome::Done;
                }
                Err(error) => error,
            };
            let progress = error.delivered.min(batch.len() - done);
            self.count(&self.status.delivered, progress);
            done += progress;
            match error.failure {
                Failure::Rejected => {
                    tracing::warn!(output = %self.status.name, seq = batch.get(done).map(|r| r.seq), error = %error, "record rejected; skipped");
                    self.count(&self.status.failed, 1);
                    done += 1;
                }
                Failure::Transient => {
                    *started = false;
                    self.count(&self.status.retried, 1);
                    self.status.set_health(Health::Down(error.to_string()));
                    if let Some(wait) = error.retry_after {
                        tracing::info!(output = %self.status.name, wait_ms = wait.as_millis() as u64, "asked to wait");
                        self.pause(wait).await;
                        continue;
                    }
                    *failures += 1;
                    let half_open = Breaker::from_u8(self.status.breaker.load(Ordering::Relaxed))
                        == Breaker::HalfOpen;
                    if half_open || *failures >= self.common.breaker_failures {
                        if !half_open {
                            tracing::warn!(output = %self.status.name, error = %error, "circuit breaker open after {} failures", *failures);
                        }
                        self.status.set_breaker(Breaker::Open);
                        self.pause(self.common.breaker_cooldown()).await;
                        self.status.set_breaker(Breaker::HalfOpen);
                    } else {
                        tracing::debug!(output = %self.status.name, error = %error, "retrying");
                        self.pause(self.backoff(*failures)).await;
                    }
                }
            }
        }
        Outcome::Done
    }

    fn count(&self, counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn backoff(&self, failures: u32) -> Duration {
        let doubled = self
            .common
            .retry_initial()
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        doubled.min(self.common.retry_max())
    }

    fn past_deadline(&mut self) -> bool {
        if self.deadline.is_none() && self.draining.is_cancelled() {
            self.deadline = Some(Instant::now() + self.common.drain());
        }
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn attempt_timeout(&mut self) -> Duration {
        let timeout = self.common.timeout();
        match self.deadline {
            Some(deadline) => timeout.min(deadline.saturating_duration_since(Instant::now())),
            None => timeout,
        }
    }

    /// Sleeps `wait`, cut short by the end of the drain time.
    async fn pause(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            self.past_deadline();
            let until = self.deadline.map_or(until, |d| d.min(until));
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                _ = self.draining.cancelled(), if self.deadline.is_none() => {}
            }
        }
    }

    fn give_up(&self, n: usize) {
        tracing::error!(output = %self.status.name, records = n, "shutdown: output unreachable, records not delivered");
        self.count(&self.status.failed, n);
    }
}
