//! Two ongwatch instances sharing one external mosquitto with `{channel}` roots: each serves
//! its own channels, bots see every channel, nothing is handled twice (docs/SCALING.md).

mod support;

use support::*;

fn instance_config(port: u16, channel: &str) -> String {
    format!(
        "[bus]\ntopic_root = \"{{channel}}\"\n[mqtt]\nmode = \"external\"\nurl = \"mqtt://127.0.0.1:{port}\"\nclient_id = \"ongwatch-{channel}\"\n[http]\nlisten = \"127.0.0.1:0\"\n[twitch]\nchannel = \"{channel}\"\n"
    )
}

fn cheers_in(daemon: &Daemon) -> Vec<String> {
    daemon
        .log_lines()
        .into_iter()
        .filter_map(|l| l["topic"].as_str().map(str::to_owned))
        .filter(|topic| topic.ends_with("/support/cheers"))
        .collect()
}

#[test]
fn two_instances_shard_channels_on_one_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start(&dir.path().join("mosquitto"));
    let port = broker.port;
    let mut everything = mosquitto_sub(port, "+/support/cheers", &[]);
    let mut states = mosquitto_sub(port, "+/system/ongwatch", &[]);
    let alpha = Daemon::start_in(
        &dir.path().join("alpha"),
        &instance_config(port, "alpha"),
        &[],
    );
    let beta = Daemon::start_in(
        &dir.path().join("beta"),
        &instance_config(port, "beta"),
        &[],
    );
    states.wait_line(&["alpha/system/ongwatch", "online"]);
    states.wait_line(&["beta/system/ongwatch", "online"]);

    // Sent through alpha's config, but to beta's channel: beta serves it, alpha ignores it.
    for (via, channel, user) in [(&alpha, "alpha", "fan_a"), (&alpha, "beta", "fan_b")] {
        let out = via.cli(&[
            "trigger",
            "cheer",
            "--channel",
            channel,
            "--user",
            user,
            "--amount",
            "5",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let a = everything.wait_line(&["alpha/support/cheers", "fan_a"]);
    let b = everything.wait_line(&["beta/support/cheers", "fan_b"]);
    assert_eq!(
        payload_on(&a, "alpha/support/cheers").unwrap()["channel"],
        "alpha"
    );
    assert_eq!(
        payload_on(&b, "beta/support/cheers").unwrap()["channel"],
        "beta"
    );

    wait_for("each instance to log its own cheer", || {
        (cheers_in(&alpha).len() == 1 && cheers_in(&beta).len() == 1).then_some(())
    });
    assert_eq!(cheers_in(&alpha), vec!["alpha/support/cheers"]);
    assert_eq!(cheers_in(&beta), vec!["beta/support/cheers"]);
    assert_eq!(
        everything.count_lines("/support/cheers "),
        2,
        "{:?}",
        everything.pump()
    );
}
