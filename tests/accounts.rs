//! Issues 3 and 6: accounts in `/api/status`, the Twitch device-code login started over HTTP
//! (as the dashboard does) against the fake Twitch, the running Twitch source switching to the
//! new login, and `ongwatch check`'s token lines. Nothing asserts how long anything took.

#[path = "support/fake_twitch.rs"]
mod fake_twitch;
mod support;

use std::os::unix::fs::PermissionsExt;

use fake_twitch::{LOGIN, USER_ID, http_json};
use ongwatch::sources::twitch::auth::{Account, StoredToken};
use serde_json::{Value, json};
use support::*;

fn start_daemon(dir: &std::path::Path, twitch: &fake_twitch::Twitch) -> Daemon {
    std::fs::write(
        dir.join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{}'\n", fake_twitch::CLIENT_ID),
    )
    .unwrap();
    let config = format!("{EPHEMERAL}{}", fake_twitch::config_section(twitch));
    Daemon::start_in(dir, &config, &[])
}

fn api(daemon: &Daemon, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let http = daemon.runtime.http.expect("HTTP address");
    http_json(method, &format!("http://{http}{path}"), body)
}

fn broadcaster(status: &Value) -> Value {
    status["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["account"] == "broadcaster"))
        .cloned()
        .unwrap_or_else(|| panic!("no broadcaster account in {status}"))
}

/// Starts a broadcaster login over HTTP, approves it at the fake, waits until it is done.
fn log_in(daemon: &Daemon, twitch: &fake_twitch::Twitch) {
    let (code, started) = api(
        daemon,
        "POST",
        "/api/auth/twitch/start",
        Some(json!({"account": "broadcaster"})),
    );
    assert_eq!(code, 200, "{started}");
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    assert!(
        started["verification_uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{}/", twitch.addr())),
        "{started}"
    );
    assert!(started["expires_in"].as_u64().unwrap() > 0, "{started}");
    // A second click shows the same code rather than starting over.
    let (_, again) = api(
        daemon,
        "POST",
        "/api/auth/twitch/start",
        Some(json!({"account": "broadcaster"})),
    );
    assert_eq!(again["user_code"], user_code.as_str());
    let (_, flows) = api(daemon, "GET", "/api/auth/twitch", None);
    assert_eq!(flows["flows"]["broadcaster"]["state"], "pending", "{flows}");
    assert_eq!(flows["flows"]["bot"]["state"], "idle", "{flows}");

    assert!(twitch.approve_device(&user_code, LOGIN, USER_ID));
    let done = wait_for("the login to finish", || {
        let (_, flows) = api(daemon, "GET", "/api/auth/twitch", None);
        let flow = flows["flows"]["broadcaster"].clone();
        (flow["state"] != "pending").then_some(flow)
    });
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["login"], LOGIN);
    assert_eq!(done["user_id"], USER_ID);
}

#[test]
fn device_code_login_over_http_stores_the_token_and_the_source_uses_it() {
    let twitch = fake_twitch::start();
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path(), &twitch);

    let (_, status) = api(&daemon, "GET", "/api/status", None);
    let before = broadcaster(&status);
    assert_eq!(before["logged_in"], false, "{before}");
    assert!(
        before["problem"]
            .as_str()
            .unwrap()
            .contains("ongwatch auth twitch"),
        "{before}"
    );

    log_in(&daemon, &twitch);
    let path = fake_twitch::token_path(&daemon.state_dir, Account::Broadcaster);
    let token = StoredToken::load(&path).unwrap().expect("a stored token");
    assert_eq!(token.login, LOGIN);
    assert_eq!(token.scopes, fake_twitch::all_scopes());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // The running source picks the login up without a restart.
    fake_twitch::wait_subscribed(&twitch);
    let (_, status) = api(&daemon, "GET", "/api/status", None);
    let after = broadcaster(&status);
    assert_eq!(after["logged_in"], true, "{after}");
    assert_eq!(after["login"], LOGIN);
    assert_eq!(after["user_id"], USER_ID);
    assert_eq!(after["missing_scopes"], json!([]));
    assert!(after["problem"].is_null(), "{after}");
    assert!(after["expires_at"].is_string(), "{after}");
    let text = status.to_string();
    assert!(!text.contains(&token.access_token));
    assert!(!text.contains(token.refresh_token.as_deref().unwrap()));

    // A new login while connected: the source drops its session and reconnects with it.
    let connections = twitch.stats().connections;
    log_in(&daemon, &twitch);
    wait_for("a new EventSub connection with the new login", || {
        (twitch.stats().connections > connections).then_some(())
    });
    fake_twitch::wait_subscribed(&twitch);

    let check = daemon.cli(&["check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with(&format!(
            "ok: twitch broadcaster token: {LOGIN} (user id {USER_ID}), expires "
        )) && l.ends_with("scopes complete")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok: twitch bot token: not logged in")),
        "{out}"
    );
    assert!(!out.contains(&token.access_token));
}

#[test]
fn login_without_a_client_id_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let (code, body) = api(
        &daemon,
        "POST",
        "/api/auth/twitch/start",
        Some(json!({"account": "bot"})),
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("[twitch.test] client_id"),
        "{body}"
    );
    let (code, _) = api(
        &daemon,
        "POST",
        "/api/auth/twitch/start",
        Some(json!({"account": "moderator"})),
    );
    assert_eq!(code, 422);
    let (_, status) = api(&daemon, "GET", "/api/status", None);
    assert_eq!(status["accounts"].as_array().map(Vec::len), Some(2));
    let check = daemon.cli(&["check"]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        out.contains("ok: twitch login: credentials.toml has no [twitch.test] client_id"),
        "{out}"
    );
}

#[test]
fn a_stored_token_missing_scopes_is_reported_by_check() {
    let twitch = fake_twitch::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fake_twitch::store_token(&twitch, &state, &["bits:read".to_owned()]);
    std::fs::write(
        dir.path().join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{}'\n", fake_twitch::CLIENT_ID),
    )
    .unwrap();
    let config = dir.path().join("ongwatch.toml");
    std::fs::write(
        &config,
        format!("{EPHEMERAL}{}", fake_twitch::config_section(&twitch)),
    )
    .unwrap();
    let out = ongwatch()
        .current_dir(dir.path())
        .arg("check")
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(
            |l| l.starts_with("problem: twitch broadcaster token: lacks the scopes ")
                && l.contains("channel:read:subscriptions")
                && l.contains("run `ongwatch auth twitch`")
        ),
        "{text}"
    );
}
