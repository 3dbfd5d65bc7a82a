//! `kind = "webhook"`: one HTTP POST per record (`format = "json"`, the event JSON or a
//! `template`), or Discord messages of up to 10 embeds (`format = "discord"`).
//!
//! Each output has its own token bucket (`rate` per second, `burst`), so two outputs with
//! different rates each keep theirs, whatever their URLs. A 429 is waited out for its `Retry-After`; 5xx, 408 and network
//! errors are retried by the runner; any other 4xx rejects the record (it would never pass).

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::Deserialize;

use super::discord;
use super::output::{Context, Factory, Health, KeyProblems, Kind, Output, OutputError, keys};
use crate::hub::Delivery;
use crate::template::Template;

pub const KIND: Kind = Kind {
    name: "webhook",
    parse,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Json,
    Discord,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    url: String,
    #[serde(default)]
    format: Format,
    /// `format = "json"` only: the body, with `{event}`, `{topic}`, `{seq}` and
    /// `{event.<field>}` replaced.
    #[serde(default)]
    template: Option<String>,
    /// Requests per second to this URL; 0: no limit. Default: 0, Discord 0.5 (its 30/minute).
    #[serde(default)]
    rate: Option<f64>,
    /// Requests allowed at once before `rate` applies. Default: 1, Discord 5.
    #[serde(default)]
    burst: Option<u32>,
    /// Extra request headers, e.g. `Authorization`.
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Settings {
    url: reqwest::Url,
    format: Format,
    template: Option<String>,
    /// Built with the output's settings, so it outlives a restarted output.
    limiter: Arc<Limiter>,
    headers: HeaderMap,
}

fn parse(table: toml::Table) -> Result<Box<dyn Factory>, KeyProblems> {
    settings(table).map(|settings| Box::new(settings) as Box<dyn Factory>)
}

fn settings(table: toml::Table) -> Result<Settings, KeyProblems> {
    let keys: Keys = keys(table)?;
    let mut problems = Vec::new();
    let url = match reqwest::Url::parse(&keys.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Some(url)
        }
        _ => {
            problems.push((
                "url".into(),
                format!(
                    "{:?} is not an HTTP URL; use e.g. \"https://discord.com/api/webhooks/ID/TOKEN\"",
                    keys.url
                ),
            ));
            None
        }
    };
    if keys.template.is_some() && keys.format == Format::Discord {
        problems.push((
            "template".into(),
            "only for format = \"json\"; Discord messages are built in".into(),
        ));
    }
    let discord = keys.format == Format::Discord;
    let rate = keys.rate.unwrap_or(if discord { 0.5 } else { 0.0 });
    if !(rate.is_finite() && rate >= 0.0) {
        problems.push((
            "rate".into(),
            format!("{rate} is not a rate; use requests per second, 0 for no limit"),
        ));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in &keys.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.insert(name, value);
            }
            _ => problems.push((
                "headers".into(),
                format!("{name:?} is not a valid header name and value"),
            )),
        }
    }
    match url {
        Some(url) if problems.is_empty() => Ok(Settings {
            url,
            format: keys.format,
            template: keys.template,
            limiter: Arc::new(Limiter::new(
                rate,
                keys.burst.unwrap_or(if discord { 5 } else { 1 }),
            )),
            headers,
        }),
        _ => Err(problems),
    }
}

impl Factory for Settings {
    fn build(&self, _context: &Context) -> Box<dyn Output> {
        Box::new(Webhook {
            limiter: self.limiter.clone(),
            settings: self.clone(),
            client: crate::net::http_client(),
            health: Health::Up,
        })
    }
}

struct Webhook {
    settings: Settings,
    client: reqwest::Client,
    limiter: Arc<Limiter>,
    health: Health,
}

#[async_trait]
impl Output for Webhook {
    async fn start(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    async fn deliver(&mut self, batch: &[Delivery]) -> Result<(), OutputError> {
        match self.settings.format {
            Format::Json => {
                for (i, record) in batch.iter().enumerate() {
                    let body = match &self.settings.template {
                        Some(template) => render(template, record).into_bytes(),
                        None => record.message.payload.to_vec(),
                    };
                    self.post(body, Some(record))
                        .await
                        .map_err(|e| e.after(i))?;
                }
            }
            Format::Discord => {
                let mut start = 0;
                while start < batch.len() {
                    let mut embeds = Vec::new();
                    let mut end = start;
                    while end < batch.len() && embeds.len() < discord::MAX_EMBEDS {
                        embeds.extend(discord::embed(&batch[end].message.payload));
                        end += 1;
                    }
                    if !embeds.is_empty() {
                        let body = discord::message(embeds).to_string().into_bytes();
                        self.post(body, None).await.map_err(|e| e.after(start))?;
                    }
                    start = end;
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn health(&self) -> Health {
        self.health.clone()
    }
}

impl Webhook {
    async fn post(&mut self, body: Vec<u8>, record: Option<&Delivery>) -> Result<(), OutputError> {
        self.limiter.acquire().await;
        let mut request = self
            .client
            .post(self.settings.url.clone())
            .headers(self.settings.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(record) = record {
            // Retries after a lost answer can repeat a record: receivers dedupe on the seq.
            request = request
                .header("X-Ongwatch-Seq", record.seq)
                .header("X-Ongwatch-Topic", record.message.topic.as_str());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let e = OutputError::transient(format!("POST failed: {}", without_url(&e)));
                self.health = Health::Down(e.to_string());
                return Err(e);
            }
        };
        let status = response.status();
        if status.is_success() {
            self.health = Health::Up;
            return Ok(());
        }
        let wait = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let detail = format!("{status}: {}", text.chars().take(200).collect::<String>());
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = wait
                .or_else(|| discord_retry_after(&text))
                .unwrap_or(Duration::from_secs(1));
            return Err(OutputError::transient(detail).retry_after(wait));
        }
        let error = if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            OutputError::transient(detail)
        } else {
            OutputError::rejected(detail)
        };
        self.health = Health::Down(error.to_string());
        Err(error)
    }
}

/// The URL of a webhook is its secret (Discord's carries the token): keep it out of logs.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// Discord also says it in the body: `{"retry_after": 1.5, ...}`.
fn discord_retry_after(body: &str) -> Option<Duration> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let seconds = value.get("retry_after")?.as_f64()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// A placeholder of a webhook body.
enum Field {
    /// The event JSON itself.
    Event,
    Topic,
    Seq,
    /// A top-level field of the event.
    Of(String),
}

impl Field {
    fn parse(name: &str) -> Option<Self> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        match name {
            _ if !valid => None,
            "event" => Some(Self::Event),
            "topic" => Some(Self::Topic),
            "seq" => Some(Self::Seq),
            _ => Some(Self::Of(name.strip_prefix("event.")?.to_owned())),
        }
    }
}

/// Fills a template ([`crate::template`]'s lenient syntax, as the body is JSON); values are
/// JSON-escaped so they can stand inside a JSON string.
fn render(template: &str, record: &Delivery) -> String {
    let event: Option<serde_json::Value> = serde_json::from_slice(&record.message.payload).ok();
    Template::parse_lenient(template, Field::parse).render(|field, out| match field {
        Field::Event => out.push_str(&String::from_utf8_lossy(&record.message.payload)),
        Field::Topic => out.push_str(&escape(&record.message.topic)),
        Field::Seq => out.push_str(&record.seq.to_string()),
        Field::Of(name) => match event.as_ref().and_then(|e| e.get(name)) {
            Some(serde_json::Value::String(s)) => out.push_str(&escape(s)),
            Some(serde_json::Value::Null) | None => {}
            Some(other) => out.push_str(&escape(&other.to_string())),
        },
    })
}

fn escape(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// One output's request budget; `None`: no limit.
struct Limiter(Option<DefaultDirectRateLimiter>);

impl Limiter {
    fn new(rate: f64, burst: u32) -> Self {
        // A rate so low that one request waits more than a day is taken as one a day.
        let period = Duration::try_from_secs_f64(1.0 / rate)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(86_400));
        let quota = (rate > 0.0)
            .then(|| Quota::with_period(period))
            .flatten()
            .map(|quota| quota.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN)));
        Self(quota.map(DefaultDirectRateLimiter::direct))
    }

    async fn acquire(&self) {
        if let Some(limiter) = &self.0 {
            limiter.until_ready().await;
        }
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Limiter"
        } else {
            "Limiter(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Message, Origin, Record};

    #[test]
    fn templates_fill_fields_escaped() {
        let record = Arc::new(Record::new(
            7,
            Message::from_bytes(
                "stream/support/cheers".into(),
                br#"{"user":"a\"b","amount":5}"#,
                false,
                Origin::Daemon,
            ),
        ));
        let body = render(
            r#"{"text": "{event.user} gave {event.amount} ({event.nope})", "seq": {seq}, "raw": {event}, "t": "{topic}", "x": {"y": 1}}"#,
            &record,
        );
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["text"], "a\"b gave 5 ()");
        assert_eq!(value["seq"], 7);
        assert_eq!(value["raw"]["amount"], 5);
        assert_eq!(value["t"], "stream/support/cheers");
        assert_eq!(value["x"]["y"], 1);
    }

    #[test]
    fn each_output_keeps_its_own_rate_on_the_same_url() {
        use governor::clock::{Clock, DefaultClock};
        let output = |rate: &str, burst: u32| {
            let text =
                format!("url = \"http://limiter.test/hook\"\nrate = {rate}\nburst = {burst}");
            settings(toml::from_str(&text).unwrap()).unwrap()
        };
        let wait = |settings: &Settings| {
            let limiter = settings.limiter.0.as_ref().expect("a limit");
            match limiter.check() {
                Ok(()) => Duration::ZERO,
                Err(not_until) => not_until.wait_time_from(DefaultClock::default().now()),
            }
        };
        // One request a minute, then one of two a second with a burst of two, to one URL:
        // the first output's budget is spent before the second one asks.
        let slow = output("0.0166", 1);
        let fast = output("0.5", 2);
        assert_eq!(wait(&slow), Duration::ZERO);
        let slow_wait = wait(&slow);
        assert_eq!(wait(&fast), Duration::ZERO);
        assert_eq!(wait(&fast), Duration::ZERO);
        let fast_wait = wait(&fast);
        assert!(
            fast_wait > Duration::ZERO && fast_wait <= Duration::from_secs(2),
            "{fast_wait:?}"
        );
        assert!(slow_wait > Duration::from_secs(2), "{slow_wait:?}");
        let unlimited = output("0", 1);
        assert!(unlimited.limiter.0.is_none());
    }
}
