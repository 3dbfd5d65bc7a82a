//! Finding the running daemon's broker for `trigger`, `tail` and `replay`, and the one line a
//! command prints when there is none.

use std::time::Duration;

use super::{Failure, Global};
use crate::config::Config;
use crate::mqtt::access::LocalLogin;
use crate::mqtt::client::{CliClient, ClientError};
use crate::mqtt::{Endpoint, MqttMode};
use crate::state::{self, Found, Runtime};

/// The fix every "no daemon" line ends with.
pub(super) const START_THE_DAEMON: &str =
    "start the daemon with `ongwatch run` (same --config and --state-dir)";

/// How long `trigger` and `replay` wait for a broker that went away after they had connected
/// (a daemon restarting under them); the first connection is bounded by `CONNECT_TIMEOUT`.
pub(super) const CLI_PATIENCE: Duration = Duration::from_secs(30);

/// How often `tail` looks for a daemon that is not there (yet).
pub(super) const TAIL_RETRY: Duration = Duration::from_millis(250);

/// Why a CLI command did not get a connection to its daemon.
pub(super) enum Unreached {
    /// No daemon answers; one line naming the address or file tried, without the fix (callers
    /// add it, or wait).
    Absent(String),
    /// Something waiting will not cure: bad config, a login the broker refuses.
    Failed(Failure),
}

impl Unreached {
    /// The failure of a command that does not wait.
    pub(super) fn into_failure(self) -> Failure {
        match self {
            Self::Absent(why) => Failure::runtime(format!("{why}; {START_THE_DAEMON}")),
            Self::Failed(failure) => failure,
        }
    }
}

/// Connects to the broker of the daemon this CLI invocation belongs to, found through
/// `<state dir>/runtime.json`. Ends within `CONNECT_TIMEOUT`: a missing or stale runtime.json
/// is answered without the network, and the connection attempt itself is bounded.
pub(super) async fn reach_daemon(
    config: &Config,
    global: &Global,
    client_prefix: &str,
    patience: Duration,
) -> Result<CliClient, Unreached> {
    let state_dir = state::resolve_state_dir(global.state_dir.as_deref());
    let file = state_dir.join(Runtime::FILE);
    let found = Runtime::find(&state_dir);
    let recorded = match &found {
        Found::Nothing => None,
        Found::Stale(runtime) | Found::Running(runtime) => Some(runtime),
    };
    let mut endpoint = Endpoint::for_cli(&config.mqtt, recorded)
        .map_err(|e| Unreached::Failed(Failure::usage(e)))?;
    match &found {
        Found::Stale(runtime) => {
            return Err(Unreached::Absent(format!(
                "no daemon at {endpoint}: pid {}, which wrote {}, is no longer running (it was killed or crashed)",
                runtime.pid,
                file.display()
            )));
        }
        Found::Nothing
            if config.mqtt.mode == MqttMode::Embedded && config.mqtt_listen.port() == 0 =>
        {
            return Err(Unreached::Absent(format!(
                "no daemon found: there is no {}, where a daemon with mqtt.listen port 0 writes its address",
                file.display()
            )));
        }
        Found::Nothing | Found::Running(_) => {}
    }
    if config.mqtt.mode == MqttMode::Embedded
        && let Some(login) = LocalLogin::read(&state_dir)
    {
        login.use_for(&mut endpoint);
    }
    match CliClient::connect(endpoint, client_prefix, patience).await {
        Ok(client) => Ok(client),
        Err(ClientError::Unreachable { endpoint, detail }) => Err(Unreached::Absent(match found {
            Found::Running(runtime) => format!(
                "no daemon answers at {endpoint} ({detail}), the address pid {} wrote to {}",
                runtime.pid,
                file.display()
            ),
            _ => format!(
                "no daemon answers at {endpoint} ({detail}), and there is no {}",
                file.display()
            ),
        })),
        Err(refused @ ClientError::Refused { .. }) => {
            Err(Unreached::Failed(Failure::runtime(refused)))
        }
    }
}
