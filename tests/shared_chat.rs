//! Twitch shared chat end to end: the real binary reads IRC lines of a shared chat session
//! (tests/data/irc/shared-chat.txt). A partner channel's bits are published, marked with
//! `source_channel_id`, but are not on the totals, not on the hype meter and not alerted; the
//! own channel's bits are counted.

#[path = "support/irc_server.rs"]
mod irc_server;
mod support;

use std::path::PathBuf;
use std::process::Command;

use irc_server::ScriptedIrc;
use serde_json::Value;
use support::*;

const LINES: &str = include_str!("data/irc/shared-chat.txt");

fn line(n: usize) -> &'static str {
    LINES.lines().nth(n).expect("a line of shared-chat.txt")
}

fn logged(daemon: &Daemon, topic: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(topic, || {
        daemon
            .log_lines()
            .into_iter()
            .find(|l| l["topic"] == topic && check(&l["event"]))
            .map(|l| l["event"].clone())
    })
}

#[test]
fn a_partner_channels_bits_are_not_ours_to_count_or_alert() {
    let irc = ScriptedIrc::start(|_| Vec::new());
    let dir = tempfile::tempdir().unwrap();
    // The hype meter publishes on level changes: 1 point (our 100 bits) is level 1, the
    // partner's 500 bits (5 points) would be level 2.
    let config = format!(
        "{EPHEMERAL}[chat]\nserver = \"127.0.0.1:{}\"\ntls = false\nanonymous = true\nchannels = [\"ongchan\"]\n[hype]\nthresholds = [1.0, 5.0, 50.0]\n",
        irc.port
    );
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    irc.wait_for("the JOIN", |l| l == "JOIN #ongchan");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/run.js");
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let base = format!("http://{}", daemon.runtime.http.expect("HTTP address"));
    let mut browser = Proc::spawn(
        "browser alerts_partner",
        Command::new("node")
            .arg(script)
            .arg("alerts_partner")
            .arg(base)
            .arg(artifacts)
            .args(["PartnerFan", "OwnFan"]),
    );
    browser.wait_line(&["ready"]);

    // The partner's cheer first: were it counted, it would be in every number below.
    irc.send(line(0));
    irc.send(line(1));
    irc.send(line(2));

    let partner = logged(&daemon, "stream/support/cheers", |e| {
        e["user"] == "partnerfan"
    });
    assert_eq!(partner["source_channel_id"], "222222");
    assert_eq!(partner["platform"], "twitch");
    let own = logged(&daemon, "stream/support/cheers", |e| e["user"] == "ownfan");
    assert!(own.get("source_channel_id").is_none(), "{own}");

    // Processors see events in bus order, so the first totals and hype with bits in them come
    // after both cheers were handled.
    let totals = logged(&daemon, "stream/synthetic/totals", |t| {
        t["bits"].as_u64() > Some(0)
    });
    assert_eq!(totals["bits"], 100, "{totals}");
    let hype = logged(&daemon, "stream/synthetic/hype", |h| {
        h["score"].as_f64() > Some(0.0)
    });
    // 100 bits are 1 point by default; the partner's 500 would have added 5.
    assert!(hype["score"].as_f64().unwrap() <= 1.0, "{hype}");

    // The partner's resub came as a sharedchatnotice: a notice from the partner, not our sub.
    let notice = logged(&daemon, "stream/chat/notices", |e| {
        e["user"] == "partnersub"
    });
    assert_eq!(notice["source_channel_id"], "222222");
    assert!(
        !daemon
            .log_lines()
            .iter()
            .any(|l| l["topic"] == "stream/support/subs"),
        "a partner's resub is not our sub"
    );

    let status = wait_for("the browser script to finish", || {
        browser.child.try_wait().ok().flatten()
    });
    let output = browser.pump().join("\n");
    assert!(
        status.success() && output.lines().any(|l| l == "ok"),
        "{output}"
    );
}
