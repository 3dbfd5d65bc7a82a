//! A fake Twitch for tests and offline development: OAuth (device code, token, refresh with
//! rotation, validate), Helix `eventsub/subscriptions`, Helix `streams` (Get Streams) and the
//! EventSub WebSocket, speaking Twitch's wire format on a loopback port.
//!
//! [`FakeTwitch`] is also the control handle: tests (or `fake-twitch`'s stdin) make it send
//! notifications, `session_reconnect`, revocations, close codes and pings, stay silent, or
//! answer the next subscription requests with 401, 403, 409 or 429.
//!
//! With [`Mode::CliMock`] it behaves like the Twitch CLI's mock EventSub server
//! (`twitch event websocket start-server`): `/ws` and `/eventsub/subscriptions`, any token
//! accepted, only a `Client-Id` header required, no connection limit, only the types and
//! versions the CLI can trigger ([`cli`]), one subscription per type and version on a session,
//! and notifications built as `twitch event trigger` builds them (a subscription id and
//! condition of their own).

pub mod cli;
pub mod rules;
mod server;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::event::{format_time, now};

/// Which server the fake plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Twitch itself: tokens checked, scopes enforced, 3 connections per token.
    Twitch,
    /// The Twitch CLI's mock EventSub server.
    CliMock,
}

/// What the socket task of one session is told to do.
#[derive(Debug)]
pub(crate) enum Out {
    Text(String),
    Close(u16, String),
    Ping,
    /// Stop sending keepalives (a connection that went quiet).
    Silence,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    client_id: String,
    login: String,
    user_id: String,
    scopes: Vec<String>,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
pub(crate) struct Device {
    user_code: String,
    scopes: Vec<String>,
    client_id: String,
    approved: Option<(String, String)>,
}

/// A subscription the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeSub {
    pub id: String,
    pub kind: String,
    pub version: String,
    pub condition: Value,
    pub session_id: String,
    pub status: String,
    pub created_at: String,
    /// The user whose token created it (empty in [`Mode::CliMock`]).
    pub user_id: String,
    /// What Twitch charges for it against `max_total_cost`.
    pub cost: u64,
}

impl FakeSub {
    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "status": self.status,
            "type": self.kind,
            "version": self.version,
            "condition": self.condition,
            "created_at": self.created_at,
            "transport": { "method": "websocket", "session_id": self.session_id },
            "cost": self.cost,
        })
    }
}

pub(crate) struct SessionHandle {
    tx: mpsc::UnboundedSender<Out>,
    connected: bool,
    /// A client connected to this session's reconnect URL.
    replaced: bool,
}

/// Counters a test can assert on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// WebSocket connections accepted.
    pub connections: u64,
    /// Most connections open at the same time.
    pub max_concurrent: u64,
    /// Subscription requests refused because the user already had 3 WebSocket transports.
    pub transport_limit_answers: u64,
    /// Subscription requests refused with 403 under Twitch's rules (a scope the token lacks).
    pub forbidden_answers: u64,
    /// Subscription requests refused with 429 for `max_total_cost` or 300 per WebSocket.
    pub limit_answers: u64,
    pub subscription_requests: u64,
    pub refreshes: u64,
    pub validations: u64,
    pub deletes: u64,
    /// Get Streams requests answered (any status).
    pub streams_requests: u64,
}

pub(crate) struct Inner {
    mode: Mode,
    addr: SocketAddr,
    keepalive_seconds: u64,
    welcome_window: std::time::Duration,
    token_lifetime: i64,
    device_interval: u64,
    tokens: HashMap<String, TokenInfo>,
    refresh_tokens: HashMap<String, TokenInfo>,
    devices: HashMap<String, Device>,
    subs: Vec<FakeSub>,
    sessions: HashMap<String, SessionHandle>,
    /// Scripted answers for the next subscription requests, in order.
    answers: VecDeque<u16>,
    /// Sessions of [`FakeTwitch::occupy_transports`], without a socket.
    others: Vec<String>,
    /// Live streams by login, as Get Streams lists them.
    streams: HashMap<String, Value>,
    /// Users Get Users knows besides the owners of issued tokens, login → id.
    users: HashMap<String, String>,
    /// Bodies of accepted Send Chat Message requests, in order.
    chat_messages: Vec<Value>,
    /// Scripted drops for the next Send Chat Message requests: (code, message).
    chat_drops: VecDeque<(String, String)>,
    stats: Stats,
}

pub(crate) type Shared = Arc<Mutex<Inner>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    // A panicking test thread must not take every later call down with it.
    shared.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Inner {
    fn issue(&mut self, info: TokenInfo) -> (String, String, i64) {
        let access = secret();
        let refresh = secret();
        let lifetime = (info.expires_at - now()).num_seconds();
        self.tokens.insert(access.clone(), info.clone());
        self.refresh_tokens.insert(refresh.clone(), info);
        (access, refresh, lifetime)
    }

    fn connected_count(&self) -> u64 {
        self.sessions.values().filter(|s| s.connected).count() as u64
    }

    /// Connected sessions holding an enabled subscription of `user_id` (its "transports").
    fn transports_of(&self, user_id: &str) -> std::collections::HashSet<&str> {
        self.subs
            .iter()
            .filter(|s| s.user_id == user_id && self.is_live(s))
            .map(|s| s.session_id.as_str())
            .collect()
    }

    /// Enabled, on a session that is connected: Twitch would deliver its events now.
    fn is_live(&self, sub: &FakeSub) -> bool {
        sub.status == "enabled"
            && self
                .sessions
                .get(&sub.session_id)
                .is_some_and(|h| h.connected)
    }

    fn has_subscription(&self, session_id: &str) -> bool {
        self.subs.iter().any(|s| s.session_id == session_id)
    }

    /// The enabled subscription of `kind` on a connected session.
    fn enabled_sub(&self, kind: &str) -> Option<&FakeSub> {
        self.subs.iter().find(|s| s.kind == kind && self.is_live(s))
    }

    fn send(&self, session_id: &str, out: Out) -> bool {
        self.sessions
            .get(session_id)
            .filter(|s| s.connected)
            .is_some_and(|s| s.tx.send(out).is_ok())
    }
}

/// A frame as the EventSub WebSocket sends it.
pub(crate) fn frame(message_type: &str, message_id: &str, extra: Value, payload: Value) -> String {
    let mut metadata = json!({
        "message_id": message_id,
        "message_type": message_type,
        "message_timestamp": format_time(&now()),
    });
    if let (Some(metadata), Some(extra)) = (metadata.as_object_mut(), extra.as_object()) {
        metadata.extend(extra.clone());
    }
    json!({ "metadata": metadata, "payload": payload }).to_string()
}

/// The `subscription` of a notification as `twitch event trigger` writes it: its own random id
/// (not the one the subscription was created with), a condition naming the event's broadcaster,
/// and the webhook transport with the session id filled in by the mock server.
fn cli_subscription(sub: &FakeSub, event: &Value) -> Value {
    let broadcaster = event
        .get("broadcaster_user_id")
        .or_else(|| event.get("to_broadcaster_user_id"))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "status": "enabled",
        "type": sub.kind,
        "version": sub.version,
        "condition": { "broadcaster_user_id": broadcaster },
        "transport": { "method": "webhook", "callback": "null", "session_id": sub.session_id },
        "created_at": format_time(&now()),
        "cost": 0,
    })
}

/// The fake's address and control handle; the server stops when it is dropped.
pub struct FakeTwitch {
    shared: Shared,
    addr: SocketAddr,
    _server: tokio_util::task::AbortOnDropHandle<()>,
}

impl FakeTwitch {
    /// Starts on 127.0.0.1 with a free port, on the current tokio runtime.
    pub async fn start(mode: Mode) -> std::io::Result<Self> {
        Self::start_on(mode, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(mode: Mode, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared: Shared = Arc::new(Mutex::new(Inner {
            mode,
            addr,
            keepalive_seconds: 10,
            welcome_window: std::time::Duration::from_secs(10),
            token_lifetime: 4 * 3600,
            device_interval: 1,
            tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            devices: HashMap::new(),
            subs: Vec::new(),
            sessions: HashMap::new(),
            answers: VecDeque::new(),
            others: Vec::new(),
            streams: HashMap::new(),
            users: HashMap::new(),
            chat_messages: Vec::new(),
            chat_drops: VecDeque::new(),
            stats: Stats::default(),
        }));
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            // Twitch's frames are not held back by Nagle's algorithm either.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the fake Twitch server stopped");
            }
        });
        Ok(Self {
            shared,
            addr,
            _server: tokio_util::task::AbortOnDropHandle::new(server),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `[twitch] auth_url`
    pub fn auth_url(&self) -> String {
        format!("http://{}/oauth2", self.addr)
    }

    /// `[twitch] api_url`
    pub fn api_url(&self) -> String {
        format!("http://{}/helix", self.addr)
    }

    /// `[twitch] eventsub_url`
    pub fn eventsub_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// The Twitch CLI mock's subscriptions path (also served in [`Mode::Twitch`]).
    pub fn mock_subscriptions_url(&self) -> String {
        format!("http://{}/eventsub/subscriptions", self.addr)
    }

    /// The `keepalive_timeout_seconds` of the next welcomes (Twitch's default is 10).
    pub fn set_keepalive_seconds(&self, seconds: u64) {
        lock(&self.shared).keepalive_seconds = seconds.max(1);
    }

    /// How long a new session may go without a subscription before it is closed with 4003
    /// (Twitch: 10 seconds).
    pub fn set_welcome_window(&self, window: std::time::Duration) {
        lock(&self.shared).welcome_window = window;
    }

    /// Lifetime of the tokens issued from now on (default 4 hours).
    pub fn set_token_lifetime(&self, seconds: i64) {
        lock(&self.shared).token_lifetime = seconds;
    }

    /// Issues a user token as if the user had logged in: `(access, refresh)`.
    pub fn issue_token(
        &self,
        client_id: &str,
        login: &str,
        user_id: &str,
        scopes: &[String],
    ) -> (String, String) {
        let mut inner = lock(&self.shared);
        let expires_at = now() + chrono::TimeDelta::seconds(inner.token_lifetime);
        let (access, refresh, _) = inner.issue(TokenInfo {
            client_id: client_id.to_owned(),
            login: login.to_owned(),
            user_id: user_id.to_owned(),
            scopes: scopes.to_vec(),
            expires_at,
        });
        (access, refresh)
    }

    /// A Twitch user Get Users can find by login (channels other than the token owners').
    pub fn add_user(&self, login: &str, user_id: &str) {
        lock(&self.shared)
            .users
            .insert(login.to_lowercase(), user_id.to_owned());
    }

    /// Every accepted Send Chat Message body (`broadcaster_id`, `sender_id`, `message`,
    /// `reply_parent_message_id`), dropped ones included.
    pub fn chat_messages(&self) -> Vec<Value> {
        lock(&self.shared).chat_messages.clone()
    }

    /// The next Send Chat Message is answered `is_sent: false` with this drop reason, as when
    /// AutoMod or a channel setting holds a message back.
    pub fn drop_next_chat(&self, code: &str, message: &str) {
        lock(&self.shared)
            .chat_drops
            .push_back((code.to_owned(), message.to_owned()));
    }

    /// Makes an access token invalid at once, as if it had expired.
    pub fn expire_token(&self, access: &str) {
        if let Some(info) = lock(&self.shared).tokens.get_mut(access) {
            info.expires_at = now() - chrono::TimeDelta::seconds(1);
        }
    }

    /// Whether this refresh token would still be accepted (a rotated one is not).
    pub fn refresh_token_valid(&self, refresh: &str) -> bool {
        lock(&self.shared).refresh_tokens.contains_key(refresh)
    }

    /// The user codes of device logins waiting for approval.
    pub fn pending_user_codes(&self) -> Vec<String> {
        lock(&self.shared)
            .devices
            .values()
            .filter(|d| d.approved.is_none())
            .map(|d| d.user_code.clone())
            .collect()
    }

    /// The user approves a device login (what they would do on twitch.tv/activate).
    pub fn approve_device(&self, user_code: &str, login: &str, user_id: &str) -> bool {
        let mut inner = lock(&self.shared);
        match inner
            .devices
            .values_mut()
            .find(|d| d.user_code == user_code)
        {
            Some(device) => {
                device.approved = Some((login.to_owned(), user_id.to_owned()));
                true
            }
            None => false,
        }
    }

    /// The next `count` subscription requests are answered with `status` (401, 403, 409, 429
    /// or any other), before anything else is checked.
    pub fn answer_next_subscriptions(&self, status: u16, count: usize) {
        let mut inner = lock(&self.shared);
        inner.answers.extend(std::iter::repeat_n(status, count));
    }

    pub fn subscriptions(&self) -> Vec<FakeSub> {
        lock(&self.shared).subs.clone()
    }

    /// Enabled subscriptions on connected sessions.
    pub fn enabled(&self) -> usize {
        let inner = lock(&self.shared);
        inner.subs.iter().filter(|s| inner.is_live(s)).count()
    }

    pub fn stats(&self) -> Stats {
        lock(&self.shared).stats
    }

    /// Ids of the connected sessions.
    pub fn sessions(&self) -> Vec<String> {
        let inner = lock(&self.shared);
        let mut ids: Vec<String> = inner
            .sessions
            .iter()
            .filter(|(_, s)| s.connected)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Stands in for `count` WebSocket connections of another program (or an earlier run
    /// that died without closing) holding a subscription of `user_id`: they count against the
    /// 3 transports per user until [`Self::release_transports`].
    pub fn occupy_transports(&self, user_id: &str, count: usize) {
        let mut inner = lock(&self.shared);
        for _ in 0..count {
            let id = uuid::Uuid::new_v4().to_string();
            let (tx, _) = mpsc::unbounded_channel();
            inner.sessions.insert(
                id.clone(),
                SessionHandle {
                    tx,
                    connected: true,
                    replaced: false,
                },
            );
            inner.subs.push(FakeSub {
                id: uuid::Uuid::new_v4().to_string(),
                kind: "stream.online".into(),
                version: "1".into(),
                condition: json!({ "broadcaster_user_id": user_id }),
                session_id: id.clone(),
                status: "enabled".into(),
                created_at: format_time(&now()),
                user_id: user_id.to_owned(),
                cost: 0,
            });
            inner.others.push(id);
        }
    }

    /// The connections of [`Self::occupy_transports`] drop; their subscriptions become
    /// `websocket_disconnected`.
    pub fn release_transports(&self) {
        let mut inner = lock(&self.shared);
        let others = std::mem::take(&mut inner.others);
        for id in &others {
            if let Some(session) = inner.sessions.get_mut(id) {
                session.connected = false;
            }
        }
        for sub in inner
            .subs
            .iter_mut()
            .filter(|s| others.contains(&s.session_id))
        {
            sub.status = "websocket_disconnected".into();
        }
    }

    /// `login` goes live (or starts a new stream when it already is): Get Streams lists it from
    /// now on. Returns the stream's `started_at`.
    pub fn go_live(&self, login: &str, title: &str, game_name: &str, viewer_count: u64) -> String {
        let login = login.to_lowercase();
        let started_at = format_time(&now());
        let stream = json!({
            "id": uuid::Uuid::new_v4().as_u128().to_string(),
            "user_id": format!("{}", login.bytes().map(u64::from).sum::<u64>()),
            "user_login": login,
            "user_name": login,
            "game_id": "0",
            "game_name": game_name,
            "type": "live",
            "title": title,
            "viewer_count": viewer_count,
            "started_at": started_at,
            "language": "en",
            "thumbnail_url": format!("https://static-cdn.jtvnw.net/previews-ttv/live_user_{login}-{{width}}x{{height}}.jpg"),
            "tag_ids": [],
            "tags": [],
            "is_mature": false,
        });
        lock(&self.shared).streams.insert(login, stream);
        started_at
    }

    /// Changes the viewer count of `login`'s stream, if it is live.
    pub fn set_viewers(&self, login: &str, viewer_count: u64) {
        if let Some(stream) = lock(&self.shared).streams.get_mut(&login.to_lowercase()) {
            stream["viewer_count"] = json!(viewer_count);
        }
    }

    /// `login`'s stream ends: Get Streams no longer lists it.
    pub fn go_offline(&self, login: &str) {
        lock(&self.shared).streams.remove(&login.to_lowercase());
    }

    /// Sends a notification to the session holding an enabled `kind` subscription; returns
    /// its message id, or `None` when nobody is subscribed (Twitch would drop it too).
    pub fn notify(&self, kind: &str, event: Value) -> Option<String> {
        let message_id = uuid::Uuid::new_v4().to_string();
        self.notify_as(kind, event, &message_id)
            .then_some(message_id)
    }

    /// Sends a notification with a given message id (a redelivery repeats one).
    pub fn notify_as(&self, kind: &str, event: Value, message_id: &str) -> bool {
        self.notification_frame(kind, event, message_id)
            .is_some_and(|text| self.send_frame(kind, text))
    }

    /// The notification frame [`Self::notify_as`] would send, without sending it: a benchmark
    /// builds it once and sends copies with other ids, so the fake's JSON building is not
    /// measured as the daemon's upstream. `None` without an enabled subscription of `kind`.
    pub fn notification_frame(&self, kind: &str, event: Value, message_id: &str) -> Option<String> {
        let inner = lock(&self.shared);
        let sub = inner.enabled_sub(kind)?;
        let subscription = match inner.mode {
            Mode::Twitch => sub.json(),
            Mode::CliMock => cli_subscription(sub, &event),
        };
        Some(frame(
            "notification",
            message_id,
            json!({"subscription_type": sub.kind, "subscription_version": sub.version}),
            json!({ "subscription": subscription, "event": event }),
        ))
    }

    /// Sends a frame as it is on the session that holds the enabled subscription of `kind`.
    pub fn send_frame(&self, kind: &str, text: String) -> bool {
        let inner = lock(&self.shared);
        match inner.enabled_sub(kind) {
            Some(sub) => inner.send(&sub.session_id, Out::Text(text)),
            None => false,
        }
    }

    /// Sends `session_reconnect` to every connected session; its URL leads to a new session
    /// that takes the old one's subscriptions once its welcome is sent.
    pub fn session_reconnect(&self) -> usize {
        let inner = lock(&self.shared);
        let mut sent = 0;
        for (id, session) in &inner.sessions {
            if !session.connected {
                continue;
            }
            let text = frame(
                "session_reconnect",
                &uuid::Uuid::new_v4().to_string(),
                json!({}),
                json!({"session": {
                    "id": id,
                    "status": "reconnecting",
                    "keepalive_timeout_seconds": null,
                    "reconnect_url": format!("ws://{}/ws?reconnect={id}", inner.addr),
                    "connected_at": format_time(&now()),
                }}),
            );
            if session.tx.send(Out::Text(text)).is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Closes every connected session with an EventSub close code (4000–4007).
    pub fn close_sessions(&self, code: u16) -> usize {
        let reason = match code {
            4000 => "internal server error",
            4001 => "sent inbound traffic",
            4002 => "failed ping pong",
            4003 => "connection unused",
            4004 => "reconnect grace time expired",
            4005 => "network timeout",
            4006 => "network error",
            4007 => "invalid reconnect",
            _ => "closed",
        };
        let inner = lock(&self.shared);
        inner
            .sessions
            .values()
            .filter(|s| s.connected)
            .filter(|s| s.tx.send(Out::Close(code, reason.to_owned())).is_ok())
            .count()
    }

    /// Every connected session stops sending keepalives (and stays open).
    pub fn silence(&self) -> usize {
        let inner = lock(&self.shared);
        inner
            .sessions
            .values()
            .filter(|s| s.connected)
            .filter(|s| s.tx.send(Out::Silence).is_ok())
            .count()
    }

    /// Sends a WebSocket ping on every connected session.
    pub fn ping(&self) -> usize {
        let inner = lock(&self.shared);
        inner
            .sessions
            .values()
            .filter(|s| s.connected)
            .filter(|s| s.tx.send(Out::Ping).is_ok())
            .count()
    }

    /// Revokes the enabled `kind` subscriptions with `status` as the reason (e.g.
    /// `authorization_revoked`, `user_removed`, `version_removed`).
    pub fn revoke(&self, kind: &str, status: &str) -> usize {
        let mut inner = lock(&self.shared);
        let mut revoked = Vec::new();
        for sub in inner
            .subs
            .iter_mut()
            .filter(|s| s.kind == kind && s.status == "enabled")
        {
            sub.status = status.to_owned();
            revoked.push(sub.clone());
        }
        inner
            .subs
            .retain(|s| !(s.kind == kind && s.status == status));
        revoked
            .iter()
            .filter(|sub| {
                let text = frame(
                    "revocation",
                    &uuid::Uuid::new_v4().to_string(),
                    json!({"subscription_type": sub.kind, "subscription_version": sub.version}),
                    json!({ "subscription": sub.json() }),
                );
                inner.send(&sub.session_id, Out::Text(text))
            })
            .count()
    }
}
