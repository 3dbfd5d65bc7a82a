//! Twitch accounts: OAuth device-code login, stored tokens, validation and refresh.
//!
//! Tokens live in the state dir as `twitch-<account>.json` (0600, replaced atomically). Twitch
//! rotates the refresh token of a public client (no `client_secret`) on every refresh and the
//! old one stops working at once, so a refreshed token is written to disk before it is used.
//! Nothing here puts a token into a `Debug` output, a log line or an error message.

mod login;
pub mod logins;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::credentials::ProviderCredentials;
use crate::sources::twitch::config::TwitchConfig;

pub use login::{
    CommandError, LoginOptions, enabled_specs, login, login_command, status, status_command,
};

/// The two accounts ongwatch can hold: events come from the broadcaster, chat may be sent as a bot.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Account {
    Broadcaster,
    Bot,
}

impl Account {
    pub const ALL: [Account; 2] = [Account::Broadcaster, Account::Bot];

    pub fn name(self) -> &'static str {
        match self {
            Self::Broadcaster => "broadcaster",
            Self::Bot => "bot",
        }
    }

    /// The command that (re)creates this account's token.
    pub fn login_command(self) -> String {
        match self {
            Self::Broadcaster => "ongwatch auth twitch".into(),
            Self::Bot => "ongwatch auth twitch --account bot".into(),
        }
    }
}

/// A user token as stored in the state dir.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredToken {
    pub account: Account,
    pub client_id: String,
    pub login: String,
    pub user_id: String,
    pub scopes: Vec<String>,
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// When the access token expires, as last told by Twitch.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the access token was obtained or last refreshed.
    pub obtained_at: DateTime<Utc>,
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("account", &self.account)
            .field("login", &self.login)
            .field("user_id", &self.user_id)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl StoredToken {
    /// `<state dir>/twitch-<account>.json`
    pub fn path(state_dir: &Path, account: Account) -> PathBuf {
        state_dir.join(format!("twitch-{}.json", account.name()))
    }

    /// The stored token, `Ok(None)` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Self>, AuthError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(AuthError::Store {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                });
            }
        };
        // serde's message can quote a value of the file, which may be the token: left out.
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AuthError::Store {
                path: path.to_path_buf(),
                reason: format!(
                    "not a token file (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            })
    }

    /// Stores a new login under the token file's lock, so it never lands in the middle of the
    /// daemon's refresh (which would then write the older login back over it). It counts as
    /// obtained now, after whatever the daemon wrote before, so the daemon's holder takes it.
    pub async fn store(&mut self, path: &Path) -> Result<(), AuthError> {
        let _file = FileLock::acquire(path).await?;
        self.obtained_at = self.obtained_at.max(crate::event::now());
        self.save(path)
    }

    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let store = |reason: String| AuthError::Store {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent() {
            crate::state::ensure_dir(dir).map_err(|e| store(e.to_string()))?;
        }
        let text = serde_json::to_vec_pretty(self).map_err(|e| store(e.to_string()))?;
        crate::state::write_private_atomic(path, &text).map_err(|e| store(e.to_string()))
    }

    /// When to refresh: a quarter of the lifetime ahead of expiry, at most 10 minutes ahead,
    /// so a token is never used in its last moments and short-lived test tokens still work.
    pub fn refresh_at(&self) -> Option<DateTime<Utc>> {
        let expires = self.expires_at?;
        let lifetime = expires - self.obtained_at;
        let ahead = (lifetime / 4).min(chrono::TimeDelta::minutes(10));
        Some(expires - ahead.max(chrono::TimeDelta::zero()))
    }
}

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("cannot reach {host}: {reason}")]
    Transport { host: String, reason: String },
    /// Twitch said no; `message` is Twitch's own explanation.
    #[error("Twitch refused it ({status}): {message}")]
    Rejected { status: u16, message: String },
    #[error("unexpected answer from {host}: {reason}")]
    Answer { host: String, reason: String },
    #[error("the login code expired before it was entered; run the command again")]
    DeviceExpired,
    #[error("the login was declined on Twitch")]
    Denied,
    #[error("the token has no refresh token; log in again")]
    NoRefreshToken,
    #[error("token file {path}: {reason}")]
    Store { path: PathBuf, reason: String },
}

impl AuthError {
    /// Retrying will not help: the token or the grant is gone, only a new login fixes it.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => (400..500).contains(status) && *status != 429,
            Self::DeviceExpired | Self::Denied | Self::NoRefreshToken => true,
            Self::Transport { .. } | Self::Answer { .. } | Self::Store { .. } => false,
        }
    }
}

/// `POST /device` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default = "default_interval")]
    pub interval: u64,
    #[serde(default)]
    pub expires_in: u64,
}

fn default_interval() -> u64 {
    5
}

/// `POST /token` answer.
#[derive(Clone, Deserialize)]
pub struct Granted {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub scope: Vec<String>,
}

/// `GET /validate` answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Validation {
    pub client_id: String,
    #[serde(default)]
    pub login: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// One poll of the device-code grant.
pub enum Poll {
    Pending,
    SlowDown,
    Granted(Granted),
}

/// The OAuth endpoints under `[twitch] auth_url` for one app (client id).
#[derive(Clone)]
pub struct OAuth {
    http: reqwest::Client,
    base: String,
    client_id: String,
    client_secret: Option<String>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    error: String,
}

impl OAuth {
    pub fn new(
        http: reqwest::Client,
        auth_url: &str,
        client_id: impl Into<String>,
        client_secret: Option<String>,
    ) -> Self {
        Self {
            http,
            base: auth_url.trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret: client_secret.filter(|s| !s.is_empty()),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    fn host(&self) -> String {
        crate::net::host_of(&self.base).unwrap_or_else(|| self.base.clone())
    }

    fn transport(&self, e: reqwest::Error) -> AuthError {
        AuthError::Transport {
            host: self.host(),
            reason: e.without_url().to_string(),
        }
    }

    async fn form<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        mut fields: Vec<(&str, String)>,
    ) -> Result<T, AuthError> {
        fields.push(("client_id", self.client_id.clone()));
        if let Some(secret) = &self.client_secret {
            fields.push(("client_secret", secret.clone()));
        }
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .form(&fields)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.answer(response).await
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, AuthError> {
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport(e))?;
        if !(200..300).contains(&status) {
            let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            let message = if body.message.is_empty() {
                body.error
            } else {
                body.message
            };
            return Err(AuthError::Rejected { status, message });
        }
        // serde's message could quote the body, which holds the token: only the position.
        serde_json::from_slice(&bytes).map_err(|e| AuthError::Answer {
            host: self.host(),
            reason: format!("not the expected JSON (column {})", e.column()),
        })
    }

    pub async fn start_device(&self, scopes: &[String]) -> Result<DeviceCode, AuthError> {
        self.form("/device", vec![("scopes", scopes.join(" "))])
            .await
    }

    pub async fn poll_device(
        &self,
        device: &DeviceCode,
        scopes: &[String],
    ) -> Result<Poll, AuthError> {
        let result = self
            .form::<Granted>(
                "/token",
                vec![
                    ("scopes", scopes.join(" ")),
                    ("device_code", device.device_code.clone()),
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:device_code".into(),
                    ),
                ],
            )
            .await;
        match result {
            Ok(granted) => Ok(Poll::Granted(granted)),
            Err(AuthError::Rejected { message, .. }) if message == "authorization_pending" => {
                Ok(Poll::Pending)
            }
            Err(AuthError::Rejected { message, .. }) if message == "slow_down" => {
                Ok(Poll::SlowDown)
            }
            Err(AuthError::Rejected { message, .. })
                if message.contains("invalid device code") || message == "expired_token" =>
            {
                Err(AuthError::DeviceExpired)
            }
            Err(AuthError::Rejected { message, .. }) if message == "access_denied" => {
                Err(AuthError::Denied)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Granted, AuthError> {
        self.form(
            "/token",
            vec![
                ("grant_type", "refresh_token".into()),
                ("refresh_token", refresh_token.to_owned()),
            ],
        )
        .await
    }

    pub async fn validate(&self, access_token: &str) -> Result<Validation, AuthError> {
        let response = self
            .http
            .get(format!("{}/validate", self.base))
            .header("Authorization", format!("OAuth {access_token}"))
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        self.answer(response).await
    }
}

/// The live tokens of this process, one holder per Twitch account, shared (`Arc`) by everything
/// that calls Twitch as that account (chat, the EventSub source): a refresh happens once and
/// every user sees its result at once. The composition root makes one with [`Self::from_config`].
pub struct TokenHolders {
    http: reqwest::Client,
    auth_url: String,
    /// credentials.toml's app for this environment: its secret goes with tokens of its client_id.
    app: Option<(String, Option<String>)>,
    state_dir: PathBuf,
    held: std::sync::Mutex<HashMap<Account, Arc<Tokens>>>,
}

impl TokenHolders {
    pub fn new(
        auth_url: &str,
        client_id: Option<String>,
        client_secret: Option<String>,
        state_dir: &Path,
    ) -> Arc<Self> {
        Arc::new(Self {
            http: crate::net::http_client(),
            auth_url: auth_url.to_owned(),
            app: client_id.map(|id| (id, client_secret)),
            state_dir: state_dir.to_path_buf(),
            held: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// `app`: the `[twitch.<environment>]` credentials.
    pub fn from_config(
        twitch: &TwitchConfig,
        app: Option<&ProviderCredentials>,
        state_dir: &Path,
    ) -> Arc<Self> {
        Self::new(
            &twitch.auth_url,
            app.and_then(|c| c.client_id.clone()),
            app.and_then(|c| c.client_secret.clone()),
            state_dir,
        )
    }

    /// The holder of `account` and the token stored for it now. The file is read every time,
    /// so a missing or broken one is reported as such; the holder is the one already in use
    /// (it takes a newer login from the file itself, before its next validation or refresh),
    /// or a new one when there was none or the login belongs to another app. `Ok(None)`: no
    /// stored login.
    pub fn get(&self, account: Account) -> Result<Option<(Arc<Tokens>, StoredToken)>, AuthError> {
        let path = StoredToken::path(&self.state_dir, account);
        let Some(token) = StoredToken::load(&path)? else {
            return Ok(None);
        };
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tokens) = held.get(&account)
            && tokens.oauth.client_id() == token.client_id
        {
            return Ok(Some((tokens.clone(), token)));
        }
        let secret = self
            .app
            .as_ref()
            .filter(|(id, _)| *id == token.client_id)
            .and_then(|(_, secret)| secret.clone());
        let oauth = OAuth::new(
            self.http.clone(),
            &self.auth_url,
            token.client_id.clone(),
            secret,
        );
        let tokens = Arc::new(Tokens::new(oauth, path, token.clone()));
        held.insert(account, tokens.clone());
        Ok(Some((tokens, token)))
    }
}

impl fmt::Debug for TokenHolders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenHolders")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

/// An advisory lock on an account's token file, held while a token is written (and, in the
/// daemon, across the refresh that produces it), so `ongwatch auth` and the daemon never write
/// over each other's newer token. The token file is replaced by a rename, so the lock is on a
/// companion file beside it; it is released when dropped.
struct FileLock {
    _open: std::fs::File,
}

impl FileLock {
    async fn acquire(token_path: &Path) -> Result<Self, AuthError> {
        let mut name = token_path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let store = |reason: String| AuthError::Store {
            path: token_path.to_path_buf(),
            reason,
        };
        let locked = tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                crate::state::ensure_dir(dir)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(false);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let file = options.open(&path)?;
            file.lock()?;
            Ok::<_, std::io::Error>(Self { _open: file })
        })
        .await;
        match locked {
            Ok(Ok(lock)) => Ok(lock),
            Ok(Err(e)) => Err(store(format!("cannot lock it: {e}"))),
            Err(e) => Err(store(format!("cannot lock it: {e}"))),
        }
    }
}

/// The live token of one account: hands out the access token, refreshes it, and persists
/// every change before anyone uses it.
pub struct Tokens {
    oauth: OAuth,
    path: PathBuf,
    current: tokio::sync::Mutex<StoredToken>,
}

impl Tokens {
    pub fn new(oauth: OAuth, path: PathBuf, token: StoredToken) -> Self {
        Self {
            oauth,
            path,
            current: tokio::sync::Mutex::new(token),
        }
    }

    pub async fn access(&self) -> String {
        self.current.lock().await.access_token.clone()
    }

    pub async fn snapshot(&self) -> StoredToken {
        self.current.lock().await.clone()
    }

    /// Takes the token on disk when a newer login was stored (`ongwatch auth` or the dashboard,
    /// beside the running daemon): a public client's refresh token is single-use, so the older
    /// copy must not be spent or written back.
    fn adopt_newer_from_disk(&self, current: &mut StoredToken) {
        if let Ok(Some(stored)) = StoredToken::load(&self.path)
            && stored.account == current.account
            && stored.client_id == current.client_id
            && stored.obtained_at > current.obtained_at
        {
            *current = stored;
        }
    }

    /// Refreshes unless someone already replaced `stale` (several callers may see the same
    /// 401; only the first one spends the refresh token). Returns the access token to use.
    pub async fn refresh(&self, stale: &str) -> Result<String, AuthError> {
        // The holder's lock makes its users wait for one refresh; the file lock keeps `ongwatch
        // auth` from storing a login in the middle of it.
        let mut current = self.current.lock().await;
        let _file = FileLock::acquire(&self.path).await?;
        self.adopt_newer_from_disk(&mut current);
        if current.access_token != stale {
            return Ok(current.access_token.clone());
        }
        let refresh_token = current
            .refresh_token
            .clone()
            .ok_or(AuthError::NoRefreshToken)?;
        let granted = self.oauth.refresh(&refresh_token).await?;
        let now = crate::event::now();
        let mut next = current.clone();
        next.access_token = granted.access_token;
        if granted.refresh_token.is_some() {
            next.refresh_token = granted.refresh_token;
        }
        if !granted.scope.is_empty() {
            next.scopes = granted.scope;
        }
        next.obtained_at = now;
        next.expires_at = granted
            .expires_in
            .map(|s| now + chrono::TimeDelta::seconds(s));
        // On disk first: the old refresh token may already be dead.
        next.save(&self.path)?;
        *current = next;
        tracing::info!(login = %current.login, "Twitch token refreshed");
        Ok(current.access_token.clone())
    }

    /// Asks Twitch whether the token is still good and what it allows; a 401 refreshes it.
    pub async fn validate(&self) -> Result<StoredToken, AuthError> {
        let access = {
            let mut current = self.current.lock().await;
            self.adopt_newer_from_disk(&mut current);
            current.access_token.clone()
        };
        let validation = match self.oauth.validate(&access).await {
            Err(AuthError::Rejected { status: 401, .. }) => {
                let access = self.refresh(&access).await?;
                self.oauth.validate(&access).await?
            }
            other => other?,
        };
        let mut current = self.current.lock().await;
        let _file = FileLock::acquire(&self.path).await?;
        self.adopt_newer_from_disk(&mut current);
        if current.access_token != access {
            // Replaced meanwhile: what was validated is no longer the token to describe.
            return Ok(current.clone());
        }
        let mut next = current.clone();
        if !validation.login.is_empty() {
            next.login = validation.login;
        }
        if !validation.user_id.is_empty() {
            next.user_id = validation.user_id;
        }
        next.scopes = validation.scopes;
        let now = crate::event::now();
        next.expires_at = validation
            .expires_in
            .map(|s| now + chrono::TimeDelta::seconds(s));
        if next.expires_at.is_some() && current.expires_at.is_none() {
            next.obtained_at = now;
        }
        if next != *current {
            next.save(&self.path)?;
            *current = next;
        }
        Ok(current.clone())
    }
}
