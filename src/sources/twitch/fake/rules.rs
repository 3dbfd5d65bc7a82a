//! Twitch's EventSub rules as the fake enforces them, from a table written by hand from Twitch's
//! public reference (`tests/data/twitch-eventsub-rules.json`, its sources inside). Deliberately
//! not derived from `catalog.rs`: a wrong scope, version or condition in the catalog must fail
//! against the fake as it would against Twitch, and `tests/twitch.rs` checks the two agree.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

const TABLE: &str = include_str!("../../../../tests/data/twitch-eventsub-rules.json");

#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
    /// The condition's fields, all required, no others.
    pub condition: Vec<String>,
    /// Any one of them authorizes the type; empty when it needs none (or `all_of` says).
    pub scopes: Vec<String>,
    /// Types that need several scopes (channel.moderate v2): every group must be granted, any
    /// one scope of a group grants it.
    #[serde(default)]
    pub all_of: Vec<Vec<String>>,
    pub cost: u64,
}

impl Rule {
    /// The scope groups a token must all satisfy (one scope of each).
    pub fn groups(&self) -> Vec<Vec<String>> {
        if !self.all_of.is_empty() {
            self.all_of.clone()
        } else if self.scopes.is_empty() {
            Vec::new()
        } else {
            vec![self.scopes.clone()]
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Limits {
    pub max_total_cost: u64,
    pub max_subscriptions_per_transport: usize,
    pub keepalive_timeout_seconds: Range,
    pub reconnect_grace_seconds: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

#[derive(Debug, Deserialize)]
struct Table {
    websocket: Limits,
    types: Vec<Rule>,
}

static RULES: LazyLock<Table> = LazyLock::new(|| {
    // The table is compiled in and covered by tests; a broken one is a build defect.
    serde_json::from_str(TABLE).expect("tests/data/twitch-eventsub-rules.json is valid")
});

pub fn all() -> &'static [Rule] {
    &RULES.types
}

pub fn limits() -> &'static Limits {
    &RULES.websocket
}

/// Why Twitch refuses a subscription request, with its status and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400
    BadRequest(&'static str),
    /// 403
    Forbidden,
}

/// The rule a request matches, or why Twitch would refuse it: unknown type or version, a
/// condition without exactly the documented fields, a token without any accepted scope.
pub fn check(
    kind: &str,
    version: &str,
    condition: &Value,
    scopes: Option<&[String]>,
) -> Result<&'static Rule, Refusal> {
    let of_type: Vec<&Rule> = all().iter().filter(|r| r.kind == kind).collect();
    if of_type.is_empty() {
        return Err(Refusal::BadRequest("unsupported subscription type"));
    }
    let of_version: Vec<&Rule> = of_type
        .into_iter()
        .filter(|r| r.version == version)
        .collect();
    if of_version.is_empty() {
        return Err(Refusal::BadRequest("unsupported subscription version"));
    }
    let fields: BTreeSet<&str> = condition
        .as_object()
        .map(|c| {
            c.iter()
                .filter(|(_, v)| v.as_str().is_some_and(|s| !s.is_empty()))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .unwrap_or_default();
    let rule = of_version
        .into_iter()
        .find(|r| {
            r.condition
                .iter()
                .map(String::as_str)
                .collect::<BTreeSet<_>>()
                == fields
        })
        .ok_or(Refusal::BadRequest("invalid condition"))?;
    if let Some(granted) = scopes
        && !rule
            .groups()
            .iter()
            .all(|group| group.iter().any(|s| granted.contains(s)))
    {
        return Err(Refusal::Forbidden);
    }
    Ok(rule)
}

/// What the subscription costs: nothing once the user named in the condition authorized the
/// client (the token's user), else the type's cost.
pub fn cost(rule: &Rule, condition: &Value, token_user: &str) -> u64 {
    let authorized = !token_user.is_empty()
        && condition
            .as_object()
            .is_some_and(|c| c.values().any(|v| v.as_str() == Some(token_user)));
    if authorized { 0 } else { rule.cost }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_what_twitch_refuses() {
        let own = json!({"broadcaster_user_id": "1"});
        let granted = vec!["bits:read".to_owned()];
        assert!(check("channel.cheer", "1", &own, Some(&granted)).is_ok());
        assert_eq!(
            check("channel.cheer", "1", &own, Some(&[])).unwrap_err(),
            Refusal::Forbidden
        );
        assert_eq!(
            check("channel.cheer", "2", &own, None).unwrap_err(),
            Refusal::BadRequest("unsupported subscription version")
        );
        assert_eq!(
            check("channel.follow", "2", &own, None).unwrap_err(),
            Refusal::BadRequest("invalid condition")
        );
        assert!(
            check(
                "channel.raid",
                "1",
                &json!({"from_broadcaster_user_id": "1"}),
                None
            )
            .is_ok()
        );
        assert!(check("channel.nope", "1", &own, None).is_err());
        let online = check("stream.online", "1", &own, Some(&[])).unwrap();
        assert_eq!(cost(online, &own, "1"), 0);
        assert_eq!(cost(online, &json!({"broadcaster_user_id": "2"}), "1"), 1);
        assert_eq!(limits().max_subscriptions_per_transport, 300);
        // channel.moderate v2 needs every one of its groups.
        let both = json!({"broadcaster_user_id": "1", "moderator_user_id": "1"});
        let moderate = all().iter().find(|r| r.kind == "channel.moderate").unwrap();
        let mut granted: Vec<String> = moderate.groups().iter().map(|g| g[0].clone()).collect();
        assert!(check("channel.moderate", "2", &both, Some(&granted)).is_ok());
        granted.pop();
        assert_eq!(
            check("channel.moderate", "2", &both, Some(&granted)).unwrap_err(),
            Refusal::Forbidden
        );
    }
}
