//! The web face of ongwatch on `[http] listen`: the dashboard, the OBS overlays, the event
//! stream for overlays and bots (`/ws/events`), the HTTP API and `/metrics`.
//! See docs/WEB.md for the endpoints, frames and security rules.
//!
//! The web side is one hub output (dropping the oldest when full, never blocking the bus)
//! whose fan-out task feeds every WebSocket client its own bounded queue. History comes from
//! the event log file, never from memory, so `since` works across restarts. Pages and the
//! vendored scripts are compiled into the binary.

mod access;
mod api;
mod assets;
mod auth;
mod chat;
pub mod config;
mod fanout;
mod history;
mod wire;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use access::{Cidr, CidrError};
pub use ws::{Op as ClientOp, parse_client_frame};

use crate::event::TopicRoot;
use crate::hub::{BoundedQueue, Delivery, HubCounters, Publisher};
use crate::mqtt::bridge::BridgeStatus;

/// What `/api/status` says about MQTT.
pub struct MqttInfo {
    /// `embedded`, `external` or `off`.
    pub mode: &'static str,
    pub tcp: Option<SocketAddr>,
    /// The embedded broker's MQTT-over-WebSocket listener, for `/overlay/hype`.
    pub ws: Option<SocketAddr>,
    /// The external broker's URL, without credentials.
    pub url: Option<String>,
    pub bridge: Option<Arc<BridgeStatus>>,
    /// The embedded broker's topic authority: bots, owners, refusals (`/api/bots`).
    pub authority: Option<Arc<crate::mqtt::authority::Authority>>,
}

pub struct WebOptions {
    pub listen: SocketAddr,
    pub token: String,
    pub trusted: Vec<Cidr>,
    /// Frames a `/ws/events` client may have waiting before it is cut off.
    pub client_queue: usize,
    pub root: TopicRoot,
    pub default_channel: String,
    pub log_path: PathBuf,
    /// The last seq in the event log when the daemon started.
    pub last_seq: u64,
    pub started: DateTime<Utc>,
    pub publisher: Publisher,
    /// Serves `/ws/chat`.
    pub chat: Arc<crate::chat::Chat>,
    pub outputs: Vec<(String, Arc<BoundedQueue<Delivery>>)>,
    /// The `[[outputs]]`, with their full counters.
    pub sinks: Vec<Arc<crate::sinks::OutputStatus>>,
    /// When set, `/api/events` reads from this SQLite history instead of the event log.
    pub history: Option<crate::sinks::sqlite::History>,
    pub hub: Arc<HubCounters>,
    pub mqtt: MqttInfo,
    /// Twitch accounts and the device-code login of `/api/auth/twitch`.
    pub logins: Arc<crate::sources::twitch::auth::logins::Logins>,
    /// The daemon's supervised tasks, for `/api/status`.
    pub tasks: crate::supervisor::Supervisor,
}

/// Shared by every handler.
struct Web {
    fanout: Arc<fanout::Fanout>,
    publisher: Publisher,
    root: TopicRoot,
    default_channel: String,
    log_path: PathBuf,
    started: DateTime<Utc>,
    outputs: Vec<(String, Arc<BoundedQueue<Delivery>>)>,
    sinks: Vec<Arc<crate::sinks::OutputStatus>>,
    history: Option<crate::sinks::sqlite::History>,
    hub: Arc<HubCounters>,
    mqtt: MqttInfo,
    logins: Arc<crate::sources::twitch::auth::logins::Logins>,
    tasks: crate::supervisor::Supervisor,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "cannot listen on {addr} ([http] listen in ongwatch.toml): {source}; choose a free port, e.g. \"127.0.0.1:8081\""
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The running server; stop it after the hub has closed the web output's queue.
pub struct WebServer {
    pub addr: SocketAddr,
    fanout_task: JoinHandle<()>,
    server_task: JoinHandle<std::io::Result<()>>,
    stop: CancellationToken,
}

/// The most a connection's kernel send queue holds that is not yet sent (`TCP_NOTSENT_LOWAT`).
/// Without it a client that stopped reading soaks up to 4 MiB of autotuned send buffer before
/// `[http] client_queue` starts to count; with it, it reaches its bound and is cut off within
/// seconds. Data in flight is not counted, so a distant client's throughput is not capped.
#[cfg(any(target_os = "linux", target_os = "android"))]
const UNSENT_LIMIT: u32 = 128 * 1024;
/// How long the server waits for open requests once the clients were told to go.
const STOP_PATIENCE: Duration = Duration::from_secs(5);

/// Binds `[http] listen` and starts serving; `queue` is the web output registered on the hub.
pub async fn start(
    options: WebOptions,
    queue: Arc<BoundedQueue<Delivery>>,
) -> Result<WebServer, WebError> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| WebError::Bind {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| WebError::Bind {
        addr: options.listen,
        source,
    })?;
    let fanout = Arc::new(fanout::Fanout::new(
        options.root.clone(),
        options.client_queue,
        options.last_seq,
    ));
    let fanout_task = tokio::spawn(fanout.clone().run(queue));
    let web = Arc::new(Web {
        fanout,
        publisher: options.publisher,
        root: options.root,
        default_channel: options.default_channel,
        log_path: options.log_path,
        started: options.started,
        outputs: options.outputs,
        sinks: options.sinks,
        history: options.history,
        hub: options.hub,
        mqtt: options.mqtt,
        logins: options.logins,
        tasks: options.tasks,
    });
    let access = Arc::new(access::Access::new(options.token, options.trusted));
    let router = Router::new()
        .route("/", get(assets::dashboard))
        .route("/overlay/alerts", get(assets::alerts))
        .route("/overlay/hype", get(assets::hype))
        .route("/assets/{name}", get(assets::file))
        .route("/ws/events", get(ws::events))
        .route("/ws/chat", get(chat::chat).with_state(options.chat))
        .route("/api/status", get(api::status))
        .route("/api/events", get(api::events))
        .route("/api/publish", post(api::publish))
        .route("/api/trigger", post(api::trigger))
        .route("/api/auth/twitch", get(auth::status))
        .route("/api/auth/twitch/start", post(auth::start))
        .route("/api/bots", get(api::bots))
        .route("/metrics", get(api::metrics))
        .with_state(web)
        .layer(middleware::from_fn_with_state(access, access::guard));
    let stop = CancellationToken::new();
    // Frames are small and latency matters: no Nagle delay (with a peer's delayed ACK, 40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let _ = socket2::SockRef::from(&*tcp).set_tcp_notsent_lowat(UNSENT_LIMIT);
    });
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.clone().cancelled_owned());
    let server_task = tokio::spawn(async move { server.await });
    tracing::info!(%addr, "HTTP server listening");
    Ok(WebServer {
        addr,
        fanout_task,
        server_task,
        stop,
    })
}

impl WebServer {
    /// Lets the fan-out hand out what the hub drained (clients then close with 1001), then
    /// stops the server.
    pub async fn stop(self) {
        let _ = self.fanout_task.await;
        self.stop.cancel();
        match tokio::time::timeout(STOP_PATIENCE, self.server_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP server failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server task failed"),
            Err(_) => tracing::warn!("HTTP requests still open at shutdown were dropped"),
        }
    }
}
