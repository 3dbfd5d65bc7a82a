//! Which logged events the broker has acknowledged, so a crash loses none of them on MQTT.
//!
//! The bridge publishes at QoS 1; an event counts as delivered once the broker answered its
//! PUBLISH with a PUBACK. The [`Tracker`] follows every publish through rumqttc's event loop to
//! its PUBACK and keeps the **watermark**: the highest `seq` such that every record the bridge
//! was handed up to it has been acknowledged. The watermark is written to [`FILE`] in the state
//! dir when it moved, at most every [`SAVE_EVERY`] or once it moved by [`SAVE_RECORDS`], and at
//! a clean shutdown (a temp file renamed over the old
//! one: a `kill -9` leaves the old or the new one; no fsync, a kill does not lose the page
//! cache). At start the daemon publishes again every logged record after it
//! ([`crate::hub::wal::unacked_after`]), with its id: delivery is at least once across a
//! crash, and subscribers deduplicate by id.
//!
//! rumqttc reports a publish going out as `Outgoing::Publish(pkid)` and its acknowledgement as
//! `Incoming::PubAck(pkid)`, in the order it takes requests from its channel. The bridge puts
//! every publish into that channel from one task and notes it here first
//! ([`Tracker::queued`]), so the n-th new packet id belongs to the n-th noted publish. A packet
//! id already in flight going out again is a retransmission after a reconnect. When the broker
//! comes back without our session, rumqttc forgets what was in flight and what it had drained
//! from its channel; [`Tracker::session_lost`] gives those records back to be published again.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rumqttc::v5::Request;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Publish;
use serde::{Deserialize, Serialize};

use crate::hub::Delivery;

/// The watermark's file in the state dir.
pub const FILE: &str = "mqtt-acked.json";
/// How often at most the watermark is written while it moves: what the broker acknowledged
/// within this time before a crash is published again (tests/crash.rs measures how much).
pub const SAVE_EVERY: Duration = Duration::from_millis(50);
/// ... or sooner, once it moved by this many records (a burst acknowledges thousands a second).
pub const SAVE_RECORDS: u64 = 500;

#[derive(Serialize, Deserialize)]
struct Stored {
    acked_seq: u64,
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

/// One daemon writes per state dir: one temp name, which a kill mid-write may leave behind.
fn tmp_path(state_dir: &Path) -> PathBuf {
    state_dir.join(format!(".{FILE}.tmp"))
}

/// The stored watermark; `None` when there is none (first start) or it does not parse (said once).
pub fn load(state_dir: &Path) -> Option<u64> {
    let _ = std::fs::remove_file(tmp_path(state_dir));
    let path = path(state_dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the MQTT watermark; events logged before this start are not published again");
            return None;
        }
    };
    match serde_json::from_slice::<Stored>(&bytes) {
        Ok(stored) => Some(stored.acked_seq),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the MQTT watermark does not parse; events logged before this start are not published again");
            None
        }
    }
}

/// Removes the stored watermark: with MQTT off nothing is published, and a watermark left from
/// an earlier run would have the next run with MQTT publish everything logged since.
pub fn forget(state_dir: &Path) {
    let _ = std::fs::remove_file(path(state_dir));
}

/// Replaces the stored watermark: a temp file renamed over the old one, private to the owner.
pub fn store(state_dir: &Path, acked_seq: u64) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = path(state_dir);
    let tmp = tmp_path(state_dir);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(&serde_json::to_vec(&Stored { acked_seq }).unwrap_or_default())?;
    drop(file);
    std::fs::rename(&tmp, &path)
}

/// One publish handed to rumqttc: a record, or something else (the online state after a
/// reconnect) that only takes a packet id.
type Tag = Option<Delivery>;

/// PUBACK accounting for the bridge's publishes; see the module docs.
#[derive(Default)]
pub struct Tracker {
    /// Seqs handed to the client and not acknowledged yet.
    outstanding: BTreeSet<u64>,
    /// The highest seq handed to the client (or the watermark the tracker started from).
    handed: u64,
    /// Publishes in the client's channel (or drained from it by a reconnect), oldest first,
    /// that have no packet id yet.
    queued: VecDeque<Tag>,
    /// Publishes sent and awaiting their PUBACK, by packet id.
    inflight: HashMap<u16, Tag>,
    /// A publish whose packet id was still in flight: rumqttc sends it once that one is acked.
    collided: Option<(u16, Tag)>,
    /// New-id publishes rumqttc had drained from its channel at the last connection error.
    drained: usize,
}

impl Tracker {
    /// Starts at `acked_seq`: everything up to it counts as acknowledged.
    pub fn new(acked_seq: u64) -> Self {
        Self {
            handed: acked_seq,
            ..Self::default()
        }
    }

    /// The highest seq up to which every record handed to the client was acknowledged.
    pub fn watermark(&self) -> u64 {
        match self.outstanding.first() {
            Some(first) => first - 1,
            None => self.handed,
        }
    }

    /// Whether every record handed to the client was acknowledged.
    pub fn settled(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// A publish is about to enter the client's channel (called in channel order).
    pub fn queued(&mut self, tag: Tag) {
        if let Some(record) = &tag {
            self.outstanding.insert(record.seq);
            self.handed = self.handed.max(record.seq);
        }
        self.queued.push_back(tag);
    }

    /// The publish noted last did not enter the channel after all.
    pub fn unqueued(&mut self) {
        if let Some(Some(record)) = self.queued.pop_back() {
            self.outstanding.remove(&record.seq);
        }
    }

    /// `Outgoing::Publish(pkid)`: a publish went out with this packet id.
    pub fn sent(&mut self, pkid: u16) {
        if self.inflight.contains_key(&pkid) {
            // Sent again on a resumed session: the same publish.
            return;
        }
        let tag = match self.collided.take_if(|(id, _)| *id == pkid) {
            Some((_, tag)) => tag,
            None => self.queued.pop_front().flatten(),
        };
        self.inflight.insert(pkid, tag);
    }

    /// `Outgoing::AwaitAck(pkid)`: the next publish waits for this packet id to be acked.
    pub fn collision(&mut self, pkid: u16) {
        let tag = self.queued.pop_front().flatten();
        self.collided = Some((pkid, tag));
    }

    /// `Incoming::PubAck(pkid)`: the broker has it (or refused it for good, e.g. not authorized:
    /// sending it again would not help either).
    pub fn acked(&mut self, pkid: u16) {
        if let Some(Some(record)) = self.inflight.remove(&pkid) {
            self.outstanding.remove(&record.seq);
        }
    }

    /// A connection error: `pending` is what rumqttc will send first on the next connection,
    /// publishes that had a packet id (in flight) and publishes it drained from its channel.
    pub fn connection_lost(&mut self, pending: &VecDeque<Request>) {
        self.drained = pending
            .iter()
            .filter(|r| matches!(r, Request::Publish(p) if p.pkid == 0))
            .count();
    }

    /// The broker answered a connect without our session: rumqttc dropped everything in flight
    /// and what it had drained from its channel. Returns the records among them, oldest first,
    /// as publishes to put in front of rumqttc's pending requests; they are noted again as
    /// queued, in front of what is still in the channel.
    pub fn session_lost(&mut self) -> Vec<Publish> {
        let drained = std::mem::take(&mut self.drained).min(self.queued.len());
        let mut lost: Vec<Delivery> = self
            .inflight
            .drain()
            .map(|(_, tag)| tag)
            .chain(self.collided.take().map(|(_, tag)| tag))
            .chain(self.queued.drain(..drained))
            .flatten()
            .collect();
        lost.sort_by_key(|record| record.seq);
        for record in lost.iter().rev() {
            self.queued.push_front(Some(record.clone()));
        }
        lost.iter().map(publish_of).collect()
    }

    /// The broker resumed our session: rumqttc sends what it kept.
    pub fn session_resumed(&mut self) {
        self.drained = 0;
    }
}

/// The MQTT publish of a bus record: QoS 1, retained for state.
pub fn publish_of(record: &Delivery) -> Publish {
    let message = &record.message;
    let mut publish = Publish::new(
        message.topic.as_str(),
        QoS::AtLeastOnce,
        wire_payload(&message.payload),
        None,
    );
    publish.retain = message.retain;
    publish
}

/// What goes on the wire for a bus payload. The bus carries JSON; a JSON string is sent as its
/// plain text, since that is what a text payload such as a light's `ON` means on MQTT (and how
/// a bot's non-JSON publish is carried on the bus in the first place).
pub fn wire_payload(payload: &bytes::Bytes) -> bytes::Bytes {
    if payload.first() == Some(&b'"')
        && let Ok(text) = serde_json::from_slice::<String>(payload)
    {
        return bytes::Bytes::from(text);
    }
    payload.clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Message, Origin, Record};
    use std::sync::Arc;

    fn record(seq: u64) -> Delivery {
        Arc::new(Record::new(
            seq,
            Message::from_bytes(
                "stream/support/cheers".into(),
                format!(r#"{{"id":"e{seq}"}}"#).as_bytes(),
                false,
                Origin::Daemon,
            ),
        ))
    }

    #[test]
    fn the_watermark_stops_below_the_oldest_unacknowledged_record() {
        let mut t = Tracker::new(10);
        assert_eq!(t.watermark(), 10);
        // 12 came from MQTT: never handed to the bridge, it does not hold anything up.
        for seq in [11, 13, 14] {
            t.queued(Some(record(seq)));
        }
        t.queued(None);
        assert_eq!(t.watermark(), 10);
        for pkid in 1..=4 {
            t.sent(pkid);
        }
        // Acknowledged out of order: 13 and the online state first.
        t.acked(2);
        t.acked(4);
        assert_eq!(t.watermark(), 10);
        t.acked(1);
        assert_eq!(t.watermark(), 13);
        assert!(!t.settled());
        t.acked(3);
        assert_eq!(t.watermark(), 14);
        assert!(t.settled());
    }

    #[test]
    fn retransmissions_and_collisions_keep_the_ids_apart() {
        let mut t = Tracker::new(0);
        for seq in 1..=3 {
            t.queued(Some(record(seq)));
        }
        t.sent(1);
        t.sent(2);
        // The broker acked 2 first, the next id wraps to 1 which is still in flight.
        t.acked(2);
        t.collision(1);
        // Reconnect with our session: 1 goes out again, then the collided one after its ack.
        t.sent(1);
        t.acked(1);
        assert_eq!(t.watermark(), 2);
        t.sent(1);
        t.acked(1);
        assert_eq!(t.watermark(), 3);
    }

    #[test]
    fn a_lost_session_gives_back_what_was_in_flight_and_drained() {
        let mut t = Tracker::new(0);
        for seq in 1..=5 {
            t.queued(Some(record(seq)));
        }
        t.sent(1);
        t.sent(2);
        t.acked(1);
        // 2 in flight; 3 and 4 drained from the channel, 5 still in it.
        let mut pending = VecDeque::new();
        let mut in_flight = publish_of(&record(2));
        in_flight.pkid = 2;
        pending.push_back(Request::Publish(in_flight));
        pending.push_back(Request::Publish(publish_of(&record(3))));
        pending.push_back(Request::Publish(publish_of(&record(4))));
        t.connection_lost(&pending);
        let again = t.session_lost();
        let topics: Vec<_> = again.iter().map(|p| p.payload.clone()).collect();
        assert_eq!(
            topics,
            [r#"{"id":"e2"}"#, r#"{"id":"e3"}"#, r#"{"id":"e4"}"#]
        );
        // rumqttc gives them new ids in that order, then takes 5 from the channel.
        for pkid in [3, 4, 5, 6] {
            t.sent(pkid);
        }
        for pkid in [3, 4, 5] {
            t.acked(pkid);
        }
        assert_eq!(t.watermark(), 4);
        t.acked(6);
        assert_eq!(t.watermark(), 5);
    }

    #[test]
    fn json_strings_go_out_as_plain_text() {
        assert_eq!(wire_payload(&bytes::Bytes::from_static(br#""ON""#)), "ON");
        assert_eq!(
            wire_payload(&bytes::Bytes::from_static(br#""a\"b""#)),
            r#"a"b"#
        );
        assert_eq!(
            wire_payload(&bytes::Bytes::from_static(br#"{"level":3}"#)),
            r#"{"level":3}"#
        );
        assert_eq!(wire_payload(&bytes::Bytes::from_static(b"42")), "42");
    }

    #[test]
    fn the_watermark_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()), None);
        store(dir.path(), 42).unwrap();
        assert_eq!(load(dir.path()), Some(42));
        forget(dir.path());
        assert_eq!(load(dir.path()), None);
        std::fs::write(path(dir.path()), "{").unwrap();
        assert_eq!(load(dir.path()), None);
    }
}
