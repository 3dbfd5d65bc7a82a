//! `/api/auth/twitch`: the Twitch device-code login started from the dashboard.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::Web;
use super::api::{JsonBody, error_response};
use crate::sources::twitch::auth::Account;
use crate::sources::twitch::auth::logins::StartError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    #[serde(default = "broadcaster")]
    account: Account,
}

fn broadcaster() -> Account {
    Account::Broadcaster
}

/// `POST /api/auth/twitch/start` `{"account": "broadcaster"|"bot"}` →
/// `{verification_uri, user_code, expires_in}`.
pub async fn start(State(web): State<Arc<Web>>, JsonBody(body): JsonBody<StartBody>) -> Response {
    match web.logins.start(body.account).await {
        Ok(started) => Json(started).into_response(),
        Err(e @ StartError::Unavailable(_)) => error_response(StatusCode::CONFLICT, e),
        Err(e @ StartError::Twitch(_)) => error_response(StatusCode::BAD_GATEWAY, e),
    }
}

/// `GET /api/auth/twitch` → each account's login flow (`idle`, `pending`, `done`, `failed`)
/// and the stored accounts.
pub async fn status(State(web): State<Arc<Web>>) -> Response {
    Json(json!({
        "flows": web.logins.flows_view(),
        "accounts": web.logins.accounts(),
    }))
    .into_response()
}
