//! StreamElements payloads → contract events. Pure, so every shape is unit-testable.
//!
//! Three shapes arrive:
//! - an *activity* `{_id, channel, type, provider, data:{username, amount, …}, createdAt, isMock}`
//!   on the realtime `event` and Astro `channel.activities`;
//! - a *tip document* `{_id, donation:{user:{username}, amount, currency, message}, createdAt}` on
//!   Astro `channel.tips`;
//! - a *test event* `{listener:"tip-latest", event:{name, amount, …}}` on realtime `event:test`.
//!
//! Ids are `streamelements:<_id>`, except tips: `streamelements:tip:<tip id>`. A tip reaches
//! Astro on both topics, as a tip document and as an activity whose `data.tipId` is that
//! document's `_id`; one id for both means the hub publishes it once.
//!
//! Platform: a tip was given on StreamElements' tip page (`platform: "web"`); every other
//! activity names where it happened in its `provider` (`twitch`, `youtube`, `facebook`,
//! `trovo`, `kick`, `tiktok`). YouTube support maps onto the same topics as Twitch's: a super
//! chat is a tip, a sponsor (member) a sub. A charity donation is `charity`. Merch purchases
//! stay on `raw/streamelements/merch`: they are sales of goods, not support the contract counts,
//! and putting them on the tips topic would inflate tip totals.
//!
//! Tip moderation (Astro): with moderation on, a tip document arrives with `approved:
//! "pending"` and is held back (no event); `channel.tips.moderation` later says `allowed` (the
//! tip is published then, with the same id) or `rejected` (never published). [`TipReview`]
//! remembers held tips so their activity on `channel.activities` is held back too.

use std::collections::{HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::event::{
    Charity, Cheer, Direction, Event, EventKind, Follow, Gift, Raid, Raw, Redemption, Sub, Tier,
    Tip, UserRef,
};
use crate::sources::socketio::provider::json::{count, first_text, number, text, truthy};
use crate::sources::trigger::TriggerRequest;

pub const PROVIDER: &str = "streamelements";

/// One realtime Socket.IO event → contract event. `event:update` carries session counters
/// (latest tipper, totals), not new alerts, so it goes to `raw/streamelements/update.<name>`.
pub fn normalize_socket_event(name: &str, args: &[Value], channel: &str) -> Event {
    let arg = args.first().unwrap_or(&Value::Null);
    match name {
        "event" => normalize(arg, channel),
        "event:test" => normalize_test(arg, channel),
        "event:update" => {
            let which = text(arg.get("name")).unwrap_or_else(|| "unknown".to_owned());
            raw(&format!("update.{which}"), arg, channel, None)
        }
        other => raw(other, arg, channel, None),
    }
}

/// Tips held back by StreamElements' tip moderation, by tip id. Bounded: the oldest are
/// forgotten first, so a channel that never reviews its tips cannot grow it without end.
#[derive(Debug, Default)]
pub struct TipReview {
    held: HashSet<String>,
    order: VecDeque<String>,
}

impl TipReview {
    const CAPACITY: usize = 1024;

    fn hold(&mut self, id: &str) {
        if self.held.insert(id.to_owned()) {
            self.order.push_back(id.to_owned());
            if self.order.len() > Self::CAPACITY
                && let Some(oldest) = self.order.pop_front()
            {
                self.held.remove(&oldest);
            }
        }
    }

    fn release(&mut self, id: &str) {
        if self.held.remove(id) {
            self.order.retain(|held| held != id);
        }
    }

    pub fn is_held(&self, id: &str) -> bool {
        self.held.contains(id)
    }
}

/// One Astro notification (`topic`, `data`) → contract event; `None` for a tip that tip
/// moderation holds back (pending) or refused (rejected).
pub fn normalize_astro(
    topic: &str,
    data: &Value,
    channel: &str,
    review: &mut TipReview,
) -> Option<Event> {
    match topic {
        "channel.activities" => {
            let event = normalize(data, channel);
            let held = text(data.get("type")).as_deref() == Some("tip")
                && text(data.get("data").and_then(|d| d.get("tipId")))
                    .is_some_and(|id| review.is_held(&id));
            (!held).then_some(event)
        }
        "channel.tips" | "channel.tips.moderation" => {
            let id = text(data.get("_id"));
            match (text(data.get("approved")).as_deref(), id) {
                (Some("pending" | "rejected"), Some(id)) => {
                    review.hold(&id);
                    None
                }
                (Some("pending" | "rejected"), None) => None,
                (_, id) => {
                    if let Some(id) = id {
                        review.release(&id);
                    }
                    Some(normalize_tip_document(data, channel))
                }
            }
        }
        other => Some(raw(other, data, channel, None)),
    }
}

/// One activity → contract event; types without a topic become `raw/streamelements/<type>`.
pub fn normalize(activity: &Value, channel: &str) -> Event {
    let kind = text(activity.get("type")).unwrap_or_else(|| "unknown".to_owned());
    let empty = json!({});
    let data = activity
        .get("data")
        .filter(|d| d.is_object())
        .unwrap_or(&empty);
    let id = activity_id(&kind, activity, data).unwrap_or_else(|| content_id(&kind, activity));
    let mapped = match kind.as_str() {
        "tip" | "superchat" => tip(data),
        "cheer" => cheer(data),
        "subscriber" | "sponsor" => Some(sub(data)),
        "charityCampaignDonation" => charity(data),
        "communityGiftPurchase" => gift(data),
        "follow" => Some(EventKind::Follow(Follow { user: user(data) })),
        "raid" | "host" => Some(EventKind::Raid(Raid {
            user: user(data),
            direction: Direction::Incoming,
            viewers: count(data.get("amount")).unwrap_or(0),
        })),
        "redemption" => Some(redemption(activity, data)),
        _ => None,
    };
    let test = truthy(activity.get("isMock")) || truthy(activity.get("isTest"));
    let event = match mapped {
        Some(mapped) => {
            let platform = match kind.as_str() {
                "tip" => "web".to_owned(),
                _ => platform(activity),
            };
            let mut event = Event::new(id, PROVIDER, channel, mapped).on_platform(&platform);
            event.raw = Some(activity.clone());
            event
        }
        // Unknown type, or a known one missing what its kind needs (a tip without an amount):
        // raw rather than an invented value.
        None => raw(&kind, activity, channel, Some(id)),
    };
    with_time(event, activity.get("createdAt")).test(test)
}

/// An Astro `channel.tips` document → tip.
fn normalize_tip_document(doc: &Value, channel: &str) -> Event {
    let donation = doc.get("donation").unwrap_or(&Value::Null);
    let donor = donation.get("user").unwrap_or(&Value::Null);
    let id = text(doc.get("_id")).map(|id| format!("{PROVIDER}:tip:{id}"));
    let amount = number(donation.get("amount"));
    let event = match amount {
        Some(amount) => {
            let user = match first_text(donor, &["username", "name"]) {
                Some(name) => UserRef::named(name),
                None => UserRef::default(),
            };
            let mut event = Event::new(
                id.unwrap_or_else(|| content_id("tip", doc)),
                PROVIDER,
                channel,
                EventKind::Tip(Tip {
                    user,
                    amount,
                    currency: currency(donation),
                    message: text(donation.get("message")).unwrap_or_default(),
                }),
            )
            .on_platform("web");
            event.raw = Some(doc.clone());
            event
        }
        None => raw("tip", doc, channel, id),
    };
    with_time(event, doc.get("createdAt")).test(truthy(doc.get("isMock")))
}

/// A realtime `event:test` (`{listener, event}`) → the kind its listener names, flagged test.
fn normalize_test(arg: &Value, channel: &str) -> Event {
    let listener = text(arg.get("listener")).unwrap_or_default();
    let inner = arg.get("event").filter(|e| e.is_object());
    let kind = match listener.split('-').next() {
        Some("follower") => "follow",
        Some("subscriber") => "subscriber",
        Some("tip") => "tip",
        Some("cheer") => "cheer",
        Some("raid") => "raid",
        Some("host") => "host",
        Some("redemption") => "redemption",
        _ => "",
    };
    let event = match inner {
        Some(inner) if !kind.is_empty() => {
            let mut data = inner.clone();
            // Test events name the user `name`; activities call it `username`.
            if let (Value::Object(map), Some(name)) = (&mut data, text(inner.get("name"))) {
                map.entry("username").or_insert(Value::String(name));
            }
            let activity = json!({
                "_id": inner.get("_id").cloned().unwrap_or(Value::Null),
                "type": kind,
                "data": data,
            });
            let mut event = normalize(&activity, channel);
            event.raw = Some(arg.clone());
            event
        }
        _ => raw(&format!("test.{listener}"), arg, channel, None),
    };
    event.test(true)
}

/// A realistic StreamElements tip activity for `ongwatch trigger tip`, for [`normalize`].
/// `--field k=v` pairs override the activity's `data` (`_id`, `provider` and `createdAt` the
/// activity itself); `currency` defaults to USD.
pub fn trigger_payload(req: &TriggerRequest, channel: &str) -> Value {
    let activity_id = hex24();
    let tip_id = hex24();
    let user = req
        .user
        .clone()
        .unwrap_or_else(|| "ongwatch_tester".to_owned());
    let mut data = json!({
        "tipId": tip_id,
        "username": user.to_lowercase(),
        "displayName": user,
        "amount": req.amount.unwrap_or(5.0),
        "currency": "USD",
        "message": req.message.clone().unwrap_or_default(),
        "items": [],
        "avatar": "https://cdn.streamelements.com/static/default-avatar.png",
    });
    let mut activity = json!({
        "_id": activity_id,
        "channel": channel,
        "type": "tip",
        "provider": "twitch",
        "flagged": false,
        "createdAt": crate::event::format_time(&crate::event::now()),
        "isMock": true,
    });
    for (key, value) in &req.fields {
        let target = match key.as_str() {
            "_id" | "provider" | "createdAt" => &mut activity,
            _ => &mut data,
        };
        // A number typed on the command line stays a number, as upstream would send it.
        let value = if key == "amount" {
            number(Some(&Value::String(value.clone())))
                .map(|n| json!(n))
                .unwrap_or_else(|| Value::String(value.clone()))
        } else {
            Value::String(value.clone())
        };
        if let Value::Object(map) = target {
            map.insert(key.clone(), value);
        }
    }
    if let Value::Object(map) = &mut activity {
        map.insert("data".to_owned(), data);
    }
    activity
}

fn hex24() -> String {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(24);
    id
}

/// Where an activity happened, from its `provider`. StreamElements started on Twitch, and an
/// activity without a provider is a Twitch one; a platform it adds later passes through.
fn platform(activity: &Value) -> String {
    text(activity.get("provider"))
        .map(|p| p.to_ascii_lowercase())
        .unwrap_or_else(|| "twitch".to_owned())
}

fn activity_id(kind: &str, activity: &Value, data: &Value) -> Option<String> {
    if kind == "tip"
        && let Some(tip_id) = text(data.get("tipId"))
    {
        return Some(format!("{PROVIDER}:tip:{tip_id}"));
    }
    text(activity.get("_id")).map(|id| format!("{PROVIDER}:{id}"))
}

/// A stable id from the content, for payloads without an upstream id.
fn content_id(kind: &str, value: &Value) -> String {
    let content = json!({"type": kind, "value": value}).to_string();
    format!(
        "{PROVIDER}:{}",
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, content.as_bytes()).simple()
    )
}

fn with_time(event: Event, created_at: Option<&Value>) -> Event {
    match text(created_at).and_then(|t| DateTime::parse_from_rfc3339(&t).ok()) {
        Some(time) => event.at(time.with_timezone(&Utc)),
        None => event,
    }
}

fn user(data: &Value) -> UserRef {
    let login = first_text(data, &["username", "name"]);
    let mut user = match &login {
        Some(login) => UserRef::named(login),
        None => UserRef::default(),
    };
    if let Some(display) = first_text(data, &["displayName"]) {
        user.display_name = Some(display);
    }
    user.user_id = first_text(data, &["providerId"]);
    user
}

/// SE tips carry the channel's currency; an absent one means the account default, USD.
fn currency(data: &Value) -> String {
    text(data.get("currency")).unwrap_or_else(|| "USD".to_owned())
}

fn tip(data: &Value) -> Option<EventKind> {
    Some(EventKind::Tip(Tip {
        user: user(data),
        amount: number(data.get("amount"))?,
        currency: currency(data),
        message: text(data.get("message")).unwrap_or_default(),
    }))
}

/// A Twitch charity campaign donation relayed by StreamElements; `amount` is in major units.
fn charity(data: &Value) -> Option<EventKind> {
    Some(EventKind::Charity(Charity {
        user: user(data),
        amount: number(data.get("amount"))?,
        currency: currency(data),
        charity_name: first_text(data, &["charityName", "charity"]).unwrap_or_default(),
    }))
}

fn cheer(data: &Value) -> Option<EventKind> {
    Some(EventKind::Cheer(Cheer {
        user: user(data),
        amount: count(data.get("amount"))?,
        currency: "bits".to_owned(),
        message: text(data.get("message")).unwrap_or_default(),
        anonymous: false,
    }))
}

/// `amount` is the cumulative months: more than one is a resub. A gifted sub is a sub of the
/// recipient with `is_gift`; the gifter (`sender`) stays in `raw`.
fn sub(data: &Value) -> EventKind {
    let months = count(data.get("amount"))
        .and_then(|m| u32::try_from(m).ok())
        .unwrap_or(1)
        .max(1);
    let is_gift = truthy(data.get("gifted"));
    let sub = Sub {
        user: user(data),
        tier: tier(data),
        months,
        streak_months: count(data.get("streak")).and_then(|m| u32::try_from(m).ok()),
        is_gift,
        message: text(data.get("message")),
    };
    if months > 1 && !is_gift {
        EventKind::Resub(sub)
    } else {
        EventKind::Sub(sub)
    }
}

fn tier(data: &Value) -> Tier {
    text(data.get("tier"))
        .and_then(|t| Tier::from_twitch(&t))
        .unwrap_or(Tier::One)
}

/// A community gift (`communityGiftPurchase`): one event per gift action, recipients unknown.
fn gift(data: &Value) -> Option<EventKind> {
    let count = count(data.get("amount")).and_then(|c| u32::try_from(c).ok())?;
    let anonymous = text(data.get("username")).is_some_and(|u| u.eq_ignore_ascii_case("anonymous"))
        || truthy(data.get("anonymous"));
    Some(EventKind::Gift(Gift {
        user: if anonymous {
            UserRef::default()
        } else {
            user(data)
        },
        tier: tier(data),
        count,
        recipients: Vec::new(),
        anonymous,
        cumulative_total: None,
    }))
}

/// Store / channel-point redemptions: `data.redemption` is the item's title, `amount` its cost.
fn redemption(activity: &Value, data: &Value) -> EventKind {
    EventKind::Redemption(Redemption {
        user: user(data),
        redemption_id: text(activity.get("_id")).unwrap_or_default(),
        reward_id: first_text(data, &["itemId", "redemptionId"]).unwrap_or_default(),
        reward_title: first_text(data, &["redemption", "item"]).unwrap_or_default(),
        cost: count(data.get("amount")).unwrap_or(0),
        message: text(data.get("message")),
        status: text(data.get("status")).unwrap_or_else(|| "fulfilled".to_owned()),
    })
}

fn raw(upstream_type: &str, data: &Value, channel: &str, id: Option<String>) -> Event {
    let mut event = Event::new(
        id.unwrap_or_else(|| content_id(upstream_type, data)),
        PROVIDER,
        channel,
        EventKind::Raw(Raw {
            upstream_type: upstream_type.to_owned(),
            data: data.clone(),
        }),
    );
    event.raw = Some(data.clone());
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(kind: &str, data: Value) -> Value {
        json!({"_id":"a1","channel":"c","type":kind,"provider":"twitch","createdAt":"2019-10-03T22:42:33.023Z","data":data})
    }

    #[test]
    fn tip_activity() {
        let e = normalize(
            &activity(
                "tip",
                json!({"tipId":"t1","username":"qwe","amount":12,"currency":"RUB","message":"s"}),
            ),
            "chan",
        );
        assert_eq!(e.id, "streamelements:tip:t1");
        assert_eq!(e.topic_suffix(), "support/tips");
        assert_eq!(
            crate::event::format_time(&e.time),
            "2019-10-03T22:42:33.023Z"
        );
        let EventKind::Tip(tip) = &e.kind else {
            panic!()
        };
        assert_eq!((tip.amount, tip.currency.as_str()), (12.0, "RUB"));
        assert!(!e.test);
        let e = normalize(
            &activity("tip", json!({"username":"q","amount":"3.5"})),
            "c",
        );
        assert_eq!(e.id, "streamelements:a1");
        let e = normalize(&activity("tip", json!({"username":"q"})), "c");
        assert_eq!(e.topic_suffix(), "raw/streamelements/tip");
    }

    #[test]
    fn tip_document_matches_tip_activity_id() {
        let doc = json!({"_id":"t1","channel":"c","donation":{"user":{"username":"qwe"},"amount":12,"currency":"RUB","message":"s"},"createdAt":"2019-10-03T22:42:33.023Z"});
        let review = &mut TipReview::default();
        let a = normalize_astro("channel.tips", &doc, "c", review).unwrap();
        let b = normalize_astro(
            "channel.activities",
            &activity(
                "tip",
                json!({"tipId":"t1","username":"qwe","amount":12,"currency":"RUB"}),
            ),
            "c",
            review,
        )
        .unwrap();
        assert_eq!(a.id, b.id);
        assert_eq!(a.topic_suffix(), "support/tips");
        let e = normalize_tip_document(&json!({"_id":"x","donation":{}}), "c");
        assert_eq!(e.topic_suffix(), "raw/streamelements/tip");
    }

    #[test]
    fn cheer_sub_resub_gift_follow_raid_redemption() {
        let e = normalize(
            &activity(
                "cheer",
                json!({"username":"u","amount":100,"message":"Cheer100"}),
            ),
            "c",
        );
        assert_eq!(e.topic_suffix(), "support/cheers");
        assert_eq!(e.to_json()["amount"], 100);

        let e = normalize(
            &activity(
                "subscriber",
                json!({"username":"u","amount":1,"tier":"2000"}),
            ),
            "c",
        );
        let EventKind::Sub(s) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!((s.tier, s.months, s.is_gift), (Tier::Two, 1, false));

        let e = normalize(
            &activity(
                "subscriber",
                json!({"username":"u","amount":5,"tier":"prime"}),
            ),
            "c",
        );
        assert!(matches!(&e.kind, EventKind::Resub(s) if s.months == 5 && s.tier == Tier::Prime));

        let e = normalize(
            &activity(
                "subscriber",
                json!({"username":"r","amount":1,"tier":"1000","gifted":true,"sender":"g"}),
            ),
            "c",
        );
        assert!(matches!(&e.kind, EventKind::Sub(s) if s.is_gift));
        assert_eq!(e.raw.as_ref().unwrap()["data"]["sender"], "g");

        let e = normalize(
            &activity(
                "communityGiftPurchase",
                json!({"username":"g","amount":5,"tier":"1000"}),
            ),
            "c",
        );
        assert!(matches!(&e.kind, EventKind::Gift(g) if g.count == 5 && !g.anonymous));
        assert_eq!(e.topic_suffix(), "support/gifts");

        let e = normalize(
            &activity(
                "follow",
                json!({"username":"f","displayName":"F","providerId":"9"}),
            ),
            "c",
        );
        assert_eq!(e.topic_suffix(), "community/follows");
        let j = e.to_json();
        assert_eq!(
            (
                j["user"].as_str(),
                j["display_name"].as_str(),
                j["user_id"].as_str()
            ),
            (Some("f"), Some("F"), Some("9"))
        );

        for kind in ["raid", "host"] {
            let e = normalize(&activity(kind, json!({"username":"r","amount":"12"})), "c");
            assert!(
                matches!(&e.kind, EventKind::Raid(r) if r.viewers == 12 && r.direction == Direction::Incoming)
            );
        }

        let e = normalize(
            &activity(
                "redemption",
                json!({"username":"u","amount":500,"redemption":"Hydrate","message":"m"}),
            ),
            "c",
        );
        let EventKind::Redemption(r) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(
            (r.reward_title.as_str(), r.cost, r.redemption_id.as_str()),
            ("Hydrate", 500, "a1")
        );
    }

    /// Shapes from StreamElements' docs, docs.streamelements.com/websockets/topics/channel-tips-moderation
    /// (pending, allowed; rejected is the same document with `approved: "rejected"`).
    fn moderated_tip(approved: &str, id: &str) -> Value {
        json!({"donation":{"user":{"username":"Styler","geo":"ZZ","channel":"5ad23dcc18fff500d78c5348"},
               "message":"","amount":4.2,"currency":"USD","paymentMethod":"scheme"},
               "_id":id,"channel":"5ad23dcc18fff500d78c5348","provider":"paypal",
               "approved":approved,"status":"success","createdAt":"2025-02-19T15:07:09.302Z"})
    }

    #[test]
    fn tip_moderation_holds_pending_publishes_allowed_drops_rejected() {
        let review = &mut TipReview::default();
        let tip_activity = |id: &str| {
            activity(
                "tip",
                json!({"tipId":id,"username":"styler","amount":4.2,"currency":"USD"}),
            )
        };
        // Pending: neither the document nor its activity is published.
        assert!(
            normalize_astro("channel.tips", &moderated_tip("pending", "p1"), "c", review).is_none()
        );
        assert!(normalize_astro("channel.activities", &tip_activity("p1"), "c", review).is_none());
        // Allowed: the tip is published, with the id its activity would have had.
        let e = normalize_astro(
            "channel.tips.moderation",
            &moderated_tip("allowed", "p1"),
            "c",
            review,
        )
        .unwrap();
        assert_eq!(e.id, "streamelements:tip:p1");
        assert_eq!(e.topic_suffix(), "support/tips");
        assert_eq!(e.platform.as_deref(), Some("web"));
        assert!(normalize_astro("channel.activities", &tip_activity("p1"), "c", review).is_some());
        // Rejected: never published, neither the document nor the activity.
        assert!(
            normalize_astro("channel.tips", &moderated_tip("pending", "r1"), "c", review).is_none()
        );
        assert!(
            normalize_astro(
                "channel.tips.moderation",
                &moderated_tip("rejected", "r1"),
                "c",
                review
            )
            .is_none()
        );
        assert!(normalize_astro("channel.activities", &tip_activity("r1"), "c", review).is_none());
        // Without moderation the document has no `approved` or says allowed: published.
        let mut plain = moderated_tip("allowed", "a1");
        plain.as_object_mut().unwrap().remove("approved");
        assert!(normalize_astro("channel.tips", &plain, "c", review).is_some());
    }

    #[test]
    fn platforms_and_youtube_support() {
        let mut a = activity(
            "superchat",
            json!({"username":"yt","displayName":"YT","amount":5,"currency":"EUR","message":"hi"}),
        );
        a["provider"] = json!("youtube");
        let e = normalize(&a, "c");
        assert_eq!(e.topic_suffix(), "support/tips");
        assert_eq!(e.platform.as_deref(), Some("youtube"));
        assert!(matches!(&e.kind, EventKind::Tip(t) if t.amount == 5.0 && t.currency == "EUR"));

        let mut a = activity("sponsor", json!({"username":"member","amount":3}));
        a["provider"] = json!("youtube");
        let e = normalize(&a, "c");
        assert_eq!(e.kind.kind().type_name(), "resub");
        assert_eq!(e.platform.as_deref(), Some("youtube"));

        for provider in ["kick", "facebook", "trovo", "tiktok", "twitch"] {
            let mut a = activity("follow", json!({"username":"f"}));
            a["provider"] = json!(provider);
            assert_eq!(normalize(&a, "c").platform.as_deref(), Some(provider));
        }
        // A tip is given on the tip page, whatever platform the channel streams on.
        let e = normalize(&activity("tip", json!({"username":"t","amount":1})), "c");
        assert_eq!(e.platform.as_deref(), Some("web"));

        let e = normalize(
            &activity(
                "charityCampaignDonation",
                json!({"username":"c","amount":10,"currency":"USD","charityName":"Save the Seals"}),
            ),
            "c",
        );
        assert_eq!(e.topic_suffix(), "support/charity");
        assert_eq!(e.platform.as_deref(), Some("twitch"));
        // Merch is a sale, not support: it stays raw.
        let e = normalize(&activity("merch", json!({"username":"m","amount":20})), "c");
        assert_eq!(e.topic_suffix(), "raw/streamelements/merch");
        assert_eq!(e.platform, None);
    }

    #[test]
    fn unknown_and_broken_activities_are_raw() {
        let e = normalize(&activity("merch", json!({"username":"u"})), "c");
        assert_eq!(e.topic_suffix(), "raw/streamelements/merch");
        assert_eq!(e.id, "streamelements:a1");
        for odd in [
            json!(null),
            json!(3),
            json!({"type":"tip","data":"x"}),
            json!({"data":{}}),
        ] {
            let e = normalize(&odd, "c");
            assert!(e.topic_suffix().starts_with("raw/streamelements/"), "{odd}");
        }
    }

    #[test]
    fn mock_and_test_events_are_flagged() {
        let mut a = activity("follow", json!({"username":"u"}));
        a["isMock"] = json!(true);
        assert!(normalize(&a, "c").test);

        let e = normalize_socket_event(
            "event:test",
            &[
                json!({"listener":"tip-latest","event":{"name":"bob","amount":3,"message":"hi","currency":"EUR"}}),
            ],
            "c",
        );
        assert!(e.test);
        let EventKind::Tip(tip) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!((tip.user.user.as_deref(), tip.amount), (Some("bob"), 3.0));

        let e =
            normalize_socket_event("event:test", &[json!({"listener":"weird","event":{}})], "c");
        assert!(e.test);
        assert_eq!(e.topic_suffix(), "raw/streamelements/test.weird");
    }

    #[test]
    fn updates_and_other_socket_events_are_raw() {
        let e = normalize_socket_event(
            "event:update",
            &[json!({"name":"tip-latest","data":{"amount":3}})],
            "c",
        );
        assert_eq!(e.topic_suffix(), "raw/streamelements/update.tip-latest");
        let e = normalize_socket_event("kvstore:update", &[], "c");
        assert_eq!(e.topic_suffix(), "raw/streamelements/kvstore:update");
        let e =
            normalize_astro("channel.other", &json!({}), "c", &mut TipReview::default()).unwrap();
        assert_eq!(e.topic_suffix(), "raw/streamelements/channel.other");
    }

    #[test]
    fn trigger_payload_normalizes_to_a_test_tip() {
        let mut req = TriggerRequest {
            kind: "tip".into(),
            user: Some("Alice".into()),
            amount: Some(7.5),
            message: Some("gg".into()),
            ..TriggerRequest::default()
        };
        let e = normalize(&trigger_payload(&req, "chan"), "chan");
        assert!(e.test);
        assert_eq!(e.channel, "chan");
        assert!(e.id.starts_with("streamelements:tip:"));
        let EventKind::Tip(tip) = &e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(
            (
                tip.user.user.as_deref(),
                tip.user.display_name.as_deref(),
                tip.amount,
                tip.currency.as_str(),
                tip.message.as_str()
            ),
            (Some("alice"), Some("Alice"), 7.5, "USD", "gg")
        );

        req.fields.insert("currency".into(), "EUR".into());
        req.fields.insert("amount".into(), "9".into());
        let e = normalize(&trigger_payload(&req, "chan"), "chan");
        let EventKind::Tip(tip) = &e.kind else {
            panic!()
        };
        assert_eq!((tip.amount, tip.currency.as_str()), (9.0, "EUR"));

        let a = trigger_payload(&req, "chan");
        let b = trigger_payload(&req, "chan");
        assert_ne!(a["_id"], b["_id"], "every trigger is a new tip");
        assert_eq!(a["_id"].as_str().unwrap().len(), 24);

        let e = normalize(
            &trigger_payload(
                &TriggerRequest {
                    kind: "tip".into(),
                    ..TriggerRequest::default()
                },
                "c",
            ),
            "c",
        );
        assert!(matches!(&e.kind, EventKind::Tip(t) if t.amount == 5.0 && t.currency == "USD"));
    }
}
