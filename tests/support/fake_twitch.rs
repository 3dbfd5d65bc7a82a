//! The in-process fake Twitch for tests that run the real daemon against it, and a logged-in
//! broadcaster. Used through `#[path = "support/fake_twitch.rs"] mod fake_twitch;`.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};

use ongwatch::sources::twitch::auth::{Account, StoredToken};
use ongwatch::sources::twitch::catalog;
use ongwatch::sources::twitch::fake::{FakeTwitch, Mode};

pub const CLIENT_ID: &str = "fake-client";
pub const LOGIN: &str = "streamer";
pub const USER_ID: &str = "4242";

/// The fake on its own runtime; the fake is declared first so it stops before the runtime.
pub struct Twitch {
    pub fake: FakeTwitch,
    _rt: tokio::runtime::Runtime,
}

impl std::ops::Deref for Twitch {
    type Target = FakeTwitch;
    fn deref(&self) -> &FakeTwitch {
        &self.fake
    }
}

pub fn start() -> Twitch {
    start_as(Mode::Twitch)
}

/// The fake serving Twitch's own paths, or the Twitch CLI mock's (`Mode::CliMock`).
pub fn start_as(mode: Mode) -> Twitch {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeTwitch::start(mode)).unwrap();
    Twitch { fake, _rt: rt }
}

/// The `[twitch]` section pointing at the fake, with short retry delays.
pub fn config_section(fake: &FakeTwitch) -> String {
    format!(
        "[twitch]\nauth_url = \"{}\"\napi_url = \"{}\"\neventsub_url = \"{}\"\nretry_initial_seconds = 0.05\nretry_max_seconds = 0.5\n",
        fake.auth_url(),
        fake.api_url(),
        fake.eventsub_url()
    )
}

pub fn all_scopes() -> Vec<String> {
    catalog::requested_scopes(&catalog::resolve(&[]).unwrap())
}

pub fn token_path(state_dir: &Path, account: Account) -> PathBuf {
    StoredToken::path(state_dir, account)
}

/// A daemon directory logged in at the fake: credentials.toml with the fake's client id (and
/// `more` credentials after it), and the broadcaster's token with every default scope in
/// `<dir>/state`.
pub fn logged_in(fake: &FakeTwitch, dir: &Path, more: &str) -> StoredToken {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{CLIENT_ID}'\n{more}"),
    )
    .unwrap();
    store_token(fake, &dir.join("state"), &all_scopes())
}

/// Logs the broadcaster in at the fake and stores the token where the daemon looks.
pub fn store_token(fake: &FakeTwitch, state_dir: &Path, scopes: &[String]) -> StoredToken {
    store_token_expiring(fake, state_dir, scopes, 4 * 3600)
}

/// Like [`store_token`], with the token's expiry `lifetime` seconds from now.
pub fn store_token_expiring(
    fake: &FakeTwitch,
    state_dir: &Path,
    scopes: &[String],
    lifetime: i64,
) -> StoredToken {
    let (access, refresh) = fake.issue_token(CLIENT_ID, LOGIN, USER_ID, scopes);
    let now = chrono::Utc::now();
    let token = StoredToken {
        account: Account::Broadcaster,
        client_id: CLIENT_ID.into(),
        login: LOGIN.into(),
        user_id: USER_ID.into(),
        scopes: scopes.to_vec(),
        access_token: access,
        refresh_token: Some(refresh),
        expires_at: Some(now + chrono::TimeDelta::seconds(lifetime)),
        obtained_at: now,
    };
    token
        .save(&token_path(state_dir, Account::Broadcaster))
        .unwrap();
    token
}

/// Waits until every default subscription is enabled at the fake.
pub fn wait_subscribed(fake: &FakeTwitch) {
    let wanted = catalog::resolve(&[]).unwrap().len();
    crate::support::wait_for("every default subscription to be enabled", || {
        (fake.enabled() == wanted).then_some(())
    });
}

/// One HTTP request to the daemon's API: `(status, JSON body)`.
pub fn http_json(
    method: &str,
    url: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = ongwatch::net::http_client();
        let mut request = client.request(method.parse().unwrap(), url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::Value::String(text));
        (status, json)
    })
}

/// A `channel.follow` event for the broadcaster by viewer number `i`.
pub fn follow(i: usize) -> serde_json::Value {
    serde_json::json!({
        "user_id": format!("{}", 1000 + i),
        "user_login": format!("viewer{i}"),
        "user_name": format!("Viewer{i}"),
        "broadcaster_user_id": USER_ID,
        "broadcaster_user_login": LOGIN,
        "broadcaster_user_name": "Streamer",
        "followed_at": "2026-03-13T20:01:02.345Z",
    })
}
