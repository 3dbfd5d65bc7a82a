//! A small Socket.IO client (websocket transport only) for the providers that still speak
//! Socket.IO 2 / Engine.IO 3: Streamlabs and StreamElements' legacy realtime socket.
//!
//! No maintained Rust crate speaks Engine.IO 3 (rust_socketio is EIO 4 only and forces
//! OpenSSL), and the subset the providers use is small: open, connect, events, emit, ping/pong.
//! Engine.IO 4 is supported too because the difference is only who pings whom.
//!
//! [`provider`] holds what both Socket.IO-era providers (and StreamElements' Astro socket) share:
//! the reconnect schedule and the provider-state reporting.

mod client;
mod packet;
pub mod provider;

pub use client::{ClientOptions, EioVersion, SocketEvent, SocketIoClient, SocketIoError};
pub use packet::{EnginePacket, Handshake, PacketError, SocketPacket};
