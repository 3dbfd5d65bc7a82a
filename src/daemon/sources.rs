//! How the daemon starts the sources: each configured provider's settings from its section,
//! a fresh `connecting` state before it runs, and its supervised task; and how they stop, all
//! at once, before the hub drains.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::credentials::Credentials;
use crate::event::{ConnectionState, Event, ProviderState, format_time, now};
use crate::hub::Publisher;
use crate::sources::{demo, obs, streamelements, streamlabs, trigger, twitch};
use crate::supervisor::{Policy, Supervised, Supervisor};

/// The running sources: one stop token, and every task it ends.
pub(super) struct Sources {
    stop: CancellationToken,
    tasks: Vec<Supervised>,
    /// Streamlabs' and StreamElements' forwarders into the hub, which end after their source.
    forwarders: Vec<JoinHandle<()>>,
}

impl Sources {
    pub fn new() -> Self {
        Self {
            stop: CancellationToken::new(),
            tasks: Vec::new(),
            forwarders: Vec::new(),
        }
    }

    /// Cancelled when the sources stop (chat, the monitor's polling).
    pub fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Tasks started elsewhere that end with the sources (chat's).
    pub fn watch(&mut self, tasks: impl IntoIterator<Item = Supervised>) {
        self.tasks.extend(tasks);
    }

    /// `--demo`: made-up events at `[demo] rate`.
    pub fn start_demo(
        &mut self,
        supervisor: &Supervisor,
        publisher: &Publisher,
        context: trigger::Context,
        rate: f64,
    ) {
        let (publisher, stop) = (publisher.clone(), self.stop.clone());
        self.tasks
            .push(supervisor.spawn("demo", Policy::Restart, move || {
                demo::run(publisher.clone(), context.clone(), rate, stop.clone())
            }));
    }

    /// The Twitch EventSub source, if `[twitch]` has an app for this environment; whether it runs.
    pub async fn start_twitch(
        &mut self,
        supervisor: &Supervisor,
        publisher: &Publisher,
        channel: &str,
        settings: Option<twitch::source::Settings>,
    ) -> bool {
        let Some(settings) = settings else {
            return false;
        };
        starting(publisher, twitch::eventsub::PROVIDER, channel).await;
        let (publisher, stop) = (publisher.clone(), self.stop.clone());
        self.tasks
            .push(supervisor.spawn("twitch", Policy::Restart, move || {
                twitch::source::run(settings.clone(), publisher.clone(), stop.clone())
            }));
        true
    }

    /// OBS, if `[obs]` is configured; `commands` are the scene and request commands for it.
    pub fn start_obs(
        &mut self,
        supervisor: &Supervisor,
        publisher: &Publisher,
        settings: Option<obs::Settings>,
        commands: mpsc::Receiver<obs::Command>,
    ) {
        let Some(settings) = settings else {
            return;
        };
        let (publisher, stop) = (publisher.clone(), self.stop.clone());
        let commands = Arc::new(tokio::sync::Mutex::new(commands));
        self.tasks
            .push(supervisor.spawn("obs", Policy::Restart, move || {
                obs::run(
                    settings.clone(),
                    publisher.clone(),
                    commands.clone(),
                    stop.clone(),
                )
            }));
    }

    /// Streamlabs and StreamElements, for whichever has credentials in this environment. Their
    /// events (and provider states) are forwarded into the hub by one task each, which ends
    /// once its source's supervised task ended for good.
    pub async fn start_sockets(
        &mut self,
        supervisor: &Supervisor,
        config: &Config,
        credentials: &Credentials,
        channel: &str,
        publisher: &Publisher,
    ) {
        if let Some((settings, token)) = streamlabs::Settings::from_config(
            &config.streamlabs,
            credentials,
            &config.environment,
            channel,
        ) {
            let run = move |out, stop| streamlabs::run(settings.clone(), token.clone(), out, stop);
            self.start_forwarded(supervisor, publisher, channel, streamlabs::PROVIDER, run)
                .await;
        }
        if let Some((settings, credential)) = streamelements::Settings::from_config(
            &config.streamelements,
            credentials,
            &config.environment,
            channel,
        ) {
            let run = move |out, stop| {
                streamelements::run(settings.clone(), credential.clone(), out, stop)
            };
            self.start_forwarded(
                supervisor,
                publisher,
                channel,
                streamelements::PROVIDER,
                run,
            )
            .await;
        }
    }

    /// `provider`'s `connecting` state, then its supervised task named after it, whose events
    /// a task of their own forwards into the hub.
    async fn start_forwarded<F, Fut>(
        &mut self,
        supervisor: &Supervisor,
        publisher: &Publisher,
        channel: &str,
        provider: &str,
        run: F,
    ) where
        F: Fn(mpsc::Sender<Event>, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        starting(publisher, provider, channel).await;
        let (out, forwarder) = forward(publisher.clone());
        let stop = self.stop.clone();
        self.tasks
            .push(supervisor.spawn(provider, Policy::Restart, move || {
                run(out.clone(), stop.clone())
            }));
        self.forwarders.push(forwarder);
    }

    /// Stops every source and waits until each ended and what it sent is in the hub. OBS
    /// closes its socket cleanly (close code 1000) on the way.
    pub async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            task.wait().await;
        }
        for forwarder in self.forwarders {
            let _ = forwarder.await;
        }
    }
}

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

/// A channel whose events go to the hub, and the task forwarding them, which ends once the
/// source dropped its sender and everything sent was forwarded.
fn forward(publisher: Publisher) -> (mpsc::Sender<Event>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Event>(1024);
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
