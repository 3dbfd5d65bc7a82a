//! Streamlabs socket payloads → contract events. Pure: no I/O, no clock except for `time`.
//!
//! The socket emits one event name, `event`, whose argument is `{type, for, message, event_id}`.
//! `message` is an array and every item is one event (Streamlabs batches alerts).
//!
//! `for` says which platform the alert is about (`twitch_account`, `youtube_account`,
//! `facebook_account`, `trovo_account`, `kick_account`, `tiktok_account`; empty or `streamlabs`
//! for donations on the tip page, ...). It becomes `platform` (`twitch`, `youtube`, ..., `web`
//! for the tip page); `provider` stays `streamlabs` (topics and dedup keys depend on it), and
//! `for` is also kept in the `data` of `raw/streamlabs/<type>` events.
//!
//! YouTube support lands on the Twitch topics: a `superchat` is a tip (its `amount` is YouTube's
//! `amountMicros`, millionths of the currency unit), a YouTube `subscription` (sponsor, member)
//! a sub, a `membershipGift` a gift. Streamlabs Charity (`streamlabscharitydonation`) and Twitch
//! charity relayed as `charityDonation` are `charity`. `merch` stays raw: a sale of goods is not
//! support the contract counts, and on the tips topic it would inflate tip totals.

use serde_json::{Map, Value, json};

use crate::event::{
    Charity, Cheer, Direction, Event, EventKind, Follow, Gift, Raid, Raw, Sub, Tier, Tip, UserRef,
};
use crate::sources::socketio::provider::json::{count, first_text, number, text, truthy};

pub const PROVIDER: &str = "streamlabs";

/// One Socket.IO event from the Streamlabs socket → zero or more contract events. Anything
/// that is not the `event` name becomes `raw/streamlabs/<name>` so nothing is dropped.
pub fn normalize_socket_event(name: &str, args: &[Value], channel: &str) -> Vec<Event> {
    match (name, args.first()) {
        ("event", Some(payload)) => normalize(payload, channel),
        _ => {
            let data = match args {
                [] => Value::Null,
                [one] => one.clone(),
                many => Value::Array(many.to_vec()),
            };
            vec![raw_event(name, &data, &data, channel, None)]
        }
    }
}

/// The argument of one `event` → one contract event per item of its `message` array.
pub fn normalize(payload: &Value, channel: &str) -> Vec<Event> {
    let kind = text(payload.get("type")).unwrap_or_else(|| "unknown".to_owned());
    let items: Vec<Value> = match payload.get("message") {
        Some(Value::Array(items)) => items.clone(),
        // Some alert types have been seen with a bare object instead of a one-item array.
        Some(item @ Value::Object(_)) => vec![item.clone()],
        _ => return vec![raw_event(&kind, payload, payload, channel, None)],
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| normalize_item(&kind, payload, item, index, channel))
        .collect()
}

fn normalize_item(
    kind: &str,
    envelope: &Value,
    item: &Value,
    index: usize,
    channel: &str,
) -> Event {
    let upstream = single_envelope(envelope, item);
    let id = event_id(envelope, item, index);
    let mapped = match kind {
        "donation" => tip(item),
        "superchat" => superchat(item),
        "membershipGift" => membership_gift(item),
        "streamlabscharitydonation" | "charityDonation" => charity(item),
        "bits" => cheer(item),
        "subscription" | "resub" => sub(kind, item),
        "follow" => Some(EventKind::Follow(Follow {
            user: user(item, &["name"]),
        })),
        "host" | "raid" => Some(EventKind::Raid(Raid {
            user: user(item, &["name"]),
            direction: Direction::Incoming,
            viewers: count(item.get("viewers"))
                .or_else(|| count(item.get("raiders")))
                .unwrap_or(0),
        })),
        _ => None,
    };
    let test = truthy(item.get("isTest")) || truthy(envelope.get("isTest"));
    match mapped {
        Some(mapped) => {
            let mut event = Event::new(id, PROVIDER, channel, mapped)
                .test(test)
                .on_platform(&platform(kind, envelope));
            event.raw = Some(upstream);
            event
        }
        // Unknown type, or a known type missing what its kind needs (e.g. a tip without an
        // amount): publish it as raw rather than inventing a value.
        None => raw_event(kind, item, &upstream, channel, Some(id)).test(test),
    }
}

/// The envelope with `message` narrowed to this one item: what `raw` carries, so `for` and
/// `event_id` travel with every event.
fn single_envelope(envelope: &Value, item: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(map) = envelope {
        for (key, value) in map {
            if key != "message" {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.insert("message".to_owned(), Value::Array(vec![item.clone()]));
    Value::Object(out)
}

/// `streamlabs:<_id>` from the item; else the envelope's `event_id` plus the item's position;
/// else a hash of the content, so a redelivered alert still gets the same id.
fn event_id(envelope: &Value, item: &Value, index: usize) -> String {
    if let Some(id) = text(item.get("_id")) {
        return format!("{PROVIDER}:{id}");
    }
    if let Some(event_id) = text(envelope.get("event_id")) {
        return if index == 0 {
            format!("{PROVIDER}:{event_id}")
        } else {
            format!("{PROVIDER}:{event_id}:{index}")
        };
    }
    let content = json!({"type": envelope.get("type"), "item": item}).to_string();
    format!(
        "{PROVIDER}:{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, content.as_bytes()).simple()
    )
}

fn user(item: &Value, keys: &[&str]) -> UserRef {
    let mut user = match first_text(item, keys) {
        Some(name) => UserRef::named(name),
        None => UserRef::default(),
    };
    if let Some(display) = first_text(item, &["display_name", "displayName"]) {
        user.display_name = Some(display);
    }
    user.user_id = first_text(item, &["from_user_id", "user_id"]);
    user
}

fn message(item: &Value) -> Option<String> {
    text(item.get("message"))
}

fn tip(item: &Value) -> Option<EventKind> {
    Some(EventKind::Tip(Tip {
        user: user(item, &["from", "name"]),
        amount: number(item.get("amount"))?,
        // Streamlabs donations without a currency are in the account's currency, which the
        // socket does not say; USD is Streamlabs' default.
        currency: text(item.get("currency")).unwrap_or_else(|| "USD".to_owned()),
        message: message(item).unwrap_or_default(),
    }))
}

/// `for` → platform: `youtube_account` → `youtube`; a donation or Streamlabs Charity gift
/// without one (or `for: "streamlabs"`) was given on the tip page (`web`); other alerts
/// without one are Twitch's, the platform Streamlabs' socket started with.
fn platform(kind: &str, envelope: &Value) -> String {
    let web = matches!(kind, "donation" | "streamlabscharitydonation");
    match text(envelope.get("for")).as_deref() {
        Some(account) if account != "streamlabs" => account
            .strip_suffix("_account")
            .unwrap_or(account)
            .to_ascii_lowercase(),
        _ if web => "web".to_owned(),
        _ => "twitch".to_owned(),
    }
}

/// A YouTube super chat: a tip in YouTube's `amountMicros` (millionths).
fn superchat(item: &Value) -> Option<EventKind> {
    Some(EventKind::Tip(Tip {
        user: user(item, &["name"]),
        amount: number(item.get("amount"))? / 1_000_000.0,
        currency: text(item.get("currency")).unwrap_or_else(|| "USD".to_owned()),
        message: first_text(item, &["comment", "message"]).unwrap_or_default(),
    }))
}

/// YouTube gifted memberships: one gift action of `giftMembershipsCount` memberships.
fn membership_gift(item: &Value) -> Option<EventKind> {
    let count = count(item.get("giftMembershipsCount"))
        .or_else(|| count(item.get("amount")))
        .and_then(|c| u32::try_from(c).ok())
        .unwrap_or(1);
    Some(EventKind::Gift(Gift {
        user: user(item, &["name"]),
        tier: Tier::One,
        count,
        recipients: Vec::new(),
        anonymous: false,
        cumulative_total: None,
    }))
}

fn charity(item: &Value) -> Option<EventKind> {
    Some(EventKind::Charity(Charity {
        user: user(item, &["from", "name"]),
        amount: number(item.get("amount"))?,
        currency: text(item.get("currency")).unwrap_or_else(|| "USD".to_owned()),
        charity_name: first_text(item, &["charityName", "charity_name", "charity"])
            .unwrap_or_default(),
    }))
}

fn cheer(item: &Value) -> Option<EventKind> {
    Some(EventKind::Cheer(Cheer {
        user: user(item, &["name"]),
        amount: count(item.get("amount"))?,
        currency: "bits".to_owned(),
        message: message(item).unwrap_or_default(),
        anonymous: false,
    }))
}

/// `resub` type or `sub_type: "resub"` → resub; everything else (new, gifted, YouTube
/// memberships) → sub. Without a plan (YouTube) the tier is 1, the only tier there is.
fn sub(kind: &str, item: &Value) -> Option<EventKind> {
    let sub_type = text(item.get("sub_type")).unwrap_or_default();
    let tier = text(item.get("sub_plan"))
        .and_then(|plan| Tier::from_twitch(&plan))
        .unwrap_or(Tier::One);
    let months = count(item.get("months"))
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(1)
        .max(1);
    let sub = Sub {
        user: user(item, &["name"]),
        tier,
        months,
        streak_months: count(item.get("streak_months")).and_then(|m| u32::try_from(m).ok()),
        is_gift: sub_type == "subgift" || text(item.get("gifter")).is_some(),
        message: message(item),
    };
    Some(if kind == "resub" || sub_type == "resub" {
        EventKind::Resub(sub)
    } else {
        EventKind::Sub(sub)
    })
}

fn raw_event(
    upstream_type: &str,
    data: &Value,
    upstream: &Value,
    channel: &str,
    id: Option<String>,
) -> Event {
    let id = id.unwrap_or_else(|| {
        let content = json!({"type": upstream_type, "data": data}).to_string();
        format!(
            "{PROVIDER}:{}",
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, content.as_bytes()).simple()
        )
    });
    let data = match (data, upstream.get("for")) {
        // Keep the platform next to the item so raw consumers can tell JustGiving from Twitch.
        (Value::Object(map), Some(platform)) if !map.contains_key("for") => {
            let mut map = map.clone();
            map.insert("for".to_owned(), platform.clone());
            Value::Object(map)
        }
        _ => data.clone(),
    };
    let mut event = Event::new(
        id,
        PROVIDER,
        channel,
        EventKind::Raw(Raw {
            upstream_type: upstream_type.to_owned(),
            data,
        }),
    );
    event.raw = Some(upstream.clone());
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(events: Vec<Event>) -> Event {
        assert_eq!(events.len(), 1, "{events:#?}");
        events.into_iter().next().unwrap()
    }

    #[test]
    fn donation_with_string_amount() {
        let e = only(normalize(
            &json!({"type":"donation","message":[{"name":"test","amount":"13.37","currency":"USD",
                "message":"hi","from":"Test","from_user_id":null,"_id":"abc"}],"event_id":"evt_1"}),
            "chan",
        ));
        assert_eq!(e.id, "streamlabs:abc");
        assert_eq!(e.topic_suffix(), "support/tips");
        assert_eq!(e.channel, "chan");
        assert!(!e.test);
        let EventKind::Tip(tip) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(tip.amount, 13.37);
        assert_eq!(tip.currency, "USD");
        assert_eq!(tip.message, "hi");
        assert_eq!(tip.user.display_name.as_deref(), Some("Test"));
        assert_eq!(tip.user.user.as_deref(), Some("test"));
        assert_eq!(e.raw.as_ref().unwrap()["event_id"], "evt_1");
    }

    #[test]
    fn platforms_youtube_support_charity_and_merch() {
        let e = only(normalize(
            &json!({"type":"donation","message":[{"name":"a","amount":5,"currency":"EUR"}]}),
            "c",
        ));
        assert_eq!(e.platform.as_deref(), Some("web"));
        let e = only(normalize(
            &json!({"type":"donation","for":"streamlabs","message":[{"name":"a","amount":5}]}),
            "c",
        ));
        assert_eq!(e.platform.as_deref(), Some("web"));
        let e = only(normalize(
            &json!({"type":"bits","for":"twitch_account","message":[{"name":"b","amount":100}]}),
            "c",
        ));
        assert_eq!(e.platform.as_deref(), Some("twitch"));

        // Shape of YouTube's superChatEvent as Streamlabs relays it (amount in micros).
        let e = only(normalize(
            &json!({"type":"superchat","for":"youtube_account","message":[{"_id":"sc1","name":"Viewer",
                "comment":"great stream","amount":"5000000","currency":"USD","displayString":"$5.00"}]}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "support/tips");
        assert_eq!(e.platform.as_deref(), Some("youtube"));
        assert!(
            matches!(&e.kind, EventKind::Tip(t) if t.amount == 5.0 && t.message == "great stream")
        );
        // A super chat Streamlabs really sent (tests/data/se_sl/README.md): 85000000 is "$85.00".
        let logged: Value = serde_json::from_str(include_str!(
            "../../../tests/data/se_sl/streamlabs.superchat.youtube-test-widget.muppet9010.json"
        ))
        .unwrap();
        let e = only(normalize(&logged["data"], "c"));
        assert_eq!(e.platform.as_deref(), Some("youtube"));
        assert!(
            matches!(&e.kind, EventKind::Tip(t) if t.amount == 85.0 && t.currency == "USD"),
            "{e:?}"
        );

        let e = only(normalize(
            &json!({"type":"subscription","for":"youtube_account","message":[{"name":"member","months":1}]}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "support/subs");
        assert_eq!(e.platform.as_deref(), Some("youtube"));

        let e = only(normalize(
            &json!({"type":"membershipGift","for":"youtube_account","message":[{"name":"g","giftMembershipsCount":5}]}),
            "c",
        ));
        assert!(matches!(&e.kind, EventKind::Gift(g) if g.count == 5));
        assert_eq!(e.platform.as_deref(), Some("youtube"));

        for platform in ["facebook", "trovo", "kick", "tiktok"] {
            let e = only(normalize(
                &json!({"type":"follow","for":format!("{platform}_account"),"message":[{"name":"f"}]}),
                "c",
            ));
            assert_eq!(e.platform.as_deref(), Some(platform));
        }

        let e = only(normalize(
            &json!({"type":"streamlabscharitydonation","message":[{"from":"Giver","amount":"10","currency":"USD","charityName":"Seals"}]}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "support/charity");
        assert_eq!(e.platform.as_deref(), Some("web"));

        let e = only(normalize(
            &json!({"type":"merch","message":[{"name":"m","product":"Hoodie"}]}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "raw/streamlabs/merch");
        assert_eq!(e.platform, None);
    }

    #[test]
    fn donation_with_numeric_amount_and_null_message() {
        let e = only(normalize(
            &json!({"type":"donation","message":[{"name":"a","amount":5,"currency":"EUR","message":null}]}),
            "c",
        ));
        let EventKind::Tip(tip) = &e.kind else {
            panic!()
        };
        assert_eq!(tip.amount, 5.0);
        assert_eq!(tip.message, "");
    }

    #[test]
    fn donation_without_amount_is_raw_not_zero() {
        let e = only(normalize(
            &json!({"type":"donation","message":[{"name":"a"}]}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "raw/streamlabs/donation");
    }

    #[test]
    fn bits_subs_follow_raid() {
        let e = only(normalize(
            &json!({"type":"bits","for":"twitch_account","message":[{"name":"alinsa_vix","amount":"2490","message":"Cheer2490 CHAOS","_id":"b1"}]}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "support/cheers");
        assert_eq!(e.to_json()["amount"], 2490, "bits are an integer amount");
        assert_eq!(e.to_json()["currency"], "bits");
        assert_eq!(e.raw.as_ref().unwrap()["for"], "twitch_account");

        let e = only(normalize(
            &json!({"type":"subscription","message":[{"name":"kevin","months":7,"sub_plan":"2000","message":"m"}]}),
            "c",
        ));
        let EventKind::Sub(sub) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!((sub.tier, sub.months, sub.is_gift), (Tier::Two, 7, false));

        let e = only(normalize(
            &json!({"type":"resub","message":[{"name":"k","months":"3","streak_months":2,"sub_plan":"Prime"}]}),
            "c",
        ));
        let EventKind::Resub(sub) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(
            (sub.tier, sub.months, sub.streak_months),
            (Tier::Prime, 3, Some(2))
        );

        let e = only(normalize(
            &json!({"type":"subscription","message":[{"name":"k","sub_type":"subgift","gifter":"g","sub_plan":"1000"}]}),
            "c",
        ));
        let EventKind::Sub(sub) = &e.kind else {
            panic!("{e:?}")
        };
        assert!(sub.is_gift);

        let e = only(normalize(
            &json!({"type":"follow","for":"twitch_account","message":[{"name":"tehkHOP","isTest":true,"_id":"f"}]}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "community/follows");
        assert!(e.test);

        for kind in ["host", "raid"] {
            let e = only(normalize(
                &json!({"type":kind,"message":[{"name":"r","viewers":"42","raiders":7}]}),
                "c",
            ));
            let EventKind::Raid(raid) = &e.kind else {
                panic!("{e:?}")
            };
            assert_eq!((raid.direction, raid.viewers), (Direction::Incoming, 42));
        }
    }

    #[test]
    fn every_item_is_one_event_with_a_stable_id() {
        let payload = json!({"type":"follow","event_id":"evt","message":[{"name":"a"},{"name":"b"},{"name":"c","_id":"x"}]});
        let events = normalize(&payload, "c");
        let ids: Vec<_> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["streamlabs:evt", "streamlabs:evt:1", "streamlabs:x"]);
        let again: Vec<_> = normalize(&payload, "c").into_iter().map(|e| e.id).collect();
        assert_eq!(ids, again);

        let no_ids = json!({"type":"follow","message":[{"name":"a"}]});
        assert_eq!(normalize(&no_ids, "c")[0].id, normalize(&no_ids, "c")[0].id);
        assert_ne!(
            normalize(&no_ids, "c")[0].id,
            normalize(&json!({"type":"follow","message":[{"name":"b"}]}), "c")[0].id
        );
    }

    #[test]
    fn unknown_types_go_to_raw_with_platform() {
        let e = only(normalize(
            &json!({"type":"justgivingdonation","for":"justgiving","message":[{"amount":99,"isTest":true,"_id":"j"}]}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "raw/streamlabs/justgivingdonation");
        assert!(e.test);
        assert_eq!(e.id, "streamlabs:j");
        let EventKind::Raw(raw) = &e.kind else {
            panic!()
        };
        assert_eq!(raw.data["for"], "justgiving");
        assert_eq!(raw.data["amount"], 99);
    }

    #[test]
    fn odd_envelopes_never_panic_or_vanish() {
        for payload in [
            json!(null),
            json!("text"),
            json!([]),
            json!({}),
            json!({"type": 5}),
            json!({"type":"donation","message":"nope"}),
            json!({"type":"donation","message":[null, 3, "x"]}),
        ] {
            let events = normalize(&payload, "c");
            assert!(
                !events.is_empty() || payload["message"] == json!([]),
                "{payload}"
            );
        }
        assert!(normalize(&json!({"type":"donation","message":[]}), "c").is_empty());
        let e = only(normalize(
            &json!({"type":"bits","message":{"name":"a","amount":1}}),
            "c",
        ));
        assert_eq!(e.topic_suffix(), "support/cheers");
    }

    #[test]
    fn other_socket_events_are_raw() {
        let e = only(normalize_socket_event(
            "streamlabels",
            &[json!({"a":1})],
            "c",
        ));
        assert_eq!(e.topic_suffix(), "raw/streamlabs/streamlabels");
        assert_eq!(
            normalize_socket_event(
                "event",
                &[json!({"type":"follow","message":[{"name":"x"}]})],
                "c"
            )[0]
            .topic_suffix(),
            "community/follows"
        );
        assert_eq!(normalize_socket_event("event", &[], "c").len(), 1);
    }
}
