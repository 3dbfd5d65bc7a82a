//! EventSub notification → contract [`Event`]. See the module docs of `eventsub` for the rule
//! that decides which of two duplicate reports is published.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use thiserror::Error;

use super::body::Body;
use super::frame::Notification;
use crate::event::{
    AdBreak, ChannelUpdate, Charity, CharityCampaign, ChatMessage, ChatNotice, Cheer, Direction,
    Emote, Event, EventKind, Follow, Gift, Goal, HypeTrain, Moderation, ModerationAction, Offline,
    Online, Phase, Poll, PollChoice, Powerup, Prediction, PredictionOutcome, Raid, Raw, Redemption,
    SessionPhase, SharedChat, SharedChatParticipant, Shoutout, Sub, SubEnd, Tier, UserRef,
};

pub const PROVIDER: &str = "twitch";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NormalizeError {
    #[error("{subscription_type} event: field `{field}` is missing or invalid")]
    Field {
        subscription_type: String,
        field: String,
    },
}

/// What the normalizer needs to know about the account it runs for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Our broadcaster's user id: decides raid direction.
    pub broadcaster_id: String,
    /// Our broadcaster's login: the `channel` when an event does not name one.
    pub broadcaster_login: String,
    /// `[bus] include_raw`: attach the upstream event as `raw`.
    pub include_raw: bool,
    /// The subscription types actually created, when known. `None` means the default list,
    /// so every dedicated type (channel.cheer, channel.subscribe, ...) is assumed present.
    pub subscribed: Option<BTreeSet<String>>,
}

impl Context {
    pub fn new(broadcaster_id: impl Into<String>, broadcaster_login: impl Into<String>) -> Self {
        Self {
            broadcaster_id: broadcaster_id.into(),
            broadcaster_login: broadcaster_login.into(),
            ..Self::default()
        }
    }

    /// Whether the dedicated subscription `ty` delivers this kind, making a duplicate report
    /// (bits.use cheer, chat.notification sub/resub/gift/raid/charity) the loser.
    fn has(&self, ty: &str) -> bool {
        self.subscribed.as_ref().is_none_or(|set| set.contains(ty))
    }
}

/// Normalizes one notification.
///
/// `Ok(None)` means the notification duplicates one published from another subscription
/// type. On `Err` the payload did not have what its type promises; publish [`raw_event`]
/// instead so it is not dropped.
pub fn normalize(n: &Notification, ctx: &Context) -> Result<Option<Event>, NormalizeError> {
    let ty = n.subscription.kind.as_str();
    let body = Body::new(ty, &n.event);
    let kind = match ty {
        "channel.cheer" => Some(cheer(&body)?),
        "channel.bits.use" => bits_use(&body, ctx)?,
        "channel.subscribe" => Some(subscribe(&body)?),
        "channel.subscription.message" => Some(resub(&body)?),
        "channel.subscription.gift" => Some(gift(&body)?),
        "channel.follow" => Some(EventKind::Follow(Follow {
            user: body.user(""),
        })),
        "channel.raid" => Some(raid(&body, ctx)?),
        "channel.channel_points_custom_reward_redemption.add" => Some(custom_redemption(&body)?),
        "channel.channel_points_automatic_reward_redemption.add" => {
            Some(automatic_redemption(&body)?)
        }
        "channel.hype_train.begin" => Some(hype_train(&body, Phase::Begin)?),
        "channel.hype_train.progress" => Some(hype_train(&body, Phase::Progress)?),
        "channel.hype_train.end" => Some(hype_train(&body, Phase::End)?),
        "channel.poll.begin" => Some(poll(&body, Phase::Begin)?),
        "channel.poll.progress" => Some(poll(&body, Phase::Progress)?),
        "channel.poll.end" => Some(poll(&body, Phase::End)?),
        "channel.prediction.begin" => Some(prediction(&body, Phase::Begin)?),
        "channel.prediction.progress" => Some(prediction(&body, Phase::Progress)?),
        "channel.prediction.lock" => Some(prediction(&body, Phase::Lock)?),
        "channel.prediction.end" => Some(prediction(&body, Phase::End)?),
        "channel.charity_campaign.donate" => Some(EventKind::Charity(charity(
            &body,
            body.user(""),
            "amount.decimal_places",
        )?)),
        "channel.shoutout.create" => Some(shoutout(&body, Direction::Outgoing)?),
        "channel.shoutout.receive" => Some(shoutout(&body, Direction::Incoming)?),
        "channel.ad_break.begin" => Some(EventKind::AdBreak(AdBreak {
            duration_seconds: body.need_u64("duration_seconds")?,
            automatic: body.bool("is_automatic").unwrap_or(false),
        })),
        "stream.online" => Some(EventKind::Online(Online {
            started_at: body.text("started_at"),
            title: None,
            category: None,
        })),
        "stream.offline" => Some(EventKind::Offline(Offline {})),
        "channel.shared_chat.begin" => Some(shared_chat(&body, SessionPhase::Begin)?),
        "channel.shared_chat.update" => Some(shared_chat(&body, SessionPhase::Update)?),
        "channel.shared_chat.end" => Some(shared_chat(&body, SessionPhase::End)?),
        "channel.update" => Some(EventKind::ChannelUpdate(ChannelUpdate {
            title: body.str("title").unwrap_or_default().to_owned(),
            category: body.str("category_name").unwrap_or_default().to_owned(),
            category_id: body.text("category_id"),
            language: body.text("language"),
        })),
        "channel.chat.message" => Some(chat_message(&body)?),
        "channel.chat.notification" => chat_notification(&body, ctx)?,
        "channel.chat.clear" => Some(moderation(UserRef::default(), ModerationAction::Clear)),
        "channel.chat.clear_user_messages" => Some(moderation(
            body.user("target_"),
            ModerationAction::ClearUser,
        )),
        "channel.chat.message_delete" => Some(EventKind::Moderation(Moderation {
            message_id: Some(body.need_str("message_id")?.to_owned()),
            ..moderation_of(body.user("target_"), ModerationAction::Delete)
        })),
        "channel.ban" => Some(ban(&body)),
        "channel.unban" => Some(EventKind::Moderation(Moderation {
            moderator: body.login("moderator_user_login"),
            ..moderation_of(body.user(""), ModerationAction::Unban)
        })),
        "channel.goal.begin" => Some(goal(&body, Phase::Begin)?),
        "channel.goal.progress" => Some(goal(&body, Phase::Progress)?),
        "channel.goal.end" => Some(goal(&body, Phase::End)?),
        "channel.charity_campaign.start" => Some(charity_campaign(&body, Phase::Begin)?),
        "channel.charity_campaign.progress" => Some(charity_campaign(&body, Phase::Progress)?),
        "channel.charity_campaign.stop" => Some(charity_campaign(&body, Phase::End)?),
        "channel.subscription.end" => Some(EventKind::SubEnd(SubEnd {
            user: body.user(""),
            tier: tier(&body, "tier")?,
            is_gift: body.bool("is_gift").unwrap_or(false),
        })),
        "channel.vip.add" => Some(role(&body, ModerationAction::Vip)?),
        "channel.vip.remove" => Some(role(&body, ModerationAction::Unvip)?),
        "channel.moderator.add" => Some(role(&body, ModerationAction::Mod)?),
        "channel.moderator.remove" => Some(role(&body, ModerationAction::Unmod)?),
        "channel.unban_request.create" => Some(EventKind::Moderation(Moderation {
            reason: body.text("text"),
            ..moderation_of(need_user(&body)?, ModerationAction::UnbanRequest)
        })),
        "channel.unban_request.resolve" => {
            // `canceled` (the user withdrew it) and any newer status stay raw: no moderator
            // decided anything.
            match body.str("status") {
                Some("approved") => Some(unban_resolution(
                    &body,
                    ModerationAction::ApproveUnbanRequest,
                )?),
                Some("denied") => {
                    Some(unban_resolution(&body, ModerationAction::DenyUnbanRequest)?)
                }
                _ => Some(raw_kind(n)),
            }
        }
        "channel.warning.send" => Some(warning(&body)?),
        // Everything else, e.g. channel.suspicious_user.*, channel.warning.acknowledge and
        // channel.moderate (docs/TWITCH.md says why they stay raw).
        _ => Some(raw_kind(n)),
    };
    Ok(kind.map(|kind| build(n, ctx, kind)))
}

/// The notification as an `R/raw/twitch/<type>` event, for types without a topic and for
/// payloads [`normalize`] rejected.
pub fn raw_event(n: &Notification, ctx: &Context) -> Event {
    build(n, ctx, raw_kind(n))
}

fn raw_kind(n: &Notification) -> EventKind {
    EventKind::Raw(Raw {
        upstream_type: n.subscription.kind.clone(),
        data: n.event.clone(),
    })
}

fn build(n: &Notification, ctx: &Context, kind: EventKind) -> Event {
    let body = Body::new(&n.subscription.kind, &n.event);
    let channel = channel(&n.subscription.kind, &body, ctx);
    let time = event_time(&n.subscription.kind, &body).unwrap_or(n.timestamp);
    let mut event = Event::new(format!("twitch:{}", n.message_id), PROVIDER, channel, kind)
        .at(time)
        .on_platform(PROVIDER);
    if let Some((login, id)) = partner_channel(&body, ctx) {
        event = event.from_partner(login, Some(id));
    }
    if ctx.include_raw {
        event.raw = Some(n.event.clone());
    }
    event
}

/// During a shared chat session, the channel an event happened in when it is not ours:
/// `source_broadcaster_user_*` is null for the own channel's events and names the partner
/// otherwise (channel.chat.message, channel.chat.notification, channel.chat.message_delete,
/// channel.chat.clear_user_messages). A source equal to the broadcaster is ours all the same.
fn partner_channel(body: &Body, ctx: &Context) -> Option<(Option<String>, String)> {
    let id = body.text("source_broadcaster_user_id")?;
    let own = body
        .str("broadcaster_user_id")
        .unwrap_or(ctx.broadcaster_id.as_str());
    if id == own || (!ctx.broadcaster_id.is_empty() && id == ctx.broadcaster_id) {
        return None;
    }
    Some((body.login("source_broadcaster_user_login"), id))
}

/// The broadcaster the event happened to; for a raid, whichever side is us.
fn channel(ty: &str, body: &Body, ctx: &Context) -> String {
    let login = if ty == "channel.raid" {
        match raid_direction(body, ctx) {
            Direction::Incoming => body.login("to_broadcaster_user_login"),
            Direction::Outgoing => body.login("from_broadcaster_user_login"),
        }
    } else {
        // charity_campaign.donate has been documented with both spellings.
        body.login("broadcaster_user_login")
            .or_else(|| body.login("broadcaster_login"))
    };
    login.unwrap_or_else(|| ctx.broadcaster_login.to_lowercase())
}

/// When the event's own time says when it happened, it beats the delivery time, which is
/// later for redeliveries.
fn event_time(ty: &str, body: &Body) -> Option<DateTime<Utc>> {
    let field = match ty {
        "channel.follow" => "followed_at",
        "channel.channel_points_custom_reward_redemption.add"
        | "channel.channel_points_automatic_reward_redemption.add" => "redeemed_at",
        "channel.ban" => "banned_at",
        "stream.online"
        | "channel.ad_break.begin"
        | "channel.shoutout.create"
        | "channel.shoutout.receive"
        | "channel.hype_train.begin"
        | "channel.poll.begin"
        | "channel.prediction.begin" => "started_at",
        "channel.hype_train.end" | "channel.poll.end" | "channel.prediction.end" => "ended_at",
        "channel.prediction.lock" => "locked_at",
        "channel.goal.begin" | "channel.charity_campaign.start" => "started_at",
        "channel.goal.end" => "ended_at",
        "channel.charity_campaign.stop" => "stopped_at",
        "channel.unban_request.create" => "created_at",
        _ => return None,
    };
    body.time(field)
}

fn tier(body: &Body, path: &str) -> Result<Tier, NormalizeError> {
    body.str(path)
        .and_then(Tier::from_twitch)
        .ok_or_else(|| body.missing(path))
}

/// Anonymous actions still carry a placeholder user on some paths; the contract says
/// anonymous means no user at all.
fn user_unless(anonymous: bool, body: &Body, prefix: &str) -> UserRef {
    if anonymous {
        UserRef::default()
    } else {
        body.user(prefix)
    }
}

fn cheer(body: &Body) -> Result<EventKind, NormalizeError> {
    let anonymous = body.bool("is_anonymous").unwrap_or(false);
    Ok(EventKind::Cheer(Cheer {
        user: user_unless(anonymous, body, ""),
        amount: body.need_u64("bits")?,
        currency: "bits".to_owned(),
        message: body.str("message").unwrap_or_default().to_owned(),
        anonymous,
    }))
}

fn bits_use(body: &Body, ctx: &Context) -> Result<Option<EventKind>, NormalizeError> {
    let kind = body.str("type").unwrap_or("cheer");
    if kind == "cheer" {
        if ctx.has("channel.cheer") {
            return Ok(None);
        }
        return Ok(Some(EventKind::Cheer(Cheer {
            user: body.user(""),
            amount: body.need_u64("bits")?,
            currency: "bits".to_owned(),
            message: body.str("message.text").unwrap_or_default().to_owned(),
            anonymous: false,
        })));
    }
    // `power_up`, and any newer way to spend bits outside a cheer (e.g. `combo`): bits spent
    // on an effect rather than a message, which is what the powerups topic carries.
    let power_up = if kind == "power_up" {
        body.str("power_up.type").unwrap_or(kind)
    } else {
        kind
    };
    Ok(Some(EventKind::Powerup(Powerup {
        user: body.user(""),
        amount: body.need_u64("bits")?,
        currency: "bits".to_owned(),
        power_up: power_up.to_owned(),
        message: body.text("message.text"),
    })))
}

fn subscribe(body: &Body) -> Result<EventKind, NormalizeError> {
    Ok(EventKind::Sub(Sub {
        user: body.user(""),
        tier: tier(body, "tier")?,
        months: 1,
        streak_months: None,
        is_gift: body.bool("is_gift").unwrap_or(false),
        message: None,
    }))
}

fn resub(body: &Body) -> Result<EventKind, NormalizeError> {
    Ok(EventKind::Resub(Sub {
        user: body.user(""),
        tier: tier(body, "tier")?,
        months: body.need_u32("cumulative_months")?,
        streak_months: body.u32("streak_months"),
        is_gift: false,
        message: body.text("message.text"),
    }))
}

fn gift(body: &Body) -> Result<EventKind, NormalizeError> {
    let anonymous = body.bool("is_anonymous").unwrap_or(false);
    Ok(EventKind::Gift(Gift {
        user: user_unless(anonymous, body, ""),
        tier: tier(body, "tier")?,
        count: body.need_u32("total")?,
        // channel.subscription.gift does not name recipients; each one arrives as its own
        // channel.subscribe with is_gift.
        recipients: Vec::new(),
        anonymous,
        cumulative_total: body.u32("cumulative_total"),
    }))
}

/// Incoming when we are the target. The ids decide; when they match neither side (a mock
/// with made-up ids) the subscription's side does, and incoming is the default.
fn raid_direction(body: &Body, ctx: &Context) -> Direction {
    let is_us = |side: &str| {
        let id = body.str(&format!("{side}_broadcaster_user_id"));
        let login = body.str(&format!("{side}_broadcaster_user_login"));
        (!ctx.broadcaster_id.is_empty() && id == Some(ctx.broadcaster_id.as_str()))
            || (!ctx.broadcaster_login.is_empty()
                && login.is_some_and(|l| l.eq_ignore_ascii_case(&ctx.broadcaster_login)))
    };
    if !is_us("to") && is_us("from") {
        Direction::Outgoing
    } else {
        Direction::Incoming
    }
}

fn raid(body: &Body, ctx: &Context) -> Result<EventKind, NormalizeError> {
    let direction = raid_direction(body, ctx);
    let other = match direction {
        Direction::Incoming => "from_broadcaster_",
        Direction::Outgoing => "to_broadcaster_",
    };
    Ok(EventKind::Raid(Raid {
        user: body.user(other),
        direction,
        viewers: body.need_u64("viewers")?,
    }))
}

fn custom_redemption(body: &Body) -> Result<EventKind, NormalizeError> {
    Ok(EventKind::Redemption(Redemption {
        user: body.user(""),
        redemption_id: body.need_str("id")?.to_owned(),
        reward_id: body.need_str("reward.id")?.to_owned(),
        reward_title: body.str("reward.title").unwrap_or_default().to_owned(),
        cost: body.need_u64("reward.cost")?,
        message: body.text("user_input"),
        status: body.str("status").unwrap_or("unfulfilled").to_owned(),
    }))
}

/// Automatic rewards have no id or title of their own, only a type; the type is the id and
/// the title is what Twitch shows viewers for it.
fn automatic_redemption(body: &Body) -> Result<EventKind, NormalizeError> {
    let reward_type = body.need_str("reward.type")?;
    let title = match reward_type {
        "single_message_bypass_sub_mode" => "Send a Message in Sub-Only Mode",
        "send_highlighted_message" => "Highlight My Message",
        "random_sub_emote_unlock" => "Unlock a Random Sub Emote",
        "chosen_sub_emote_unlock" => "Choose an Emote to Unlock",
        "chosen_modified_sub_emote_unlock" => "Modify a Single Emote",
        "message_effect" => "Message Effects",
        "gigantify_an_emote" => "Gigantify an Emote",
        "celebration" => "On-Screen Celebration",
        other => other,
    };
    // v1 calls the price `cost`, v2 `channel_points`.
    let cost = body
        .u64("reward.cost")
        .or_else(|| body.u64("reward.channel_points"))
        .ok_or_else(|| body.missing("reward.cost"))?;
    Ok(EventKind::Redemption(Redemption {
        user: body.user(""),
        redemption_id: body.need_str("id")?.to_owned(),
        reward_id: reward_type.to_owned(),
        reward_title: title.to_owned(),
        cost,
        message: body
            .text("message.text")
            .or_else(|| body.text("user_input")),
        status: "automatic".to_owned(),
    }))
}

fn hype_train(body: &Body, phase: Phase) -> Result<EventKind, NormalizeError> {
    Ok(EventKind::Hypetrain(HypeTrain {
        phase,
        hype_train_id: body.need_str("id")?.to_owned(),
        level: body.need_u32("level")?,
        total: body.need_u64("total")?,
        progress: body.u64("progress"),
        goal: body.u64("goal"),
        is_shared_train: body.bool("is_shared_train").unwrap_or(false),
        shared_train_participants: participants(body.array("shared_train_participants")),
    }))
}

/// `[{broadcaster_user_id, broadcaster_user_login, ...}]` of a shared chat session or train.
fn participants(list: &[Value]) -> Vec<SharedChatParticipant> {
    list.iter()
        .filter_map(|p| {
            let p = Body::new("participants", p);
            Some(SharedChatParticipant {
                channel: p.login("broadcaster_user_login")?,
                channel_id: p.text("broadcaster_user_id")?,
            })
        })
        .collect()
}

fn poll(body: &Body, phase: Phase) -> Result<EventKind, NormalizeError> {
    let choices = body
        .array("choices")
        .iter()
        .map(|choice| {
            let choice = Body::new("channel.poll", choice);
            Ok(PollChoice {
                id: choice.need_str("id")?.to_owned(),
                title: choice.str("title").unwrap_or_default().to_owned(),
                votes: choice.u64("votes").unwrap_or(0),
            })
        })
        .collect::<Result<_, NormalizeError>>()?;
    Ok(EventKind::Poll(Poll {
        phase,
        poll_id: body.need_str("id")?.to_owned(),
        title: body.str("title").unwrap_or_default().to_owned(),
        choices,
        status: body.text("status"),
    }))
}

fn prediction(body: &Body, phase: Phase) -> Result<EventKind, NormalizeError> {
    let outcomes = body
        .array("outcomes")
        .iter()
        .map(|outcome| {
            let outcome = Body::new("channel.prediction", outcome);
            Ok(PredictionOutcome {
                id: outcome.need_str("id")?.to_owned(),
                title: outcome.str("title").unwrap_or_default().to_owned(),
                users: outcome.u64("users").unwrap_or(0),
                points: outcome.u64("channel_points").unwrap_or(0),
            })
        })
        .collect::<Result<_, NormalizeError>>()?;
    Ok(EventKind::Prediction(Prediction {
        phase,
        prediction_id: body.need_str("id")?.to_owned(),
        title: body.str("title").unwrap_or_default().to_owned(),
        outcomes,
        winning_outcome_id: body.text("winning_outcome_id"),
        status: body.text("status"),
    }))
}

/// `amount` is `{value, decimal_places, currency}` in minor units; the chat notification
/// spells the exponent `decimal_place`, hence the parameter.
fn charity(body: &Body, user: UserRef, decimal_places: &str) -> Result<Charity, NormalizeError> {
    let value = body.need_u64("amount.value")?;
    // Capped so the power stays exact and cannot overflow on a hostile payload.
    let places = body.u32(decimal_places).unwrap_or(0).min(18);
    Ok(Charity {
        user,
        amount: value as f64 / 10f64.powi(places as i32),
        currency: body.need_str("amount.currency")?.to_owned(),
        charity_name: body.str("charity_name").unwrap_or_default().to_owned(),
    })
}

/// `{value, decimal_places, currency}` as an amount and its currency.
fn money(body: &Body, path: &str) -> Result<(f64, String), NormalizeError> {
    let value = body.need_u64(&format!("{path}.value"))?;
    // Capped so the power stays exact and cannot overflow on a hostile payload.
    let places = body
        .u32(&format!("{path}.decimal_places"))
        .unwrap_or(0)
        .min(18);
    let currency = body.need_str(&format!("{path}.currency"))?.to_owned();
    Ok((value as f64 / 10f64.powi(places as i32), currency))
}

fn charity_campaign(body: &Body, phase: Phase) -> Result<EventKind, NormalizeError> {
    let (current_amount, currency) = money(body, "current_amount")?;
    let (target_amount, _) = money(body, "target_amount")?;
    Ok(EventKind::CharityCampaign(CharityCampaign {
        phase,
        campaign_id: body.need_str("id")?.to_owned(),
        charity_name: body.str("charity_name").unwrap_or_default().to_owned(),
        current_amount,
        target_amount,
        currency,
    }))
}

fn goal(body: &Body, phase: Phase) -> Result<EventKind, NormalizeError> {
    Ok(EventKind::Goal(Goal {
        phase,
        goal_id: body.need_str("id")?.to_owned(),
        goal_type: body.need_str("type")?.to_owned(),
        description: body.str("description").unwrap_or_default().to_owned(),
        current_amount: body.u64("current_amount").unwrap_or(0),
        target_amount: body.need_u64("target_amount")?,
        achieved: if phase == Phase::End {
            body.bool("is_achieved")
        } else {
            None
        },
    }))
}

/// The user a moderation event is about; without one it would say nothing.
fn need_user(body: &Body) -> Result<UserRef, NormalizeError> {
    body.need_str("user_id")?;
    Ok(body.user(""))
}

/// VIP and moderator changes: Twitch names no moderator for them.
fn role(body: &Body, action: ModerationAction) -> Result<EventKind, NormalizeError> {
    Ok(moderation(need_user(body)?, action))
}

fn unban_resolution(body: &Body, action: ModerationAction) -> Result<EventKind, NormalizeError> {
    Ok(EventKind::Moderation(Moderation {
        moderator: body.login("moderator_user_login"),
        reason: body.text("resolution_text"),
        ..moderation_of(need_user(body)?, action)
    }))
}

/// The reason of a warning: the moderator's text, then the chat rules cited.
fn warning(body: &Body) -> Result<EventKind, NormalizeError> {
    let rules: Vec<&str> = body
        .array("chat_rules_cited")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let reason = body
        .text("reason")
        .into_iter()
        .chain((!rules.is_empty()).then(|| format!("rules: {}", rules.join("; "))))
        .collect::<Vec<_>>()
        .join(" — ");
    Ok(EventKind::Moderation(Moderation {
        moderator: body.login("moderator_user_login"),
        reason: (!reason.is_empty()).then_some(reason),
        ..moderation_of(need_user(body)?, ModerationAction::Warn)
    }))
}

/// A shared chat session; `end` names no participants (the session is over).
fn shared_chat(body: &Body, phase: SessionPhase) -> Result<EventKind, NormalizeError> {
    let participants = participants(body.array("participants"));
    Ok(EventKind::SharedChat(SharedChat {
        phase,
        session_id: body.need_str("session_id")?.to_owned(),
        host_channel: body.login("host_broadcaster_user_login"),
        host_channel_id: body.text("host_broadcaster_user_id"),
        participants,
    }))
}

fn shoutout(body: &Body, direction: Direction) -> Result<EventKind, NormalizeError> {
    let other = match direction {
        Direction::Outgoing => "to_broadcaster_",
        Direction::Incoming => "from_broadcaster_",
    };
    Ok(EventKind::Shoutout(Shoutout {
        user: body.user(other),
        direction,
        viewers: body.u64("viewer_count").unwrap_or(0),
    }))
}

fn moderation_of(user: UserRef, action: ModerationAction) -> Moderation {
    Moderation {
        user,
        action,
        moderator: None,
        reason: None,
        duration_seconds: None,
        message_id: None,
    }
}

fn moderation(user: UserRef, action: ModerationAction) -> EventKind {
    EventKind::Moderation(moderation_of(user, action))
}

/// A ban with an end is a timeout; its length is the end minus the ban time.
fn ban(body: &Body) -> EventKind {
    let permanent = body.bool("is_permanent").unwrap_or(false);
    let ends_at = body.get("ends_at").filter(|_| !permanent);
    let (action, duration_seconds) = match ends_at {
        Some(_) => {
            let duration = body
                .time("ends_at")
                .zip(body.time("banned_at"))
                .and_then(|(end, start)| u64::try_from((end - start).num_seconds()).ok());
            (ModerationAction::Timeout, duration)
        }
        None => (ModerationAction::Ban, None),
    };
    EventKind::Moderation(Moderation {
        moderator: body.login("moderator_user_login"),
        reason: body.text("reason"),
        duration_seconds,
        ..moderation_of(body.user(""), action)
    })
}

fn chat_message(body: &Body) -> Result<EventKind, NormalizeError> {
    let badges: BTreeMap<String, String> = body
        .array("badges")
        .iter()
        .filter_map(|badge| {
            let badge = Body::new("channel.chat.message", badge);
            Some((badge.text("set_id")?, badge.str("id")?.to_owned()))
        })
        .collect();
    let has = |set: &str| badges.contains_key(set);
    let chatter_id = body.str("chatter_user_id");
    Ok(EventKind::Chat(ChatMessage {
        user: body.user("chatter_"),
        message_id: body.need_str("message_id")?.to_owned(),
        message: body.str("message.text").unwrap_or_default().to_owned(),
        color: body.text("color"),
        is_subscriber: has("subscriber") || has("founder"),
        is_moderator: has("moderator"),
        is_vip: has("vip"),
        is_broadcaster: has("broadcaster")
            || (chatter_id.is_some() && chatter_id == body.str("broadcaster_user_id")),
        badges,
        emotes: emotes(body.array("message.fragments")),
        bits: body.u64("cheer.bits").filter(|bits| *bits > 0),
        reply_to: body.text("reply.parent_message_id"),
    }))
}

/// Emote positions in characters (not bytes), end inclusive, as IRC's `emotes` tag gives
/// them, so both chat sources agree.
fn emotes(fragments: &[Value]) -> Vec<Emote> {
    let mut offset = 0;
    let mut emotes = Vec::new();
    for fragment in fragments {
        let fragment = Body::new("channel.chat.message", fragment);
        let text = fragment.str("text").unwrap_or_default();
        let len = text.chars().count();
        if let (Some("emote"), Some(id), true) =
            (fragment.str("type"), fragment.str("emote.id"), len > 0)
        {
            emotes.push(Emote {
                id: id.to_owned(),
                name: text.to_owned(),
                start: offset,
                end: offset + len - 1,
            });
        }
        offset += len;
    }
    emotes
}

fn chat_notification(body: &Body, ctx: &Context) -> Result<Option<EventKind>, NormalizeError> {
    let notice_type = body.need_str("notice_type")?;
    let anonymous = body.bool("chatter_is_anonymous").unwrap_or(false);
    let chatter = user_unless(anonymous, body, "chatter_");
    let detail = body.child(notice_type);
    let kind = match notice_type {
        "sub" if !ctx.has("channel.subscribe") => EventKind::Sub(Sub {
            user: chatter,
            tier: notice_tier(&detail)?,
            months: 1,
            streak_months: None,
            is_gift: false,
            message: body.text("message.text"),
        }),
        "resub" if !ctx.has("channel.subscription.message") => EventKind::Resub(Sub {
            user: chatter,
            tier: notice_tier(&detail)?,
            months: detail.need_u32("cumulative_months")?,
            streak_months: detail.u32("streak_months"),
            is_gift: detail.bool("is_gift").unwrap_or(false),
            message: body.text("message.text"),
        }),
        // Part of a community gift: the community_sub_gift notice is the gift action.
        "sub_gift" if detail.text("community_gift_id").is_some() => return Ok(None),
        "sub_gift" if !ctx.has("channel.subscription.gift") => EventKind::Gift(Gift {
            user: chatter,
            tier: notice_tier(&detail)?,
            count: 1,
            recipients: detail.login("recipient_user_login").into_iter().collect(),
            anonymous,
            cumulative_total: detail.u32("cumulative_total"),
        }),
        "community_sub_gift" if !ctx.has("channel.subscription.gift") => EventKind::Gift(Gift {
            user: chatter,
            tier: notice_tier(&detail)?,
            count: detail.need_u32("total")?,
            recipients: Vec::new(),
            anonymous,
            cumulative_total: detail.u32("cumulative_total"),
        }),
        "raid" if !ctx.has("channel.raid") => EventKind::Raid(Raid {
            user: detail.user(""),
            direction: Direction::Incoming,
            viewers: detail.need_u64("viewer_count")?,
        }),
        "charity_donation" if !ctx.has("channel.charity_campaign.donate") => {
            EventKind::Charity(charity(&detail, chatter, "amount.decimal_place")?)
        }
        "sub" | "resub" | "sub_gift" | "community_sub_gift" | "raid" | "charity_donation" => {
            return Ok(None);
        }
        // Everything else, including shared_chat_* (support given in another channel of a
        // shared chat session, which must not count as ours) and kinds added later.
        _ => EventKind::Notice(ChatNotice {
            user: chatter,
            notice_type: notice_type.to_owned(),
            message: body
                .text("system_message")
                .or_else(|| body.text("message.text"))
                .unwrap_or_default(),
        }),
    };
    Ok(Some(kind))
}

fn notice_tier(detail: &Body) -> Result<Tier, NormalizeError> {
    if detail.bool("is_prime") == Some(true) {
        return Ok(Tier::Prime);
    }
    tier(detail, "sub_tier")
}
