//! `GET /ws/chat`: the seed TwitchBackend protocol (CONTRACT §6, docs/CHAT.md).
//!
//! Each connection is a [`ChatClient`]: joining a channel joins it on IRC unless another
//! client already did, and the channel is parted when its last client leaves or disconnects.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use serde_json::{Value, json};

use crate::chat::{Chat, ChatClient};

/// Largest client frame accepted; commands are a few dozen bytes.
const MAX_CLIENT_FRAME: usize = 64 * 1024;

pub async fn chat(State(chat): State<Arc<Chat>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| serve(chat.client(), socket))
}

async fn serve(mut client: ChatClient, mut socket: WebSocket) {
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let reply = match incoming {
                    Some(Ok(WsMessage::Text(text))) => answer(&mut client, text.as_str()),
                    Some(Ok(WsMessage::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                        Ok(text) => answer(&mut client, text),
                        Err(_) => json!({"error": "Invalid JSON"}),
                    },
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                if socket.send(WsMessage::Text(reply.to_string().into())).await.is_err() {
                    return;
                }
            }
            frame = client.frames.recv() => {
                let Some(frame) = frame else { return };
                if socket.send(WsMessage::Text(frame.as_ref().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The reply to one client frame.
fn answer(client: &mut ChatClient, text: &str) -> Value {
    let Ok(frame) = serde_json::from_str::<Value>(text) else {
        return json!({"error": "Invalid JSON"});
    };
    let command = frame.get("command").cloned().unwrap_or(Value::Null);
    let channel = frame.get("channel").and_then(Value::as_str).unwrap_or("");
    match command.as_str() {
        Some("ping") => json!({"type": "pong"}),
        Some("join_channel") => match client.join(channel) {
            Ok(channel) => json!({"status": "joined_channel", "channel": channel}),
            Err(_) => json!({"error": "Invalid channel", "channel": channel}),
        },
        Some("leave_channel") => match client.leave(channel) {
            Ok(channel) => json!({"status": "left_channel", "channel": channel}),
            Err(_) => json!({"error": "Invalid channel", "channel": channel}),
        },
        _ => json!({"error": "Unknown command", "command": command}),
    }
}
