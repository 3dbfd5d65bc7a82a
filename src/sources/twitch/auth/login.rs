//! `ongwatch auth twitch` and `ongwatch auth status`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Account, AuthError, DeviceCode, Granted, OAuth, Poll, StoredToken};
use crate::credentials::Credentials;
use crate::net::http_client;
use crate::sources::twitch::catalog::{self, Spec};
use crate::sources::twitch::config::TwitchEnv;
use crate::sources::twitch::eventsub::PROVIDER;

pub struct LoginOptions {
    pub oauth: OAuth,
    pub account: Account,
    pub scopes: Vec<String>,
    pub state_dir: PathBuf,
}

/// Runs the device-code flow: prints the URL and code, waits for the user, validates the new
/// token and stores it. Returns the stored token.
pub async fn login(options: LoginOptions) -> Result<StoredToken, AuthError> {
    let LoginOptions {
        oauth,
        account,
        scopes,
        state_dir,
    } = options;
    let device = oauth.start_device(&scopes).await?;
    println!(
        "To log in the Twitch {} account, open {} and enter the code {}",
        account.name(),
        device.verification_uri,
        device.user_code
    );
    println!("Requested scopes: {}", scopes.join(" "));
    let _ = std::io::stdout().flush();

    let mut spinner = Spinner::new();
    let granted = wait_for_grant(&oauth, &device, &scopes, Some(&mut spinner)).await;
    spinner.finish();
    let token = store_grant(&oauth, account, granted?, &state_dir).await?;
    println!(
        "Logged in as {} (user id {}) for the {} account; token stored in {}",
        token.login,
        token.user_id,
        account.name(),
        StoredToken::path(&state_dir, account).display()
    );
    Ok(token)
}

/// Polls the device-code grant at the interval Twitch asked for until the user approves,
/// declines, or the code expires. The spinner, when given, ticks while it waits.
pub(super) async fn wait_for_grant(
    oauth: &OAuth,
    device: &DeviceCode,
    scopes: &[String],
    mut spinner: Option<&mut Spinner>,
) -> Result<Granted, AuthError> {
    let mut interval = Duration::from_secs(device.interval.max(1));
    let deadline = (device.expires_in > 0)
        .then(|| tokio::time::Instant::now() + Duration::from_secs(device.expires_in));
    let tty = spinner.as_ref().is_some_and(|s| s.tty);
    loop {
        let pause = tokio::time::sleep(interval);
        tokio::pin!(pause);
        // Ticks the spinner while waiting out the interval Twitch asked for.
        loop {
            tokio::select! {
                () = &mut pause => break,
                () = tokio::time::sleep(Duration::from_millis(120)), if tty => {
                    if let Some(spinner) = spinner.as_mut() {
                        spinner.tick();
                    }
                }
            }
        }
        if !tty && let Some(spinner) = spinner.as_mut() {
            spinner.tick();
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
            return Err(AuthError::DeviceExpired);
        }
        match oauth.poll_device(device, scopes).await? {
            Poll::Pending => {}
            Poll::SlowDown => interval += Duration::from_secs(5),
            Poll::Granted(granted) => return Ok(granted),
        }
    }
}

/// Validates a granted token (which login is it?) and stores it for `account`, 0600 and
/// atomically, where the daemon looks for it.
pub(super) async fn store_grant(
    oauth: &OAuth,
    account: Account,
    granted: Granted,
    state_dir: &Path,
) -> Result<StoredToken, AuthError> {
    let validation = oauth.validate(&granted.access_token).await?;
    let now = crate::event::now();
    let mut token = StoredToken {
        account,
        client_id: oauth.client_id().to_owned(),
        login: validation.login,
        user_id: validation.user_id,
        scopes: if validation.scopes.is_empty() {
            granted.scope
        } else {
            validation.scopes
        },
        access_token: granted.access_token,
        refresh_token: granted.refresh_token,
        expires_at: granted
            .expires_in
            .or(validation.expires_in)
            .and_then(chrono::TimeDelta::try_seconds)
            .map(|lifetime| now + lifetime),
        obtained_at: now,
    };
    token.store(&StoredToken::path(state_dir, account)).await?;
    Ok(token)
}

/// A spinner on a terminal, one dot per poll otherwise (logs stay readable).
pub(super) struct Spinner {
    tty: bool,
    frame: usize,
    shown: bool,
}

impl Spinner {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            frame: 0,
            shown: false,
        }
    }

    fn tick(&mut self) {
        const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(
                err,
                "\r{} waiting for the login to be approved",
                FRAMES[self.frame % FRAMES.len()]
            );
        } else {
            let _ = write!(err, ".");
        }
        let _ = err.flush();
        self.frame += 1;
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.shown {
            let mut err = std::io::stderr();
            let _ = if self.tty {
                write!(err, "\r{:60}\r", "")
            } else {
                writeln!(err)
            };
            let _ = err.flush();
        }
    }
}

/// One line per stored account, then what each lacks for what is enabled. `missing` tells,
/// from an account's granted scopes, which needed ones it lacks. Returns the text to print.
pub fn status(
    state_dir: &Path,
    client_id: Option<&str>,
    missing: impl Fn(Account, &[String]) -> Vec<String>,
) -> Result<String, AuthError> {
    let mut out = String::new();
    let now = crate::event::now();
    for account in Account::ALL {
        let path = StoredToken::path(state_dir, account);
        let Some(token) = StoredToken::load(&path)? else {
            let hint = match account {
                Account::Broadcaster => "needed for EventSub",
                Account::Bot => "optional, for chat as a separate user",
            };
            out.push_str(&format!(
                "{}: not logged in ({hint}); run `{}`\n",
                account.name(),
                account.login_command()
            ));
            continue;
        };
        let expiry = match token.expires_at {
            Some(at) if at <= now => format!(
                "expired at {} (refreshed automatically when the daemon runs)",
                crate::event::format_time(&at)
            ),
            Some(at) => format!("expires {}", crate::event::format_time(&at)),
            None => "does not expire".into(),
        };
        out.push_str(&format!(
            "{}: {} (user id {}), {expiry}, refresh token {}\n",
            account.name(),
            token.login,
            token.user_id,
            if token.refresh_token.is_some() {
                "stored"
            } else {
                "missing"
            }
        ));
        out.push_str(&format!("  scopes: {}\n", token.scopes.join(" ")));
        let missing = missing(account, &token.scopes);
        if missing.is_empty() {
            out.push_str("  missing scopes: none\n");
        } else {
            out.push_str(&format!(
                "  missing scopes: {}; run `{}` to grant them\n",
                missing.join(" "),
                account.login_command()
            ));
        }
        if let Some(client_id) = client_id
            && client_id != token.client_id
        {
            out.push_str(&format!(
                "  belongs to another client id than credentials.toml's; run `{}`\n",
                account.login_command()
            ));
        }
    }
    Ok(out)
}

/// One line per configured subscription type: the scopes it needs, and which the broadcaster's
/// login lacks (`granted` is `None` without a login).
fn per_type(specs: &[Spec], granted: Option<&[String]>) -> String {
    let mut out = String::from("subscriptions of the broadcaster account (type@version: needs):\n");
    let mut seen = std::collections::BTreeSet::new();
    for spec in specs {
        // channel.raid is created once per direction with the same needs.
        if !seen.insert((spec.kind.as_str(), spec.version.as_str())) {
            continue;
        }
        let verdict = match granted {
            _ if spec.scopes.is_empty() => String::new(),
            None => " (not logged in)".to_owned(),
            Some(granted) => match spec.missing(granted) {
                missing if missing.is_empty() => " (granted)".to_owned(),
                missing => format!(" (missing {})", missing.join(" ")),
            },
        };
        out.push_str(&format!(
            "  {}@{}: {}{verdict}\n",
            spec.kind,
            spec.version,
            spec.scopes_text()
        ));
    }
    out
}

/// Why an `auth` command failed: the user's setup (exit 2) or at run time (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
}

/// The EventSub subscriptions `account` serves (the bot serves none).
pub fn enabled_specs(config: TwitchEnv<'_>, account: Account) -> Result<Vec<Spec>, CommandError> {
    match account {
        Account::Broadcaster => catalog::resolve(&config.twitch.subscriptions)
            .map_err(|e| CommandError::Usage(format!("twitch.subscriptions: {e}"))),
        Account::Bot => Ok(Vec::new()),
    }
}

pub(super) fn scopes_for(
    config: TwitchEnv<'_>,
    account: Account,
) -> Result<Vec<String>, CommandError> {
    Ok(match account {
        Account::Broadcaster => catalog::requested_scopes(&enabled_specs(config, account)?),
        Account::Bot => catalog::BOT_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    })
}

/// `ongwatch auth twitch [--account broadcaster|bot]`
pub async fn login_command(
    config: TwitchEnv<'_>,
    credentials: &Credentials,
    state_dir: &Path,
    account: Account,
) -> Result<(), CommandError> {
    let environment = config.environment;
    let creds = credentials.get(PROVIDER, environment);
    let Some(client_id) = creds
        .and_then(|c| c.client_id.clone())
        .filter(|c| !c.is_empty())
    else {
        return Err(CommandError::Usage(format!(
            "credentials.toml has no [twitch.{environment}] client_id; register an app at https://dev.twitch.tv/console (category: Application Integration, client type: Public) and add client_id = '...'"
        )));
    };
    let oauth = OAuth::new(
        http_client(),
        &config.twitch.auth_url,
        client_id,
        creds.and_then(|c| c.client_secret.clone()),
    );
    crate::state::ensure_dir(state_dir).map_err(|e| {
        CommandError::Runtime(format!(
            "cannot create the state dir {}: {e}",
            state_dir.display()
        ))
    })?;
    login(LoginOptions {
        oauth,
        account,
        scopes: scopes_for(config, account)?,
        state_dir: state_dir.to_path_buf(),
    })
    .await
    .map(|_| ())
    .map_err(|e| CommandError::Runtime(format!("Twitch login failed: {e}")))
}

/// `ongwatch auth status`
pub fn status_command(
    config: TwitchEnv<'_>,
    credentials: &Credentials,
    state_dir: &Path,
) -> Result<String, CommandError> {
    let specs = enabled_specs(config, Account::Broadcaster)?;
    let client_id = credentials
        .get(PROVIDER, config.environment)
        .and_then(|c| c.client_id.clone());
    let mut text = status(state_dir, client_id.as_deref(), |account, granted| {
        super::logins::missing_scopes(&specs, account, granted)
    })
    .map_err(|e| CommandError::Runtime(e.to_string()))?;
    let granted = StoredToken::load(&StoredToken::path(state_dir, Account::Broadcaster))
        .ok()
        .flatten()
        .map(|token| token.scopes);
    text.push_str(&per_type(&specs, granted.as_deref()));
    if client_id.is_none() {
        text.push_str(&format!(
            "credentials.toml has no [twitch.{}] client_id: Twitch is off\n",
            config.environment
        ));
    }
    if config.environment == "localdev" {
        text.push_str("environment localdev: no login needed, a placeholder account is used\n");
    }
    Ok(text)
}
