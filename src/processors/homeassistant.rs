//! Home Assistant MQTT discovery: the channel appears in Home Assistant as one device with
//! sensors (live, viewers, hype level and score, last follower, last cheer, last tip) and
//! `event` entities (cheers, tips, subs, gifts, raids, follows, redemptions).
//!
//! Discovery configs are published retained at start and again whenever Home Assistant
//! announces itself on `<discovery_prefix>/status` with `online` (its birth message), since
//! Home Assistant may have lost them, e.g. with a broker that does not keep retained messages.
//! Every entity is available while retained `R/system/ongwatch` says `online`.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::event::{Kind, TopicRoot, validate_topic};
use crate::hub::{BoundedQueue, Delivery, Message, Origin, Publisher};
use crate::section::Section;

/// `[homeassistant]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HomeAssistantConfig {
    pub enabled: bool,
    pub discovery_prefix: String,
}

impl Default for HomeAssistantConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            discovery_prefix: "homeassistant".into(),
        }
    }
}

impl HomeAssistantConfig {
    /// Where Home Assistant publishes its birth (`online`) and will (`offline`).
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }
}

/// One discovery message: its config topic and payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    pub topic: String,
    pub config: Value,
}

/// The discovery configs for `channel`'s topics under `root`.
pub fn discovery(
    settings: &HomeAssistantConfig,
    root: &TopicRoot,
    channel: &str,
    version: &str,
) -> Vec<Discovery> {
    let node = format!("ongwatch_{}", sanitize(channel));
    let topic = |kind: Kind| root.topic(channel, kind.topic_suffix());
    let device = json!({
        "identifiers": [node],
        "name": format!("ongwatch {channel}"),
        "manufacturer": "ongwatch",
        "model": "stream events",
        "sw_version": version,
    });
    let availability = json!([{
        "topic": topic(Kind::System),
        "value_template": "{{ value_json.state }}",
        "payload_available": "online",
        "payload_not_available": "offline",
    }]);
    let who = "{{ value_json.display_name or value_json.user or 'anonymous' }}";
    let sensors: Vec<(&str, &str, &str, Kind, String, Value)> = vec![
        (
            "binary_sensor",
            "live",
            "Live",
            Kind::Status,
            "{{ 'ON' if value_json.live else 'OFF' }}".into(),
            json!({"icon": "mdi:broadcast"}),
        ),
        (
            "sensor",
            "viewers",
            "Viewers",
            Kind::Status,
            "{{ value_json.viewers }}".into(),
            json!({"state_class": "measurement", "unit_of_measurement": "viewers", "icon": "mdi:eye"}),
        ),
        (
            "sensor",
            "hype_level",
            "Hype level",
            Kind::Hype,
            "{{ value_json.level }}".into(),
            json!({"state_class": "measurement", "icon": "mdi:fire"}),
        ),
        (
            "sensor",
            "hype_score",
            "Hype score",
            Kind::Hype,
            "{{ value_json.score }}".into(),
            json!({"state_class": "measurement", "icon": "mdi:fire"}),
        ),
        (
            "sensor",
            "last_follower",
            "Last follower",
            Kind::Follow,
            who.into(),
            json!({"icon": "mdi:account-plus"}),
        ),
        (
            "sensor",
            "last_cheer",
            "Last cheer",
            Kind::Cheer,
            format!("{who} ({{{{ value_json.amount }}}} bits)"),
            json!({"icon": "mdi:diamond-stone"}),
        ),
        (
            "sensor",
            "last_tip",
            "Last tip",
            Kind::Tip,
            format!("{who} ({{{{ value_json.amount }}}} {{{{ value_json.currency }}}})"),
            json!({"icon": "mdi:cash"}),
        ),
    ];
    let events: [(&str, &str, Kind, &[&str]); 7] = [
        ("cheers", "Cheers", Kind::Cheer, &["cheer"]),
        ("tips", "Tips", Kind::Tip, &["tip"]),
        ("subs", "Subs", Kind::Sub, &["sub", "resub"]),
        ("gifts", "Gifts", Kind::Gift, &["gift"]),
        ("raids", "Raids", Kind::Raid, &["raid"]),
        ("follows", "Follows", Kind::Follow, &["follow"]),
        (
            "redemptions",
            "Redemptions",
            Kind::Redemption,
            &["redemption"],
        ),
    ];

    let entity = |component: &str, object: &str, name: &str, kind: Kind, extra: Value| {
        let mut config = json!({
            "name": name,
            "unique_id": format!("{node}_{object}"),
            "state_topic": topic(kind),
            "availability": availability,
            "device": device,
            "origin": {"name": "ongwatch", "sw_version": version},
        });
        if let (Some(fields), Value::Object(extra)) = (config.as_object_mut(), extra) {
            fields.extend(extra);
        }
        Discovery {
            topic: format!(
                "{}/{component}/{node}/{object}/config",
                settings.discovery_prefix
            ),
            config,
        }
    };
    let mut all: Vec<Discovery> = sensors
        .into_iter()
        .map(|(component, object, name, kind, template, mut extra)| {
            if let Some(extra) = extra.as_object_mut() {
                extra.insert("value_template".into(), template.into());
                // The whole payload (user, message, ...) as attributes of the sensor.
                if component == "sensor" && !matches!(kind, Kind::Status | Kind::Hype) {
                    extra.insert("json_attributes_topic".into(), topic(kind).into());
                }
            }
            entity(component, object, name, kind, extra)
        })
        .collect();
    all.extend(events.into_iter().map(|(object, name, kind, types)| {
        entity(
            "event",
            object,
            name,
            kind,
            json!({
                "event_types": types,
                // HA wants `event_type` in the payload; every other field becomes an attribute.
                "value_template": "{{ dict(value_json, event_type=value_json.type) | to_json }}",
            }),
        )
    }));
    all
}

fn sanitize(channel: &str) -> String {
    channel
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

async fn publish_all(publisher: &Publisher, configs: &[Discovery]) -> bool {
    for entry in configs {
        let payload = Bytes::from(serde_json::to_vec(&entry.config).unwrap_or_default());
        let message = Message {
            topic: entry.topic.clone(),
            payload,
            retain: true,
            origin: Origin::Daemon,
            id: None,
        };
        if publisher.message(message).await.is_err() {
            return false;
        }
    }
    true
}

/// Publishes the discovery configs for `channel`, then again after every birth message, until
/// the hub closes `queue`.
pub async fn run(
    queue: Arc<BoundedQueue<Delivery>>,
    publisher: Publisher,
    settings: HomeAssistantConfig,
    channel: String,
) {
    let version = env!("CARGO_PKG_VERSION");
    let configs = discovery(&settings, publisher.root(), &channel, version);
    let status = settings.status_topic();
    if !publish_all(&publisher, &configs).await {
        return;
    }
    while let Some(record) = queue.pop().await {
        queue.mark_delivered(1);
        if record.message.topic != status {
            continue;
        }
        // The bus holds text as a JSON string, so the birth payload `online` arrives as "online".
        let birth = serde_json::from_slice::<String>(&record.message.payload)
            .is_ok_and(|text| text.trim() == "online");
        if birth {
            tracing::info!(%status, "Home Assistant is online; publishing discovery again");
            if !publish_all(&publisher, &configs).await {
                return;
            }
        }
    }
}

impl Section for HomeAssistantConfig {
    const KEY: &'static str = "homeassistant";

    fn problems(&self) -> Vec<(String, String)> {
        let prefix = &self.discovery_prefix;
        if validate_topic(prefix).is_err() || prefix.starts_with('/') || prefix.ends_with('/') {
            vec![(
                "homeassistant.discovery_prefix".into(),
                format!(
                    "{prefix:?} is not a topic prefix; use Home Assistant's, by default \"homeassistant\""
                ),
            )]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entity_has_a_config_with_availability() {
        let configs = discovery(
            &HomeAssistantConfig::default(),
            &TopicRoot::new("stream").unwrap(),
            "Jonathan",
            "1.0",
        );
        assert_eq!(configs.len(), 14);
        let hype = configs
            .iter()
            .find(|d| d.topic == "homeassistant/sensor/ongwatch_jonathan/hype_level/config")
            .unwrap();
        assert_eq!(hype.config["state_topic"], "stream/synthetic/hype");
        assert_eq!(hype.config["unique_id"], "ongwatch_jonathan_hype_level");
        for entry in &configs {
            assert_eq!(
                entry.config["availability"][0]["topic"],
                "stream/system/ongwatch"
            );
            assert!(entry.config["value_template"].is_string(), "{entry:?}");
            assert!(validate_topic(&entry.topic).is_ok());
        }
        let subs = configs
            .iter()
            .find(|d| d.topic == "homeassistant/event/ongwatch_jonathan/subs/config")
            .unwrap();
        assert_eq!(subs.config["event_types"], json!(["sub", "resub"]));
    }

    #[test]
    fn a_bad_prefix_is_named() {
        let settings = HomeAssistantConfig {
            discovery_prefix: "home/#".into(),
            ..HomeAssistantConfig::default()
        };
        assert_eq!(settings.problems()[0].0, "homeassistant.discovery_prefix");
    }
}
