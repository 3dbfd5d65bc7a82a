//! The Twitch provider as the daemon runs it: the broadcaster's token, the EventSub
//! connection (see [`super::session`]) and the provider state on `R/system/providers/twitch`.
//!
//! States: `connecting` until the subscriptions are created; `connected` once they are;
//! `unauthorized` when there is no usable login or a scope is missing (the detail names the
//! command that fixes it, and nothing retries until the token file changes); `error` between
//! a lost connection and the next attempt (the detail says why and when).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::auth::{Account, AuthError, StoredToken, TokenHolders, Tokens};
use super::catalog::{self, Spec};
use super::config::TwitchConfig;
use super::eventsub::{Context, Notification, PROVIDER, normalize, raw_event};
use super::helix::{Helix, Totals};
use super::session;
use crate::credentials::ProviderCredentials;
use crate::event::{ConnectionState, Event, ProviderState, SubscriptionHealth, format_time, now};
use crate::hub::{BusClosed, Publisher};
use crate::net::http_client;
use crate::retry::{Backoff, Policy, sleep_or_cancel};

/// Twitch's documented limits, shown in the provider state.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 300;
pub const MAX_CONNECTIONS: usize = 3;

/// Every duration the provider uses, so tests can shrink them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// First reconnect delay; doubles per failure up to `max_backoff`, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Added to the session's keepalive timeout before silence counts as a dead connection.
    pub keepalive_grace: Duration,
    /// Limit for connecting plus the welcome message.
    pub connect_timeout: Duration,
    /// How long the old socket is drained after a `session_reconnect` hand-off.
    pub handoff_drain: Duration,
    /// Twitch asks apps to validate tokens at start and hourly.
    pub validate_every: Duration,
    /// How often a missing or refused token file is looked at again.
    pub token_poll: Duration,
    /// Longest delay between two provider-state messages when only event times changed.
    pub state_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            keepalive_grace: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(20),
            handoff_drain: Duration::from_secs(2),
            validate_every: Duration::from_secs(3600),
            token_poll: Duration::from_secs(2),
            state_every: Duration::from_secs(10),
        }
    }
}

/// The placeholder account of `environment = "localdev"`: no login, no validation.
#[derive(Debug, Clone)]
pub struct LocalAccount {
    pub user_id: String,
    pub login: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub auth_url: String,
    pub eventsub_url: String,
    pub subscriptions_url: String,
    pub specs: Vec<Spec>,
    pub localdev: Option<LocalAccount>,
    pub state_dir: PathBuf,
    /// The channel state messages go to until the login is known.
    pub channel: String,
    pub include_raw: bool,
    pub timing: Timing,
    /// Changes when a new broadcaster login was stored (from the dashboard): the source
    /// drops its connection and starts over with that login.
    pub relogin: Option<watch::Receiver<u64>>,
    /// The process's token holders: the daemon passes the one chat shares.
    pub tokens: Arc<TokenHolders>,
}

impl Settings {
    /// `None` when credentials.toml has no `[twitch.<environment>] client_id` (`app`): Twitch
    /// is off.
    pub fn from_config(
        twitch: &TwitchConfig,
        app: Option<&ProviderCredentials>,
        environment: &str,
        include_raw: bool,
        state_dir: &Path,
        tokens: Arc<TokenHolders>,
    ) -> Result<Option<Self>, catalog::BadEntry> {
        let Some(creds) = app else {
            return Ok(None);
        };
        let Some(client_id) = creds.client_id.clone().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let localdev = (environment == "localdev").then(|| LocalAccount {
            user_id: creds.user_id.clone().unwrap_or_else(|| "12345".into()),
            login: creds
                .login
                .clone()
                .or_else(|| (!twitch.channel.is_empty()).then(|| twitch.channel.clone()))
                .unwrap_or_else(|| "localdev".into())
                .to_lowercase(),
        });
        let seconds =
            |s: f64, fallback: Duration| Duration::try_from_secs_f64(s).unwrap_or(fallback);
        let defaults = Timing::default();
        Ok(Some(Self {
            client_id,
            client_secret: creds.client_secret.clone(),
            auth_url: twitch.auth_url.clone(),
            eventsub_url: twitch.eventsub_url.clone(),
            subscriptions_url: twitch.eventsub_subscriptions_url(),
            specs: catalog::resolve(&twitch.subscriptions)?,
            localdev,
            state_dir: state_dir.to_path_buf(),
            channel: twitch.default_channel(),
            include_raw,
            timing: Timing {
                initial_backoff: seconds(twitch.retry_initial_seconds, defaults.initial_backoff),
                max_backoff: seconds(twitch.retry_max_seconds, defaults.max_backoff),
                keepalive_grace: seconds(twitch.keepalive_grace_seconds, defaults.keepalive_grace),
                ..defaults
            },
            relogin: None,
            tokens,
        }))
    }
}

impl Timing {
    /// The reconnect and retry schedule.
    pub fn retry(&self) -> Policy {
        Policy::new(self.initial_backoff, self.max_backoff)
    }
}

/// Where Helix calls get their token: the broadcaster's (refreshable) or localdev's placeholder.
#[derive(Clone)]
pub(crate) enum Auth {
    Placeholder(String),
    User(Arc<Tokens>),
}

impl Auth {
    pub(crate) async fn access(&self) -> String {
        match self {
            Self::Placeholder(token) => token.clone(),
            Self::User(tokens) => tokens.access().await,
        }
    }

    pub(crate) async fn refresh(&self, stale: &str) -> Result<String, AuthError> {
        match self {
            Self::Placeholder(_) => Err(AuthError::NoRefreshToken),
            Self::User(tokens) => tokens.refresh(stale).await,
        }
    }
}

/// One subscription ongwatch wants, and how it is doing.
#[derive(Debug, Clone)]
pub(crate) struct Sub {
    pub spec: Spec,
    pub condition: Value,
    /// Within the per-connection limit and not revoked; when false it is never attempted.
    pub allowed: bool,
    /// The scopes the token lacks for it (as login would request them); empty when it has
    /// them all or they are unknown.
    pub missing: Vec<String>,
    pub id: Option<String>,
    pub status: String,
    /// Kept as a time and formatted when the state is published, not for every event.
    pub last_event: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
}

/// Message ids seen lately: Twitch may deliver one notification twice (redelivery, the
/// overlap of a reconnect hand-off), and it must be published once.
pub(crate) struct RecentIds {
    /// One shared copy of each id for the set and the order; foldhash, as the hub's dedup.
    seen: HashSet<Arc<str>, foldhash::fast::RandomState>,
    order: VecDeque<Arc<str>>,
    capacity: usize,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// True the first time `id` is seen.
    fn first(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        let id: Arc<str> = Arc::from(id);
        self.seen.insert(id.clone());
        self.order.push_back(id);
        true
    }
}

/// How an account phase ended.
enum Stop {
    Shutdown,
    /// Only a new login (a changed token file) can fix it; `detail` says which command.
    Login(String),
}

pub(crate) struct Source {
    pub settings: Settings,
    pub publisher: Publisher,
    pub shutdown: CancellationToken,
    pub helix: Helix,
    pub ctx: Context,
    pub channel: String,
    pub subs: Vec<Sub>,
    recent: RecentIds,
    pub totals: Totals,
    /// Why the account cannot do all that is enabled (missing scopes, a revoked grant).
    pub auth_problem: Option<String>,
    /// Event times changed since the last state message.
    pub dirty: bool,
    state: ConnectionState,
    detail: String,
    /// When `state` was entered.
    since: String,
}

/// Runs the Twitch provider until `shutdown`.
pub async fn run(settings: Settings, publisher: Publisher, shutdown: CancellationToken) {
    let http = http_client();
    let helix = Helix::new(
        http.clone(),
        settings.subscriptions_url.clone(),
        settings.client_id.clone(),
    );
    let subscribed: BTreeSet<String> = settings.specs.iter().map(|s| s.kind.clone()).collect();
    let ctx = Context {
        include_raw: settings.include_raw,
        subscribed: Some(subscribed),
        ..Context::default()
    };
    let mut source = Source {
        channel: settings.channel.clone(),
        settings,
        publisher,
        shutdown,
        helix,
        ctx,
        subs: Vec::new(),
        recent: RecentIds::new(8192),
        totals: Totals::default(),
        auth_problem: None,
        dirty: false,
        state: ConnectionState::Connecting,
        detail: String::new(),
        since: String::new(),
    };
    let stop = source.shutdown.clone();
    // A Helix or OAuth call in flight may take up to its timeout; shutdown waits a little for
    // the clean close of the socket, not for that.
    let grace = async {
        stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        _ = source.run() => {}
        () = grace => {}
    }
}

/// How long the provider may take to close its socket once shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Publishes `disabled` (retained, so it replaces what an earlier run left) when
/// credentials.toml has no client id for the environment.
pub async fn disabled(publisher: &Publisher, channel: &str, environment: &str) {
    let at = now();
    let event = Event::provider_state(
        PROVIDER,
        channel,
        ProviderState {
            state: ConnectionState::Disabled,
            detail: format!(
                "credentials.toml has no [twitch.{environment}] client_id; see docs/TWITCH.md"
            ),
            since: format_time(&at),
            subscriptions: Vec::new(),
        },
        at,
    );
    let _ = publisher.event(event).await;
}

impl Source {
    async fn run(&mut self) -> Result<(), BusClosed> {
        if let Some(local) = self.settings.localdev.clone() {
            self.adopt(&local.user_id, &local.login, None);
            let auth = Auth::Placeholder("localdev".into());
            let (_keep, lost) = watch::channel(None);
            let _ = self.connect_loop(auth, lost).await?;
            return Ok(());
        }
        let path = StoredToken::path(&self.settings.state_dir, Account::Broadcaster);
        let mut backoff = self.settings.timing.retry().backoff();
        let mut relogin = self.settings.relogin.clone();
        loop {
            let go_on = tokio::select! {
                go_on = self.login_round(&path, &mut backoff) => go_on?,
                () = new_login(&mut relogin) => {
                    tracing::info!("a new Twitch login was stored; reconnecting with it");
                    true
                }
            };
            if !go_on {
                return Ok(());
            }
        }
    }

    /// One account phase and, when the account is unusable, the wait for a new token file.
    /// False at shutdown.
    async fn login_round(&mut self, path: &Path, backoff: &mut Backoff) -> Result<bool, BusClosed> {
        let stop = match self.account_phase(backoff).await? {
            Some(stop) => stop,
            None => return Ok(true),
        };
        match stop {
            Stop::Shutdown => Ok(false),
            Stop::Login(detail) => {
                let seen = std::fs::read(path).ok();
                self.report(ConnectionState::Unauthorized, detail).await?;
                Ok(self.wait_token_change(path, seen).await)
            }
        }
    }

    /// Loads and validates the token, then keeps the connection up until the account is
    /// unusable. `None`: a transient failure, try again (after the backoff it slept).
    async fn account_phase(&mut self, backoff: &mut Backoff) -> Result<Option<Stop>, BusClosed> {
        let fix = Account::Broadcaster.login_command();
        let (tokens, token) = match self.settings.tokens.get(Account::Broadcaster) {
            Ok(Some(held)) => held,
            Ok(None) => {
                return Ok(Some(Stop::Login(format!(
                    "no Twitch login for the broadcaster account; run `{fix}`"
                ))));
            }
            Err(e) => return Ok(Some(Stop::Login(format!("{e}; run `{fix}`")))),
        };
        if token.client_id != self.settings.client_id {
            return Ok(Some(Stop::Login(format!(
                "the stored Twitch token belongs to another client_id than credentials.toml's; run `{fix}`"
            ))));
        }
        self.report(ConnectionState::Connecting, "validating the Twitch token")
            .await?;
        let token = match tokens.validate().await {
            Ok(token) => token,
            Err(e) if e.is_permanent() => {
                return Ok(Some(Stop::Login(format!(
                    "Twitch no longer accepts the stored login ({e}); run `{fix}`"
                ))));
            }
            Err(e) => {
                let delay = backoff.next_delay();
                self.report(
                    ConnectionState::Error,
                    format!("cannot validate the Twitch token: {e}; retrying in {delay:.1?}"),
                )
                .await?;
                return Ok(if self.sleep(delay).await {
                    None
                } else {
                    Some(Stop::Shutdown)
                });
            }
        };
        self.adopt(&token.user_id, &token.login, Some(&token.scopes));
        if !self.subs.iter().any(|s| s.allowed) {
            return Ok(Some(Stop::Login(
                self.auth_problem.clone().unwrap_or_default(),
            )));
        }
        let (lost_tx, lost_rx) = watch::channel(None);
        let keeper = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(keep_fresh(
            tokens.clone(),
            self.settings.timing.clone(),
            lost_tx,
        )));
        let stop = self.connect_loop(Auth::User(tokens), lost_rx).await?;
        drop(keeper);
        Ok(Some(stop))
    }

    /// Sets up the account's ids and the subscription list.
    fn adopt(&mut self, user_id: &str, login: &str, scopes: Option<&[String]>) {
        self.ctx.broadcaster_id = user_id.to_owned();
        self.ctx.broadcaster_login = login.to_lowercase();
        if !login.is_empty() {
            self.channel = login.to_lowercase();
        }
        let missing = scopes
            .map(|granted| catalog::missing_scopes(&self.settings.specs, granted))
            .unwrap_or_default();
        self.auth_problem = (!missing.is_empty()).then(|| {
            format!(
                "the broadcaster login lacks the scopes {}; run `{}` to grant them",
                missing.join(" "),
                Account::Broadcaster.login_command()
            )
        });
        // Every subscription is asked for, also one whose scope the token seems to lack: Twitch
        // decides, and its 403 is what marks it `missing_scope` (naming the scope) then.
        self.subs = self
            .settings
            .specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let over_limit = i >= MAX_SUBSCRIPTIONS_PER_CONNECTION;
                Sub {
                    spec: spec.clone(),
                    condition: spec.condition.build(user_id),
                    allowed: !over_limit,
                    missing: scopes.map(|granted| spec.missing(granted)).unwrap_or_default(),
                    id: None,
                    status: if over_limit {
                        "skipped".into()
                    } else {
                        "pending".into()
                    },
                    last_event: None,
                    last_error: over_limit.then(|| {
                        format!(
                            "over the limit of {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per connection"
                        )
                    }),
                }
            })
            .collect();
    }

    /// Connects again and again until shutdown or an account problem, deleting stale
    /// subscriptions of earlier runs first.
    async fn connect_loop(
        &mut self,
        auth: Auth,
        lost: watch::Receiver<Option<String>>,
    ) -> Result<Stop, BusClosed> {
        remove_stale(&self.helix, &auth.access().await).await;
        let mut backoff = self.settings.timing.retry().backoff();
        loop {
            let end = session::run(self, &auth, lost.clone(), &mut backoff).await?;
            let (reason, delay) = match end {
                session::End::Shutdown => return Ok(Stop::Shutdown),
                session::End::Login(detail) => return Ok(Stop::Login(detail)),
                session::End::Retry { reason, at_once } => {
                    let delay = if at_once {
                        Duration::ZERO
                    } else {
                        backoff.next_delay()
                    };
                    (reason, delay)
                }
            };
            for sub in self.subs.iter_mut().filter(|s| s.allowed) {
                sub.status = "websocket_disconnected".into();
                sub.id = None;
            }
            let state = if delay.is_zero() {
                ConnectionState::Connecting
            } else {
                ConnectionState::Error
            };
            self.report(state, format!("{reason}; reconnecting in {delay:.1?}"))
                .await?;
            if !self.sleep(delay).await {
                return Ok(Stop::Shutdown);
            }
        }
    }

    /// Sleeps, or returns false at shutdown.
    pub(crate) async fn sleep(&self, delay: Duration) -> bool {
        sleep_or_cancel(delay, &self.shutdown).await
    }

    /// Waits until the token file differs from `seen` (a new login); false at shutdown.
    async fn wait_token_change(&self, path: &Path, seen: Option<Vec<u8>>) -> bool {
        loop {
            if !self.sleep(self.settings.timing.token_poll).await {
                return false;
            }
            if std::fs::read(path).ok() != seen {
                return true;
            }
        }
    }

    /// Publishes one notification: deduplicated by message id, normalized, or raw if its
    /// payload is not what its type promises.
    pub(crate) async fn notification(&mut self, n: Notification) -> Result<(), BusClosed> {
        if let Some(sub) = find_sub(&mut self.subs, &n.subscription.id, &n.subscription.kind) {
            sub.last_event = Some(now());
            self.dirty = true;
        }
        if !self.recent.first(&n.message_id) {
            tracing::debug!(message_id = %n.message_id, "EventSub redelivery skipped");
            return Ok(());
        }
        let event = match normalize(&n, &self.ctx) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "EventSub payload published raw");
                raw_event(&n, &self.ctx)
            }
        };
        self.publisher.event(event).await
    }

    /// One line on the subscriptions and the limits, for the state detail.
    pub(crate) fn summary(&self) -> String {
        let wanted = self.subs.len();
        let enabled = self.subs.iter().filter(|s| s.status == "enabled").count();
        let failed = self
            .subs
            .iter()
            .filter(|s| s.allowed && s.status == "failed")
            .count();
        let mut text = format!(
            "{enabled} of {wanted} subscriptions enabled on 1 of {MAX_CONNECTIONS} connections ({enabled} of {MAX_SUBSCRIPTIONS_PER_CONNECTION} on this one"
        );
        if self.totals.max_total_cost > 0 {
            text.push_str(&format!(
                ", cost {} of {}",
                self.totals.total_cost, self.totals.max_total_cost
            ));
        }
        text.push(')');
        if failed > 0 {
            text.push_str(&format!("; {failed} failed, see subscriptions"));
        }
        text
    }

    /// Publishes the provider state (retained). A known account problem turns `connected`
    /// into `unauthorized`, so a missing scope is never hidden behind a green light.
    pub(crate) async fn report(
        &mut self,
        state: ConnectionState,
        detail: impl Into<String>,
    ) -> Result<(), BusClosed> {
        let mut detail = detail.into();
        let mut state = state;
        if let Some(problem) = &self.auth_problem
            && state == ConnectionState::Connected
        {
            state = ConnectionState::Unauthorized;
            detail = format!("{problem}; {detail}");
        }
        match state {
            ConnectionState::Unauthorized | ConnectionState::Error => {
                tracing::warn!(provider = PROVIDER, "{detail}")
            }
            _ => tracing::info!(provider = PROVIDER, "{detail}"),
        }
        if state != self.state || self.since.is_empty() {
            self.since = format_time(&now());
        }
        self.state = state;
        self.detail = detail;
        self.publish_state().await
    }

    /// Republishes the current state with fresh subscription health.
    pub(crate) async fn publish_state(&mut self) -> Result<(), BusClosed> {
        self.dirty = false;
        let at = now();
        let subscriptions = self
            .subs
            .iter()
            .map(|s| SubscriptionHealth {
                kind: s.spec.kind.clone(),
                version: s.spec.version.clone(),
                status: s.status.clone(),
                last_event: s.last_event.as_ref().map(format_time),
                last_error: s.last_error.clone(),
                missing_scopes: if s.status == "missing_scope" {
                    s.missing.clone()
                } else {
                    Vec::new()
                },
            })
            .collect();
        let event = Event::provider_state(
            PROVIDER,
            self.channel.clone(),
            ProviderState {
                state: self.state,
                detail: self.detail.clone(),
                since: self.since.clone(),
                subscriptions,
            },
            at,
        );
        self.publisher.event(event).await
    }
}

/// The subscription a notification or revocation is about: by id, else by type (a 409 leaves
/// the id unknown).
pub(crate) fn find_sub<'a>(subs: &'a mut [Sub], id: &str, kind: &str) -> Option<&'a mut Sub> {
    let index = subs
        .iter()
        .position(|s| s.id.as_deref() == Some(id))
        .or_else(|| subs.iter().position(|s| s.spec.kind == kind))?;
    subs.get_mut(index)
}

/// Deletes this client's WebSocket subscriptions whose session is gone: they count against
/// the limits until Twitch drops them by itself.
pub(crate) async fn remove_stale(helix: &Helix, token: &str) {
    let listed = match helix.list(token).await {
        Ok((listed, _)) => listed,
        Err(e) => {
            tracing::debug!(error = %e, "cannot list EventSub subscriptions");
            return;
        }
    };
    for sub in listed {
        let websocket = sub.transport.get("method").and_then(Value::as_str) == Some("websocket");
        if websocket && sub.status != "enabled" {
            match helix.delete(token, &sub.id).await {
                Ok(()) => {
                    tracing::info!(kind = %sub.kind, status = %sub.status, "removed a stale EventSub subscription")
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot remove a stale EventSub subscription")
                }
            }
        }
    }
}

/// Returns when `relogin` reports a new login; never without one.
async fn new_login(relogin: &mut Option<watch::Receiver<u64>>) {
    if let Some(rx) = relogin
        && rx.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// Refreshes the token ahead of expiry and validates it hourly. A failure that only a new
/// login fixes is sent on `lost`, and the task ends: no refresh loop on a dead grant.
async fn keep_fresh(tokens: Arc<Tokens>, timing: Timing, lost: watch::Sender<Option<String>>) {
    let fix = Account::Broadcaster.login_command();
    let mut validate_at = tokio::time::Instant::now() + timing.validate_every;
    let mut backoff = timing.retry().backoff();
    loop {
        let token = tokens.snapshot().await;
        let refresh_in = token
            .refresh_at()
            .map(|at| (at - now()).to_std().unwrap_or(Duration::ZERO));
        let validate_in = validate_at.saturating_duration_since(tokio::time::Instant::now());
        let refreshing = refresh_in.is_some_and(|r| r <= validate_in);
        tokio::time::sleep(if refreshing {
            refresh_in.unwrap_or(validate_in)
        } else {
            validate_in
        })
        .await;
        let result = if refreshing {
            tokens.refresh(&token.access_token).await.map(|_| ())
        } else {
            validate_at = tokio::time::Instant::now() + timing.validate_every;
            tokens.validate().await.map(|_| ())
        };
        match result {
            Ok(()) => backoff.reset(),
            Err(e) if e.is_permanent() => {
                let _ = lost.send(Some(format!(
                    "Twitch refused to renew the broadcaster login ({e}); run `{fix}`"
                )));
                return;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, "cannot renew the Twitch token; retrying in {delay:.1?}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut recent = RecentIds::new(2);
        assert!(recent.first("a"));
        assert!(!recent.first("a"));
        assert!(recent.first("b"));
        assert!(recent.first("c"));
        assert!(recent.first("a"));
    }
}
