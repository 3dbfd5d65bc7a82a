//! Twitch EventSub: one WebSocket text frame through `parse_frame` and, for notifications,
//! the normalizer (both with and without the dedicated subscriptions present).
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use ongwatch::sources::twitch::eventsub::{Context, Frame, normalize, parse_frame, raw_event};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(Frame::Notification(notification)) = parse_frame(text) else {
        return;
    };
    let mut ctx = Context::new("12826", "twitch");
    ctx.include_raw = true;
    for subscribed in [None, Some(BTreeSet::new())] {
        ctx.subscribed = subscribed;
        if let Ok(Some(event)) = normalize(&notification, &ctx) {
            let _ = serde_json::to_string(&event);
        }
    }
    let _ = serde_json::to_string(&raw_event(&notification, &ctx));
});
