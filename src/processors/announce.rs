//! The chat announcer: "ninja is live: ..." in chat when a channel goes online or offline.
//!
//! It reacts to `R/channel/online` and `R/channel/offline` of the configured channels,
//! whoever published them (the stream monitor, EventSub), and sends the rendered template by
//! publishing `R/command/chat/send` on the bus: the chat send path does the rest (sender
//! account, rate limits, the result on `R/command/chat/send/result`), and a bot or a
//! `[[rules]]` entry could do the same. The command's id is derived from the event's, so the
//! hub's dedup drops a second announcement of the same transition.
//!
//! Test events (`ongwatch trigger online`, replays) are not announced: a trigger must never
//! write into a real chat.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::event::{Event, EventKind, Kind, Status};
use crate::hub::{BoundedQueue, Delivery, Message, Origin, Publisher};
use crate::sources::twitch::auth::Account;
use crate::sources::twitch::irc::channel_login;
use crate::template;

/// Twitch's limit for one chat message, in characters.
pub const MAX_CHARS: usize = 500;
/// How long an `online` without a title (EventSub's `stream.online` has none) waits for the
/// channel's status to bring one before it is announced with what is known.
const DETAILS_WAIT: Duration = Duration::from_secs(10);

pub const DEFAULT_ONLINE: &str = "{channel} is live: {title} ({game_name}) {url}";
pub const DEFAULT_OFFLINE: &str = "{channel} is offline now.";

/// `[announce]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnnounceToml {
    /// The chat channel announcements go to; empty: the daemon's channel.
    chat_channel: String,
    /// The account that sends them (`bot` or `broadcaster`); unset: chat's choice.
    #[serde(rename = "as")]
    account: Option<Account>,
    channels: Vec<ChannelToml>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelToml {
    channel: String,
    #[serde(default)]
    chat_channel: Option<String>,
    #[serde(default)]
    online: MessageToml,
    #[serde(default)]
    offline: MessageToml,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MessageToml {
    enabled: Option<bool>,
    template: Option<String>,
}

/// A placeholder of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Channel,
    Title,
    GameName,
    ViewerCount,
    Url,
}

impl Var {
    const NAMES: &[(&str, Var)] = &[
        ("channel", Var::Channel),
        ("title", Var::Title),
        ("game_name", Var::GameName),
        ("viewer_count", Var::ViewerCount),
        ("url", Var::Url),
    ];
}

/// A checked template (the syntax of [`crate::template`]) over the placeholders above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(template::Template<Var>);

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let var = |name: &str| match Var::NAMES.iter().find(|(n, _)| *n == name.trim()) {
            Some((_, var)) => Ok(*var),
            None => {
                let known: Vec<String> =
                    Var::NAMES.iter().map(|(n, _)| format!("{{{n}}}")).collect();
                Err(format!(
                    "{{{name}}} is not a placeholder; use {}",
                    known.join(", ")
                ))
            }
        };
        match template::Template::parse(text, var) {
            Ok(parsed) => Ok(Self(parsed)),
            Err(template::Error::Name(why)) => Err(why),
            Err(syntax) => Err(format!("{text:?} {syntax}")),
        }
    }

    fn render(&self, values: &Values) -> String {
        self.0.render(|var, out| match var {
            Var::Channel => out.push_str(&values.channel),
            Var::Title => out.push_str(&values.title),
            Var::GameName => out.push_str(&values.game_name),
            Var::ViewerCount => out.push_str(&values.viewer_count.to_string()),
            Var::Url => out.push_str(&format!("https://www.twitch.tv/{}", values.channel)),
        })
    }
}

/// What the placeholders stand for.
struct Values {
    channel: String,
    title: String,
    game_name: String,
    viewer_count: u64,
}

/// At most `max` characters: cut at the last word boundary that leaves room for "…".
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(1);
    let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
    let head = &text[..end];
    let cut_inside_a_word = !text[end..].starts_with(char::is_whitespace);
    let head = match head.rfind(char::is_whitespace) {
        // A single word longer than the limit is cut where it must be.
        Some(space) if cut_inside_a_word && space > 0 => &head[..space],
        _ => head,
    };
    format!("{}…", head.trim_end())
}

/// One announced channel.
#[derive(Debug, Clone)]
pub struct Entry {
    pub channel: String,
    /// Where to post; `None`: chat's default channel.
    pub chat_channel: Option<String>,
    pub account: Option<Account>,
    pub online: Option<Template>,
    pub offline: Option<Template>,
}

/// `[announce]`, checked. No entries: the announcer is off.
#[derive(Debug, Clone, Default)]
pub struct Announce {
    pub entries: Vec<Entry>,
}

impl Announce {
    pub fn is_enabled(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.online.is_some() || e.offline.is_some())
    }

    /// Checks the templates and channels; problems are `(key, message)`.
    pub fn compile(raw: AnnounceToml) -> (Self, Vec<(String, String)>) {
        let mut problems = Vec::new();
        let mut login = |key: String, value: &str| -> Option<String> {
            let login = channel_login(value);
            if login.is_none() {
                problems.push((
                    key,
                    format!("{value:?} is not a Twitch channel; use a login, e.g. \"ninja\""),
                ));
            }
            login
        };
        let default_chat = (!raw.chat_channel.is_empty())
            .then(|| login("announce.chat_channel".into(), &raw.chat_channel))
            .flatten();
        let mut entries = Vec::new();
        let mut template_problems = Vec::new();
        for (i, channel) in raw.channels.into_iter().enumerate() {
            let key = format!("announce.channels[{}]", i + 1);
            let name = login(format!("{key}.channel"), &channel.channel);
            let chat_channel = match &channel.chat_channel {
                Some(chat) => login(format!("{key}.chat_channel"), chat),
                None => default_chat.clone(),
            };
            let mut message = |which: &str, message: MessageToml, default: &str, on: bool| {
                if !message.enabled.unwrap_or(on) {
                    return None;
                }
                let text = message.template.as_deref().unwrap_or(default);
                Template::parse(text)
                    .map_err(|e| template_problems.push((format!("{key}.{which}.template"), e)))
                    .ok()
            };
            let online = message("online", channel.online, DEFAULT_ONLINE, true);
            let offline = message("offline", channel.offline, DEFAULT_OFFLINE, false);
            if let Some(channel) = name {
                entries.push(Entry {
                    channel,
                    chat_channel,
                    account: raw.account,
                    online,
                    offline,
                });
            }
        }
        problems.extend(template_problems);
        (Self { entries }, problems)
    }
}

/// An online waiting for its details.
struct Pending {
    event: Event,
    deadline: Instant,
}

struct Announcer {
    publisher: Publisher,
    entries: HashMap<String, Entry>,
    default_channel: String,
    /// The last live status per channel: viewers, and details EventSub does not carry.
    live: HashMap<String, Status>,
    pending: HashMap<String, Pending>,
}

impl Announcer {
    fn values(&self, channel: &str, title: Option<&str>, category: Option<&str>) -> Values {
        let status = self.live.get(channel);
        let or_status = |given: Option<&str>, known: Option<&String>| {
            given
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .or_else(|| known.cloned())
                .unwrap_or_default()
        };
        Values {
            channel: channel.to_owned(),
            title: or_status(title, status.map(|s| &s.title)),
            game_name: or_status(category, status.map(|s| &s.category)),
            viewer_count: status.map_or(0, |s| s.viewers),
        }
    }

    async fn send(&self, event: &Event, template: &Template, values: &Values) -> bool {
        let Some(entry) = self.entries.get(&event.channel) else {
            return true;
        };
        let text = truncate(&template.render(values), MAX_CHARS);
        let id = format!("announce:{}", event.id);
        let mut payload = Map::new();
        payload.insert("message".into(), json!(text));
        if let Some(chat) = &entry.chat_channel {
            payload.insert("channel".into(), json!(chat));
        }
        if let Some(account) = entry.account {
            payload.insert("as".into(), json!(account));
        }
        payload.insert("id".into(), json!(id));
        let target = entry
            .chat_channel
            .as_deref()
            .unwrap_or(&self.default_channel);
        let message = Message {
            topic: self.publisher.root().topic(target, "command/chat/send"),
            payload: Value::Object(payload).to_string().into(),
            retain: false,
            origin: Origin::Daemon,
            id: Some(id),
        };
        tracing::info!(channel = %event.channel, to = %target, "announcing {}", event.kind.kind().type_name());
        self.publisher.message(message).await.is_ok()
    }

    async fn online(&mut self, event: Event) -> bool {
        let EventKind::Online(online) = &event.kind else {
            return true;
        };
        let Some(template) = self
            .entries
            .get(&event.channel)
            .and_then(|e| e.online.clone())
        else {
            return true;
        };
        if online.title.is_none() && !self.pending.contains_key(&event.channel) {
            self.pending.insert(
                event.channel.clone(),
                Pending {
                    event,
                    deadline: Instant::now() + DETAILS_WAIT,
                },
            );
            return true;
        }
        let values = self.values(
            &event.channel,
            online.title.as_deref(),
            online.category.as_deref(),
        );
        self.send(&event, &template, &values).await
    }

    async fn flush(&mut self, channel: &str) -> bool {
        let Some(pending) = self.pending.remove(channel) else {
            return true;
        };
        let Some(template) = self.entries.get(channel).and_then(|e| e.online.clone()) else {
            return true;
        };
        let values = self.values(channel, None, None);
        self.send(&pending.event, &template, &values).await
    }

    async fn handle(&mut self, event: Event) -> bool {
        // A partner channel's events (shared chat) are not this channel's to announce.
        if event.test || event.is_partner() || !self.entries.contains_key(&event.channel) {
            return true;
        }
        match &event.kind {
            EventKind::Status(status) if status.live => {
                self.live.insert(event.channel.clone(), status.clone());
                return self.flush(&event.channel.clone()).await;
            }
            EventKind::Online(_) => return self.online(event).await,
            EventKind::Offline(_) => {
                self.pending.remove(&event.channel);
                let Some(template) = self
                    .entries
                    .get(&event.channel)
                    .and_then(|e| e.offline.clone())
                else {
                    return true;
                };
                let values = self.values(&event.channel, None, None);
                return self.send(&event, &template, &values).await;
            }
            _ => {}
        }
        true
    }
}

/// Runs until the hub closes `queue`.
/// What the announcer reads; the hub wakes it for these topics only.
pub(super) const KINDS: &[Kind] = &[Kind::Online, Kind::Offline, Kind::Status];

pub async fn run(
    queue: Arc<BoundedQueue<Delivery>>,
    publisher: Publisher,
    announce: Announce,
    default_channel: String,
) {
    let root = publisher.root().clone();
    let mut announcer = Announcer {
        publisher,
        entries: announce
            .entries
            .into_iter()
            .map(|e| (e.channel.clone(), e))
            .collect(),
        default_channel,
        live: HashMap::new(),
        pending: HashMap::new(),
    };
    let kinds = KINDS;
    loop {
        let next = announcer
            .pending
            .iter()
            .min_by_key(|(_, p)| p.deadline)
            .map(|(channel, p)| (channel.clone(), p.deadline));
        let wait = async {
            match &next {
                Some((_, deadline)) => tokio::time::sleep_until(*deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            record = queue.pop() => {
                let Some(record) = record else { break };
                queue.mark_delivered(1);
                let Some(event) = super::event_of(&record, &root, kinds) else { continue };
                if !announcer.handle(event.clone()).await {
                    return;
                }
            }
            () = wait => {
                if let Some((channel, _)) = next
                    && !announcer.flush(&channel).await
                {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_every_placeholder() {
        let template = Template::parse(DEFAULT_ONLINE).unwrap();
        let values = Values {
            channel: "ninja".into(),
            title: "Solo".into(),
            game_name: "Fortnite".into(),
            viewer_count: 12,
        };
        assert_eq!(
            template.render(&values),
            "ninja is live: Solo (Fortnite) https://www.twitch.tv/ninja"
        );
        let counted = Template::parse("{{{viewer_count}}} watch { title }").unwrap();
        assert_eq!(counted.render(&values), "{12} watch Solo");
    }

    #[test]
    fn bad_templates_say_what_is_wrong() {
        assert!(Template::parse("{nope}").unwrap_err().contains("{title}"));
        assert!(
            Template::parse("live {title")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(Template::parse("a } b").unwrap_err().contains("without"));
    }

    #[test]
    fn truncation_cuts_at_a_word_boundary_within_500_characters() {
        let text = "é".repeat(3) + " " + &"word ".repeat(150);
        let cut = truncate(&text, MAX_CHARS);
        assert!(cut.chars().count() <= MAX_CHARS, "{}", cut.chars().count());
        assert!(cut.ends_with("word…"), "{cut}");
        assert_eq!(truncate("short", MAX_CHARS), "short");
        let word = "x".repeat(600);
        assert_eq!(truncate(&word, 10), "xxxxxxxxx…");
        assert_eq!(truncate("abc defgh", 8), "abc…");
        assert_eq!(truncate("abcd efgh", 6), "abcd…");
    }

    #[test]
    fn config_problems_name_the_key() {
        let raw: AnnounceToml = toml::from_str(
            "chat_channel = \"bad name\"\n[[channels]]\nchannel = \"ninja\"\nonline = { template = \"{game}\" }\n[[channels]]\nchannel = \"x y\"\noffline = { enabled = true }\n",
        )
        .unwrap();
        let (announce, problems) = Announce::compile(raw);
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "announce.chat_channel",
                "announce.channels[2].channel",
                "announce.channels[1].online.template"
            ]
        );
        assert_eq!(announce.entries.len(), 1);
    }

    #[test]
    fn offline_is_off_and_online_on_unless_configured() {
        let raw: AnnounceToml = toml::from_str("[[channels]]\nchannel = \"Ninja\"\n").unwrap();
        let (announce, problems) = Announce::compile(raw);
        assert!(problems.is_empty());
        let entry = &announce.entries[0];
        assert_eq!(entry.channel, "ninja");
        assert!(entry.online.is_some() && entry.offline.is_none());
        assert!(announce.is_enabled());
    }
}
