//! The chat connection: one IRC connection (TLS or plain TCP) carrying every joined channel.
//!
//! - Login: `CAP REQ` for tags, commands and membership, then `PASS oauth:<token>` / `NICK`
//!   with the bot's or broadcaster's token, or an anonymous `justinfan<random>` nick that can
//!   read but not send. A refused login refreshes the token once and tries again. Any other
//!   refusal of the registration (432, 433, 462, 464, 465) is kept as [`Refusal`], so the
//!   owner can show the server's reason instead of "connecting", and the client reconnects with
//!   backoff; an anonymous nick already in use (433) is replaced by a new random one at once.
//! - Channels are reference-counted: [`IrcHandle::join`] and [`IrcHandle::part`] may be
//!   called by many users of one channel; the first join sends `JOIN`, the last part `PART`.
//!   JOINs are paced to Twitch's limit (20 per 10 s for ordinary accounts) and every wanted
//!   channel is joined again after a reconnect.
//! - Liveness: the server's `PING` is answered; after a silence the client pings the server
//!   itself and reconnects when no answer comes. `RECONNECT` (Twitch restarting a server)
//!   and any other loss reconnect with exponential backoff and jitter.
//! - Every line is normalized ([`normalize`]) and the events are handed to the owner's
//!   channel. Lines that do not parse are counted and the first one is logged; they never end
//!   the connection.
//!
//! The connection is only opened while there is something to do (a wanted channel or a
//! message to send), so a daemon without chat channels holds no connection.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Badges, IrcMessage, normalize};
use crate::event::Event;
use crate::limiter::Window;
use crate::retry::{Backoff, Policy};
use crate::sources::twitch::auth::Tokens;

/// Longest line accepted from the server; Twitch's longest lines are a few KiB of tags.
const MAX_LINE: usize = 64 * 1024;
/// New anonymous nicks tried in one session when the server says the nick is in use.
const NICK_ATTEMPTS: u32 = 3;
/// Twitch's JOIN limit window.
const JOIN_PERIOD: Duration = Duration::from_secs(10);
/// JOINs per window for an ordinary account.
pub const JOINS_PER_WINDOW: usize = 20;

/// Who the connection logs in as.
#[derive(Clone)]
pub enum IrcLogin {
    /// `justinfan<random>`: reads any channel, cannot send.
    Anonymous,
    Account {
        login: String,
        tokens: Arc<Tokens>,
    },
}

#[derive(Debug, Clone)]
pub struct IrcTiming {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    /// Silence after which the client pings the server.
    pub ping_after: Duration,
    /// How long the server has to answer that ping before the connection counts as dead.
    pub pong_timeout: Duration,
    pub write_timeout: Duration,
}

impl IrcTiming {
    /// The reconnect schedule.
    pub fn retry(&self) -> Policy {
        Policy::new(self.initial_backoff, self.max_backoff)
    }
}

impl Default for IrcTiming {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(20),
            // Twitch pings about every five minutes; a dead link is noticed well before.
            ping_after: Duration::from_secs(60),
            pong_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
pub struct IrcSettings {
    /// `host:port`
    pub server: String,
    pub tls: bool,
    pub login: IrcLogin,
    pub include_raw: bool,
    pub timing: IrcTiming,
    /// JOINs per 10 s; [`JOINS_PER_WINDOW`] unless the account is a verified bot.
    pub joins_per_window: usize,
}

/// What the connection is doing, for the owner, `/api/status` and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IrcStatus {
    pub connected: bool,
    /// Logins completed (the server's welcome), reconnects included.
    pub sessions: u64,
    /// Channels the server confirmed we are in.
    pub joined: BTreeSet<String>,
    /// Channels where our account is a moderator or the broadcaster (the higher send limit).
    pub privileged: BTreeSet<String>,
    /// Answers to our own PINGs.
    pub pongs: u64,
    pub invalid_lines: u64,
    /// Why the last connection ended, or what is happening now.
    pub detail: String,
    /// The server refused the last login; cleared by the next welcome.
    pub refused: Option<Refusal>,
}

/// A refused registration: the server's answer, for as long as no login succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The login itself was refused (a bad or expired token, a ban): a person must act on the
    /// account. Otherwise a setting does not fit the server (a nick it does not allow).
    pub unauthorized: bool,
    /// The server, the nick, the server's reason with its numeric, and the fix when known.
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IrcSendError {
    #[error(
        "chat is read anonymously and cannot send; log in a bot with `ongwatch auth twitch --account bot`"
    )]
    Anonymous,
    #[error("{0:?} is not a Twitch channel name")]
    BadChannel(String),
    #[error("the chat connection is stopped (the daemon is shutting down)")]
    Closed,
    #[error("the chat connection failed while sending: {0}")]
    Lost(String),
}

struct Say {
    channel: String,
    text: String,
    reply_to: Option<String>,
    done: oneshot::Sender<Result<(), IrcSendError>>,
}

enum Command {
    Join(String),
    Part(String),
    Say(Say),
}

/// Controls the connection; cheap to clone. The connection stops with its shutdown token.
#[derive(Clone)]
pub struct IrcHandle {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<IrcStatus>,
    login: Option<String>,
}

impl IrcHandle {
    /// Adds one user of `channel` (a login, see [`channel_login`]); the first one joins it.
    pub fn join(&self, channel: &str) {
        let _ = self.commands.send(Command::Join(channel.to_owned()));
    }

    /// Removes one user of `channel`; the last one parts it.
    pub fn part(&self, channel: &str) {
        let _ = self.commands.send(Command::Part(channel.to_owned()));
    }

    /// The account the connection logs in as; `None` when anonymous.
    pub fn login(&self) -> Option<&str> {
        self.login.as_deref()
    }

    pub fn status(&self) -> watch::Receiver<IrcStatus> {
        self.status.clone()
    }

    /// Writes a `PRIVMSG` (connecting first if needed); returns once it is on the wire.
    /// Rate limits are the caller's business (the chat send path, docs/CHAT.md).
    pub async fn say(
        &self,
        channel: &str,
        text: &str,
        reply_to: Option<&str>,
    ) -> Result<(), IrcSendError> {
        if self.login.is_none() {
            return Err(IrcSendError::Anonymous);
        }
        let channel =
            channel_login(channel).ok_or_else(|| IrcSendError::BadChannel(channel.to_owned()))?;
        let (done, answer) = oneshot::channel();
        self.commands
            .send(Command::Say(Say {
                channel,
                text: text.to_owned(),
                reply_to: reply_to.map(str::to_owned),
                done,
            }))
            .map_err(|_| IrcSendError::Closed)?;
        answer.await.map_err(|_| IrcSendError::Closed)?
    }
}

/// A channel name as a Twitch login: `#Foo` → `foo`. `None` for anything that is not a login
/// (1 to 25 letters, digits, underscores), which also keeps IRC syntax out of commands.
pub fn channel_login(name: &str) -> Option<String> {
    let login = name.trim().trim_start_matches('#').to_ascii_lowercase();
    let valid = (1..=25).contains(&login.len())
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then_some(login)
}

/// Starts the connection task; events of every line go to `events`.
pub fn spawn(
    settings: IrcSettings,
    events: mpsc::Sender<Event>,
    shutdown: CancellationToken,
) -> (IrcHandle, JoinHandle<()>) {
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (status_tx, status) = watch::channel(IrcStatus::default());
    let login = match &settings.login {
        IrcLogin::Anonymous => None,
        IrcLogin::Account { login, .. } => Some(login.to_lowercase()),
    };
    let client = Client {
        joins: Window::new(settings.joins_per_window, JOIN_PERIOD),
        settings,
        events,
        commands,
        status: status_tx,
        shutdown,
        wanted: HashMap::new(),
        waiting: VecDeque::new(),
    };
    let handle = IrcHandle {
        commands: commands_tx,
        status,
        login,
    };
    (handle, tokio::spawn(client.run()))
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How a session ended. Every reconnect waits for the backoff (reset by a successful
/// login), so a server that keeps sending RECONNECT or refusing a fresh token cannot drive a
/// tight loop; Twitch announces RECONNECT well before the server goes away.
enum End {
    Shutdown,
    Reconnect(String),
}

impl End {
    fn retry(reason: impl Into<String>) -> Self {
        Self::Reconnect(reason.into())
    }
}

enum Line {
    Text(String),
    Invalid(&'static str),
    Closed(String),
}

struct Client {
    settings: IrcSettings,
    events: mpsc::Sender<Event>,
    commands: mpsc::UnboundedReceiver<Command>,
    status: watch::Sender<IrcStatus>,
    shutdown: CancellationToken,
    /// Channel → number of users.
    wanted: HashMap<String, usize>,
    /// Messages asked for while there was no connection.
    waiting: VecDeque<Say>,
    joins: Window,
}

/// One connection's state.
struct Session {
    nick: String,
    registered: bool,
    /// New anonymous nicks tried after "nick in use" (433).
    nick_attempts: u32,
    /// Channels to JOIN as the pacing allows.
    to_join: VecDeque<String>,
    last_heard: Instant,
    ping_sent: Option<Instant>,
    /// The token the login used, to refresh exactly that one when it is refused.
    password: Option<String>,
}

struct Writer {
    inner: tokio::io::WriteHalf<Box<dyn Stream>>,
    timeout: Duration,
}

impl Writer {
    async fn line(&mut self, line: &str) -> Result<(), String> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        match tokio::time::timeout(self.timeout, self.inner.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("cannot write to the chat server: {e}")),
            Err(_) => Err(format!(
                "the chat server took no data for {:?}",
                self.timeout
            )),
        }
    }
}

impl Client {
    async fn run(mut self) {
        let mut backoff = self.settings.timing.retry().backoff();
        let mut logged_first_invalid = false;
        loop {
            if !self.wait_for_work().await {
                return;
            }
            let end = self.session(&mut backoff, &mut logged_first_invalid).await;
            self.status.send_modify(|s| {
                s.connected = false;
                s.joined.clear();
                s.privileged.clear();
            });
            let delay = match end {
                End::Shutdown => return,
                End::Reconnect(reason) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(server = %self.settings.server, "chat connection lost: {reason}; reconnecting in {delay:?}");
                    self.status.send_modify(|s| s.detail = reason);
                    delay
                }
            };
            if !self.pause(delay).await {
                return;
            }
        }
    }

    /// Waits (handling commands) until a channel is wanted or a message waits; false when
    /// the client is to stop.
    async fn wait_for_work(&mut self) -> bool {
        while self.wanted.is_empty() && self.waiting.is_empty() {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.offline(command),
                    None => return false,
                },
                () = self.shutdown.cancelled() => return false,
            }
        }
        true
    }

    async fn pause(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.offline(command),
                    None => return false,
                },
                () = tokio::time::sleep_until(until) => return true,
                () = self.shutdown.cancelled() => return false,
            }
        }
    }

    fn offline(&mut self, command: Command) {
        match command {
            Command::Join(channel) => {
                self.want(&channel);
            }
            Command::Part(channel) => {
                self.release(&channel);
            }
            Command::Say(say) => self.waiting.push_back(say),
        }
    }

    /// Counts one more user of `channel`; returns its login when it is the first.
    fn want(&mut self, channel: &str) -> Option<String> {
        let Some(login) = channel_login(channel) else {
            tracing::warn!(channel = %channel.escape_debug(), "not a Twitch channel name; not joined");
            return None;
        };
        let count = self.wanted.entry(login.clone()).or_default();
        *count += 1;
        (*count == 1).then_some(login)
    }

    /// Counts one user fewer; returns its login when it was the last.
    fn release(&mut self, channel: &str) -> Option<String> {
        let login = channel_login(channel)?;
        let count = self.wanted.get_mut(&login)?;
        *count -= 1;
        if *count > 0 {
            return None;
        }
        self.wanted.remove(&login);
        Some(login)
    }

    async fn session(&mut self, backoff: &mut Backoff, logged_first_invalid: &mut bool) -> End {
        let server = self.settings.server.clone();
        self.status
            .send_modify(|s| s.detail = format!("connecting to {server}"));
        let stream = match tokio::time::timeout(
            self.settings.timing.connect_timeout,
            connect(&self.settings),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(reason)) => return End::retry(reason),
            Err(_) => {
                return End::retry(format!(
                    "no connection to {server} within {:?}",
                    self.settings.timing.connect_timeout
                ));
            }
        };
        let (read, write) = tokio::io::split(stream);
        let (lines_tx, mut lines) = mpsc::channel(256);
        let reader = AbortOnDrop(tokio::spawn(read_lines(read, lines_tx)));
        let mut out = Writer {
            inner: write,
            timeout: self.settings.timing.write_timeout,
        };
        let (nick, password) = match &self.settings.login {
            IrcLogin::Anonymous => (anonymous_nick(), None),
            IrcLogin::Account { login, tokens } => {
                (login.to_lowercase(), Some(tokens.access().await))
            }
        };
        let mut login =
            vec!["CAP REQ :twitch.tv/tags twitch.tv/commands twitch.tv/membership".to_owned()];
        if let Some(password) = &password {
            login.push(format!("PASS oauth:{password}"));
        }
        login.push(format!("NICK {nick}"));
        // Twitch ignores USER and CAP END; standard IRC servers hold the registration until
        // both arrived.
        login.push(format!("USER {nick} 8 * :{nick}"));
        login.push("CAP END".to_owned());
        for line in &login {
            if let Err(e) = out.line(line).await {
                return End::retry(e);
            }
        }
        let mut session = Session {
            nick,
            registered: false,
            nick_attempts: 0,
            to_join: VecDeque::new(),
            last_heard: Instant::now(),
            ping_sent: None,
            password,
        };
        let timing = self.settings.timing.clone();
        let end = loop {
            let liveness = match session.ping_sent {
                Some(sent) => sent + timing.pong_timeout,
                None => session.last_heard + timing.ping_after,
            };
            let next_join = self.joins.ready_at(Instant::now());
            let can_join = session.registered && !session.to_join.is_empty();
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    let _ = out.line("QUIT").await;
                    break End::Shutdown;
                }
                line = lines.recv() => match line {
                    Some(Line::Text(line)) => {
                        if let Some(end) = self.on_line(&line, &mut session, &mut out, backoff, logged_first_invalid).await {
                            break end;
                        }
                    }
                    Some(Line::Invalid(why)) => self.invalid(why, "", logged_first_invalid),
                    Some(Line::Closed(reason)) => break End::retry(reason),
                    None => break End::retry("the connection ended"),
                },
                command = self.commands.recv() => match command {
                    Some(command) => if let Err(e) = self.online(command, &mut session, &mut out).await {
                        break End::retry(e);
                    },
                    None => break End::Shutdown,
                },
                () = tokio::time::sleep_until(next_join), if can_join => {
                    if let Some(channel) = session.to_join.pop_front()
                        && self.wanted.contains_key(&channel)
                        && self.joins.try_take(Instant::now())
                        && let Err(e) = out.line(&format!("JOIN #{channel}")).await
                    {
                        break End::retry(e);
                    }
                }
                () = tokio::time::sleep_until(liveness) => {
                    if session.ping_sent.is_some() {
                        break End::retry(format!("no answer to PING within {:?}", timing.pong_timeout));
                    }
                    if let Err(e) = out.line("PING :ongwatch").await {
                        break End::retry(e);
                    }
                    session.ping_sent = Some(Instant::now());
                }
            }
        };
        drop(reader);
        // A message asked for but not written is failed rather than kept waiting: the sender
        // reports it and the bot can decide.
        for say in self.waiting.drain(..) {
            let _ = say
                .done
                .send(Err(IrcSendError::Lost("disconnected".into())));
        }
        end
    }

    async fn online(
        &mut self,
        command: Command,
        session: &mut Session,
        out: &mut Writer,
    ) -> Result<(), String> {
        match command {
            Command::Join(channel) => {
                if let Some(channel) = self.want(&channel)
                    && !session.to_join.contains(&channel)
                {
                    session.to_join.push_back(channel);
                }
            }
            Command::Part(channel) => {
                if let Some(channel) = self.release(&channel) {
                    session.to_join.retain(|c| c != &channel);
                    let mut was_joined = false;
                    self.status
                        .send_modify(|s| was_joined = s.joined.remove(&channel));
                    if was_joined {
                        out.line(&format!("PART #{channel}")).await?;
                    }
                }
            }
            Command::Say(say) if !session.registered => self.waiting.push_back(say),
            Command::Say(say) => {
                let result = out.line(&privmsg(&say)).await;
                let _ = say.done.send(result.clone().map_err(IrcSendError::Lost));
                result?;
            }
        }
        Ok(())
    }

    async fn on_line(
        &mut self,
        line: &str,
        session: &mut Session,
        out: &mut Writer,
        backoff: &mut Backoff,
        logged_first_invalid: &mut bool,
    ) -> Option<End> {
        session.last_heard = Instant::now();
        session.ping_sent = None;
        let msg = match IrcMessage::parse(line) {
            Ok(msg) => msg,
            Err(e) => {
                self.invalid(&e.to_string(), line, logged_first_invalid);
                return None;
            }
        };
        let ours = msg
            .prefix()
            .is_some_and(|p| p.nick.eq_ignore_ascii_case(&session.nick));
        match msg.command() {
            "PING" => {
                let answer = match msg.params().last() {
                    Some(arg) => format!("PONG :{arg}"),
                    None => "PONG".to_owned(),
                };
                if let Err(e) = out.line(&answer).await {
                    return Some(End::retry(e));
                }
            }
            "PONG" => self.status.send_modify(|s| s.pongs += 1),
            "001" => {
                session.registered = true;
                backoff.reset();
                let mut channels: Vec<String> = self.wanted.keys().cloned().collect();
                channels.sort();
                session.to_join = channels.into();
                self.status.send_modify(|s| {
                    s.connected = true;
                    s.refused = None;
                    s.sessions += 1;
                    s.detail = format!("connected as {}", session.nick);
                });
                tracing::info!(server = %self.settings.server, nick = %session.nick, "chat connected");
                while let Some(say) = self.waiting.pop_front() {
                    let result = out.line(&privmsg(&say)).await;
                    let _ = say.done.send(result.clone().map_err(IrcSendError::Lost));
                    if let Err(e) = result {
                        return Some(End::retry(e));
                    }
                }
            }
            "RECONNECT" => {
                return Some(End::retry("Twitch asked to reconnect (server restart)"));
            }
            // Only before the welcome: afterwards the login was accepted.
            "NOTICE"
                if !session.registered
                    && msg.param(0) == Some("*")
                    && is_login_refusal(msg.trailing()) =>
            {
                return Some(self.login_refused(&msg, session, out).await);
            }
            "432" | "433" | "462" | "464" | "465" if !session.registered => {
                return self.registration_refused(&msg, session, out).await;
            }
            "JOIN" if ours => {
                if let Some(channel) = msg.channel() {
                    let channel = channel.to_ascii_lowercase();
                    if self.wanted.contains_key(&channel) {
                        self.status.send_modify(|s| {
                            s.joined.insert(channel);
                        });
                    }
                }
            }
            "USERSTATE" => {
                if let Some(channel) = msg.channel() {
                    let badges = Badges(msg.tag("badges").map_or("", |b| b.raw()));
                    let privileged = msg.tag("mod").is_some_and(|m| m.raw() == "1")
                        || badges.has("broadcaster")
                        || badges.has("moderator");
                    let channel = channel.to_ascii_lowercase();
                    self.status.send_if_modified(|s| {
                        if privileged {
                            s.privileged.insert(channel)
                        } else {
                            s.privileged.remove(&channel)
                        }
                    });
                }
            }
            _ => {}
        }
        match normalize(&msg, self.settings.include_raw) {
            Ok(events) => {
                for event in events {
                    if self.events.send(event).await.is_err() {
                        return Some(End::Shutdown);
                    }
                }
            }
            Err(e) => self.invalid(&e.to_string(), line, logged_first_invalid),
        }
        None
    }

    /// A numeric refusing the registration. An anonymous nick in use is replaced on the
    /// spot; a refused password goes the way of Twitch's refused login; anything else ends
    /// the session with the refusal kept for the owner.
    async fn registration_refused(
        &mut self,
        msg: &IrcMessage<'_>,
        session: &mut Session,
        out: &mut Writer,
    ) -> Option<End> {
        let numeric = msg.command();
        let anonymous = matches!(self.settings.login, IrcLogin::Anonymous);
        if numeric == "433" && anonymous && session.nick_attempts < NICK_ATTEMPTS {
            session.nick_attempts += 1;
            let nick = anonymous_nick();
            tracing::info!(server = %self.settings.server, taken = %session.nick, %nick, "anonymous chat nick in use; trying another");
            session.nick = nick;
            return match out.line(&format!("NICK {}", session.nick)).await {
                Ok(()) => None,
                Err(e) => Some(End::retry(e)),
            };
        }
        if numeric == "464" && !anonymous {
            return Some(self.login_refused(msg, session, out).await);
        }
        let unauthorized = matches!(numeric, "464" | "465");
        let fix = match numeric {
            "464" => {
                "; this server wants a password: log in a chat account with `ongwatch auth twitch --account bot`"
            }
            "465" => "; this server bans the login: use another account or server",
            _ => "",
        };
        let reason = self.refusal(msg, session, fix);
        Some(self.refuse(unauthorized, reason, out).await)
    }

    /// Twitch's refused login: the token is refreshed once and tried again; if it cannot be,
    /// a person must log in.
    async fn login_refused(
        &mut self,
        msg: &IrcMessage<'_>,
        session: &Session,
        out: &mut Writer,
    ) -> End {
        let IrcLogin::Account { login, tokens } = &self.settings.login else {
            let reason = self.refusal(msg, session, "");
            return self.refuse(true, reason, out).await;
        };
        let stale = session.password.clone().unwrap_or_default();
        match tokens.refresh(&stale).await {
            Ok(_) => End::retry(format!(
                "the chat server refused the login of {login}; token refreshed"
            )),
            Err(e) => {
                let fix = format!(
                    " and the token cannot be refreshed ({e}); log in again with `ongwatch auth twitch`"
                );
                let reason = self.refusal(msg, session, &fix);
                self.refuse(true, reason, out).await
            }
        }
    }

    /// "<server> refused the chat login as <nick>: <the server's words> (<numeric>)<fix>".
    fn refusal(&self, msg: &IrcMessage<'_>, session: &Session, fix: &str) -> String {
        let words = msg
            .trailing()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or("no reason given");
        let numeric = match msg.command() {
            "NOTICE" => String::new(),
            code => format!(" ({code})"),
        };
        format!(
            "{} refused the chat login as {}: {}{numeric}{fix}",
            self.settings.server,
            session.nick,
            words.escape_debug()
        )
    }

    /// Keeps the refusal for the owner and ends the session; the reconnect backs off.
    async fn refuse(&mut self, unauthorized: bool, reason: String, out: &mut Writer) -> End {
        tracing::warn!("{reason}");
        self.status.send_modify(|s| {
            s.refused = Some(Refusal {
                unauthorized,
                reason: reason.clone(),
            });
        });
        // The server keeps an unregistered connection open for another try; ours is a new one.
        let _ = out.line("QUIT").await;
        End::retry(reason)
    }

    fn invalid(&mut self, why: &str, line: &str, logged_first_invalid: &mut bool) {
        self.status.send_modify(|s| s.invalid_lines += 1);
        // One line says it happens; the counter says how often.
        if !*logged_first_invalid {
            *logged_first_invalid = true;
            tracing::warn!(line = %line.escape_debug(), "ignored an invalid chat line ({why}); further ones are only counted");
        } else {
            tracing::debug!(line = %line.escape_debug(), "ignored an invalid chat line ({why})");
        }
    }
}

/// `justinfan<random>`: Twitch's anonymous, read-only login.
fn anonymous_nick() -> String {
    format!("justinfan{}", rand::random_range(10_000..100_000_000u32))
}

fn is_login_refusal(text: Option<&str>) -> bool {
    text.is_some_and(|t| {
        t.contains("Login authentication failed") || t.contains("Improperly formatted auth")
    })
}

/// `[@reply-parent-msg-id=<id> ]PRIVMSG #<channel> :<text>`, with line breaks turned into
/// spaces so the text cannot smuggle in a second command.
fn privmsg(say: &Say) -> String {
    let text: String = say
        .text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    match &say.reply_to {
        Some(parent) => format!(
            "@reply-parent-msg-id={} PRIVMSG #{} :{text}",
            escape_tag(parent),
            say.channel
        ),
        None => format!("PRIVMSG #{} :{text}", say.channel),
    }
}

/// IRCv3 tag value escaping.
fn escape_tag(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ';' => escaped.push_str("\\:"),
            ' ' => escaped.push_str("\\s"),
            '\\' => escaped.push_str("\\\\"),
            '\r' => escaped.push_str("\\r"),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn connect(settings: &IrcSettings) -> Result<Box<dyn Stream>, String> {
    let server = &settings.server;
    let tcp = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| format!("cannot connect to {server} ([chat] server): {e}"))?;
    let _ = tcp.set_nodelay(true);
    if !settings.tls {
        return Ok(Box::new(tcp));
    }
    let host = server
        .rsplit_once(':')
        .map_or(server.as_str(), |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host:?} is not a TLS server name ([chat] server): {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(tls_config()?)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {server} failed: {e}"))?;
    Ok(Box::new(tls))
}

/// rustls with ring and the platform's root certificates, like the HTTP client.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Reads lines on its own task, so the session's `select!` only waits on a channel.
async fn read_lines<R: AsyncRead + Unpin>(read: R, lines: mpsc::Sender<Line>) {
    let mut reader = BufReader::new(read);
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let line = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) => Line::Closed("the server closed the connection".into()),
            Err(e) => Line::Closed(format!("cannot read from the chat server: {e}")),
            Ok(_) if buf.len() >= MAX_LINE && buf.last() != Some(&b'\n') => {
                if let Err(e) = skip_line(&mut reader).await {
                    Line::Closed(format!("cannot read from the chat server: {e}"))
                } else {
                    Line::Invalid("longer than 64 KiB")
                }
            }
            Ok(_) => {
                while matches!(buf.last(), Some(b'\n' | b'\r')) {
                    buf.pop();
                }
                if buf.is_empty() {
                    continue;
                }
                match String::from_utf8(std::mem::take(&mut buf)) {
                    Ok(text) => Line::Text(text),
                    Err(_) => Line::Invalid("not UTF-8"),
                }
            }
        };
        let closed = matches!(line, Line::Closed(_));
        if lines.send(line).await.is_err() || closed {
            return;
        }
    }
}

/// Discards the rest of an overlong line.
async fn skip_line<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<()> {
    let mut sink = Vec::new();
    loop {
        sink.clear();
        let n = (&mut *reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut sink)
            .await?;
        if n == 0 || sink.last() == Some(&b'\n') {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_logins() {
        assert_eq!(channel_login("#Pajlada").as_deref(), Some("pajlada"));
        assert_eq!(channel_login("a_b9").as_deref(), Some("a_b9"));
        assert_eq!(channel_login("a b"), None);
        assert_eq!(channel_login("x\r\nQUIT"), None);
        assert_eq!(channel_login(""), None);
        assert_eq!(channel_login(&"a".repeat(26)), None);
    }

    /// One connection to a line-based server on loopback that answers the n-th `NICK` (from
    /// 0) with `answer(n, nick)`; returns the client's handle and the nicks it sent.
    async fn registering(
        answer: fn(usize, &str) -> String,
    ) -> (
        IrcHandle,
        CancellationToken,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap().to_string();
        let nicks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = nicks.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = tokio::io::split(stream);
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(nick) = line.strip_prefix("NICK ") {
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(nick.to_owned());
                        seen.len() - 1
                    };
                    let reply = format!("{}\r\n", answer(n, nick));
                    write.write_all(reply.as_bytes()).await.unwrap();
                }
            }
        });
        let settings = IrcSettings {
            server,
            tls: false,
            login: IrcLogin::Anonymous,
            include_raw: false,
            timing: IrcTiming {
                // One session is all these tests look at.
                initial_backoff: Duration::from_secs(3600),
                ..IrcTiming::default()
            },
            joins_per_window: JOINS_PER_WINDOW,
        };
        let (events, mut drain) = mpsc::channel(64);
        tokio::spawn(async move { while drain.recv().await.is_some() {} });
        let shutdown = CancellationToken::new();
        let (handle, _task) = spawn(settings, events, shutdown.clone());
        handle.join("somechannel");
        (handle, shutdown, nicks)
    }

    #[tokio::test]
    async fn an_anonymous_nick_in_use_is_replaced_by_a_new_one() {
        let (handle, shutdown, nicks) = registering(|n, nick| match n {
            0 => format!(":irc.test 433 * {nick} :Nickname is already in use"),
            _ => format!(":irc.test 001 {nick} :Welcome"),
        })
        .await;
        let mut status = handle.status();
        let status = status.wait_for(|s| s.connected).await.unwrap().clone();
        let nicks = nicks.lock().unwrap().clone();
        assert_eq!(nicks.len(), 2, "{nicks:?}");
        assert_ne!(nicks[0], nicks[1]);
        assert!(nicks[1].starts_with("justinfan"), "{nicks:?}");
        assert_eq!(status.detail, format!("connected as {}", nicks[1]));
        assert_eq!(status.refused, None);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_ban_is_kept_as_an_unauthorized_refusal_with_the_servers_words() {
        let (handle, shutdown, _) =
            registering(|_, _| ":irc.test 465 * :You are banned from this server".into()).await;
        let mut status = handle.status();
        let status = status
            .wait_for(|s| s.refused.is_some())
            .await
            .unwrap()
            .clone();
        let refusal = status.refused.unwrap();
        assert!(refusal.unauthorized);
        assert!(
            refusal
                .reason
                .contains("You are banned from this server (465)"),
            "{refusal:?}"
        );
        assert!(!status.connected);
        shutdown.cancel();
    }

    #[test]
    fn privmsg_cannot_carry_a_second_command() {
        let (done, _) = oneshot::channel();
        let say = Say {
            channel: "chan".into(),
            text: "hi\r\nQUIT".into(),
            reply_to: Some("a b;c".into()),
            done,
        };
        assert_eq!(
            privmsg(&say),
            "@reply-parent-msg-id=a\\sb\\:c PRIVMSG #chan :hi  QUIT"
        );
    }
}
