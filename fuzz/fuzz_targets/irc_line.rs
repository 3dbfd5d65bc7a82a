//! Twitch IRC: one line from the socket through the generic parser, the typed layer and the
//! normalizer, then serialized the way the hub does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongwatch::sources::twitch::irc::{IrcMessage, TwitchMessage, normalize_line};

fuzz_target!(|data: &[u8]| {
    // The IRC client splits the byte stream into UTF-8 lines before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.split("\r\n") {
        if let Ok(msg) = IrcMessage::parse(line) {
            for (key, value) in msg.tags().iter() {
                let _ = (key, value.unescape());
            }
            let _ = (msg.prefix(), msg.channel(), msg.trailing());
            let _ = msg.params().count();
            let _ = TwitchMessage::from_irc(&msg);
        }
        if let Ok(events) = normalize_line(line, true) {
            for event in events {
                let _ = serde_json::to_string(&event);
            }
        }
    }
});
