//! One EventSub WebSocket session, from connect to the reason it ended.
//!
//! After the welcome, the subscriptions are created by a separate task, so keepalives,
//! notifications and pings are read while Helix answers (and while a 429 is waited out) —
//! the welcome window and the keepalive watchdog both keep running. A `session_reconnect`
//! opens the new socket beside the old one; the old one is read until the new welcome, then
//! closed and drained, and the subscriptions move with the session, so none is created again.
//! Notifications seen on both sockets are published once ([`Source::notification`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt;
use futures::future::OptionFuture;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::eventsub::{Frame, Session, Subscription, parse_frame};
use super::helix::{Helix, HelixError, Totals};
use super::source::{Auth, Source, Timing, find_sub, remove_stale};
use crate::event::ConnectionState;
use crate::hub::BusClosed;
use crate::retry::Backoff;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Connecting = Pin<Box<dyn Future<Output = Result<(Ws, Session), String>> + Send>>;

/// How a session ended.
pub(crate) enum End {
    Shutdown,
    /// Only a new login helps; the detail names the command.
    Login(String),
    /// Connect again (and subscribe again); `at_once` skips the backoff because Twitch asked
    /// for a new connection rather than reporting a failure.
    Retry {
        reason: String,
        at_once: bool,
    },
}

/// What the subscriber task reports for each subscription.
enum SubResult {
    Created {
        index: usize,
        id: Option<String>,
        status: String,
        totals: Option<Totals>,
    },
    Retrying {
        index: usize,
        error: String,
    },
    Failed {
        index: usize,
        error: String,
        /// Twitch answered 403: the token lacks a scope, or the user is not allowed.
        forbidden: bool,
    },
    /// A 401 that a refresh could not fix.
    AuthLost(String),
    Done,
}

/// Twitch's default when a welcome does not say (it always does).
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    src: &mut Source,
    auth: &Auth,
    mut lost: watch::Receiver<Option<String>>,
    backoff: &mut Backoff,
) -> Result<End, BusClosed> {
    let timing = src.settings.timing.clone();
    let url = src.settings.eventsub_url.clone();
    src.report(
        ConnectionState::Connecting,
        format!("connecting to {}", host_of(&url)),
    )
    .await?;
    let (mut ws, session) = match connect(url, timing.connect_timeout).await {
        Ok(connected) => connected,
        Err(reason) => {
            return Ok(End::Retry {
                reason,
                at_once: false,
            });
        }
    };
    let mut keepalive = keepalive_of(&session, &timing, DEFAULT_KEEPALIVE);
    let mut deadline = Instant::now() + keepalive;

    let jobs: Vec<Job> = src
        .subs
        .iter_mut()
        .enumerate()
        .filter(|(_, s)| s.allowed)
        .map(|(index, s)| {
            s.status = "pending".into();
            s.last_error = None;
            Job {
                index,
                kind: s.spec.kind.clone(),
                version: s.spec.version.clone(),
                condition: s.condition.clone(),
            }
        })
        .collect();
    let (tx, mut results) = mpsc::channel(64);
    let _subscriber = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(subscribe_all(
        src.helix.clone(),
        auth.clone(),
        jobs,
        session.id.clone(),
        timing.clone(),
        tx,
    )));
    src.report(
        ConnectionState::Connecting,
        "connected; creating the subscriptions",
    )
    .await?;

    let mut handoff: Option<Connecting> = None;
    let mut old_open = true;
    let mut watching_auth = true;
    let mut state_tick = tokio::time::interval(timing.state_every);
    state_tick.reset();
    loop {
        tokio::select! {
            () = src.shutdown.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(End::Shutdown);
            }
            changed = lost.changed(), if watching_auth => {
                let detail = lost.borrow_and_update().clone();
                if changed.is_err() {
                    watching_auth = false;
                } else if let Some(detail) = detail {
                    let _ = ws.close(None).await;
                    return Ok(End::Login(detail));
                }
            }
            message = ws.next(), if old_open => {
                deadline = Instant::now() + keepalive;
                let ended = match message {
                    None => Some(("the connection dropped".to_owned(), false)),
                    Some(Err(e)) => Some((format!("the connection failed: {e}"), false)),
                    Some(Ok(Message::Close(frame))) => Some(close_reason(frame.as_ref())),
                    Some(Ok(Message::Text(text))) => {
                        if let Some(url) = frame(src, &text).await? {
                            tracing::info!("Twitch asked to move to a new EventSub server");
                            handoff = Some(Box::pin(connect(url, timing.connect_timeout)));
                        }
                        None
                    }
                    Some(Ok(_)) => None,
                };
                if let Some((reason, at_once)) = ended {
                    if handoff.is_some() {
                        // The new connection carries on; its welcome ends the wait.
                        old_open = false;
                    } else {
                        return Ok(End::Retry { reason, at_once });
                    }
                }
            }
            Some(result) = OptionFuture::from(handoff.as_mut()), if handoff.is_some() => {
                handoff = None;
                let (new_ws, new_session) = match result {
                    Ok(connected) => connected,
                    Err(reason) => {
                        let _ = ws.close(None).await;
                        return Ok(End::Retry {
                            reason: format!("cannot follow Twitch's session_reconnect: {reason}"),
                            at_once: true,
                        });
                    }
                };
                if old_open {
                    drain(src, &mut ws, timing.handoff_drain).await?;
                }
                ws = new_ws;
                old_open = true;
                keepalive = keepalive_of(&new_session, &timing, keepalive);
                deadline = Instant::now() + keepalive;
                tracing::info!("moved to the new EventSub server; subscriptions kept");
            }
            () = tokio::time::sleep_until(deadline), if handoff.is_none() => {
                let _ = ws.close(None).await;
                return Ok(End::Retry {
                    reason: format!("no message from Twitch for {keepalive:.1?} (keepalive timeout)"),
                    at_once: false,
                });
            }
            Some(result) = results.recv() => {
                if let Some(end) = subscribed(src, result, backoff).await? {
                    let _ = ws.close(None).await;
                    return Ok(end);
                }
            }
            _ = state_tick.tick() => {
                if src.dirty {
                    src.publish_state().await?;
                }
            }
        }
    }
}

/// Applies one subscriber result; `Some` ends the session.
async fn subscribed(
    src: &mut Source,
    result: SubResult,
    backoff: &mut Backoff,
) -> Result<Option<End>, BusClosed> {
    match result {
        SubResult::Created {
            index,
            id,
            status,
            totals,
        } => {
            if let Some(sub) = src.subs.get_mut(index) {
                sub.id = id;
                sub.status = status;
                sub.last_error = None;
            }
            if let Some(totals) = totals {
                src.totals = totals;
            }
        }
        SubResult::Retrying { index, error } => {
            let kind = src.subs.get_mut(index).map(|sub| {
                sub.status = "retrying".into();
                sub.last_error = Some(error.clone());
                sub.spec.kind.clone()
            });
            src.report(
                ConnectionState::Connecting,
                format!(
                    "creating {} failed ({error}); retrying on the same connection",
                    kind.unwrap_or_default()
                ),
            )
            .await?;
        }
        SubResult::Failed {
            index,
            error,
            forbidden,
        } => {
            if let Some(sub) = src.subs.get_mut(index) {
                // A 403 for a type whose scope the login lacks is that scope's fault: say which.
                if forbidden && !sub.missing.is_empty() {
                    sub.status = "missing_scope".into();
                    sub.last_error = Some(format!(
                        "{error}; the login lacks {}; run `ongwatch auth twitch`",
                        sub.missing.join(" ")
                    ));
                } else {
                    sub.status = "failed".into();
                    sub.last_error = Some(error);
                }
            }
        }
        SubResult::AuthLost(detail) => return Ok(Some(End::Login(detail))),
        SubResult::Done => {
            let enabled = src.subs.iter().filter(|s| s.status == "enabled").count();
            if enabled == 0 {
                let first = src
                    .subs
                    .iter()
                    .find_map(|s| s.last_error.clone())
                    .unwrap_or_else(|| "no subscription is enabled".into());
                return Ok(Some(End::Login(format!(
                    "Twitch refused every subscription (e.g. {first}); check [twitch] subscriptions, or run `ongwatch auth twitch`"
                ))));
            }
            // Only now is the connection worth something: a server that accepts connections
            // but refuses subscriptions keeps growing the delay.
            backoff.reset();
            let summary = src.summary();
            src.report(ConnectionState::Connected, format!("connected: {summary}"))
                .await?;
        }
    }
    Ok(None)
}

/// Handles one text frame; returns the URL to move to for a `session_reconnect`.
async fn frame(src: &mut Source, text: &str) -> Result<Option<String>, BusClosed> {
    match parse_frame(text) {
        Ok(Frame::Notification(n)) => src.notification(n).await?,
        Ok(Frame::Reconnect(session)) => return Ok(session.reconnect_url),
        Ok(Frame::Revocation(sub)) => revoked(src, sub).await?,
        Ok(Frame::Keepalive | Frame::Welcome(_)) => {}
        Ok(Frame::Unknown { message_type }) => {
            tracing::debug!(%message_type, "unknown EventSub message type ignored")
        }
        Err(e) => tracing::warn!(error = %e, "unreadable EventSub frame ignored"),
    }
    Ok(None)
}

/// Twitch stopped a subscription: its health says why, and the state says what to do.
async fn revoked(src: &mut Source, revoked: Subscription) -> Result<(), BusClosed> {
    let reason = if revoked.status.is_empty() {
        "revoked".to_owned()
    } else {
        revoked.status.clone()
    };
    if let Some(sub) = find_sub(&mut src.subs, &revoked.id, &revoked.kind) {
        sub.status = reason.clone();
        sub.last_error = Some(format!("revoked by Twitch: {reason}"));
        sub.id = None;
        // Creating it again would be refused for the same reason; a new login starts over.
        sub.allowed = false;
    }
    let fix = match reason.as_str() {
        "authorization_revoked" => {
            src.auth_problem = Some(
                "the broadcaster revoked ongwatch's access on Twitch; run `ongwatch auth twitch`"
                    .into(),
            );
            ""
        }
        "moderator_removed" => "; the account is no longer a moderator of the channel",
        "version_removed" => "; Twitch retired this version, update ongwatch",
        "user_removed" => "; the Twitch account was closed or banned",
        _ => "",
    };
    let summary = src.summary();
    src.report(
        ConnectionState::Connected,
        format!(
            "{} v{} revoked by Twitch ({reason}){fix}; {summary}",
            revoked.kind, revoked.version
        ),
    )
    .await
}

/// After the new welcome: close the old socket and read what it still delivers until its
/// close reply, so nothing sent before the move is lost.
async fn drain(src: &mut Source, ws: &mut Ws, limit: Duration) -> Result<(), BusClosed> {
    let _ = ws.close(None).await;
    let until = Instant::now() + limit;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, ws.next()).await {
        match message {
            Message::Text(text) => {
                // A second session_reconnect on a socket being closed means nothing.
                let _ = frame(src, &text).await?;
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    Ok(())
}

/// The session's keepalive timeout plus the grace; `fallback` when the frame has none (a
/// reconnect welcome may leave it out, then the old one holds).
fn keepalive_of(session: &Session, timing: &Timing, fallback: Duration) -> Duration {
    session
        .keepalive_timeout_seconds
        .map(|s| Duration::from_secs(s) + timing.keepalive_grace)
        .unwrap_or(fallback)
}

/// What each EventSub close code means, and whether to come back at once.
fn close_reason(frame: Option<&CloseFrame>) -> (String, bool) {
    let Some(frame) = frame else {
        return ("Twitch closed the connection".into(), false);
    };
    let code = u16::from(frame.code);
    let (what, at_once) = match code {
        4000 => ("internal server error at Twitch", false),
        4001 => ("ongwatch sent a message Twitch does not accept", false),
        4002 => ("a ping from Twitch was not answered in time", false),
        4003 => (
            "no subscription was created within the welcome window",
            false,
        ),
        4004 => ("the reconnect grace time expired", true),
        4005 => ("network timeout", false),
        4006 => ("network error", false),
        4007 => ("the reconnect URL was invalid", true),
        _ => ("Twitch closed the connection", false),
    };
    (format!("{what} (close code {code})"), at_once)
}

/// Connects and waits for the welcome.
async fn connect(url: String, limit: Duration) -> Result<(Ws, Session), String> {
    let host = host_of(&url);
    let attempt = async {
        let (mut ws, _) = connect_async(url.as_str())
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(response)
                    if response.status().as_u16() == 429 =>
                {
                    "Twitch refused a new connection: this token already has its 3 WebSocket connections (429)".to_owned()
                }
                e => format!("cannot connect to {host}: {e}"),
            })?;
        while let Some(message) = ws.next().await {
            match message.map_err(|e| format!("the connection to {host} failed: {e}"))? {
                Message::Text(text) => match parse_frame(&text) {
                    Ok(Frame::Welcome(session)) => return Ok((ws, session)),
                    Ok(_) => {}
                    Err(e) => return Err(format!("unreadable first message from {host}: {e}")),
                },
                Message::Close(frame) => return Err(close_reason(frame.as_ref()).0),
                _ => {}
            }
        }
        Err(format!("{host} closed the connection before its welcome"))
    };
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no welcome from {host} within {limit:?}")))
}

fn host_of(url: &str) -> String {
    crate::net::host_of(url).unwrap_or_else(|| "the EventSub server".into())
}

struct Job {
    index: usize,
    kind: String,
    version: String,
    condition: Value,
}

/// Creates the subscriptions one by one on `session_id`. A 401 refreshes the token and
/// retries once; a 429 or a server error waits (Twitch's reset time, else the backoff),
/// removes stale subscriptions that hold the limits, and retries on this same session —
/// never on a new connection, which would only hit the connection limit.
async fn subscribe_all(
    helix: Helix,
    auth: Auth,
    jobs: Vec<Job>,
    session_id: String,
    timing: Timing,
    results: mpsc::Sender<SubResult>,
) {
    for job in jobs {
        let mut backoff = timing.retry().backoff();
        let mut refreshed = false;
        loop {
            let token = auth.access().await;
            let outcome = helix
                .create(&token, &job.kind, &job.version, &job.condition, &session_id)
                .await;
            let result = match outcome {
                Ok((listed, totals)) => SubResult::Created {
                    index: job.index,
                    id: Some(listed.id),
                    status: listed.status,
                    totals: Some(totals),
                },
                Err(HelixError::Conflict) => SubResult::Created {
                    index: job.index,
                    id: None,
                    status: "enabled".into(),
                    totals: None,
                },
                Err(HelixError::Unauthorized(message)) if !refreshed => {
                    refreshed = true;
                    match auth.refresh(&token).await {
                        Ok(_) => continue,
                        Err(e) if e.is_permanent() => {
                            let _ = results
                                .send(SubResult::AuthLost(format!(
                                    "Twitch refused the broadcaster token ({message}) and its refresh ({e}); run `ongwatch auth twitch`"
                                )))
                                .await;
                            return;
                        }
                        Err(e) => {
                            tokio::time::sleep(backoff.next_delay()).await;
                            tracing::warn!(error = %e, "cannot refresh the Twitch token; retrying");
                            refreshed = false;
                            continue;
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    let delay = match &e {
                        HelixError::TooMany {
                            retry_after: Some(wait),
                            ..
                        } => (*wait).max(backoff.next_delay()),
                        _ => backoff.next_delay(),
                    };
                    let error = e.to_string();
                    if results
                        .send(SubResult::Retrying {
                            index: job.index,
                            error,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    if matches!(e, HelixError::TooMany { .. }) {
                        remove_stale(&helix, &auth.access().await).await;
                    }
                    continue;
                }
                Err(e) => SubResult::Failed {
                    index: job.index,
                    forbidden: matches!(e, HelixError::Forbidden(_)),
                    error: e.to_string(),
                },
            };
            if results.send(result).await.is_err() {
                return;
            }
            break;
        }
    }
    let _ = results.send(SubResult::Done).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    #[test]
    fn every_eventsub_close_code_has_its_meaning() {
        let reason = |code: u16| {
            close_reason(Some(&CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }))
        };
        for (code, words, at_once) in [
            (4000, "internal server error", false),
            (4001, "does not accept", false),
            (4002, "ping", false),
            (4003, "welcome window", false),
            (4004, "grace time", true),
            (4005, "network timeout", false),
            (4006, "network error", false),
            (4007, "reconnect URL", true),
        ] {
            let (text, again) = reason(code);
            assert!(
                text.contains(words) && text.contains(&code.to_string()),
                "{text}"
            );
            assert_eq!(again, at_once, "{code}");
        }
        assert!(!close_reason(None).1);
    }

    #[test]
    fn keepalive_is_the_sessions_timeout_plus_grace() {
        let timing = Timing {
            keepalive_grace: Duration::from_millis(300),
            ..Timing::default()
        };
        let session = |seconds| Session {
            id: "s".into(),
            keepalive_timeout_seconds: seconds,
            reconnect_url: None,
        };
        assert_eq!(
            keepalive_of(&session(Some(10)), &timing, DEFAULT_KEEPALIVE),
            Duration::from_millis(10_300)
        );
        assert_eq!(
            keepalive_of(&session(None), &timing, Duration::from_secs(7)),
            Duration::from_secs(7)
        );
    }
}
