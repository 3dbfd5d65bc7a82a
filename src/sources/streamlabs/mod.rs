//! Streamlabs: the socket API (Socket.IO 2 / Engine.IO 3), normalized into the contract.
//!
//! `run` keeps one connection to `<url>/socket.io/?token=…&EIO=3&transport=websocket`, reports
//! its state on `R/system/providers/streamlabs` and reconnects with backoff. A token the server
//! refuses (HTTP 401 at the handshake) is retried only after [`Timing::unauthorized_backoff`].

pub mod config;
mod normalize;

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use config::StreamlabsConfig;

use crate::credentials::Credentials;
use crate::event::{ConnectionState, Event};
use crate::sources::socketio::provider::{
    Ended, OutClosed, StateReporter, Timing, host_of, supervise,
};
use crate::sources::socketio::{ClientOptions, EioVersion, SocketIoClient};

pub use normalize::{PROVIDER, normalize, normalize_socket_event};

/// What the Streamlabs source needs: `[streamlabs] url` plus what the daemon knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `[streamlabs] url`.
    pub url: String,
    /// The broadcaster login events are published under (the socket does not say).
    pub channel: String,
    /// The credentials environment, named in the "how to fix" hint of `unauthorized`.
    pub environment: String,
    pub timing: Timing,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            url: "https://sockets.streamlabs.com".to_owned(),
            channel: String::new(),
            environment: "test".to_owned(),
            timing: Timing::default(),
        }
    }
}

impl Settings {
    /// The settings and socket token, when `[streamlabs.<env>] socket_token` is present.
    pub fn from_config(
        config: &StreamlabsConfig,
        credentials: &Credentials,
        environment: &str,
        channel: &str,
    ) -> Option<(Self, String)> {
        let token = credentials
            .get("streamlabs", environment)?
            .socket_token
            .clone()?;
        let settings = Self {
            url: config.url.clone(),
            channel: channel.to_owned(),
            environment: environment.to_owned(),
            timing: Timing::default(),
        };
        Some((settings, token))
    }
}

/// Connects, normalizes every alert onto `out`, and reconnects until `shutdown`. `token` is the
/// Socket API token from `[streamlabs.<env>] socket_token`; it is never logged.
pub async fn run(
    settings: Settings,
    token: String,
    out: mpsc::Sender<Event>,
    shutdown: CancellationToken,
) {
    let reporter = StateReporter::new(PROVIDER, &settings.channel, out);
    supervise(&reporter, &settings.timing, &shutdown, || {
        connection(&settings, &token, &reporter)
    })
    .await;
}

async fn connection(
    settings: &Settings,
    token: &str,
    reporter: &StateReporter,
) -> Result<Ended, OutClosed> {
    let host = host_of(&settings.url);
    reporter
        .report(
            ConnectionState::Connecting,
            format!("connecting to {host}"),
            Vec::new(),
        )
        .await?;
    let options = ClientOptions {
        url: settings.url.clone(),
        query: vec![("token".to_owned(), token.to_owned())],
        version: EioVersion::V3,
        connect_timeout: settings.timing.connect_timeout,
    };
    let mut client = match SocketIoClient::connect(&options).await {
        Ok(client) => client,
        Err(error) if error.is_unauthorized() => {
            return Ok(Ended::Unauthorized {
                reason: format!("Streamlabs refused the socket token ({error})"),
                fix: format!(
                    "check [streamlabs.{}] socket_token in credentials.toml (Streamlabs \
                     dashboard → Settings → API Settings → API Tokens → Your Socket API Token)",
                    settings.environment
                ),
            });
        }
        Err(error) => {
            return Ok(Ended::Failed {
                reason: format!("cannot connect to {host}: {error}"),
                lasted: Duration::ZERO,
            });
        }
    };
    let since = Instant::now();
    reporter
        .report(
            ConnectionState::Connected,
            format!("connected to {host}"),
            Vec::new(),
        )
        .await?;
    loop {
        match client.next_event().await {
            Ok(event) => {
                for normalized in
                    normalize_socket_event(&event.name, &event.args, &settings.channel)
                {
                    reporter.send(normalized).await?;
                }
            }
            Err(error) => {
                return Ok(Ended::Failed {
                    reason: format!("connection to {host} lost: {error}"),
                    lasted: since.elapsed(),
                });
            }
        }
    }
}
