//! `[chat]` of ongwatch.toml: the IRC server, the channels read, and which login chat uses
//! (docs/CHAT.md).

use serde::Deserialize;

use crate::section::Section;
use crate::sources::twitch::auth::Account;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    pub server: String,
    pub tls: bool,
    pub channels: Vec<String>,
    /// Read chat without logging in, even when a login is stored (docs/CHAT.md).
    pub anonymous: bool,
    /// Which stored login chat uses; unset: the bot, else the broadcaster, else anonymous.
    pub account: Option<Account>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            server: "irc.chat.twitch.tv:6697".into(),
            tls: true,
            channels: Vec::new(),
            anonymous: false,
            account: None,
        }
    }
}

impl Section for ChatConfig {
    const KEY: &'static str = "chat";

    fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for channel in &self.channels {
            if crate::sources::twitch::irc::channel_login(channel).is_none() {
                problems.push((
                    "chat.channels".into(),
                    format!("{channel:?} is not a Twitch channel; use logins, e.g. [\"ninja\"]"),
                ));
            }
        }
        if self
            .server
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            problems.push((
                "chat.server".into(),
                format!(
                    "{:?} has no port; use host:port, e.g. \"irc.chat.twitch.tv:6697\"",
                    self.server
                ),
            ));
        }
        problems
    }
}
