//! `/api/*` and `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::ws::{PublishError, parse_filters};
use super::{Web, history};
use crate::event::{ConnectionState, format_time, now};
use crate::hub::{Message, Origin};
use crate::sources::trigger::{self, TriggerRequest};

/// `/api/events` returns at most this many events per call; page on with `since`.
const MAX_LIMIT: usize = 10_000;
const DEFAULT_LIMIT: usize = 100;

/// Every error answer: `{"error": "..."}` with a status code.
pub fn error_response(status: StatusCode, error: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": error.to_string() }))).into_response()
}

/// A JSON request body whose rejections (bad JSON, wrong field types, no JSON content type, too
/// large) answer like every other API error, instead of axum's plain text.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(error_response(rejection.status(), rejection.body_text())),
        }
    }
}

/// Every MQTT client seen on the embedded broker, as on `R/system/bots/<id>`, plus refusals.
/// An external broker's clients are not ours to see: the list is empty there.
pub async fn bots(State(web): State<Arc<Web>>) -> Response {
    let bots = web
        .mqtt
        .authority
        .as_ref()
        .map(|authority| authority.bots())
        .unwrap_or_default();
    Json(serde_json::json!({ "bots": bots })).into_response()
}

pub async fn status(State(web): State<Arc<Web>>) -> Response {
    let view = web.fanout.view();
    let (clients, waiting) = web.fanout.client_stats();
    let outputs: BTreeMap<_, _> = web
        .outputs
        .iter()
        .map(|(name, queue)| (name.clone(), queue.stats()))
        .collect();
    let outputs = crate::sinks::status_json(outputs, &web.sinks);
    let hub = &web.hub;
    let mqtt = &web.mqtt;
    let bridge = mqtt.bridge.as_ref().map(|b| {
        let connects = b.connects.load(Ordering::Relaxed);
        json!({
            "connected": b.connected.load(Ordering::Relaxed),
            "connects": connects,
            "reconnects": connects.saturating_sub(1),
            "received": b.received.load(Ordering::Relaxed),
        })
    });
    Json(json!({
        "version": crate::VERSION,
        "started_at": format_time(&web.started),
        "uptime_seconds": (now() - web.started).num_seconds(),
        "topic_root": web.root.template(),
        "default_channel": web.default_channel,
        "providers": view.providers,
        "hype": view.hype,
        "totals": view.totals,
        "hub": {
            "received": hub.received.load(Ordering::Relaxed),
            "accepted": hub.accepted.load(Ordering::Relaxed),
            "duplicates": hub.duplicates.load(Ordering::Relaxed),
            "cross_source_duplicates": hub.cross_source.load(Ordering::Relaxed),
        },
        "outputs": outputs,
        "mqtt": {
            "mode": mqtt.mode,
            "listen": mqtt.tcp,
            "ws_listen": mqtt.ws,
            "ws_path": "/mqtt",
            "url": mqtt.url,
            "bridge": bridge,
        },
        "websocket": {
            "clients": clients,
            "waiting": waiting,
            "client_queue": web.fanout.client_queue(),
            "cut_off": web.fanout.cut_off.load(Ordering::Relaxed),
            "frames_sent": web.fanout.frames_sent.load(Ordering::Relaxed),
        },
        "trigger_kinds": trigger::KINDS,
        "accounts": web.logins.accounts(),
        "tasks": web.tasks.reports(),
    }))
    .into_response()
}

#[derive(Deserialize)]
pub struct EventsQuery {
    topic: Option<String>,
    since: Option<u64>,
    limit: Option<usize>,
}

pub async fn events(State(web): State<Arc<Web>>, Query(query): Query<EventsQuery>) -> Response {
    let filters = match query.topic.as_deref() {
        None => vec!["#".to_owned()],
        Some(list) => match parse_filters(list) {
            Ok(filters) if !filters.is_empty() => filters,
            Ok(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "topic: give an MQTT filter, e.g. stream/support/#",
                );
            }
            Err(e) => return error_response(StatusCode::BAD_REQUEST, format!("topic: {e}")),
        },
    };
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let path = web.log_path.clone();
    let since = query.since;
    let database = web.history.clone();
    let read = tokio::task::spawn_blocking(move || match (database, since) {
        (Some(database), since) => database
            .read(since, &filters, limit)
            .map(|lines| {
                lines
                    .into_iter()
                    .map(|(seq, text)| history::Line { seq, text })
                    .collect()
            })
            .map_err(std::io::Error::other),
        (None, Some(since)) => history::after(&path, since, &filters, limit),
        (None, None) => history::latest(&path, &filters, limit),
    })
    .await;
    let lines = match read {
        Ok(Ok(lines)) => lines,
        Ok(Err(e)) => {
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the event log: {e}"),
            );
        }
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    // Log lines are JSON already; splice them in rather than parse and re-serialize.
    let next_since = lines.last().map(|l| l.seq).or(since).unwrap_or(0);
    let mut body =
        String::with_capacity(lines.iter().map(|l| l.text.len() + 1).sum::<usize>() + 64);
    body.push_str("{\"events\":[");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&line.text);
    }
    let _ = write!(body, "],\"next_since\":{next_since}}}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    topic: String,
    payload: serde_json::Value,
    #[serde(default)]
    retain: bool,
}

pub async fn publish(
    State(web): State<Arc<Web>>,
    JsonBody(body): JsonBody<PublishBody>,
) -> Response {
    let topic = body.topic.clone();
    match web.publish(body.topic, &body.payload, body.retain).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "published": topic }))).into_response(),
        Err(e @ PublishError::ShuttingDown) => error_response(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e @ PublishError::Ongwatch(_)) => error_response(StatusCode::FORBIDDEN, e),
        Err(e) => error_response(StatusCode::BAD_REQUEST, e),
    }
}

/// The same path as `ongwatch trigger`: the request goes on `R/command/trigger`, where the
/// command processor normalizes it like any other trigger, whoever sent it.
pub async fn trigger(
    State(web): State<Arc<Web>>,
    JsonBody(mut request): JsonBody<TriggerRequest>,
) -> Response {
    if let Err(e) = trigger::validate(&request) {
        return error_response(StatusCode::BAD_REQUEST, e);
    }
    let id = request
        .id
        .get_or_insert_with(|| uuid::Uuid::new_v4().to_string())
        .clone();
    let channel = request
        .channel
        .clone()
        .unwrap_or_else(|| web.default_channel.clone());
    let topic = web.root.topic(&channel, "command/trigger");
    let payload = Bytes::from(serde_json::to_vec(&request).unwrap_or_default());
    let message = Message::from_bytes(topic.clone(), &payload, false, Origin::Api);
    match web.publisher.message(message).await {
        Ok(()) => (
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "topic": topic })),
        )
            .into_response(),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Prometheus text format, version 0.0.4.
pub async fn metrics(State(web): State<Arc<Web>>) -> Response {
    let mut out = String::with_capacity(4096);
    let mut lines = Vec::new();

    let n = family_line(
        &mut out,
        "ongwatch_build_info",
        "gauge",
        "Version of the running daemon.",
    );
    lines.push(format!("{n}{{version=\"{}\"}} 1", crate::VERSION));
    flush(&mut out, &mut lines);
    let n = family_line(
        &mut out,
        "ongwatch_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    lines.push(format!("{n} {}", (now() - web.started).num_seconds()));
    flush(&mut out, &mut lines);

    let hub = &web.hub;
    for (name, help, value) in [
        (
            "ongwatch_hub_received_total",
            "Messages offered to the hub.",
            &hub.received,
        ),
        (
            "ongwatch_hub_accepted_total",
            "Messages the hub numbered and passed on.",
            &hub.accepted,
        ),
        (
            "ongwatch_dedup_dropped_total",
            "Events dropped as repeats of an id already seen.",
            &hub.duplicates,
        ),
        (
            "ongwatch_dedup_cross_source_dropped_total",
            "Reports dropped as the same Twitch event seen from another provider.",
            &hub.cross_source,
        ),
    ] {
        let n = family_line(&mut out, name, "counter", help);
        lines.push(format!("{n} {}", value.load(Ordering::Relaxed)));
        flush(&mut out, &mut lines);
    }

    let n = family_line(
        &mut out,
        "ongwatch_events_in_total",
        "counter",
        "Messages on the bus by topic family (two levels under the root) and provider.",
    );
    for ((topic_family, provider), count) in web.fanout.event_counts() {
        lines.push(format!(
            "{n}{{family=\"{}\",provider=\"{}\"}} {count}",
            label(&topic_family),
            label(&provider)
        ));
    }
    flush(&mut out, &mut lines);

    let stats: Vec<_> = web
        .outputs
        .iter()
        .map(|(name, q)| {
            let stats = crate::sinks::queue_stats(name, &web.sinks).unwrap_or_else(|| q.stats());
            (label(name), stats)
        })
        .collect();
    for (name, help, pick) in [
        (
            "ongwatch_events_out_total",
            "Messages each output handed on.",
            (|s: &crate::hub::QueueStats| s.delivered as f64) as fn(&crate::hub::QueueStats) -> f64,
        ),
        (
            "ongwatch_output_dropped_total",
            "Messages an output's full queue dropped.",
            |s| s.dropped as f64,
        ),
        (
            "ongwatch_output_queue_depth",
            "Messages waiting in an output's queue.",
            |s| s.depth as f64,
        ),
        (
            "ongwatch_output_queue_capacity",
            "Capacity of an output's queue.",
            |s| s.capacity as f64,
        ),
    ] {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let n = family_line(&mut out, name, kind, help);
        for (output, s) in &stats {
            lines.push(format!("{n}{{output=\"{output}\"}} {}", pick(s)));
        }
        flush(&mut out, &mut lines);
    }

    crate::sinks::write_metrics(&mut out, &web.sinks, label);

    let (clients, waiting) = web.fanout.client_stats();
    for (name, kind, help, value) in [
        (
            "ongwatch_websocket_clients",
            "gauge",
            "Connected /ws/events clients.",
            clients as u64,
        ),
        (
            "ongwatch_websocket_waiting",
            "gauge",
            "Frames waiting in the /ws/events clients' queues.",
            waiting as u64,
        ),
        (
            "ongwatch_websocket_cut_off_total",
            "counter",
            "/ws/events clients closed for not keeping up.",
            web.fanout.cut_off.load(Ordering::Relaxed),
        ),
        (
            "ongwatch_websocket_frames_sent_total",
            "counter",
            "Frames sent to /ws/events clients.",
            web.fanout.frames_sent.load(Ordering::Relaxed),
        ),
    ] {
        let n = family_line(&mut out, name, kind, help);
        lines.push(format!("{n} {value}"));
        flush(&mut out, &mut lines);
    }

    if let Some(bridge) = &web.mqtt.bridge {
        let connects = bridge.connects.load(Ordering::Relaxed);
        for (name, kind, help, value) in [
            (
                "ongwatch_mqtt_connected",
                "gauge",
                "1 while the MQTT bridge is connected.",
                u64::from(bridge.connected.load(Ordering::Relaxed)),
            ),
            (
                "ongwatch_mqtt_reconnects_total",
                "counter",
                "Reconnections of the MQTT bridge after its first connection.",
                connects.saturating_sub(1),
            ),
            (
                "ongwatch_mqtt_received_total",
                "counter",
                "Messages the bridge received from the broker.",
                bridge.received.load(Ordering::Relaxed),
            ),
        ] {
            let n = family_line(&mut out, name, kind, help);
            lines.push(format!("{n} {value}"));
            flush(&mut out, &mut lines);
        }
    }

    if let Some(authority) = &web.mqtt.authority {
        let bots = authority.bots();
        for (name, kind, help, pick) in [
            (
                "ongwatch_bot_online",
                "gauge",
                "1 while the MQTT client is connected to the embedded broker.",
                (|b: &crate::mqtt::authority::BotInfo| u64::from(b.presence.state == "online"))
                    as fn(&crate::mqtt::authority::BotInfo) -> u64,
            ),
            (
                "ongwatch_bot_published_total",
                "counter",
                "Publishes of the MQTT client that the broker let through.",
                |b| b.presence.published,
            ),
            (
                "ongwatch_bot_refused_total",
                "counter",
                "Publishes of the MQTT client refused by topic authority.",
                |b| b.presence.refused,
            ),
        ] {
            let n = family_line(&mut out, name, kind, help);
            for bot in &bots {
                lines.push(format!(
                    "{n}{{client_id=\"{}\"}} {}",
                    label(&bot.client_id),
                    pick(bot)
                ));
            }
            flush(&mut out, &mut lines);
        }
    }

    let n = family_line(
        &mut out,
        "ongwatch_provider_state",
        "gauge",
        "1 for the state each provider last reported on R/system/providers.",
    );
    let states = [
        ConnectionState::Connecting,
        ConnectionState::Connected,
        ConnectionState::Unauthorized,
        ConnectionState::Error,
        ConnectionState::Disabled,
    ];
    for (provider, state) in web.fanout.view().providers {
        let current = state
            .get("state")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_owned();
        for candidate in states {
            let name = serde_json::to_value(candidate)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            lines.push(format!(
                "{n}{{provider=\"{}\",state=\"{name}\"}} {}",
                label(&provider),
                u8::from(current == name)
            ));
        }
    }
    flush(&mut out, &mut lines);

    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

fn family_line(out: &mut String, name: &str, kind: &str, help: &str) -> String {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    name.to_owned()
}

fn flush(out: &mut String, lines: &mut Vec<String>) {
    for line in lines.drain(..) {
        out.push_str(&line);
        out.push('\n');
    }
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
