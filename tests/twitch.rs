//! Issue 3's acceptance: the real `ongwatch` binary against the in-repo fake Twitch (OAuth,
//! Helix EventSub subscriptions, the EventSub WebSocket). Every scenario ends with each
//! notification the fake sent found exactly once in the event log. Durations are shrunk by
//! config; nothing asserts on wall-clock time.

#[path = "support/fake_twitch.rs"]
mod fake_twitch;
mod support;

use std::path::{Path, PathBuf};

use fake_twitch::{CLIENT_ID, LOGIN, USER_ID, all_scopes, start_as as twitch};
use ongwatch::sources::twitch::auth::{Account, StoredToken};
use ongwatch::sources::twitch::catalog;
use ongwatch::sources::twitch::fake::{FakeTwitch, Mode, cli};
use serde_json::{Value, json};
use support::*;

fn default_count() -> usize {
    catalog::resolve(&[]).unwrap().len()
}

fn config(fake: &FakeTwitch) -> String {
    format!(
        "{EPHEMERAL}[twitch]\nauth_url = \"{}\"\napi_url = \"{}\"\neventsub_url = \"{}\"\nretry_initial_seconds = 0.05\nretry_max_seconds = 0.5\nkeepalive_grace_seconds = 2.0\n",
        fake.auth_url(),
        fake.api_url(),
        fake.eventsub_url()
    )
}

fn credentials(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("credentials.toml"),
        format!("[twitch.test]\nclient_id = '{CLIENT_ID}'\n"),
    )
    .unwrap();
}

fn token_path(dir: &Path) -> PathBuf {
    StoredToken::path(&dir.join("state"), Account::Broadcaster)
}

/// Logs the broadcaster in at the fake, with tokens that live `lifetime` seconds.
fn store_token(fake: &FakeTwitch, dir: &Path, scopes: &[String], lifetime: i64) -> StoredToken {
    fake.set_token_lifetime(lifetime);
    fake_twitch::store_token_expiring(fake, &dir.join("state"), scopes, lifetime)
}

/// A daemon logged in with every default scope, its subscriptions all created.
fn connected(fake: &FakeTwitch, dir: &Path) -> Daemon {
    credentials(dir);
    store_token(fake, dir, &all_scopes(), 4 * 3600);
    let daemon = Daemon::start_in(dir, &config(fake), &[]);
    wait_subscribed(fake);
    daemon
}

fn wait_subscribed(fake: &FakeTwitch) {
    let wanted = default_count();
    wait_for("every default subscription to be enabled", || {
        (fake.enabled() == wanted).then_some(())
    });
}

fn send_follows(fake: &FakeTwitch, range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| {
            fake.notify("channel.follow", fake_twitch::follow(i))
                .expect("an enabled channel.follow subscription")
        })
        .collect()
}

/// Waits until every message id is in the event log, sends one more notification and waits
/// for it (so a late duplicate would be in the log too), then checks each appears once.
fn assert_delivered_once(fake: &FakeTwitch, daemon: &Daemon, ids: &[String]) {
    let marker = fake
        .notify("channel.follow", fake_twitch::follow(999_999))
        .expect("an enabled channel.follow subscription");
    let mut wanted: Vec<String> = ids.iter().map(|id| format!("twitch:{id}")).collect();
    wanted.push(format!("twitch:{marker}"));
    let lines = wait_for("every notification in the event log", || {
        let lines = daemon.log_lines();
        let seen: std::collections::HashSet<&str> = lines
            .iter()
            .filter_map(|l| l["event"]["id"].as_str())
            .collect();
        wanted
            .iter()
            .all(|id| seen.contains(id.as_str()))
            .then_some(lines.clone())
    });
    for id in &wanted {
        let count = lines.iter().filter(|l| l["event"]["id"] == *id).count();
        assert_eq!(count, 1, "{id} is in the log {count} times");
    }
    let follow = lines
        .iter()
        .find(|l| l["event"]["id"] == wanted[0])
        .unwrap();
    assert_eq!(follow["topic"], "stream/community/follows");
    assert_eq!(follow["event"]["channel"], LOGIN);
}

/// The last provider state the daemon published that satisfies `check`.
fn wait_state(daemon: &Daemon, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, || {
        daemon
            .log_lines()
            .into_iter()
            .filter(|l| l["topic"] == "stream/system/providers/twitch")
            .map(|l| l["event"].clone())
            .filter(|e| check(e))
            .last()
    })
}

fn subscription<'a>(state: &'a Value, kind: &str) -> &'a Value {
    state["subscriptions"]
        .as_array()
        .and_then(|subs| subs.iter().find(|s| s["type"] == kind))
        .unwrap_or(&Value::Null)
}

#[test]
fn reconnect_hand_off_under_load_loses_and_doubles_nothing() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    let daemon = connected(&fake, dir.path());
    let state = wait_state(&daemon, "the connected state", |e| {
        e["state"] == "connected"
    });
    assert_eq!(subscription(&state, "channel.follow")["status"], "enabled");
    assert_eq!(subscription(&state, "channel.follow")["version"], "2");

    let mut ids = send_follows(&fake, 0..100);
    assert_eq!(fake.session_reconnect(), 1);
    // Keeps sending while the daemon moves: to the old socket until the new welcome, then
    // to the new one; some are delivered twice on purpose, as Twitch may.
    for i in 100..300 {
        let id = fake
            .notify("channel.follow", fake_twitch::follow(i))
            .unwrap();
        if i % 25 == 0 {
            assert!(fake.notify_as("channel.follow", fake_twitch::follow(i), &id));
        }
        ids.push(id);
    }
    wait_for("the old session to be closed", || {
        (fake.sessions().len() == 1 && fake.stats().connections == 2).then_some(())
    });
    ids.extend(send_follows(&fake, 300..350));
    assert_delivered_once(&fake, &daemon, &ids);
    let stats = fake.stats();
    assert_eq!(
        stats.subscription_requests as usize,
        default_count(),
        "no resubscribe"
    );
    assert_eq!(stats.connections, 2);
}

#[test]
fn keepalive_silence_reconnects_and_resubscribes() {
    let fake = twitch(Mode::Twitch);
    fake.set_keepalive_seconds(1);
    let dir = tempfile::tempdir().unwrap();
    let daemon = connected(&fake, dir.path());
    let mut ids = send_follows(&fake, 0..5);
    assert_eq!(fake.silence(), 1);
    wait_for("a new connection after the silence", || {
        (fake.stats().connections == 2).then_some(())
    });
    wait_subscribed(&fake);
    ids.extend(send_follows(&fake, 5..10));
    assert_delivered_once(&fake, &daemon, &ids);
    assert_eq!(
        fake.stats().subscription_requests as usize,
        2 * default_count()
    );
    wait_state(&daemon, "the keepalive timeout reported", |e| {
        e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("keepalive timeout")
    });
}

#[test]
fn socket_drops_with_4006_and_4000_reconnect_and_resubscribe() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    let daemon = connected(&fake, dir.path());
    let mut ids = send_follows(&fake, 0..5);
    for (round, code) in [4006u16, 4000].into_iter().enumerate() {
        // Only after the previous notifications arrived: Twitch drops what it cannot deliver.
        assert_delivered_once(&fake, &daemon, &ids);
        // A ping is answered by the WebSocket layer and changes nothing.
        assert_eq!(fake.ping(), 1);
        assert_eq!(fake.close_sessions(code), 1);
        wait_for("the reconnection", || {
            (fake.stats().connections == round as u64 + 2).then_some(())
        });
        wait_subscribed(&fake);
        ids.extend(send_follows(&fake, (round + 1) * 10..(round + 1) * 10 + 5));
        wait_state(&daemon, "the close code reported", |e| {
            e["detail"]
                .as_str()
                .unwrap_or("")
                .contains(&format!("close code {code}"))
        });
    }
    assert_delivered_once(&fake, &daemon, &ids);
    assert_eq!(fake.stats().max_concurrent, 1);
}

#[test]
fn token_expiring_mid_stream_is_refreshed_persisted_and_subscriptions_kept() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    credentials(dir.path());
    let first = store_token(&fake, dir.path(), &all_scopes(), 4);
    let mut daemon = Daemon::start_in(dir.path(), &config(&fake), &[]);
    wait_subscribed(&fake);
    let mut ids = send_follows(&fake, 0..5);
    let rotated = wait_for("a refreshed token on disk", || {
        let stored = StoredToken::load(&token_path(dir.path())).ok()??;
        (stored.refresh_token != first.refresh_token).then_some(stored)
    });
    assert!(!fake.refresh_token_valid(first.refresh_token.as_deref().unwrap()));
    assert!(
        fake.refresh_token_valid(rotated.refresh_token.as_deref().unwrap())
            || fake.stats().refreshes > 1
    );
    assert_ne!(rotated.access_token, first.access_token);
    ids.extend(send_follows(&fake, 5..10));
    assert_delivered_once(&fake, &daemon, &ids);
    let stats = fake.stats();
    assert_eq!(stats.connections, 1, "the refresh kept the connection");
    let lines = daemon.proc.pump().join("\n");
    for secret in [&first.access_token, &rotated.access_token] {
        assert!(
            !lines.contains(secret.as_str()),
            "a token in the daemon's output"
        );
    }
    assert_eq!(stats.subscription_requests as usize, default_count());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(token_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn unauthorized_subscribe_refreshes_the_token_and_retries() {
    let fake = twitch(Mode::Twitch);
    fake.answer_next_subscriptions(401, 1);
    let dir = tempfile::tempdir().unwrap();
    let first = {
        credentials(dir.path());
        store_token(&fake, dir.path(), &all_scopes(), 4 * 3600)
    };
    let daemon = Daemon::start_in(dir.path(), &config(&fake), &[]);
    wait_subscribed(&fake);
    let stats = fake.stats();
    assert_eq!(stats.refreshes, 1);
    assert_eq!(stats.subscription_requests as usize, default_count() + 1);
    let stored = StoredToken::load(&token_path(dir.path())).unwrap().unwrap();
    assert_ne!(stored.refresh_token, first.refresh_token);
    let ids = send_follows(&fake, 0..5);
    assert_delivered_once(&fake, &daemon, &ids);
}

#[test]
fn revocation_is_published_on_the_provider_topic() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    let daemon = connected(&fake, dir.path());
    wait_state(&daemon, "the connected state", |e| {
        e["state"] == "connected"
    });
    assert_eq!(fake.revoke("channel.cheer", "version_removed"), 1);
    let state = wait_state(&daemon, "the revocation", |e| {
        subscription(e, "channel.cheer")["status"] == "version_removed"
    });
    assert_eq!(state["state"], "connected");
    assert!(
        state["detail"].as_str().unwrap().contains("revoked"),
        "{state}"
    );
    assert_eq!(fake.revoke("channel.ban", "authorization_revoked"), 1);
    let state = wait_state(&daemon, "the authorization revocation", |e| {
        subscription(e, "channel.ban")["status"] == "authorization_revoked"
    });
    assert_eq!(state["state"], "unauthorized");
    assert!(
        state["detail"]
            .as_str()
            .unwrap()
            .contains("ongwatch auth twitch"),
        "{state}"
    );
    let ids = send_follows(&fake, 0..5);
    assert_delivered_once(&fake, &daemon, &ids);
}

#[test]
fn scripted_429_answers_back_off_on_the_same_connection() {
    let fake = twitch(Mode::Twitch);
    fake.answer_next_subscriptions(429, 3);
    let dir = tempfile::tempdir().unwrap();
    let daemon = connected(&fake, dir.path());
    let stats = fake.stats();
    assert_eq!(stats.connections, 1, "no new connection for a 429");
    assert_eq!(stats.max_concurrent, 1);
    assert_eq!(stats.subscription_requests as usize, default_count() + 3);
    let ids = send_follows(&fake, 0..5);
    assert_delivered_once(&fake, &daemon, &ids);
    let state = wait_state(&daemon, "connected", |e| e["state"] == "connected");
    assert!(
        state["detail"]
            .as_str()
            .unwrap()
            .contains("of 3 connections"),
        "{state}"
    );
}

#[test]
fn missing_scopes_mean_unauthorized_with_the_fixing_command() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    credentials(dir.path());
    let scopes: Vec<String> = all_scopes()
        .into_iter()
        .filter(|s| s != "bits:read")
        .collect();
    store_token(&fake, dir.path(), &scopes, 4 * 3600);
    let daemon = Daemon::start_in(dir.path(), &config(&fake), &[]);
    let state = wait_state(&daemon, "the missing scope", |e| {
        e["state"] == "unauthorized" && e["detail"].as_str().unwrap_or("").contains("connected")
    });
    let detail = state["detail"].as_str().unwrap();
    assert!(
        detail.contains("bits:read") && detail.contains("`ongwatch auth twitch`"),
        "{detail}"
    );
    assert_eq!(
        subscription(&state, "channel.cheer")["status"],
        "missing_scope"
    );
    let ids = send_follows(&fake, 0..3);
    assert_delivered_once(&fake, &daemon, &ids);
}

#[test]
fn a_dead_refresh_token_is_unauthorized_not_a_loop() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    credentials(dir.path());
    let mut token = store_token(&fake, dir.path(), &all_scopes(), 4 * 3600);
    fake.expire_token(&token.access_token);
    token.refresh_token = Some("revoked-refresh-token".into());
    token.save(&token_path(dir.path())).unwrap();
    let daemon = Daemon::start_in(dir.path(), &config(&fake), &[]);
    let state = wait_state(&daemon, "unauthorized", |e| e["state"] == "unauthorized");
    assert!(
        state["detail"]
            .as_str()
            .unwrap()
            .contains("`ongwatch auth twitch`"),
        "{state}"
    );
    assert_eq!(fake.stats().refreshes, 1);
    assert_eq!(fake.stats().connections, 0);
    let text = std::fs::read_to_string(dir.path().join("state/events.jsonl")).unwrap();
    assert!(!text.contains(&token.access_token));
}

/// The daemon in `environment = "localdev"` against the fake's CLI mock, with only a client id
/// in its credentials; `extra` adds keys to its `[twitch]` section.
fn start_localdev(dir: &Path, fake: &FakeTwitch, extra: &str) -> Daemon {
    std::fs::write(
        dir.join("credentials.toml"),
        "[twitch.localdev]\nclient_id = 'debug'\n",
    )
    .unwrap();
    let config = format!(
        "environment = \"localdev\"\n{EPHEMERAL}[twitch]\neventsub_url = \"{}\"\neventsub_subscriptions_url = \"{}\"\n{extra}",
        fake.eventsub_url(),
        fake.mock_subscriptions_url()
    );
    Daemon::start_in(dir, &config, &[])
}

#[test]
fn localdev_needs_nothing_but_a_client_id() {
    let fake = twitch(Mode::CliMock);
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_localdev(dir.path(), &fake, "");
    // The mock refuses the defaults the CLI cannot trigger (the chat types, bits.use, ...) and
    // takes one subscription per type and version (one channel.raid of the two).
    let accepted: std::collections::BTreeSet<(String, String)> = catalog::resolve(&[])
        .unwrap()
        .into_iter()
        .filter(|s| cli::accepts(&s.kind, &s.version))
        .map(|s| (s.kind, s.version))
        .collect();
    wait_for("every default the CLI mock accepts to be enabled", || {
        (fake.enabled() == accepted.len()).then_some(())
    });
    assert!(
        fake.subscriptions()
            .iter()
            .all(|s| s.condition.to_string().contains("12345"))
    );
    // The Twitch CLI puts random broadcaster ids into its events; they are accepted.
    let mut event = fake_twitch::follow(1);
    event["broadcaster_user_id"] = json!("98765");
    let id = fake.notify("channel.follow", event).unwrap();
    assert_delivered_once(&fake, &daemon, &[id]);
    assert_eq!(fake.stats().validations, 0);
}

/// Where the daemon publishes each type the Twitch CLI can trigger and the catalog supports.
fn cli_type_topic(kind: &str) -> String {
    let suffix = match kind {
        "channel.ad_break.begin" => "channel/ads",
        "channel.ban"
        | "channel.unban"
        | "channel.moderator.add"
        | "channel.moderator.remove"
        | "channel.unban_request.create"
        | "channel.unban_request.resolve" => "chat/moderation",
        "channel.channel_points_custom_reward_redemption.add" => "community/redemptions",
        "channel.charity_campaign.donate" => "support/charity",
        "channel.charity_campaign.start"
        | "channel.charity_campaign.progress"
        | "channel.charity_campaign.stop" => "channel/charity_campaign",
        "channel.cheer" => "support/cheers",
        "channel.follow" => "community/follows",
        "channel.goal.begin" | "channel.goal.progress" | "channel.goal.end" => "channel/goals",
        "channel.hype_train.begin" | "channel.hype_train.progress" | "channel.hype_train.end" => {
            "support/hypetrain"
        }
        "channel.poll.begin" | "channel.poll.progress" | "channel.poll.end" => "interactive/polls",
        "channel.prediction.begin"
        | "channel.prediction.progress"
        | "channel.prediction.lock"
        | "channel.prediction.end" => "interactive/predictions",
        "channel.raid" => "community/raids",
        "channel.shoutout.create" | "channel.shoutout.receive" => "community/shoutouts",
        "channel.subscribe" | "channel.subscription.message" => "support/subs",
        "channel.subscription.gift" => "support/gifts",
        "channel.subscription.end" => "community/sub_ends",
        "channel.update" => "channel/updated",
        "stream.online" => "channel/online",
        "stream.offline" => "channel/offline",
        // Published raw by design (docs/TWITCH.md says why).
        "channel.moderate" => return format!("stream/raw/twitch/{kind}"),
        other => panic!("{other} is on the CLI's list and in the catalog: name its topic here"),
    };
    format!("stream/{suffix}")
}

/// The first payload of tests/data/eventsub for this type and version (the vectors the
/// normalizer tests use), its event with the ids the Twitch CLI would make up: every
/// `*user_id` is replaced by a random-looking id that is not the configured broadcaster's.
fn cli_like_event(kind: &str, version: &str, n: usize) -> Value {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/eventsub");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.starts_with(&format!("{kind}.v{version}.")))
        })
        .collect();
    files.sort();
    let mut event = files
        .iter()
        .map(|p| serde_json::from_str::<Value>(&std::fs::read_to_string(p).unwrap()).unwrap())
        .find_map(|payload| payload.get("event").filter(|e| e.is_object()).cloned())
        .unwrap_or_else(|| panic!("no payload of {kind} v{version} in tests/data/eventsub"));
    if let Some(fields) = event.as_object_mut() {
        for (i, (key, value)) in fields.iter_mut().enumerate() {
            if key.ends_with("user_id") && value.is_string() {
                *value = json!(format!("{}", 70_000_000 + n * 100 + i));
            }
        }
    }
    event
}

/// Issue 15: the Twitch CLI's mock (`twitch event websocket start-server`) still works with
/// `environment = "localdev"` for every type it can trigger. The CLI itself cannot be installed
/// here, so the fake plays it (`Mode::CliMock`: only the types and versions the CLI can trigger
/// over WebSocket, one subscription per type and version, notifications with a subscription id
/// and condition of their own). The CLI's list is tests/data/twitch-cli-trigger-types.json
/// (its source inside). Every type on it that the catalog supports at a version the CLI has is
/// subscribed without a failure, and one notification of each, with made-up ids as the CLI
/// sends them, comes out exactly once on its topic.
///
/// The CLI's WebSocket types the catalog does not support, and why:
/// - `automod.message.hold`, `channel.shield_mode.begin`/`end`: moderation plumbing no alert,
///   overlay or total reacts to (docs/TWITCH.md, "Left out entirely").
/// - `channel.channel_points_custom_reward.add`/`update`/`remove`: reward definitions, not
///   redemptions (same list).
/// - `channel.channel_points_custom_reward_redemption.update`: a streamer fulfilling or
///   refunding a redemption; the redemption itself was published by `.add`.
/// - `user.update`, `user.authorization.revoke`: account plumbing (`user.*` in the same list);
///   revoke has a client-id condition ongwatch cannot build, and the CLI sends it without an
///   event.
///
/// `drop.entitlement.grant`, `extension.bits_transaction.create` and `user.authorization.grant`
/// are on the CLI's list for webhooks only.
#[test]
fn localdev_takes_every_type_the_twitch_cli_can_trigger() {
    let mut supported: Vec<(String, String)> = Vec::new();
    let mut unsupported: Vec<&str> = Vec::new();
    for trigger in cli::all().iter().filter(|t| t.websocket) {
        match catalog::known()
            .find(|s| s.kind == trigger.kind && trigger.versions.contains(&s.version))
        {
            Some(spec) => supported.push((spec.kind, spec.version)),
            None => unsupported.push(&trigger.kind),
        }
    }
    unsupported.sort_unstable();
    assert_eq!(
        unsupported,
        [
            "automod.message.hold",
            "channel.channel_points_custom_reward.add",
            "channel.channel_points_custom_reward.remove",
            "channel.channel_points_custom_reward.update",
            "channel.channel_points_custom_reward_redemption.update",
            "channel.shield_mode.begin",
            "channel.shield_mode.end",
            "user.authorization.revoke",
            "user.update",
        ],
        "the doc comment lists these with the reason for each"
    );

    let fake = twitch(Mode::CliMock);
    let dir = tempfile::tempdir().unwrap();
    let entries: Vec<String> = supported
        .iter()
        .map(|(kind, version)| format!("\"{kind}@{version}\""))
        .collect();
    let daemon = start_localdev(
        dir.path(),
        &fake,
        &format!("subscriptions = [{}]\n", entries.join(", ")),
    );
    wait_for("every subscription to be enabled at the CLI mock", || {
        (fake.enabled() == supported.len()).then_some(())
    });
    let state = wait_state(&daemon, "the source connected", |e| {
        e["state"] == "connected"
    });
    let subscriptions = state["subscriptions"].as_array().unwrap();
    // channel.raid is asked for once per direction; the mock answers the second with 409.
    assert_eq!(subscriptions.len(), supported.len() + 1, "{state}");
    assert!(
        subscriptions.iter().all(|s| s["status"] == "enabled"),
        "{state}"
    );

    let sent: Vec<(String, String)> = supported
        .iter()
        .enumerate()
        .map(|(n, (kind, version))| {
            let id = fake
                .notify(kind, cli_like_event(kind, version, n))
                .unwrap_or_else(|| panic!("an enabled {kind} subscription"));
            (format!("twitch:{id}"), cli_type_topic(kind))
        })
        .collect();
    // One more at the end: a late duplicate of any of the above would be in the log by the time
    // this one is.
    let marker = fake
        .notify("channel.follow", cli_like_event("channel.follow", "2", 999))
        .unwrap();
    let marker = format!("twitch:{marker}");
    let lines = wait_for("every notification in the event log", || {
        let lines = daemon.log_lines();
        let ids: std::collections::HashSet<&str> = lines
            .iter()
            .filter_map(|l| l["event"]["id"].as_str())
            .collect();
        (ids.contains(marker.as_str()) && sent.iter().all(|(id, _)| ids.contains(id.as_str())))
            .then_some(lines.clone())
    });
    for ((kind, _), (id, topic)) in supported.iter().zip(&sent) {
        let found: Vec<&Value> = lines.iter().filter(|l| l["event"]["id"] == *id).collect();
        assert_eq!(
            found.len(),
            1,
            "{kind}: {id} is in the log {} times",
            found.len()
        );
        assert_eq!(found[0]["topic"], *topic, "{kind}: {}", found[0]);
    }
    assert_eq!(fake.stats().validations, 0);
}

#[test]
fn device_code_login_stores_the_token_and_status_lists_it() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    credentials(dir.path());
    let config_path = dir.path().join("ongwatch.toml");
    std::fs::write(&config_path, config(&fake)).unwrap();
    let state_dir = dir.path().join("state");
    let run = |args: &[&str]| {
        let mut command = ongwatch();
        command
            .current_dir(dir.path())
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .arg("--state-dir")
            .arg(&state_dir);
        command
    };
    let mut login = Proc::spawn("ongwatch auth twitch", &mut run(&["auth", "twitch"]));
    let line = login.wait_line(&["enter the code"]);
    let code = line.split_whitespace().last().unwrap().to_owned();
    assert!(
        line.contains(&fake.auth_url().replace("/oauth2", "")),
        "{line}"
    );
    assert!(fake.approve_device(&code, LOGIN, USER_ID));
    login.wait_line(&["Logged in as streamer (user id 4242)"]);
    wait_for("the login to exit", || login.child.try_wait().unwrap());
    let token = StoredToken::load(&token_path(dir.path())).unwrap().unwrap();
    assert_eq!(token.scopes, all_scopes());
    assert!(
        login
            .pump()
            .iter()
            .all(|l| !l.contains(&token.access_token))
    );

    let status = run(&["auth", "status"]).output().unwrap();
    assert!(status.status.success());
    let text = String::from_utf8(status.stdout).unwrap();
    assert!(
        text.contains("broadcaster: streamer (user id 4242)"),
        "{text}"
    );
    assert!(text.contains("missing scopes: none"), "{text}");
    assert!(
        text.contains("bot: not logged in") && text.contains("--account bot"),
        "{text}"
    );
    assert!(!text.contains(&token.access_token));

    // The daemon uses the stored login as it is.
    let daemon = Daemon::start_in(dir.path(), &config(&fake), &[]);
    wait_subscribed(&fake);
    let ids = send_follows(&fake, 0..3);
    assert_delivered_once(&fake, &daemon, &ids);
}

#[test]
fn auth_without_a_client_id_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = ongwatch()
        .current_dir(dir.path())
        .args(["auth", "twitch", "--state-dir"])
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[twitch.test] client_id"), "{err}");
}

#[test]
fn a_restart_removes_the_stale_subscriptions_of_the_last_run() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    let mut first = connected(&fake, dir.path());
    assert_eq!(first.proc.terminate(), Some(0));
    wait_for("the old session to end", || {
        fake.sessions().is_empty().then_some(())
    });
    assert!(
        fake.subscriptions()
            .iter()
            .all(|s| s.status == "websocket_disconnected")
    );
    let daemon = Daemon::start_in(dir.path(), &config(&fake), &[]);
    wait_subscribed(&fake);
    assert_eq!(fake.stats().deletes as usize, default_count());
    assert_eq!(fake.subscriptions().len(), default_count());
    let ids = send_follows(&fake, 0..3);
    assert_delivered_once(&fake, &daemon, &ids);
}

#[test]
fn docs_list_every_default_subscription_with_its_version_and_scope() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/TWITCH.md")).unwrap();
    for spec in catalog::resolve(&[]).unwrap() {
        let row = doc
            .lines()
            .find(|l| l.starts_with(&format!("| `{}` | {} |", spec.kind, spec.version)))
            .unwrap_or_else(|| panic!("docs/TWITCH.md lacks {} v{}", spec.kind, spec.version));
        for scope in spec.scopes.iter().flat_map(|group| group.iter()) {
            assert!(row.contains(&format!("`{scope}`")), "{row} lacks {scope}");
        }
    }
}

#[test]
fn transport_limit_429_backs_off_and_never_opens_another_connection() {
    let fake = twitch(Mode::Twitch);
    // Three connections of a crashed earlier run still hold the user's transports.
    fake.occupy_transports(USER_ID, 3);
    let dir = tempfile::tempdir().unwrap();
    credentials(dir.path());
    store_token(&fake, dir.path(), &all_scopes(), 4 * 3600);
    let daemon = Daemon::start_in(dir.path(), &config(&fake), &[]);
    wait_for("a few 429 answers", || {
        (fake.stats().transport_limit_answers >= 3).then_some(())
    });
    let state = wait_state(&daemon, "the retry reported", |e| {
        e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("transports limit")
    });
    assert_eq!(state["state"], "connecting");
    fake.release_transports();
    wait_subscribed(&fake);
    let stats = fake.stats();
    assert_eq!(stats.connections, 1, "the daemon kept its one connection");
    assert_eq!(
        stats.deletes, 3,
        "the dead transports' subscriptions were removed"
    );
    let ids = send_follows(&fake, 0..5);
    assert_delivered_once(&fake, &daemon, &ids);
}

#[test]
fn without_a_client_id_twitch_is_disabled_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let state = wait_state(&daemon, "the disabled state", |e| e["state"] == "disabled");
    assert!(
        state["detail"]
            .as_str()
            .unwrap()
            .contains("[twitch.test] client_id"),
        "{state}"
    );
}

/// Chat and the Twitch source each hold the broadcaster's token. A public client's refresh
/// token is single-use, so the second holder must take the token the first one refreshed and
/// saved, not spend the old refresh token (which would end in "log in again") nor write its
/// stale copy back over the new one.
#[test]
fn two_holders_of_one_account_share_refreshes_through_the_token_file() {
    use ongwatch::sources::twitch::auth::{OAuth, Tokens};

    let tw = twitch(Mode::Twitch);
    let fake = &tw.fake;
    let dir = tempfile::tempdir().unwrap();
    let stored = fake_twitch::store_token(fake, dir.path(), &all_scopes());
    let path = fake_twitch::token_path(dir.path(), Account::Broadcaster);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = || {
        let oauth = OAuth::new(
            ongwatch::net::http_client(),
            &fake.auth_url(),
            CLIENT_ID,
            None,
        );
        Tokens::new(
            oauth,
            path.clone(),
            StoredToken::load(&path).unwrap().unwrap(),
        )
    };
    let (source, chat) = (holder(), holder());

    let refreshed = runtime
        .block_on(source.refresh(&stored.access_token))
        .unwrap();
    assert_ne!(refreshed, stored.access_token);
    assert_eq!(fake.stats().refreshes, 1);
    let on_disk = StoredToken::load(&path).unwrap().unwrap();
    assert!(!fake.refresh_token_valid(stored.refresh_token.as_deref().unwrap()));

    // Chat's old access token is refused later: it takes the saved one, Twitch is not asked.
    let taken = runtime
        .block_on(chat.refresh(&stored.access_token))
        .unwrap();
    assert_eq!(taken, refreshed);
    assert_eq!(fake.stats().refreshes, 1);

    // An hourly validation by a holder that missed the refresh does not write its old copy back.
    let _ = runtime.block_on(source.refresh(&refreshed)).unwrap();
    let newest = StoredToken::load(&path).unwrap().unwrap();
    assert_ne!(newest.refresh_token, on_disk.refresh_token);
    let validated = runtime.block_on(chat.validate()).unwrap();
    assert_eq!(validated.access_token, newest.access_token);
    assert_eq!(
        StoredToken::load(&path).unwrap().unwrap().refresh_token,
        newest.refresh_token
    );
    assert!(fake.refresh_token_valid(newest.refresh_token.as_deref().unwrap()));
}

/// Chat and the EventSub source get the same holder of an account from the process's token
/// holders: when both see the same 401 at once, Twitch is asked for one refresh.
#[test]
fn one_holder_per_account_refreshes_once_for_all_its_users() {
    use ongwatch::sources::twitch::auth::TokenHolders;

    let tw = twitch(Mode::Twitch);
    let fake = &tw.fake;
    let dir = tempfile::tempdir().unwrap();
    let stored = fake_twitch::store_token(fake, dir.path(), &all_scopes());
    let holders = TokenHolders::new(&fake.auth_url(), Some(CLIENT_ID.into()), None, dir.path());
    let (chat, _) = holders.get(Account::Broadcaster).unwrap().unwrap();
    let (source, token) = holders.get(Account::Broadcaster).unwrap().unwrap();
    assert!(std::sync::Arc::ptr_eq(&chat, &source));
    assert_eq!(token.access_token, stored.access_token);
    assert!(holders.get(Account::Bot).unwrap().is_none());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (by_chat, by_source) = runtime.block_on(async {
        tokio::join!(
            chat.refresh(&stored.access_token),
            source.refresh(&stored.access_token)
        )
    });
    let (by_chat, by_source) = (by_chat.unwrap(), by_source.unwrap());
    assert_eq!(by_chat, by_source);
    assert_ne!(by_chat, stored.access_token);
    assert_eq!(fake.stats().refreshes, 1);
    assert_eq!(
        StoredToken::load(&fake_twitch::token_path(dir.path(), Account::Broadcaster))
            .unwrap()
            .unwrap()
            .access_token,
        by_chat
    );
}

/// `ongwatch auth` storing a new login while the daemon refreshes the old one: the two writes
/// take turns on the token file's lock, and whichever comes first, the new login is what stays
/// on disk and what the daemon's holder uses next; it is never overwritten by the old login.
#[test]
fn a_login_stored_during_a_refresh_is_not_overwritten() {
    use ongwatch::sources::twitch::auth::TokenHolders;

    let tw = twitch(Mode::Twitch);
    let fake = &tw.fake;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = fake_twitch::token_path(dir.path(), Account::Broadcaster);
        let old = fake_twitch::store_token(fake, dir.path(), &all_scopes());
        let holders = TokenHolders::new(&fake.auth_url(), Some(CLIENT_ID.into()), None, dir.path());
        let (daemon, _) = holders.get(Account::Broadcaster).unwrap().unwrap();
        let (access, refresh) = fake.issue_token(CLIENT_ID, LOGIN, USER_ID, &all_scopes());
        let mut login = StoredToken {
            access_token: access.clone(),
            refresh_token: Some(refresh.clone()),
            ..old.clone()
        };

        let (refreshed, stored) = runtime.block_on(async {
            tokio::join!(daemon.refresh(&old.access_token), login.store(&path))
        });
        refreshed.unwrap();
        stored.unwrap();

        let on_disk = StoredToken::load(&path).unwrap().unwrap();
        assert_eq!(on_disk.access_token, access);
        let used = runtime.block_on(daemon.validate()).unwrap();
        assert_eq!(used.access_token, access);
        assert_eq!(
            StoredToken::load(&path).unwrap().unwrap().access_token,
            access
        );
        assert!(fake.refresh_token_valid(&refresh));
    }
}

#[test]
fn check_names_every_subscription_entry_it_cannot_create() {
    let (code, text) = check_config(
        "[twitch]\nsubscriptions = [\"channel.goal.begin\", \"channel.made_up\", \"channel.follow@3\", \"channel.vip.add\"]\n",
    );
    assert_eq!(code, Some(2));
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("twitch.subscriptions"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines.iter().any(|l| l.contains("channel.made_up")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("channel.follow@3") && l.contains("version 2")),
        "{text}"
    );
    assert!(!text.contains("channel.goal.begin"), "{text}");
}

/// The catalog and the table of Twitch's rules the fake enforces (written from Twitch's
/// reference, tests/data/twitch-eventsub-rules.json) name the same types, versions, condition
/// fields and scopes, so a typo in either fails here and not in production.
#[test]
fn the_catalog_agrees_with_twitchs_rules() {
    use ongwatch::sources::twitch::fake::rules;
    use std::collections::BTreeSet;
    let rules = rules::all();
    let mut matched = BTreeSet::new();
    for spec in catalog::known() {
        let fields: BTreeSet<String> = spec
            .condition
            .build("1")
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let rule = rules
            .iter()
            .position(|r| {
                r.kind == spec.kind
                    && r.condition.iter().cloned().collect::<BTreeSet<_>>() == fields
            })
            .unwrap_or_else(|| panic!("{} with {fields:?} is not in Twitch's rules", spec.kind));
        let r = &rules[rule];
        assert_eq!(r.version, spec.version, "{}", spec.kind);
        // Every group as a set, the groups as a set: order is not Twitch's rule.
        let ours: BTreeSet<BTreeSet<String>> = spec
            .scopes
            .iter()
            .map(|group| group.iter().map(|s| (*s).to_owned()).collect())
            .collect();
        let twitchs: BTreeSet<BTreeSet<String>> = r
            .groups()
            .into_iter()
            .map(|group| group.into_iter().collect())
            .collect();
        assert_eq!(ours, twitchs, "scopes of {}", spec.kind);
        matched.insert(rule);
    }
    assert_eq!(matched.len(), rules.len(), "every rule has a catalog entry");
}

/// Opt-in types are created with the condition and scope Twitch's rules (as the fake enforces
/// them) demand: a goal with `channel:read:goals`, an unban request with its moderator id.
#[test]
fn opt_in_types_are_created_under_twitchs_rules() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    credentials(dir.path());
    let mut scopes = all_scopes();
    scopes.push("channel:read:goals".into());
    scopes.push("moderator:read:unban_requests".into());
    // channel.moderate v2 needs one scope of each of its eight groups; a manage scope counts.
    let moderate = catalog::resolve(&["channel.moderate".into()]).unwrap();
    scopes.extend(
        catalog::requested_scopes(&moderate)
            .into_iter()
            .map(|s| s.replace("moderator:read:warnings", "moderator:manage:warnings")),
    );
    store_token(&fake, dir.path(), &scopes, 4 * 3600);
    let config = config(&fake)
        + "subscriptions = [\"channel.goal.begin\", \"channel.unban_request.create\", \"stream.online\", \"channel.moderate@2\"]\n";
    let _daemon = Daemon::start_in(dir.path(), &config, &[]);
    wait_for("the four subscriptions to be enabled", || {
        (fake.enabled() == 4).then_some(())
    });
    assert_eq!(fake.stats().forbidden_answers, 0);
}

/// A WebSocket client that never answers pings: a raw handshake, then frames read by hand.
struct MutePeer(std::net::TcpStream);

impl MutePeer {
    fn connect(fake: &FakeTwitch) -> Self {
        Self::connect_to(fake, "/ws")
    }

    /// Connects to `path` (e.g. with a `keepalive_timeout_seconds` query).
    fn connect_to(fake: &FakeTwitch, path: &str) -> Self {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(fake.addr()).unwrap();
        tcp.set_read_timeout(Some(PATIENCE)).unwrap();
        tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: fake\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").as_bytes()).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tcp.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        Self(tcp)
    }

    /// The next frame's opcode and payload (server frames are not masked).
    fn frame(&mut self) -> (u8, Vec<u8>) {
        use std::io::Read;
        let mut head = [0u8; 2];
        self.0.read_exact(&mut head).unwrap();
        let len = match head[1] & 0x7f {
            126 => {
                let mut ext = [0u8; 2];
                self.0.read_exact(&mut ext).unwrap();
                u64::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                self.0.read_exact(&mut ext).unwrap();
                u64::from_be_bytes(ext)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        self.0.read_exact(&mut payload).unwrap();
        (head[0] & 0x0f, payload)
    }

    /// The `session` of the welcome, the first frame.
    fn welcome(&mut self) -> Value {
        let (opcode, text) = self.frame();
        assert_eq!(opcode, 1);
        let frame: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            frame["metadata"]["message_type"], "session_welcome",
            "{frame}"
        );
        frame["payload"]["session"].clone()
    }

    /// Reads until the close frame and returns its code.
    fn close_code(&mut self) -> u16 {
        loop {
            let (opcode, payload) = self.frame();
            if opcode == 8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }
}

#[test]
fn a_ping_left_without_a_pong_closes_with_4002() {
    let fake = twitch(Mode::Twitch);
    // Keep the unused connection open past the welcome window: only the ping may close it.
    fake.set_welcome_window(std::time::Duration::from_secs(3600));
    let mut peer = MutePeer::connect(&fake);
    let (opcode, welcome) = peer.frame();
    assert_eq!(opcode, 1);
    assert!(String::from_utf8_lossy(&welcome).contains("session_welcome"));
    assert_eq!(fake.ping(), 1);
    assert_eq!(peer.close_code(), 4002);
}

#[test]
fn a_session_reconnect_not_followed_closes_with_4004_after_the_grace_time() {
    let fake = twitch(Mode::Twitch);
    fake.set_welcome_window(std::time::Duration::from_secs(3600));
    let mut peer = MutePeer::connect(&fake);
    let (_, welcome) = peer.frame();
    assert!(String::from_utf8_lossy(&welcome).contains("session_welcome"));
    assert_eq!(fake.session_reconnect(), 1);
    // Twitch's 30 s grace (tests/data/twitch-eventsub-rules.json) passes with no new connection.
    assert_eq!(peer.close_code(), 4004);
}

/// Issue 16: a source task that dies early (here: a panic injected at its first start, as a bug
/// would) is reported at once — in the log and on `/api/status` — and started again, and the
/// restarted source connects and delivers.
#[test]
fn a_source_task_that_panics_is_reported_and_started_again() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    credentials(dir.path());
    store_token(&fake, dir.path(), &all_scopes(), 4 * 3600);
    let mut daemon = Daemon::start_with_env(
        dir.path(),
        &config(&fake),
        &[],
        &[("ONGWATCH_TEST_PANIC", "twitch")],
    );
    let line = daemon
        .proc
        .wait_line(&["twitch panicked", "starting it again"]);
    assert!(line.contains("a fault injected for a test"), "{line}");
    wait_subscribed(&fake);
    let http = daemon.runtime.http.expect("the http listener");
    let (code, status) = fake_twitch::http_json("GET", &format!("http://{http}/api/status"), None);
    assert_eq!(code, 200);
    let task = &status["tasks"]["twitch"];
    assert_eq!(task["restarts"], 1, "{task}");
    assert_eq!(task["state"], "running", "{task}");
    assert_eq!(task["policy"], "restart", "{task}");
    assert!(
        task["last_failure"]
            .as_str()
            .unwrap_or("")
            .starts_with("panicked: "),
        "{task}"
    );
    assert_eq!(status["tasks"]["hub"]["restarts"], 0);
    let ids = send_follows(&fake, 0..3);
    assert_delivered_once(&fake, &daemon, &ids);
    assert_eq!(daemon.proc.count_lines("twitch panicked"), 1);
}

/// A token without `channel:read:goals`: the daemon still asks for the goal subscription, the
/// fake answers 403 under Twitch's rules, and the provider state (so /api/status and the
/// dashboard), and `ongwatch auth status`, name the scope to grant.
#[test]
fn a_403_for_a_missing_scope_names_the_scope_in_the_state_and_auth_status() {
    let fake = twitch(Mode::Twitch);
    let dir = tempfile::tempdir().unwrap();
    credentials(dir.path());
    store_token(&fake, dir.path(), &all_scopes(), 4 * 3600);
    let config = config(&fake)
        + "subscriptions = [\"channel.goal.begin\", \"stream.online\", \"channel.follow\"]\n";
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    let state = wait_state(&daemon, "the goal refused", |e| {
        subscription(e, "channel.goal.begin")["status"] == "missing_scope"
            && subscription(e, "channel.follow")["status"] == "enabled"
    });
    assert_eq!(
        fake.stats().forbidden_answers,
        1,
        "Twitch was asked and said 403"
    );
    let goal = subscription(&state, "channel.goal.begin");
    assert_eq!(
        goal["missing_scopes"],
        json!(["channel:read:goals"]),
        "{goal}"
    );
    assert!(
        goal["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("403") && e.contains("channel:read:goals")),
        "{goal}"
    );
    assert_eq!(state["state"], "unauthorized", "{state}");

    let http = daemon.runtime.http.expect("HTTP address");
    let (code, status) = fake_twitch::http_json("GET", &format!("http://{http}/api/status"), None);
    assert_eq!(code, 200);
    let api_goal = status["providers"]["twitch"]["subscriptions"]
        .as_array()
        .and_then(|subs| subs.iter().find(|s| s["type"] == "channel.goal.begin"))
        .cloned()
        .unwrap_or_else(|| panic!("no goal subscription in {status}"));
    assert_eq!(api_goal["missing_scopes"], json!(["channel:read:goals"]));

    let out = daemon.cli(&["auth", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("channel.goal.begin@1: channel:read:goals (missing channel:read:goals)"),
        "{text}"
    );
    assert!(
        text.contains("channel.follow@2: moderator:read:followers (granted)"),
        "{text}"
    );
    assert!(text.contains("stream.online@1: none"), "{text}");
}

/// Creates subscriptions at the fake with the daemon's own Helix client, as a user's token.
struct Direct {
    helix: ongwatch::sources::twitch::helix::Helix,
    token: String,
    runtime: tokio::runtime::Runtime,
}

impl Direct {
    fn new(fake: &FakeTwitch) -> Self {
        let (token, _) = fake.issue_token(CLIENT_ID, LOGIN, USER_ID, &all_scopes());
        Self {
            helix: ongwatch::sources::twitch::helix::Helix::new(
                ongwatch::net::http_client(),
                format!("{}/eventsub/subscriptions", fake.api_url()),
                CLIENT_ID,
            ),
            token,
            runtime: tokio::runtime::Runtime::new().unwrap(),
        }
    }

    fn create(
        &self,
        kind: &str,
        version: &str,
        condition: Value,
        session: &str,
    ) -> Result<
        ongwatch::sources::twitch::helix::Totals,
        ongwatch::sources::twitch::helix::HelixError,
    > {
        self.runtime
            .block_on(
                self.helix
                    .create(&self.token, kind, version, &condition, session),
            )
            .map(|(_, totals)| totals)
    }
}

/// A session held open by a client that never subscribes on its own.
fn open_session(fake: &FakeTwitch) -> (MutePeer, String) {
    let mut peer = MutePeer::connect(fake);
    let id = peer.welcome()["id"].as_str().unwrap().to_owned();
    (peer, id)
}

/// Twitch's max_total_cost (10): a subscription costs 1 when the condition names a user who has
/// not authorized the client (stream.online of another channel), 0 when it names the token's
/// user; the 11th costly one gets 429, a free one still goes through.
#[test]
fn the_fake_refuses_subscriptions_over_max_total_cost_with_429() {
    use ongwatch::sources::twitch::helix::HelixError;
    let fake = twitch(Mode::Twitch);
    fake.set_welcome_window(std::time::Duration::from_secs(3600));
    let (_peer, session) = open_session(&fake);
    let direct = Direct::new(&fake);
    for i in 0..10 {
        let totals = direct
            .create(
                "stream.online",
                "1",
                json!({"broadcaster_user_id": format!("{}", 9000 + i)}),
                &session,
            )
            .unwrap();
        assert_eq!((totals.total_cost, totals.max_total_cost), (i + 1, 10));
    }
    let over = direct.create(
        "stream.online",
        "1",
        json!({"broadcaster_user_id": "9010"}),
        &session,
    );
    match over {
        Err(HelixError::TooMany { message, .. }) => {
            assert!(message.contains("max_total_cost"), "{message}")
        }
        other => panic!("expected 429, got {other:?}"),
    }
    assert_eq!(fake.stats().limit_answers, 1);
    let own = direct
        .create(
            "stream.online",
            "1",
            json!({"broadcaster_user_id": USER_ID}),
            &session,
        )
        .unwrap();
    assert_eq!(
        own.total_cost, 10,
        "the token user's own subscription is free"
    );
}

/// Twitch's 300 enabled subscriptions per WebSocket: the 301st on one session gets 429, while
/// another session of the same user takes it.
#[test]
fn the_fake_caps_a_websocket_at_300_subscriptions() {
    use ongwatch::sources::twitch::helix::HelixError;
    let fake = twitch(Mode::Twitch);
    fake.set_welcome_window(std::time::Duration::from_secs(3600));
    let (_peer, session) = open_session(&fake);
    let direct = Direct::new(&fake);
    // Free (the condition names the token's user as moderator) and all different.
    let follow = |broadcaster: usize| json!({"broadcaster_user_id": format!("{}", 10_000 + broadcaster), "moderator_user_id": USER_ID});
    for i in 0..300 {
        direct
            .create("channel.follow", "2", follow(i), &session)
            .unwrap_or_else(|e| panic!("subscription {i}: {e}"));
    }
    match direct.create("channel.follow", "2", follow(300), &session) {
        Err(HelixError::TooMany { message, .. }) => {
            assert!(message.contains("subscription limit"), "{message}")
        }
        other => panic!("expected 429, got {other:?}"),
    }
    assert_eq!(fake.stats().limit_answers, 1);
    let (_second, other) = open_session(&fake);
    direct
        .create("channel.follow", "2", follow(300), &other)
        .unwrap();
    assert_eq!(fake.enabled(), 301);
}

/// Twitch keeps a client's `keepalive_timeout_seconds` within 10..=600 and says in the welcome
/// what it uses.
#[test]
fn the_fake_clamps_the_keepalive_to_10_through_600_seconds() {
    let fake = twitch(Mode::Twitch);
    fake.set_welcome_window(std::time::Duration::from_secs(3600));
    for (asked, got) in [(1, 10), (10, 10), (42, 42), (600, 600), (100_000, 600)] {
        let mut peer =
            MutePeer::connect_to(&fake, &format!("/ws?keepalive_timeout_seconds={asked}"));
        assert_eq!(
            peer.welcome()["keepalive_timeout_seconds"],
            json!(got),
            "asked for {asked}"
        );
    }
}
