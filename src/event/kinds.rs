//! The kind-specific fields of every payload, one struct per `type`.
//!
//! Optional fields are left out of the JSON when unknown rather than sent as `null`, so a
//! payload only says what the upstream actually told us.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::topic::Kind;

/// Everything that follows the common fields. The `type` field selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Cheer(Cheer),
    Tip(Tip),
    Sub(Sub),
    Resub(Sub),
    Gift(Gift),
    Powerup(Powerup),
    Charity(Charity),
    CharityCampaign(CharityCampaign),
    Hypetrain(HypeTrain),
    Follow(Follow),
    SubEnd(SubEnd),
    Raid(Raid),
    Redemption(Redemption),
    Shoutout(Shoutout),
    Chat(ChatMessage),
    Notice(ChatNotice),
    Moderation(Moderation),
    Poll(Poll),
    Prediction(Prediction),
    Online(Online),
    Offline(Offline),
    ChannelUpdate(ChannelUpdate),
    AdBreak(AdBreak),
    Goal(Goal),
    SharedChat(SharedChat),
    Status(Status),
    Hype(Hype),
    Totals(Totals),
    System(SystemState),
    ProviderState(ProviderState),
    ObsScene(ObsScene),
    ObsOutputs(ObsOutputs),
    ObsStats(ObsStats),
    ObsEvent(ObsEvent),
    Raw(Raw),
}

impl EventKind {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Cheer(_) => Kind::Cheer,
            Self::Tip(_) => Kind::Tip,
            Self::Sub(_) => Kind::Sub,
            Self::Resub(_) => Kind::Resub,
            Self::Gift(_) => Kind::Gift,
            Self::Powerup(_) => Kind::Powerup,
            Self::Charity(_) => Kind::Charity,
            Self::CharityCampaign(_) => Kind::CharityCampaign,
            Self::Hypetrain(_) => Kind::Hypetrain,
            Self::Follow(_) => Kind::Follow,
            Self::SubEnd(_) => Kind::SubEnd,
            Self::Raid(_) => Kind::Raid,
            Self::Redemption(_) => Kind::Redemption,
            Self::Shoutout(_) => Kind::Shoutout,
            Self::Chat(_) => Kind::Chat,
            Self::Notice(_) => Kind::Notice,
            Self::Moderation(_) => Kind::Moderation,
            Self::Poll(_) => Kind::Poll,
            Self::Prediction(_) => Kind::Prediction,
            Self::Online(_) => Kind::Online,
            Self::Offline(_) => Kind::Offline,
            Self::ChannelUpdate(_) => Kind::ChannelUpdate,
            Self::AdBreak(_) => Kind::AdBreak,
            Self::Goal(_) => Kind::Goal,
            Self::SharedChat(_) => Kind::SharedChat,
            Self::Status(_) => Kind::Status,
            Self::Hype(_) => Kind::Hype,
            Self::Totals(_) => Kind::Totals,
            Self::System(_) => Kind::System,
            Self::ProviderState(_) => Kind::ProviderState,
            Self::ObsScene(_) => Kind::ObsScene,
            Self::ObsOutputs(_) => Kind::ObsOutputs,
            Self::ObsStats(_) => Kind::ObsStats,
            Self::ObsEvent(_) => Kind::ObsEvent,
            Self::Raw(_) => Kind::Raw,
        }
    }
}

/// Who did it. All three are absent for anonymous actions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserRef {
    /// Login name (lowercase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl UserRef {
    pub fn named(login: impl Into<String>) -> Self {
        let login: String = login.into();
        Self {
            display_name: Some(login.clone()),
            user: Some(login.to_lowercase()),
            user_id: None,
        }
    }
}

/// Subscription tier: `1`, `2`, `3` or `"prime"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    One,
    Two,
    Three,
    Prime,
}

impl JsonSchema for Tier {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tier".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Subscription tier: 1, 2, 3 or \"prime\".",
            "oneOf": [
                { "type": "integer", "enum": [1, 2, 3] },
                { "type": "string", "const": "prime" }
            ]
        })
    }
}

impl Tier {
    /// Twitch's wire form: "1000", "2000", "3000", "Prime" (any case).
    pub fn from_twitch(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "1000" | "1" => Some(Self::One),
            "2000" | "2" => Some(Self::Two),
            "3000" | "3" => Some(Self::Three),
            "prime" => Some(Self::Prime),
            _ => None,
        }
    }
}

impl Serialize for Tier {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::One => s.serialize_u8(1),
            Self::Two => s.serialize_u8(2),
            Self::Three => s.serialize_u8(3),
            Self::Prime => s.serialize_str("prime"),
        }
    }
}

impl<'de> Deserialize<'de> for Tier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let text = match &value {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s.clone(),
            _ => String::new(),
        };
        Tier::from_twitch(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid tier {value}")))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cheer {
    #[serde(flatten)]
    pub user: UserRef,
    /// Number of bits.
    pub amount: u64,
    /// Always `"bits"`.
    pub currency: String,
    pub message: String,
    pub anonymous: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tip {
    #[serde(flatten)]
    pub user: UserRef,
    pub amount: f64,
    /// ISO 4217 code, e.g. `"USD"`.
    pub currency: String,
    pub message: String,
}

/// A new subscription (`type: "sub"`) or a resubscription shared in chat (`type: "resub"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Sub {
    #[serde(flatten)]
    pub user: UserRef,
    pub tier: Tier,
    /// Cumulative months subscribed (1 for a new sub).
    pub months: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streak_months: Option<u32>,
    /// True when this sub was received as a gift.
    pub is_gift: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One gift action: `count` subs given at once to `recipients` (logins, when known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Gift {
    #[serde(flatten)]
    pub user: UserRef,
    pub tier: Tier,
    pub count: u32,
    pub recipients: Vec<String>,
    pub anonymous: bool,
    /// The gifter's total gifts in this channel, when shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cumulative_total: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Powerup {
    #[serde(flatten)]
    pub user: UserRef,
    /// Bits spent.
    pub amount: u64,
    /// Always `"bits"`.
    pub currency: String,
    /// Which power-up, e.g. `message_effect`, `celebration`, `gigantify_an_emote`.
    pub power_up: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Charity {
    #[serde(flatten)]
    pub user: UserRef,
    pub amount: f64,
    pub currency: String,
    pub charity_name: String,
}

/// A Twitch charity campaign began, raised money, or ended (`channel.charity_campaign.start`,
/// `.progress`, `.stop`; the phases are named like the other lifecycle topics').
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CharityCampaign {
    /// `begin`, `progress` or `end`.
    pub phase: Phase,
    pub campaign_id: String,
    pub charity_name: String,
    /// Raised so far, in `currency`.
    pub current_amount: f64,
    pub target_amount: f64,
    /// ISO 4217 code, e.g. `"USD"`.
    pub currency: String,
}

/// Lifecycle step of a hype train, poll or prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Begin,
    Progress,
    Lock,
    End,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HypeTrain {
    pub phase: Phase,
    pub hype_train_id: String,
    pub level: u32,
    /// Points contributed so far.
    pub total: u64,
    /// Points towards the current level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<u64>,
    /// A train shared by the channels of a Twitch shared chat session (hype train v2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_shared_train: bool,
    /// The channels of a shared train; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_train_participants: Vec<SharedChatParticipant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Follow {
    #[serde(flatten)]
    pub user: UserRef,
}

/// A subscription ended (it lapsed, or a gift ran out): `channel.subscription.end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubEnd {
    #[serde(flatten)]
    pub user: UserRef,
    pub tier: Tier,
    /// True when the sub that ended was a gift.
    pub is_gift: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// A raid. `user` is the other channel: the raider when incoming, the target when outgoing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Raid {
    #[serde(flatten)]
    pub user: UserRef,
    pub direction: Direction,
    pub viewers: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Redemption {
    #[serde(flatten)]
    pub user: UserRef,
    pub redemption_id: String,
    pub reward_id: String,
    pub reward_title: String,
    pub cost: u64,
    /// What the viewer typed, when the reward asks for text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `unfulfilled`, `fulfilled`, `canceled` or `automatic`.
    pub status: String,
}

/// A shoutout. `user` is the other channel: the one shouted out when given, the giver when received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Shoutout {
    #[serde(flatten)]
    pub user: UserRef,
    /// `outgoing` when given, `incoming` when received.
    pub direction: Direction,
    pub viewers: u64,
}

/// An emote inside a chat message, by character position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Emote {
    pub id: String,
    pub name: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatMessage {
    #[serde(flatten)]
    pub user: UserRef,
    pub message_id: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Badge set id → version, e.g. `{"subscriber": "12"}`.
    pub badges: std::collections::BTreeMap<String, String>,
    pub is_subscriber: bool,
    pub is_moderator: bool,
    pub is_vip: bool,
    pub is_broadcaster: bool,
    pub emotes: Vec<Emote>,
    /// Bits cheered inside this message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<u64>,
    /// The message id this one replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatNotice {
    #[serde(flatten)]
    pub user: UserRef,
    /// Upstream notice kind, e.g. `announcement`, `pay_it_forward`, `bits_badge_tier`.
    pub notice_type: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModerationAction {
    Ban,
    Timeout,
    Unban,
    Delete,
    Clear,
    ClearUser,
    /// `user` was made a VIP.
    Vip,
    /// `user` is no longer a VIP.
    Unvip,
    /// `user` was made a moderator.
    Mod,
    /// `user` is no longer a moderator.
    Unmod,
    /// A moderator warned `user`; `reason` says why.
    Warn,
    /// `user` asked to be unbanned; `reason` is their request.
    UnbanRequest,
    /// A moderator granted `user`'s unban request; `reason` is the moderator's answer.
    ApproveUnbanRequest,
    /// A moderator denied `user`'s unban request; `reason` is the moderator's answer.
    DenyUnbanRequest,
}

/// `user` is the target (absent for a whole-chat clear).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Moderation {
    #[serde(flatten)]
    pub user: UserRef,
    pub action: ModerationAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    /// The deleted message, for `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PollChoice {
    pub id: String,
    pub title: String,
    pub votes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Poll {
    pub phase: Phase,
    pub poll_id: String,
    pub title: String,
    pub choices: Vec<PollChoice>,
    /// Set at the end: `completed`, `terminated` or `archived`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PredictionOutcome {
    pub id: String,
    pub title: String,
    pub users: u64,
    pub points: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Prediction {
    pub phase: Phase,
    pub prediction_id: String,
    pub title: String,
    pub outcomes: Vec<PredictionOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winning_outcome_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Online {
    /// RFC 3339 start time of the stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Offline {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelUpdate {
    pub title: String,
    pub category: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AdBreak {
    pub duration_seconds: u64,
    pub automatic: bool,
}

/// A creator goal began, moved, or ended (`channel.goal.begin`, `.progress`, `.end`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Goal {
    /// `begin`, `progress` or `end`.
    pub phase: Phase,
    pub goal_id: String,
    /// What is counted: `follow`, `subscription`, `subscription_count`, `new_subscription`,
    /// `new_subscription_count`, `new_bit`, `new_cheerer` (Twitch's names).
    pub goal_type: String,
    pub description: String,
    pub current_amount: u64,
    pub target_amount: u64,
    /// At `end`: whether the target was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub achieved: Option<bool>,
}

/// Lifecycle step of a Twitch shared chat session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionPhase {
    Begin,
    Update,
    End,
}

/// One channel of a shared chat session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SharedChatParticipant {
    /// The channel's login.
    pub channel: String,
    pub channel_id: String,
}

/// A Twitch shared chat session began, changed its participants, or ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SharedChat {
    pub phase: SessionPhase,
    pub session_id: String,
    /// The channel that started the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_channel_id: Option<String>,
    /// Every channel in the session, ours included; empty at `end`.
    pub participants: Vec<SharedChatParticipant>,
}

/// The shared chat session a channel is in, on `R/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SharedChatSession {
    pub session_id: String,
    pub participants: Vec<SharedChatParticipant>,
}

/// Retained: whether the channel is live and what it streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    pub live: bool,
    pub title: String,
    pub category: String,
    pub viewers: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The Twitch shared chat session the channel is in; absent when it is in none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_chat: Option<SharedChatSession>,
}

/// Retained: the hype meter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Hype {
    pub level: u32,
    pub score: f64,
}

/// Retained: support totals of the current stream session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    pub bits: u64,
    /// Tips per ISO 4217 currency.
    pub tips: std::collections::BTreeMap<String, f64>,
    pub subs: u64,
    pub gifts: u64,
    pub follows: u64,
    pub raids: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_started_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DaemonState {
    Online,
    Offline,
}

/// Retained on `R/system/ongwatch`; `offline` is also the broker will.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemState {
    pub state: DaemonState,
    pub version: String,
    pub started_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    Unauthorized,
    Error,
    Disabled,
}

/// Health of one upstream subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubscriptionHealth {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// With status `missing_scope`: the scopes the login lacks for it (what `ongwatch auth
    /// twitch` then requests).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_scopes: Vec<String>,
}

/// Retained on `R/system/providers/<provider>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProviderState {
    pub state: ConnectionState,
    /// What is happening, and for `unauthorized`/`error` what to do about it.
    pub detail: String,
    pub since: String,
    pub subscriptions: Vec<SubscriptionHealth>,
}

/// OBS's current program scene (`R/obs/scene`, retained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObsScene {
    pub scene: String,
    /// The program scene before this one; absent when ongwatch has not seen another yet.
    pub previous_scene: Option<String>,
}

/// Which of OBS's outputs are active (`R/obs/outputs`, retained).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObsOutputs {
    pub streaming: bool,
    pub recording: bool,
    pub recording_paused: bool,
    pub replay_buffer: bool,
    /// False also where OBS has no virtual camera (e.g. Linux without v4l2loopback).
    pub virtualcam: bool,
}

/// OBS's `GetStats`, polled every 5 s (`R/obs/stats`, retained). Frame counts are OBS's own
/// running totals since it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObsStats {
    /// Percent of one core.
    pub cpu_usage: f64,
    pub memory_mb: f64,
    pub available_disk_space_mb: f64,
    pub active_fps: f64,
    pub average_frame_render_time_ms: f64,
    /// Frames the renderer missed (GPU or CPU too slow).
    pub render_skipped_frames: u64,
    pub render_total_frames: u64,
    /// Frames the encoders dropped (encoder overloaded).
    pub output_skipped_frames: u64,
    pub output_total_frames: u64,
}

/// Any other obs-websocket event on `R/obs/events/<event_type>`: OBS's `eventData` flat next
/// to the common fields, with its own (camelCase) key names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObsEvent {
    /// obs-websocket's `eventType`, e.g. `StreamStateChanged`.
    pub event_type: String,
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// Anything a provider sends that has no topic of its own; never dropped silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Raw {
    pub upstream_type: String,
    pub data: serde_json::Value,
}
