//! Real EventSub payloads (tests/data/eventsub, see its README) through the frame parser and the
//! normalizer, plus `ongwatch trigger` round trips.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use ongwatch::event::Event;
use ongwatch::sources::trigger::TriggerRequest;
use ongwatch::sources::twitch::eventsub::{
    Context, Frame, Notification, normalize, parse_frame, raw_event, trigger_notification,
};
use serde_json::{Value, json};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/eventsub")
}

fn read(file: &str) -> String {
    std::fs::read_to_string(data_dir().join(file)).unwrap()
}

fn fixed_time() -> DateTime<Utc> {
    "2024-05-06T07:08:09.123Z".parse().unwrap()
}

/// Our broadcaster in most vectors: id 1337, login cooler_user.
fn ctx() -> Context {
    Context::new("1337", "cooler_user")
}

/// The context when a dedicated subscription type was not created.
fn ctx_without(ty: &str) -> Context {
    let all = [
        "channel.cheer",
        "channel.subscribe",
        "channel.subscription.message",
        "channel.subscription.gift",
        "channel.raid",
        "channel.charity_campaign.donate",
    ];
    Context {
        subscribed: Some(
            all.into_iter()
                .filter(|t| *t != ty)
                .map(String::from)
                .collect(),
        ),
        ..ctx()
    }
}

/// A payload vector as a notification whose message id is derived from the file name, so
/// ids and snapshots are stable.
fn payload(file: &str) -> Notification {
    let value: Value = serde_json::from_str(&read(file)).unwrap();
    from_value(file, value)
}

fn from_value(file: &str, value: Value) -> Notification {
    let stem = file.trim_end_matches(".json");
    Notification::from_payload(format!("vector-{stem}"), fixed_time(), &value.to_string()).unwrap()
}

/// A vector with `event` fields replaced, for the variants the upstream set lacks.
fn variant(file: &str, patch: Value) -> Notification {
    let mut value: Value = serde_json::from_str(&read(file)).unwrap();
    if let (Some(event), Value::Object(patch)) = (value["event"].as_object_mut(), patch) {
        event.extend(patch);
    }
    from_value(file, value)
}

fn one(n: &Notification, ctx: &Context) -> Event {
    normalize(n, ctx)
        .unwrap()
        .expect("an event, not a suppressed duplicate")
}

fn json_of(n: &Notification, ctx: &Context) -> Value {
    one(n, ctx).to_json()
}

#[test]
fn every_vector_normalizes_to_its_snapshot() {
    let mut files: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut normalized = 0;
    for file in &files {
        let value: Value = serde_json::from_str(&read(file)).unwrap();
        let notification = if value.get("metadata").is_some() {
            match parse_frame(&read(file)).unwrap() {
                Frame::Notification(n) => n,
                _ => continue,
            }
        } else if value.get("event").is_some() {
            from_value(file, value)
        } else {
            // Webhook challenge and revocation bodies: no event, so not a notification.
            let err = Notification::from_payload("x", fixed_time(), &value.to_string());
            assert!(err.is_err(), "{file} has no event and must be rejected");
            continue;
        };
        let result = normalize(&notification, &ctx()).unwrap();
        if let Some(event) = &result {
            // CONTRACT §4: every support and community event says where it happened.
            let expected = event.kind.kind().carries_platform().then_some("twitch");
            assert_eq!(event.platform.as_deref(), expected, "{file}");
        }
        let snapshot = match &result {
            Some(event) => json!({"topic": event.topic_suffix(), "event": event.to_json()}),
            None => json!({"topic": null, "suppressed": "duplicate of a dedicated subscription"}),
        };
        // Sorted so the snapshots do not depend on whether some crate in the build enables
        // serde_json's `preserve_order`.
        insta::with_settings!({sort_maps => true}, {
            insta::assert_json_snapshot!(file.trim_end_matches(".json"), snapshot);
        });
        normalized += 1;
    }
    assert_eq!(normalized, 77, "vectors normalized");
}

#[test]
fn frames_parse() {
    let Frame::Welcome(session) = parse_frame(&read("session_welcome.websocket.1.json")).unwrap()
    else {
        panic!("welcome");
    };
    assert_eq!(session.id, "AQoQILE98gtqShGmLD7AM6yJThAB");
    assert_eq!(session.keepalive_timeout_seconds, Some(10));
    assert_eq!(session.reconnect_url, None);

    assert_eq!(
        parse_frame(&read("session_keepalive.websocket.2.json")).unwrap(),
        Frame::Keepalive
    );

    let Frame::Reconnect(session) =
        parse_frame(&read("session_reconnect.websocket.4.json")).unwrap()
    else {
        panic!("reconnect");
    };
    assert_eq!(session.id, "AQoQexAWVYKSTIu4ec_2VAxyuhAB");
    assert_eq!(session.keepalive_timeout_seconds, None);
    assert_eq!(
        session.reconnect_url.as_deref(),
        Some("wss://eventsub.wss.twitch.tv?...")
    );

    let Frame::Revocation(sub) = parse_frame(&read("channel.follow.v1.websocket.5.json")).unwrap()
    else {
        panic!("revocation");
    };
    assert_eq!(
        (sub.kind.as_str(), sub.version.as_str(), sub.status.as_str()),
        ("channel.follow", "1", "authorization_revoked")
    );
    assert_eq!(sub.id, "f1c2a387-161a-49f9-a165-0f21d7a4e1c4");

    let Frame::Notification(n) = parse_frame(&read("channel.follow.v1.websocket.3.json")).unwrap()
    else {
        panic!("notification");
    };
    assert_eq!(n.message_id, "befa7b53-d79d-478f-86b9-120f112b044e");
    assert_eq!(n.subscription.kind, "channel.follow");
    assert_eq!(n.subscription.condition["broadcaster_user_id"], "12826");
    let event = json_of(&n, &ctx());
    assert_eq!(event["id"], "twitch:befa7b53-d79d-478f-86b9-120f112b044e");
    assert_eq!(event["type"], "follow");
    assert_eq!(event["user"], "awesome_user");
    // followed_at, not the delivery time.
    assert_eq!(event["time"], "2020-07-15T18:16:11.171Z");

    assert!(parse_frame("{\"metadata\": 5}").is_err());
    assert!(parse_frame("not json").is_err());
}

#[test]
fn cheer() {
    let event = one(&payload("channel.cheer.v1.cheer.1.json"), &ctx());
    assert_eq!(event.topic_suffix(), "support/cheers");
    let json = event.to_json();
    assert_eq!(json["provider"], "twitch");
    assert_eq!(json["user"], "cool_user");
    assert_eq!(json["amount"], 1000);
    assert_eq!(json["currency"], "bits");
    assert_eq!(json["message"], "pogchamp");
    assert_eq!(json["channel"], "cooler_user");

    let anonymous = json_of(
        &variant(
            "channel.cheer.v1.cheer.1.json",
            json!({"is_anonymous": true, "user_id": null, "user_login": null, "user_name": null}),
        ),
        &ctx(),
    );
    assert_eq!(anonymous["anonymous"], true);
    assert!(anonymous.get("user").is_none());
}

#[test]
fn bits_use_cheer_loses_to_channel_cheer_and_power_ups_publish() {
    let bits = payload("channel.bits.use.v1.use.1.json");
    assert_eq!(normalize(&bits, &ctx()).unwrap(), None);

    let fallback = json_of(&bits, &ctx_without("channel.cheer"));
    assert_eq!(fallback["type"], "cheer");
    assert_eq!(fallback["amount"], 2);
    assert_eq!(fallback["message"], "cheer1 hi cheer1");

    let power_up = one(
        &variant(
            "channel.bits.use.v1.use.1.json",
            json!({"type": "power_up", "bits": 50, "message": null,
                   "power_up": {"type": "celebration", "emote": null, "message_effect_id": null}}),
        ),
        &ctx(),
    );
    assert_eq!(power_up.topic_suffix(), "support/powerups");
    let json = power_up.to_json();
    assert_eq!(json["type"], "powerup");
    assert_eq!(json["power_up"], "celebration");
    assert_eq!(json["amount"], 50);
}

#[test]
fn subs_and_resubs() {
    let sub = json_of(&payload("channel.subscribe.v1.subscribe.1.json"), &ctx());
    assert_eq!(
        (&sub["type"], &sub["tier"], &sub["months"], &sub["is_gift"]),
        (&json!("sub"), &json!(1), &json!(1), &json!(false))
    );

    let resub = one(
        &payload("channel.subscription.message.v1.message.1.json"),
        &ctx(),
    );
    assert_eq!(resub.topic_suffix(), "support/subs");
    let resub = resub.to_json();
    assert_eq!(resub["type"], "resub");
    assert_eq!(resub["tier"], 1);
    assert_eq!(resub["months"], 15);
    assert_eq!(resub["streak_months"], 1);
    assert_eq!(resub["message"], "Love the stream! FevziGG");

    let prime = json_of(
        &variant(
            "channel.subscribe.v1.subscribe.1.json",
            json!({"tier": "Prime"}),
        ),
        &ctx(),
    );
    assert_eq!(prime["tier"], "prime");
}

#[test]
fn gifts() {
    let gift = one(&payload("channel.subscription.gift.v1.gift.1.json"), &ctx());
    assert_eq!(gift.topic_suffix(), "support/gifts");
    let gift = gift.to_json();
    assert_eq!(gift["count"], 2);
    assert_eq!(gift["anonymous"], false);
    assert_eq!(gift["user"], "cool_user");
    assert_eq!(gift["cumulative_total"], 284);
    assert_eq!(gift["recipients"], json!([]));

    let anonymous = json_of(
        &variant(
            "channel.subscription.gift.v1.gift.1.json",
            json!({"is_anonymous": true}),
        ),
        &ctx(),
    );
    assert_eq!(anonymous["anonymous"], true);
    assert!(anonymous.get("user").is_none());
}

#[test]
fn raid_direction() {
    let raid = payload("channel.raid.v1.raid.1.json");
    let incoming = one(&raid, &ctx());
    assert_eq!(incoming.topic_suffix(), "community/raids");
    let incoming = incoming.to_json();
    assert_eq!(incoming["direction"], "incoming");
    assert_eq!(incoming["user"], "cool_user");
    assert_eq!(incoming["viewers"], 9001);
    assert_eq!(incoming["channel"], "cooler_user");

    let outgoing = json_of(&raid, &Context::new("1234", "cool_user"));
    assert_eq!(outgoing["direction"], "outgoing");
    assert_eq!(outgoing["user"], "cooler_user");
    assert_eq!(outgoing["channel"], "cool_user");
}

#[test]
fn ban_timeout_unban() {
    let timeout = one(&payload("channel.ban.v1.ban.1.json"), &ctx());
    assert_eq!(timeout.topic_suffix(), "chat/moderation");
    let timeout = timeout.to_json();
    assert_eq!(timeout["action"], "timeout");
    assert_eq!(timeout["duration_seconds"], 60);
    assert_eq!(timeout["user"], "cool_user");
    assert_eq!(timeout["moderator"], "mod_user");
    assert_eq!(timeout["reason"], "Offensive language");

    let ban = json_of(
        &variant(
            "channel.ban.v1.ban.1.json",
            json!({"ends_at": null, "is_permanent": true}),
        ),
        &ctx(),
    );
    assert_eq!(ban["action"], "ban");
    assert!(ban.get("duration_seconds").is_none());

    let unban = json_of(&payload("channel.unban.v1.unban.1.json"), &ctx());
    assert_eq!(unban["action"], "unban");

    let delete = json_of(
        &payload("channel.chat.message_delete.v1.message_delete.1.json"),
        &ctx(),
    );
    assert_eq!(delete["action"], "delete");
    assert_eq!(delete["message_id"], "ab24e0b0-2260-4bac-94e4-05eedd4ecd0e");
    assert_eq!(delete["user"], "uncool_viewer");
}

#[test]
fn polls_predictions_hype_trains() {
    let poll = one(&payload("channel.poll.end.v1.end.1.json"), &ctx());
    assert_eq!(poll.topic_suffix(), "interactive/polls");
    let poll = poll.to_json();
    assert_eq!(poll["phase"], "end");
    assert_eq!(poll["status"], "completed");
    let votes: Vec<_> = poll["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["title"].as_str().unwrap(), c["votes"].as_u64().unwrap()))
        .collect();
    assert_eq!(votes, [("Blue", 120), ("Yellow", 140), ("Green", 80)]);

    let lock = json_of(&payload("channel.prediction.lock.v1.lock.1.json"), &ctx());
    assert_eq!(lock["phase"], "lock");
    assert_eq!(lock["outcomes"][0]["points"], 15000);
    let end = json_of(&payload("channel.prediction.end.v1.end.1.json"), &ctx());
    assert_eq!(end["winning_outcome_id"], "12345");

    for (file, phase, level) in [
        ("channel.hype_train.begin.v1.begin.1.json", "begin", 2),
        (
            "channel.hype_train.progress.v1.progress.1.json",
            "progress",
            2,
        ),
        ("channel.hype_train.end.v1.end.1.json", "end", 2),
        ("channel.hype_train.begin.v2.begin.2.json", "begin", 1),
        (
            "channel.hype_train.progress.v2.progress.2.json",
            "progress",
            1,
        ),
        ("channel.hype_train.end.v2.end.2.json", "end", 1),
    ] {
        let train = one(&payload(file), &ctx());
        assert_eq!(train.topic_suffix(), "support/hypetrain", "{file}");
        let train = train.to_json();
        assert_eq!(train["phase"], phase, "{file}");
        assert_eq!(train["level"], level, "{file}");
    }
}

#[test]
fn charity_amounts_are_money() {
    for file in [
        "channel.charity_campaign.donate.v1.donate.1.json",
        "channel.charity_campaign.donate.v1.donate.2.json",
    ] {
        let json = json_of(&payload(file), &ctx());
        assert_eq!(json["amount"], json!(100.0), "{file}");
        assert_eq!(json["currency"], "USD");
        assert_eq!(json["channel"], "sunnysideup");
    }
}

#[test]
fn chat_messages() {
    let chat = one(&payload("channel.chat.message.v1.message.1.json"), &ctx());
    assert_eq!(chat.topic_suffix(), "chat/messages");
    let chat = chat.to_json();
    assert_eq!(chat["user"], "viewer32");
    assert_eq!(chat["message"], "Hi chat");
    assert_eq!(chat["color"], "#00FF7F");
    assert_eq!(chat["is_moderator"], true);
    assert_eq!(chat["is_subscriber"], true);
    assert_eq!(chat["badges"]["subscriber"], "12");

    let text = "héllo Kappa cheer5 🙂 Kappa";
    let rich = json_of(
        &variant(
            "channel.chat.message.v1.message.1.json",
            json!({
                "message": {"text": text, "fragments": [
                    {"type": "text", "text": "héllo "},
                    {"type": "emote", "text": "Kappa", "emote": {"id": "25"}},
                    {"type": "text", "text": " "},
                    {"type": "cheermote", "text": "cheer5", "cheermote": {"prefix": "cheer", "bits": 5}},
                    {"type": "text", "text": " 🙂 "},
                    {"type": "emote", "text": "Kappa", "emote": {"id": "25"}},
                ]},
                "cheer": {"bits": 5},
                "reply": {"parent_message_id": "parent-1", "parent_user_login": "someone"},
                "color": "",
            }),
        ),
        &ctx(),
    );
    assert_eq!(
        rich["emotes"],
        json!([
            {"id": "25", "name": "Kappa", "start": 6, "end": 10},
            {"id": "25", "name": "Kappa", "start": 21, "end": 25},
        ])
    );
    let chars: Vec<char> = text.chars().collect();
    assert_eq!(chars[21..=25].iter().collect::<String>(), "Kappa");
    assert_eq!(rich["bits"], 5);
    assert_eq!(rich["reply_to"], "parent-1");
    assert!(rich.get("color").is_none());
}

#[test]
fn chat_notifications_follow_the_duplicate_rule() {
    let resub = payload("channel.chat.notification.v1.notification.3.json");
    assert_eq!(normalize(&resub, &ctx()).unwrap(), None);
    let fallback = json_of(&resub, &ctx_without("channel.subscription.message"));
    assert_eq!(fallback["type"], "resub");
    assert_eq!(fallback["months"], 58);
    assert_eq!(fallback["message"], "GIB MIR DEN POKAL");

    let gifted_resub = json_of(
        &payload("channel.chat.notification.v1.notification.5.json"),
        &ctx_without("channel.subscription.message"),
    );
    assert_eq!(gifted_resub["is_gift"], true);

    let community = payload("channel.chat.notification.v1.notification.4.json");
    assert_eq!(normalize(&community, &ctx()).unwrap(), None);
    let gift = json_of(&community, &ctx_without("channel.subscription.gift"));
    assert_eq!(gift["type"], "gift");
    assert_eq!(gift["count"], 1);
    assert_eq!(gift["anonymous"], true);
    assert!(gift.get("user").is_none());

    let sub = variant(
        "channel.chat.notification.v1.notification.11.json",
        json!({"notice_type": "sub", "sub": {"sub_tier": "2000", "is_prime": false, "duration_months": 1}}),
    );
    assert_eq!(normalize(&sub, &ctx()).unwrap(), None);
    let sub = json_of(&sub, &ctx_without("channel.subscribe"));
    assert_eq!((&sub["type"], &sub["tier"]), (&json!("sub"), &json!(2)));

    let raid = variant(
        "channel.chat.notification.v1.notification.11.json",
        json!({"notice_type": "raid", "raid": {"user_id": "9", "user_login": "raider", "user_name": "Raider", "viewer_count": 12}}),
    );
    assert_eq!(normalize(&raid, &ctx()).unwrap(), None);
    let raid = json_of(&raid, &ctx_without("channel.raid"));
    assert_eq!(raid["direction"], "incoming");
    assert_eq!(raid["user"], "raider");
    assert_eq!(raid["viewers"], 12);

    for (n, notice_type) in [
        (6, "pay_it_forward"),
        (10, "shared_chat_resub"),
        (11, "unknown"),
        (12, "modiversary"),
    ] {
        let file = format!("channel.chat.notification.v1.notification.{n}.json");
        let notice = one(&payload(&file), &ctx());
        assert_eq!(notice.topic_suffix(), "chat/notices", "{file}");
        assert_eq!(notice.to_json()["notice_type"], notice_type);
    }
    let announcement = json_of(
        &variant(
            "channel.chat.notification.v1.notification.11.json",
            json!({"notice_type": "announcement", "system_message": "",
                   "message": {"text": "Stream starts soon", "fragments": []},
                   "announcement": {"color": "PRIMARY"}}),
        ),
        &ctx(),
    );
    assert_eq!(announcement["type"], "notice");
    assert_eq!(announcement["message"], "Stream starts soon");
}

#[test]
fn unknown_types_go_to_raw_and_raw_is_optional() {
    for (file, topic) in [
        (
            "channel.suspicious_user.update.v1.update.1.json",
            "raw/twitch/channel.suspicious_user.update",
        ),
        ("user.update.v1.update.1.json", "raw/twitch/user.update"),
    ] {
        let n = payload(file);
        let event = one(&n, &ctx());
        assert_eq!(event.topic_suffix(), topic);
        assert_eq!(event.to_json()["data"], n.event);
        assert!(event.raw.is_none());
    }

    let n = payload("channel.cheer.v1.cheer.1.json");
    let with_raw = one(
        &n,
        &Context {
            include_raw: true,
            ..ctx()
        },
    );
    assert_eq!(with_raw.raw.as_ref(), Some(&n.event));
}

#[test]
fn malformed_known_types_are_errors_with_a_raw_fallback() {
    let n = variant("channel.cheer.v1.cheer.1.json", json!({"bits": null}));
    let err = normalize(&n, &ctx()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "channel.cheer event: field `bits` is missing or invalid"
    );
    assert_eq!(
        raw_event(&n, &ctx()).topic_suffix(),
        "raw/twitch/channel.cheer"
    );

    // Wrong JSON types everywhere: errors or defaults, never a panic.
    for file in [
        "channel.chat.message.v1.message.1.json",
        "channel.poll.end.v1.end.1.json",
        "channel.ban.v1.ban.1.json",
        "channel.chat.notification.v1.notification.1.json",
        "channel.channel_points_automatic_reward_redemption.add.v1.add.1.json",
    ] {
        let mut value: Value = serde_json::from_str(&read(file)).unwrap();
        let keys: Vec<String> = value["event"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        for key in keys {
            value["event"][&key] = json!([1, {"x": null}]);
        }
        let _ = normalize(&from_value(file, value), &ctx());
    }
}

#[test]
fn ids_are_stable_and_times_come_from_the_event() {
    let n = payload("channel.channel_points_custom_reward_redemption.add.v1.add.1.json");
    let a = one(&n, &ctx());
    let b = one(&n, &ctx());
    assert_eq!(a, b);
    assert_eq!(
        a.id,
        "twitch:vector-channel.channel_points_custom_reward_redemption.add.v1.add.1"
    );
    assert_eq!(a.to_json()["time"], "2020-07-15T17:16:03.171Z");

    let cheer = one(&payload("channel.cheer.v1.cheer.1.json"), &ctx());
    assert_eq!(cheer.time, fixed_time());
}

fn trigger(kind: &str, user: Option<&str>, amount: Option<f64>, message: Option<&str>) -> Event {
    let req = TriggerRequest {
        kind: kind.into(),
        user: user.map(String::from),
        amount,
        message: message.map(String::from),
        ..TriggerRequest::default()
    };
    let n = trigger_notification(&req, "mychannel", "4242").expect(kind);
    let event = normalize(&n, &Context::new("4242", "mychannel"))
        .unwrap()
        .expect(kind);
    assert_eq!(event.channel, "mychannel", "{kind}");
    assert_eq!(event.id, format!("twitch:{}", n.message_id));
    event
}

#[test]
fn every_trigger_kind_round_trips() {
    let expected = [
        ("cheer", "support/cheers", Some(("amount", json!(250)))),
        ("sub", "support/subs", None),
        ("resub", "support/subs", Some(("months", json!(250)))),
        ("gift", "support/gifts", Some(("count", json!(250)))),
        ("follow", "community/follows", None),
        ("raid", "community/raids", Some(("viewers", json!(250)))),
        (
            "redemption",
            "community/redemptions",
            Some(("cost", json!(250))),
        ),
        ("chat", "chat/messages", Some(("bits", json!(250)))),
        ("online", "channel/online", None),
        ("offline", "channel/offline", None),
        (
            "hypetrain",
            "support/hypetrain",
            Some(("total", json!(250))),
        ),
        ("poll", "interactive/polls", None),
        ("prediction", "interactive/predictions", None),
        (
            "goal",
            "channel/goals",
            Some(("current_amount", json!(250))),
        ),
        (
            "charity_campaign",
            "channel/charity_campaign",
            Some(("current_amount", json!(250.0))),
        ),
        ("sub_end", "community/sub_ends", None),
        ("vip", "chat/moderation", Some(("action", json!("vip")))),
        ("unvip", "chat/moderation", Some(("action", json!("unvip")))),
        ("mod", "chat/moderation", Some(("action", json!("mod")))),
        ("unmod", "chat/moderation", Some(("action", json!("unmod")))),
        ("warn", "chat/moderation", Some(("action", json!("warn")))),
        (
            "unban_request",
            "chat/moderation",
            Some(("action", json!("unban_request"))),
        ),
    ];
    // Every trigger kind but the tip (a StreamElements/Streamlabs event) is an EventSub one.
    assert_eq!(
        expected.iter().map(|e| e.0).collect::<Vec<_>>(),
        ongwatch::sources::trigger::KINDS
            .iter()
            .copied()
            .filter(|kind| *kind != "tip")
            .collect::<Vec<_>>()
    );
    let user_kinds = BTreeSet::from([
        "cheer",
        "sub",
        "resub",
        "gift",
        "follow",
        "raid",
        "redemption",
        "chat",
        "sub_end",
        "vip",
        "unvip",
        "mod",
        "unmod",
        "warn",
        "unban_request",
    ]);
    for (kind, topic, amount) in expected {
        let event = trigger(kind, Some("Some_Viewer"), Some(250.0), Some("hello there"));
        assert_eq!(event.topic_suffix(), topic, "{kind}");
        let json = event.to_json();
        if user_kinds.contains(kind) {
            assert_eq!(json["user"], "some_viewer", "{kind}");
            assert_eq!(json["display_name"], "Some_Viewer", "{kind}");
        }
        if let Some((field, value)) = amount {
            assert_eq!(json[field], value, "{kind}");
        }
        let text_field = match kind {
            "cheer" | "resub" | "chat" | "redemption" => Some("message"),
            "poll" | "prediction" => Some("title"),
            "goal" => Some("description"),
            "charity_campaign" => Some("charity_name"),
            "warn" | "unban_request" => Some("reason"),
            _ => None,
        };
        if let Some(field) = text_field {
            assert_eq!(json[field], "hello there", "{kind}");
        }

        // Defaults when the request names nothing.
        let bare = trigger(kind, None, None, None).to_json();
        if user_kinds.contains(kind) {
            assert_eq!(bare["user"], "ongwatch_tester", "{kind}");
        }
    }

    let tip = TriggerRequest {
        kind: "tip".into(),
        ..TriggerRequest::default()
    };
    assert!(trigger_notification(&tip, "mychannel", "4242").is_none());
}

#[test]
fn trigger_phases_and_fields() {
    for (kind, phase) in [
        ("hypetrain", "progress"),
        ("hypetrain", "end"),
        ("poll", "progress"),
        ("poll", "end"),
        ("prediction", "lock"),
        ("prediction", "end"),
        ("goal", "progress"),
        ("goal", "end"),
        ("charity_campaign", "begin"),
        ("charity_campaign", "end"),
    ] {
        let req = TriggerRequest {
            kind: kind.into(),
            fields: [("phase".to_owned(), phase.to_owned())].into(),
            ..TriggerRequest::default()
        };
        let n = trigger_notification(&req, "mychannel", "4242").unwrap();
        let json = json_of(&n, &Context::new("4242", "mychannel"));
        assert_eq!(json["phase"], phase, "{kind}");
    }

    let req = TriggerRequest {
        kind: "hypetrain".into(),
        fields: [("level".to_owned(), "4".to_owned())].into(),
        ..TriggerRequest::default()
    };
    let n = trigger_notification(&req, "mychannel", "4242").unwrap();
    assert_eq!(json_of(&n, &ctx())["level"], 4);

    let req = TriggerRequest {
        kind: "sub".into(),
        fields: [
            ("tier".to_owned(), "3000".to_owned()),
            ("is_gift".to_owned(), "true".to_owned()),
        ]
        .into(),
        ..TriggerRequest::default()
    };
    let n = trigger_notification(&req, "mychannel", "4242").unwrap();
    let sub = json_of(&n, &ctx());
    assert_eq!((&sub["tier"], &sub["is_gift"]), (&json!(3), &json!(true)));

    // An unban request is resolved with `--field status=approved|denied`.
    for (status, action) in [
        ("approved", "approve_unban_request"),
        ("denied", "deny_unban_request"),
    ] {
        let req = TriggerRequest {
            kind: "unban_request".into(),
            fields: [("status".to_owned(), status.to_owned())].into(),
            ..TriggerRequest::default()
        };
        let n = trigger_notification(&req, "mychannel", "4242").unwrap();
        assert_eq!(n.subscription.kind, "channel.unban_request.resolve");
        let json = json_of(&n, &Context::new("4242", "mychannel"));
        assert_eq!(json["action"], action);
        assert_eq!(json["moderator"], "mychannel");
    }
}

/// The streamer-facing types beyond the contract's first list, from Twitch's reference
/// examples (tests/data/eventsub/README.md names each file's source).
#[test]
fn goals_charity_campaigns_sub_ends_roles_warnings_and_unban_requests() {
    let goal = json_of(&payload("channel.goal.begin.v1.begin.1.json"), &ctx());
    assert_eq!(goal["type"], "goal");
    assert_eq!(goal["phase"], "begin");
    assert_eq!(goal["goal_type"], "subscription");
    assert_eq!(goal["description"], "Let's double our subscribers!");
    assert_eq!(
        (&goal["current_amount"], &goal["target_amount"]),
        (&json!(22), &json!(44))
    );
    assert_eq!(goal["channel"], "twitchdev");
    assert_eq!(goal["time"], "2021-07-15T17:16:03.171Z");
    assert!(goal.get("achieved").is_none());
    let progress = one(&payload("channel.goal.progress.v1.progress.1.json"), &ctx());
    assert_eq!(progress.topic_suffix(), "channel/goals");
    let end = json_of(&payload("channel.goal.end.v1.end.1.json"), &ctx());
    assert_eq!(
        (&end["phase"], &end["achieved"]),
        (&json!("end"), &json!(false))
    );

    for (file, phase, raised) in [
        (
            "channel.charity_campaign.start.v1.start.1.json",
            "begin",
            0.0,
        ),
        (
            "channel.charity_campaign.progress.v1.progress.1.json",
            "progress",
            2600.0,
        ),
        (
            "channel.charity_campaign.stop.v1.stop.1.json",
            "end",
            14500.0,
        ),
    ] {
        let event = one(&payload(file), &ctx());
        assert_eq!(event.topic_suffix(), "channel/charity_campaign", "{file}");
        let json = event.to_json();
        assert_eq!(json["type"], "charity_campaign");
        assert_eq!(json["phase"], phase, "{file}");
        assert_eq!(json["current_amount"], raised, "{file}");
        assert_eq!(json["target_amount"], 15000.0, "{file}");
        assert_eq!(json["currency"], "USD");
        assert_eq!(json["charity_name"], "Example name");
        assert_eq!(json["channel"], "sunnysideup");
    }

    let ended = one(&payload("channel.subscription.end.v1.end.1.json"), &ctx());
    assert_eq!(ended.topic_suffix(), "community/sub_ends");
    let ended = ended.to_json();
    assert_eq!(
        (&ended["type"], &ended["user"]),
        (&json!("sub_end"), &json!("cool_user"))
    );
    assert_eq!(
        (&ended["tier"], &ended["is_gift"]),
        (&json!(1), &json!(false))
    );
    assert_eq!(ended["platform"], "twitch");

    for (file, action, user) in [
        ("channel.vip.add.v1.add.1.json", "vip", "mod_user"),
        ("channel.vip.remove.v1.remove.1.json", "unvip", "mod_user"),
        ("channel.moderator.add.v1.add.1.json", "mod", "mod_user"),
        (
            "channel.moderator.remove.v1.remove.1.json",
            "unmod",
            "not_mod_user",
        ),
    ] {
        let event = one(&payload(file), &ctx());
        assert_eq!(event.topic_suffix(), "chat/moderation", "{file}");
        let json = event.to_json();
        assert_eq!(
            (&json["action"], &json["user"]),
            (&json!(action), &json!(user)),
            "{file}"
        );
        assert_eq!(json["channel"], "cooler_user");
    }

    let warn = json_of(&payload("channel.warning.send.v1.send.1.json"), &ctx());
    assert_eq!(warn["action"], "warn");
    assert_eq!(
        (&warn["user"], &warn["moderator"]),
        (&json!("twitchdev"), &json!("quotrok"))
    );
    assert_eq!(warn["reason"], "cut it out");

    let request = json_of(
        &payload("channel.unban_request.create.v1.create.1.json"),
        &ctx(),
    );
    assert_eq!(request["action"], "unban_request");
    assert_eq!(
        (&request["user"], &request["reason"]),
        (&json!("not_cool_user"), &json!("unban me"))
    );
    assert_eq!(request["time"], "2023-11-16T10:11:12.634Z");
    let denied = json_of(
        &payload("channel.unban_request.resolve.v1.resolve.1.json"),
        &ctx(),
    );
    assert_eq!(denied["action"], "deny_unban_request");
    assert_eq!(
        (&denied["moderator"], &denied["reason"]),
        (&json!("cool_user"), &json!("no"))
    );
    // A request the user withdrew has no moderator decision: it stays raw.
    let canceled = one(
        &variant(
            "channel.unban_request.resolve.v1.resolve.1.json",
            json!({"status": "canceled"}),
        ),
        &ctx(),
    );
    assert_eq!(
        canceled.topic_suffix(),
        "raw/twitch/channel.unban_request.resolve"
    );

    // Left raw on purpose (docs/TWITCH.md): suspicious users, warning acknowledgements and
    // channel.moderate.
    for file in [
        "channel.suspicious_user.message.v1.message.1.json",
        "channel.suspicious_user.update.v1.update.1.json",
        "channel.warning.acknowledge.v1.acknowledge.1.json",
        "channel.moderate.v2.moderate.3.json",
    ] {
        let n = payload(file);
        let event = one(&n, &ctx());
        assert_eq!(
            event.topic_suffix(),
            format!("raw/twitch/{}", n.subscription.kind),
            "{file}"
        );
    }
}

#[test]
fn shared_chat_sessions_and_partner_channel_events() {
    // Our channel is the host, 1971641 "streamer", in these vectors.
    let host = Context::new("1971641", "streamer");
    let begin = json_of(&payload("channel.shared_chat.begin.v1.begin.1.json"), &host);
    assert_eq!(begin["type"], "shared_chat");
    assert_eq!(begin["phase"], "begin");
    assert_eq!(begin["session_id"], "2b64a92a-dbb8-424e-b1c3-304423ba1b6f");
    assert_eq!(
        begin["participants"],
        json!([{"channel":"streamer","channel_id":"1971641"},{"channel":"streamer33","channel_id":"112233"}])
    );
    assert_eq!(begin["host_channel"], "streamer");
    assert!(begin.get("platform").is_none(), "not a support event");
    let n = payload("channel.shared_chat.update.v1.update.1.json");
    assert_eq!(one(&n, &host).topic_suffix(), "channel/shared_chat");
    let end = json_of(&payload("channel.shared_chat.end.v1.end.1.json"), &host);
    assert_eq!(
        (
            end["phase"].as_str(),
            end["participants"].as_array().map(Vec::len)
        ),
        (Some("end"), Some(0))
    );

    // A chat message sent in the partner channel (source_broadcaster_user_* set) carries the
    // partner; one of our own (source fields null) carries neither.
    let partner = json_of(&payload("channel.chat.message.v1.message.2.json"), &ctx());
    assert_eq!(
        (
            partner["source_channel"].as_str(),
            partner["source_channel_id"].as_str()
        ),
        (Some("streamer33"), Some("112233"))
    );
    let own = json_of(&payload("channel.chat.message.v1.message.1.json"), &ctx());
    assert!(own.get("source_channel").is_none() && own.get("source_channel_id").is_none());
    // A source equal to the broadcaster is our own channel all the same.
    let echoed = variant(
        "channel.chat.message.v1.message.2.json",
        json!({"source_broadcaster_user_id": "1971641", "source_broadcaster_user_login": "streamer", "broadcaster_user_id": "1971641"}),
    );
    assert!(!one(&echoed, &host).is_partner());
}

#[test]
fn a_shared_hype_train_keeps_its_participants() {
    let train = json_of(
        &variant(
            "channel.hype_train.progress.v2.progress.2.json",
            json!({"is_shared_train": true, "shared_train_participants": [
                {"broadcaster_user_id": "1337", "broadcaster_user_login": "cool_user", "broadcaster_user_name": "Cool_User"},
                {"broadcaster_user_id": "112233", "broadcaster_user_login": "streamer33", "broadcaster_user_name": "streamer33"}
            ]}),
        ),
        &ctx(),
    );
    assert_eq!(train["is_shared_train"], true);
    assert_eq!(
        train["shared_train_participants"],
        json!([{"channel":"cool_user","channel_id":"1337"},{"channel":"streamer33","channel_id":"112233"}])
    );
    // The upstream vector: not shared (`shared_train_participants: null`), so neither field.
    let plain = json_of(
        &payload("channel.hype_train.progress.v2.progress.2.json"),
        &ctx(),
    );
    assert!(
        plain.get("is_shared_train").is_none() && plain.get("shared_train_participants").is_none()
    );
}
