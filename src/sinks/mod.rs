//! Outputs the hub feeds, besides the MQTT bridge (which is also a source; see `mqtt`).

pub mod eventlog;
