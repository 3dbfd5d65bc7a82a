//! ongwatch: one daemon between a streamer's platforms and their bots.
//!
//! Data flows one way through the modules: [`sources`] (one folder per provider) turn upstream
//! payloads into the [`event`] contract, the [`hub`] deduplicates and numbers them and hands
//! them (after its write-ahead log) to the outputs: the [`mqtt`] bridge, the `[[outputs]]`
//! [`sinks`], the [`processors`] beside the hub and the [`web`] server (dashboard, overlays,
//! `/ws/events`, API). [`config`] aggregates every component's section; [`daemon`] is the
//! composition root, the only module that builds them all.
//! See docs/ARCHITECTURE.md.

/// The version every surface reports (`/api/status`, `/metrics`, `R/system/ongwatch`, AsyncAPI).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// Foundation: small modules every component may use; they depend on nothing else here.
pub mod credentials;
pub mod limiter;
pub mod net;
pub mod retry;
pub mod secret;
pub mod section;
pub mod state;
pub mod supervisor;
pub mod template;

// The contract and the bus.
pub mod event;
pub mod hub;

// Components, in data-flow order: sources, processors beside the hub, outputs, the web server.
pub mod chat;
pub mod mqtt;
pub mod processors;
pub mod sinks;
pub mod sources;
pub mod web;

// Composition: the config aggregate, the daemon that builds everything, the command line.
pub mod cli;
pub mod config;
pub mod daemon;
