//! ongwatch: one daemon between a streamer's platforms and their bots.
//!
//! Data flows one way through the modules: [`sources`] (one folder per provider) turn upstream
//! payloads into the [`event`] contract, the [`hub`] deduplicates and numbers them and hands
//! them to the outputs: [`sinks`] (the event log), the [`mqtt`] bridge, the [`commands`]
//! processor and the [`web`] server (dashboard, overlays, `/ws/events`, API).
//! See docs/ARCHITECTURE.md.

/// The version every surface reports (`/api/status`, `/metrics`, `R/system/ongwatch`, AsyncAPI).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod chat;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod event;
pub mod hub;
pub mod mqtt;
pub mod processors;
pub mod retry;
pub mod secret;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod template;
pub mod web;
