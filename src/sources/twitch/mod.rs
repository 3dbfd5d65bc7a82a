//! Twitch: EventSub notifications and IRC chat, normalized into the contract.

pub mod eventsub;
pub mod irc;
