//! The legacy realtime socket: Socket.IO 2, then `authenticate {method, token}` →
//! `authenticated` or `unauthorized`; alerts on `event`, `event:test`, `event:update`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::{Instant, timeout_at};

use super::{Credential, Settings, normalize_socket_event};
use crate::event::ConnectionState;
use crate::sources::socketio::provider::{Ended, OutClosed, StateReporter, host_of};
use crate::sources::socketio::{ClientOptions, EioVersion, SocketIoClient};

pub(super) async fn connection(
    settings: &Settings,
    credential: &Credential,
    reporter: &StateReporter,
) -> Result<Ended, OutClosed> {
    let host = host_of(&settings.realtime_url);
    reporter
        .report(
            ConnectionState::Connecting,
            format!("connecting to {host} (realtime)"),
            Vec::new(),
        )
        .await?;
    let unauthorized = |reason: String| settings.refused(credential, reason);
    let failed = |reason: String, lasted| Ended::Failed { reason, lasted };
    let options = ClientOptions {
        url: settings.realtime_url.clone(),
        query: Vec::new(),
        version: EioVersion::V3,
        connect_timeout: settings.timing.connect_timeout,
    };
    let deadline = Instant::now() + settings.timing.connect_timeout;
    let mut client = match SocketIoClient::connect(&options).await {
        Ok(client) => client,
        Err(error) if error.is_unauthorized() => return Ok(unauthorized(error.to_string())),
        Err(error) => {
            return Ok(failed(
                format!("cannot connect to {host}: {error}"),
                Duration::ZERO,
            ));
        }
    };
    let auth = json!({"method": credential.kind.as_str(), "token": credential.token});
    if let Err(error) = client.emit("authenticate", vec![auth]).await {
        return Ok(failed(
            format!("cannot authenticate to {host}: {error}"),
            Duration::ZERO,
        ));
    }
    let channel_id = loop {
        match timeout_at(deadline, client.next_event()).await {
            Err(_) => {
                return Ok(failed(
                    format!("{host} did not answer authenticate in time"),
                    Duration::ZERO,
                ));
            }
            Ok(Err(error)) => {
                return Ok(failed(
                    format!("connection to {host} lost: {error}"),
                    Duration::ZERO,
                ));
            }
            Ok(Ok(event)) => match event.name.as_str() {
                "authenticated" => {
                    break event
                        .args
                        .first()
                        .and_then(|a| a.get("channelId"))
                        .and_then(Value::as_str)
                        .unwrap_or("unknown")
                        .to_owned();
                }
                "unauthorized" => return Ok(unauthorized(reason(&event.args))),
                _ => {
                    let normalized =
                        normalize_socket_event(&event.name, &event.args, &settings.channel);
                    reporter.send(normalized).await?;
                }
            },
        }
    };
    let since = Instant::now();
    reporter
        .report(
            ConnectionState::Connected,
            format!("connected to {host} (realtime, StreamElements channel {channel_id})"),
            Vec::new(),
        )
        .await?;
    loop {
        match client.next_event().await {
            // A token revoked while connected is as unauthorized as one refused at the start.
            Ok(event) if event.name == "unauthorized" => {
                return Ok(unauthorized(reason(&event.args)));
            }
            Ok(event) if event.name == "authenticated" => {}
            Ok(event) => {
                let normalized =
                    normalize_socket_event(&event.name, &event.args, &settings.channel);
                reporter.send(normalized).await?;
            }
            Err(error) => {
                return Ok(failed(
                    format!("connection to {host} lost: {error}"),
                    since.elapsed(),
                ));
            }
        }
    }
}

fn reason(args: &[Value]) -> String {
    match args.first() {
        Some(Value::String(text)) => text.clone(),
        Some(value) => value
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string()),
        None => "no reason given".to_owned(),
    }
}
