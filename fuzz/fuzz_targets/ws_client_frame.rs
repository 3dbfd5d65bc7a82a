//! `/ws/events` client frames: the daemon's frame parser, then the topic checks and the
//! payload conversion a `publish` goes through before it reaches the bus.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongwatch::event::{validate_filter, validate_topic};
use ongwatch::hub::{Message, Origin};
use ongwatch::web::{ClientOp, parse_client_frame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_frame(text) {
        Ok(ClientOp::Subscribe { topics } | ClientOp::Unsubscribe { topics }) => {
            for topic in &topics {
                let _ = validate_filter(topic);
            }
        }
        Ok(ClientOp::Publish {
            topic,
            payload,
            retain,
        }) => {
            if validate_topic(&topic).is_ok() {
                let bytes = serde_json::to_vec(&payload).unwrap_or_default();
                let _ = Message::from_bytes(topic, &bytes, retain, Origin::Api);
            }
        }
        Ok(ClientOp::Ping) | Err(_) => {}
    }
});
