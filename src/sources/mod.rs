//! Sources: everything that turns the outside world into contract events, one folder per provider.

pub mod demo;
pub mod obs;
pub mod socketio;
pub mod streamelements;
pub mod streamlabs;
pub mod trigger;
pub mod twitch;
