//! Discord webhook embeds for the events a streamer's Discord wants: cheers, tips, subs,
//! gifts, raids and going live (with title and category).

use serde_json::{Value, json};

use crate::event::{Direction, Event, EventKind, Tier, UserRef};

/// Discord accepts at most this many embeds in one webhook message.
pub const MAX_EMBEDS: usize = 10;

const PURPLE: u32 = 0x9146FF;
const GREEN: u32 = 0x2ECC71;
const GOLD: u32 = 0xF1C40F;
const ORANGE: u32 = 0xE67E22;
const RED: u32 = 0xE91916;

/// The embed for a bus payload, or `None` for kinds Discord is not told about.
pub fn embed(payload: &[u8]) -> Option<Value> {
    let event: Event = serde_json::from_slice(payload).ok()?;
    let (title, description, color, fields) = match &event.kind {
        EventKind::Cheer(c) => (
            format!("{} cheered {} bits", who(&c.user, c.anonymous), c.amount),
            c.message.clone(),
            PURPLE,
            vec![],
        ),
        EventKind::Tip(t) => (
            format!(
                "{} tipped {:.2} {}",
                who(&t.user, false),
                t.amount,
                t.currency
            ),
            t.message.clone(),
            GREEN,
            vec![],
        ),
        EventKind::Sub(s) | EventKind::Resub(s) => {
            let title = if s.months > 1 {
                format!(
                    "{} resubscribed ({}) for {} months",
                    who(&s.user, false),
                    tier(s.tier),
                    s.months
                )
            } else {
                format!("{} subscribed ({})", who(&s.user, false), tier(s.tier))
            };
            (title, s.message.clone().unwrap_or_default(), GOLD, vec![])
        }
        EventKind::Gift(g) => (
            format!(
                "{} gifted {} {} sub{}",
                who(&g.user, g.anonymous),
                g.count,
                tier(g.tier),
                if g.count == 1 { "" } else { "s" }
            ),
            String::new(),
            GOLD,
            vec![],
        ),
        EventKind::Raid(r) if r.direction == Direction::Incoming => (
            format!(
                "{} is raiding with {} viewers",
                who(&r.user, false),
                r.viewers
            ),
            String::new(),
            ORANGE,
            vec![],
        ),
        EventKind::Online(o) => {
            let mut fields = Vec::new();
            if let Some(category) = o.category.as_deref().filter(|c| !c.is_empty()) {
                fields.push(json!({"name": "Category", "value": category, "inline": true}));
            }
            (
                format!("{} is live", event.channel),
                o.title.clone().unwrap_or_default(),
                RED,
                fields,
            )
        }
        _ => return None,
    };
    let mut embed = json!({
        "title": clip(&title, 256),
        "color": color,
        "timestamp": crate::event::format_time(&event.time),
        "footer": {"text": event.provider},
    });
    if !description.is_empty() {
        embed["description"] = Value::String(clip(&description, 4096));
    }
    if !fields.is_empty() {
        embed["fields"] = Value::Array(fields);
    }
    Some(embed)
}

/// The webhook body for some embeds. Mentions are off: a viewer's message must not be able
/// to ping @everyone.
pub fn message(embeds: Vec<Value>) -> Value {
    json!({"embeds": embeds, "allowed_mentions": {"parse": []}})
}

fn who(user: &UserRef, anonymous: bool) -> String {
    if anonymous {
        return "Anonymous".into();
    }
    user.display_name
        .clone()
        .or_else(|| user.user.clone())
        .unwrap_or_else(|| "Anonymous".into())
}

fn tier(tier: Tier) -> &'static str {
    match tier {
        Tier::One => "Tier 1",
        Tier::Two => "Tier 2",
        Tier::Three => "Tier 3",
        Tier::Prime => "Prime",
    }
}

fn clip(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Cheer, Online};

    #[test]
    fn cheers_and_go_live_get_embeds_chat_does_not() {
        let cheer = Event::new(
            "twitch:1",
            "twitch",
            "chan",
            EventKind::Cheer(Cheer {
                user: UserRef::named("Alinsa_Vix"),
                amount: 2490,
                currency: "bits".into(),
                message: "Cheer2490 CHAOS".into(),
                anonymous: false,
            }),
        );
        let embed = embed(&serde_json::to_vec(&cheer).unwrap()).unwrap();
        assert_eq!(embed["title"], "Alinsa_Vix cheered 2490 bits");
        assert_eq!(embed["description"], "Cheer2490 CHAOS");

        let live = Event::new(
            "twitch:2",
            "twitch",
            "chan",
            EventKind::Online(Online {
                started_at: None,
                title: Some("Speedruns".into()),
                category: Some("Celeste".into()),
            }),
        );
        let embed = super::embed(&serde_json::to_vec(&live).unwrap()).unwrap();
        assert_eq!(embed["title"], "chan is live");
        assert_eq!(embed["description"], "Speedruns");
        assert_eq!(embed["fields"][0]["value"], "Celeste");

        assert!(super::embed(br#"{"level":4}"#).is_none());
    }
}
