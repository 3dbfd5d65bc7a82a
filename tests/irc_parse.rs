//! The Twitch IRC parser, its typed layer and the normalizer, against real lines
//! (tests/data/irc, from twitch-irc-rs) and hostile ones.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use ongwatch::event::{Event, EventKind, ModerationAction, Tier};
use ongwatch::sources::twitch::irc::{
    IrcError, IrcMessage, TwitchMessage, UserNoticeEvent, normalize, normalize_line, unescape,
};
use serde_json::Value;

const VECTORS: &str = include_str!("data/irc/twitch-irc-rs.jsonl");

struct Vector {
    raw: String,
    invalid: bool,
    irc: Value,
}

static VECTOR_RECORDS: LazyLock<Vec<Vector>> = LazyLock::new(|| {
    VECTORS
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            Vector {
                raw: record["raw"].as_str().unwrap().to_owned(),
                invalid: record["invalid_line"].as_bool().unwrap(),
                irc: record["irc"].clone(),
            }
        })
        .collect()
});

fn vectors() -> &'static [Vector] {
    &VECTOR_RECORDS
}

fn valid_lines() -> impl Iterator<Item = &'static str> {
    vectors()
        .iter()
        .filter(|v| !v.invalid)
        .map(|v| v.raw.as_str())
}

/// The first vector line containing all of `needles`.
fn line_with(needles: &[&str]) -> &'static str {
    valid_lines()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .unwrap_or_else(|| panic!("no vector line has {needles:?}"))
}

fn typed(line: &str) -> TwitchMessage<'_> {
    TwitchMessage::parse(line).unwrap().1
}

fn events(line: &str) -> Vec<Event> {
    normalize_line(line, false).unwrap()
}

fn only(line: &str) -> Event {
    let mut all = events(line);
    assert_eq!(all.len(), 1, "{line}");
    all.remove(0)
}

#[test]
fn the_vector_file_has_every_line_kind() {
    let all = vectors();
    assert_eq!(all.len(), 77);
    assert_eq!(all.iter().filter(|v| v.invalid).count(), 13);
}

#[test]
fn every_vector_line_parses_or_errors_exactly_when_invalid() {
    for v in vectors() {
        let result = IrcMessage::parse(&v.raw);
        assert_eq!(result.is_err(), v.invalid, "{:?}: {result:?}", v.raw);
    }
}

#[test]
fn the_generic_split_matches_the_vectors() {
    for v in vectors().iter().filter(|v| !v.invalid) {
        let msg = IrcMessage::parse(&v.raw).unwrap();
        let tags: BTreeMap<String, String> = msg
            .tags()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.unescape().into_owned()))
            .collect();
        let expected_tags: BTreeMap<String, String> = match &v.irc["tags"] {
            Value::Null => BTreeMap::new(),
            other => serde_json::from_value(other.clone()).unwrap(),
        };
        assert_eq!(tags, expected_tags, "{}", v.raw);
        assert_eq!(
            msg.prefix().map(|p| p.raw),
            v.irc["prefix"].as_str(),
            "{}",
            v.raw
        );
        assert_eq!(msg.command(), v.irc["command"], "{}", v.raw);
        let params: Vec<&str> = msg.params().collect();
        let expected: Vec<&str> = v.irc["params"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(params, expected, "{}", v.raw);
        for (i, p) in expected.iter().enumerate() {
            assert_eq!(msg.param(i), Some(*p));
        }
        assert_eq!(msg.param(expected.len()), None);
    }
}

#[test]
fn every_valid_vector_line_types_and_normalizes() {
    for line in valid_lines() {
        TwitchMessage::parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let events = normalize_line(line, true).unwrap_or_else(|e| panic!("{line}: {e}"));
        for event in events {
            // CONTRACT §4: every support and community event says where it happened; none of
            // these lines is from a shared chat session.
            let expected = event.kind.kind().carries_platform().then_some("twitch");
            assert_eq!(event.platform.as_deref(), expected, "{line}");
            assert!(!event.is_partner(), "{line}");
        }
    }
}

#[test]
fn prefixes_split_into_nick_user_host() {
    let line = line_with(&["JOIN #pajlada"]);
    let prefix = IrcMessage::parse(line).unwrap().prefix().unwrap();
    assert_eq!(prefix.nick, "randers811");
    assert_eq!(prefix.user, Some("randers811"));
    assert_eq!(prefix.host, Some("randers811.tmi.twitch.tv"));
    let server = IrcMessage::parse(":tmi.twitch.tv PING").unwrap();
    let prefix = server.prefix().unwrap();
    assert_eq!(
        (prefix.nick, prefix.user, prefix.host),
        ("tmi.twitch.tv", None, None)
    );
}

#[test]
fn tags_unescape_only_when_needed() {
    assert!(matches!(
        unescape("plain"),
        std::borrow::Cow::Borrowed("plain")
    ));
    assert_eq!(unescape(r"a\sb\:c\\d\re\nf"), "a b;c\\d\re\nf");
    // Unknown escapes keep the character; a lone trailing backslash disappears.
    assert_eq!(unescape(r"bla\bla\"), "blabla");
    let line = line_with(&["Riot\\sGames"]);
    let msg = IrcMessage::parse(line).unwrap();
    assert_eq!(msg.tag("display-name").unwrap().raw(), r"Riot\sGames");
    assert_eq!(msg.tag("display-name").unwrap().unescape(), "Riot Games");
    assert_eq!(msg.tag("missing"), None);
}

/// The typed layer must agree with the raw tags on every vector line.
#[test]
fn typed_fields_match_the_tags_on_every_line() {
    let num = |msg: &IrcMessage, key: &str| -> Option<u64> {
        msg.tag(key).and_then(|v| v.raw().parse().ok())
    };
    let mut seen = BTreeMap::<&str, usize>::new();
    for line in valid_lines() {
        let (msg, typed) = TwitchMessage::parse(line).unwrap();
        let tag = |key: &str| msg.tag(key).map(|v| v.raw()).filter(|v| !v.is_empty());
        match typed {
            TwitchMessage::Privmsg(p) => {
                *seen.entry("privmsg").or_default() += 1;
                assert_eq!(Some(p.channel), msg.channel());
                assert_eq!(p.bits, num(&msg, "bits"));
                assert_eq!(p.sender.user_id, tag("user-id"));
                assert_eq!(p.message_id, tag("id"));
                assert_eq!(p.sender.color, tag("color"));
                assert_eq!(p.sent_at_ms.map(|t| t as u64), num(&msg, "tmi-sent-ts"));
                assert_eq!(
                    p.reply.map(|r| r.parent_message_id),
                    tag("reply-parent-msg-id")
                );
            }
            TwitchMessage::UserNotice(n) => {
                *seen.entry("usernotice").or_default() += 1;
                assert_eq!(Some(n.kind), tag("msg-id"));
                let tier = tag("msg-param-sub-plan").and_then(Tier::from_twitch);
                match n.event {
                    UserNoticeEvent::Sub(s) => {
                        *seen.entry("sub").or_default() += 1;
                        assert_eq!(s.is_resub, n.kind == "resub");
                        assert_eq!(s.tier, tier);
                        assert!(s.tier.is_some(), "{line}");
                        assert_eq!(
                            s.cumulative_months.map(u64::from),
                            num(&msg, "msg-param-cumulative-months")
                        );
                        let shared = tag("msg-param-should-share-streak") == Some("1");
                        assert_eq!(
                            s.streak_months.map(u64::from),
                            num(&msg, "msg-param-streak-months").filter(|_| shared)
                        );
                    }
                    UserNoticeEvent::SubGift(g) => {
                        *seen.entry("subgift").or_default() += 1;
                        assert_eq!(g.tier, tier);
                        assert_eq!(g.recipient_login, tag("msg-param-recipient-user-name"));
                        assert_eq!(g.recipient_id, tag("msg-param-recipient-id"));
                        assert_eq!(
                            g.anonymous,
                            n.kind == "anonsubgift" || tag("login") == Some("ananonymousgifter")
                        );
                    }
                    UserNoticeEvent::MysteryGift(g) => {
                        *seen.entry("mysterygift").or_default() += 1;
                        assert_eq!(g.tier, tier);
                        assert_eq!(
                            Some(u64::from(g.count)),
                            num(&msg, "msg-param-mass-gift-count")
                        );
                        assert_eq!(
                            g.sender_total.map(u64::from),
                            num(&msg, "msg-param-sender-count").filter(|n| *n > 0)
                        );
                    }
                    UserNoticeEvent::Raid(r) => {
                        *seen.entry("raid").or_default() += 1;
                        assert_eq!(Some(r.login), tag("msg-param-login"));
                        assert_eq!(Some(r.viewers), num(&msg, "msg-param-viewerCount"));
                    }
                    UserNoticeEvent::Announcement { color } => {
                        *seen.entry("announcement").or_default() += 1;
                        assert_eq!(color, tag("msg-param-color"));
                    }
                    UserNoticeEvent::GiftPaidUpgrade { gifter_login, .. } => {
                        *seen.entry("typed notice").or_default() += 1;
                        assert_eq!(gifter_login, tag("msg-param-sender-login"));
                    }
                    UserNoticeEvent::BitsBadgeTier { threshold } => {
                        *seen.entry("typed notice").or_default() += 1;
                        assert_eq!(threshold, num(&msg, "msg-param-threshold"));
                    }
                    UserNoticeEvent::RewardGift { .. }
                    | UserNoticeEvent::ViewerMilestone { .. }
                    | UserNoticeEvent::SharedChatNotice { .. } => {
                        *seen.entry("typed notice").or_default() += 1;
                    }
                    UserNoticeEvent::Other => {
                        *seen.entry("other notice").or_default() += 1;
                    }
                }
            }
            TwitchMessage::ClearChat(c) => {
                *seen.entry("clearchat").or_default() += 1;
                assert_eq!(c.duration_seconds, num(&msg, "ban-duration"));
                assert_eq!(c.target_user_id, tag("target-user-id"));
                assert_eq!(c.target_login, msg.param(1));
            }
            TwitchMessage::ClearMsg(c) => {
                *seen.entry("clearmsg").or_default() += 1;
                assert_eq!(Some(c.target_message_id), tag("target-msg-id"));
                assert_eq!(c.login, tag("login"));
            }
            _ => {}
        }
    }
    let expected = [
        ("privmsg", 16),
        ("usernotice", 21),
        ("sub", 4),
        ("subgift", 3),
        ("mysterygift", 5),
        ("raid", 1),
        ("announcement", 1),
        ("typed notice", 6),
        ("other notice", 1),
        ("clearchat", 3),
        ("clearmsg", 2),
    ];
    assert_eq!(seen, expected.into_iter().collect());
}

#[test]
fn subs_resubs_and_their_tiers() {
    let (l1, l2, l3) = (
        line_with(&["msg-id=sub;", "fallenseraphhh"]),
        line_with(&["msg-id=resub", "Gutrin"]),
        line_with(&["msg-id=resub", "rene_rs"]),
    );
    let prime = typed_sub(l1);
    assert_eq!(prime.tier, Some(Tier::Prime));
    assert_eq!(prime.cumulative_months, Some(1));
    assert!(!prime.is_resub);

    let resub = typed_sub(l2);
    assert_eq!(
        (resub.tier, resub.cumulative_months, resub.streak_months),
        (Some(Tier::One), Some(2), Some(2))
    );
    let unshared = typed_sub(l3);
    assert_eq!(
        (
            unshared.tier,
            unshared.cumulative_months,
            unshared.streak_months
        ),
        (Some(Tier::Prime), Some(11), None)
    );

    let line = line_with(&["msg-id=resub", "Gutrin"]);
    let event = only(line);
    let EventKind::Resub(sub) = &event.kind else {
        panic!("{event:?}")
    };
    assert_eq!(sub.user.user.as_deref(), Some("gutrin"));
    assert_eq!(sub.user.user_id.as_deref(), Some("21156217"));
    assert_eq!(sub.user.display_name.as_deref(), Some("Gutrin"));
    assert_eq!((sub.months, sub.streak_months), (2, Some(2)));
    assert_eq!(sub.message.as_deref(), Some("xqcL"));
    assert_eq!(event.topic_suffix(), "support/subs");
    assert_eq!(event.channel, "xqcow");
    assert_eq!(event.id, "twitch-irc:e0975c76-054c-4954-8cb0-91b8867ec1ca");
    assert_eq!(event.to_json()["time"], "2020-02-14T20:54:00.019Z");
    assert_eq!(event.to_json()["tier"], 1);

    let event = only(line_with(&["msg-id=sub;", "fallenseraphhh"]));
    assert_eq!(event.to_json()["type"], "sub");
    assert_eq!(event.to_json()["tier"], "prime");
    assert_eq!(event.to_json()["months"], 1);
}

fn typed_sub(line: &str) -> ongwatch::sources::twitch::irc::SubNotice<'_> {
    match typed(line) {
        TwitchMessage::UserNotice(n) => match n.event {
            UserNoticeEvent::Sub(s) => s,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn gift_json(line: &str) -> Value {
    let event = only(line);
    assert_eq!(event.topic_suffix(), "support/gifts", "{line}");
    event.to_json()
}

#[test]
fn gifts_named_anonymous_and_mystery() {
    let named = gift_json(line_with(&["msg-id=subgift", "AdamAtReflectStudios"]));
    assert_eq!(named["user"], "adamatreflectstudios");
    assert_eq!(named["count"], 1);
    assert_eq!(named["recipients"], serde_json::json!(["qatarking24xd"]));
    assert_eq!(named["anonymous"], false);
    assert_eq!(named["tier"], 1);
    // sender-count=0: the gifter keeps the total private.
    assert!(named.get("cumulative_total").is_none());

    for needles in [
        &["msg-id=subgift", "login=ananonymousgifter"][..],
        &["msg-id=anonsubgift"][..],
    ] {
        let anon = gift_json(line_with(needles));
        assert_eq!(anon["anonymous"], true);
        assert!(anon.get("user").is_none(), "{anon}");
        assert_eq!(anon["count"], 1);
    }

    let mystery = gift_json(line_with(&[
        "msg-id=submysterygift",
        "login=adamatreflectstudios",
    ]));
    assert_eq!(mystery["count"], 20);
    assert_eq!(mystery["recipients"], serde_json::json!([]));
    assert_eq!(mystery["cumulative_total"], 100);
    assert_eq!(mystery["user"], "adamatreflectstudios");

    let anon_mystery = gift_json(line_with(&["msg-id=anonsubmysterygift"]));
    assert_eq!(anon_mystery["count"], 15);
    assert_eq!(anon_mystery["tier"], 2);
    assert_eq!(anon_mystery["anonymous"], true);
    assert!(anon_mystery.get("user").is_none());

    let stand_in = gift_json(line_with(&[
        "msg-id=submysterygift",
        "login=ananonymousgifter",
    ]));
    assert_eq!(
        (stand_in["count"].clone(), stand_in["anonymous"].clone()),
        (10.into(), true.into())
    );
}

/// A mystery gift of 3 and the three `subgift` lines naming its recipients: one gift event.
#[test]
fn a_mystery_gift_and_its_recipient_lines_count_once() {
    let mystery = line_with(&["msg-id=submysterygift", "login=adamatreflectstudios"])
        .replace(
            "msg-param-mass-gift-count=20",
            "msg-param-mass-gift-count=3",
        )
        .replacen('@', "@msg-param-community-gift-id=4242;", 1);
    let child = line_with(&["msg-id=subgift", "AdamAtReflectStudios"]);
    let mut lines = vec![mystery];
    for (i, recipient) in ["alice", "bob", "carol"].iter().enumerate() {
        lines.push(
            child
                .replace("qatarking24xd", recipient)
                .replace(
                    "e21409b1-d25d-4a1a-b5cf-ef27d8b7030e",
                    &format!("child-{i}"),
                )
                .replacen('@', "@msg-param-community-gift-id=4242;", 1),
        );
    }
    let all: Vec<Event> = lines.iter().flat_map(|l| events(l)).collect();
    let gifts: Vec<_> = all
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Gift(g) => Some(g),
            _ => None,
        })
        .collect();
    assert_eq!(gifts.len(), 1);
    assert_eq!(gifts[0].count, 3);
    let notices: Vec<_> = all
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Notice(n) => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 3);
    assert!(notices.iter().all(|n| n.notice_type == "subgift"));
    assert!(notices[1].message.contains("gifted a Tier 1 sub to"));
}

#[test]
fn raids_are_incoming_with_viewers() {
    let event = only(line_with(&["msg-id=raid"]));
    assert_eq!(event.topic_suffix(), "community/raids");
    let json = event.to_json();
    assert_eq!(json["user"], "iamelisabete");
    assert_eq!(json["user_id"], "155874595");
    assert_eq!(json["display_name"], "iamelisabete");
    assert_eq!(json["direction"], "incoming");
    assert_eq!(json["viewers"], 430);
}

#[test]
fn bits_make_a_chat_message_and_a_cheer() {
    let line = line_with(&["bits=1;"]);
    let all = events(line);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].topic_suffix(), "chat/messages");
    assert_eq!(all[0].to_json()["bits"], 1);
    let cheer = all[1].to_json();
    assert_eq!(all[1].topic_suffix(), "support/cheers");
    assert_eq!(cheer["provider"], "twitch");
    assert_eq!(cheer["user"], "tetyys");
    assert_eq!(cheer["display_name"], "TETYYS");
    assert_eq!(cheer["amount"], 1);
    assert_eq!(cheer["currency"], "bits");
    assert_eq!(cheer["message"], "trihard1");
    assert_eq!(cheer["channel"], "pajlada");
    assert_eq!(cheer["time"], "2020-07-12T16:32:46.672Z");
    assert_eq!(
        cheer["id"],
        "twitch-irc:d7f03a35-f339-41ca-b4d4-7c0721438570:cheer"
    );
    assert_eq!(all[0].id, "twitch-irc:d7f03a35-f339-41ca-b4d4-7c0721438570");
}

#[test]
fn timeouts_bans_clears_and_deletions() {
    let timeout = only(line_with(&["CLEARCHAT", "ban-duration=1"]));
    let EventKind::Moderation(m) = &timeout.kind else {
        panic!()
    };
    assert_eq!(m.action, ModerationAction::Timeout);
    assert_eq!(m.duration_seconds, Some(1));
    assert_eq!(m.user.user.as_deref(), Some("fabzeef"));
    assert_eq!(m.user.user_id.as_deref(), Some("148973258"));
    assert_eq!(timeout.topic_suffix(), "chat/moderation");
    assert_eq!(
        timeout.id,
        "twitch-irc:clearchat:11148817:148973258:1594553828245"
    );

    let ban = only(line_with(&["CLEARCHAT", "weeb123"]));
    let EventKind::Moderation(m) = &ban.kind else {
        panic!()
    };
    assert_eq!(
        (m.action, m.duration_seconds),
        (ModerationAction::Ban, None)
    );
    assert_eq!(m.user.user.as_deref(), Some("weeb123"));

    let clear = only(line_with(&["CLEARCHAT #randers"]));
    let EventKind::Moderation(m) = &clear.kind else {
        panic!()
    };
    assert_eq!(m.action, ModerationAction::Clear);
    assert_eq!(m.user.user, None);
    assert_eq!(clear.channel, "randers");

    let delete = only(line_with(&["CLEARMSG", "alazymeme"]));
    let EventKind::Moderation(m) = &delete.kind else {
        panic!()
    };
    assert_eq!(m.action, ModerationAction::Delete);
    assert_eq!(m.user.user.as_deref(), Some("alazymeme"));
    assert_eq!(
        m.message_id.as_deref(),
        Some("3c92014f-340a-4dc3-a9c9-e5cf182f4a84")
    );
    assert_eq!(
        delete.id,
        "twitch-irc:clearmsg:3c92014f-340a-4dc3-a9c9-e5cf182f4a84"
    );
}

fn chat(line: &str) -> ongwatch::event::ChatMessage {
    match only(line).kind {
        EventKind::Chat(c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn chat_messages_carry_rich_user_info() {
    let c = chat(line_with(&["ACTION -tags"]));
    assert_eq!(c.message, "-tags");
    assert_eq!(c.user.user.as_deref(), Some("randers"));
    assert_eq!(c.user.user_id.as_deref(), Some("40286300"));
    assert_eq!(c.color.as_deref(), Some("#19E6E6"));
    assert_eq!(
        c.badges,
        [("moderator", "1"), ("subscriber", "12")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    );
    assert!(c.is_moderator && c.is_subscriber && !c.is_vip && !c.is_broadcaster);

    let plain = chat(line_with(&["dank cam"]));
    assert!(!plain.is_moderator && !plain.is_subscriber);
    assert_eq!(plain.color.as_deref(), Some("#0000FF"));
    assert_eq!(plain.bits, None);

    let reply = chat(line_with(&["reply-parent-msg-id"]));
    assert_eq!(
        reply.reply_to.as_deref(),
        Some("6b13e51b-7ecb-43b5-ba5b-2bb5288df696")
    );
    assert_eq!(reply.message, "@Retoon yes");
    assert_eq!(reply.color, None);

    let riot = chat(line_with(&["Riot\\sGames"]));
    assert_eq!(riot.user.display_name.as_deref(), Some("Riot Games"));
    assert_eq!(riot.user.user.as_deref(), Some("riotgames"));
}

#[test]
fn emotes_have_names_and_character_positions() {
    let c = chat(line_with(&["Kappa Keepo Kappa"]));
    let got: Vec<(String, usize, usize)> = c
        .emotes
        .iter()
        .map(|e| (e.name.clone(), e.start, e.end))
        .collect();
    let want = [
        ("Kappa", 0, 4),
        ("Keepo", 6, 10),
        ("Kappa", 12, 16),
        ("Kappa", 18, 22),
        ("Keepo", 29, 33),
        ("Keepo", 35, 39),
        (":)", 45, 46),
        (":)", 48, 49),
        (":P", 51, 52),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(n, s, e)| (n.to_string(), *s, *e))
        .collect();
    assert_eq!(got, want);
    assert_eq!(c.emotes[0].id, "25");

    // Positions count characters, not bytes: the emoji before each "<3" is one.
    let hearts = chat(line_with(&["483:2-3,7-8,12-13"]));
    assert!(hearts.emotes.iter().all(|e| e.name == "<3"), "{hearts:?}");

    let underscore = chat(line_with(&["300196486_TK"]));
    assert_eq!(underscore.emotes[0].id, "300196486_TK");
    assert_eq!(underscore.emotes[0].name, "pajaM_TK");

    // Twitch has sent ranges past the end of the text: clamped, never a panic.
    for range in ["25:41-45", "25:44-48", "25:45-49"] {
        let c = chat(line_with(&[range]));
        assert_eq!(c.emotes.len(), 1);
        assert!(
            "Kappa".ends_with(&c.emotes[0].name),
            "{range}: {:?}",
            c.emotes
        );
    }

    let action = only(line_with(&["msg-id=resub", "ACTION Kappa"]));
    assert_eq!(action.to_json()["message"], "Kappa TEST TEST Kappa :)");
}

#[test]
fn announcements_and_other_notices() {
    let announcement = only(line_with(&["msg-id=announcement"]));
    assert_eq!(announcement.topic_suffix(), "chat/notices");
    let json = announcement.to_json();
    assert_eq!(json["notice_type"], "announcement");
    assert_eq!(json["message"], "hello pajs pajaH Kappa Keepo");
    assert_eq!(json["user"], "randers");

    // Kinds EventSub's channel.chat.notification also reports are named as EventSub names them.
    for (msg_id, notice_type, message) in [
        ("ritual", "ritual", "Seventoes is new here!"),
        (
            "bitsbadgetier",
            "bits_badge_tier",
            "bits badge tier notification",
        ),
        (
            "giftpaidupgrade",
            "gift_paid_upgrade",
            "CrazyCrackAnimal is continuing the Gift Sub they got from Stridezgum!",
        ),
        (
            "rewardgift",
            "reward_gift",
            "AdamAtReflectStudios's Gift shared rewards to 100 others in Chat!",
        ),
    ] {
        let event = only(line_with(&[&format!("msg-id={msg_id};")]));
        assert_eq!(event.topic_suffix(), "chat/notices", "{msg_id}");
        let json = event.to_json();
        assert_eq!(json["notice_type"], notice_type);
        assert_eq!(json["message"], message);
    }
}

fn typed_notice(line: &str) -> UserNoticeEvent<'_> {
    match typed(line) {
        TwitchMessage::UserNotice(n) => n.event,
        other => panic!("{other:?}"),
    }
}

#[test]
fn gift_upgrades_reward_gifts_milestones_and_badge_tiers_are_typed() {
    let upgrade = line_with(&["msg-id=giftpaidupgrade;", "promo-name"]);
    assert!(matches!(
        typed_notice(upgrade),
        UserNoticeEvent::GiftPaidUpgrade {
            anonymous: false,
            gifter_login: Some("stridezgum"),
            promo_name: Some(_),
            ..
        }
    ));
    let anon = line_with(&["msg-id=anongiftpaidupgrade;"]);
    assert!(matches!(
        typed_notice(anon),
        UserNoticeEvent::GiftPaidUpgrade {
            anonymous: true,
            gifter_login: None,
            ..
        }
    ));
    assert_eq!(only(anon).to_json()["notice_type"], "gift_paid_upgrade");
    assert!(matches!(
        typed_notice(line_with(&["msg-id=bitsbadgetier;"])),
        UserNoticeEvent::BitsBadgeTier {
            threshold: Some(1000)
        }
    ));
    assert!(matches!(
        typed_notice(line_with(&["msg-id=rewardgift;"])),
        UserNoticeEvent::RewardGift {
            total_reward_count: Some(_),
            ..
        }
    ));
    // Shape of Twitch's USERNOTICE tags reference (msg-id=viewermilestone,
    // msg-param-category, msg-param-value, msg-param-copoReward); ids made up.
    let milestone = "@badge-info=;badges=;color=;display-name=Streaker;emotes=;flags=;id=9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f;login=streaker;mod=0;msg-id=viewermilestone;msg-param-category=watch-streak;msg-param-copoReward=450;msg-param-id=1a2b3c;msg-param-value=7;room-id=111111;subscriber=0;system-msg=Streaker\\swatched\\s7\\sconsecutive\\sstreams\\sand\\ssparked\\sa\\swatch\\sstreak!;tmi-sent-ts=1726000003000;user-id=666666;user-type= :tmi.twitch.tv USERNOTICE #ongchan :streak!";
    assert!(matches!(
        typed_notice(milestone),
        UserNoticeEvent::ViewerMilestone {
            category: Some("watch-streak"),
            value: Some(7),
            channel_points: Some(450)
        }
    ));
    let json = only(milestone).to_json();
    assert_eq!(json["notice_type"], "viewer_milestone");
    assert_eq!(
        json["message"],
        "Streaker watched 7 consecutive streams and sparked a watch streak!"
    );

    let shared = include_str!("data/irc/shared-chat.txt")
        .lines()
        .nth(2)
        .unwrap();
    assert!(matches!(
        typed_notice(shared),
        UserNoticeEvent::SharedChatNotice {
            source_kind: Some("resub")
        }
    ));
    assert_eq!(only(shared).to_json()["notice_type"], "shared_chat_resub");
}

#[test]
fn every_line_kind_lands_on_its_topic() {
    let mut topics = BTreeMap::<String, BTreeMap<String, usize>>::new();
    for line in valid_lines() {
        let msg = IrcMessage::parse(line).unwrap();
        let command = msg.command().to_owned();
        let suffixes: Vec<String> = normalize(&msg, false)
            .unwrap()
            .iter()
            .map(|e| e.topic_suffix())
            .collect();
        *topics
            .entry(command)
            .or_default()
            .entry(suffixes.join("+"))
            .or_default() += 1;
    }
    let expect = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    assert_eq!(
        topics["PRIVMSG"],
        expect(&[("chat/messages", 15), ("chat/messages+support/cheers", 1)])
    );
    assert_eq!(
        topics["USERNOTICE"],
        expect(&[
            ("chat/notices", 8),
            ("community/raids", 1),
            ("support/gifts", 8),
            ("support/subs", 4)
        ])
    );
    assert_eq!(topics["CLEARCHAT"], expect(&[("chat/moderation", 3)]));
    assert_eq!(topics["CLEARMSG"], expect(&[("chat/moderation", 2)]));
    assert_eq!(
        topics["ROOMSTATE"],
        expect(&[("raw/twitch/irc.roomstate", 5)])
    );
    assert_eq!(topics["NOTICE"], expect(&[("raw/twitch/irc.notice", 2)]));
    assert_eq!(topics["WHISPER"], expect(&[("raw/twitch/irc.whisper", 1)]));
    assert_eq!(topics["JOIN"], expect(&[("raw/twitch/irc.join", 3)]));
    assert_eq!(topics["PART"], expect(&[("raw/twitch/irc.part", 1)]));
    for quiet in ["PING", "PONG", "RECONNECT", "USERSTATE", "GLOBALUSERSTATE"] {
        assert!(
            topics[quiet].keys().all(|k| k.is_empty()),
            "{quiet}: {topics:?}"
        );
    }
}

#[test]
fn ids_are_stable_across_redelivery_and_raw_is_the_line() {
    for line in valid_lines() {
        let msg = IrcMessage::parse(line).unwrap();
        if !matches!(
            msg.command(),
            "PRIVMSG" | "USERNOTICE" | "CLEARCHAT" | "CLEARMSG"
        ) {
            continue;
        }
        let first: Vec<String> = events(line).into_iter().map(|e| e.id).collect();
        let again: Vec<String> = events(line).into_iter().map(|e| e.id).collect();
        assert_eq!(first, again, "{line}");
        for event in normalize(&msg, true).unwrap() {
            assert_eq!(event.raw, Some(Value::String(line.to_owned())));
            assert!(!event.test);
            assert_eq!(event.provider, "twitch");
        }
    }
    for event in events(line_with(&["msg-id=raid"])) {
        assert_eq!(event.raw, None);
    }
}

#[test]
fn raw_events_keep_the_whole_message() {
    let event = only(line_with(&["WHISPER"]));
    assert_eq!(event.channel, "randers811");
    let EventKind::Raw(raw) = &event.kind else {
        panic!()
    };
    assert_eq!(raw.upstream_type, "irc.whisper");
    assert_eq!(raw.data["tags"]["thread-id"], "40286300_553170741");
    assert_eq!(
        raw.data["params"],
        serde_json::json!(["randers811", "hello, this is a test Kappa"])
    );
}

#[test]
fn the_typed_layer_covers_server_lines() {
    assert_eq!(typed(":tmi.twitch.tv RECONNECT"), TwitchMessage::Reconnect);
    assert_eq!(
        typed(":tmi.twitch.tv PING test :abc def"),
        TwitchMessage::Ping(Some("abc def"))
    );
    assert_eq!(
        typed("PONG :tmi.twitch.tv"),
        TwitchMessage::Pong(Some("tmi.twitch.tv"))
    );
    let TwitchMessage::RoomState(rs) = typed(line_with(&["followers-only=10"])) else {
        panic!()
    };
    assert_eq!(
        (
            rs.emote_only,
            rs.followers_only,
            rs.r9k,
            rs.slow,
            rs.subs_only
        ),
        (Some(true), Some(10), Some(true), Some(5), Some(true))
    );
    let TwitchMessage::UserState(us) = typed(line_with(&["GLOBALUSERSTATE", "premium/1"])) else {
        panic!()
    };
    assert_eq!((us.channel, us.user_id), (None, Some("40286300")));
    let TwitchMessage::UserState(us) = typed(line_with(&["USERSTATE #randers", "mod=1"])) else {
        panic!()
    };
    assert_eq!(us.channel, Some("randers"));
    assert!(us.is_moderator);
    let TwitchMessage::Notice(n) = typed(line_with(&["msg_banned"])) else {
        panic!()
    };
    assert_eq!((n.channel, n.msg_id), (Some("forsen"), Some("msg_banned")));
    let TwitchMessage::Notice(n) = typed(":tmi.twitch.tv NOTICE * :Improperly formatted auth")
    else {
        panic!()
    };
    assert_eq!((n.channel, n.text), (None, "Improperly formatted auth"));
    let TwitchMessage::Join(j) = typed(":src JOIN :#chan") else {
        panic!()
    };
    assert_eq!((j.channel, j.login), ("chan", "src"));
    let TwitchMessage::Whisper(w) = typed(line_with(&["WHISPER"])) else {
        panic!()
    };
    assert_eq!(
        (w.recipient, w.sender.login, w.thread_id),
        ("randers811", "randers", Some("40286300_553170741"))
    );
    assert_eq!(
        typed(":tmi.twitch.tv CAP * ACK :twitch.tv/tags"),
        TwitchMessage::Other
    );
    assert!(events(":tmi.twitch.tv 001 justinfan123 :Welcome, GLHF!").is_empty());
    assert!(events(":tmi.twitch.tv CAP * ACK :twitch.tv/tags").is_empty());
    assert_eq!(
        only(":tmi.twitch.tv HOSTTARGET #a :b 10").topic_suffix(),
        "raw/twitch/irc.hosttarget"
    );
}

#[test]
fn line_endings_are_ignored() {
    let msg = IrcMessage::parse("PING :tmi.twitch.tv\r\n").unwrap();
    assert_eq!(msg.trailing(), Some("tmi.twitch.tv"));
    assert_eq!(msg.raw(), "PING :tmi.twitch.tv");
    assert_eq!(IrcMessage::parse("\r\n"), Err(IrcError::Empty));
}

#[test]
fn hostile_lines_error_without_panicking() {
    let cases: &[(&str, IrcError)] = &[
        ("", IrcError::Empty),
        ("@", IrcError::MissingCommand),
        ("@ ", IrcError::EmptyTags),
        ("@a=b", IrcError::MissingCommand),
        ("@a=b ", IrcError::MissingCommand),
        (":", IrcError::MissingCommand),
        (": PING", IrcError::EmptyPrefix),
        (" PING", IrcError::MissingCommand),
        ("PING  x", IrcError::EmptyParameter),
        ("PRIVMSG #a ", IrcError::EmptyParameter),
        ("PR1VMSG #a", IrcError::InvalidCommand("PR1VMSG".into())),
        ("1234 x", IrcError::InvalidCommand("1234".into())),
    ];
    for (line, error) in cases {
        assert_eq!(
            IrcMessage::parse(line).as_ref().err(),
            Some(error),
            "{line:?}"
        );
    }
    let typed_errors = [
        "@a=b :x PRIVMSG",
        "PRIVMSG #chan :no prefix",
        ":x PRIVMSG notachannel :hi",
        "@login=a :tmi.twitch.tv USERNOTICE #c",
        "@msg-id=submysterygift;login=a :tmi.twitch.tv USERNOTICE #c",
        "@msg-id=raid :tmi.twitch.tv USERNOTICE #c",
        ":tmi.twitch.tv CLEARMSG #c :text",
        ":tmi.twitch.tv WHISPER",
        "JOIN #c",
    ];
    for line in typed_errors {
        assert!(IrcMessage::parse(line).is_ok(), "{line}");
        assert!(normalize_line(line, true).is_err(), "{line}");
    }
}

#[test]
fn hostile_values_degrade_instead_of_failing() {
    let odd = [
        r"@a=\;b=\x\;c=\\\;=novalue;;novalue;emotes=25:5-2,0-0,x-y,9-99999999999999999999999/:/25;bits=-5;tmi-sent-ts=99999999999999999999;badges=,/,a :u!u@u PRIVMSG #c :hé",
        "@display-name=\u{0}\u{1}é;color= :u PRIVMSG #c :\u{1}ACTION unterminated",
        "@msg-id=sub;login=x;msg-param-sub-plan=9000;msg-param-cumulative-months=-1 :tmi.twitch.tv USERNOTICE #c",
        "@msg-id=subgift;login=x :tmi.twitch.tv USERNOTICE #c",
        "@msg-id=raid;login=x;msg-param-viewerCount=lots :tmi.twitch.tv USERNOTICE #c",
        "@msg-id=brand-new-thing;login=x :tmi.twitch.tv USERNOTICE #c",
        "@ban-duration=abc :tmi.twitch.tv CLEARCHAT #c :u",
    ];
    for line in odd {
        let events = normalize_line(line, true).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(!events.is_empty(), "{line}");
        for e in events {
            let _ = e.to_json();
        }
    }
    let c = chat(odd[0]);
    assert_eq!(c.bits, None);
    assert_eq!(c.message, "hé");
    assert_eq!(c.emotes.len(), 2, "{:?}", c.emotes);
    let sub = only(odd[2]).to_json();
    assert_eq!(
        (sub["tier"].clone(), sub["months"].clone()),
        (1.into(), 1.into())
    );
}

#[test]
fn huge_lines_parse() {
    let text = "Kappa ".repeat(10 * 1024 / 6);
    let line = format!(
        "@id=x;emotes=25:0-4;display-name={} :u!u@u PRIVMSG #c :{text}",
        "\\s".repeat(2048)
    );
    assert!(line.len() > 10 * 1024);
    let c = chat(&line);
    assert_eq!(c.message, text);
    assert_eq!(c.user.display_name.unwrap().len(), 2048);
    let junk = "\\".repeat(10 * 1024);
    assert!(IrcMessage::parse(&junk).is_err());
    let spaces = " ".repeat(10 * 1024);
    assert!(IrcMessage::parse(&spaces).is_err());
    let tags_only = format!("@{}", "a=b;".repeat(2560));
    assert_eq!(IrcMessage::parse(&tags_only), Err(IrcError::MissingCommand));
}

/// Every prefix of every vector line (a line cut by a dropped connection) either parses or
/// errors; normalizing never panics.
#[test]
fn truncated_lines_never_panic() {
    for v in vectors() {
        for (cut, _) in v.raw.char_indices() {
            let part = &v.raw[..cut];
            if let Ok(msg) = IrcMessage::parse(part) {
                let _ = normalize(&msg, true);
            }
        }
    }
}

#[test]
fn shared_chat_lines_name_the_partner_room() {
    let lines: Vec<&str> = include_str!("data/irc/shared-chat.txt").lines().collect();
    let partner = events(lines[0]);
    assert_eq!(partner.len(), 2, "chat and cheer");
    for event in &partner {
        assert_eq!(event.source_channel_id.as_deref(), Some("222222"));
        assert!(event.is_partner());
    }
    let own = events(lines[1]);
    assert!(
        own.iter().all(|e| !e.is_partner()),
        "source-room-id = room-id is ours"
    );
    assert!(own.iter().any(|e| matches!(e.kind, EventKind::Cheer(_))));
    let notice = only(lines[2]);
    assert!(matches!(notice.kind, EventKind::Notice(_)), "{notice:?}");
    assert_eq!(notice.source_channel_id.as_deref(), Some("222222"));
    let TwitchMessage::Privmsg(p) = typed(lines[0]) else {
        panic!()
    };
    assert_eq!(
        (p.room_id, p.source_room_id),
        (Some("111111"), Some("222222"))
    );
}
