//! `kind = "webhook"`: one HTTP POST per record (`format = "json"`, the event JSON or a
//! `template`), or Discord messages of up to 10 embeds (`format = "discord"`).
//!
//! Requests to one URL share a token bucket (`rate` per second, `burst`), also across outputs
//! posting to the same URL. A 429 is waited out for its `Retry-After`; 5xx, 408 and network
//! errors are retried by the runner; any other 4xx rejects the record (it would never pass).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::Deserialize;
use tokio::time::Instant;

use super::discord;
use super::output::{Context, Factory, Health, KeyProblems, Kind, Output, OutputError, keys};
use crate::hub::Delivery;

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
    rate: f64,
    burst: u32,
    headers: HeaderMap,
}

fn parse(table: toml::Table) -> Result<Box<dyn Factory>, KeyProblems> {
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
        Some(url) if problems.is_empty() => Ok(Box::new(Settings {
            url,
            format: keys.format,
            template: keys.template,
            rate,
            burst: keys.burst.unwrap_or(if discord { 5 } else { 1 }).max(1),
            headers,
        })),
        _ => Err(problems),
    }
}

impl Factory for Settings {
    fn build(&self, _context: &Context) -> Box<dyn Output> {
        Box::new(Webhook {
            limiter: limiter_for(self.url.as_str(), self.rate, self.burst),
            settings: self.clone(),
            client: crate::sources::twitch::helix::http_client(),
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

/// Fills a template; values are JSON-escaped so they can stand inside a JSON string.
fn render(template: &str, record: &Delivery) -> String {
    let event: Option<serde_json::Value> = serde_json::from_slice(&record.message.payload).ok();
    let mut out = String::with_capacity(template.len() + record.message.payload.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let name = after.find('}').map(|close| &after[..close]).filter(|name| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        });
        let value = name.and_then(|name| match name {
            "event" => Some(String::from_utf8_lossy(&record.message.payload).into_owned()),
            "topic" => Some(escape(&record.message.topic)),
            "seq" => Some(record.seq.to_string()),
            _ => {
                let field = name.strip_prefix("event.")?;
                Some(match event.as_ref().and_then(|e| e.get(field)) {
                    Some(serde_json::Value::String(s)) => escape(s),
                    Some(serde_json::Value::Null) | None => String::new(),
                    Some(other) => escape(&other.to_string()),
                })
            }
        });
        match (name, value) {
            (Some(name), Some(value)) => {
                out.push_str(&value);
                rest = &after[name.len() + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape(text: &str) -> String {
    let quoted = serde_json::Value::String(text.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// A token bucket shared by every output posting to one URL.
struct Limiter {
    rate: f64,
    burst: f64,
    state: tokio::sync::Mutex<(f64, Instant)>,
}

fn limiter_for(url: &str, rate: f64, burst: u32) -> Arc<Limiter> {
    static LIMITERS: OnceLock<Mutex<HashMap<String, Arc<Limiter>>>> = OnceLock::new();
    let mut limiters = LIMITERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    limiters
        .entry(url.to_owned())
        .or_insert_with(|| {
            Arc::new(Limiter {
                rate,
                burst: f64::from(burst),
                state: tokio::sync::Mutex::new((f64::from(burst), Instant::now())),
            })
        })
        .clone()
}

impl Limiter {
    async fn acquire(&self) {
        if self.rate <= 0.0 {
            return;
        }
        // Holding the lock while waiting queues the callers fairly.
        let mut state = self.state.lock().await;
        loop {
            let now = Instant::now();
            let (tokens, last) = *state;
            let tokens = (tokens + (now - last).as_secs_f64() * self.rate).min(self.burst);
            if tokens >= 1.0 {
                *state = (tokens - 1.0, now);
                return;
            }
            *state = (tokens, now);
            tokio::time::sleep(Duration::from_secs_f64((1.0 - tokens) / self.rate)).await;
        }
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

    #[tokio::test(start_paused = true)]
    async fn the_bucket_spaces_requests_after_the_burst() {
        let limiter = limiter_for("http://limiter.test/", 2.0, 2);
        let start = Instant::now();
        for _ in 0..4 {
            limiter.acquire().await;
        }
        let waited = start.elapsed().as_secs_f64();
        assert!((0.99..1.1).contains(&waited), "{waited}");
    }
}
