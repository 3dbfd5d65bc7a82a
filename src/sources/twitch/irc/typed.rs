//! The Twitch layer over [`IrcMessage`]: what each command means, with the tags ongwatch reads
//! already picked out. Everything still borrows from the line.

use super::parse::{IrcError, IrcMessage, TagValue};
use crate::event::Tier;

/// One line, understood.
#[derive(Debug, Clone, PartialEq)]
pub enum TwitchMessage<'a> {
    Privmsg(Privmsg<'a>),
    UserNotice(UserNotice<'a>),
    ClearChat(ClearChat<'a>),
    ClearMsg(ClearMsg<'a>),
    RoomState(RoomState<'a>),
    /// `USERSTATE` (with a channel) and `GLOBALUSERSTATE` (without): our own account's state.
    UserState(UserState<'a>),
    Notice(Notice<'a>),
    Whisper(Whisper<'a>),
    Join(Membership<'a>),
    Part(Membership<'a>),
    /// `PING [arg]`: answer `PONG` with the same argument.
    Ping(Option<&'a str>),
    Pong(Option<&'a str>),
    /// Twitch is about to restart the server: reconnect.
    Reconnect,
    /// Anything else (`CAP`, numerics, ...); the generic message has all of it.
    Other,
}

impl<'a> TwitchMessage<'a> {
    pub fn from_irc(msg: &IrcMessage<'a>) -> Result<Self, IrcError> {
        Ok(match msg.command() {
            "PRIVMSG" => Self::Privmsg(Privmsg::from_irc(msg)?),
            "USERNOTICE" => Self::UserNotice(UserNotice::from_irc(msg)?),
            "CLEARCHAT" => Self::ClearChat(ClearChat::from_irc(msg)?),
            "CLEARMSG" => Self::ClearMsg(ClearMsg::from_irc(msg)?),
            "ROOMSTATE" => Self::RoomState(RoomState::from_irc(msg)?),
            "USERSTATE" => Self::UserState(UserState::from_irc(msg, "USERSTATE")?),
            "GLOBALUSERSTATE" => Self::UserState(UserState::from_irc(msg, "GLOBALUSERSTATE")?),
            "NOTICE" => Self::Notice(Notice::from_irc(msg)),
            "WHISPER" => Self::Whisper(Whisper::from_irc(msg)?),
            "JOIN" => Self::Join(Membership::from_irc(msg, "JOIN")?),
            "PART" => Self::Part(Membership::from_irc(msg, "PART")?),
            "PING" => Self::Ping(msg.params().last()),
            "PONG" => Self::Pong(msg.params().last()),
            "RECONNECT" => Self::Reconnect,
            _ => Self::Other,
        })
    }

    /// Parses a line and types it in one go.
    pub fn parse(line: &'a str) -> Result<(IrcMessage<'a>, Self), IrcError> {
        let msg = IrcMessage::parse(line)?;
        let typed = Self::from_irc(&msg)?;
        Ok((msg, typed))
    }
}

macro_rules! known_tags {
    (
        plain { $($field:ident = $key:literal,)* }
        msg_param { $($pfield:ident = $pkey:literal,)* }
    ) => {
        /// The tags ongwatch reads, found in one pass over the tag section instead of one
        /// scan per lookup.
        #[derive(Default)]
        struct KnownTags<'a> {
            $($field: Option<TagValue<'a>>,)*
            $($pfield: Option<TagValue<'a>>,)*
        }

        impl<'a> KnownTags<'a> {
            fn of(msg: &IrcMessage<'a>) -> Self {
                let mut tags = Self::default();
                for (key, value) in msg.tags().iter() {
                    // The `msg-param-` family is only on USERNOTICE; splitting on it halves
                    // the comparisons for every other tag.
                    if let Some(param) = key.strip_prefix("msg-param-") {
                        match param {
                            $($pkey => tags.$pfield = Some(value),)*
                            _ => {}
                        }
                    } else {
                        match key {
                            $($key => tags.$field = Some(value),)*
                            _ => {}
                        }
                    }
                }
                tags
            }
        }
    };
}

known_tags! {
    plain {
        id = "id",
        tmi_sent_ts = "tmi-sent-ts",
        room_id = "room-id",
        user_id = "user-id",
        login = "login",
        display_name = "display-name",
        color = "color",
        badges = "badges",
        emotes = "emotes",
        moderator = "mod",
        subscriber = "subscriber",
        vip = "vip",
        bits = "bits",
        msg_id = "msg-id",
        system_msg = "system-msg",
        reply_parent_msg_id = "reply-parent-msg-id",
        reply_parent_user_login = "reply-parent-user-login",
        reply_parent_user_id = "reply-parent-user-id",
        reply_parent_display_name = "reply-parent-display-name",
        reply_parent_msg_body = "reply-parent-msg-body",
        ban_duration = "ban-duration",
        target_user_id = "target-user-id",
        target_msg_id = "target-msg-id",
        emote_only = "emote-only",
        followers_only = "followers-only",
        r9k = "r9k",
        slow = "slow",
        subs_only = "subs-only",
        emote_sets = "emote-sets",
        message_id = "message-id",
        thread_id = "thread-id",
        source_room_id = "source-room-id",
        source_msg_id = "source-msg-id",
    }
    msg_param {
        cumulative_months = "cumulative-months",
        months = "months",
        streak_months = "streak-months",
        should_share_streak = "should-share-streak",
        sub_plan = "sub-plan",
        sub_plan_name = "sub-plan-name",
        recipient_login = "recipient-user-name",
        recipient_id = "recipient-id",
        recipient_display_name = "recipient-display-name",
        gift_months = "gift-months",
        mass_gift_count = "mass-gift-count",
        sender_count = "sender-count",
        community_gift_id = "community-gift-id",
        raider_login = "login",
        raider_display_name = "displayName",
        viewer_count = "viewerCount",
        announcement_color = "color",
        sender_login = "sender-login",
        sender_name = "sender-name",
        promo_name = "promo-name",
        threshold = "threshold",
        domain = "domain",
        selected_count = "selected-count",
        total_reward_count = "total-reward-count",
        trigger_type = "trigger-type",
        milestone_category = "category",
        milestone_value = "value",
        copo_reward = "copoReward",
    }
}

/// `source-room-id` when it names another room than `room-id`: Twitch sets it on every line
/// of a shared chat session, to the own room for the own channel's lines.
fn partner_room<'a>(tags: &KnownTags<'a>) -> Option<&'a str> {
    let source = non_empty(tags.source_room_id)?;
    (Some(source) != non_empty(tags.room_id)).then_some(source)
}

fn non_empty<'a>(value: Option<TagValue<'a>>) -> Option<&'a str> {
    value.map(|v| v.raw()).filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(value: Option<TagValue<'_>>) -> Option<T> {
    value.and_then(|v| v.raw().parse().ok())
}

fn flag(value: Option<TagValue<'_>>) -> Option<bool> {
    value.map(|v| v.raw() == "1")
}

fn channel<'a>(msg: &IrcMessage<'a>, command: &'static str) -> Result<&'a str, IrcError> {
    msg.channel().ok_or(IrcError::MissingChannel { command })
}

/// `/me` arrives as `\x01ACTION text\x01`; Twitch's emote positions count from `text`.
fn strip_action(text: &str) -> (&str, bool) {
    match text.strip_prefix("\u{1}ACTION ") {
        Some(inner) => (inner.strip_suffix('\u{1}').unwrap_or(inner), true),
        None => (text, false),
    }
}

/// The `badges` tag: `set/version` pairs separated by commas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Badges<'a>(pub &'a str);

impl<'a> Badges<'a> {
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.0
            .split(',')
            .filter(|b| !b.is_empty())
            .map(|b| b.split_once('/').unwrap_or((b, "")))
    }

    pub fn has(&self, set: &str) -> bool {
        self.iter().any(|(s, _)| s == set)
    }
}

/// The `emotes` tag: `id:start-end,start-end/id:start-end`, positions in characters of the
/// message text, `end` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Emotes<'a>(pub &'a str);

impl<'a> Emotes<'a> {
    /// `(emote id, start, end)` for every occurrence; malformed ranges are skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, usize, usize)> + 'a {
        self.0.split('/').flat_map(|emote| {
            let (id, ranges) = emote.split_once(':').unwrap_or(("", ""));
            ranges.split(',').filter_map(move |range| {
                let (start, end) = range.split_once('-')?;
                Some((id, start.parse().ok()?, end.parse().ok()?))
            })
        })
    }
}

/// The user behind a PRIVMSG, USERNOTICE or WHISPER.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatUser<'a> {
    pub login: &'a str,
    pub user_id: Option<&'a str>,
    pub display_name: Option<TagValue<'a>>,
    /// `#RRGGBB`, absent when the user never picked one.
    pub color: Option<&'a str>,
    pub badges: Badges<'a>,
    pub is_subscriber: bool,
    pub is_moderator: bool,
    pub is_vip: bool,
    pub is_broadcaster: bool,
}

impl<'a> ChatUser<'a> {
    fn new(login: &'a str, tags: &KnownTags<'a>) -> Self {
        let badges = Badges(tags.badges.map_or("", |b| b.raw()));
        // The flag tags and the badges say the same thing; either is enough, because
        // Twitch has dropped flag tags before (`turbo`, `user-type`) while badges stay.
        Self {
            login,
            user_id: non_empty(tags.user_id),
            display_name: tags.display_name.filter(|d| !d.is_empty()),
            color: non_empty(tags.color),
            badges,
            is_subscriber: flag(tags.subscriber) == Some(true)
                || badges.has("subscriber")
                || badges.has("founder"),
            is_moderator: flag(tags.moderator) == Some(true) || badges.has("moderator"),
            is_vip: flag(tags.vip) == Some(true) || badges.has("vip"),
            is_broadcaster: badges.has("broadcaster"),
        }
    }
}

/// A chat message.
#[derive(Debug, Clone, PartialEq)]
pub struct Privmsg<'a> {
    pub channel: &'a str,
    pub sender: ChatUser<'a>,
    pub message_id: Option<&'a str>,
    pub room_id: Option<&'a str>,
    /// During a shared chat session, the partner channel's room id when the message was sent
    /// there (`source-room-id` differs from `room-id`); `None` for the own channel.
    pub source_room_id: Option<&'a str>,
    /// Milliseconds since the epoch, from `tmi-sent-ts`.
    pub sent_at_ms: Option<i64>,
    /// The text, without the `/me` wrapper.
    pub text: &'a str,
    pub is_action: bool,
    pub bits: Option<u64>,
    pub emotes: Emotes<'a>,
    pub reply: Option<Reply<'a>>,
}

/// The message a chat message answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<'a> {
    pub parent_message_id: &'a str,
    pub parent_login: Option<&'a str>,
    pub parent_user_id: Option<&'a str>,
    pub parent_display_name: Option<TagValue<'a>>,
    pub parent_text: Option<TagValue<'a>>,
}

impl<'a> Privmsg<'a> {
    fn from_irc(msg: &IrcMessage<'a>) -> Result<Self, IrcError> {
        const COMMAND: &str = "PRIVMSG";
        let channel = channel(msg, COMMAND)?;
        let login = msg.prefix().map(|p| p.nick).ok_or(IrcError::MissingField {
            command: COMMAND,
            what: "sender prefix",
        })?;
        let (text, is_action) = strip_action(msg.trailing().unwrap_or_default());
        let tags = KnownTags::of(msg);
        Ok(Self {
            channel,
            sender: ChatUser::new(login, &tags),
            message_id: non_empty(tags.id),
            room_id: non_empty(tags.room_id),
            source_room_id: partner_room(&tags),
            sent_at_ms: number(tags.tmi_sent_ts),
            text,
            is_action,
            bits: number(tags.bits).filter(|b| *b > 0),
            emotes: Emotes(tags.emotes.map_or("", |e| e.raw())),
            reply: non_empty(tags.reply_parent_msg_id).map(|parent_message_id| Reply {
                parent_message_id,
                parent_login: non_empty(tags.reply_parent_user_login),
                parent_user_id: non_empty(tags.reply_parent_user_id),
                parent_display_name: tags.reply_parent_display_name,
                parent_text: tags.reply_parent_msg_body,
            }),
        })
    }
}

/// Twitch's stand-in account for anonymous gifts.
const ANONYMOUS_GIFTER: &str = "ananonymousgifter";

/// A `USERNOTICE`: subs, gifts, raids, announcements and the other chat events Twitch announces.
#[derive(Debug, Clone, PartialEq)]
pub struct UserNotice<'a> {
    pub channel: &'a str,
    /// Absent only when Twitch sends no `login` tag.
    pub sender: Option<ChatUser<'a>>,
    /// The `msg-id` tag: `sub`, `resub`, `subgift`, `raid`, `announcement`, ...
    pub kind: &'a str,
    pub message_id: Option<&'a str>,
    pub room_id: Option<&'a str>,
    /// The partner channel's room id, as on [`Privmsg::source_room_id`].
    pub source_room_id: Option<&'a str>,
    pub sent_at_ms: Option<i64>,
    /// Twitch's own sentence about the event.
    pub system_message: Option<TagValue<'a>>,
    /// What the user typed along with it, if anything.
    pub text: Option<&'a str>,
    pub is_action: bool,
    pub emotes: Emotes<'a>,
    pub event: UserNoticeEvent<'a>,
}

/// The `msg-id`s ongwatch gives their own topic; the rest are [`UserNoticeEvent::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum UserNoticeEvent<'a> {
    Sub(SubNotice<'a>),
    SubGift(SubGiftNotice<'a>),
    MysteryGift(MysteryGiftNotice<'a>),
    Raid(RaidNotice<'a>),
    Announcement {
        color: Option<&'a str>,
    },
    /// `giftpaidupgrade` / `anongiftpaidupgrade`: a gifted sub the user now pays for.
    GiftPaidUpgrade {
        anonymous: bool,
        gifter_login: Option<&'a str>,
        gifter_name: Option<TagValue<'a>>,
        promo_name: Option<TagValue<'a>>,
    },
    /// `rewardgift`: a purchase that gave rewards (e.g. emotes) to others in chat.
    RewardGift {
        domain: Option<&'a str>,
        selected_count: Option<u32>,
        total_reward_count: Option<u32>,
        trigger_type: Option<&'a str>,
    },
    /// `viewermilestone`: e.g. a watch streak (`category` `watch-streak`, `value` streams).
    ViewerMilestone {
        category: Option<&'a str>,
        value: Option<u64>,
        channel_points: Option<u64>,
    },
    /// `bitsbadgetier`: the user reached a new bits badge.
    BitsBadgeTier {
        threshold: Option<u64>,
    },
    /// `sharedchatnotice`: a USERNOTICE of a partner channel in a shared chat session;
    /// `source_kind` is its own msg-id there (`sub`, `resub`, `subgift`, `raid`, ...).
    SharedChatNotice {
        source_kind: Option<&'a str>,
    },
    Other,
}

/// `sub` or `resub`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubNotice<'a> {
    pub is_resub: bool,
    pub tier: Option<Tier>,
    pub plan_name: Option<TagValue<'a>>,
    pub cumulative_months: Option<u32>,
    /// Only when the user chose to share it.
    pub streak_months: Option<u32>,
}

/// `subgift` / `anonsubgift`: one sub given to one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct SubGiftNotice<'a> {
    pub anonymous: bool,
    pub tier: Option<Tier>,
    pub recipient_login: Option<&'a str>,
    pub recipient_id: Option<&'a str>,
    pub recipient_display_name: Option<TagValue<'a>>,
    pub gift_months: Option<u32>,
    /// The gifter's total in the channel; Twitch sends 0 when the gifter keeps it private.
    pub sender_total: Option<u32>,
    /// Set when this sub is one of the N announced by a `submysterygift`.
    pub community_gift_id: Option<&'a str>,
}

/// `submysterygift` / `anonsubmysterygift`: N subs given to random viewers at once.
#[derive(Debug, Clone, PartialEq)]
pub struct MysteryGiftNotice<'a> {
    pub anonymous: bool,
    pub tier: Option<Tier>,
    pub count: u32,
    pub sender_total: Option<u32>,
    pub community_gift_id: Option<&'a str>,
}

/// `raid`: another channel brought its viewers here.
#[derive(Debug, Clone, PartialEq)]
pub struct RaidNotice<'a> {
    pub login: &'a str,
    pub display_name: Option<TagValue<'a>>,
    pub viewers: u64,
}

impl<'a> UserNotice<'a> {
    fn from_irc(msg: &IrcMessage<'a>) -> Result<Self, IrcError> {
        const COMMAND: &str = "USERNOTICE";
        let channel = channel(msg, COMMAND)?;
        let tags = KnownTags::of(msg);
        let kind = tags.msg_id.map(|v| v.raw()).ok_or(IrcError::MissingField {
            command: COMMAND,
            what: "msg-id tag",
        })?;
        let sender = non_empty(tags.login).map(|login| ChatUser::new(login, &tags));
        let tier = tags.sub_plan.and_then(|p| Tier::from_twitch(p.raw()));
        // The anon variants and the stand-in account are both in use, depending on the
        // client the gifter used.
        let anonymous = kind.starts_with("anon") || non_empty(tags.login) == Some(ANONYMOUS_GIFTER);
        let sender_total = number(tags.sender_count).filter(|n| *n > 0);
        let event = match kind {
            "sub" | "resub" => UserNoticeEvent::Sub(SubNotice {
                is_resub: kind == "resub",
                tier,
                plan_name: tags.sub_plan_name,
                cumulative_months: number(tags.cumulative_months)
                    .or_else(|| number(tags.months))
                    .filter(|m| *m > 0),
                streak_months: if flag(tags.should_share_streak) == Some(true) {
                    number(tags.streak_months)
                } else {
                    None
                },
            }),
            "subgift" | "anonsubgift" => UserNoticeEvent::SubGift(SubGiftNotice {
                anonymous,
                tier,
                recipient_login: non_empty(tags.recipient_login),
                recipient_id: non_empty(tags.recipient_id),
                recipient_display_name: tags.recipient_display_name,
                gift_months: number(tags.gift_months),
                sender_total,
                community_gift_id: non_empty(tags.community_gift_id),
            }),
            "submysterygift" | "anonsubmysterygift" => {
                UserNoticeEvent::MysteryGift(MysteryGiftNotice {
                    anonymous,
                    tier,
                    count: number(tags.mass_gift_count).ok_or(IrcError::MissingField {
                        command: COMMAND,
                        what: "msg-param-mass-gift-count tag",
                    })?,
                    sender_total,
                    community_gift_id: non_empty(tags.community_gift_id),
                })
            }
            "raid" => UserNoticeEvent::Raid(RaidNotice {
                login: non_empty(tags.raider_login)
                    .or(non_empty(tags.login))
                    .ok_or(IrcError::MissingField {
                        command: COMMAND,
                        what: "raider login",
                    })?,
                display_name: tags.raider_display_name.or(tags.display_name),
                viewers: number(tags.viewer_count).unwrap_or(0),
            }),
            "announcement" => UserNoticeEvent::Announcement {
                color: non_empty(tags.announcement_color),
            },
            "giftpaidupgrade" | "anongiftpaidupgrade" => UserNoticeEvent::GiftPaidUpgrade {
                anonymous: kind.starts_with("anon"),
                gifter_login: non_empty(tags.sender_login),
                gifter_name: tags.sender_name.filter(|n| !n.is_empty()),
                promo_name: tags.promo_name.filter(|n| !n.is_empty()),
            },
            "rewardgift" => UserNoticeEvent::RewardGift {
                domain: non_empty(tags.domain),
                selected_count: number(tags.selected_count),
                total_reward_count: number(tags.total_reward_count),
                trigger_type: non_empty(tags.trigger_type),
            },
            "viewermilestone" => UserNoticeEvent::ViewerMilestone {
                category: non_empty(tags.milestone_category),
                value: number(tags.milestone_value),
                channel_points: number(tags.copo_reward),
            },
            "bitsbadgetier" => UserNoticeEvent::BitsBadgeTier {
                threshold: number(tags.threshold),
            },
            "sharedchatnotice" => UserNoticeEvent::SharedChatNotice {
                source_kind: non_empty(tags.source_msg_id),
            },
            _ => UserNoticeEvent::Other,
        };
        let (text_value, is_action) = match msg.trailing() {
            Some(t) => {
                let (t, action) = strip_action(t);
                (Some(t), action)
            }
            None => (None, false),
        };
        Ok(Self {
            channel,
            sender,
            kind,
            message_id: non_empty(tags.id),
            room_id: non_empty(tags.room_id),
            source_room_id: partner_room(&tags),
            sent_at_ms: number(tags.tmi_sent_ts),
            system_message: tags.system_msg.filter(|s| !s.is_empty()),
            text: text_value,
            is_action,
            emotes: Emotes(tags.emotes.map_or("", |e| e.raw())),
            event,
        })
    }
}

/// `CLEARCHAT`: a timeout, a ban, or the whole chat cleared.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearChat<'a> {
    pub channel: &'a str,
    pub room_id: Option<&'a str>,
    pub sent_at_ms: Option<i64>,
    /// The user timed out or banned; absent when the whole chat was cleared.
    pub target_login: Option<&'a str>,
    pub target_user_id: Option<&'a str>,
    /// Seconds, for a timeout. A ban has none.
    pub duration_seconds: Option<u64>,
}

impl<'a> ClearChat<'a> {
    fn from_irc(msg: &IrcMessage<'a>) -> Result<Self, IrcError> {
        let channel = channel(msg, "CLEARCHAT")?;
        let tags = KnownTags::of(msg);
        Ok(Self {
            channel,
            room_id: non_empty(tags.room_id),
            sent_at_ms: number(tags.tmi_sent_ts),
            target_login: msg.param(1).filter(|t| !t.is_empty()),
            target_user_id: non_empty(tags.target_user_id),
            duration_seconds: number(tags.ban_duration),
        })
    }
}

/// `CLEARMSG`: one message deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearMsg<'a> {
    pub channel: &'a str,
    pub sent_at_ms: Option<i64>,
    pub login: Option<&'a str>,
    pub target_message_id: &'a str,
    /// The deleted text.
    pub text: Option<&'a str>,
}

impl<'a> ClearMsg<'a> {
    fn from_irc(msg: &IrcMessage<'a>) -> Result<Self, IrcError> {
        const COMMAND: &str = "CLEARMSG";
        let channel = channel(msg, COMMAND)?;
        let tags = KnownTags::of(msg);
        Ok(Self {
            channel,
            sent_at_ms: number(tags.tmi_sent_ts),
            login: non_empty(tags.login),
            target_message_id: non_empty(tags.target_msg_id).ok_or(IrcError::MissingField {
                command: COMMAND,
                what: "target-msg-id tag",
            })?,
            text: msg.param(1),
        })
    }
}

/// `ROOMSTATE`: the chat's modes. Twitch sends all of them on join and only the changed one
/// afterwards, hence every field is optional.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomState<'a> {
    pub channel: &'a str,
    pub room_id: Option<&'a str>,
    pub emote_only: Option<bool>,
    /// Minutes an account must have followed; -1 when followers-only mode is off.
    pub followers_only: Option<i64>,
    pub r9k: Option<bool>,
    /// Seconds between messages; 0 when off.
    pub slow: Option<u64>,
    pub subs_only: Option<bool>,
}

impl<'a> RoomState<'a> {
    fn from_irc(msg: &IrcMessage<'a>) -> Result<Self, IrcError> {
        let channel = channel(msg, "ROOMSTATE")?;
        let tags = KnownTags::of(msg);
        Ok(Self {
            channel,
            room_id: non_empty(tags.room_id),
            emote_only: flag(tags.emote_only),
            followers_only: number(tags.followers_only),
            r9k: flag(tags.r9k),
            slow: number(tags.slow),
            subs_only: flag(tags.subs_only),
        })
    }
}

/// Our own account as Twitch sees it, globally or in one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct UserState<'a> {
    /// `None` for `GLOBALUSERSTATE`.
    pub channel: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub display_name: Option<TagValue<'a>>,
    pub color: Option<&'a str>,
    pub badges: Badges<'a>,
    pub is_moderator: bool,
    pub emote_sets: Option<&'a str>,
}

impl<'a> UserState<'a> {
    fn from_irc(msg: &IrcMessage<'a>, command: &'static str) -> Result<Self, IrcError> {
        let channel = if command == "USERSTATE" {
            Some(channel(msg, command)?)
        } else {
            None
        };
        let tags = KnownTags::of(msg);
        let badges = Badges(tags.badges.map_or("", |b| b.raw()));
        Ok(Self {
            channel,
            user_id: non_empty(tags.user_id),
            display_name: tags.display_name.filter(|d| !d.is_empty()),
            color: non_empty(tags.color),
            badges,
            is_moderator: flag(tags.moderator) == Some(true) || badges.has("moderator"),
            emote_sets: non_empty(tags.emote_sets),
        })
    }
}

/// A server notice: errors about our own commands, mode changes, login failures.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice<'a> {
    /// `None` for `*` (not about a channel, e.g. a failed login).
    pub channel: Option<&'a str>,
    pub msg_id: Option<&'a str>,
    pub text: &'a str,
}

impl<'a> Notice<'a> {
    fn from_irc(msg: &IrcMessage<'a>) -> Self {
        Self {
            channel: msg.channel(),
            msg_id: msg.tag("msg-id").map(|v| v.raw()).filter(|v| !v.is_empty()),
            text: msg.trailing().unwrap_or_default(),
        }
    }
}

/// A private message to our account.
#[derive(Debug, Clone, PartialEq)]
pub struct Whisper<'a> {
    pub recipient: &'a str,
    pub sender: ChatUser<'a>,
    pub message_id: Option<&'a str>,
    pub thread_id: Option<&'a str>,
    pub text: &'a str,
    pub emotes: Emotes<'a>,
}

impl<'a> Whisper<'a> {
    fn from_irc(msg: &IrcMessage<'a>) -> Result<Self, IrcError> {
        const COMMAND: &str = "WHISPER";
        let missing = |what| IrcError::MissingField {
            command: COMMAND,
            what,
        };
        let recipient = msg.param(0).ok_or(missing("recipient"))?;
        let login = msg
            .prefix()
            .map(|p| p.nick)
            .ok_or(missing("sender prefix"))?;
        let tags = KnownTags::of(msg);
        Ok(Self {
            recipient,
            sender: ChatUser::new(login, &tags),
            message_id: non_empty(tags.message_id),
            thread_id: non_empty(tags.thread_id),
            text: msg.trailing().unwrap_or_default(),
            emotes: Emotes(tags.emotes.map_or("", |e| e.raw())),
        })
    }
}

/// `JOIN` / `PART` of one user (with the membership capability) or of our own account.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership<'a> {
    pub channel: &'a str,
    pub login: &'a str,
}

impl<'a> Membership<'a> {
    fn from_irc(msg: &IrcMessage<'a>, command: &'static str) -> Result<Self, IrcError> {
        Ok(Self {
            channel: channel(msg, command)?,
            login: msg.prefix().map(|p| p.nick).ok_or(IrcError::MissingField {
                command,
                what: "user prefix",
            })?,
        })
    }
}
