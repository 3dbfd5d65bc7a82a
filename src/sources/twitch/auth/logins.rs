//! Accounts as the daemon reports them (`/api/status`, `ongwatch check`) and device-code
//! logins started from the dashboard (`POST /api/auth/twitch/start`).
//!
//! A login started here is the same flow as `ongwatch auth twitch` (the same polling and the
//! same 0600 atomic token file); only the URL and code go to the page instead of a terminal.
//! Once a broadcaster token is stored, subscribers of [`Logins::stored`] hear of it, so the
//! running Twitch source switches to the new login without a restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::login::{scopes_for, store_grant, wait_for_grant};
use super::{Account, AuthError, OAuth, StoredToken};
use crate::credentials::Credentials;
use crate::event::{format_time, now};
use crate::net::http_client;
use crate::sources::twitch::catalog::{self, Spec};
use crate::sources::twitch::config::TwitchEnv;
use crate::sources::twitch::eventsub::PROVIDER;

/// One stored account as the API shows it. Never the token itself.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub provider: &'static str,
    pub account: Account,
    pub logged_in: bool,
    pub login: Option<String>,
    pub user_id: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    pub expired: bool,
    pub refresh_token: bool,
    /// Needed for what is enabled but not granted.
    pub missing_scopes: Vec<String>,
    /// What is wrong with this account and how to fix it; `None` when it is usable.
    pub problem: Option<String>,
    pub login_command: String,
}

/// A login started from the API, as `GET /api/auth/twitch` reports it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Flow {
    /// Nothing started since the daemon began.
    Idle,
    Pending {
        verification_uri: String,
        user_code: String,
        expires_at: String,
    },
    Done {
        login: String,
        user_id: String,
        finished_at: String,
    },
    Failed {
        error: String,
        finished_at: String,
    },
}

/// What `POST /api/auth/twitch/start` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub verification_uri: String,
    pub user_code: String,
    pub expires_in: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The setup does not allow a login (no client id, localdev): the user's to fix.
    #[error("{0}")]
    Unavailable(String),
    /// Twitch could not be asked for a code.
    #[error("cannot start the Twitch login: {0}")]
    Twitch(#[from] AuthError),
}

struct Current {
    /// Bumped per start, so a superseded flow's task cannot overwrite the newer one.
    generation: u64,
    flow: Flow,
    pending_until: Option<DateTime<Utc>>,
}

pub struct Logins {
    oauth: Result<OAuth, String>,
    client_id: Option<String>,
    state_dir: PathBuf,
    specs: Vec<Spec>,
    scopes: HashMap<Account, Vec<String>>,
    flows: Mutex<HashMap<Account, Current>>,
    stored: watch::Sender<u64>,
}

impl Logins {
    pub fn from_config(config: TwitchEnv<'_>, credentials: &Credentials, state_dir: &Path) -> Self {
        let environment = config.environment;
        let creds = credentials.get(PROVIDER, environment);
        let client_id = creds
            .and_then(|c| c.client_id.clone())
            .filter(|c| !c.is_empty());
        let oauth = if environment == "localdev" {
            Err("environment localdev needs no login: a placeholder account is used".into())
        } else {
            match &client_id {
                Some(id) => Ok(OAuth::new(
                    http_client(),
                    &config.twitch.auth_url,
                    id.clone(),
                    creds.and_then(|c| c.client_secret.clone()),
                )),
                None => Err(format!(
                    "credentials.toml has no [twitch.{environment}] client_id; add it (docs/TWITCH.md) and restart ongwatch"
                )),
            }
        };
        // A bad subscription list stops the daemon before this is built; empty is harmless.
        let specs = catalog::resolve(&config.twitch.subscriptions).unwrap_or_default();
        let scopes = Account::ALL
            .into_iter()
            .map(|a| (a, scopes_for(config, a).unwrap_or_default()))
            .collect();
        Self {
            oauth,
            client_id,
            state_dir: state_dir.to_path_buf(),
            specs,
            scopes,
            flows: Mutex::new(HashMap::new()),
            stored: watch::Sender::new(0),
        }
    }

    /// Changes each time a broadcaster login is stored from here.
    pub fn stored(&self) -> watch::Receiver<u64> {
        self.stored.subscribe()
    }

    fn flows(&self) -> MutexGuard<'_, HashMap<Account, Current>> {
        // Every update is a single assignment, so a poisoned map is still consistent.
        self.flows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every account, logged in or not.
    pub fn accounts(&self) -> Vec<AccountView> {
        Account::ALL.into_iter().map(|a| self.view(a)).collect()
    }

    fn view(&self, account: Account) -> AccountView {
        let fix = account.login_command();
        let mut view = AccountView {
            provider: PROVIDER,
            account,
            logged_in: false,
            login: None,
            user_id: None,
            scopes: Vec::new(),
            expires_at: None,
            expired: false,
            refresh_token: false,
            missing_scopes: Vec::new(),
            problem: None,
            login_command: fix.clone(),
        };
        let token = match StoredToken::load(&StoredToken::path(&self.state_dir, account)) {
            Ok(Some(token)) => token,
            Ok(None) => {
                view.problem = Some(match account {
                    Account::Broadcaster => format!("not logged in; run `{fix}` or log in here"),
                    Account::Bot => format!(
                        "not logged in (optional, for chat as a separate user); run `{fix}`"
                    ),
                });
                return view;
            }
            Err(e) => {
                view.problem = Some(format!("{e}; run `{fix}`"));
                return view;
            }
        };
        let expired = token.expires_at.is_some_and(|at| at <= now());
        let missing = missing_scopes(&self.specs, account, &token.scopes);
        view.problem = if self
            .client_id
            .as_deref()
            .is_some_and(|id| id != token.client_id)
        {
            Some(format!(
                "belongs to another client id than credentials.toml's; run `{fix}`"
            ))
        } else if expired && token.refresh_token.is_none() {
            Some(format!("expired and cannot be refreshed; run `{fix}`"))
        } else if !missing.is_empty() {
            Some(format!(
                "lacks the scopes {}; run `{fix}` to grant them",
                missing.join(" ")
            ))
        } else {
            None
        };
        view.logged_in = true;
        view.login = Some(token.login);
        view.user_id = Some(token.user_id);
        view.scopes = token.scopes;
        view.expires_at = token.expires_at.as_ref().map(format_time);
        view.expired = expired;
        view.refresh_token = token.refresh_token.is_some();
        view.missing_scopes = missing;
        view
    }

    /// The login flow of each account.
    pub fn flows_view(&self) -> HashMap<Account, Flow> {
        let flows = self.flows();
        Account::ALL
            .into_iter()
            .map(|a| (a, flows.get(&a).map_or(Flow::Idle, |c| c.flow.clone())))
            .collect()
    }

    /// Starts a device-code login for `account`, or returns the one still pending, so a
    /// second click shows the same code.
    pub async fn start(self: &Arc<Self>, account: Account) -> Result<Started, StartError> {
        let oauth = self.oauth.clone().map_err(StartError::Unavailable)?;
        if let Some(current) = self.flows().get(&account)
            && let (
                Flow::Pending {
                    verification_uri,
                    user_code,
                    ..
                },
                Some(until),
            ) = (&current.flow, current.pending_until)
            && until > now()
        {
            return Ok(Started {
                verification_uri: verification_uri.clone(),
                user_code: user_code.clone(),
                expires_in: u64::try_from((until - now()).num_seconds()).unwrap_or(0),
            });
        }
        let scopes = self.scopes.get(&account).cloned().unwrap_or_default();
        let device = oauth.start_device(&scopes).await?;
        let lifetime = i64::try_from(device.expires_in)
            .ok()
            .and_then(chrono::TimeDelta::try_seconds)
            .unwrap_or(chrono::TimeDelta::zero());
        let expires_at = now() + lifetime;
        let started = Started {
            verification_uri: device.verification_uri.clone(),
            user_code: device.user_code.clone(),
            expires_in: device.expires_in,
        };
        let generation = {
            let mut flows = self.flows();
            let generation = flows.get(&account).map_or(1, |c| c.generation + 1);
            flows.insert(
                account,
                Current {
                    generation,
                    flow: Flow::Pending {
                        verification_uri: device.verification_uri.clone(),
                        user_code: device.user_code.clone(),
                        expires_at: format_time(&expires_at),
                    },
                    pending_until: (device.expires_in > 0).then_some(expires_at),
                },
            );
            generation
        };
        tracing::info!(
            account = account.name(),
            "Twitch login started from the API"
        );
        let this = self.clone();
        tokio::spawn(async move {
            let result = match wait_for_grant(&oauth, &device, &scopes, None).await {
                Ok(granted) => store_grant(&oauth, account, granted, &this.state_dir).await,
                Err(e) => Err(e),
            };
            this.finish(account, generation, result);
        });
        Ok(started)
    }

    fn finish(&self, account: Account, generation: u64, result: Result<StoredToken, AuthError>) {
        let finished_at = format_time(&now());
        let flow = match result {
            Ok(token) => {
                tracing::info!(
                    account = account.name(),
                    login = %token.login,
                    "Twitch login stored"
                );
                if account == Account::Broadcaster {
                    self.stored.send_modify(|n| *n += 1);
                }
                Flow::Done {
                    login: token.login,
                    user_id: token.user_id,
                    finished_at,
                }
            }
            Err(e) => {
                tracing::warn!(account = account.name(), error = %e, "Twitch login failed");
                Flow::Failed {
                    error: e.to_string(),
                    finished_at,
                }
            }
        };
        let mut flows = self.flows();
        if let Some(current) = flows.get_mut(&account)
            && current.generation == generation
        {
            current.flow = flow;
            current.pending_until = None;
        }
    }
}

/// The scopes `account` needs for what is enabled and lacks in `granted`.
pub fn missing_scopes(specs: &[Spec], account: Account, granted: &[String]) -> Vec<String> {
    match account {
        Account::Broadcaster => catalog::missing_scopes(specs, granted),
        Account::Bot => catalog::BOT_SCOPES
            .iter()
            .filter(|s| !granted.iter().any(|g| g == *s))
            .map(|s| (*s).to_owned())
            .collect(),
    }
}

/// `ongwatch check`'s lines about Twitch tokens: one per account, `ok:` or `problem:`.
/// Offline: it says whether a token looks usable, not whether Twitch still accepts it.
pub fn check_lines(
    config: TwitchEnv<'_>,
    credentials: &Credentials,
    state_dir: &Path,
) -> Vec<String> {
    let logins = Logins::from_config(config, credentials, state_dir);
    if let Err(why) = &logins.oauth {
        return vec![format!("ok: twitch login: {why}")];
    }
    logins
        .accounts()
        .into_iter()
        .map(|view| {
            let name = view.account.name();
            match (&view.problem, view.logged_in) {
                (None, _) => format!(
                    "ok: twitch {name} token: {} (user id {}), {}, scopes complete",
                    view.login.unwrap_or_default(),
                    view.user_id.unwrap_or_default(),
                    match (&view.expires_at, view.expired) {
                        (Some(at), false) => format!("expires {at}"),
                        (Some(at), true) => {
                            format!("expired {at} (the daemon refreshes it at start)")
                        }
                        (None, _) => "does not expire".into(),
                    }
                ),
                (Some(problem), false) if view.account == Account::Bot => {
                    format!("ok: twitch {name} token: {problem}")
                }
                (Some(problem), _) => format!("problem: twitch {name} token: {problem}"),
            }
        })
        .collect()
}
