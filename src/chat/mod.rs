//! Twitch chat as the daemon runs it: the IRC connection's events onto the bus and to
//! `/ws/chat` clients, and the send path behind `R/command/chat/send`. See docs/CHAT.md.
//!
//! Source choice: for a channel whose EventSub session is connected with a subscription that
//! carries the same events (`channel.chat.message` for chat messages, `channel.chat.notification`
//! for subs, gifts, raids and announcements, ...), what IRC reads of that channel is not
//! published again: EventSub wins, IRC serves the other channels and anonymous reading. The
//! EventSub state comes from the Twitch provider's retained `R/system/providers/twitch`.
//! `/ws/chat` clients always get IRC's events, since they asked for that channel's chat.

pub mod config;
mod frames;
pub mod helix;
pub mod send;
pub mod split;
pub mod state;

pub use config::ChatConfig;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::helix::{HelixChat, SEND_SCOPE};
use self::send::{ChatSender, Sent, Transport};
use crate::event::{ConnectionState, Event, EventKind, ModerationAction};
use crate::hub::Publisher;
use crate::sources::twitch::auth::{Account, TokenHolders, Tokens};
use crate::sources::twitch::config::TwitchConfig;
use crate::sources::twitch::irc::{
    self, IrcHandle, IrcLogin, IrcSettings, IrcTiming, JOINS_PER_WINDOW, channel_login,
};

/// Frames a `/ws/chat` client may have waiting; beyond that its frames are dropped.
const CLIENT_FRAMES: usize = 1024;

/// Everything chat needs from the config, the credentials and the stored logins.
pub struct ChatSettings {
    pub irc: IrcSettings,
    /// `[chat] channels`, as logins.
    pub channels: Vec<String>,
    pub accounts: Accounts,
    pub api_url: String,
    /// Where a send request without a channel goes.
    pub default_channel: String,
}

impl ChatSettings {
    /// Takes the bot and broadcaster logins from the process's token holders; the connection
    /// logs in as `[chat] account` (default: the bot, else the broadcaster), or anonymously
    /// when there is none or `[chat] anonymous = true`.
    pub fn from_config(
        chat: &ChatConfig,
        twitch: &TwitchConfig,
        tokens: &TokenHolders,
        include_raw: bool,
        default_channel: String,
    ) -> Self {
        let mut accounts = Accounts::default();
        for account in Account::ALL {
            match tokens.get(account) {
                Ok(Some((tokens, token))) => {
                    let login = Some(Login {
                        login: token.login,
                        tokens,
                    });
                    match account {
                        Account::Bot => accounts.bot = login,
                        Account::Broadcaster => accounts.broadcaster = login,
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("chat cannot use the {} login: {e}", account.name()),
            }
        }
        let chosen = match chat.account {
            _ if chat.anonymous => None,
            Some(account) => Some(account).filter(|a| accounts.get(*a).is_some()),
            None => accounts.preferred(),
        };
        if let (Some(wanted), None) = (chat.account, chosen)
            && !chat.anonymous
        {
            tracing::warn!(
                "[chat] account = \"{}\" has no login; chat is read anonymously until `{}`",
                wanted.name(),
                wanted.login_command()
            );
        }
        let login = match chosen.and_then(|a| accounts.get(a)) {
            Some(chosen) => IrcLogin::Account {
                login: chosen.login.clone(),
                tokens: chosen.tokens.clone(),
            },
            None => IrcLogin::Anonymous,
        };
        Self {
            irc: IrcSettings {
                server: chat.server.clone(),
                tls: chat.tls,
                login,
                include_raw,
                timing: IrcTiming::default(),
                joins_per_window: JOINS_PER_WINDOW,
            },
            channels: chat
                .channels
                .iter()
                .filter_map(|c| channel_login(c))
                .collect(),
            accounts,
            api_url: twitch.api_url.clone(),
            default_channel,
        }
    }
}

/// A stored login chat can use.
#[derive(Clone)]
pub struct Login {
    pub login: String,
    pub tokens: Arc<Tokens>,
}

/// The stored logins, by account.
#[derive(Clone, Default)]
pub struct Accounts {
    pub bot: Option<Login>,
    pub broadcaster: Option<Login>,
}

impl Accounts {
    pub fn get(&self, account: Account) -> Option<&Login> {
        match account {
            Account::Bot => self.bot.as_ref(),
            Account::Broadcaster => self.broadcaster.as_ref(),
        }
    }

    /// The account to use when none is asked for: the bot, else the broadcaster.
    fn preferred(&self) -> Option<Account> {
        [Account::Bot, Account::Broadcaster]
            .into_iter()
            .find(|a| self.get(*a).is_some())
    }
}

/// The running chat service.
pub struct Chat {
    irc: IrcHandle,
    sender: ChatSender,
    coverage: Arc<Coverage>,
    rooms: Arc<Rooms>,
    default_channel: String,
}

impl Chat {
    /// Starts the IRC connection (it connects once a channel is wanted) and the task that
    /// hands its events on. The returned tasks end after `shutdown`.
    pub fn start(
        settings: ChatSettings,
        publisher: Publisher,
        shutdown: CancellationToken,
    ) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let irc_account = match &settings.irc.login {
            IrcLogin::Anonymous => None,
            IrcLogin::Account { tokens, .. } => Account::ALL.into_iter().find(|a| {
                settings
                    .accounts
                    .get(*a)
                    .is_some_and(|l| Arc::ptr_eq(&l.tokens, tokens))
            }),
        };
        let (events_tx, events) = mpsc::channel(4096);
        let server = settings.irc.server.clone();
        let (irc, irc_task) = irc::spawn(settings.irc, events_tx, shutdown.clone());
        for channel in &settings.channels {
            irc.join(channel);
        }
        let state_task = tokio::spawn(state::report(
            irc.status(),
            server,
            !settings.channels.is_empty(),
            publisher.clone(),
            settings.default_channel.clone(),
        ));
        let coverage = Arc::new(Coverage::default());
        let rooms = Arc::new(Rooms::default());
        let dispatch = tokio::spawn(dispatch(
            events,
            publisher.clone(),
            coverage.clone(),
            rooms.clone(),
        ));
        let transport = DaemonTransport {
            irc: irc.clone(),
            irc_account,
            accounts: settings.accounts,
            helix: HelixChat::new(crate::net::http_client(), &settings.api_url),
        };
        let sender = ChatSender::new(
            Arc::new(transport),
            publisher.clone(),
            publisher.root().clone(),
            shutdown,
        );
        let chat = Arc::new(Self {
            irc,
            sender,
            coverage,
            rooms,
            default_channel: settings.default_channel,
        });
        (chat, vec![irc_task, dispatch, state_task])
    }

    pub fn irc(&self) -> &IrcHandle {
        &self.irc
    }

    /// `R/command/chat/send`; `topic_channel` is the channel named by a per-channel topic.
    pub async fn send(
        &self,
        payload: &[u8],
        topic_channel: Option<&str>,
    ) -> Result<(), crate::hub::BusClosed> {
        let request: send::SendRequest = match serde_json::from_slice(payload) {
            Ok(request) => request,
            Err(e) => {
                tracing::warn!(error = %e, "ignored a chat send command that is not {{\"message\": \"...\", \"channel\"?: \"...\", \"as\"?: \"bot\"|\"broadcaster\", \"reply_to\"?: \"...\", \"id\"?: \"...\"}}");
                return Ok(());
            }
        };
        let channel = topic_channel.unwrap_or(&self.default_channel);
        self.sender.submit(request, channel).await
    }

    /// Takes note of the Twitch provider's state (`R/system/providers/twitch`) for the
    /// source-choice rule.
    pub fn observe_provider_state(&self, payload: &[u8]) {
        if let Ok(event) = serde_json::from_slice::<Event>(payload) {
            self.coverage.observe(&event);
        }
    }

    /// A `/ws/chat` client.
    pub fn client(self: &Arc<Self>) -> ChatClient {
        let (tx, frames) = mpsc::channel(CLIENT_FRAMES);
        ChatClient {
            chat: self.clone(),
            id: self.rooms.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
            channels: BTreeSet::new(),
            frames,
        }
    }
}

/// One `/ws/chat` connection: its channels, and the frames for them.
pub struct ChatClient {
    chat: Arc<Chat>,
    id: u64,
    tx: mpsc::Sender<Arc<str>>,
    channels: BTreeSet<String>,
    pub frames: mpsc::Receiver<Arc<str>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a Twitch channel name")]
pub struct BadChannel(pub String);

impl ChatClient {
    /// Joins `channel` for this client (once, however often it asks); returns the login.
    pub fn join(&mut self, channel: &str) -> Result<String, BadChannel> {
        let login = channel_login(channel).ok_or_else(|| BadChannel(channel.to_owned()))?;
        if self.channels.insert(login.clone()) {
            self.chat.rooms.add(&login, self.id, self.tx.clone());
            self.chat.irc.join(&login);
        }
        Ok(login)
    }

    pub fn leave(&mut self, channel: &str) -> Result<String, BadChannel> {
        let login = channel_login(channel).ok_or_else(|| BadChannel(channel.to_owned()))?;
        if self.channels.remove(&login) {
            self.chat.rooms.remove(&login, self.id);
            self.chat.irc.part(&login);
        }
        Ok(login)
    }
}

impl Drop for ChatClient {
    fn drop(&mut self) {
        for channel in std::mem::take(&mut self.channels) {
            self.chat.rooms.remove(&channel, self.id);
            self.chat.irc.part(&channel);
        }
    }
}

/// The `/ws/chat` clients of one channel, by client id.
type Room = HashMap<u64, mpsc::Sender<Arc<str>>>;

/// `/ws/chat` clients by channel.
#[derive(Default)]
struct Rooms {
    next_id: AtomicU64,
    by_channel: Mutex<HashMap<String, Room>>,
}

impl Rooms {
    fn add(&self, channel: &str, id: u64, tx: mpsc::Sender<Arc<str>>) {
        self.lock()
            .entry(channel.to_owned())
            .or_default()
            .insert(id, tx);
    }

    fn remove(&self, channel: &str, id: u64) {
        let mut rooms = self.lock();
        if let Some(room) = rooms.get_mut(channel) {
            room.remove(&id);
            if room.is_empty() {
                rooms.remove(channel);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Room>> {
        self.by_channel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the event's frame to every client of its channel; a client whose queue is full
    /// misses it rather than slowing the others.
    fn deliver(&self, event: &Event) {
        let rooms = self.lock();
        let Some(room) = rooms.get(&event.channel.to_ascii_lowercase()) else {
            return;
        };
        let Some(frame) = frames::frame(event) else {
            return;
        };
        let frame: Arc<str> = frame.into();
        for tx in room.values() {
            if tx.try_send(frame.clone()).is_err() {
                tracing::debug!(channel = %event.channel, "a /ws/chat client is too slow; frame skipped");
            }
        }
    }
}

/// The EventSub subscription types enabled per channel, from the Twitch provider's state.
#[derive(Default)]
struct Coverage {
    by_channel: Mutex<HashMap<String, HashSet<String>>>,
}

impl Coverage {
    fn observe(&self, event: &Event) {
        let EventKind::ProviderState(state) = &event.kind else {
            return;
        };
        let enabled: HashSet<String> = if state.state == ConnectionState::Connected {
            state
                .subscriptions
                .iter()
                .filter(|s| s.status == "enabled")
                .map(|s| s.kind.clone())
                .collect()
        } else {
            HashSet::new()
        };
        let mut map = self.by_channel.lock().unwrap_or_else(|e| e.into_inner());
        // The provider reports one channel (its login); an earlier report under another
        // channel (before the login was known) no longer holds.
        map.clear();
        if !enabled.is_empty() {
            map.insert(event.channel.to_ascii_lowercase(), enabled);
        }
    }

    /// EventSub already delivers this event of IRC's.
    fn covers(&self, event: &Event) -> bool {
        let map = self.by_channel.lock().unwrap_or_else(|e| e.into_inner());
        let Some(enabled) = map.get(&event.channel.to_ascii_lowercase()) else {
            return false;
        };
        covering_types(&event.kind)
            .iter()
            .any(|kind| enabled.contains(*kind))
    }
}

/// The EventSub types that deliver the same thing as an IRC event of this kind.
fn covering_types(kind: &EventKind) -> &'static [&'static str] {
    match kind {
        EventKind::Chat(_) => &["channel.chat.message"],
        EventKind::Cheer(_) => &["channel.cheer", "channel.bits.use"],
        EventKind::Sub(_) | EventKind::Resub(_) => &[
            "channel.chat.notification",
            "channel.subscribe",
            "channel.subscription.message",
        ],
        EventKind::Gift(_) => &["channel.chat.notification", "channel.subscription.gift"],
        EventKind::Raid(_) => &["channel.chat.notification", "channel.raid"],
        EventKind::Notice(_) => &["channel.chat.notification"],
        EventKind::Moderation(m) => match m.action {
            ModerationAction::Delete => &["channel.chat.message_delete", "channel.moderate"],
            ModerationAction::Clear => &["channel.chat.clear", "channel.moderate"],
            _ => &[
                "channel.chat.clear_user_messages",
                "channel.ban",
                "channel.moderate",
            ],
        },
        _ => &[],
    }
}

/// IRC's events: to `/ws/chat` clients of the channel, and onto the bus unless EventSub
/// already delivers them.
async fn dispatch(
    mut events: mpsc::Receiver<Event>,
    publisher: Publisher,
    coverage: Arc<Coverage>,
    rooms: Arc<Rooms>,
) {
    while let Some(event) = events.recv().await {
        rooms.deliver(&event);
        if coverage.covers(&event) {
            continue;
        }
        if publisher.event(event).await.is_err() {
            return;
        }
    }
}

/// Helix as the chosen account when its token may send chat, IRC otherwise (and when Helix
/// fails, if the IRC connection is logged in as that account).
struct DaemonTransport {
    irc: IrcHandle,
    irc_account: Option<Account>,
    accounts: Accounts,
    helix: HelixChat,
}

#[async_trait::async_trait]
impl Transport for DaemonTransport {
    fn sender(&self, requested: Option<Account>) -> Result<Account, String> {
        let account = requested
            .or(self.irc_account)
            .or_else(|| self.accounts.preferred())
            .ok_or_else(|| {
                "no Twitch account can send chat; log in a bot with `ongwatch auth twitch --account bot`".to_owned()
            })?;
        if self.accounts.get(account).is_some() {
            Ok(account)
        } else {
            Err(format!(
                "the {} account is not logged in; run `{}`",
                account.name(),
                account.login_command()
            ))
        }
    }

    fn open(&self, sender: Account, channel: &str) {
        // In the channel, IRC tells our role (USERSTATE), which sets the limit; and it can send.
        if self.irc_account == Some(sender) {
            self.irc.join(channel);
        }
    }

    fn privileged(&self, sender: Account, channel: &str) -> bool {
        // An account is the broadcaster of its own channel.
        self.accounts
            .get(sender)
            .is_some_and(|l| l.login.eq_ignore_ascii_case(channel))
            || self.irc_account == Some(sender)
                && self.irc.status().borrow().privileged.contains(channel)
    }

    async fn send(
        &self,
        sender: Account,
        channel: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<Sent, String> {
        let tokens = &self
            .accounts
            .get(sender)
            .ok_or_else(|| format!("the {} account is not logged in", sender.name()))?
            .tokens;
        let by_irc = self.irc_account == Some(sender);
        let token = tokens.snapshot().await;
        if token.scopes.iter().any(|s| s == SEND_SCOPE) {
            match self.helix.send(tokens, channel, text, reply_to).await {
                Ok(sent) => return Ok(sent),
                Err(e) if by_irc => {
                    tracing::warn!(%channel, "Helix did not take the chat message ({e}); sending over IRC")
                }
                Err(e) => return Err(format!("Helix refused the message: {e}")),
            }
        } else if !by_irc {
            return Err(format!(
                "the {} login lacks the {SEND_SCOPE} scope and chat is not connected as it; run `{}`",
                sender.name(),
                sender.login_command()
            ));
        }
        self.irc
            .say(channel, text, reply_to)
            .await
            .map(|()| Sent {
                via: "irc",
                message_id: None,
                is_sent: true,
                drop_reason: None,
            })
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ProviderState, SubscriptionHealth};
    use crate::sources::twitch::irc::normalize_line;

    fn twitch_state(channel: &str, state: ConnectionState, types: &[&str]) -> Event {
        Event::new(
            "state",
            "twitch",
            channel,
            EventKind::ProviderState(ProviderState {
                state,
                detail: String::new(),
                since: String::new(),
                subscriptions: types
                    .iter()
                    .map(|kind| SubscriptionHealth {
                        kind: (*kind).to_owned(),
                        version: "1".into(),
                        status: "enabled".into(),
                        last_event: None,
                        last_error: None,
                        missing_scopes: Vec::new(),
                    })
                    .collect(),
            }),
        )
    }

    fn irc_event(channel: &str, command: &str) -> Event {
        let line = match command {
            "PRIVMSG" => format!(
                "@id=m1;tmi-sent-ts=1594556065407;user-id=1 :a!a@a.tmi.twitch.tv PRIVMSG #{channel} :hi"
            ),
            _ => format!(
                "@id=n1;login=a;msg-id=sub;msg-param-sub-plan=1000;tmi-sent-ts=1594556065407;user-id=1 :tmi.twitch.tv USERNOTICE #{channel}"
            ),
        };
        normalize_line(&line, false).unwrap().remove(0)
    }

    #[test]
    fn eventsub_wins_only_for_its_channel_and_kinds_while_connected() {
        let coverage = Coverage::default();
        let chat = irc_event("randers", "PRIVMSG");
        assert!(!coverage.covers(&chat));

        coverage.observe(&twitch_state(
            "Randers",
            ConnectionState::Connected,
            &["channel.chat.message"],
        ));
        assert!(coverage.covers(&chat));
        assert!(!coverage.covers(&irc_event("other", "PRIVMSG")));
        assert!(!coverage.covers(&irc_event("randers", "USERNOTICE")));

        coverage.observe(&twitch_state(
            "randers",
            ConnectionState::Error,
            &["channel.chat.message"],
        ));
        assert!(!coverage.covers(&chat), "a lost session covers nothing");
    }
}
