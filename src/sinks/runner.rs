//! Runs one output: its queue, topic filter, retries, circuit breaker, counters and drain.
//!
//! Two tasks per output. The intake moves records from the hub's handover queue into the
//! output's own bounded queue, dropping the ones its `topics` do not match on the spot, so the
//! bound only ever counts records the output wants and a dead output's queue is not filled
//! with chat it would discard. The delivery task hands batches to the output, retrying
//! transient failures with exponential backoff and pausing behind an open circuit breaker.
//! Neither ever waits on the hub, and the intake only waits on the output with
//! `policy = "block"`, so a slow output never delays MQTT or the others.

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

/// Records the hub may hand an output before its intake moved them on. The intake never does
/// I/O, so this only fills while the output's own queue is full under `policy = "block"`; it
/// blocks the hub then (whatever the policy, so that the overflow policy applies in one place,
/// the output's own queue, where every loss is counted).
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

/// Where every record an output took on (matched by its `topics`) is.
///
/// Invariant, in every snapshot `/api/status` and `/metrics` read:
/// `enqueued = delivered + queued + dropped + failed`. A record is counted in `enqueued` and
/// `queued` together when it is taken on, and moves out of `queued` into exactly one of the
/// other three when its fate is known; each move is one update under one lock, so no reader
/// sees a record in two places or in none. `queued` includes the batch being delivered, not
/// only what waits in the queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    enqueued: u64,
    delivered: u64,
    queued: u64,
    dropped: u64,
    failed: u64,
}

impl Counts {
    fn take_on(&mut self) {
        self.enqueued += 1;
        self.queued += 1;
    }

    /// `n` queued records leave the queue for `to` (`delivered`, `dropped` or `failed`).
    fn settle(&mut self, n: u64, to: fn(&mut Self) -> &mut u64) {
        // Never more than are queued, so a miscount cannot break the invariant.
        let n = n.min(self.queued);
        self.queued -= n;
        *to(self) += n;
    }
}

/// What `/api/status` and `/metrics` show about one output.
pub struct OutputStatus {
    pub name: String,
    pub kind: &'static str,
    handover: Arc<BoundedQueue<Delivery>>,
    queue: Arc<BoundedQueue<Delivery>>,
    counts: Mutex<Counts>,
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
    /// Records taken on and not settled yet: waiting in the queue or being delivered.
    pub depth: usize,
    /// Records taken on (matched by `topics`); always `delivered + depth + dropped + failed`.
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
        let counts = self.counts();
        OutputStats {
            kind: self.kind,
            policy: own.policy,
            capacity: own.capacity,
            depth: counts.queued as usize,
            enqueued: counts.enqueued,
            delivered: counts.delivered,
            dropped: counts.dropped,
            failed: counts.failed,
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

    fn counts(&self) -> Counts {
        *self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Counts)) {
        change(&mut self.counts.lock().unwrap_or_else(|e| e.into_inner()));
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
        let handover = hub.add_output(common.name.clone(), HANDOVER, OverflowPolicy::Block, true);
        let queue = Arc::new(BoundedQueue::new(common.queue, common.policy));
        Registered {
            config: config.clone(),
            status: Arc::new(OutputStatus {
                name: common.name.clone(),
                kind: config.kind,
                handover,
                queue,
                counts: Mutex::new(Counts::default()),
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
            // The intake is the only one pushing, so the queue's drop count grows only by what
            // this push dropped: the new record (drop_newest) or the oldest (drop_oldest).
            let dropped_before = status.queue.counters.dropped.load(Ordering::SeqCst);
            status.update(Counts::take_on);
            status.queue.push(record).await;
            let dropped = status.queue.counters.dropped.load(Ordering::SeqCst) - dropped_before;
            if dropped > 0 {
                status.update(|c| c.settle(dropped, |c| &mut c.dropped));
            }
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
                    self.settle(batch.len() - done, |c| &mut c.delivered);
                    *failures = 0;
                    self.status.set_breaker(Breaker::Closed);
                    return Outcome::Done;
                }
                Err(error) => error,
            };
            let progress = error.delivered.min(batch.len() - done);
            self.settle(progress, |c| &mut c.delivered);
            done += progress;
            match error.failure {
                Failure::Rejected => {
                    tracing::warn!(output = %self.status.name, seq = batch.get(done).map(|r| r.seq), error = %error, "record rejected; skipped");
                    self.settle(1, |c| &mut c.failed);
                    done += 1;
                }
                Failure::Transient => {
                    *started = false;
                    self.status.retried.fetch_add(1, Ordering::Relaxed);
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
                        self.pause(self.common.retry().delay(*failures - 1)).await;
                    }
                }
            }
        }
        Outcome::Done
    }

    fn settle(&self, n: usize, to: fn(&mut Counts) -> &mut u64) {
        self.status.update(|c| c.settle(n as u64, to));
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
        self.settle(n, |c| &mut c.failed);
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use tokio::sync::{mpsc, oneshot};

    use super::*;
    use crate::event::TopicRoot;
    use crate::hub::{Message, Origin, Record};
    use crate::sinks::output::Factory;

    /// What the scripted output answers to one `deliver` call.
    enum Answer {
        Ok,
        Reject,
        Transient,
    }

    /// Each `deliver` call reports the seqs it got and waits for the test's answer, so the
    /// test can read the counters while a batch is in flight.
    type Call = (Vec<u64>, oneshot::Sender<Answer>);

    #[derive(Debug)]
    struct Scripted(mpsc::UnboundedSender<Call>);

    impl Factory for Scripted {
        fn build(&self, _context: &Context) -> Box<dyn Output> {
            Box::new(ScriptedOutput(self.0.clone()))
        }
    }

    struct ScriptedOutput(mpsc::UnboundedSender<Call>);

    #[async_trait]
    impl Output for ScriptedOutput {
        async fn start(&mut self) -> Result<(), OutputError> {
            Ok(())
        }

        async fn deliver(&mut self, batch: &[Delivery]) -> Result<(), OutputError> {
            let (answer, answered) = oneshot::channel();
            let seqs = batch.iter().map(|r| r.seq).collect();
            self.0.send((seqs, answer)).expect("the test listens");
            match answered.await.expect("the test answers") {
                Answer::Ok => Ok(()),
                Answer::Reject => Err(OutputError::rejected("no")),
                Answer::Transient => Err(OutputError::transient("down")),
            }
        }

        async fn flush(&mut self) -> Result<(), OutputError> {
            Ok(())
        }

        fn health(&self) -> Health {
            Health::Up
        }
    }

    fn record(seq: u64, topic: &str) -> Delivery {
        Arc::new(Record::new(
            seq,
            Message {
                topic: topic.into(),
                payload: "{}".into(),
                retain: false,
                origin: Origin::Daemon,
                id: None,
            },
        ))
    }

    #[track_caller]
    fn assert_adds_up(status: &OutputStatus) -> OutputStats {
        let s = status.stats();
        assert_eq!(
            s.enqueued,
            s.delivered + s.depth as u64 + s.dropped + s.failed,
            "{s:?}"
        );
        s
    }

    #[tokio::test]
    async fn counters_add_up_through_drops_rejections_retries_and_in_flight_batches() {
        let (calls_tx, mut calls) = mpsc::unbounded_channel();
        let config = OutputConfig {
            kind: "scripted",
            common: Common {
                name: "scripted".into(),
                topics: vec!["a/#".into()],
                queue: 2,
                batch: 1,
                retry_initial_ms: 1,
                ..Common::default()
            },
            factory: Arc::new(Scripted(calls_tx)),
        };
        let root = TopicRoot::new("stream").unwrap();
        let mut hub = Hub::new(root, false, Duration::from_secs(60), 0);
        let registered = Running::register(&config, &mut hub);
        let status = registered.status.clone();
        let context = Context {
            state_dir: std::env::temp_dir(),
        };
        let running = registered.spawn(&context);
        assert_adds_up(&status);

        status.handover.push(record(1, "a/1")).await;
        let (seqs, first) = calls.recv().await.unwrap();
        assert_eq!(seqs, [1]);
        // While 1 is in flight: 2 and 4 fill the queue, 3 is filtered, 5 pushes 2 out.
        for (seq, topic) in [(2, "a/2"), (3, "b/3"), (4, "a/4"), (5, "a/5")] {
            status.handover.push(record(seq, topic)).await;
        }
        while status.stats().enqueued + status.filtered.load(Ordering::Relaxed) < 5 {
            assert_adds_up(&status);
            tokio::task::yield_now().await;
        }
        let s = assert_adds_up(&status);
        assert_eq!((s.enqueued, s.depth, s.dropped), (4, 3, 1), "{s:?}");

        let _ = first.send(Answer::Reject);
        let (seqs, answer) = calls.recv().await.unwrap();
        assert_eq!(seqs, [4]);
        let s = assert_adds_up(&status);
        assert_eq!((s.depth, s.failed), (2, 1), "{s:?}");
        let _ = answer.send(Answer::Transient);
        let (seqs, answer) = calls.recv().await.unwrap();
        assert_eq!(seqs, [4], "retried");
        assert_adds_up(&status);
        let _ = answer.send(Answer::Ok);
        let (seqs, answer) = calls.recv().await.unwrap();
        assert_eq!(seqs, [5]);
        let s = assert_adds_up(&status);
        assert_eq!((s.depth, s.delivered, s.retried), (1, 1, 1), "{s:?}");
        let _ = answer.send(Answer::Ok);

        status.handover.close();
        running.finish().await;
        let s = assert_adds_up(&status);
        assert_eq!(
            (
                s.enqueued,
                s.delivered,
                s.depth,
                s.dropped,
                s.failed,
                s.filtered
            ),
            (4, 2, 0, 1, 1, 1),
            "{s:?}"
        );
    }
}
