//! StreamElements Astro: one WebSocket text frame. The frame reader is a JSON object split
//! (`type`, `topic`, `data`), so this drives the same split into `normalize_astro`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongwatch::sources::streamelements::normalize_astro;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let topic = frame
        .get("topic")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let payload = frame.get("data").cloned().unwrap_or(Value::Null);
    let event = normalize_astro(topic, &payload, "channel");
    let _ = serde_json::to_string(&event);
});
