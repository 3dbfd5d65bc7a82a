//! Helix "Send Chat Message" (`POST <api_url>/chat/messages`) and the user lookup it needs.
//!
//! Helix needs the channel's user id; the ids of channels other than the account's own are
//! looked up once (`GET <api_url>/users?login=`) and remembered.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::json;

use super::send::{DropReason, Sent};
use crate::sources::twitch::auth::Tokens;
use crate::sources::twitch::helix::HelixError;

/// The scope Helix wants for sending as a user.
pub const SEND_SCOPE: &str = "user:write:chat";

pub struct HelixChat {
    http: reqwest::Client,
    api_url: String,
    user_ids: tokio::sync::Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct Data<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    message_id: String,
    is_sent: bool,
    #[serde(default)]
    drop_reason: Option<DropReason>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
}

impl HelixChat {
    pub fn new(http: reqwest::Client, api_url: &str) -> Self {
        Self {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            user_ids: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Sends one message as the account of `tokens`; a refused (expired) token is refreshed
    /// once.
    pub async fn send(
        &self,
        tokens: &Tokens,
        channel: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<Sent, HelixError> {
        let mut access = tokens.access().await;
        for attempt in 0..2 {
            match self
                .try_send(tokens, &access, channel, text, reply_to)
                .await
            {
                Err(HelixError::Unauthorized(_)) if attempt == 0 => {
                    access = tokens
                        .refresh(&access)
                        .await
                        .map_err(|e| HelixError::Unauthorized(e.to_string()))?;
                }
                other => return other,
            }
        }
        Err(HelixError::Unauthorized(
            "the refreshed token was refused too".into(),
        ))
    }

    async fn try_send(
        &self,
        tokens: &Tokens,
        access: &str,
        channel: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<Sent, HelixError> {
        let account = tokens.snapshot().await;
        let broadcaster_id = if account.login.eq_ignore_ascii_case(channel) {
            account.user_id.clone()
        } else {
            self.user_id(&account.client_id, access, channel).await?
        };
        let mut body = json!({
            "broadcaster_id": broadcaster_id,
            "sender_id": account.user_id,
            "message": text,
        });
        if let Some(parent) = reply_to {
            body["reply_parent_message_id"] = json!(parent);
        }
        let response = self
            .http
            .post(format!("{}/chat/messages", self.api_url))
            .bearer_auth(access)
            .header("Client-Id", &account.client_id)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let answer: Data<Answer> = self.parse(response).await?;
        let answer = answer
            .data
            .into_iter()
            .next()
            .ok_or_else(|| HelixError::Status {
                status: 200,
                message: "the answer has no data".into(),
            })?;
        Ok(Sent {
            via: "helix",
            message_id: Some(answer.message_id).filter(|id| !id.is_empty()),
            is_sent: answer.is_sent,
            drop_reason: answer.drop_reason,
        })
    }

    async fn user_id(
        &self,
        client_id: &str,
        access: &str,
        login: &str,
    ) -> Result<String, HelixError> {
        if let Some(id) = self.user_ids.lock().await.get(login) {
            return Ok(id.clone());
        }
        let response = self
            .http
            .get(format!("{}/users", self.api_url))
            .query(&[("login", login)])
            .bearer_auth(access)
            .header("Client-Id", client_id)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let users: Data<User> = self.parse(response).await?;
        let id = users
            .data
            .into_iter()
            .next()
            .map(|u| u.id)
            .ok_or_else(|| HelixError::Status {
                status: 404,
                message: format!("there is no Twitch channel {login:?}"),
            })?;
        self.user_ids
            .lock()
            .await
            .insert(login.to_owned(), id.clone());
        Ok(id)
    }

    fn transport(&self, error: reqwest::Error) -> HelixError {
        HelixError::Transport {
            host: url::Url::parse(&self.api_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "the Helix API".into()),
            // Tokens travel in headers only, so the message holds no secret.
            reason: error.without_url().to_string(),
        }
    }

    async fn parse<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, HelixError> {
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let body: ErrorBody = response.json().await.unwrap_or_default();
            return Err(match status {
                401 => HelixError::Unauthorized(body.message),
                403 => HelixError::Forbidden(body.message),
                429 => HelixError::TooMany {
                    message: body.message,
                    retry_after: None,
                },
                status => HelixError::Status {
                    status,
                    message: body.message,
                },
            });
        }
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&bytes).map_err(|e| HelixError::Status {
            status,
            message: format!("unexpected answer: {e}"),
        })
    }
}
