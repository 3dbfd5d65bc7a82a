//! `ongwatch trigger`: test events through the daemon's real normalizers.

use std::time::Duration;

use bytes::Bytes;

use super::reach::{CLI_PATIENCE, Unreached, reach_daemon};
use super::{Failure, Global};
use crate::config::Config;
use crate::mqtt::client::Rejected;
use crate::sources::trigger::TriggerRequest;

pub(super) async fn trigger(
    config: &Config,
    global: &Global,
    request: TriggerRequest,
    repeat: u64,
    rate: Option<f64>,
) -> Result<(), Failure> {
    let channel = request
        .channel
        .clone()
        .unwrap_or_else(|| config.default_channel());
    let topic = config.topic_root.topic(&channel, "command/trigger");
    let mut client = reach_daemon(config, global, "ongwatch-trigger", CLI_PATIENCE)
        .await
        .map_err(Unreached::into_failure)?;
    let mut pace = rate.map(|rate| tokio::time::interval(Duration::from_secs_f64(1.0 / rate)));
    for _ in 0..repeat {
        if let Some(pace) = pace.as_mut() {
            pace.tick().await;
        }
        let request = TriggerRequest {
            id: Some(uuid::Uuid::new_v4().to_string()),
            ..request.clone()
        };
        let payload = serde_json::to_vec(&request)
            .map_err(|e| Failure::runtime(format!("cannot encode the trigger: {e}")))?;
        client
            .publish(&topic, Bytes::from(payload), false)
            .await
            .map_err(Failure::runtime)?
            .map_err(|Rejected(reason)| {
                Failure::runtime(format!(
                    "the broker at {} refused the trigger on {topic} ({reason}); check [mqtt] command_clients",
                    client.endpoint()
                ))
            })?;
    }
    client.disconnect().await;
    Ok(())
}
