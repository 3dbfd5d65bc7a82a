//! The daemon's long-running tasks, watched: a task that ends or panics before shutdown is
//! logged at once, shown on `/api/status` and the dashboard, and then restarted or made to stop
//! the daemon, by the [`Policy`] it was started with.
//!
//! Without this, a source or the log writer that died early was noticed by nobody until the
//! shutdown awaited it. A foundation module: it knows tasks, not what they do.
//!
//! Each supervised task is one tokio task running a loop around the real one, so the daemon
//! still awaits each in its shutdown order ([`Supervised::wait`]); an end after the daemon's
//! shutdown began is the normal end and is not reported.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::retry::{Backoff, Policy as RetryPolicy, sleep_or_cancel};

/// What happens when a task ends before shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Start it again after a backoff (1 s doubling to 60 s; back to 1 s once it ran a minute).
    /// For tasks that own nothing another run cannot pick up again: sources, processors.
    Restart,
    /// Stop the daemon (exit 1 after an orderly shutdown). For tasks without which events
    /// would be lost: the hub, the write-ahead log, the MQTT bridge.
    StopDaemon,
}

/// What `/api/status` shows of a task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub policy: Policy,
    /// `running`, `restarting`, `failed` (ended; the daemon is stopping) or `stopped`.
    pub state: &'static str,
    /// Times it was started again after ending early.
    pub restarts: u32,
    /// How it last ended early ("panicked: ..." or "ended"), if it ever did.
    pub last_failure: Option<String>,
}

/// A task runs at least this long for its next failure to be retried quickly again.
const HEALTHY: Duration = Duration::from_secs(60);
const RESTART: RetryPolicy = RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(60));

/// Starts supervised tasks and keeps their reports.
#[derive(Clone)]
pub struct Supervisor {
    reports: Arc<Mutex<BTreeMap<String, TaskReport>>>,
    /// The daemon's shutdown: from then on a task's end is expected.
    shutdown: CancellationToken,
    /// Cancelled when a [`Policy::StopDaemon`] task ended early.
    fatal: CancellationToken,
    /// Why the first fatal end happened, for the daemon's exit message.
    fatal_reason: Arc<Mutex<Option<String>>>,
}

/// One supervised task; await it in the shutdown order with [`Supervised::wait`].
pub struct Supervised {
    handle: JoinHandle<()>,
}

impl Supervised {
    pub async fn wait(self) {
        // The loop itself never panics: it catches the task's panics.
        let _ = self.handle.await;
    }
}

impl Supervisor {
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            reports: Arc::default(),
            shutdown,
            fatal: CancellationToken::new(),
            fatal_reason: Arc::default(),
        }
    }

    /// Cancelled once a task whose policy is [`Policy::StopDaemon`] ended early.
    pub fn fatal(&self) -> CancellationToken {
        self.fatal.clone()
    }

    /// The first fatal end, e.g. "event_log panicked: disk on fire".
    pub fn fatal_reason(&self) -> Option<String> {
        self.fatal_reason.lock().ok().and_then(|r| r.clone())
    }

    /// Every task's report, by name.
    pub fn reports(&self) -> BTreeMap<String, TaskReport> {
        self.reports.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Runs `make()` as the task `name`, again after each early end if `policy` says so.
    /// `make` builds a fresh run each time (clone what a run consumes).
    pub fn spawn<F, Fut>(&self, name: &str, policy: Policy, mut make: F) -> Supervised
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let name = name.to_owned();
        let this = self.clone();
        this.report(&name, policy, "running", None);
        let handle = tokio::spawn(async move {
            let mut backoff: Backoff = RESTART.backoff();
            loop {
                let started = tokio::time::Instant::now();
                let run = tokio::spawn(fault::inject(name.clone(), make()));
                let ended = match run.await {
                    Ok(()) => "ended".to_owned(),
                    Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
                    Err(_) => "was cancelled".to_owned(),
                };
                if this.shutdown.is_cancelled() {
                    this.report(&name, policy, "stopped", None);
                    return;
                }
                if started.elapsed() >= HEALTHY {
                    backoff.reset();
                }
                match policy {
                    Policy::StopDaemon => {
                        tracing::error!(task = %name, "{name} {ended}; stopping the daemon, since events could be lost without it");
                        this.report(&name, policy, "failed", Some(ended.clone()));
                        if let Ok(mut reason) = this.fatal_reason.lock() {
                            reason.get_or_insert_with(|| format!("{name} {ended}"));
                        }
                        this.fatal.cancel();
                        return;
                    }
                    Policy::Restart => {
                        let delay = backoff.next_delay();
                        tracing::error!(task = %name, "{name} {ended}; starting it again in {} ms", delay.as_millis());
                        this.report(&name, policy, "restarting", Some(ended));
                        if !sleep_or_cancel(delay, &this.shutdown).await {
                            this.report(&name, policy, "stopped", None);
                            return;
                        }
                        this.restarted(&name);
                    }
                }
            }
        });
        Supervised { handle }
    }

    /// A task that cannot be run again (it consumes what it works on: the hub, the log
    /// writer, the bridge's session): its early end stops the daemon.
    pub fn spawn_once<Fut>(&self, name: &str, run: Fut) -> Supervised
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut once = Some(run);
        self.spawn(name, Policy::StopDaemon, move || {
            let run = once.take();
            async move {
                if let Some(run) = run {
                    run.await;
                }
            }
        })
    }

    /// Watches a task another component started (chat's connection and dispatch, which share
    /// state with the send path and cannot be started again alone): its early end stops the
    /// daemon, so the service manager starts a whole new one.
    pub fn watch(&self, name: &str, handle: JoinHandle<()>) -> Supervised {
        self.spawn_once(name, async move {
            if let Err(e) = handle.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        })
    }

    fn report(&self, name: &str, policy: Policy, state: &'static str, failure: Option<String>) {
        if let Ok(mut reports) = self.reports.lock() {
            let report = reports.entry(name.to_owned()).or_insert(TaskReport {
                policy,
                state,
                restarts: 0,
                last_failure: None,
            });
            report.state = state;
            if failure.is_some() {
                report.last_failure = failure;
            }
        }
    }

    fn restarted(&self, name: &str) {
        if let Ok(mut reports) = self.reports.lock()
            && let Some(report) = reports.get_mut(name)
        {
            report.restarts += 1;
            report.state = "running";
        }
    }
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Fault injection for the tests of this module and of the daemon (debug builds only):
/// `ONGWATCH_TEST_PANIC=<task>` makes the first run of that task panic as it starts, the way a
/// bug would, so a test can watch it being reported and restarted.
mod fault {
    use std::future::Future;
    use std::sync::Mutex;

    static FIRED: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub async fn inject<F: Future<Output = ()>>(name: String, run: F) {
        if cfg!(debug_assertions)
            && std::env::var("ONGWATCH_TEST_PANIC").is_ok_and(|wanted| wanted == name)
            && FIRED.lock().is_ok_and(|mut fired| {
                let first = !fired.contains(&name);
                fired.push(name.clone());
                first
            })
        {
            panic!("ONGWATCH_TEST_PANIC={name}: a fault injected for a test");
        }
        run.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_task_that_panics_early_is_reported_and_started_again() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let stop = shutdown.clone();
        let task = supervisor.spawn("source", Policy::Restart, move || {
            let runs = counter.clone();
            let stop = stop.clone();
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("upstream sent something odd");
                }
                stop.cancelled().await;
            }
        });
        while runs.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let report = supervisor.reports()["source"].clone();
        assert_eq!(report.restarts, 1);
        assert_eq!(report.state, "running");
        assert_eq!(
            report.last_failure.as_deref(),
            Some("panicked: upstream sent something odd")
        );
        assert!(!supervisor.fatal().is_cancelled());
        shutdown.cancel();
        task.wait().await;
        assert_eq!(supervisor.reports()["source"].state, "stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_vital_task_that_ends_stops_the_daemon() {
        let supervisor = Supervisor::new(CancellationToken::new());
        let task = supervisor.spawn("event_log", Policy::StopDaemon, || async {});
        supervisor.fatal().cancelled().await;
        task.wait().await;
        assert_eq!(
            supervisor.fatal_reason().as_deref(),
            Some("event_log ended")
        );
        assert_eq!(supervisor.reports()["event_log"].state, "failed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_end_after_shutdown_is_normal() {
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(shutdown.clone());
        let stop = shutdown.clone();
        let task = supervisor.spawn("processor", Policy::StopDaemon, move || {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        shutdown.cancel();
        task.wait().await;
        assert!(!supervisor.fatal().is_cancelled());
        let report = supervisor.reports()["processor"].clone();
        assert_eq!((report.state, report.last_failure), ("stopped", None));
    }
}
