//! The command processor: a hub output that acts on `R/command/...` messages, whoever
//! published them (the CLI, a bot over MQTT, the HTTP API, a `[[rules]]` entry). Chat sends go
//! to [`Chat`], which also watches the Twitch provider's state for its source-choice rule; OBS
//! commands go to the OBS connection ([`obs::Commands`]).
//!
//! A bad command gets one clear log line and is otherwise ignored; the daemon keeps running.

use std::sync::Arc;

use crate::chat::Chat;
use crate::event::{TopicRoot, filter_matches};
use crate::hub::{BoundedQueue, Delivery, Publisher};
use crate::sources::obs;
use crate::sources::trigger::{self, TriggerRequest};

pub async fn run(
    queue: Arc<BoundedQueue<Delivery>>,
    publisher: Publisher,
    root: TopicRoot,
    context: trigger::Context,
    chat: Arc<Chat>,
    obs: obs::Commands,
) {
    let trigger_filter = root.filter_suffix("command/trigger");
    let chat_send_filter = root.filter_suffix("command/chat/send");
    let twitch_state_filter = root.filter_suffix("system/providers/twitch");
    while let Some(record) = queue.pop().await {
        queue.mark_delivered(1);
        let topic = &record.message.topic;
        if filter_matches(&chat_send_filter, topic) {
            let channel = root.strip(topic).and_then(|(channel, _)| channel);
            if chat.send(&record.message.payload, channel).await.is_err() {
                return;
            }
            continue;
        }
        match obs.handle(topic, &record.message.payload).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(_) => return,
        }
        if filter_matches(&twitch_state_filter, topic) {
            chat.observe_provider_state(&record.message.payload);
            continue;
        }
        if !filter_matches(&trigger_filter, topic) {
            continue;
        }
        let request: TriggerRequest = match serde_json::from_slice(&record.message.payload) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(%topic, error = %e, "ignored a trigger command that is not a trigger request (expected {{\"type\": \"cheer\", \"user\": ..., \"amount\": ...}})");
                continue;
            }
        };
        // With a per-channel root, the channel in the topic names where it happens.
        let mut context = context.clone();
        if let Some((Some(channel), _)) = root.strip(topic) {
            context.channel = channel.to_owned();
        }
        match trigger::normalize(&request, &context) {
            Ok(events) => {
                for event in events {
                    if publisher.event(event).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::warn!(%topic, error = %e, "ignored a trigger command"),
        }
    }
}
