//! What the socket providers share: the reconnect timing (its schedule is [`crate::retry`])
//! and the provider-state events.
//!
//! Both live here rather than in each provider so Streamlabs, StreamElements realtime and
//! StreamElements Astro behave identically towards the bus and towards the upstream servers.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::event::{ConnectionState, Event, ProviderState, SubscriptionHealth};
use crate::retry::{Policy, sleep_or_cancel};

/// Every duration a provider connection uses, so tests can shrink them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// First reconnect delay after a failure; doubles per failure up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Wait after the provider rejected the credentials: they will not fix themselves, and
    /// hammering an auth endpoint gets accounts rate-limited.
    pub unauthorized_backoff: Duration,
    /// A connection that stayed up this long counts as healthy and resets the backoff, so a
    /// server that accepts and immediately drops us still sees growing delays.
    pub stable_after: Duration,
    /// Limit for connecting plus the provider's own handshake (subscribe, authenticate).
    pub connect_timeout: Duration,
    /// Plain-websocket providers (Astro): how often to ping, and how long the link may stay
    /// silent after a ping before it counts as dead. Socket.IO providers use the server's values.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            unauthorized_backoff: Duration::from_secs(15 * 60),
            stable_after: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(15),
        }
    }
}

impl Timing {
    /// The reconnect schedule after failures (not after a refused credential).
    pub fn retry(&self) -> Policy {
        Policy::new(self.initial_backoff, self.max_backoff)
    }
}

/// Publishes `ProviderState` events for one provider on `R/system/providers/<provider>`.
#[derive(Debug)]
pub struct StateReporter {
    provider: &'static str,
    channel: String,
    out: mpsc::Sender<Event>,
}

/// The bus receiver is gone: the daemon is shutting down and the source should end.
#[derive(Debug, thiserror::Error)]
#[error("the event channel is closed")]
pub struct OutClosed;

impl StateReporter {
    pub fn new(provider: &'static str, channel: &str, out: mpsc::Sender<Event>) -> Self {
        Self {
            provider,
            channel: channel.to_owned(),
            out,
        }
    }

    pub async fn report(
        &self,
        state: ConnectionState,
        detail: impl Into<String>,
        subscriptions: Vec<SubscriptionHealth>,
    ) -> Result<(), OutClosed> {
        let detail = detail.into();
        match state {
            ConnectionState::Unauthorized | ConnectionState::Error => {
                tracing::warn!(provider = self.provider, "{detail}")
            }
            _ => tracing::info!(provider = self.provider, "{detail}"),
        }
        let now = crate::event::now();
        let event = Event::provider_state(
            self.provider,
            self.channel.clone(),
            ProviderState {
                state,
                detail,
                since: crate::event::format_time(&now),
                subscriptions,
            },
            now,
        );
        self.send(event).await
    }

    /// Hands a normalized event to the bus.
    pub async fn send(&self, event: Event) -> Result<(), OutClosed> {
        self.out.send(event).await.map_err(|_| OutClosed)
    }
}

/// How one connection attempt ended.
#[derive(Debug)]
pub enum Ended {
    /// The provider refused the credentials: `reason` is what it said, `fix` what to do.
    Unauthorized { reason: String, fix: String },
    /// Anything else; `lasted` is how long the connection was up (zero if it never was).
    Failed { reason: String, lasted: Duration },
}

/// Runs `connection` again and again until shutdown, with the state reports and delays every
/// provider shares: `error` + backoff after a failure, `unauthorized` + the long wait after a
/// refused credential. Returns when `shutdown` fires or the bus is gone.
pub async fn supervise<F, Fut>(
    reporter: &StateReporter,
    timing: &Timing,
    shutdown: &CancellationToken,
    mut connection: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Ended, OutClosed>>,
{
    let mut backoff = timing.retry().backoff();
    loop {
        let outcome = tokio::select! {
            outcome = connection() => outcome,
            () = shutdown.cancelled() => return,
        };
        let (state, detail, delay) = match outcome {
            Err(OutClosed) => return,
            Ok(Ended::Unauthorized { reason, fix }) => {
                let delay = timing.unauthorized_backoff;
                let detail = format!("{reason}: {fix}; retrying in {}", human(delay));
                (ConnectionState::Unauthorized, detail, delay)
            }
            Ok(Ended::Failed { reason, lasted }) => {
                if lasted >= timing.stable_after {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                let detail = format!("{reason}; reconnecting in {}", human(delay));
                (ConnectionState::Error, detail, delay)
            }
        };
        if reporter.report(state, detail, Vec::new()).await.is_err()
            || !sleep_or_cancel(delay, shutdown).await
        {
            return;
        }
    }
}

/// The host of a configured URL, for status lines: never the query, which may hold a token.
pub fn host_of(url: &str) -> String {
    crate::net::host_of(url).unwrap_or_else(|| "(invalid URL)".to_owned())
}

/// A duration as people read it in a status line: `850ms`, `12s`, `15m`.
pub fn human(delay: Duration) -> String {
    let secs = delay.as_secs();
    if secs == 0 {
        format!("{}ms", delay.as_millis())
    } else if secs < 120 {
        format!("{secs}s")
    } else {
        format!("{}m", secs / 60)
    }
}

/// Lenient readers for upstream JSON, whose field types drift between docs, API versions and
/// test events (amounts as `13.37` or `"13.37"`, ids as numbers or strings).
pub mod json {
    use serde_json::Value;

    /// A finite number, also when sent as a string.
    pub fn number(value: Option<&Value>) -> Option<f64> {
        let n = match value? {
            Value::Number(n) => n.as_f64()?,
            Value::String(s) => s.trim().parse::<f64>().ok()?,
            _ => return None,
        };
        n.is_finite().then_some(n)
    }

    /// A non-negative whole count (bits, months, viewers); fractions are rounded.
    pub fn count(value: Option<&Value>) -> Option<u64> {
        let n = number(value)?;
        // The cast saturates, and the check keeps a negative amount from becoming 0 silently.
        (n >= 0.0).then(|| n.round() as u64)
    }

    /// A non-empty string; numbers are rendered, so numeric ids keep working.
    pub fn text(value: Option<&Value>) -> Option<String> {
        match value? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The first of `keys` in `object` that holds a non-empty string or a number.
    pub fn first_text(object: &Value, keys: &[&str]) -> Option<String> {
        keys.iter().find_map(|key| text(object.get(key)))
    }

    pub fn truthy(value: Option<&Value>) -> bool {
        match value {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
            _ => false,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn lenient_numbers() {
            assert_eq!(number(Some(&json!("13.37"))), Some(13.37));
            assert_eq!(number(Some(&json!(" 5 "))), Some(5.0));
            assert_eq!(number(Some(&json!(12))), Some(12.0));
            assert_eq!(number(Some(&json!("NaN"))), None);
            assert_eq!(number(Some(&json!("inf"))), None);
            assert_eq!(number(Some(&json!("$5"))), None);
            assert_eq!(number(Some(&json!(null))), None);
            assert_eq!(number(None), None);
            assert_eq!(count(Some(&json!("100"))), Some(100));
            assert_eq!(count(Some(&json!(-1))), None);
            assert_eq!(count(Some(&json!(1e300))), Some(u64::MAX));
        }

        #[test]
        fn lenient_text() {
            assert_eq!(text(Some(&json!("a"))), Some("a".into()));
            assert_eq!(text(Some(&json!(96164121))), Some("96164121".into()));
            assert_eq!(text(Some(&json!(""))), None);
            assert_eq!(text(Some(&json!(null))), None);
            let o = json!({"a": null, "b": "", "c": "x"});
            assert_eq!(first_text(&o, &["a", "b", "c"]), Some("x".into()));
            assert!(truthy(Some(&json!(true))));
            assert!(truthy(Some(&json!("true"))));
            assert!(truthy(Some(&json!(1))));
            assert!(!truthy(Some(&json!(null))));
            assert!(!truthy(None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    #[test]
    fn host_hides_query_and_path() {
        assert_eq!(
            host_of("wss://astro.streamelements.com/?token=secret"),
            "astro.streamelements.com"
        );
        assert_eq!(host_of("http://127.0.0.1:5000/x"), "127.0.0.1:5000");
        assert_eq!(host_of("no url ?token=secret"), "(invalid URL)");
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(900)), "15m");
    }

    #[tokio::test]
    async fn reporter_publishes_provider_state() {
        let (tx, mut rx) = mpsc::channel(4);
        let reporter = StateReporter::new("streamlabs", "chan", tx);
        reporter
            .report(ConnectionState::Connecting, "connecting", Vec::new())
            .await
            .unwrap();
        let event = rx.recv().await.unwrap();
        assert_eq!(event.topic_suffix(), "system/providers/streamlabs");
        assert!(event.is_state());
        assert!(matches!(
            event.kind,
            EventKind::ProviderState(ProviderState {
                state: ConnectionState::Connecting,
                ..
            })
        ));
        drop(rx);
        assert!(
            reporter
                .report(ConnectionState::Error, "x", Vec::new())
                .await
                .is_err()
        );
    }
}
