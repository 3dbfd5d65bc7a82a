//! The chat connection's state on `R/system/providers/twitch_chat`, as every provider reports
//! its own: the dashboard and bots see whether chat is being read, as whom and where, and when
//! it is not, why and what to do.

use tokio::sync::watch;

use crate::event::{ConnectionState, Event, ProviderState, format_time, now};
use crate::hub::Publisher;
use crate::sources::twitch::irc::IrcStatus;

pub const PROVIDER: &str = "twitch_chat";

/// What the retained state says; a change in anything else (pongs, counters) is not news.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    state: ConnectionState,
    detail: String,
}

fn shown(status: &IrcStatus, server: &str, channels_wanted: bool) -> Shown {
    let (state, detail) = if status.connected {
        let detail = if status.joined.is_empty() {
            status.detail.clone()
        } else {
            let rooms: Vec<String> = status.joined.iter().map(|c| format!("#{c}")).collect();
            format!("{} in {}", status.detail, rooms.join(", "))
        };
        (ConnectionState::Connected, detail)
    } else if let Some(refusal) = &status.refused {
        // Kept while reconnecting too: the next try meets the same refusal, most likely.
        let state = if refusal.unauthorized {
            ConnectionState::Unauthorized
        } else {
            ConnectionState::Error
        };
        (state, refusal.reason.clone())
    } else if status.sessions == 0 && status.detail.is_empty() {
        if channels_wanted {
            (
                ConnectionState::Connecting,
                format!("connecting to {server}"),
            )
        } else {
            (
                ConnectionState::Disabled,
                "no chat channel to read; set [twitch] channel or [chat] channels".to_owned(),
            )
        }
    } else {
        (
            ConnectionState::Connecting,
            format!("reconnecting to {server}: {}", status.detail),
        )
    };
    Shown { state, detail }
}

/// Publishes the state at start and on every change that shows, until the connection ends.
pub async fn report(
    mut status: watch::Receiver<IrcStatus>,
    server: String,
    channels_wanted: bool,
    publisher: Publisher,
    channel: String,
) {
    let mut last: Option<Shown> = None;
    loop {
        let current = shown(&status.borrow_and_update(), &server, channels_wanted);
        if last.as_ref() != Some(&current) {
            let at = now();
            let event = Event::provider_state(
                PROVIDER,
                channel.clone(),
                ProviderState {
                    state: current.state,
                    detail: current.detail.clone(),
                    since: format_time(&at),
                    subscriptions: Vec::new(),
                },
                at,
            );
            if publisher.event(event).await.is_err() {
                return;
            }
            last = Some(current);
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::twitch::irc::Refusal;

    #[test]
    fn states_follow_the_connection() {
        let server = "irc.chat.twitch.tv:6697";
        let mut status = IrcStatus::default();
        assert_eq!(
            shown(&status, server, false).state,
            ConnectionState::Disabled
        );
        assert_eq!(
            shown(&status, server, true).state,
            ConnectionState::Connecting
        );
        status.connected = true;
        status.sessions = 1;
        status.detail = "connected as justinfan1".into();
        status.joined.insert("streamer".into());
        let connected = shown(&status, server, true);
        assert_eq!(connected.state, ConnectionState::Connected);
        assert_eq!(connected.detail, "connected as justinfan1 in #streamer");
        status.pongs += 1;
        assert_eq!(shown(&status, server, true), connected);
        status.connected = false;
        status.joined.clear();
        status.detail = "the connection ended".into();
        let lost = shown(&status, server, true);
        assert_eq!(lost.state, ConnectionState::Connecting);
        assert!(lost.detail.contains("the connection ended"), "{lost:?}");
        status.refused = Some(Refusal {
            unauthorized: true,
            reason: "refused; log in again with `ongwatch auth twitch`".into(),
        });
        status.detail = format!("connecting to {server}");
        let refused = shown(&status, server, true);
        assert_eq!(refused.state, ConnectionState::Unauthorized);
        assert!(
            refused.detail.contains("ongwatch auth twitch"),
            "{refused:?}"
        );
        status.refused = Some(Refusal {
            unauthorized: false,
            reason: "Nickname too long, max. 9 characters (432)".into(),
        });
        let error = shown(&status, server, true);
        assert_eq!(error.state, ConnectionState::Error);
        assert!(error.detail.contains("(432)"), "{error:?}");
    }
}
