//! StreamElements Astro: one WebSocket text frame through the live reader's frame parser, and
//! every notification through `normalize_astro`, as the source does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongwatch::sources::streamelements::{AstroFrame, normalize_astro, parse_astro_frame};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(AstroFrame::Message { topic, data }) = parse_astro_frame(text) {
        let event = normalize_astro(&topic, &data, "channel");
        let _ = serde_json::to_string(&event);
    }
});
