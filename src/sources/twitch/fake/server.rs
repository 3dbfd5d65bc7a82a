//! The fake's HTTP and WebSocket endpoints.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Form, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{
    Device, FakeSub, Inner, Mode, Out, SessionHandle, Shared, TokenInfo, frame, lock, secret,
};
use super::{cli, rules};
use crate::event::{format_time, now};

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/oauth2/device", post(device))
        .route("/oauth2/token", post(token))
        .route("/oauth2/validate", get(validate))
        .route(
            "/helix/eventsub/subscriptions",
            post(create).get(list).delete(delete),
        )
        .route(
            "/eventsub/subscriptions",
            post(create).get(list).delete(delete),
        )
        .route("/helix/streams", get(streams))
        .route("/helix/users", get(users))
        .route("/helix/chat/messages", post(send_chat))
        .route("/ws", get(websocket))
        .with_state(shared)
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "error": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "message": message,
    });
    (status, axum::Json(body)).into_response()
}

async fn device(
    State(shared): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(client_id) = form.get("client_id").filter(|c| !c.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "missing client_id");
    };
    let mut inner = lock(&shared);
    let device_code = secret();
    let user_code: String = secret().chars().take(8).collect::<String>().to_uppercase();
    inner.devices.insert(
        device_code.clone(),
        Device {
            user_code: user_code.clone(),
            scopes: form
                .get("scopes")
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            client_id: client_id.clone(),
            approved: None,
        },
    );
    axum::Json(json!({
        "device_code": device_code,
        "expires_in": 1800,
        "interval": inner.device_interval,
        "user_code": user_code,
        "verification_uri": format!("http://{}/activate?device-code={user_code}", inner.addr),
    }))
    .into_response()
}

fn granted(access: String, refresh: String, lifetime: i64, scopes: &[String]) -> Response {
    axum::Json(json!({
        "access_token": access,
        "expires_in": lifetime,
        "refresh_token": refresh,
        "scope": scopes,
        "token_type": "bearer",
    }))
    .into_response()
}

async fn token(
    State(shared): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let mut inner = lock(&shared);
    match field("grant_type").as_str() {
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let code = field("device_code");
            let Some(device) = inner.devices.get(&code) else {
                return error(StatusCode::BAD_REQUEST, "invalid device code");
            };
            if device.client_id != field("client_id") {
                return error(StatusCode::BAD_REQUEST, "invalid client");
            }
            let Some((login, user_id)) = device.approved.clone() else {
                return error(StatusCode::BAD_REQUEST, "authorization_pending");
            };
            let scopes = device.scopes.clone();
            let client_id = device.client_id.clone();
            inner.devices.remove(&code);
            let expires_at = now() + chrono::TimeDelta::seconds(inner.token_lifetime);
            let (access, refresh, lifetime) = inner.issue(TokenInfo {
                client_id,
                login,
                user_id,
                scopes: scopes.clone(),
                expires_at,
            });
            granted(access, refresh, lifetime, &scopes)
        }
        "refresh_token" => {
            inner.stats.refreshes += 1;
            // Rotation: the refresh token is spent, whatever the outcome.
            let Some(info) = inner.refresh_tokens.remove(&field("refresh_token")) else {
                return error(StatusCode::BAD_REQUEST, "Invalid refresh token");
            };
            if info.client_id != field("client_id") {
                return error(StatusCode::BAD_REQUEST, "Invalid refresh token");
            }
            let expires_at = now() + chrono::TimeDelta::seconds(inner.token_lifetime);
            let scopes = info.scopes.clone();
            let (access, refresh, lifetime) = inner.issue(TokenInfo { expires_at, ..info });
            granted(access, refresh, lifetime, &scopes)
        }
        _ => error(StatusCode::BAD_REQUEST, "unsupported grant_type"),
    }
}

/// The token of `Authorization: <scheme> <token>`, if it is valid now.
fn bearer(inner: &Inner, headers: &HeaderMap, scheme: &str) -> Option<TokenInfo> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (given, token) = value.split_once(' ')?;
    if !given.eq_ignore_ascii_case(scheme) {
        return None;
    }
    inner
        .tokens
        .get(token)
        .filter(|info| info.expires_at > now())
        .cloned()
}

async fn validate(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let mut inner = lock(&shared);
    inner.stats.validations += 1;
    match bearer(&inner, &headers, "OAuth") {
        Some(info) => axum::Json(json!({
            "client_id": info.client_id,
            "login": info.login,
            "scopes": info.scopes,
            "user_id": info.user_id,
            "expires_in": (info.expires_at - now()).num_seconds(),
        }))
        .into_response(),
        None => error(StatusCode::UNAUTHORIZED, "invalid access token"),
    }
}

/// Checks `Client-Id` and the bearer token as Helix does; the CLI mock only wants a client id.
fn authorize(
    inner: &Inner,
    headers: &HeaderMap,
) -> Result<Option<TokenInfo>, (StatusCode, &'static str)> {
    let client_id = headers
        .get("client-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if client_id.is_empty() {
        return Err((StatusCode::UNAUTHORIZED, "Client-Id header required"));
    }
    if inner.mode == Mode::CliMock {
        return Ok(None);
    }
    match bearer(inner, headers, "Bearer") {
        Some(info) if info.client_id == client_id => Ok(Some(info)),
        Some(_) => Err((
            StatusCode::UNAUTHORIZED,
            "Client ID and OAuth token do not match",
        )),
        None => Err((StatusCode::UNAUTHORIZED, "Invalid OAuth token")),
    }
}

fn page(inner: &Inner, data: Vec<Value>) -> Value {
    json!({
        "data": data,
        "total": inner.subs.len(),
        "total_cost": total_cost(inner),
        "max_total_cost": rules::limits().max_total_cost,
        "pagination": {},
    })
}

/// What the enabled subscriptions cost together.
fn total_cost(inner: &Inner) -> u64 {
    inner
        .subs
        .iter()
        .filter(|s| s.status == "enabled")
        .map(|s| s.cost)
        .sum()
}

async fn create(
    State(shared): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut inner = lock(&shared);
    inner.stats.subscription_requests += 1;
    if let Some(status) = inner.answers.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = match status.as_u16() {
            401 => "Invalid OAuth token",
            403 => "subscription missing proper authorization",
            409 => "subscription already exists",
            429 => "number of websocket transports limit exceeded",
            _ => "scripted failure",
        };
        return error(status, message);
    }
    let token = match authorize(&inner, &headers) {
        Ok(token) => token,
        Err((status, message)) => return error(status, message),
    };
    let text = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_default();
    let kind = text(&body["type"]);
    let version = text(&body["version"]);
    let condition = body["condition"].clone();
    let session_id = text(&body["transport"]["session_id"]);
    if kind.is_empty() || version.is_empty() || !condition.is_object() {
        return error(
            StatusCode::BAD_REQUEST,
            "type, version and condition are required",
        );
    }
    if body["transport"]["method"] != "websocket" {
        return error(
            StatusCode::BAD_REQUEST,
            "this fake only knows the websocket transport",
        );
    }
    if !inner.sessions.get(&session_id).is_some_and(|s| s.connected) {
        return error(
            StatusCode::BAD_REQUEST,
            "websocket transport session does not exist or has already disconnected",
        );
    }
    // Twitch's own rules (type, version, condition, scope), from the table written from its
    // reference; the CLI mock only wants a type and version it can trigger.
    if inner.mode == Mode::CliMock && !cli::accepts(&kind, &version) {
        return error(
            StatusCode::BAD_REQUEST,
            "The combination of values in the type and version fields is not valid",
        );
    }
    let mut cost = 0;
    if inner.mode == Mode::Twitch {
        let scopes = token.as_ref().map(|t| t.scopes.as_slice());
        match rules::check(&kind, &version, &condition, scopes) {
            Ok(rule) => {
                let user = token
                    .as_ref()
                    .map(|t| t.user_id.as_str())
                    .unwrap_or_default();
                cost = rules::cost(rule, &condition, user);
            }
            Err(rules::Refusal::BadRequest(message)) => {
                return error(StatusCode::BAD_REQUEST, message);
            }
            Err(rules::Refusal::Forbidden) => {
                inner.stats.forbidden_answers += 1;
                return error(
                    StatusCode::FORBIDDEN,
                    "subscription missing proper authorization",
                );
            }
        }
        let limits = rules::limits();
        let on_transport = inner
            .subs
            .iter()
            .filter(|s| s.session_id == session_id && s.status == "enabled")
            .count();
        if on_transport >= limits.max_subscriptions_per_transport {
            inner.stats.limit_answers += 1;
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "websocket transport subscription limit exceeded",
            );
        }
        if total_cost(&inner) + cost > limits.max_total_cost {
            inner.stats.limit_answers += 1;
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "subscription cost exceeds max_total_cost",
            );
        }
    }
    let user_id = token.map(|t| t.user_id).unwrap_or_default();
    let transports = inner.transports_of(&user_id);
    let limited = transports.len() >= 3 && !transports.contains(session_id.as_str());
    if inner.mode == Mode::Twitch && limited {
        inner.stats.transport_limit_answers += 1;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "number of websocket transports limit exceeded",
        );
    }
    // The CLI mock tells subscriptions apart by type and version only: a second one with
    // another condition (the other raid direction) is a conflict there.
    if inner.subs.iter().any(|s| {
        s.kind == kind
            && s.version == version
            && (s.condition == condition || inner.mode == Mode::CliMock)
            && s.session_id == session_id
    }) {
        return error(StatusCode::CONFLICT, "subscription already exists");
    }
    let sub = FakeSub {
        id: uuid::Uuid::new_v4().to_string(),
        kind,
        version,
        condition,
        session_id,
        status: "enabled".into(),
        created_at: format_time(&now()),
        user_id,
        cost,
    };
    inner.subs.push(sub.clone());
    let body = page(&inner, vec![sub.json()]);
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}

async fn list(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let inner = lock(&shared);
    if let Err((status, message)) = authorize(&inner, &headers) {
        return error(status, message);
    }
    let data = inner
        .subs
        .iter()
        .filter(|s| query.get("status").is_none_or(|status| &s.status == status))
        .filter(|s| query.get("type").is_none_or(|kind| &s.kind == kind))
        .map(FakeSub::json)
        .collect();
    axum::Json(page(&inner, data)).into_response()
}

async fn delete(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = lock(&shared);
    if let Err((status, message)) = authorize(&inner, &headers) {
        return error(status, message);
    }
    let id = query.get("id").cloned().unwrap_or_default();
    let before = inner.subs.len();
    inner.subs.retain(|s| s.id != id);
    if inner.subs.len() == before {
        return error(StatusCode::NOT_FOUND, "subscription not found");
    }
    inner.stats.deletes += 1;
    StatusCode::NO_CONTENT.into_response()
}

/// Get Streams: the live streams among the `user_login`s (at most 100), like Helix.
async fn streams(
    State(shared): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut inner = lock(&shared);
    inner.stats.streams_requests += 1;
    if let Err((status, message)) = authorize(&inner, &headers) {
        return error(status, message);
    }
    let logins: Vec<String> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "user_login")
        .map(|(_, login)| login.to_lowercase())
        .collect();
    if logins.len() > 100 {
        return error(
            StatusCode::BAD_REQUEST,
            "The parameter \"user_login\" may only be specified up to 100 times",
        );
    }
    let data: Vec<Value> = logins
        .iter()
        .filter_map(|login| inner.streams.get(login).cloned())
        .collect();
    axum::Json(json!({ "data": data, "pagination": {} })).into_response()
}

/// Get Users by `login`: the owners of issued tokens and the users added by the test.
async fn users(
    State(shared): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let inner = lock(&shared);
    if let Err((status, message)) = authorize(&inner, &headers) {
        return error(status, message);
    }
    let data: Vec<Value> = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "login")
        .filter_map(|(_, login)| {
            let login = login.to_lowercase();
            let id = inner.users.get(&login).cloned().or_else(|| {
                inner
                    .tokens
                    .values()
                    .find(|info| info.login.eq_ignore_ascii_case(&login))
                    .map(|info| info.user_id.clone())
            })?;
            Some(json!({ "id": id, "login": login, "display_name": login }))
        })
        .collect();
    axum::Json(json!({ "data": data })).into_response()
}

/// Send Chat Message: the sender must be the token's user and the token must carry
/// `user:write:chat`, as on Helix.
async fn send_chat(
    State(shared): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut inner = lock(&shared);
    let info = match authorize(&inner, &headers) {
        Ok(info) => info,
        Err((status, message)) => return error(status, message),
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str).unwrap_or_default();
    if field("broadcaster_id").is_empty()
        || field("sender_id").is_empty()
        || field("message").is_empty()
    {
        return error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: broadcaster_id, sender_id and message are required",
        );
    }
    if let Some(info) = info {
        if !info.scopes.iter().any(|s| s == "user:write:chat") {
            return error(StatusCode::UNAUTHORIZED, "Missing scope: user:write:chat");
        }
        if info.user_id != field("sender_id") {
            return error(
                StatusCode::FORBIDDEN,
                "The sender must be the user associated with the access token",
            );
        }
    }
    inner.chat_messages.push(body.clone());
    let answer = match inner.chat_drops.pop_front() {
        Some((code, message)) => json!({
            "message_id": "",
            "is_sent": false,
            "drop_reason": { "code": code, "message": message },
        }),
        None => json!({ "message_id": secret(), "is_sent": true, "drop_reason": null }),
    };
    axum::Json(json!({ "data": [answer] })).into_response()
}

async fn websocket(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Twitch keeps a client's keepalive_timeout_seconds within 10..=600.
    let range = rules::limits().keepalive_timeout_seconds;
    let keepalive = query
        .get("keepalive_timeout_seconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(|k| k.clamp(range.min, range.max));
    let reconnect_of = query.get("reconnect").cloned();
    upgrade.on_upgrade(move |socket| session(shared, socket, keepalive, reconnect_of))
}

/// How long Twitch waits for the pong to one of its pings before closing with 4002.
const PONG_WAIT: Duration = Duration::from_secs(10);

/// Sleeps until `at`, or forever without one (a `select!` branch that is off).
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One EventSub session: welcome, then whatever the control handle queues, keepalives when
/// nothing else was sent, 4001 for anything the client sends, 4002 for a ping left without a
/// pong, 4004 when a `session_reconnect` was not followed within the grace time.
async fn session(
    shared: Shared,
    mut socket: WebSocket,
    keepalive: Option<u64>,
    reconnect_of: Option<String>,
) {
    let id = uuid::Uuid::new_v4().to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (keepalive, window) = {
        let mut inner = lock(&shared);
        let keepalive = keepalive.unwrap_or(inner.keepalive_seconds);
        inner.stats.connections += 1;
        inner.sessions.insert(
            id.clone(),
            SessionHandle {
                tx: tx.clone(),
                connected: true,
                replaced: false,
            },
        );
        let open = inner.connected_count();
        inner.stats.max_concurrent = inner.stats.max_concurrent.max(open);
        // The welcome goes first into the queue, and the subscriptions move in the same
        // critical section: whatever was routed to the old session before stays there.
        let welcome = frame(
            "session_welcome",
            &uuid::Uuid::new_v4().to_string(),
            json!({}),
            json!({"session": {
                "id": id,
                "status": "connected",
                "keepalive_timeout_seconds": keepalive,
                "reconnect_url": null,
                "connected_at": format_time(&now()),
            }}),
        );
        let _ = tx.send(Out::Text(welcome));
        if let Some(old) = &reconnect_of {
            if let Some(handle) = inner.sessions.get_mut(old) {
                handle.replaced = true;
            }
            for sub in inner.subs.iter_mut().filter(|s| &s.session_id == old) {
                sub.session_id = id.clone();
            }
        }
        (Duration::from_secs(keepalive), inner.welcome_window)
    };
    drop(tx);
    let welcome_deadline = Instant::now() + window;
    let mut window_open = reconnect_of.is_none();

    let mut silent = false;
    let mut next_keepalive = Instant::now() + keepalive;
    // A ping Twitch sent and no pong yet: 4002 when this passes.
    let mut pong_deadline: Option<Instant> = None;
    // A session_reconnect sent: 4004 when the client has not moved by then.
    let mut reconnect_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            biased;
            out = rx.recv() => {
                let sent = match out {
                    Some(Out::Text(text)) => {
                        if text.contains("\"session_reconnect\"") {
                            let grace = Duration::from_secs(rules::limits().reconnect_grace_seconds);
                            reconnect_deadline = Some(Instant::now() + grace);
                        }
                        socket.send(Message::Text(text.into())).await
                    }
                    Some(Out::Ping) => {
                        pong_deadline.get_or_insert(Instant::now() + PONG_WAIT);
                        socket.send(Message::Ping(Default::default())).await
                    }
                    Some(Out::Silence) => {
                        silent = true;
                        Ok(())
                    }
                    Some(Out::Close(code, reason)) => {
                        let _ = socket
                            .send(Message::Close(Some(CloseFrame { code, reason: reason.into() })))
                            .await;
                        break;
                    }
                    None => break,
                };
                if sent.is_err() {
                    break;
                }
                next_keepalive = Instant::now() + keepalive;
            }
            () = tokio::time::sleep_until(next_keepalive), if !silent => {
                let text = frame("session_keepalive", &uuid::Uuid::new_v4().to_string(), json!({}), json!({}));
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
                next_keepalive = Instant::now() + keepalive;
            }
            () = tokio::time::sleep_until(welcome_deadline), if window_open => {
                window_open = false;
                if !lock(&shared).has_subscription(&id) {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 4003, reason: "connection unused".into() })))
                        .await;
                    break;
                }
            }
            () = sleep_until_some(pong_deadline) => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame { code: 4002, reason: "failed ping pong".into() })))
                    .await;
                break;
            }
            () = sleep_until_some(reconnect_deadline) => {
                reconnect_deadline = None;
                // The client never connected to the reconnect URL.
                if !lock(&shared).sessions.get(&id).is_some_and(|s| s.replaced) {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 4004, reason: "reconnect grace time expired".into() })))
                        .await;
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Pong(_))) => pong_deadline = None,
                Some(Ok(Message::Text(_) | Message::Binary(_))) => {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 4001, reason: "sent inbound traffic".into() })))
                        .await;
                    break;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    let mut inner = lock(&shared);
    if let Some(session) = inner.sessions.get_mut(&id) {
        session.connected = false;
    }
    for sub in inner.subs.iter_mut().filter(|s| s.session_id == id) {
        sub.status = "websocket_disconnected".into();
    }
}
