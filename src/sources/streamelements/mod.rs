//! StreamElements: tips and alerts, normalized into the contract.
//!
//! Two transports, chosen by `[streamelements] transport`:
//! - `astro` (default): the Astro gateway, plain WebSocket JSON; subscribes to
//!   `channel.activities`, `channel.tips` and `channel.tips.moderation` ([`astro`]).
//! - `realtime`: the legacy Socket.IO 2 socket; `authenticate` after connecting ([`realtime`]).
//!
//! Both report on `R/system/providers/streamelements` and reconnect like every socket source
//! (see [`crate::sources::socketio::provider`]).

mod astro;
pub mod config;
mod normalize;
mod realtime;

use std::fmt;
use std::str::FromStr;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use config::StreamElementsConfig;

use crate::credentials::Credentials;
use crate::event::Event;
use crate::sources::socketio::provider::{Ended, StateReporter, Timing, supervise};

pub use astro::{AstroFrame, TOPICS as ASTRO_TOPICS, parse_frame as parse_astro_frame};
pub use normalize::{
    PROVIDER, TipReview, normalize, normalize_astro, normalize_socket_event, trigger_payload,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    #[default]
    Astro,
    Realtime,
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a StreamElements transport; use \"astro\" or \"realtime\"")]
pub struct BadTransport(String);

impl FromStr for Transport {
    type Err = BadTransport;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "astro" => Ok(Transport::Astro),
            "realtime" => Ok(Transport::Realtime),
            other => Err(BadTransport(other.to_owned())),
        }
    }
}

/// Which credential the token is; both transports send it along with the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `[streamelements.<env>] apikey`.
    Apikey,
    /// `[streamelements.<env>] jwt`.
    Jwt,
    Oauth2,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Apikey => "apikey",
            TokenKind::Jwt => "jwt",
            TokenKind::Oauth2 => "oauth2",
        }
    }
}

/// The StreamElements credential. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub kind: TokenKind,
    pub token: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// What the StreamElements source needs: the `[streamelements]` keys plus what the daemon knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub transport: Transport,
    pub astro_url: String,
    pub realtime_url: String,
    /// The broadcaster login events are published under (upstream only names SE's channel id).
    pub channel: String,
    /// The credentials environment, named in the "how to fix" hint of `unauthorized`.
    pub environment: String,
    pub timing: Timing,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            transport: Transport::Astro,
            astro_url: "wss://astro.streamelements.com".to_owned(),
            realtime_url: "https://realtime.streamelements.com".to_owned(),
            channel: String::new(),
            environment: "test".to_owned(),
            timing: Timing::default(),
        }
    }
}

impl Settings {
    /// The settings and credential, when `[streamelements.<env>]` has an `apikey` or a `jwt`.
    pub fn from_config(
        config: &StreamElementsConfig,
        credentials: &Credentials,
        environment: &str,
        channel: &str,
    ) -> Option<(Self, Credential)> {
        let table = credentials.get("streamelements", environment)?;
        let credential = match (&table.apikey, &table.jwt) {
            (Some(token), _) => Credential {
                kind: TokenKind::Apikey,
                token: token.clone(),
            },
            (None, Some(token)) => Credential {
                kind: TokenKind::Jwt,
                token: token.clone(),
            },
            (None, None) => return None,
        };
        let settings = Self {
            // The config loader already rejected any other value.
            transport: config.transport.parse().unwrap_or_default(),
            astro_url: config.astro_url.clone(),
            realtime_url: config.realtime_url.clone(),
            channel: channel.to_owned(),
            environment: environment.to_owned(),
            timing: Timing::default(),
        };
        Some((settings, credential))
    }

    /// How a connection ends when StreamElements refuses the credential (either transport):
    /// the shared supervisor retries it only after the long wait.
    fn refused(&self, credential: &Credential, reason: String) -> Ended {
        Ended::Unauthorized {
            reason: format!(
                "StreamElements refused the {} ({reason})",
                credential.kind.as_str()
            ),
            fix: self.unauthorized_fix(credential),
        }
    }

    fn unauthorized_fix(&self, credential: &Credential) -> String {
        format!(
            "check [streamelements.{}] {} in credentials.toml (StreamElements dashboard → \
             Account → Channels → Show secrets)",
            self.environment,
            credential.kind.as_str()
        )
    }
}

/// Connects with the configured transport, normalizes every alert onto `out`, and reconnects
/// until `shutdown`. The token is never logged.
pub async fn run(
    settings: Settings,
    credential: Credential,
    out: mpsc::Sender<Event>,
    shutdown: CancellationToken,
) {
    let reporter = StateReporter::new(PROVIDER, &settings.channel, out);
    match settings.transport {
        Transport::Astro => {
            // Outlives each connection: a tip held before a reconnect stays held after it.
            let review = std::sync::Mutex::new(TipReview::default());
            supervise(&reporter, &settings.timing, &shutdown, || {
                astro::connection(&settings, &credential, &reporter, &review)
            })
            .await
        }
        Transport::Realtime => {
            supervise(&reporter, &settings.timing, &shutdown, || {
                realtime::connection(&settings, &credential, &reporter)
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_parses() {
        assert_eq!("astro".parse::<Transport>().unwrap(), Transport::Astro);
        assert_eq!(
            "realtime".parse::<Transport>().unwrap(),
            Transport::Realtime
        );
        assert!("Astro".parse::<Transport>().is_err());
        assert_eq!(Transport::default(), Transport::Astro);
    }

    #[test]
    fn credential_debug_hides_the_token() {
        let c = Credential {
            kind: TokenKind::Jwt,
            token: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let fix = Settings::default().unauthorized_fix(&c);
        assert!(fix.contains("[streamelements.test] jwt"), "{fix}");
    }
}
