//! Reading the event log for `/api/events` and the `since` replay of `/ws/events`.
//!
//! Log lines are already `{"seq","topic","event"}` — the server frame format — so they are
//! passed on as they are, less the MQTT bridge's markers ([`frame`]). Seqs only grow through the file (also across restarts), which lets a
//! binary search over byte offsets find where a `since` starts without reading everything.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::event::filter_matches;
use crate::hub::wal::frame;

/// Below this many bytes the binary search stops and the rest is read line by line.
const SCAN_WINDOW: u64 = 64 * 1024;
/// First chunk read from the end for "the latest N events"; it grows fourfold as needed.
const TAIL_CHUNK: u64 = 256 * 1024;

#[derive(Deserialize)]
struct Head<'a> {
    seq: u64,
    #[serde(borrow)]
    topic: std::borrow::Cow<'a, str>,
}

/// One log line that parsed, with its seq.
pub struct Line {
    pub seq: u64,
    pub text: String,
}

fn parse(line: &str) -> Option<(u64, String)> {
    let head: Head = serde_json::from_str(line).ok()?;
    Some((head.seq, head.topic.into_owned()))
}

fn matches(filters: &[String], topic: &str) -> bool {
    filters.iter().any(|f| filter_matches(f, topic))
}

fn open(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The first complete line starting after `offset` (at `offset` itself when it is 0):
/// (its start, its seq).
fn line_after(file: &mut File, offset: u64) -> io::Result<Option<(u64, u64)>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut start = offset;
    let mut buf = String::new();
    if offset > 0 {
        let skipped = reader.read_line(&mut buf)?;
        if skipped == 0 || !buf.ends_with('\n') {
            return Ok(None);
        }
        start += skipped as u64;
        buf.clear();
    }
    reader.read_line(&mut buf)?;
    if !buf.ends_with('\n') {
        return Ok(None);
    }
    Ok(parse(buf.trim_end()).map(|(seq, _)| (start, seq)))
}

/// A line start at or before the first line with seq > `since`.
fn seek_since(file: &mut File, since: u64) -> io::Result<u64> {
    let (mut lo, mut hi) = (0, file.metadata()?.len());
    while lo + SCAN_WINDOW < hi {
        let mid = lo + (hi - lo) / 2;
        match line_after(file, mid)? {
            Some((start, seq)) if seq <= since => lo = start,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// Up to `limit` lines with seq > `since` matching `filters`, oldest first.
pub fn after(path: &Path, since: u64, filters: &[String], limit: usize) -> io::Result<Vec<Line>> {
    let Some(mut file) = open(path)? else {
        return Ok(Vec::new());
    };
    let start = seek_since(&mut file, since)?;
    file.seek(SeekFrom::Start(start))?;
    let mut found = Vec::new();
    for line in BufReader::new(file).lines() {
        let text = line?;
        let Some((seq, topic)) = parse(&text) else {
            continue;
        };
        if seq > since && matches(filters, &topic) {
            found.push(Line {
                seq,
                text: frame(&text).into_owned(),
            });
            if found.len() >= limit {
                break;
            }
        }
    }
    Ok(found)
}

/// The last `limit` lines matching `filters`, oldest first.
pub fn latest(path: &Path, filters: &[String], limit: usize) -> io::Result<Vec<Line>> {
    let Some(mut file) = open(path)? else {
        return Ok(Vec::new());
    };
    let len = file.metadata()?.len();
    let mut chunk = TAIL_CHUNK;
    loop {
        let start = len.saturating_sub(chunk);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        (&mut file).take(len - start).read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
        if start > 0 && !lines.is_empty() {
            // The chunk began mid-line.
            lines.remove(0);
        }
        let mut found: Vec<Line> = lines
            .into_iter()
            .filter(|l| l.ends_with('\n'))
            .filter_map(|l| {
                let text = l.trim_end();
                let (seq, topic) = parse(text)?;
                matches(filters, &topic).then(|| Line {
                    seq,
                    text: frame(text).into_owned(),
                })
            })
            .collect();
        if found.len() >= limit || start == 0 {
            let skip = found.len().saturating_sub(limit);
            found.drain(..skip);
            return Ok(found);
        }
        chunk = chunk.saturating_mul(4);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read the event log: {0}")]
    Io(#[from] io::Error),
    #[error("the event log did not reach seq {until} in time (it is at {reached})")]
    Behind { until: u64, reached: u64 },
    #[error("the client went away")]
    ClientGone,
}

/// Sends every line with `since` < seq <= `until` matching `filters` to `send`, in order.
///
/// The live feed may run ahead of the log writer (both are hub outputs), so lines up to
/// `until` that are not written yet are waited for, up to `patience`.
pub fn replay(
    path: &Path,
    since: u64,
    until: u64,
    filters: &[String],
    patience: Duration,
    mut send: impl FnMut(Line) -> bool,
) -> Result<(), ReplayError> {
    if since >= until {
        return Ok(());
    }
    let deadline = Instant::now() + patience;
    let mut reached = 0;
    let mut file = loop {
        if let Some(file) = open(path)? {
            break file;
        }
        if Instant::now() > deadline {
            return Err(ReplayError::Behind { until, reached });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let start = seek_since(&mut file, since)?;
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::new(file);
    let mut pending = String::new();
    loop {
        let read = reader.read_line(&mut pending)?;
        if read == 0 || !pending.ends_with('\n') {
            // At the end of what is written so far; a torn tail is completed by the writer.
            if Instant::now() > deadline {
                return Err(ReplayError::Behind { until, reached });
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let text = pending.trim_end();
        if let Some((seq, topic)) = parse(text) {
            reached = seq;
            if seq > until {
                return Ok(());
            }
            if seq > since
                && matches(filters, &topic)
                && !send(Line {
                    seq,
                    text: frame(text).into_owned(),
                })
            {
                return Err(ReplayError::ClientGone);
            }
            if seq == until {
                return Ok(());
            }
        }
        pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn log(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut file = File::create(&path).unwrap();
        for seq in 1..=n {
            let topic = if seq % 2 == 0 {
                "s/support/cheers"
            } else {
                "s/chat/messages"
            };
            writeln!(
                file,
                r#"{{"seq":{seq},"topic":"{topic}","event":{{"pad":"{}"}}}}"#,
                "x".repeat(100)
            )
            .unwrap();
        }
        (dir, path)
    }

    #[test]
    fn after_and_latest_find_their_lines_in_a_large_log() {
        let (_dir, path) = log(5000);
        let all = vec!["#".to_owned()];
        let cheers = vec!["s/support/#".to_owned()];
        let got = after(&path, 4321, &all, 3).unwrap();
        assert_eq!(
            got.iter().map(|l| l.seq).collect::<Vec<_>>(),
            [4322, 4323, 4324]
        );
        let got = after(&path, 0, &cheers, 2).unwrap();
        assert_eq!(got.iter().map(|l| l.seq).collect::<Vec<_>>(), [2, 4]);
        assert!(after(&path, 5000, &all, 10).unwrap().is_empty());
        let got = latest(&path, &cheers, 3).unwrap();
        assert_eq!(
            got.iter().map(|l| l.seq).collect::<Vec<_>>(),
            [4996, 4998, 5000]
        );
        assert_eq!(latest(&path, &all, 10_000).unwrap().len(), 5000);
        assert!(
            latest(&path.with_extension("missing"), &all, 5)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn replay_stops_at_until_and_waits_for_the_writer() {
        let (_dir, path) = log(100);
        let all = vec!["#".to_owned()];
        let mut seqs = Vec::new();
        replay(&path, 90, 95, &all, Duration::from_secs(5), |l| {
            seqs.push(l.seq);
            true
        })
        .unwrap();
        assert_eq!(seqs, [91, 92, 93, 94, 95]);

        let writer = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
                file.write_all(b"{\"seq\":101,\"topic\":\"s/x\",\"ev")
                    .unwrap();
                file.flush().unwrap();
                std::thread::sleep(Duration::from_millis(50));
                file.write_all(b"ent\":{}}\n").unwrap();
            })
        };
        let mut seqs = Vec::new();
        replay(&path, 99, 101, &all, Duration::from_secs(30), |l| {
            seqs.push(l.seq);
            true
        })
        .unwrap();
        writer.join().unwrap();
        assert_eq!(seqs, [100, 101]);
    }
}
