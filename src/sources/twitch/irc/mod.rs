//! Twitch chat over IRC: a zero-copy line parser, a typed Twitch layer, and the normalizer into
//! contract events.
//!
//! Three layers, each usable alone:
//! - [`IrcMessage::parse`] splits a line (tags, prefix, command, parameters) without copying;
//!   tags are split and unescaped only when read.
//! - [`TwitchMessage::from_irc`] says what the line means (a chat message, a sub, a timeout, ...)
//!   with the tags ongwatch uses picked out in one pass.
//! - [`normalize`] turns it into contract events; its module documents the id and gift rules.
//!
//! [`spawn`] runs the connection itself (login, joins, reconnects), see its module.

mod client;
mod normalize;
mod parse;
mod typed;

pub use client::{
    IrcHandle, IrcLogin, IrcSendError, IrcSettings, IrcStatus, IrcTiming, JOINS_PER_WINDOW,
    Refusal, channel_login, spawn,
};
pub use normalize::{normalize, normalize_line};
pub use parse::{IrcError, IrcMessage, Params, Prefix, TagValue, Tags, unescape};
pub use typed::{
    Badges, ChatUser, ClearChat, ClearMsg, Emotes, Membership, MysteryGiftNotice, Notice, Privmsg,
    RaidNotice, Reply, RoomState, SubGiftNotice, SubNotice, TwitchMessage, UserNotice,
    UserNoticeEvent, UserState, Whisper,
};
