//! Issue 7's processors end to end: the real binary, its embedded broker, `ongwatch trigger`,
//! and mosquitto's clients. Timing is never asserted: tests wait for the retained state.

mod support;

use serde_json::Value;
use support::*;

fn trigger(daemon: &Daemon, args: &[&str]) {
    let mut all = vec!["trigger"];
    all.extend_from_slice(args);
    let out = daemon.cli(&all);
    assert!(
        out.status.success(),
        "trigger {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every payload received on `topic` so far, in order.
fn payloads(sub: &mut Proc, topic: &str) -> Vec<Value> {
    sub.pump()
        .iter()
        .filter_map(|line| payload_on(line, topic))
        .collect()
}

const HYPE: &str = "stream/synthetic/hype";

#[test]
fn hype_rises_through_the_thresholds_and_decays_back_with_retained_state_at_each_step() {
    let dir = tempfile::tempdir().unwrap();
    // A short half-life so decay happens within the test; the thresholds leave room for the
    // decay between two triggers on a slow machine.
    let config = format!(
        "{EPHEMERAL}[hype]\nhalf_life_seconds = 3.0\nthresholds = [10.0, 30.0, 60.0, 120.0]\n"
    );
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    let port = daemon.mqtt_port();
    let mut sub = mosquitto_sub(port, HYPE, &[]);

    // The latest live update has `level`, and a new subscriber gets that same state retained.
    let mut seen = 0;
    let mut expect_level = |sub: &mut Proc, level: u64| {
        let state = wait_for(&format!("hype level {level}"), || {
            let all = payloads(sub, HYPE);
            let found = all[seen..].iter().position(|p| p["level"] == level)?;
            seen += found + 1;
            Some(all[seen - 1].clone())
        });
        let kept = retained(port, HYPE);
        let latest = wait_for("the retained hype among the live updates", || {
            payloads(sub, HYPE)
                .into_iter()
                .rfind(|p| p["level"] == kept["level"] && p["score"] == kept["score"])
        });
        assert_eq!(latest["type"], "hype");
        assert_eq!(kept["id"], latest["id"]);
        state
    };

    expect_level(&mut sub, 0);
    trigger(&daemon, &["cheer", "--amount", "2000"]); // 20 points
    expect_level(&mut sub, 1);
    trigger(&daemon, &["sub", "--field", "tier=3000"]); // +25
    expect_level(&mut sub, 2);
    trigger(
        &daemon,
        &["tip", "--amount", "50", "--field", "currency=USD"],
    ); // +50
    expect_level(&mut sub, 3);
    trigger(&daemon, &["cheer", "--amount", "10000"]); // +100
    let top = expect_level(&mut sub, 4);
    assert!(top["score"].as_f64().unwrap() >= 120.0, "{top}");

    // Nothing more happens: the meter falls one level at a time back to 0.
    for level in [3, 2, 1, 0] {
        let state = expect_level(&mut sub, level);
        let score = state["score"].as_f64().unwrap();
        assert!(score < [10.0, 30.0, 60.0, 120.0][level as usize], "{state}");
    }
    // After the peak the meter fell one level at a time. Before it a slow machine may have let
    // a level decay between two triggers (2 → 1 → 3), which the waits above allow.
    let levels: Vec<u64> = payloads(&mut sub, HYPE)
        .iter()
        .map(|p| p["level"].as_u64().unwrap())
        .collect();
    let peak = levels.iter().position(|&l| l == 4).unwrap();
    assert_eq!(levels[peak..], [4, 3, 2, 1, 0], "{levels:?}");
}

const TOTALS: &str = "stream/synthetic/totals";

#[test]
fn totals_cover_one_session_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let mut sub = mosquitto_sub(daemon.mqtt_port(), TOTALS, &[]);

    trigger(&daemon, &["online"]);
    trigger(&daemon, &["cheer", "--amount", "100"]);
    trigger(
        &daemon,
        &["tip", "--amount", "2.5", "--field", "currency=EUR"],
    );
    trigger(&daemon, &["sub"]);
    trigger(&daemon, &["gift", "--amount", "5"]);
    trigger(&daemon, &["follow"]);
    trigger(&daemon, &["raid", "--amount", "12"]);
    let totals = sub.wait_line(&[TOTALS, "\"raids\":1"]);
    let totals = payload_on(&totals, TOTALS).unwrap();
    assert_eq!(totals["bits"], 100);
    assert_eq!(totals["tips"]["EUR"], 2.5);
    assert_eq!(totals["subs"], 1);
    assert_eq!(totals["gifts"], 5);
    assert_eq!(totals["follows"], 1);
    assert!(totals["session_started_at"].is_string());
    assert_eq!(retained(daemon.mqtt_port(), TOTALS)["bits"], 100);

    // A restart within the session: the totals come back retained and go on counting.
    assert_eq!(daemon.proc.terminate(), Some(0));
    drop(daemon);
    let restarted = Daemon::start_in(dir.path(), EPHEMERAL, &[]);
    let port = restarted.mqtt_port();
    let kept = retained(port, TOTALS);
    assert_eq!(kept["bits"], 100);
    assert_eq!(kept["session_started_at"], totals["session_started_at"]);
    let mut sub = mosquitto_sub(port, TOTALS, &[]);
    trigger(&restarted, &["cheer", "--amount", "250"]);
    sub.wait_line(&[TOTALS, "\"bits\":350"]);

    // Offline ends the session: its totals stay, and support after it is not added.
    trigger(&restarted, &["offline"]);
    trigger(&restarted, &["cheer", "--amount", "1"]);
    trigger(&restarted, &["follow"]);
    // Another channel's cheer is counted (it has no session yet) and published after the two
    // above were processed, since the processor takes the bus in order.
    trigger(
        &restarted,
        &["cheer", "--amount", "7", "--channel", "other"],
    );
    sub.wait_line(&[TOTALS, "\"channel\":\"other\"", "\"bits\":7"]);
    let ours: Vec<Value> = payloads(&mut sub, TOTALS)
        .into_iter()
        .filter(|t| t["channel"] != "other")
        .collect();
    let last = ours.last().unwrap();
    assert_eq!(last["bits"], 350);
    assert_eq!(last["follows"], 1);

    // The next stream starts from zero.
    trigger(&restarted, &["online"]);
    sub.wait_line(&[TOTALS, "\"bits\":0"]);
}

#[test]
fn home_assistant_gets_discovery_at_start_and_after_its_birth_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{EPHEMERAL}[homeassistant]\nenabled = true\n");
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    let port = daemon.mqtt_port();
    let mut sub = mosquitto_sub(port, "homeassistant/#", &[]);

    let configs = |sub: &mut Proc| -> Vec<(String, Value)> {
        sub.pump()
            .iter()
            .filter_map(|line| {
                let (topic, payload) = line.split_once(' ')?;
                topic
                    .ends_with("/config")
                    .then(|| (topic.to_owned(), serde_json::from_str(payload).unwrap()))
            })
            .collect()
    };
    let first = wait_for("14 retained discovery configs", || {
        let found = configs(&mut sub);
        (found.len() >= 14).then_some(found)
    });
    assert_eq!(first.len(), 14);
    for (topic, config) in &first {
        let levels: Vec<&str> = topic.split('/').collect();
        assert_eq!(levels.len(), 5, "{topic}");
        assert_eq!(levels[0], "homeassistant");
        assert!(
            ["sensor", "binary_sensor", "event"].contains(&levels[1]),
            "{topic}"
        );
        assert_eq!(levels[2], "ongwatch_ongwatch");
        for key in [
            "name",
            "unique_id",
            "state_topic",
            "value_template",
            "device",
        ] {
            assert!(!config[key].is_null(), "{key} missing in {topic}: {config}");
        }
        assert!(
            config["state_topic"]
                .as_str()
                .unwrap()
                .starts_with("stream/")
        );
        assert_eq!(config["availability"][0]["topic"], "stream/system/ongwatch");
        assert_eq!(
            config["availability"][0]["value_template"],
            "{{ value_json.state }}"
        );
        if levels[1] == "event" {
            assert!(
                config["event_types"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty())
            );
        }
    }
    let unique: std::collections::HashSet<_> =
        first.iter().map(|(_, c)| c["unique_id"].clone()).collect();
    assert_eq!(unique.len(), 14);
    // The availability topic says online, as the template expects.
    assert_eq!(retained(port, "stream/system/ongwatch")["state"], "online");

    mosquitto_pub(port, "homeassistant/status", "online", &[]);
    let again = wait_for("discovery published again", || {
        let found = configs(&mut sub);
        (found.len() >= 28).then_some(found)
    });
    let mut first = first;
    let mut again = again[14..].to_vec();
    first.sort_by(|a, b| a.0.cmp(&b.0));
    again.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(again, first);
}

const LIGHT: &str = "house/lights/light1/state";

#[test]
fn the_seed_light_turns_on_when_hype_passes_3_and_off_when_it_falls_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{EPHEMERAL}[hype]\nhalf_life_seconds = 1.0\n\n[[rules]]\nwhen = \"stream/synthetic/hype\"\nif = \"level > 3\"\npublish = {{ topic = \"{LIGHT}\", payload = \"ON\" }}\nelse = {{ topic = \"{LIGHT}\", payload = \"OFF\" }}\n"
    );
    let daemon = Daemon::start_in(dir.path(), &config, &[]);
    let port = daemon.mqtt_port();
    let mut light = mosquitto_sub(port, "house/#", &[]);
    let states = |light: &mut Proc| -> Vec<String> {
        light
            .pump()
            .iter()
            .filter_map(|line| Some(line.strip_prefix(LIGHT)?.strip_prefix(' ')?.to_owned()))
            .collect()
    };

    // Driven by real support: 10000 bits are 100 points, level 4 of the default thresholds;
    // with a one-second half-life it falls back below level 4 by itself.
    trigger(&daemon, &["cheer", "--amount", "10000"]);
    wait_for("ON then OFF from the hype meter", || {
        let seen = states(&mut light);
        seen.ends_with(&["ON".to_owned(), "OFF".to_owned()])
            .then_some(())
    });
    let mut expected = states(&mut light);
    assert_eq!(expected.iter().filter(|s| *s == "ON").count(), 1);
    // The meter's own decay is done once it is back at 0; from here on only the bot speaks.
    wait_for("the hype meter back at level 0", || {
        (retained(port, HYPE)["level"] == 0).then_some(())
    });

    // Driven by a bot publishing hype itself: each crossing publishes once.
    for (level, state) in [
        (5, Some("ON")),
        (6, None),
        (4, None),
        (1, Some("OFF")),
        (0, None),
    ] {
        mosquitto_pub(
            port,
            HYPE,
            &format!(r#"{{"level": {level}, "score": 1.0}}"#),
            // One client: the first publisher of a topic owns it (topic authority).
            &["-i", "hype-bot"],
        );
        if let Some(state) = state {
            expected.push(state.to_owned());
            wait_for(&format!("the light {state}"), || {
                (states(&mut light) == expected).then_some(())
            });
        }
    }
    // A last crossing proves the repeats in between published nothing.
    mosquitto_pub(
        port,
        HYPE,
        r#"{"level": 9, "score": 1.0}"#,
        &["-i", "hype-bot"],
    );
    expected.push("ON".into());
    wait_for("the light ON", || {
        (states(&mut light) == expected).then_some(())
    });
}

#[test]
fn check_rejects_a_bad_rule_naming_its_place_and_key() {
    let (code, text) = check_config(
        "[[rules]]\nwhen = \"stream/synthetic/hype\"\nif = \"level > 3\"\npublish = { topic = \"a/b\", payload = \"1\" }\n\n[[rules]]\nwhen = \"stream/synthetic/hype\"\nif = \"level >\"\npublish = { topic = \"a/b\", payload = \"1\" }\n",
    );
    assert_eq!(code, Some(2));
    assert!(text.contains("rules[2].if"), "{text}");
    assert!(!text.contains("rules[1]"), "{text}");
}
