//! The pure part of the stream monitor: what a poll or a bus event changes per channel, which
//! events that makes, and what `monitor.json` keeps.

use super::*;

/// What the monitor knows of one channel; this is what `monitor.json` keeps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Known {
    pub(super) live: bool,
    /// The current (or, when offline, the last) stream's start: names the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) started_at: Option<String>,
    #[serde(default)]
    pub(super) title: String,
    #[serde(default)]
    pub(super) category: String,
    #[serde(default)]
    pub(super) viewers: u64,
    /// The Twitch shared chat session the channel is in, from `R/channel/shared_chat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) shared_chat: Option<SharedChatSession>,
}

impl Known {
    pub(super) fn status(&self) -> Status {
        Status {
            live: self.live,
            title: self.title.clone(),
            category: self.category.clone(),
            viewers: if self.live { self.viewers } else { 0 },
            started_at: self.started_at.clone().filter(|_| self.live),
            shared_chat: self.shared_chat.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Saved {
    pub(super) channels: BTreeMap<String, Known>,
    /// Transitions saved as known but not yet seen back from the hub (so maybe not logged):
    /// published again at the next start, where the hub drops those it already logged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) unannounced: Vec<Event>,
}

/// One stream as Get Streams lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Stream {
    pub user_login: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub game_name: String,
    #[serde(default)]
    pub viewer_count: u64,
    #[serde(default)]
    pub started_at: String,
}

#[derive(Deserialize)]
pub(super) struct Streams {
    #[serde(default)]
    pub(super) data: Vec<Stream>,
}

/// The pure part: what a poll or a bus event changes, and which events that makes.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    pub(super) known: BTreeMap<String, Known>,
    /// See [`Saved::unannounced`].
    pub(super) unannounced: Vec<Event>,
    /// Channels polled successfully at least once in this run.
    pub(super) polled: HashSet<String>,
    /// The status last published per channel in this run.
    pub(super) published: HashMap<String, Status>,
}

/// Events to publish, in order, and whether the state file must be written now.
#[derive(Debug, Default)]
pub(super) struct Change {
    pub(super) events: Vec<Event>,
    pub(super) save: bool,
}

/// Every event id of the monitor starts with this.
pub(super) const ID_PREFIX: &str = "monitor:";

/// An online or offline of the monitor's own (not a status update).
pub(super) fn is_transition(event: &Event) -> bool {
    event.id.starts_with(ID_PREFIX)
        && matches!(event.kind, EventKind::Online(_) | EventKind::Offline(_))
}

pub(super) fn online_event(channel: &str, known: &Known) -> Event {
    let started_at = known.started_at.clone().unwrap_or_default();
    Event::new(
        format!("{ID_PREFIX}{channel}:online:{started_at}"),
        PROVIDER,
        channel,
        EventKind::Online(Online {
            started_at: known.started_at.clone(),
            title: Some(known.title.clone()),
            category: Some(known.category.clone()),
        }),
    )
}

pub(super) fn offline_event(channel: &str, ended: &Known) -> Event {
    let started_at = ended.started_at.clone().unwrap_or_default();
    Event::new(
        format!("{ID_PREFIX}{channel}:offline:{started_at}"),
        PROVIDER,
        channel,
        EventKind::Offline(Offline {}),
    )
}

impl Tracker {
    pub(super) fn new(saved: Saved) -> Self {
        Self {
            known: saved.channels,
            unannounced: saved.unannounced,
            ..Self::default()
        }
    }

    pub(super) fn saved(&self) -> Saved {
        Saved {
            channels: self.known.clone(),
            unannounced: self.unannounced.clone(),
        }
    }

    /// The status event if `channel`'s status differs from what was last published.
    pub(super) fn status_change(&mut self, channel: &str) -> Option<Event> {
        let status = self.known.get(channel)?.status();
        if self.published.get(channel) == Some(&status) {
            return None;
        }
        self.published.insert(channel.to_owned(), status.clone());
        Some(Event::new(
            format!(
                "{ID_PREFIX}{channel}:status:{}",
                uuid::Uuid::new_v4().simple()
            ),
            PROVIDER,
            channel,
            EventKind::Status(status),
        ))
    }

    /// The state of the known channels as they were before this run, published again at start.
    pub(super) fn restore(&mut self, channels: &[String]) -> Vec<Event> {
        channels
            .iter()
            .filter_map(|channel| self.status_change(channel))
            .collect()
    }

    /// One poll's answer for `channel`: its stream, or `None` when it is not live.
    /// `decides`: whether this poll may publish a transition (see the module docs).
    pub(super) fn poll(&mut self, channel: &str, stream: Option<&Stream>, decides: bool) -> Change {
        let first = self.polled.insert(channel.to_owned());
        let decides = decides || first;
        let mut change = Change::default();
        let Some(known) = self.known.get_mut(channel) else {
            // Seen for the first time ever: the baseline, not a transition.
            self.known.insert(channel.to_owned(), from_stream(stream));
            change.save = true;
            change.events.extend(self.status_change(channel));
            return change;
        };
        let mut transition = Vec::new();
        match stream {
            Some(stream) => {
                let same = known.live
                    && known
                        .started_at
                        .as_deref()
                        .is_none_or(|s| s == stream.started_at);
                if same || (!decides && known.live) {
                    // Details of the stream we know (Get Streams may lag behind EventSub's
                    // start time; the id of the transition keeps the first one).
                    known
                        .started_at
                        .get_or_insert_with(|| stream.started_at.clone());
                    known.title.clone_from(&stream.title);
                    known.category.clone_from(&stream.game_name);
                    known.viewers = stream.viewer_count;
                } else if decides {
                    if known.live {
                        // A new stream began while the old one was not seen ending.
                        transition.push(offline_event(channel, known));
                    }
                    *known = Known {
                        shared_chat: known.shared_chat.take(),
                        ..from_stream(Some(stream))
                    };
                    transition.push(online_event(channel, known));
                    tracing::info!(channel, started_at = %stream.started_at, "monitor: went live (Get Streams)");
                    change.save = true;
                }
            }
            None if known.live && decides => {
                transition.push(offline_event(channel, known));
                known.live = false;
                known.viewers = 0;
                tracing::info!(channel, "monitor: went offline (Get Streams)");
                change.save = true;
            }
            None => {}
        }
        change.events.extend(self.status_change(channel));
        change.events.extend(transition);
        change
    }

    /// An `online` / `offline` someone else published (EventSub through the Twitch
    /// provider) for a monitored channel: adopted, so polling does not report the same
    /// transition again.
    pub(super) fn adopt(&mut self, event: &Event) -> Change {
        let mut change = Change::default();
        let known = self.known.entry(event.channel.clone()).or_default();
        match &event.kind {
            EventKind::Online(online) => {
                let started_at = online
                    .started_at
                    .clone()
                    .unwrap_or_else(|| format_time(&event.time));
                if known.live && known.started_at.as_deref() == Some(started_at.as_str()) {
                    return change;
                }
                known.live = true;
                known.started_at = Some(started_at);
                if let Some(title) = &online.title {
                    known.title.clone_from(title);
                }
                if let Some(category) = &online.category {
                    known.category.clone_from(category);
                }
            }
            EventKind::Offline(_) if known.live => {
                known.live = false;
                known.viewers = 0;
            }
            EventKind::SharedChat(shared) => {
                let session = match shared.phase {
                    SessionPhase::Begin | SessionPhase::Update => Some(SharedChatSession {
                        session_id: shared.session_id.clone(),
                        participants: shared.participants.clone(),
                    }),
                    SessionPhase::End => None,
                };
                if known.shared_chat == session {
                    return change;
                }
                known.shared_chat = session;
            }
            _ => return change,
        }
        tracing::info!(channel = %event.channel, id = %event.id, "monitor: {} per {}", event.kind.kind().type_name(), event.provider);
        change.save = true;
        change.events.extend(self.status_change(&event.channel));
        change
    }
}

pub(super) fn from_stream(stream: Option<&Stream>) -> Known {
    match stream {
        Some(stream) => Known {
            live: true,
            started_at: Some(stream.started_at.clone()),
            title: stream.title.clone(),
            category: stream.game_name.clone(),
            viewers: stream.viewer_count,
            shared_chat: None,
        },
        None => Known::default(),
    }
}

pub(super) fn load(path: &Path) -> Saved {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "monitor: channel states unreadable; every channel starts from its next poll");
            Saved::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "monitor: channel states unreadable; every channel starts from its next poll");
            Saved::default()
        }
    }
}
