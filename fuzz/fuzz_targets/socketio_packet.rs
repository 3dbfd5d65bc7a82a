//! Engine.IO / Socket.IO (Streamlabs, StreamElements realtime): one WebSocket text frame
//! through both packet layers, re-encoded, and events through both providers' normalizers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongwatch::sources::socketio::{EnginePacket, SocketPacket};
use ongwatch::sources::{streamelements, streamlabs};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(engine) = EnginePacket::parse(text) else {
        return;
    };
    let _ = engine.encode();
    let EnginePacket::Message(message) = engine else {
        return;
    };
    let Ok(packet) = SocketPacket::parse(&message) else {
        return;
    };
    let _ = packet.encode();
    if let SocketPacket::Event { name, args, .. } = packet {
        for event in streamlabs::normalize_socket_event(&name, &args, "channel") {
            let _ = serde_json::to_string(&event);
        }
        let event = streamelements::normalize_socket_event(&name, &args, "channel");
        let _ = serde_json::to_string(&event);
    }
});
