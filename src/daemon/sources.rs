//! How the daemon starts the sources: each configured provider's settings from its section,
//! a fresh `connecting` state before it runs, and its supervised task.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::credentials::Credentials;
use crate::event::{ConnectionState, Event, ProviderState, format_time, now};
use crate::hub::Publisher;
use crate::sources::{streamelements, streamlabs, twitch};
use crate::supervisor::{Policy, Supervised, Supervisor};

/// The Twitch source's settings from `[twitch]` and `[twitch.<environment>]`.
pub(super) fn twitch_settings(
    config: &Config,
    credentials: &Credentials,
    state_dir: &std::path::Path,
    tokens: &Arc<twitch::auth::TokenHolders>,
) -> Result<Option<twitch::source::Settings>, twitch::catalog::BadEntry> {
    twitch::source::Settings::from_config(
        &config.twitch,
        config.twitch_app(credentials),
        &config.environment,
        config.bus.include_raw,
        state_dir,
        tokens.clone(),
    )
}

/// Puts a fresh `connecting` state on `R/system/providers/<provider>` before the source runs:
/// what a run killed with `kill -9` left retained there (`connected`, say) is replaced at
/// start, before "ready", whatever the source's first connection attempt takes.
pub(super) async fn starting(publisher: &Publisher, provider: &str, channel: &str) {
    let at = now();
    let state = ProviderState {
        state: ConnectionState::Connecting,
        detail: "starting".into(),
        since: format_time(&at),
        subscriptions: Vec::new(),
    };
    let _ = publisher
        .event(Event::provider_state(provider, channel, state, at))
        .await;
}

/// Streamlabs and StreamElements, for whichever has credentials in this environment, supervised.
/// Their events (and provider states) are forwarded into the hub by one task each, which ends
/// once its source's supervised task ended for good.
pub(super) async fn spawn_socket_sources(
    supervisor: &Supervisor,
    config: &Config,
    credentials: &Credentials,
    channel: &str,
    publisher: &Publisher,
    stop: &CancellationToken,
) -> (Vec<Supervised>, Vec<tokio::task::JoinHandle<()>>) {
    let (mut sources, mut forwarders) = (Vec::new(), Vec::new());
    if let Some((settings, token)) = streamlabs::Settings::from_config(
        &config.streamlabs,
        credentials,
        &config.environment,
        channel,
    ) {
        starting(publisher, streamlabs::PROVIDER, channel).await;
        let (out, forwarder) = forward(publisher.clone());
        let stop = stop.clone();
        sources.push(supervisor.spawn("streamlabs", Policy::Restart, move || {
            streamlabs::run(settings.clone(), token.clone(), out.clone(), stop.clone())
        }));
        forwarders.push(forwarder);
    }
    if let Some((settings, credential)) = streamelements::Settings::from_config(
        &config.streamelements,
        credentials,
        &config.environment,
        channel,
    ) {
        starting(publisher, streamelements::PROVIDER, channel).await;
        let (out, forwarder) = forward(publisher.clone());
        let stop = stop.clone();
        sources.push(
            supervisor.spawn("streamelements", Policy::Restart, move || {
                streamelements::run(
                    settings.clone(),
                    credential.clone(),
                    out.clone(),
                    stop.clone(),
                )
            }),
        );
        forwarders.push(forwarder);
    }
    (sources, forwarders)
}

/// A channel whose events go to the hub, and the task forwarding them, which ends once the
/// source dropped its sender and everything sent was forwarded.
fn forward(
    publisher: Publisher,
) -> (
    tokio::sync::mpsc::Sender<Event>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Event>(1024);
    let task = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if publisher.event(event).await.is_err() {
                break;
            }
        }
    });
    (tx, task)
}

/// Whether a source that reports Twitch events a second time (StreamElements, Streamlabs) is
/// configured: only then can the cross-source check find anything.
pub(super) fn second_reporter(config: &Config, credentials: &Credentials) -> bool {
    let channel = config.default_channel();
    streamlabs::Settings::from_config(
        &config.streamlabs,
        credentials,
        &config.environment,
        &channel,
    )
    .is_some()
        || streamelements::Settings::from_config(
            &config.streamelements,
            credentials,
            &config.environment,
            &channel,
        )
        .is_some()
}
