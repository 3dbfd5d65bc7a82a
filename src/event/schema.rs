//! Published descriptions of the contract, generated from the types: the JSON Schema of every
//! payload, the AsyncAPI 3 document of every topic, and docs/EVENTS.md with one example each.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;

/// JSON Schema (draft 2020-12) of every payload.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(Event);
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

fn example_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-13T20:01:02.345Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn user(login: &str, id: &str, display: &str) -> UserRef {
    UserRef {
        user: Some(login.into()),
        user_id: Some(id.into()),
        display_name: Some(display.into()),
    }
}

fn example(id: &str, provider: &str, kind: EventKind) -> Event {
    // The examples' support comes from Twitch, except tips, given on a tip page.
    let platform = if provider == "twitch" {
        "twitch"
    } else {
        "web"
    };
    Event::new(id, provider, "jonathanong", kind)
        .at(example_time())
        .on_platform(platform)
}

fn shared_chat_participants() -> Vec<SharedChatParticipant> {
    vec![
        SharedChatParticipant {
            channel: "jonathanong".into(),
            channel_id: "12826".into(),
        },
        SharedChatParticipant {
            channel: "alinsa_vix".into(),
            channel_id: "141981764".into(),
        },
    ]
}

/// One realistic example per kind, in [`Kind::ALL`] order.
pub fn examples() -> Vec<Event> {
    let alinsa = || user("alinsa_vix", "141981764", "Alinsa_Vix");
    Kind::ALL
        .into_iter()
        .map(|kind| match kind {
            Kind::Cheer => example(
                "twitch:5d0d9a3e-6c8b-4b1e-9c62-0b3a5f7e4d21",
                "twitch",
                EventKind::Cheer(Cheer {
                    user: alinsa(),
                    amount: 2490,
                    currency: "bits".into(),
                    message: "Cheer2490 CHAOS".into(),
                    anonymous: false,
                }),
            ),
            Kind::Tip => example(
                "streamelements:65f1c2a3b4d5e6f708192a3b",
                "streamelements",
                EventKind::Tip(Tip {
                    user: UserRef::named("Kappa_Fan"),
                    amount: 5.0,
                    currency: "USD".into(),
                    message: "for the loop pedal fund".into(),
                }),
            ),
            Kind::Sub => example(
                "twitch:b2c3d4e5-0000-4000-8000-000000000001",
                "twitch",
                EventKind::Sub(Sub {
                    user: user("cool_user", "1234", "Cool_User"),
                    tier: Tier::One,
                    months: 1,
                    streak_months: None,
                    is_gift: false,
                    message: None,
                }),
            ),
            Kind::Resub => example(
                "twitch:b2c3d4e5-0000-4000-8000-000000000002",
                "twitch",
                EventKind::Resub(Sub {
                    user: user("cool_user", "1234", "Cool_User"),
                    tier: Tier::Prime,
                    months: 15,
                    streak_months: Some(3),
                    is_gift: false,
                    message: Some("Love the stream! FevziGG".into()),
                }),
            ),
            Kind::Gift => example(
                "twitch:b2c3d4e5-0000-4000-8000-000000000003",
                "twitch",
                EventKind::Gift(Gift {
                    user: alinsa(),
                    tier: Tier::One,
                    count: 5,
                    recipients: vec![],
                    anonymous: false,
                    cumulative_total: Some(284),
                }),
            ),
            Kind::Powerup => example(
                "twitch:b2c3d4e5-0000-4000-8000-000000000004",
                "twitch",
                EventKind::Powerup(Powerup {
                    user: alinsa(),
                    amount: 50,
                    currency: "bits".into(),
                    power_up: "message_effect".into(),
                    message: Some("hello world".into()),
                }),
            ),
            Kind::Charity => example(
                "twitch:a1b2c3d4-1111-4111-8111-000000000005",
                "twitch",
                EventKind::Charity(Charity {
                    user: alinsa(),
                    amount: 10.0,
                    currency: "USD".into(),
                    charity_name: "Example Charity".into(),
                }),
            ),
            Kind::CharityCampaign => example(
                "twitch:a1b2c3d4-1111-4111-8111-000000000012",
                "twitch",
                EventKind::CharityCampaign(CharityCampaign {
                    phase: Phase::Progress,
                    campaign_id: "123-abc-456-def".into(),
                    charity_name: "Example name".into(),
                    current_amount: 2600.0,
                    target_amount: 15000.0,
                    currency: "USD".into(),
                }),
            ),
            Kind::Hypetrain => example(
                "twitch:1b0AsbInCHZW2SQFQkCzqN07Ib2:progress:137",
                "twitch",
                EventKind::Hypetrain(HypeTrain {
                    phase: Phase::Progress,
                    hype_train_id: "1b0AsbInCHZW2SQFQkCzqN07Ib2".into(),
                    level: 1,
                    total: 137,
                    progress: Some(137),
                    goal: Some(500),
                    is_shared_train: true,
                    shared_train_participants: shared_chat_participants(),
                }),
            ),
            Kind::Follow => example(
                "twitch:c3d4e5f6-2222-4222-8222-000000000006",
                "twitch",
                EventKind::Follow(Follow {
                    user: user("new_friend", "5678", "New_Friend"),
                }),
            ),
            Kind::SubEnd => example(
                "twitch:c3d4e5f6-2222-4222-8222-000000000013",
                "twitch",
                EventKind::SubEnd(SubEnd {
                    user: user("cool_user", "1234", "Cool_User"),
                    tier: Tier::One,
                    is_gift: false,
                }),
            ),
            Kind::Raid => example(
                "twitch:d4e5f6a7-3333-4333-8333-000000000007",
                "twitch",
                EventKind::Raid(Raid {
                    user: user("loopstation_larry", "9001", "LoopstationLarry"),
                    direction: Direction::Incoming,
                    viewers: 42,
                }),
            ),
            Kind::Redemption => example(
                "twitch:17fa2df1-ad76-4804-bfa5-a40ef63efe63",
                "twitch",
                EventKind::Redemption(Redemption {
                    user: alinsa(),
                    redemption_id: "17fa2df1-ad76-4804-bfa5-a40ef63efe63".into(),
                    reward_id: "92af127c-7326-4483-a52b-b0da0be61c01".into(),
                    reward_title: "Hydrate!".into(),
                    cost: 100,
                    message: Some("drink water pls".into()),
                    status: "unfulfilled".into(),
                }),
            ),
            Kind::Shoutout => example(
                "twitch:e5f6a7b8-4444-4444-8444-000000000008",
                "twitch",
                EventKind::Shoutout(Shoutout {
                    user: user("loopstation_larry", "9001", "LoopstationLarry"),
                    direction: Direction::Outgoing,
                    viewers: 860,
                }),
            ),
            Kind::Chat => example(
                "twitch:cc106a89-1814-919d-454c-f4f2f970aae7",
                "twitch",
                EventKind::Chat(ChatMessage {
                    user: alinsa(),
                    message_id: "cc106a89-1814-919d-454c-f4f2f970aae7".into(),
                    message: "that drop Kappa".into(),
                    color: Some("#00FF7F".into()),
                    badges: BTreeMap::from([("subscriber".to_owned(), "12".to_owned())]),
                    is_subscriber: true,
                    is_moderator: false,
                    is_vip: false,
                    is_broadcaster: false,
                    emotes: vec![Emote {
                        id: "25".into(),
                        name: "Kappa".into(),
                        start: 10,
                        end: 14,
                    }],
                    bits: None,
                    reply_to: None,
                }),
            ),
            Kind::Notice => example(
                "twitch:f6a7b8c9-5555-4555-8555-000000000009",
                "twitch",
                EventKind::Notice(ChatNotice {
                    user: user("jonathanong", "1337", "JonathanOng"),
                    notice_type: "announcement".into(),
                    message: "New loop pack out now!".into(),
                }),
            ),
            Kind::Moderation => example(
                "twitch:a7b8c9d0-6666-4666-8666-000000000010",
                "twitch",
                EventKind::Moderation(Moderation {
                    user: user("spam_bot_9000", "666", "spam_bot_9000"),
                    action: ModerationAction::Timeout,
                    moderator: Some("trusty_mod".into()),
                    reason: Some("links".into()),
                    duration_seconds: Some(600),
                    message_id: None,
                }),
            ),
            Kind::Poll => example(
                "twitch:1243456:end",
                "twitch",
                EventKind::Poll(Poll {
                    phase: Phase::End,
                    poll_id: "1243456".into(),
                    title: "Next song tempo?".into(),
                    choices: vec![
                        PollChoice {
                            id: "123".into(),
                            title: "90 bpm".into(),
                            votes: 12,
                        },
                        PollChoice {
                            id: "124".into(),
                            title: "128 bpm".into(),
                            votes: 31,
                        },
                    ],
                    status: Some("completed".into()),
                }),
            ),
            Kind::Prediction => example(
                "twitch:1243456:lock",
                "twitch",
                EventKind::Prediction(Prediction {
                    phase: Phase::Lock,
                    prediction_id: "1243456".into(),
                    title: "Will the loop survive?".into(),
                    outcomes: vec![
                        PredictionOutcome {
                            id: "1243456".into(),
                            title: "Yeah!".into(),
                            users: 10,
                            points: 15000,
                        },
                        PredictionOutcome {
                            id: "2243456".into(),
                            title: "No!".into(),
                            users: 4,
                            points: 2000,
                        },
                    ],
                    winning_outcome_id: None,
                    status: None,
                }),
            ),
            Kind::Online => example(
                "twitch:online:9001",
                "twitch",
                EventKind::Online(Online {
                    started_at: Some("2026-03-13T20:00:00Z".into()),
                    title: Some("Live looping all night".into()),
                    category: Some("Music".into()),
                }),
            ),
            Kind::Offline => example("twitch:offline:9001", "twitch", EventKind::Offline(Offline {})),
            Kind::ChannelUpdate => example(
                "twitch:update:9002",
                "twitch",
                EventKind::ChannelUpdate(ChannelUpdate {
                    title: "Live looping all night".into(),
                    category: "Music".into(),
                    category_id: Some("26936".into()),
                    language: Some("en".into()),
                }),
            ),
            Kind::AdBreak => example(
                "twitch:ad:9003",
                "twitch",
                EventKind::AdBreak(AdBreak {
                    duration_seconds: 60,
                    automatic: false,
                }),
            ),
            Kind::Goal => example(
                "twitch:goal:9005",
                "twitch",
                EventKind::Goal(Goal {
                    phase: Phase::Progress,
                    goal_id: "12345-cool-event".into(),
                    goal_type: "subscription".into(),
                    description: "Help me get partner!".into(),
                    current_amount: 100,
                    target_amount: 220,
                    achieved: None,
                }),
            ),
            Kind::SharedChat => example(
                "twitch:shared-chat:9004",
                "twitch",
                EventKind::SharedChat(SharedChat {
                    phase: SessionPhase::Begin,
                    session_id: "2b64a92a-dbb8-424e-b1c3-304423ba1b6f".into(),
                    host_channel: Some("jonathanong".into()),
                    host_channel_id: Some("12826".into()),
                    participants: shared_chat_participants(),
                }),
            ),
            Kind::Status => example(
                "ongwatch:status:1",
                "ongwatch",
                EventKind::Status(Status {
                    live: true,
                    title: "Live looping all night".into(),
                    category: "Music".into(),
                    viewers: 312,
                    started_at: Some("2026-03-13T20:00:00Z".into()),
                    shared_chat: Some(SharedChatSession {
                        session_id: "2b64a92a-dbb8-424e-b1c3-304423ba1b6f".into(),
                        participants: shared_chat_participants(),
                    }),
                }),
            ),
            Kind::Hype => example(
                "ongwatch:hype:1",
                "ongwatch",
                EventKind::Hype(Hype {
                    level: 3,
                    score: 41.5,
                }),
            ),
            Kind::Totals => example(
                "ongwatch:totals:1",
                "ongwatch",
                EventKind::Totals(Totals {
                    bits: 2490,
                    tips: BTreeMap::from([("USD".to_owned(), 5.0)]),
                    subs: 3,
                    gifts: 5,
                    follows: 17,
                    raids: 1,
                    session_started_at: Some("2026-03-13T20:00:00Z".into()),
                }),
            ),
            Kind::System => example(
                "ongwatch:system:1",
                "ongwatch",
                EventKind::System(SystemState {
                    state: DaemonState::Online,
                    version: "0.1.0".into(),
                    started_at: "2026-03-13T19:59:58.000Z".into(),
                }),
            ),
            Kind::ProviderState => example(
                "ongwatch:provider:twitch:1",
                "twitch",
                EventKind::ProviderState(ProviderState {
                    state: ConnectionState::Connected,
                    detail: "EventSub session AQoQILE98gtqShGmLD7AM6yJThAB".into(),
                    since: "2026-03-13T19:59:59.000Z".into(),
                    subscriptions: vec![SubscriptionHealth {
                        kind: "channel.cheer".into(),
                        version: "1".into(),
                        status: "enabled".into(),
                        last_event: Some("2026-03-13T20:01:02.345Z".into()),
                        last_error: None,
                        missing_scopes: Vec::new(),
                    }],
                }),
            ),
            Kind::ObsScene => example(
                "obs:5d0c1c52-3b0e-4f4e-9d1e-3f7a2b9c0001",
                "obs",
                EventKind::ObsScene(ObsScene {
                    scene: "Alerts".into(),
                    previous_scene: Some("Main".into()),
                }),
            ),
            Kind::ObsOutputs => example(
                "obs:5d0c1c52-3b0e-4f4e-9d1e-3f7a2b9c0002",
                "obs",
                EventKind::ObsOutputs(ObsOutputs {
                    streaming: true,
                    recording: true,
                    recording_paused: false,
                    replay_buffer: false,
                    virtualcam: false,
                }),
            ),
            Kind::ObsStats => example(
                "obs:5d0c1c52-3b0e-4f4e-9d1e-3f7a2b9c0003",
                "obs",
                EventKind::ObsStats(ObsStats {
                    cpu_usage: 2.4,
                    memory_mb: 178.5,
                    available_disk_space_mb: 51_234.0,
                    active_fps: 30.0,
                    average_frame_render_time_ms: 0.9,
                    render_skipped_frames: 0,
                    render_total_frames: 108_000,
                    output_skipped_frames: 12,
                    output_total_frames: 107_990,
                }),
            ),
            Kind::ObsEvent => example(
                "obs:5d0c1c52-3b0e-4f4e-9d1e-3f7a2b9c0004",
                "obs",
                EventKind::ObsEvent(ObsEvent {
                    event_type: "StreamStateChanged".into(),
                    data: serde_json::Map::from_iter([
                        ("outputActive".to_owned(), json!(true)),
                        ("outputState".to_owned(), json!("OBS_WEBSOCKET_OUTPUT_STARTED")),
                    ]),
                }),
            ),
            Kind::Raw => example(
                "twitch:0b3c6a1e-7777-4777-8777-000000000011",
                "twitch",
                EventKind::Raw(Raw {
                    upstream_type: "channel.suspicious_user.update".into(),
                    data: json!({"user_id": "1050263437", "user_login": "06fbcc75952245c5a87", "low_trust_status": "restricted"}),
                }),
            ),
        })
        .collect()
}

/// The topic each example is published on with the default root.
fn example_topic(event: &Event) -> String {
    format!("stream/{}", event.topic_suffix())
}

/// The AsyncAPI 3 channel address for a kind (parameters for the variable levels).
fn channel_address(kind: Kind) -> String {
    match kind {
        Kind::Raw => "{root}/raw/{provider}/{upstreamType}".to_owned(),
        Kind::ProviderState => "{root}/system/providers/{provider}".to_owned(),
        Kind::ObsEvent => "{root}/obs/events/{obsEventType}".to_owned(),
        kind => format!("{{root}}/{}", kind.topic_suffix()),
    }
}

/// AsyncAPI 3.0 document of every topic ongwatch publishes or listens to.
pub fn asyncapi(version: &str) -> Value {
    let mut channels = serde_json::Map::new();
    let mut operations = serde_json::Map::new();
    let mut messages = serde_json::Map::new();
    let examples = examples();
    for (kind, example) in Kind::ALL.into_iter().zip(&examples) {
        let name = kind.type_name();
        let address = channel_address(kind);
        let channel_id = address
            .trim_start_matches("{root}/")
            .replace(['/', '{', '}'], "_")
            .trim_matches('_')
            .to_owned();
        let channel = channels.entry(channel_id.clone()).or_insert_with(|| {
            let mut parameters = serde_json::Map::new();
            parameters.insert(
                "root".into(),
                json!({"description": "`[bus] topic_root`, `stream` by default, with `{channel}` filled in."}),
            );
            if address.contains("{provider}") {
                parameters.insert("provider".into(), json!({"description": "twitch, streamelements, streamlabs, ..."}));
            }
            if address.contains("{obsEventType}") {
                parameters.insert("obsEventType".into(), json!({"description": "obs-websocket's eventType, e.g. StreamStateChanged."}));
            }
            if address.contains("{upstreamType}") {
                parameters.insert("upstreamType".into(), json!({"description": "The provider's own event type."}));
            }
            json!({
                "address": address,
                "description": kind.description(),
                "parameters": parameters,
                "messages": {}
            })
        });
        channel["messages"][name] = json!({"$ref": format!("#/components/messages/{name}")});
        let retained = if kind.is_state() {
            "QoS 1, retained."
        } else {
            "QoS 1, not retained."
        };
        messages.insert(
            name.into(),
            json!({
                "name": name,
                "title": name,
                "summary": kind.description(),
                "description": retained,
                "contentType": "application/json",
                "payload": {"$ref": "#/components/schemas/Event"},
                "examples": [{"name": name, "payload": example.to_json()}]
            }),
        );
        operations
            .entry(format!("publish_{channel_id}"))
            .or_insert_with(|| {
                json!({
                    "action": "send",
                    "channel": {"$ref": format!("#/channels/{channel_id}")},
                    "summary": format!("ongwatch publishes on {address}"),
                })
            });
    }
    for (id, address, description) in [
        (
            "command_chat_send",
            "{root}/command/chat/send",
            "Send a chat message: {message, channel?, as?: \"bot\"|\"broadcaster\", reply_to?}.",
        ),
        (
            "command_trigger",
            "{root}/command/trigger",
            "Inject a test event (what `ongwatch trigger` sends).",
        ),
        (
            "command_obs_scene",
            "{root}/command/obs/scene",
            "Switch OBS's program scene: {scene, id?}; result {ok, error?, code?, scene, id?} on {root}/command/obs/scene/result.",
        ),
        (
            "command_obs_request",
            "{root}/command/obs/request",
            "Any obs-websocket 5 request: {request_type, request_data?, id?}; result {ok, error?, code?, data?, request_type, id?} on {root}/command/obs/request/result.",
        ),
    ] {
        channels.insert(
            id.into(),
            json!({
                "address": address,
                "description": description,
                "parameters": {"root": {"description": "`[bus] topic_root`."}},
                "messages": {id: {"payload": {"type": "object"}}}
            }),
        );
        operations.insert(
            format!("receive_{id}"),
            json!({
                "action": "receive",
                "channel": {"$ref": format!("#/channels/{id}")},
                "summary": format!("ongwatch listens on {address}"),
            }),
        );
    }
    channels.insert(
        "system_bots_clientId".into(),
        json!({
            "address": "{root}/system/bots/{clientId}",
            "description": "Presence of every MQTT client that is not ongwatch's own (topic authority).",
            "parameters": {
                "root": {"description": "`[bus] topic_root`."},
                "clientId": {"description": "The MQTT client id, with '/', '+' and '#' replaced by '_'."}
            },
            "messages": {"bot_presence": {"$ref": "#/components/messages/bot_presence"}}
        }),
    );
    messages.insert(
        "bot_presence".into(),
        json!({
            "name": "bot_presence",
            "title": "bot_presence",
            "summary": "Presence of an MQTT client: online/offline, login, owned topics, counters. Cleared (empty payload) when an offline client that owns nothing is forgotten after an hour.",
            "description": "QoS 1, retained.",
            "contentType": "application/json",
            "payload": {"$ref": "#/components/schemas/BotPresence"},
            "examples": [{"name": "bot_presence", "payload": BotPresence::example()}]
        }),
    );
    operations.insert(
        "publish_system_bots_clientId".into(),
        json!({
            "action": "send",
            "channel": {"$ref": "#/channels/system_bots_clientId"},
            "summary": "ongwatch publishes on {root}/system/bots/{clientId}",
        }),
    );
    let mut schema = json_schema();
    let defs = schema
        .as_object_mut()
        .and_then(|o| o.remove("$defs"))
        .unwrap_or_else(|| json!({}));
    let schema_text = serde_json::to_string(&schema)
        .unwrap_or_default()
        .replace("#/$defs/", "#/components/schemas/");
    let schema: Value = serde_json::from_str(&schema_text).unwrap_or(Value::Null);
    let mut schemas = serde_json::Map::new();
    schemas.insert("Event".into(), schema);
    schemas.insert(
        "BotPresence".into(),
        serde_json::to_value(schemars::schema_for!(BotPresence)).unwrap_or(Value::Null),
    );
    if let Value::Object(defs) = defs {
        for (name, def) in defs {
            let text = serde_json::to_string(&def)
                .unwrap_or_default()
                .replace("#/$defs/", "#/components/schemas/");
            schemas.insert(name, serde_json::from_str(&text).unwrap_or(Value::Null));
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "ongwatch",
            "version": version,
            "description": "Normalized stream events (Twitch, StreamElements, Streamlabs) on an MQTT bus. Events are QoS 1 and not retained; state topics are QoS 1 and retained.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {"host": "127.0.0.1:1883", "protocol": "mqtt", "description": "The embedded broker (MQTT 3.1.1 and 5)."},
            "embedded-ws": {"host": "127.0.0.1:9001", "protocol": "ws", "description": "The embedded broker over WebSocket."}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas}
    })
}

/// docs/EVENTS.md: the topics table and one example payload per topic.
pub fn events_markdown() -> String {
    let mut out = String::from(
        "# Events\n\n\
         Generated by `cargo test --test contract` from `src/event/` (set `ONGWATCH_BLESS=1` to \
         rewrite it); do not edit by hand.\n\n\
         Every payload is a flat JSON object with the common fields `v`, `id`, `type`, \
         `provider`, `channel`, `time`, `test` and the kind's own fields next to them. \
         With `[bus] include_raw = true` the upstream payload is added as `raw`. \
         The JSON Schema is `docs/schema/events.schema.json` (`ongwatch schema`), the AsyncAPI 3 \
         document `docs/schema/asyncapi.json` (`ongwatch schema --asyncapi`).\n\n\
         `R` is `[bus] topic_root` (default `stream`). Events are QoS 1, not retained; state is \
         QoS 1, retained.\n\n\
         | type | topic | kind | what |\n|---|---|---|---|\n",
    );
    for kind in Kind::ALL {
        let topic = channel_address(kind).replace("{root}", "R");
        let retained = if kind.is_state() { "state" } else { "event" };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            kind.type_name(),
            topic,
            retained,
            kind.description()
        ));
    }
    out.push_str(
        "| — | `R/system/bots/<client id>` | state | presence of every MQTT client that is not ongwatch's own (not an event: no `v`/`id`/`type`) |\n",
    );
    for event in examples() {
        let pretty = serde_json::to_string_pretty(&event.to_json()).unwrap_or_default();
        out.push_str(&format!(
            "\n## `{}` on `{}`\n\n{}\n\n```json\n{}\n```\n",
            event.kind.kind().type_name(),
            example_topic(&event),
            event.kind.kind().description(),
            pretty
        ));
    }
    let presence = serde_json::to_string_pretty(&BotPresence::example()).unwrap_or_default();
    out.push_str(&format!(
        "\n## Bot presence on `R/system/bots/<client id>`\n\nRetained; published when a client connects or goes away (clean disconnect, dropped connection, keepalive expiry), on its first refusal per topic, and every few seconds while its counters change. See docs/BOTS.md.\n\n```json\n{presence}\n```\n"
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_round_trips_through_json() {
        for event in examples() {
            let text = serde_json::to_string(&event).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap();
            assert_eq!(back, event, "{text}");
        }
    }

    #[test]
    fn the_seed_cheer_holds_verbatim() {
        let cheer = examples().remove(0).to_json();
        assert_eq!(cheer["provider"], "twitch");
        assert_eq!(cheer["user"], "alinsa_vix");
        assert_eq!(cheer["amount"], 2490);
        assert_eq!(cheer["message"], "Cheer2490 CHAOS");
        assert_eq!(cheer["currency"], "bits");
        assert_eq!(cheer["type"], "cheer");
        assert_eq!(cheer["time"], "2026-03-13T20:01:02.345Z");
        assert_eq!(cheer["v"], 1);
        assert_eq!(cheer["test"], false);
    }

    #[test]
    fn topics_follow_the_contract() {
        let topics: Vec<String> = examples().iter().map(example_topic).collect();
        for expected in [
            "stream/support/cheers",
            "stream/support/tips",
            "stream/support/subs",
            "stream/support/gifts",
            "stream/support/powerups",
            "stream/support/charity",
            "stream/support/hypetrain",
            "stream/community/follows",
            "stream/community/raids",
            "stream/community/redemptions",
            "stream/community/shoutouts",
            "stream/chat/messages",
            "stream/chat/notices",
            "stream/chat/moderation",
            "stream/interactive/polls",
            "stream/interactive/predictions",
            "stream/channel/online",
            "stream/channel/offline",
            "stream/channel/updated",
            "stream/channel/ads",
            "stream/channel/shared_chat",
            "stream/channel/goals",
            "stream/channel/charity_campaign",
            "stream/community/sub_ends",
            "stream/status",
            "stream/synthetic/hype",
            "stream/synthetic/totals",
            "stream/system/ongwatch",
            "stream/system/providers/twitch",
            "stream/obs/scene",
            "stream/obs/outputs",
            "stream/obs/stats",
            "stream/obs/events/StreamStateChanged",
            "stream/raw/twitch/channel.suspicious_user.update",
        ] {
            assert!(topics.contains(&expected.to_owned()), "{expected}");
        }
    }
}
