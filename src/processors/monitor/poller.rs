//! The stream monitor's connection to the world: Get Streams polling through Helix, the
//! Twitch provider's EventSub coverage read from the bus, saving and publishing.

use super::*;

/// What the Twitch provider's retained state says about EventSub.
#[derive(Deserialize)]
pub(super) struct ProviderState {
    pub(super) channel: String,
    pub(super) state: String,
    #[serde(default)]
    pub(super) subscriptions: Vec<SubscriptionHealth>,
}

#[derive(Deserialize)]
pub(super) struct SubscriptionHealth {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) status: String,
}

impl ProviderState {
    /// The broadcaster's channel when both stream subscriptions are enabled on a live session.
    pub(super) fn covered(&self) -> Option<&str> {
        let enabled = |kind: &str| {
            self.subscriptions
                .iter()
                .any(|s| s.kind == kind && s.status == "enabled")
        };
        let up = matches!(self.state.as_str(), "connected" | "unauthorized");
        (up && enabled("stream.online") && enabled("stream.offline"))
            .then_some(self.channel.as_str())
    }
}

pub(super) struct Monitor {
    pub(super) settings: Settings,
    pub(super) publisher: Publisher,
    pub(super) helix: Option<Helix>,
    pub(super) tracker: Tracker,
    pub(super) path: PathBuf,
    /// The broadcaster's login, from the Twitch provider (else `[twitch] channel`).
    pub(super) broadcaster: Option<String>,
    /// The channel EventSub currently covers.
    pub(super) covered: Option<String>,
    /// The last polling problem logged, so a lasting one is logged once.
    pub(super) problem: Option<String>,
    /// EventSub said a channel went live: poll now for its title, category and viewers,
    /// which `stream.online` does not carry.
    pub(super) poll_now: bool,
}

impl Monitor {
    /// Whether polling may decide `channel`'s transitions.
    pub(super) fn polling_decides(&self, channel: &str) -> bool {
        match self.settings.method {
            Method::Polling => true,
            Method::Auto => self.covered.as_deref() != Some(channel),
            Method::Eventsub => self.broadcaster.as_deref() != Some(channel),
        }
    }

    pub(super) fn describe(&self, channel: &str) -> &'static str {
        if self.polling_decides(channel) {
            "Get Streams polling"
        } else {
            "EventSub stream.online/offline (polling refreshes viewers)"
        }
    }

    /// Saves first, with the transitions among `change` marked unannounced, then publishes: a
    /// crash in between republishes them at the next start instead of losing them.
    pub(super) async fn publish(&mut self, change: Change) -> bool {
        self.tracker
            .unannounced
            .extend(change.events.iter().filter(|e| is_transition(e)).cloned());
        if change.save {
            self.save().await;
        }
        for event in change.events {
            if self.publisher.event(event).await.is_err() {
                return false;
            }
        }
        true
    }

    pub(super) async fn save(&self) {
        let Ok(bytes) = serde_json::to_vec_pretty(&self.tracker.saved()) else {
            return;
        };
        let path = self.path.clone();
        let written =
            tokio::task::spawn_blocking(move || crate::state::write_private_atomic(&path, &bytes))
                .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(path = %self.path.display(), error = %e, "monitor: cannot save the channel states")
            }
            Err(e) => tracing::warn!(error = %e, "monitor: the state writer failed"),
        }
    }

    pub(super) fn report(&mut self, problem: Option<String>) {
        if problem == self.problem {
            return;
        }
        match &problem {
            Some(text) => tracing::warn!("monitor: {text}"),
            None if self.problem.is_some() => tracing::info!("monitor: polling works again"),
            None => {}
        }
        self.problem = problem;
    }

    /// The access token to poll with: the stored broadcaster login, else the bot's. Read
    /// from disk each time because the Twitch provider refreshes it; the monitor never
    /// refreshes a token itself, since a public client's refresh token dies once used and
    /// two refreshers would log each other out.
    pub(super) fn token(&self, client_id: &str) -> Result<String, String> {
        if self.settings.localdev {
            return Ok("localdev".into());
        }
        for account in Account::ALL {
            let path = StoredToken::path(&self.settings.state_dir, account);
            if let Ok(Some(token)) = StoredToken::load(&path)
                && token.client_id == client_id
            {
                return Ok(token.access_token);
            }
        }
        Err(format!(
            "no Twitch login to poll Get Streams with; run `{}`",
            Account::Broadcaster.login_command()
        ))
    }

    /// One round over every channel. Returns how long to wait before the next one.
    pub(super) async fn poll_round(&mut self) -> Result<Duration, ()> {
        let interval = self.settings.round_interval();
        let (Some(helix), Some(client_id)) = (self.helix.clone(), self.settings.client_id.clone())
        else {
            return Ok(interval);
        };
        let token = match self.token(&client_id) {
            Ok(token) => token,
            Err(problem) => {
                self.report(Some(problem));
                return Ok(interval);
            }
        };
        let channels = self.settings.channels.clone();
        for batch in channels.chunks(BATCH) {
            let mut query: Vec<(&str, &str)> =
                batch.iter().map(|c| ("user_login", c.as_str())).collect();
            query.push(("first", "100"));
            let streams = match helix.get::<Streams>(&token, &query).await {
                Ok(streams) => streams,
                Err(e) => {
                    let wait = match &e {
                        HelixError::TooMany {
                            retry_after: Some(after),
                            ..
                        } => (*after).max(interval),
                        _ => interval,
                    };
                    let hint = match e {
                        HelixError::Unauthorized(_) => {
                            " (the Twitch provider renews the token; if it stays, run `ongwatch auth twitch`)"
                        }
                        _ => "",
                    };
                    self.report(Some(format!(
                        "Get Streams failed: {e}{hint}; retrying in {wait:.1?}"
                    )));
                    return Ok(wait);
                }
            };
            self.report(None);
            for channel in batch {
                let stream = streams
                    .data
                    .iter()
                    .find(|s| s.user_login.eq_ignore_ascii_case(channel) && s.kind == "live");
                let decides = self.polling_decides(channel);
                let change = self.tracker.poll(channel, stream, decides);
                if !self.publish(change).await {
                    return Err(());
                }
            }
        }
        Ok(interval)
    }

    /// A message from the bus: the Twitch provider's state, or someone else's online/offline.
    pub(super) async fn observe(&mut self, record: &Delivery, provider_filter: &str) -> bool {
        let root = self.publisher.root().clone();
        if crate::event::filter_matches(provider_filter, &record.message.topic) {
            let Ok(state) = serde_json::from_slice::<ProviderState>(&record.message.payload) else {
                return true;
            };
            let covered = state.covered().map(str::to_owned);
            if !state.channel.is_empty() {
                self.broadcaster = Some(state.channel.clone());
            }
            if covered != self.covered {
                let before = std::mem::replace(&mut self.covered, covered);
                for channel in before.iter().chain(self.covered.iter()) {
                    if self.settings.channels.contains(channel) {
                        tracing::info!(channel = %channel, "monitor: {channel} via {}", self.describe(channel));
                    }
                }
            }
            return true;
        }
        let Some(event) = crate::processors::event_of(
            record,
            &root,
            &[Kind::Online, Kind::Offline, Kind::SharedChat],
        ) else {
            return true;
        };
        if event.id.starts_with(ID_PREFIX) {
            // Our own transition is back from the hub, so the log has it.
            let before = self.tracker.unannounced.len();
            self.tracker.unannounced.retain(|e| e.id != event.id);
            if self.tracker.unannounced.len() != before {
                self.save().await;
            }
            return true;
        }
        // Test events (triggers, replays) say nothing about the real channel.
        let monitored = self.settings.channels.contains(&event.channel);
        if !monitored || event.test {
            return true;
        }
        let change = self.tracker.adopt(event);
        self.poll_now |= change.save && matches!(event.kind, EventKind::Online(_));
        self.publish(change).await
    }
}
