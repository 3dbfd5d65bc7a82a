//! Twitch EventSub: WebSocket frames, the notification normalizer and `ongwatch trigger`
//! payloads. Pure code; the connection that feeds it lives elsewhere.
//!
//! Flow: [`parse_frame`] turns a text frame into a [`Frame`]; each
//! [`Frame::Notification`] goes through [`normalize`] with a [`Context`] naming our
//! broadcaster; a known type becomes its contract kind, any other type an `R/raw/twitch/<type>`
//! event. The event `id` is `twitch:<message_id>`, so a redelivery keeps its id, and `time` is
//! the event's own time where it has one (`followed_at`, `redeemed_at`, `banned_at`,
//! `started_at`, `ended_at`, `locked_at`), else the message timestamp.
//!
//! # Which source wins when Twitch reports one thing twice
//!
//! The dedicated subscription type wins; the second report yields `Ok(None)`:
//!
//! | published from | not published from |
//! |---|---|
//! | `channel.cheer` | `channel.bits.use` with `type: "cheer"` |
//! | `channel.subscribe` | `channel.chat.notification` `sub` |
//! | `channel.subscription.message` | `channel.chat.notification` `resub` |
//! | `channel.subscription.gift` | `channel.chat.notification` `sub_gift`, `community_sub_gift` |
//! | `channel.raid` | `channel.chat.notification` `raid` |
//! | `channel.charity_campaign.donate` | `channel.chat.notification` `charity_donation` |
//!
//! Why: the dedicated types are the ones Twitch documents as the record of the action; they
//! carry what chat notices lack or get wrong (anonymous cheers, gift totals, outgoing raids),
//! and they do not depend on the chat scope or on a chat message being shown.
//!
//! When [`Context::subscribed`] lists the active types and a dedicated one is missing (the
//! user removed it from `[twitch]`), its duplicate is published in its place, so nothing is
//! lost. Two cases never publish from the chat notice: a `sub_gift` that belongs to a
//! community gift (the `community_sub_gift` notice is the gift action), and `shared_chat_*`
//! notices, which are support in another channel of a shared chat and go to `R/chat/notices`.
//! `channel.bits.use` power-ups (and any other non-cheer use) have no duplicate: they are
//! `powerup` events. A chat message with a cheer stays a `chat` event with `bits`; the cheer
//! itself comes from `channel.cheer`. `channel.subscribe` is also sent once per gifted sub,
//! with `is_gift: true`: those are `sub` events, and the gift action is the `gift` event.

mod body;
mod frame;
mod normalize;
mod trigger;

pub use frame::{Frame, FrameError, Notification, Session, Subscription, parse_frame};
pub use normalize::{Context, NormalizeError, PROVIDER, normalize, raw_event};
pub use trigger::{DEFAULT_USER, eventsub_payload, trigger_notification};
