//! The append-only event log: one `{"seq","topic","event"}` JSON object per line.
//!
//! The log is the daemon's memory across restarts: `seq` continues from its last line and the
//! ids of its recent lines seed the dedup window (as many as the window holds at most,
//! [`DEDUP_MAX_IDS`], read back from the end). A crash can leave a torn last line (no newline,
//! or cut JSON); opening detects it, logs it once and truncates it away so appends start on a
//! clean line. Its output queue uses the `block` policy: the log never drops.
//!
//! Two markers may follow `event`, for what the MQTT bridge must know to publish a line again
//! after a crash ([`unacked_after`]): `"origin":"mqtt"` on what came from the broker (never
//! published back), `"retain":true` on retained state. Readers that serve lines as frames strip
//! them ([`frame`]), so `/ws/events` and `/api/events` see `{"seq","topic","event"}`.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{BoundedQueue, DEDUP_MAX_IDS, Delivery, Message, Origin, Record};

/// How much of the log is read at a time at start-up, from the end backwards.
const TAIL_BYTES: u64 = 8 * 1024 * 1024;
/// Recovery stops after this many lines in a row older than the dedup window allows: one
/// provider's clock may lag (a tip stamped with its creation time), a run of them is the past.
const OLD_RUN: usize = 1000;
/// Records written in one batch before flushing.
const BATCH: usize = 1024;

/// What opening the log learned from its tail.
#[derive(Debug, Default, PartialEq)]
pub struct Recovered {
    pub last_seq: u64,
    /// Event ids of the lines read, oldest first.
    pub recent_ids: Vec<String>,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes: u64,
}

#[derive(Deserialize)]
struct LineHead {
    seq: u64,
    #[serde(default)]
    event: Option<EventHead>,
}

#[derive(Deserialize)]
struct EventHead {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    time: Option<String>,
}

pub struct EventLog {
    path: PathBuf,
    file: File,
}

impl EventLog {
    /// Opens (creating) the log for appending and recovers its tail: the last `seq` and the
    /// ids the dedup window (`dedup_window` long) would still hold.
    pub fn open(path: &Path, dedup_window: Duration) -> io::Result<(Self, Recovered)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        let recovered = recover(&mut file, TAIL_BYTES, DEDUP_MAX_IDS, dedup_window)?;
        if recovered.torn_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                bytes = recovered.torn_bytes,
                "event log ended in a torn line (crash while writing); it was cut off"
            );
        }
        file.seek(SeekFrom::End(0))?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
            },
            recovered,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes everything the hub hands over until the queue is closed, then fsyncs.
    pub async fn run(self, queue: Arc<BoundedQueue<Delivery>>) -> io::Result<()> {
        let path = self.path.clone();
        let mut writer = BufWriter::with_capacity(256 * 1024, self.file);
        let mut batch = Vec::with_capacity(BATCH);
        while let Some(first) = queue.pop().await {
            batch.push(first);
            queue.drain_up_to(BATCH - 1, &mut batch);
            // Writes go to the page cache; a kill -9 cannot lose them once write returns. Only
            // then are they marked delivered, which is when the hub hands them to the other
            // outputs (it is the write-ahead output): nothing is published before it is here.
            let written = tokio::task::block_in_place(|| -> io::Result<()> {
                for record in &batch {
                    write_line(&mut writer, record)?;
                }
                writer.flush()
            });
            if let Err(e) = written {
                tracing::error!(path = %path.display(), error = %e, "cannot write the event log");
                // The hub holds records back until the log has them: tell it to stop waiting.
                queue.abandon();
                return Err(e);
            }
            queue.mark_delivered(batch.len() as u64);
            batch.clear();
        }
        writer.flush()?;
        writer.get_ref().sync_all()
    }
}

/// Ends a line that came from the MQTT broker.
const FROM_MQTT: &str = ",\"origin\":\"mqtt\"}";
/// Ends a line of retained state.
const RETAINED: &str = ",\"retain\":true}";

fn write_line(out: &mut impl Write, record: &Delivery) -> io::Result<()> {
    let message = &record.message;
    out.write_all(b"{\"seq\":")?;
    out.write_all(record.seq.to_string().as_bytes())?;
    out.write_all(b",\"topic\":")?;
    serde_json::to_writer(&mut *out, &message.topic)?;
    out.write_all(b",\"event\":")?;
    out.write_all(&message.payload)?;
    let end = if message.origin == Origin::Mqtt {
        FROM_MQTT
    } else if message.retain {
        RETAINED
    } else {
        "}"
    };
    out.write_all(end.as_bytes())?;
    out.write_all(b"\n")
}

/// A log line as a `{"seq","topic","event"}` frame: without the markers for the MQTT bridge.
pub fn frame(line: &str) -> std::borrow::Cow<'_, str> {
    match line
        .strip_suffix(FROM_MQTT)
        .or_else(|| line.strip_suffix(RETAINED))
    {
        Some(head) => format!("{head}}}").into(),
        None => line.into(),
    }
}

#[derive(Deserialize)]
struct FullLine {
    seq: u64,
    topic: String,
    event: serde_json::Value,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    retain: bool,
}

/// The lines after `after` that the MQTT bridge publishes (all but what came from the broker),
/// oldest first, as the records they were: the same `seq`, topic, payload and retain flag.
/// At most the newest `max`; read from the end, so a long log costs only its tail.
pub fn unacked_after(path: &Path, after: u64, max: usize) -> io::Result<Vec<Delivery>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let end = file.metadata()?.len();
    let mut found = Vec::new();
    lines_backwards(&mut file, end, TAIL_BYTES, |line| {
        let Ok(line) = serde_json::from_slice::<FullLine>(line) else {
            // A torn or garbage line numbers nothing.
            return true;
        };
        if line.seq <= after {
            return false;
        }
        if line.origin.as_deref() != Some("mqtt") {
            let payload = serde_json::to_vec(&line.event).unwrap_or_default();
            let message = Message::from_bytes(line.topic, &payload, line.retain, Origin::Daemon);
            found.push(Arc::new(Record::new(line.seq, message)));
        }
        found.len() < max
    })?;
    found.reverse();
    Ok(found)
}

/// Calls `visit` with every non-empty line before byte `end`, newest first, reading `chunk`
/// bytes at a time, until it returns false or the file's start.
fn lines_backwards(
    file: &mut File,
    mut end: u64,
    chunk: u64,
    mut visit: impl FnMut(&[u8]) -> bool,
) -> io::Result<()> {
    // A line cut at the start of the last piece read: its beginning is in the piece before.
    let mut carry: Vec<u8> = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(chunk);
        let mut piece = vec![0; (end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut piece)?;
        piece.extend_from_slice(&carry);
        let mut lines: Vec<&[u8]> = piece.split(|&b| b == b'\n').collect();
        carry = if start > 0 {
            lines.remove(0).to_vec()
        } else {
            Vec::new()
        };
        for line in lines.iter().rev().filter(|l| !l.is_empty()) {
            if !visit(line) {
                return Ok(());
            }
        }
        end = start;
    }
    Ok(())
}

/// Cuts a torn last line, then reads the log backwards in `chunk`-sized pieces for the last
/// `seq` and the ids of the newest lines, until it has `max_ids` of them, reaches events older
/// than the window, or reaches the start. A fixed-size tail was not enough: a burst can write
/// more than any tail holds within the dedup window, and a redelivery of an id older than the
/// tail was published again after a restart. The age limit keeps start-up quick on a long log:
/// a running daemon forgets those ids too. Event times come from upstream clocks, so the limit
/// is twice the window, measured from the newest line, and only a run of [`OLD_RUN`] older
/// lines ends the scan.
fn recover(file: &mut File, chunk: u64, max_ids: usize, window: Duration) -> io::Result<Recovered> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(Recovered::default());
    }
    let start = len.saturating_sub(chunk);
    file.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut tail)?;

    let mut recovered = Recovered::default();
    // Everything after the last newline is a torn write.
    let complete = match tail.iter().rposition(|&b| b == b'\n') {
        Some(pos) => pos + 1,
        None if start == 0 => 0,
        None => tail.len(),
    };
    let mut cut_at = start + complete as u64;
    let mut lines: Vec<&[u8]> = tail[..complete].split(|&b| b == b'\n').collect();
    if start > 0 && !lines.is_empty() {
        // The chunk began mid-line.
        lines.remove(0);
    }
    // A last line with its newline but cut JSON can only come from a torn write too.
    if let Some(last) = lines.iter().rev().find(|l| !l.is_empty())
        && serde_json::from_slice::<LineHead>(last).is_err()
    {
        cut_at -= last.len() as u64 + 1;
    }
    if cut_at < len {
        recovered.torn_bytes = len - cut_at;
        file.set_len(cut_at)?;
    }

    // Newest first.
    let mut ids = Vec::new();
    let age_limit =
        chrono::TimeDelta::from_std(window.saturating_mul(2)).unwrap_or(chrono::TimeDelta::MAX);
    let mut oldest_wanted: Option<chrono::DateTime<chrono::FixedOffset>> = None;
    let mut old_run = 0;
    lines_backwards(file, cut_at, chunk, |line| {
        // Garbage lines are skipped; they neither number nor dedup anything.
        let Ok(head) = serde_json::from_slice::<LineHead>(line) else {
            return true;
        };
        recovered.last_seq = recovered.last_seq.max(head.seq);
        let Some(event) = head.event else {
            return true;
        };
        if let Some(time) = event
            .time
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        {
            let limit = *oldest_wanted.get_or_insert_with(|| time - age_limit);
            if time >= limit {
                old_run = 0;
            } else {
                old_run += 1;
                if old_run > OLD_RUN {
                    return false;
                }
            }
        }
        if let Some(id) = event.id {
            ids.push(id);
        }
        ids.len() < max_ids
    })?;
    ids.reverse();
    recovered.recent_ids = ids;
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(600);
    use crate::hub::{Message, Origin, OverflowPolicy, Record};

    fn record(seq: u64, id: &str) -> Delivery {
        Arc::new(Record::new(
            seq,
            Message::from_bytes(
                "stream/support/cheers".into(),
                format!(r#"{{"id":"{id}","amount":1}}"#).as_bytes(),
                false,
                Origin::Daemon,
            ),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn appends_and_recovers_seq_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let (log, recovered) = EventLog::open(&path, WINDOW).unwrap();
        assert_eq!(recovered, Recovered::default());
        let queue = Arc::new(BoundedQueue::new(8, OverflowPolicy::Block));
        queue.push(record(1, "a")).await;
        queue.push(record(2, "b")).await;
        queue.close();
        log.run(queue).await.unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"seq":1,"topic":"stream/support/cheers","event":{"id":"a","amount":1}}"#
        );
        let (_, recovered) = EventLog::open(&path, WINDOW).unwrap();
        assert_eq!(recovered.last_seq, 2);
        assert_eq!(recovered.recent_ids, vec!["a", "b"]);
    }

    fn line(seq: u64, id: &str) -> String {
        format!("{{\"seq\":{seq},\"topic\":\"t\",\"event\":{{\"id\":\"{id}\"}}}}\n")
    }

    /// Regression (tests/crash.rs): only the last 8 MiB were read at start, so after a burst an
    /// id still inside the dedup window was forgotten by a restart and its redelivery was
    /// published again.
    #[test]
    fn ids_older_than_the_first_chunk_still_seed_the_dedup_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut text = line(1, "old");
        let filler = "x".repeat(1000);
        let mut seq = 1;
        while text.len() as u64 <= TAIL_BYTES + 4096 {
            seq += 1;
            text.push_str(&format!(
                "{{\"seq\":{seq},\"topic\":\"t\",\"event\":{{\"id\":\"f{seq}\",\"pad\":\"{filler}\"}}}}\n"
            ));
        }
        std::fs::write(&path, &text).unwrap();
        let (_, recovered) = EventLog::open(&path, WINDOW).unwrap();
        assert_eq!(recovered.last_seq, seq);
        assert_eq!(
            recovered.recent_ids.first().map(String::as_str),
            Some("old")
        );
        assert_eq!(recovered.recent_ids.len() as u64, seq);
    }

    #[test]
    fn ids_are_read_back_across_pieces_up_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut text = String::new();
        for seq in 1..=50 {
            text.push_str(&line(seq, &format!("id{seq}")));
            if seq == 20 {
                text.push_str("garbage in the middle\n");
            }
        }
        std::fs::write(&path, format!("{text}{{\"seq\":51,\"to")).unwrap();
        for chunk in [7, 64, 1000, TAIL_BYTES] {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap();
            let all = recover(&mut file, chunk, 1000, WINDOW).unwrap();
            assert_eq!(all.last_seq, 50, "chunk {chunk}");
            let wanted: Vec<String> = (1..=50).map(|i| format!("id{i}")).collect();
            assert_eq!(all.recent_ids, wanted, "chunk {chunk}");
            let bounded = recover(&mut file, chunk, 30, WINDOW).unwrap();
            assert_eq!(bounded.last_seq, 50, "chunk {chunk}");
            assert_eq!(bounded.recent_ids, wanted[20..], "chunk {chunk}");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn a_torn_last_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let good = "{\"seq\":7,\"topic\":\"t\",\"event\":{\"id\":\"x\"}}\n";
        for torn in [
            "{\"seq\":8,\"topic\":\"t\",\"ev",
            "{\"seq\":8,\"to\n",
            "garbage\n",
        ] {
            std::fs::write(&path, format!("{good}{torn}")).unwrap();
            let (_, recovered) = EventLog::open(&path, WINDOW).unwrap();
            assert_eq!(recovered.last_seq, 7, "{torn:?}");
            assert_eq!(recovered.torn_bytes, torn.len() as u64, "{torn:?}");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), good);
        }
    }

    /// A running daemon forgets ids after the window: recovery stops after a run of events
    /// older than twice the window (from the newest line), however many lines lie before them.
    #[test]
    fn recovery_stops_at_events_older_than_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let timed = |seq: u64, id: &str, time: &str| {
            format!(
                "{{\"seq\":{seq},\"topic\":\"t\",\"event\":{{\"id\":\"{id}\",\"time\":\"{time}\"}}}}\n"
            )
        };
        let mut text = String::new();
        let mut seq = 0;
        for i in 0..=OLD_RUN {
            seq += 1;
            text += &timed(seq, &format!("hours-ago-{i}"), "2026-11-23T17:00:00.000Z");
        }
        for (id, time) in [
            ("recent", "2026-11-23T19:45:00.000Z"),
            ("lagging-clock", "2026-11-20T12:00:00.000Z"),
            ("newest", "2026-11-23T20:00:00.000Z"),
        ] {
            seq += 1;
            text += &timed(seq, id, time);
        }
        seq += 1;
        text += &line(seq, "untimed");
        std::fs::write(&path, text).unwrap();
        let (_, recovered) = EventLog::open(&path, WINDOW).unwrap();
        assert_eq!(recovered.last_seq, seq);
        // A lone line with a lagging clock is still remembered; the run of old ones ends it.
        let ids = &recovered.recent_ids;
        assert_eq!(
            ids[ids.len() - 4..],
            ["recent", "lagging-clock", "newest", "untimed"]
        );
        assert_eq!(ids.len(), 4 + OLD_RUN, "{} ids", ids.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn unacknowledged_records_are_read_back_as_they_were_published() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let (log, _) = EventLog::open(&path, WINDOW).unwrap();
        let queue = Arc::new(BoundedQueue::new(8, OverflowPolicy::Block));
        let state = Message::from_bytes(
            "stream/system/providers/twitch".into(),
            br#"{"id":"s","state":"connected"}"#,
            true,
            Origin::Daemon,
        );
        let from_bot = Message::from_bytes(
            "stream/command/trigger".into(),
            br#"{"id":"bot"}"#,
            false,
            Origin::Mqtt,
        );
        let text = Message::from_bytes("stream/lights".into(), b"ON", false, Origin::Api);
        queue.push(record(1, "a")).await;
        for (seq, message) in [(2, state), (3, from_bot), (4, text)] {
            queue.push(Arc::new(Record::new(seq, message))).await;
        }
        queue.push(record(5, "b")).await;
        queue.close();
        log.run(queue).await.unwrap();

        let lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            lines[1],
            r#"{"seq":2,"topic":"stream/system/providers/twitch","event":{"id":"s","state":"connected"},"retain":true}"#
        );
        assert_eq!(
            lines[2],
            r#"{"seq":3,"topic":"stream/command/trigger","event":{"id":"bot"},"origin":"mqtt"}"#
        );
        // As frames, the markers are gone.
        assert_eq!(
            frame(&lines[1]),
            r#"{"seq":2,"topic":"stream/system/providers/twitch","event":{"id":"s","state":"connected"}}"#
        );
        assert_eq!(
            frame(&lines[2]),
            r#"{"seq":3,"topic":"stream/command/trigger","event":{"id":"bot"}}"#
        );
        assert_eq!(frame(&lines[0]), lines[0]);

        let again = unacked_after(&path, 1, 100).unwrap();
        let seqs: Vec<u64> = again.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [2, 4, 5], "what came from MQTT is not published back");
        assert!(again[0].message.retain);
        assert_eq!(again[0].message.id.as_deref(), Some("s"));
        assert_eq!(
            &again[0].message.payload[..],
            br#"{"id":"s","state":"connected"}"#
        );
        assert_eq!(&again[1].message.payload[..], br#""ON""#);
        assert!(!again[2].message.retain);
        let newest: Vec<u64> = unacked_after(&path, 0, 2)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(newest, [4, 5]);
        assert!(unacked_after(&path, 5, 100).unwrap().is_empty());
        assert!(
            unacked_after(&dir.path().join("none.jsonl"), 0, 100)
                .unwrap()
                .is_empty()
        );
    }
}
