//! The few Helix calls ongwatch makes: EventSub subscriptions (create, list, delete) and plain
//! `GET`s such as Get Streams for the stream monitor.
//!
//! Direct HTTP rather than a Helix crate, so every URL can point at a mock (`[twitch]
//! eventsub_subscriptions_url`) and every answer Twitch documents (202, 409, 401, 403, 429)
//! is handled here for what it means.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum HelixError {
    /// 401: the access token is expired or revoked; refresh and try again.
    #[error("Twitch refused the access token (401): {0}")]
    Unauthorized(String),
    /// 403: the token lacks the scope, or the user is not allowed (e.g. not a moderator).
    #[error("Twitch forbids it (403): {0}")]
    Forbidden(String),
    /// 409: this subscription already exists.
    #[error("the subscription already exists (409)")]
    Conflict,
    /// 429: a limit was hit (rate limit, cost, or the 3 WebSocket transports per token).
    #[error("Twitch limit reached (429): {message}")]
    TooMany {
        message: String,
        /// When Twitch says it resets (`Ratelimit-Reset`), if it did.
        retry_after: Option<Duration>,
    },
    #[error("Twitch answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("cannot reach {host}: {reason}")]
    Transport { host: String, reason: String },
}

impl HelixError {
    /// Worth retrying on the same session later (as opposed to a problem of this subscription).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::TooMany { .. } | Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Twitch's error body: `{"error": "...", "status": 401, "message": "..."}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    error: String,
}

/// A subscription as Helix lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    pub id: String,
    pub status: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
    #[serde(default)]
    pub transport: Value,
    #[serde(default)]
    pub cost: u64,
}

/// What a create (or list) answer says about the limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Totals {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub total_cost: u64,
    #[serde(default)]
    pub max_total_cost: u64,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Listed>,
    #[serde(flatten)]
    totals: Totals,
    #[serde(default)]
    pagination: Pagination,
}

#[derive(Deserialize, Default)]
struct Pagination {
    #[serde(default)]
    cursor: Option<String>,
}

/// `[twitch] eventsub_subscriptions_url` with the app's client id.
#[derive(Clone)]
pub struct Helix {
    http: reqwest::Client,
    url: String,
    client_id: String,
}

impl Helix {
    pub fn new(
        http: reqwest::Client,
        url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> Self {
        Self {
            http,
            url: url.into(),
            client_id: client_id.into(),
        }
    }

    fn host(&self) -> String {
        crate::net::host_of(&self.url).unwrap_or_else(|| "the Helix API".into())
    }

    fn request(&self, method: reqwest::Method, token: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, &self.url)
            .bearer_auth(token)
            .header("Client-Id", &self.client_id)
    }

    /// Creates one WebSocket subscription on `session_id`.
    pub async fn create(
        &self,
        token: &str,
        kind: &str,
        version: &str,
        condition: &Value,
        session_id: &str,
    ) -> Result<(Listed, Totals), HelixError> {
        let body = json!({
            "type": kind,
            "version": version,
            "condition": condition,
            "transport": { "method": "websocket", "session_id": session_id },
        });
        let response = self
            .request(reqwest::Method::POST, token)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let page: Page = self.parse(response).await?;
        let listed = page
            .data
            .into_iter()
            .next()
            .ok_or_else(|| HelixError::Status {
                status: 202,
                message: "the answer lists no subscription".into(),
            })?;
        Ok((listed, page.totals))
    }

    /// Every subscription of this client and user, all pages.
    pub async fn list(&self, token: &str) -> Result<(Vec<Listed>, Totals), HelixError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut request = self.request(reqwest::Method::GET, token);
            if let Some(cursor) = &cursor {
                request = request.query(&[("after", cursor)]);
            }
            let response = request.send().await.map_err(|e| self.transport(e))?;
            let page: Page = self.parse(response).await?;
            all.extend(page.data);
            match page.pagination.cursor {
                Some(next) if !next.is_empty() && cursor.as_ref() != Some(&next) => {
                    cursor = Some(next)
                }
                _ => return Ok((all, page.totals)),
            }
        }
    }

    /// `GET` on this endpoint with `query` (repeated keys allowed), e.g. Get Streams for the
    /// stream monitor, with Twitch's answers mapped like every other call.
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        query: &[(&str, &str)],
    ) -> Result<T, HelixError> {
        let response = self
            .request(reqwest::Method::GET, token)
            .query(query)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.parse(response).await
    }

    pub async fn delete(&self, token: &str, id: &str) -> Result<(), HelixError> {
        let response = self
            .request(reqwest::Method::DELETE, token)
            .query(&[("id", id)])
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if response.status().is_success() || response.status().as_u16() == 404 {
            return Ok(());
        }
        Err(Self::error(response).await)
    }

    fn transport(&self, error: reqwest::Error) -> HelixError {
        HelixError::Transport {
            host: self.host(),
            // The URL in reqwest's message has no secret (tokens travel in headers only).
            reason: error.without_url().to_string(),
        }
    }

    async fn parse<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, HelixError> {
        if !response.status().is_success() {
            return Err(Self::error(response).await);
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| HelixError::Status {
            status,
            message: format!("unexpected answer: {e}"),
        })
    }

    async fn error(response: reqwest::Response) -> HelixError {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("ratelimit-reset")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .map(|reset| {
                let wait = reset - chrono::Utc::now().timestamp();
                Duration::from_secs(wait.clamp(0, 60) as u64)
            });
        let body: ErrorBody = response.json().await.unwrap_or_default();
        let message = if body.message.is_empty() {
            body.error
        } else {
            body.message
        };
        match status {
            401 => HelixError::Unauthorized(message),
            403 => HelixError::Forbidden(message),
            409 => HelixError::Conflict,
            429 => HelixError::TooMany {
                message,
                retry_after,
            },
            status => HelixError::Status { status, message },
        }
    }
}
