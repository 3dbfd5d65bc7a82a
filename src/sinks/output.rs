//! The output API: what an output implements, and what it may tell the runner when it fails.
//!
//! An output only moves records somewhere. Its runner (`runner.rs`) owns the queue, the topic
//! filter, retries with backoff, the circuit breaker, the counters and the shutdown drain, so
//! an output is one small file: see docs/OUTPUTS.md.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::hub::Delivery;

/// One destination for bus records (Redis, NATS, a webhook, SQLite, ...).
#[async_trait]
pub trait Output: Send {
    /// Connects or opens. Called before the first delivery and again after every transient
    /// failure, so this is where an output (re)connects; it may keep a connection that is
    /// still good.
    async fn start(&mut self) -> Result<(), OutputError>;

    /// Delivers `batch` in order. On failure, [`OutputError::after`] says how many records at
    /// the front were delivered for certain; the runner retries from the first one that was not.
    async fn deliver(&mut self, batch: &[Delivery]) -> Result<(), OutputError>;

    /// Called once at shutdown after the last delivery: write out what is buffered.
    async fn flush(&mut self) -> Result<(), OutputError>;

    /// The output's own view of its connection, shown in `/api/status`.
    fn health(&self) -> Health;
}

/// What an output says about its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Up,
    /// Not connected, or its server answers with errors; the reason is shown to the user.
    Down(String),
}

/// How bad a failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server is down, slow or overloaded: retry later (backoff, circuit breaker).
    Transient,
    /// The destination refuses the first undelivered record itself (a 400, a bad value):
    /// retrying cannot help, so it is counted as failed and skipped.
    Rejected,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OutputError {
    pub failure: Failure,
    /// Records at the front of the batch that were delivered before the failure.
    pub delivered: usize,
    /// The server asked to wait this long (HTTP 429 `Retry-After`); not a sign of a dead
    /// server, so it does not count towards the circuit breaker.
    pub retry_after: Option<Duration>,
    message: String,
}

impl OutputError {
    pub fn transient(message: impl fmt::Display) -> Self {
        Self {
            failure: Failure::Transient,
            delivered: 0,
            retry_after: None,
            message: message.to_string(),
        }
    }

    pub fn rejected(message: impl fmt::Display) -> Self {
        Self {
            failure: Failure::Rejected,
            ..Self::transient(message)
        }
    }

    /// `delivered` records at the front of the batch made it.
    pub fn after(mut self, delivered: usize) -> Self {
        self.delivered = delivered;
        self
    }

    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }
}

/// What building an output may use.
#[derive(Debug, Clone)]
pub struct Context {
    /// Relative paths in an output's config are relative to the state dir.
    pub state_dir: PathBuf,
}

/// A checked `[[outputs]]` table of one kind, ready to build its output at start-up.
pub trait Factory: fmt::Debug + Send + Sync {
    fn build(&self, context: &Context) -> Box<dyn Output>;

    /// The database `/api/events` can read history from, if this output keeps one.
    fn history(&self, _context: &Context) -> Option<crate::sinks::sqlite::History> {
        None
    }
}

/// Problems found in an output's kind-specific keys: (key below `outputs[N]`, message).
pub type KeyProblems = Vec<(String, String)>;

/// One kind of output: its `kind = "..."` name and how its own keys are checked.
pub struct Kind {
    pub name: &'static str,
    /// Gets the table without the common keys; unknown keys are problems.
    pub parse: fn(toml::Table) -> Result<Box<dyn Factory>, KeyProblems>,
}

/// Deserializes a kind's own keys, reporting an unknown or mistyped key by its name.
pub fn keys<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, KeyProblems> {
    let message =
        |e: &toml::de::Error| e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    let error = match toml::Value::Table(table.clone()).try_into::<T>() {
        Ok(parsed) => return Ok(parsed),
        Err(e) => message(&e),
    };
    if let Some(field) = error
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        return Err(vec![(field.to_owned(), error.clone())]);
    }
    // serde does not say which key a bad value belongs to: find it by trying each alone
    // (alone, the others' absence can only be a "missing field").
    let culprit = table.iter().find_map(|(key, value)| {
        let alone = toml::Table::from_iter([(key.clone(), value.clone())]);
        match toml::Value::Table(alone).try_into::<T>() {
            Err(e) if !message(&e).starts_with("missing field") => Some(key.clone()),
            _ => None,
        }
    });
    Err(vec![(culprit.unwrap_or_default(), error)])
}
