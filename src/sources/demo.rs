//! `ongwatch run --demo`: a simulated channel so a newcomer sees the whole flow without an
//! account. Every event is a trigger request run through the real normalizers, so demo events
//! look exactly like real ones (flagged `test`). A stream session opens with `online`, carries
//! a realistic mix of support, community and chat, runs one hype train, and closes with
//! `offline` before the next session begins.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngExt;
use rand::seq::IndexedRandom;
use tokio_util::sync::CancellationToken;

use serde::Deserialize;

use super::trigger::{self, TriggerRequest};
use crate::hub::Publisher;
use crate::section::Section;

const VIEWERS: &[&str] = &[
    "alinsa_vix",
    "loopstation_larry",
    "kappa_fan",
    "bassline_betty",
    "midi_mike",
    "drumroll_dana",
    "synthwave_sam",
    "cool_user",
];

const CHAT: &[&str] = &[
    "that drop though",
    "what pedal is that?",
    "PogChamp PogChamp",
    "bpm check: 128?",
    "loop it again!",
    "hi from Berlin",
];

/// Events in one simulated stream session, between `online` and `offline`.
const SESSION_LENGTH: u64 = 60;

fn request(kind: &str) -> TriggerRequest {
    TriggerRequest {
        kind: kind.into(),
        ..TriggerRequest::default()
    }
}

/// The `n`th event of a session: scripted landmarks, otherwise a weighted random kind.
fn next_request(n: u64, rng: &mut impl rand::Rng) -> TriggerRequest {
    let user = VIEWERS.choose(rng).map(|u| (*u).to_owned());
    let with_phase = |kind: &str, phase: &str| TriggerRequest {
        fields: BTreeMap::from([("phase".to_owned(), phase.to_owned())]),
        ..request(kind)
    };
    match n {
        0 => request("online"),
        20 => with_phase("hypetrain", "begin"),
        21..=23 => TriggerRequest {
            amount: Some(((n - 19) * 150) as f64),
            ..with_phase("hypetrain", "progress")
        },
        24 => TriggerRequest {
            amount: Some(900.0),
            ..with_phase("hypetrain", "end")
        },
        n if n == SESSION_LENGTH - 1 => request("offline"),
        _ => {
            let roll = rng.random_range(0..100);
            let (kind, amount, message): (&str, Option<f64>, Option<String>) = match roll {
                0..=34 => ("chat", None, CHAT.choose(rng).map(|m| (*m).to_owned())),
                35..=49 => {
                    let bits = [100.0, 250.0, 500.0, 1000.0, 2490.0][rng.random_range(0..5)];
                    ("cheer", Some(bits), Some(format!("Cheer{bits} loop it!")))
                }
                50..=59 => (
                    "tip",
                    Some([2.0, 5.0, 10.0, 20.0][rng.random_range(0..4)]),
                    Some("for the loop pedal fund".to_owned()),
                ),
                60..=69 => ("sub", None, None),
                70..=74 => (
                    "resub",
                    Some(rng.random_range(2..40) as f64),
                    Some("still here!".to_owned()),
                ),
                75..=79 => ("gift", Some([1.0, 5.0, 10.0][rng.random_range(0..3)]), None),
                80..=89 => ("follow", None, None),
                90..=93 => ("raid", Some(rng.random_range(5..300) as f64), None),
                _ => (
                    "redemption",
                    Some(100.0),
                    Some("play the one with the cowbell".to_owned()),
                ),
            };
            TriggerRequest {
                user,
                amount,
                message,
                ..request(kind)
            }
        }
    }
}

/// Emits until `stop` fires. The first event goes out at once.
pub async fn run(
    publisher: Publisher,
    context: trigger::Context,
    rate: f64,
    stop: CancellationToken,
) {
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.cancelled() => return,
        }
        let request = next_request(n % SESSION_LENGTH, &mut rand::rng());
        n += 1;
        match trigger::normalize(&request, &context) {
            Ok(events) => {
                for event in events {
                    if publisher.event(event).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "demo event did not normalize"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_and_closes_and_every_request_is_valid() {
        let mut rng = rand::rng();
        let session: Vec<TriggerRequest> = (0..SESSION_LENGTH)
            .map(|n| next_request(n, &mut rng))
            .collect();
        assert_eq!(session[0].kind, "online");
        assert_eq!(session[SESSION_LENGTH as usize - 1].kind, "offline");
        assert!(session.iter().any(|r| r.kind == "hypetrain"));
        for request in &session {
            trigger::validate(request).unwrap();
        }
    }
}

/// `[demo]`: the demo source's pace and channel (`ongwatch run --demo`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Events per second the demo source emits; the default is human pace.
    pub rate: f64,
    pub channel: String,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            rate: 0.5,
            channel: "ongwatch_demo".into(),
        }
    }
}

impl Section for DemoConfig {
    const KEY: &'static str = "demo";

    fn problems(&self) -> Vec<(String, String)> {
        if self.rate > 0.0 && self.rate <= 100_000.0 {
            return Vec::new();
        }
        vec![(
            "demo.rate".into(),
            format!(
                "{} is out of range; use events per second between 0 (exclusive) and 100000",
                self.rate
            ),
        )]
    }
}
