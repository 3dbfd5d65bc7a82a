//! Topics: which kind goes where under the root, and MQTT filter matching.

use thiserror::Error;

/// Every payload `type`, with its topic and whether it is retained state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Cheer,
    Tip,
    Sub,
    Resub,
    Gift,
    Powerup,
    Charity,
    CharityCampaign,
    Hypetrain,
    Follow,
    SubEnd,
    Raid,
    Redemption,
    Shoutout,
    Chat,
    Notice,
    Moderation,
    Poll,
    Prediction,
    Online,
    Offline,
    ChannelUpdate,
    AdBreak,
    Goal,
    SharedChat,
    Status,
    Hype,
    Totals,
    System,
    ProviderState,
    ObsScene,
    ObsOutputs,
    ObsStats,
    ObsEvent,
    Raw,
}

impl Kind {
    pub const ALL: [Kind; 35] = [
        Kind::Cheer,
        Kind::Tip,
        Kind::Sub,
        Kind::Resub,
        Kind::Gift,
        Kind::Powerup,
        Kind::Charity,
        Kind::CharityCampaign,
        Kind::Hypetrain,
        Kind::Follow,
        Kind::SubEnd,
        Kind::Raid,
        Kind::Redemption,
        Kind::Shoutout,
        Kind::Chat,
        Kind::Notice,
        Kind::Moderation,
        Kind::Poll,
        Kind::Prediction,
        Kind::Online,
        Kind::Offline,
        Kind::ChannelUpdate,
        Kind::AdBreak,
        Kind::Goal,
        Kind::SharedChat,
        Kind::Status,
        Kind::Hype,
        Kind::Totals,
        Kind::System,
        Kind::ProviderState,
        Kind::ObsScene,
        Kind::ObsOutputs,
        Kind::ObsStats,
        Kind::ObsEvent,
        Kind::Raw,
    ];

    /// The `type` field value.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Cheer => "cheer",
            Kind::Tip => "tip",
            Kind::Sub => "sub",
            Kind::Resub => "resub",
            Kind::Gift => "gift",
            Kind::Powerup => "powerup",
            Kind::Charity => "charity",
            Kind::CharityCampaign => "charity_campaign",
            Kind::Hypetrain => "hypetrain",
            Kind::Follow => "follow",
            Kind::SubEnd => "sub_end",
            Kind::Raid => "raid",
            Kind::Redemption => "redemption",
            Kind::Shoutout => "shoutout",
            Kind::Chat => "chat",
            Kind::Notice => "notice",
            Kind::Moderation => "moderation",
            Kind::Poll => "poll",
            Kind::Prediction => "prediction",
            Kind::Online => "online",
            Kind::Offline => "offline",
            Kind::ChannelUpdate => "channel_update",
            Kind::AdBreak => "ad_break",
            Kind::Goal => "goal",
            Kind::SharedChat => "shared_chat",
            Kind::Status => "status",
            Kind::Hype => "hype",
            Kind::Totals => "totals",
            Kind::System => "system",
            Kind::ProviderState => "provider_state",
            Kind::ObsScene => "obs_scene",
            Kind::ObsOutputs => "obs_outputs",
            Kind::ObsStats => "obs_stats",
            Kind::ObsEvent => "obs_event",
            Kind::Raw => "raw",
        }
    }

    pub fn from_type_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.type_name() == name)
    }

    /// Topic below the root. For `raw` and `provider_state` the provider and upstream type
    /// are appended by [`super::Event::topic_suffix`].
    pub fn topic_suffix(self) -> &'static str {
        match self {
            Kind::Cheer => "support/cheers",
            Kind::Tip => "support/tips",
            Kind::Sub | Kind::Resub => "support/subs",
            Kind::Gift => "support/gifts",
            Kind::Powerup => "support/powerups",
            Kind::Charity => "support/charity",
            Kind::CharityCampaign => "channel/charity_campaign",
            Kind::Hypetrain => "support/hypetrain",
            Kind::Follow => "community/follows",
            Kind::SubEnd => "community/sub_ends",
            Kind::Raid => "community/raids",
            Kind::Redemption => "community/redemptions",
            Kind::Shoutout => "community/shoutouts",
            Kind::Chat => "chat/messages",
            Kind::Notice => "chat/notices",
            Kind::Moderation => "chat/moderation",
            Kind::Poll => "interactive/polls",
            Kind::Prediction => "interactive/predictions",
            Kind::Online => "channel/online",
            Kind::Offline => "channel/offline",
            Kind::ChannelUpdate => "channel/updated",
            Kind::AdBreak => "channel/ads",
            Kind::Goal => "channel/goals",
            Kind::SharedChat => "channel/shared_chat",
            Kind::Status => "status",
            Kind::Hype => "synthetic/hype",
            Kind::Totals => "synthetic/totals",
            Kind::System => "system/ongwatch",
            Kind::ProviderState => "system/providers",
            Kind::ObsScene => "obs/scene",
            Kind::ObsOutputs => "obs/outputs",
            Kind::ObsStats => "obs/stats",
            Kind::ObsEvent => "obs/events",
            Kind::Raw => "raw",
        }
    }

    /// Support and community events say on which platform the supporter acted.
    pub fn carries_platform(self) -> bool {
        let topic = self.topic_suffix();
        topic.starts_with("support/") || topic.starts_with("community/")
    }

    pub fn is_state(self) -> bool {
        matches!(
            self,
            Kind::Status
                | Kind::Hype
                | Kind::Totals
                | Kind::System
                | Kind::ProviderState
                | Kind::ObsScene
                | Kind::ObsOutputs
                | Kind::ObsStats
        )
    }

    /// One line for the docs and the AsyncAPI channel description.
    pub fn description(self) -> &'static str {
        match self {
            Kind::Cheer => "Bits cheered (Twitch cheers and bits use, Streamlabs bits).",
            Kind::Tip => "Money tips (StreamElements tips, Streamlabs donations).",
            Kind::Sub => "A new subscription.",
            Kind::Resub => "A resubscription shared in chat.",
            Kind::Gift => "Gift subs: one event per gift action with `count` and `recipients`.",
            Kind::Powerup => "Bits power-ups.",
            Kind::Charity => "Charity campaign donations.",
            Kind::CharityCampaign => {
                "Twitch charity campaign `phase` begin, progress or end, with the amount raised."
            }
            Kind::Hypetrain => "Hype train begin, progress and end (`phase`).",
            Kind::Follow => "A new follower.",
            Kind::SubEnd => "A subscription ended (lapsed or a gift ran out); not support.",
            Kind::Raid => "Raids, `direction` incoming or outgoing.",
            Kind::Redemption => "Channel-point redemptions (custom and automatic rewards).",
            Kind::Shoutout => "Shoutouts given (outgoing) and received (incoming).",
            Kind::Chat => "Chat messages.",
            Kind::Notice => "Announcements and other chat notices.",
            Kind::Moderation => {
                "Bans, timeouts, unbans, deleted messages, chat clears, VIP and moderator changes, warnings, unban requests."
            }
            Kind::Poll => "Polls (`phase`).",
            Kind::Prediction => "Predictions (`phase`).",
            Kind::Online => "The stream went live.",
            Kind::Offline => "The stream went offline.",
            Kind::ChannelUpdate => "Title or category changed.",
            Kind::AdBreak => "An ad break began.",
            Kind::Goal => "Creator goal `phase` begin, progress or end (followers, subs, bits).",
            Kind::SharedChat => {
                "Twitch shared chat session `phase` begin, update or end, with its `participants`."
            }
            Kind::Status => "Retained: live, title, category, viewers of the channel.",
            Kind::Hype => "Retained: the hype meter's level and score.",
            Kind::Totals => "Retained: support totals of the current stream session.",
            Kind::System => "Retained: the daemon is online or offline (offline is the will).",
            Kind::ProviderState => "Retained: connection state and subscriptions of a provider.",
            Kind::ObsScene => "Retained: OBS's current program scene and the one before it.",
            Kind::ObsOutputs => {
                "Retained: whether OBS is streaming, recording (paused), running the replay buffer or the virtual camera."
            }
            Kind::ObsStats => {
                "Retained: OBS's GetStats (CPU, memory, FPS, skipped frames), every 5 s."
            }
            Kind::ObsEvent => "Any other obs-websocket event, its eventData flat.",
            Kind::Raw => "Anything a provider sends that has no topic of its own.",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("topic is empty")]
    Empty,
    #[error("topic {0:?} contains a wildcard (+ or #), which only filters may use")]
    Wildcard(String),
    #[error("topic {0:?} contains a NUL character")]
    Nul(String),
    #[error(
        "filter {0:?} is not a valid MQTT filter ('#' only as the last level, '+' alone in its level)"
    )]
    BadFilter(String),
    #[error("topic_root {0:?} must not be empty, start or end with '/', or contain + or #")]
    BadRoot(String),
}

/// A topic a message may be published on: non-empty, no wildcards, no NUL.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard(topic.to_owned()));
    }
    if topic.contains('\0') {
        return Err(TopicError::Nul(topic.to_owned()));
    }
    Ok(())
}

pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let bad_hash = level.contains('#') && (*level != "#" || i + 1 != levels.len());
        let bad_plus = level.contains('+') && *level != "+";
        if bad_hash || bad_plus || level.contains('\0') {
            return Err(TopicError::BadFilter(filter.to_owned()));
        }
    }
    Ok(())
}

/// MQTT filter matching (`+` one level, `#` the rest). Topics starting with `$` only match
/// filters that name the `$` level explicitly, as in MQTT.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && !filter.starts_with('$') {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for level in filter.split('/') {
        match level {
            "#" => return true,
            "+" => {
                if topic_levels.next().is_none() {
                    return false;
                }
            }
            exact => {
                if topic_levels.next() != Some(exact) {
                    return false;
                }
            }
        }
    }
    topic_levels.next().is_none()
}

/// Whether some topic matches both filters (so two owners of them would collide).
pub fn filters_overlap(a: &str, b: &str) -> bool {
    if validate_filter(a).is_err() || validate_filter(b).is_err() {
        return false;
    }
    let (mut a_levels, mut b_levels) = (a.split('/'), b.split('/'));
    loop {
        match (a_levels.next(), b_levels.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (None, None) => return true,
            // One ran out before the other reached `#` (`x/#` matching `x` is the arm above).
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(x), Some(y)) => {
                if x != "+" && y != "+" && x != y {
                    return false;
                }
            }
        }
    }
}

/// Topic suffixes (below the root) that only ongwatch publishes: every family of the
/// contract's event and state topics, what providers relay raw, the daemon's system state,
/// OBS state and command results (CONTRACT §3, topic authority). `synthetic/hype` is not
/// here: a bot may take it over from the built-in meter. `command/...` requests are not here
/// either: they are inbound, and `[mqtt] command_clients` governs them.
pub const RESERVED_SUFFIXES: [&str; 13] = [
    "support/#",
    "community/#",
    "chat/#",
    "interactive/#",
    "channel/#",
    "status",
    "synthetic/totals",
    "raw/#",
    "system/#",
    "obs/#",
    "command/+/result",
    "command/+/+/result",
    "command/+/+/+/result",
];

/// Replaces characters that would change a topic's structure in a value placed into one level.
pub fn sanitize_level(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| match c {
            '/' | '+' | '#' | '\0' => '_',
            c => c,
        })
        .collect();
    if cleaned.is_empty() {
        "_".to_owned()
    } else {
        cleaned
    }
}

/// `[bus] topic_root`, possibly with a `{channel}` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoot {
    template: String,
}

impl TopicRoot {
    pub const CHANNEL_PLACEHOLDER: &'static str = "{channel}";

    pub fn new(template: impl Into<String>) -> Result<Self, TopicError> {
        let template = template.into();
        if template.is_empty()
            || template.starts_with('/')
            || template.ends_with('/')
            || template.contains(['+', '#', '\0'])
        {
            return Err(TopicError::BadRoot(template));
        }
        Ok(Self { template })
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    pub fn is_per_channel(&self) -> bool {
        self.template.contains(Self::CHANNEL_PLACEHOLDER)
    }

    /// The concrete root for a channel (the channel is lower-cased and made topic-safe).
    pub fn for_channel(&self, channel: &str) -> String {
        if self.is_per_channel() {
            let level = sanitize_level(&channel.to_lowercase());
            self.template.replace(Self::CHANNEL_PLACEHOLDER, &level)
        } else {
            self.template.clone()
        }
    }

    /// `<root for channel>/<suffix>`.
    pub fn topic(&self, channel: &str, suffix: &str) -> String {
        format!("{}/{}", self.for_channel(channel), suffix)
    }

    /// A filter matching everything under every channel's root (`{channel}` becomes `+`).
    pub fn filter_all(&self) -> String {
        format!(
            "{}/#",
            self.template.replace(Self::CHANNEL_PLACEHOLDER, "+")
        )
    }

    /// A filter for one suffix under every channel's root, e.g. `+/command/trigger`.
    pub fn filter_suffix(&self, suffix: &str) -> String {
        format!(
            "{}/{}",
            self.template.replace(Self::CHANNEL_PLACEHOLDER, "+"),
            suffix
        )
    }

    /// Whether only ongwatch may publish `topic` ([`RESERVED_SUFFIXES`] under this root).
    pub fn is_reserved(&self, topic: &str) -> bool {
        self.strip(topic).is_some_and(|(_, suffix)| {
            RESERVED_SUFFIXES
                .iter()
                .any(|filter| filter_matches(filter, suffix))
        })
    }

    /// Splits a topic under this root into (channel if the root is per-channel, suffix).
    pub fn strip<'t>(&self, topic: &'t str) -> Option<(Option<&'t str>, &'t str)> {
        let root_levels = self.template.split('/').count();
        let mut split = topic.splitn(root_levels + 1, '/');
        let mut channel = None;
        for expected in self.template.split('/') {
            let level = split.next()?;
            if expected == Self::CHANNEL_PLACEHOLDER {
                channel = Some(level);
            } else if expected != level {
                return None;
            }
        }
        split.next().map(|suffix| (channel, suffix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_mqtt() {
        assert!(filter_matches("stream/#", "stream/support/cheers"));
        assert!(filter_matches("stream/#", "stream"));
        assert!(filter_matches("stream/+/cheers", "stream/support/cheers"));
        assert!(!filter_matches("stream/+", "stream/support/cheers"));
        assert!(!filter_matches("stream/support", "stream/support/cheers"));
        assert!(filter_matches("#", "a/b"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("+/support/cheers", "ninja/support/cheers"));
    }

    #[test]
    fn overlapping_filters() {
        assert!(filters_overlap(
            "stream/synthetic/bpm",
            "stream/synthetic/bpm"
        ));
        assert!(filters_overlap("stream/synthetic/+", "stream/+/bpm"));
        assert!(filters_overlap("stream/#", "stream/synthetic/bpm"));
        assert!(filters_overlap("stream/support/#", "stream/support"));
        assert!(filters_overlap("stream/support", "stream/support/#"));
        assert!(!filters_overlap(
            "stream/synthetic/bpm",
            "stream/synthetic/crowd"
        ));
        assert!(!filters_overlap(
            "stream/synthetic/bpm",
            "stream/synthetic/bpm/x"
        ));
        assert!(!filters_overlap("stream/+", "stream/a/b"));
        assert!(filters_overlap("+/support/cheers", "ninja/#"));
    }

    #[test]
    fn filter_validation() {
        assert!(validate_filter("stream/#").is_ok());
        assert!(validate_filter("stream/+/x").is_ok());
        assert!(validate_filter("stream/#/x").is_err());
        assert!(validate_filter("stream/a+").is_err());
        assert!(validate_topic("stream/+").is_err());
    }

    #[test]
    fn channel_roots() {
        let root = TopicRoot::new("ongwatch/{channel}").unwrap();
        assert_eq!(
            root.topic("Ninja", "support/cheers"),
            "ongwatch/ninja/support/cheers"
        );
        assert_eq!(root.filter_all(), "ongwatch/+/#");
        assert_eq!(
            root.strip("ongwatch/ninja/support/cheers"),
            Some((Some("ninja"), "support/cheers"))
        );
        assert_eq!(root.strip("other/ninja/support"), None);
        let plain = TopicRoot::new("stream").unwrap();
        assert_eq!(plain.strip("stream/a/b"), Some((None, "a/b")));
        assert_eq!(plain.strip("streamx/a"), None);
        assert!(TopicRoot::new("a/#").is_err());
        assert!(TopicRoot::new("/a").is_err());
    }
}
