//! Server frames of `/ws/chat` (CONTRACT §6, the seed's TwitchBackend protocol), built from
//! contract events.

use serde_json::{Value, json};

use crate::event::{Event, EventKind, ModerationAction, format_time};

/// The frame for an event, if `/ws/chat` shows that kind.
pub fn frame(event: &Event) -> Option<String> {
    let timestamp = format_time(&event.time);
    let value = match &event.kind {
        EventKind::Chat(chat) => json!({
            "type": "chat_message",
            "channel": event.channel,
            "user": {
                "username": chat.user.user,
                "display_name": chat.user.display_name,
                "user_id": chat.user.user_id,
                "color": chat.color,
                "is_subscriber": chat.is_subscriber,
                "is_moderator": chat.is_moderator,
                "is_vip": chat.is_vip,
                "is_broadcaster": chat.is_broadcaster,
                "badges": chat.badges,
            },
            "message": chat.message,
            "timestamp": timestamp,
            "message_id": chat.message_id,
            "emotes": chat.emotes,
        }),
        kind => {
            let event_type = event_type(kind)?;
            // The contract event itself is the data: flat, documented, the same as on the bus.
            let mut data = serde_json::to_value(event).ok()?;
            if let Value::Object(map) = &mut data {
                map.remove("raw");
            }
            json!({
                "type": "twitch_event",
                "event_type": event_type,
                "channel": event.channel,
                "data": data,
                "timestamp": timestamp,
            })
        }
    };
    serde_json::to_string(&value).ok()
}

fn event_type(kind: &EventKind) -> Option<&'static str> {
    Some(match kind {
        EventKind::Cheer(_) => "bits",
        EventKind::Sub(_) => "subscription",
        EventKind::Resub(_) => "resubscription",
        EventKind::Gift(_) => "subgift",
        EventKind::Raid(_) => "raid",
        EventKind::Notice(_) => "notice",
        EventKind::Moderation(m) => match m.action {
            ModerationAction::Timeout => "timeout",
            ModerationAction::Ban => "ban",
            ModerationAction::Unban => "unban",
            ModerationAction::Delete => "message_deleted",
            ModerationAction::Clear => "clear_chat",
            ModerationAction::ClearUser => "clear_user",
            // Role changes, warnings and unban requests were never part of the seed protocol.
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::twitch::irc::normalize_line;

    #[test]
    fn chat_message_frame_has_the_seed_fields() {
        let line = "@badge-info=subscriber/5;badges=broadcaster/1,subscriber/0;color=#19E6E6;display-name=randers;emotes=25:6-10;id=7eb848c9-1060-4e5e-9f4c-612877982e79;mod=0;room-id=40286300;subscriber=1;tmi-sent-ts=1594556065407;user-id=40286300 :randers!randers@randers.tmi.twitch.tv PRIVMSG #randers :hello Kappa";
        let events = normalize_line(line, false).unwrap();
        let frame: Value = serde_json::from_str(&frame(&events[0]).unwrap()).unwrap();
        assert_eq!(frame["type"], "chat_message");
        assert_eq!(frame["channel"], "randers");
        assert_eq!(frame["message"], "hello Kappa");
        assert_eq!(frame["message_id"], "7eb848c9-1060-4e5e-9f4c-612877982e79");
        assert_eq!(frame["timestamp"], "2020-07-12T12:14:25.407Z");
        let user = &frame["user"];
        assert_eq!(user["username"], "randers");
        assert_eq!(user["display_name"], "randers");
        assert_eq!(user["user_id"], "40286300");
        assert_eq!(user["color"], "#19E6E6");
        assert_eq!(user["is_broadcaster"], true);
        assert_eq!(user["is_subscriber"], true);
        assert_eq!(user["is_moderator"], false);
        assert_eq!(user["is_vip"], false);
        assert_eq!(user["badges"]["broadcaster"], "1");
        assert_eq!(frame["emotes"][0]["name"], "Kappa");
    }

    #[test]
    fn timeouts_are_twitch_events() {
        let line = "@ban-duration=1;room-id=11148817;target-user-id=148973258;tmi-sent-ts=1594553828245 :tmi.twitch.tv CLEARCHAT #pajlada :fabzeef";
        let events = normalize_line(line, false).unwrap();
        let frame: Value = serde_json::from_str(&frame(&events[0]).unwrap()).unwrap();
        assert_eq!(frame["type"], "twitch_event");
        assert_eq!(frame["event_type"], "timeout");
        assert_eq!(frame["channel"], "pajlada");
        assert_eq!(frame["data"]["user"], "fabzeef");
        assert_eq!(frame["data"]["duration_seconds"], 1);
    }
}
