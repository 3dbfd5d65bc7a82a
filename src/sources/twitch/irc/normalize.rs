//! Typed IRC messages → contract [`Event`]s.
//!
//! Ids: `twitch-irc:<id tag>` for everything Twitch gives an id (chat, every USERNOTICE), so a
//! line received twice — after a reconnect, or on two connections — yields the same id and the
//! hub publishes it once. The cheer carved out of a chat message is `twitch-irc:<id>:cheer`,
//! being a second event of the same line. Lines without an id tag get one built from what
//! identifies them: `twitch-irc:clearmsg:<target-msg-id>` and
//! `twitch-irc:clearchat:<room>:<target-user-id|all>:<tmi-sent-ts>`; the rest (room modes,
//! server notices, whispers, joins) carry nothing stable and get a random one.
//!
//! Gifts: one gift action is one `gift` event. A `submysterygift` ("X is gifting 5 subs") is the
//! action: `count` = 5, `recipients` empty (Twitch names them afterwards, one `subgift` line
//! each). Those follow-up lines carry the mystery gift's `msg-param-community-gift-id` and
//! become `notice` events (`notice_type: "subgift"`) so nothing is counted twice and nothing is
//! dropped. A `subgift` without that tag is a gift of its own: `count` 1, its recipient in
//! `recipients`. Anonymous gifts (`anon*` msg-ids or the `ananonymousgifter` stand-in account)
//! carry no user and `anonymous: true`.
//!
//! Connection bookkeeping (PING, PONG, RECONNECT, CAP, numerics, USERSTATE, GLOBALUSERSTATE)
//! yields no event: the connection acts on it. Every other line without a topic of its own
//! (ROOMSTATE, NOTICE, WHISPER, JOIN, PART, unknown commands) becomes a `raw` event on
//! `raw/twitch/irc.<command>`, never dropped silently.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::parse::{IrcError, IrcMessage};
use super::typed::{
    ChatUser, ClearChat, ClearMsg, Emotes, Privmsg, TwitchMessage, UserNotice, UserNoticeEvent,
};
use crate::event::{
    ChatMessage, ChatNotice, Cheer, Direction, Emote, Event, EventKind, Gift, Moderation,
    ModerationAction, Raid, Raw, Sub, Tier, UserRef,
};

const PROVIDER: &str = "twitch";

/// Parses one line and normalizes it.
pub fn normalize_line(line: &str, include_raw: bool) -> Result<Vec<Event>, IrcError> {
    normalize(&IrcMessage::parse(line)?, include_raw)
}

/// The contract events one IRC line stands for: none, one, or two (a chat message with bits is
/// also a cheer). With `include_raw` every event carries the line as `raw`.
pub fn normalize(msg: &IrcMessage<'_>, include_raw: bool) -> Result<Vec<Event>, IrcError> {
    let mut events = match TwitchMessage::from_irc(msg)? {
        TwitchMessage::Privmsg(p) => privmsg(&p),
        TwitchMessage::UserNotice(n) => partner(vec![user_notice(&n)], n.source_room_id),
        TwitchMessage::ClearChat(c) => vec![clear_chat(&c)],
        TwitchMessage::ClearMsg(c) => vec![clear_msg(&c)],
        TwitchMessage::Ping(_)
        | TwitchMessage::Pong(_)
        | TwitchMessage::Reconnect
        | TwitchMessage::UserState(_) => Vec::new(),
        TwitchMessage::Other if msg.command() == "CAP" || is_numeric(msg.command()) => Vec::new(),
        TwitchMessage::Whisper(w) => vec![raw_event(msg, w.recipient)],
        TwitchMessage::RoomState(_)
        | TwitchMessage::Notice(_)
        | TwitchMessage::Join(_)
        | TwitchMessage::Part(_)
        | TwitchMessage::Other => vec![raw_event(msg, msg.channel().unwrap_or_default())],
    };
    if include_raw {
        for event in &mut events {
            event.raw = Some(Value::String(msg.raw().to_owned()));
        }
    }
    Ok(events)
}

fn is_numeric(command: &str) -> bool {
    command.bytes().all(|b| b.is_ascii_digit())
}

fn event(id: String, channel: &str, sent_at_ms: Option<i64>, kind: EventKind) -> Event {
    let event = Event::new(id, PROVIDER, channel, kind).on_platform(PROVIDER);
    match sent_at_ms.and_then(DateTime::<Utc>::from_timestamp_millis) {
        Some(time) => event.at(time),
        None => event,
    }
}

fn line_id(message_id: Option<&str>) -> String {
    match message_id {
        Some(id) => format!("twitch-irc:{id}"),
        None => random_id(),
    }
}

fn random_id() -> String {
    format!("twitch-irc:{}", uuid::Uuid::new_v4())
}

fn user_ref(user: &ChatUser<'_>) -> UserRef {
    UserRef {
        user: Some(user.login.to_owned()),
        user_id: user.user_id.map(str::to_owned),
        display_name: user.display_name.map(|d| d.unescape().into_owned()),
    }
}

fn privmsg(p: &Privmsg<'_>) -> Vec<Event> {
    let user = user_ref(&p.sender);
    let chat = ChatMessage {
        user: user.clone(),
        message_id: p.message_id.unwrap_or_default().to_owned(),
        message: p.text.to_owned(),
        color: p.sender.color.map(str::to_owned),
        badges: p
            .sender
            .badges
            .iter()
            .map(|(set, version)| (set.to_owned(), version.to_owned()))
            .collect::<BTreeMap<_, _>>(),
        is_subscriber: p.sender.is_subscriber,
        is_moderator: p.sender.is_moderator,
        is_vip: p.sender.is_vip,
        is_broadcaster: p.sender.is_broadcaster,
        emotes: emotes(p.text, p.emotes),
        bits: p.bits,
        reply_to: p.reply.as_ref().map(|r| r.parent_message_id.to_owned()),
    };
    let id = line_id(p.message_id);
    let cheer = p.bits.map(|bits| {
        event(
            format!("{id}:cheer"),
            p.channel,
            p.sent_at_ms,
            EventKind::Cheer(Cheer {
                user: user.clone(),
                amount: bits,
                currency: "bits".to_owned(),
                message: p.text.to_owned(),
                anonymous: false,
            }),
        )
    });
    let mut events = vec![event(id, p.channel, p.sent_at_ms, EventKind::Chat(chat))];
    events.extend(cheer);
    partner(events, p.source_room_id)
}

/// Marks a shared chat partner's lines. IRC names the partner's room id only, not its login.
fn partner(events: Vec<Event>, source_room_id: Option<&str>) -> Vec<Event> {
    events
        .into_iter()
        .map(|e| e.from_partner(None, source_room_id.map(str::to_owned)))
        .collect()
}

/// Emote names cut out of the text; positions are characters, `end` inclusive, as Twitch
/// sends them. Twitch has sent ranges past the end of the text, so they are clamped.
fn emotes(text: &str, tag: Emotes<'_>) -> Vec<Emote> {
    let mut found: Vec<_> = tag.iter().collect();
    if found.is_empty() {
        return Vec::new();
    }
    found.sort_by_key(|(_, start, _)| *start);
    let offsets: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = offsets.len() - 1;
    found
        .into_iter()
        .map(|(id, start, end)| {
            let from = start.min(chars);
            let to = end.saturating_add(1).clamp(from, chars);
            Emote {
                id: id.to_owned(),
                name: text[offsets[from]..offsets[to]].to_owned(),
                start,
                end,
            }
        })
        .collect()
}

fn user_notice(n: &UserNotice<'_>) -> Event {
    let sender = || n.sender.as_ref().map(user_ref).unwrap_or_default();
    let message = n.text.filter(|t| !t.is_empty()).map(str::to_owned);
    let kind = match &n.event {
        UserNoticeEvent::Sub(s) => {
            let sub = Sub {
                user: sender(),
                // Twitch always sends the plan; should it not, the base tier is the safe guess.
                tier: s.tier.unwrap_or(Tier::One),
                months: s.cumulative_months.unwrap_or(1),
                streak_months: s.streak_months,
                is_gift: false,
                message,
            };
            if s.is_resub {
                EventKind::Resub(sub)
            } else {
                EventKind::Sub(sub)
            }
        }
        UserNoticeEvent::SubGift(g) if g.community_gift_id.is_none() => EventKind::Gift(Gift {
            user: if g.anonymous {
                UserRef::default()
            } else {
                sender()
            },
            tier: g.tier.unwrap_or(Tier::One),
            count: 1,
            recipients: g.recipient_login.map(str::to_owned).into_iter().collect(),
            anonymous: g.anonymous,
            cumulative_total: g.sender_total,
        }),
        UserNoticeEvent::MysteryGift(g) => EventKind::Gift(Gift {
            user: if g.anonymous {
                UserRef::default()
            } else {
                sender()
            },
            tier: g.tier.unwrap_or(Tier::One),
            count: g.count,
            recipients: Vec::new(),
            anonymous: g.anonymous,
            cumulative_total: g.sender_total,
        }),
        UserNoticeEvent::Raid(r) => EventKind::Raid(Raid {
            user: UserRef {
                user: Some(r.login.to_owned()),
                user_id: n.sender.as_ref().and_then(|s| s.user_id).map(str::to_owned),
                display_name: r.display_name.map(|d| d.unescape().into_owned()),
            },
            direction: Direction::Incoming,
            viewers: r.viewers,
        }),
        UserNoticeEvent::Announcement { .. } => EventKind::Notice(ChatNotice {
            user: sender(),
            notice_type: "announcement".to_owned(),
            message: n.text.unwrap_or_default().to_owned(),
        }),
        UserNoticeEvent::SubGift(g) => notice(n, !g.anonymous),
        UserNoticeEvent::GiftPaidUpgrade { .. } => typed_notice(n, "gift_paid_upgrade"),
        UserNoticeEvent::BitsBadgeTier { .. } => typed_notice(n, "bits_badge_tier"),
        UserNoticeEvent::RewardGift { .. } => typed_notice(n, "reward_gift"),
        UserNoticeEvent::ViewerMilestone { .. } => typed_notice(n, "viewer_milestone"),
        UserNoticeEvent::SharedChatNotice { source_kind } => {
            typed_notice(n, &shared_chat_notice_type(*source_kind))
        }
        UserNoticeEvent::Other => notice(n, true),
    };
    event(line_id(n.message_id), n.channel, n.sent_at_ms, kind)
}

/// A USERNOTICE kind EventSub's `channel.chat.notification` also reports, named as EventSub
/// names it (`notice_type`) so both sources agree.
fn typed_notice(n: &UserNotice<'_>, notice_type: &str) -> EventKind {
    notice_of(n, true, notice_type)
}

/// `sharedchatnotice` with `source-msg-id` → EventSub's `shared_chat_<kind>`: a partner
/// channel's sub, gift or raid, which is theirs and never counted as ours.
fn shared_chat_notice_type(source_kind: Option<&str>) -> String {
    let kind = match source_kind {
        Some("subgift" | "anonsubgift") => "sub_gift",
        Some("submysterygift" | "anonsubmysterygift") => "community_sub_gift",
        Some("giftpaidupgrade" | "anongiftpaidupgrade") => "gift_paid_upgrade",
        Some("primepaidupgrade") => "prime_paid_upgrade",
        Some("paybackgift" | "payforward") => "pay_it_forward",
        Some(other) => other,
        None => "notice",
    };
    format!("shared_chat_{kind}")
}

/// Any other USERNOTICE: Twitch's own sentence about it, or what the user typed if Twitch
/// has none.
fn notice(n: &UserNotice<'_>, named: bool) -> EventKind {
    notice_of(n, named, n.kind)
}

fn notice_of(n: &UserNotice<'_>, named: bool, notice_type: &str) -> EventKind {
    EventKind::Notice(ChatNotice {
        user: match &n.sender {
            Some(sender) if named => user_ref(sender),
            _ => UserRef::default(),
        },
        notice_type: notice_type.to_owned(),
        message: n
            .system_message
            .map(|s| s.unescape().into_owned())
            .or_else(|| n.text.map(str::to_owned))
            .unwrap_or_default(),
    })
}

fn clear_chat(c: &ClearChat<'_>) -> Event {
    let action = match (c.target_login, c.duration_seconds) {
        (None, _) => ModerationAction::Clear,
        (Some(_), Some(_)) => ModerationAction::Timeout,
        (Some(_), None) => ModerationAction::Ban,
    };
    let id = match c.sent_at_ms {
        Some(ts) => format!(
            "twitch-irc:clearchat:{}:{}:{ts}",
            c.room_id.unwrap_or(c.channel),
            c.target_user_id.or(c.target_login).unwrap_or("all"),
        ),
        None => random_id(),
    };
    let kind = EventKind::Moderation(Moderation {
        user: UserRef {
            user: c.target_login.map(str::to_owned),
            user_id: c.target_user_id.map(str::to_owned),
            display_name: None,
        },
        action,
        moderator: None,
        reason: None,
        duration_seconds: c
            .duration_seconds
            .filter(|_| action == ModerationAction::Timeout),
        message_id: None,
    });
    event(id, c.channel, c.sent_at_ms, kind)
}

fn clear_msg(c: &ClearMsg<'_>) -> Event {
    let kind = EventKind::Moderation(Moderation {
        user: UserRef {
            user: c.login.map(str::to_owned),
            user_id: None,
            display_name: None,
        },
        action: ModerationAction::Delete,
        moderator: None,
        reason: None,
        duration_seconds: None,
        message_id: Some(c.target_message_id.to_owned()),
    });
    event(
        format!("twitch-irc:clearmsg:{}", c.target_message_id),
        c.channel,
        c.sent_at_ms,
        kind,
    )
}

/// A line with no topic of its own, as JSON: command, prefix, unescaped tags, parameters.
fn raw_event(msg: &IrcMessage<'_>, channel: &str) -> Event {
    let tags: Map<String, Value> = msg
        .tags()
        .iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.unescape().into_owned())))
        .collect();
    let data = json!({
        "command": msg.command(),
        "prefix": msg.prefix().map(|p| p.raw),
        "tags": tags,
        "params": msg.params().collect::<Vec<_>>(),
    });
    let sent_at_ms = msg.tag("tmi-sent-ts").and_then(|t| t.raw().parse().ok());
    event(
        random_id(),
        channel,
        sent_at_ms,
        EventKind::Raw(Raw {
            upstream_type: format!("irc.{}", msg.command().to_ascii_lowercase()),
            data,
        }),
    )
}
