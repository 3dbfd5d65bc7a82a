//! `ongwatch trigger` for Twitch kinds: EventSub-shaped bodies (modelled on real payloads) that
//! then go through the same normalizer as live notifications.

use serde_json::{Map, Value, json};

use super::frame::{Notification, Subscription};
use crate::event::{format_time, now};
use crate::sources::trigger::TriggerRequest;
use crate::sources::twitch::catalog::{self, Condition};

/// The viewer a triggered event comes from when the request names nobody.
pub const DEFAULT_USER: &str = "ongwatch_tester";

/// Builds `(subscription type, version, event body)` for a trigger request, or `None` for
/// kinds EventSub does not carry (e.g. `tip`).
///
/// `amount` is the bits of a cheer (and of a chat message's cheer), the count of a gift,
/// the viewers of a raid, the cost of a redemption, the months of a resub and the total of a
/// hype train, the current amount of a goal and the dollars raised by a charity campaign.
/// `message` is the cheer/resub/chat text, the redemption input, the poll/prediction title,
/// the goal description, the charity name, the warning reason or the unban request text. For
/// hypetrain, poll, prediction, goal and charity_campaign, `fields["phase"]` picks the
/// subscription (`begin` default, `progress`, `lock`, `end`); for unban_request,
/// `fields["status"]` = `approved` or `denied` resolves it. Every other field overrides the
/// top-level event field of that name; values keep the type of the field they replace, and
/// new ones become numbers, booleans or JSON when they look like it.
pub fn eventsub_payload(
    req: &TriggerRequest,
    broadcaster_login: &str,
    broadcaster_id: &str,
) -> Option<(String, String, Value)> {
    let login = req
        .user
        .as_deref()
        .map(str::trim)
        .filter(|user| !user.is_empty())
        .unwrap_or(DEFAULT_USER);
    let user = Person::new(login, None);
    let broadcaster = Person::new(broadcaster_login, Some(broadcaster_id));
    let amount = |default: u64| {
        req.amount
            .filter(|a| a.is_finite() && *a >= 0.0)
            .map_or(default, |a| a.round() as u64)
    };
    let message = |default: &str| req.message.clone().unwrap_or_else(|| default.to_owned());
    let phase = req
        .fields
        .get("phase")
        .map(String::as_str)
        .unwrap_or("begin");
    let time = format_time(&now());
    let id = uuid::Uuid::new_v4().to_string();

    let mut body = Map::new();
    broadcaster.put(&mut body, "broadcaster_");
    let kind = req.kind.trim().to_ascii_lowercase();
    let (ty, version, fields): (String, &str, Value) = match kind.as_str() {
        "cheer" => {
            let bits = amount(100);
            user.put(&mut body, "");
            let fields = json!({
                "is_anonymous": false,
                "message": message(&format!("Cheer{bits} ongwatch test cheer")),
                "bits": bits,
            });
            ("channel.cheer".into(), "1", fields)
        }
        "sub" => {
            user.put(&mut body, "");
            let fields = json!({"tier": "1000", "is_gift": false});
            ("channel.subscribe".into(), "1", fields)
        }
        "resub" => {
            let months = amount(6);
            user.put(&mut body, "");
            let fields = json!({
                "tier": "1000",
                "message": {"text": message("ongwatch test resub"), "emotes": []},
                "cumulative_months": months,
                "streak_months": months,
                "duration_months": 1,
            });
            ("channel.subscription.message".into(), "1", fields)
        }
        "gift" => {
            let count = amount(5);
            user.put(&mut body, "");
            let fields = json!({
                "total": count,
                "tier": "1000",
                "cumulative_total": count,
                "is_anonymous": false,
            });
            ("channel.subscription.gift".into(), "1", fields)
        }
        "follow" => {
            user.put(&mut body, "");
            ("channel.follow".into(), "2", json!({"followed_at": time}))
        }
        "raid" => {
            // The raid template has no broadcaster_* fields, only the two sides.
            body.clear();
            user.put(&mut body, "from_broadcaster_");
            broadcaster.put(&mut body, "to_broadcaster_");
            ("channel.raid".into(), "1", json!({"viewers": amount(42)}))
        }
        "redemption" => {
            user.put(&mut body, "");
            let fields = json!({
                "id": id,
                "user_input": message(""),
                "status": "unfulfilled",
                "reward": {
                    "id": "ongwatch-test-reward",
                    "title": "ongwatch test reward",
                    "cost": amount(100),
                    "prompt": "",
                },
                "redeemed_at": time,
            });
            (
                "channel.channel_points_custom_reward_redemption.add".into(),
                "1",
                fields,
            )
        }
        "chat" => {
            user.put(&mut body, "chatter_");
            let text = message("Hello from ongwatch trigger");
            let fields = json!({
                "message_id": id,
                "message": {
                    "text": text,
                    "fragments": [
                        {"type": "text", "text": text, "cheermote": null, "emote": null, "mention": null}
                    ],
                },
                "color": "#9146FF",
                "badges": [],
                "message_type": "text",
                "cheer": req.amount.map(|_| json!({"bits": amount(0)})),
                "reply": null,
                "channel_points_custom_reward_id": null,
            });
            ("channel.chat.message".into(), "1", fields)
        }
        "online" => {
            let fields = json!({"id": id, "type": "live", "started_at": time});
            ("stream.online".into(), "1", fields)
        }
        "offline" => ("stream.offline".into(), "1", json!({})),
        "hypetrain" => {
            let total = amount(500);
            let mut fields = json!({
                "id": id,
                "total": total,
                "progress": total,
                "goal": total.max(1) * 2,
                "level": 1,
                "top_contributions": [user.contribution(total)],
                "shared_train_participants": null,
                "started_at": time,
                "is_shared_train": false,
                "type": "regular",
            });
            if phase == "end" {
                merge(
                    &mut fields,
                    json!({"ended_at": time, "cooldown_ends_at": time, "progress": null, "goal": null}),
                );
            } else {
                merge(
                    &mut fields,
                    json!({"expires_at": time, "all_time_high_level": 1, "all_time_high_total": total}),
                );
            }
            let phase = one_of(phase, &["begin", "progress", "end"]);
            (format!("channel.hype_train.{phase}"), "2", fields)
        }
        "poll" => {
            let phase = one_of(phase, &["begin", "progress", "end"]);
            let voted = phase != "begin";
            let choice = |id: &str, title: &str, votes: u64| {
                let mut choice = json!({"id": id, "title": title});
                if voted {
                    merge(
                        &mut choice,
                        json!({"bits_votes": 0, "channel_points_votes": votes, "votes": votes}),
                    );
                }
                choice
            };
            let mut fields = json!({
                "id": id,
                "title": message("ongwatch test poll"),
                "choices": [choice("1", "Yes", 12), choice("2", "No", 7)],
                "bits_voting": {"is_enabled": false, "amount_per_vote": 0},
                "channel_points_voting": {"is_enabled": true, "amount_per_vote": 10},
                "started_at": time,
            });
            if phase == "end" {
                merge(
                    &mut fields,
                    json!({"status": "completed", "ended_at": time}),
                );
            } else {
                merge(&mut fields, json!({"ends_at": time}));
            }
            (format!("channel.poll.{phase}"), "1", fields)
        }
        "prediction" => {
            let phase = one_of(phase, &["begin", "progress", "lock", "end"]);
            let predicted = phase != "begin";
            let outcome = |id: &str, title: &str, color: &str, users: u64| {
                let mut outcome = json!({"id": id, "title": title, "color": color});
                if predicted {
                    merge(
                        &mut outcome,
                        json!({"users": users, "channel_points": users * 250, "top_predictors": []}),
                    );
                }
                outcome
            };
            let mut fields = json!({
                "id": id,
                "title": message("ongwatch test prediction"),
                "outcomes": [outcome("1", "Yes", "blue", 4), outcome("2", "No", "pink", 3)],
                "started_at": time,
            });
            let timing = match phase {
                "end" => json!({"winning_outcome_id": "1", "status": "resolved", "ended_at": time}),
                "lock" => json!({"locked_at": time}),
                _ => json!({"locks_at": time}),
            };
            merge(&mut fields, timing);
            (format!("channel.prediction.{phase}"), "1", fields)
        }
        "goal" => {
            let phase = one_of(phase, &["begin", "progress", "end"]);
            let current = amount(22);
            let mut fields = json!({
                "id": id,
                "type": "follow",
                "description": message("ongwatch test goal"),
                "current_amount": current,
                "target_amount": current.max(1) * 2,
                "started_at": time,
            });
            if phase == "end" {
                merge(&mut fields, json!({"is_achieved": false, "ended_at": time}));
            }
            (format!("channel.goal.{phase}"), "1", fields)
        }
        "charity_campaign" => {
            // Twitch names the phases start/progress/stop; the trigger takes ongwatch's.
            let phase = one_of(phase, &["begin", "progress", "end"]);
            let upstream = match phase {
                "begin" => "start",
                "end" => "stop",
                other => other,
            };
            // The charity types spell the broadcaster without `_user_`.
            body.clear();
            body.insert("broadcaster_id".into(), broadcaster.id.clone().into());
            body.insert("broadcaster_login".into(), broadcaster.login.clone().into());
            body.insert("broadcaster_name".into(), broadcaster.name.clone().into());
            let cents = |dollars: u64| json!({"value": dollars * 100, "decimal_places": 2, "currency": "USD"});
            let mut fields = json!({
                "id": id,
                "charity_name": message("ongwatch test charity"),
                "charity_description": "",
                "charity_logo": "",
                "charity_website": "",
                "current_amount": cents(amount(26)),
                "target_amount": cents(amount(26).max(1) * 5),
            });
            match upstream {
                "start" => merge(&mut fields, json!({"started_at": time})),
                "stop" => merge(&mut fields, json!({"stopped_at": time})),
                _ => {}
            }
            (format!("channel.charity_campaign.{upstream}"), "1", fields)
        }
        "sub_end" => {
            user.put(&mut body, "");
            let fields = json!({"tier": "1000", "is_gift": false});
            ("channel.subscription.end".into(), "1", fields)
        }
        "vip" | "unvip" | "mod" | "unmod" => {
            user.put(&mut body, "");
            let ty = match kind.as_str() {
                "vip" => "channel.vip.add",
                "unvip" => "channel.vip.remove",
                "mod" => "channel.moderator.add",
                _ => "channel.moderator.remove",
            };
            (ty.into(), "1", json!({}))
        }
        "warn" => {
            user.put(&mut body, "");
            broadcaster.put(&mut body, "moderator_");
            let fields =
                json!({"reason": message("ongwatch test warning"), "chat_rules_cited": null});
            ("channel.warning.send".into(), "1", fields)
        }
        "unban_request" => {
            // `--field status=approved|denied` resolves the request instead of creating it.
            user.put(&mut body, "");
            match req.fields.get("status").map(String::as_str) {
                Some(status @ ("approved" | "denied")) => {
                    broadcaster.put(&mut body, "moderator_");
                    let fields = json!({
                        "id": id,
                        "resolution_text": message("ongwatch test resolution"),
                        "status": status,
                    });
                    ("channel.unban_request.resolve".into(), "1", fields)
                }
                _ => {
                    let fields = json!({
                        "id": id,
                        "text": message("ongwatch test unban request"),
                        "created_at": time,
                    });
                    ("channel.unban_request.create".into(), "1", fields)
                }
            }
        }
        _ => return None,
    };
    let mut body = Value::Object(body);
    merge(&mut body, fields);
    let overrides = req.fields.iter().filter(|(key, _)| {
        !(key.as_str() == "phase"
            && matches!(
                kind.as_str(),
                "hypetrain" | "poll" | "prediction" | "goal" | "charity_campaign"
            ))
    });
    apply_fields(&mut body, overrides);
    Some((ty, version.to_owned(), body))
}

/// A whole notification for a trigger request: [`eventsub_payload`] plus fresh metadata and
/// the condition a real subscription of that type would have.
pub fn trigger_notification(
    req: &TriggerRequest,
    broadcaster_login: &str,
    broadcaster_id: &str,
) -> Option<Notification> {
    let (kind, version, event) = eventsub_payload(req, broadcaster_login, broadcaster_id)?;
    // The condition a real subscription of that type has (an incoming raid for channel.raid).
    let condition = catalog::known()
        .find(|spec| spec.kind == kind)
        .map_or(Condition::Broadcaster, |spec| spec.condition)
        .build(broadcaster_id);
    Some(Notification {
        message_id: uuid::Uuid::new_v4().to_string(),
        timestamp: now(),
        subscription: Subscription {
            id: uuid::Uuid::new_v4().to_string(),
            kind,
            version,
            status: "enabled".to_owned(),
            condition,
        },
        event,
    })
}

struct Person {
    login: String,
    id: String,
    name: String,
}

impl Person {
    /// Without a real id, one derived from the login keeps the same tester the same user
    /// across triggers.
    fn new(name: &str, id: Option<&str>) -> Self {
        let login = name.to_lowercase();
        let id = id
            .map(str::to_owned)
            .unwrap_or_else(|| fnv1a(&login).to_string());
        Self {
            login,
            id,
            name: name.to_owned(),
        }
    }

    fn put(&self, body: &mut Map<String, Value>, prefix: &str) {
        body.insert(format!("{prefix}user_id"), self.id.clone().into());
        body.insert(format!("{prefix}user_login"), self.login.clone().into());
        body.insert(format!("{prefix}user_name"), self.name.clone().into());
    }

    fn contribution(&self, total: u64) -> Value {
        json!({
            "user_id": self.id, "user_login": self.login, "user_name": self.name,
            "type": "bits", "total": total,
        })
    }
}

fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

fn one_of<'a>(value: &'a str, allowed: &[&'a str]) -> &'a str {
    allowed
        .iter()
        .copied()
        .find(|a| *a == value)
        .unwrap_or(allowed[0])
}

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        target.extend(extra);
    }
}

fn apply_fields<'a>(body: &mut Value, fields: impl Iterator<Item = (&'a String, &'a String)>) {
    let Value::Object(body) = body else { return };
    for (key, text) in fields {
        let value = typed(body.get(key), text);
        body.insert(key.clone(), value);
    }
}

/// A `--field` value: ids such as `user_id=1234` must stay strings where the template has a
/// string, while `bits=50` must become a number.
fn typed(existing: Option<&Value>, text: &str) -> Value {
    if let Some(Value::String(_)) = existing {
        return Value::String(text.to_owned());
    }
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        "null" => return Value::Null,
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return n.into();
    }
    if let Some(n) = text
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    if text.starts_with(['{', '['])
        && let Ok(value) = serde_json::from_str(text)
    {
        return value;
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn request(kind: &str) -> TriggerRequest {
        TriggerRequest {
            kind: kind.into(),
            ..TriggerRequest::default()
        }
    }

    #[test]
    fn fields_keep_the_template_type() {
        let mut req = request("cheer");
        req.fields = BTreeMap::from([
            ("user_id".to_owned(), "1234".to_owned()),
            ("bits".to_owned(), "77".to_owned()),
            ("is_anonymous".to_owned(), "true".to_owned()),
            ("extra".to_owned(), "{\"a\":1}".to_owned()),
        ]);
        let (_, _, body) = eventsub_payload(&req, "me", "1").unwrap();
        assert_eq!(body["user_id"], json!("1234"));
        assert_eq!(body["bits"], json!(77));
        assert_eq!(body["is_anonymous"], json!(true));
        assert_eq!(body["extra"], json!({"a": 1}));
    }

    #[test]
    fn tips_are_not_eventsub() {
        assert!(eventsub_payload(&request("tip"), "me", "1").is_none());
    }

    #[test]
    fn phase_selects_the_subscription_and_is_not_a_field() {
        let mut req = request("prediction");
        req.fields.insert("phase".into(), "lock".into());
        let (ty, _, body) = eventsub_payload(&req, "me", "1").unwrap();
        assert_eq!(ty, "channel.prediction.lock");
        assert!(body.get("phase").is_none());
    }
}
