//! Twitch: EventSub notifications and IRC chat, normalized into the contract.

pub mod auth;
pub mod catalog;
pub mod config;
pub mod eventsub;
pub mod fake;
pub mod helix;
pub mod irc;
mod session;
pub mod source;
