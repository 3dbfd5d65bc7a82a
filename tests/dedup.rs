//! Issue 5's duplicate policy with the real binary: one cheer reported by Twitch EventSub (the
//! fake Twitch) and by Streamlabs (a real Socket.IO 2 server, tests/support/socketio_server.py)
//! comes out once, as Twitch's; a cheer only Streamlabs reports still comes out, after the
//! window. Nothing asserts how long anything took.

#[path = "support/fake_twitch.rs"]
mod fake_twitch;
#[path = "support/socketio_server.rs"]
mod socketio_server;
mod support;

use serde_json::{Value, json};
use socketio_server::SocketIoServer;
use support::*;

const SL_TOKEN: &str = "sl-good-token";

fn streamlabs_bits(id: &str, user: &str, bits: u64) -> Value {
    json!({
        "type": "bits",
        "for": "twitch_account",
        "event_id": format!("evt-{id}"),
        "message": [{
            "_id": id,
            "name": user,
            "display_name": user,
            "amount": bits.to_string(),
            "message": format!("Cheer{bits} hi"),
        }],
    })
}

fn twitch_cheer(user: &str, bits: u64) -> Value {
    json!({
        "is_anonymous": false,
        "user_id": "777",
        "user_login": user,
        "user_name": user,
        "broadcaster_user_id": fake_twitch::USER_ID,
        "broadcaster_user_login": fake_twitch::LOGIN,
        "broadcaster_user_name": "Streamer",
        "message": format!("Cheer{bits} hi"),
        "bits": bits,
    })
}

fn ids_on(daemon: &Daemon, topic: &str) -> Vec<String> {
    daemon
        .log_lines()
        .iter()
        .filter(|l| l["topic"] == topic)
        .filter_map(|l| l["event"]["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_cheer_from_eventsub_and_streamlabs_comes_out_once_and_a_streamlabs_only_one_after_the_window()
{
    let Some(python) = support::require(socketio_server::venv_python()) else {
        return;
    };
    let twitch = fake_twitch::start();
    let mut streamlabs = SocketIoServer::start(&python, "streamlabs", SL_TOKEN);
    let dir = tempfile::tempdir().unwrap();
    fake_twitch::logged_in(
        &twitch,
        dir.path(),
        &format!(
            "[streamlabs.test]
socket_token = '{SL_TOKEN}'
"
        ),
    );
    let config = format!(
        "{EPHEMERAL}{}[streamlabs]\nurl = \"http://127.0.0.1:{}\"\n[dedup]\nwindow_seconds = 5\n",
        fake_twitch::config_section(&twitch),
        streamlabs.port
    );
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    fake_twitch::wait_subscribed(&twitch);
    wait_for("Streamlabs to connect", || {
        daemon
            .log_lines()
            .iter()
            .any(|l| {
                l["topic"] == "stream/system/providers/streamlabs"
                    && l["event"]["state"] == "connected"
            })
            .then_some(())
    });

    // The same cheer, once from each side.
    let emit = |server: &mut SocketIoServer, payload: Value| {
        server.cmd(&format!("emitjson event {payload}"));
    };
    emit(
        &mut streamlabs,
        streamlabs_bits("sl-dup", "alinsa_vix", 2490),
    );
    let message_id = twitch
        .notify("channel.cheer", twitch_cheer("alinsa_vix", 2490))
        .expect("an enabled channel.cheer subscription");
    // Only Streamlabs reports this one; it is held for the window, then published.
    emit(&mut streamlabs, streamlabs_bits("sl-only", "lonely", 100));

    let cheers = wait_for("the Streamlabs-only cheer after the window", || {
        let ids = ids_on(&daemon, "stream/support/cheers");
        ids.iter()
            .any(|id| id == "streamlabs:sl-only")
            .then_some(ids)
    });
    // Held reports are released oldest first, so the duplicate's fate is settled by now.
    assert_eq!(
        cheers,
        [
            format!("twitch:{message_id}"),
            "streamlabs:sl-only".to_owned()
        ],
        "EventSub's cheer once, the Streamlabs duplicate dropped"
    );

    let http = daemon.runtime.http.unwrap();
    let (_, status) = fake_twitch::http_json("GET", &format!("http://{http}/api/status"), None);
    assert_eq!(status["hub"]["cross_source_duplicates"], 1, "{status}");
}
