//! The EventSub subscription types ongwatch creates: version, condition and scope of each.
//!
//! The scopes decide what `ongwatch auth twitch` asks for and what `auth status` reports as
//! missing, so a type added here is requested at the next login without further changes.

use serde_json::{Value, json};

/// Which ids a subscription's condition names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `{broadcaster_user_id}`
    Broadcaster,
    /// `{broadcaster_user_id, moderator_user_id}`: we moderate our own channel.
    Moderator,
    /// `{broadcaster_user_id, user_id}`: the chat types read as our own user.
    ChatUser,
    /// `{to_broadcaster_user_id}`: raids into the channel.
    RaidTo,
    /// `{from_broadcaster_user_id}`: raids the channel sends out.
    RaidFrom,
}

impl Condition {
    pub fn build(self, user_id: &str) -> Value {
        match self {
            Self::Broadcaster => json!({ "broadcaster_user_id": user_id }),
            Self::Moderator => {
                json!({ "broadcaster_user_id": user_id, "moderator_user_id": user_id })
            }
            Self::ChatUser => json!({ "broadcaster_user_id": user_id, "user_id": user_id }),
            Self::RaidTo => json!({ "to_broadcaster_user_id": user_id }),
            Self::RaidFrom => json!({ "from_broadcaster_user_id": user_id }),
        }
    }
}

/// The scopes a type needs, as Twitch documents them: every group must be granted, and any one
/// scope of a group grants it. Most types have one group ("`channel:read:polls` or
/// `channel:manage:polls`"); `channel.moderate` has eight; none means no scope is needed.
pub type Scopes = &'static [&'static [&'static str]];

/// One subscription type as Twitch documents it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub kind: String,
    pub version: String,
    pub condition: Condition,
    pub scopes: Scopes,
}

impl Spec {
    /// The groups `granted` does not satisfy, each as its least powerful (first) scope, which
    /// is the one a login requests.
    pub fn missing(&self, granted: &[String]) -> Vec<String> {
        self.scopes
            .iter()
            .filter(|group| !group.iter().any(|scope| granted.iter().any(|g| g == scope)))
            .filter_map(|group| group.first().map(|s| (*s).to_owned()))
            .collect()
    }

    /// What it needs, for people: `a or b, and c`; `none` when nothing.
    pub fn scopes_text(&self) -> String {
        if self.scopes.is_empty() {
            return "none".to_owned();
        }
        self.scopes
            .iter()
            .map(|group| group.join(" or "))
            .collect::<Vec<_>>()
            .join(", and ")
    }
}

const BITS: &[&str] = &["bits:read"];
const SUBS: &[&str] = &["channel:read:subscriptions"];
const CHAT: &[&str] = &["user:read:chat"];
const MODERATE: &[&str] = &["channel:moderate"];

/// `(type, version, condition, scopes)` of every default subscription.
const DEFAULTS: &[(&str, &str, Condition, Scopes)] = &[
    ("channel.cheer", "1", Condition::Broadcaster, &[BITS]),
    ("channel.bits.use", "1", Condition::Broadcaster, &[BITS]),
    ("channel.subscribe", "1", Condition::Broadcaster, &[SUBS]),
    (
        "channel.subscription.message",
        "1",
        Condition::Broadcaster,
        &[SUBS],
    ),
    (
        "channel.subscription.gift",
        "1",
        Condition::Broadcaster,
        &[SUBS],
    ),
    (
        "channel.follow",
        "2",
        Condition::Moderator,
        &[&["moderator:read:followers"]],
    ),
    ("channel.raid", "1", Condition::RaidTo, &[]),
    ("channel.raid", "1", Condition::RaidFrom, &[]),
    (
        "channel.channel_points_custom_reward_redemption.add",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:redemptions", "channel:manage:redemptions"]],
    ),
    (
        "channel.channel_points_automatic_reward_redemption.add",
        "2",
        Condition::Broadcaster,
        &[&["channel:read:redemptions", "channel:manage:redemptions"]],
    ),
    (
        "channel.hype_train.begin",
        "2",
        Condition::Broadcaster,
        &[&["channel:read:hype_train"]],
    ),
    (
        "channel.hype_train.progress",
        "2",
        Condition::Broadcaster,
        &[&["channel:read:hype_train"]],
    ),
    (
        "channel.hype_train.end",
        "2",
        Condition::Broadcaster,
        &[&["channel:read:hype_train"]],
    ),
    (
        "channel.poll.begin",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:polls", "channel:manage:polls"]],
    ),
    (
        "channel.poll.progress",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:polls", "channel:manage:polls"]],
    ),
    (
        "channel.poll.end",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:polls", "channel:manage:polls"]],
    ),
    (
        "channel.prediction.begin",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:predictions", "channel:manage:predictions"]],
    ),
    (
        "channel.prediction.progress",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:predictions", "channel:manage:predictions"]],
    ),
    (
        "channel.prediction.lock",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:predictions", "channel:manage:predictions"]],
    ),
    (
        "channel.prediction.end",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:predictions", "channel:manage:predictions"]],
    ),
    (
        "channel.charity_campaign.donate",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:charity"]],
    ),
    (
        "channel.shoutout.create",
        "1",
        Condition::Moderator,
        &[&["moderator:read:shoutouts", "moderator:manage:shoutouts"]],
    ),
    (
        "channel.shoutout.receive",
        "1",
        Condition::Moderator,
        &[&["moderator:read:shoutouts", "moderator:manage:shoutouts"]],
    ),
    (
        "channel.ad_break.begin",
        "1",
        Condition::Broadcaster,
        &[&["channel:read:ads"]],
    ),
    ("stream.online", "1", Condition::Broadcaster, &[]),
    ("stream.offline", "1", Condition::Broadcaster, &[]),
    ("channel.update", "2", Condition::Broadcaster, &[]),
    ("channel.chat.message", "1", Condition::ChatUser, &[CHAT]),
    (
        "channel.chat.notification",
        "1",
        Condition::ChatUser,
        &[CHAT],
    ),
    ("channel.chat.clear", "1", Condition::ChatUser, &[CHAT]),
    (
        "channel.chat.clear_user_messages",
        "1",
        Condition::ChatUser,
        &[CHAT],
    ),
    (
        "channel.chat.message_delete",
        "1",
        Condition::ChatUser,
        &[CHAT],
    ),
    ("channel.ban", "1", Condition::Broadcaster, &[MODERATE]),
    ("channel.unban", "1", Condition::Broadcaster, &[MODERATE]),
    // Shared chat sessions need no scope: Twitch publishes them to anyone.
    (
        "channel.shared_chat.begin",
        "1",
        Condition::Broadcaster,
        &[],
    ),
    (
        "channel.shared_chat.update",
        "1",
        Condition::Broadcaster,
        &[],
    ),
    ("channel.shared_chat.end", "1", Condition::Broadcaster, &[]),
];

/// What the optional bot account needs to read and write chat.
pub const BOT_SCOPES: &[&str] = &[
    "chat:read",
    "chat:edit",
    "user:read:chat",
    "user:write:chat",
];

fn spec(entry: &(&str, &str, Condition, Scopes)) -> Spec {
    Spec {
        kind: entry.0.to_owned(),
        version: entry.1.to_owned(),
        condition: entry.2,
        scopes: entry.3,
    }
}

const GOALS: &[&str] = &["channel:read:goals"];
const VIPS: &[&str] = &["channel:read:vips", "channel:manage:vips"];
const MODERATORS: &[&str] = &["moderation:read", "channel:manage:moderators"];
const CHARITY: &[&str] = &["channel:read:charity"];
const UNBAN_REQUESTS: &[&str] = &[
    "moderator:read:unban_requests",
    "moderator:manage:unban_requests",
];
const SUSPICIOUS: &[&str] = &["moderator:read:suspicious_users"];
const WARNINGS: &[&str] = &["moderator:read:warnings", "moderator:manage:warnings"];
/// `channel.moderate` v2 needs all of these (Twitch's reference, "Authorization").
const MODERATE_V2: Scopes = &[
    &[
        "moderator:read:blocked_terms",
        "moderator:manage:blocked_terms",
    ],
    &[
        "moderator:read:chat_settings",
        "moderator:manage:chat_settings",
    ],
    UNBAN_REQUESTS,
    &[
        "moderator:read:banned_users",
        "moderator:manage:banned_users",
    ],
    &[
        "moderator:read:chat_messages",
        "moderator:manage:chat_messages",
    ],
    WARNINGS,
    &["moderator:read:moderators"],
    &["moderator:read:vips"],
];

/// Types ongwatch knows but does not create unless `[twitch] subscriptions` lists them; listing
/// them here gives them the right version, condition and scope. Most have a topic of their own
/// (goals, charity campaigns, sub ends, role changes, warnings and unban requests on
/// `R/chat/moderation`); suspicious users, warning acknowledgements and `channel.moderate` go
/// to `R/raw/twitch/<type>` (docs/TWITCH.md says why each is opt-in and which stay raw).
const OPTIONAL: &[(&str, &str, Condition, Scopes)] = &[
    ("channel.goal.begin", "1", Condition::Broadcaster, &[GOALS]),
    (
        "channel.goal.progress",
        "1",
        Condition::Broadcaster,
        &[GOALS],
    ),
    ("channel.goal.end", "1", Condition::Broadcaster, &[GOALS]),
    ("channel.vip.add", "1", Condition::Broadcaster, &[VIPS]),
    ("channel.vip.remove", "1", Condition::Broadcaster, &[VIPS]),
    (
        "channel.moderator.add",
        "1",
        Condition::Broadcaster,
        &[MODERATORS],
    ),
    (
        "channel.moderator.remove",
        "1",
        Condition::Broadcaster,
        &[MODERATORS],
    ),
    (
        "channel.charity_campaign.start",
        "1",
        Condition::Broadcaster,
        &[CHARITY],
    ),
    (
        "channel.charity_campaign.progress",
        "1",
        Condition::Broadcaster,
        &[CHARITY],
    ),
    (
        "channel.charity_campaign.stop",
        "1",
        Condition::Broadcaster,
        &[CHARITY],
    ),
    (
        "channel.subscription.end",
        "1",
        Condition::Broadcaster,
        &[SUBS],
    ),
    (
        "channel.unban_request.create",
        "1",
        Condition::Moderator,
        &[UNBAN_REQUESTS],
    ),
    (
        "channel.unban_request.resolve",
        "1",
        Condition::Moderator,
        &[UNBAN_REQUESTS],
    ),
    (
        "channel.suspicious_user.message",
        "1",
        Condition::Moderator,
        &[SUSPICIOUS],
    ),
    (
        "channel.suspicious_user.update",
        "1",
        Condition::Moderator,
        &[SUSPICIOUS],
    ),
    (
        "channel.warning.send",
        "1",
        Condition::Moderator,
        &[WARNINGS],
    ),
    (
        "channel.warning.acknowledge",
        "1",
        Condition::Moderator,
        &[WARNINGS],
    ),
    ("channel.moderate", "2", Condition::Moderator, MODERATE_V2),
];

/// Every type ongwatch knows: the defaults, then the opt-in ones.
pub fn known() -> impl Iterator<Item = Spec> {
    DEFAULTS.iter().chain(OPTIONAL).map(spec)
}

/// A `[twitch] subscriptions` entry ongwatch cannot create: not `type` or `type@version`, a
/// type it does not know (so neither its condition nor its scope), or a version Twitch does
/// not have for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadEntry(pub String);

/// The subscriptions for `[twitch] subscriptions` (empty: every default). An entry is a type,
/// optionally `@version`; it must be one of the types in [`known`], at its version.
pub fn resolve(entries: &[String]) -> Result<Vec<Spec>, BadEntry> {
    if entries.is_empty() {
        return Ok(DEFAULTS.iter().map(spec).collect());
    }
    let mut specs = Vec::new();
    for entry in entries {
        specs.extend(resolve_one(entry)?);
    }
    Ok(specs)
}

/// One problem line per bad entry, for `ongwatch check`.
pub fn problems(entries: &[String]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|entry| resolve_one(entry).err().map(|e| e.0))
        .collect()
}

fn resolve_one(entry: &str) -> Result<Vec<Spec>, BadEntry> {
    let (kind, version) = match entry.split_once('@') {
        Some((kind, version)) => (kind, Some(version)),
        None => (entry, None),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
    };
    if !valid(kind) || version.is_some_and(|v| !valid(v)) {
        return Err(BadEntry(format!(
            "{entry:?} is not a subscription type; use e.g. \"channel.cheer\" or \"channel.follow@2\""
        )));
    }
    let known: Vec<Spec> = known().filter(|s| s.kind == kind).collect();
    if known.is_empty() {
        return Err(BadEntry(format!(
            "{entry:?}: ongwatch does not know this EventSub type, so it cannot build its condition or \
             request its scope (docs/TWITCH.md lists the types)"
        )));
    }
    if let Some(version) = version
        && known.iter().all(|s| s.version != version)
    {
        return Err(BadEntry(format!(
            "{entry:?}: Twitch has version {} of {kind}, not {version}",
            known[0].version
        )));
    }
    Ok(known)
}

/// The scopes to request at login: the first (least powerful) accepted scope of each group of
/// each type.
pub fn requested_scopes(specs: &[Spec]) -> Vec<String> {
    let mut scopes: Vec<String> = specs.iter().flat_map(|s| s.missing(&[])).collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// The scopes a token lacks for `specs`, as the ones login would request.
pub fn missing_scopes(specs: &[Spec], granted: &[String]) -> Vec<String> {
    let mut missing: Vec<String> = specs.iter().flat_map(|s| s.missing(granted)).collect();
    missing.sort();
    missing.dedup();
    missing
}

/// Whether the granted scopes allow this subscription.
pub fn allowed(spec: &Spec, granted: &[String]) -> bool {
    spec.missing(granted).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_the_issue_list_with_both_raid_directions() {
        let specs = resolve(&[]).unwrap();
        assert_eq!(specs.iter().filter(|s| s.kind == "channel.raid").count(), 2);
        assert_eq!(
            specs
                .iter()
                .find(|s| s.kind == "channel.follow")
                .unwrap()
                .version,
            "2"
        );
        let scopes = requested_scopes(&specs);
        assert!(scopes.contains(&"bits:read".to_owned()));
        assert!(scopes.contains(&"user:read:chat".to_owned()));
        assert_eq!(
            Condition::Moderator.build("7"),
            json!({"broadcaster_user_id": "7", "moderator_user_id": "7"})
        );
    }

    #[test]
    fn entries_pick_types_and_versions() {
        let specs = resolve(&["channel.follow@2".into(), "channel.goal.begin".into()]).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1].version, "1");
        assert_eq!(specs[1].scopes, [["channel:read:goals"]]);
        assert!(resolve(&["Channel Cheer".into()]).is_err());
        // One line per bad entry: unknown type, wrong version, bad spelling.
        let bad = problems(&[
            "channel.cheer".into(),
            "channel.made_up".into(),
            "channel.follow@3".into(),
            "Channel Cheer".into(),
        ]);
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(bad[0].contains("cannot build its condition"), "{}", bad[0]);
        assert!(bad[1].contains("version 2"), "{}", bad[1]);
        // A moderator-condition opt-in type builds both ids.
        let unban = resolve(&["channel.unban_request.create".into()]).unwrap();
        assert_eq!(unban[0].condition, Condition::Moderator);
        let granted = vec!["channel:manage:redemptions".to_owned()];
        let redemptions =
            resolve(&["channel.channel_points_custom_reward_redemption.add".into()]).unwrap();
        assert!(missing_scopes(&redemptions, &granted).is_empty());
        assert_eq!(
            missing_scopes(&resolve(&["channel.cheer".into()]).unwrap(), &granted),
            vec!["bits:read".to_owned()]
        );
    }

    #[test]
    fn channel_moderate_needs_every_group() {
        let moderate = resolve(&["channel.moderate@2".into()]).unwrap();
        assert_eq!(moderate[0].condition, Condition::Moderator);
        let mut granted: Vec<String> = requested_scopes(&moderate);
        assert_eq!(granted.len(), 8, "{granted:?}");
        assert!(allowed(&moderate[0], &granted));
        // A manage scope grants its group as well as the read one.
        granted.retain(|s| s != "moderator:read:warnings");
        assert_eq!(moderate[0].missing(&granted), ["moderator:read:warnings"]);
        assert!(!allowed(&moderate[0], &granted));
        granted.push("moderator:manage:warnings".into());
        assert!(allowed(&moderate[0], &granted));
        assert!(moderate[0].scopes_text().contains("moderator:read:vips"));
    }
}
