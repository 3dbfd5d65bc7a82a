//! ongwatch: one daemon between a streamer's platforms and their bots.
//!
//! Data flows one way through the modules: `sources` (one folder per provider) turn upstream
//! payloads into the [`event`] contract, the [`hub`] deduplicates and numbers them and hands
//! them to `sinks` (MQTT, the event log, ...). See docs/ARCHITECTURE.md.

pub mod event;
pub mod sources;
