//! `kind = "sqlite"`: every record in one table, indexed by time, topic, type and user, kept
//! for `retention_days`; `/api/events` reads from it when `api = true`.
//!
//! The `seq` is the primary key, so a batch retried after an unclear failure is written once.
//! SQLite calls block, so they run on the blocking pool, one batch per transaction.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, params};
use serde::Deserialize;
use tokio::time::Instant;

use super::output::{Context, Factory, Health, KeyProblems, Kind, Output, OutputError, keys};
use crate::event::{filter_matches, format_time, now};
use crate::hub::Delivery;

pub const KIND: Kind = Kind {
    name: "sqlite",
    parse,
};

/// How often old rows are deleted while running (and once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Rows read per query while filtering by topic for `/api/events`.
const READ_CHUNK: usize = 2000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq   INTEGER PRIMARY KEY,
    time  TEXT NOT NULL,
    topic TEXT NOT NULL,
    type  TEXT,
    user  TEXT,
    id    TEXT,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_topic ON events(topic);
CREATE INDEX IF NOT EXISTS events_type ON events(type);
CREATE INDEX IF NOT EXISTS events_user ON events(user);
";

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Keys {
    /// Relative to the state dir.
    path: String,
    /// Rows older than this many days are deleted; 0 keeps everything.
    retention_days: u32,
    /// Serve `/api/events` from this database instead of the event log.
    api: bool,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            path: "history.db".into(),
            retention_days: 30,
            api: true,
        }
    }
}

#[derive(Debug)]
struct Settings {
    path: PathBuf,
    retention_days: u32,
    api: bool,
}

fn parse(table: toml::Table) -> Result<Box<dyn Factory>, KeyProblems> {
    let keys: Keys = keys(table)?;
    if keys.path.is_empty() {
        return Err(vec![(
            "path".into(),
            "must not be empty; e.g. \"history.db\"".into(),
        )]);
    }
    Ok(Box::new(Settings {
        path: PathBuf::from(keys.path),
        retention_days: keys.retention_days,
        api: keys.api,
    }))
}

impl Settings {
    fn path_in(&self, context: &Context) -> PathBuf {
        context.state_dir.join(&self.path)
    }
}

impl Factory for Settings {
    fn build(&self, context: &Context) -> Box<dyn Output> {
        Box::new(Sqlite {
            path: self.path_in(context),
            retention_days: self.retention_days,
            db: None,
            pruned: None,
            health: Health::Up,
        })
    }

    fn history(&self, context: &Context) -> Option<History> {
        self.api.then(|| History {
            path: self.path_in(context),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot read the history database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

struct Sqlite {
    path: PathBuf,
    retention_days: u32,
    db: Option<Arc<Mutex<Connection>>>,
    pruned: Option<Instant>,
    health: Health,
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    if let Some(dir) = path.parent() {
        // The open below reports a missing dir better than this would.
        let _ = std::fs::create_dir_all(dir);
    }
    let db = Connection::open(path)?;
    // WAL lets `/api/events` read while batches are written; NORMAL syncs at checkpoints,
    // which a power cut can cost the last moments of, never the database.
    db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.busy_timeout(Duration::from_secs(5))?;
    db.execute_batch(SCHEMA)?;
    Ok(db)
}

/// Runs `work` on the blocking pool with the connection.
async fn blocking<T: Send + 'static>(
    db: &Arc<Mutex<Connection>>,
    work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, OutputError> {
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let mut db = db.lock().unwrap_or_else(|e| e.into_inner());
        work(&mut db)
    })
    .await
    .map_err(|e| OutputError::transient(format!("database task failed: {e}")))?
    .map_err(|e| OutputError::transient(format!("SQLite: {e}")))
}

impl Sqlite {
    fn fail(&mut self, error: OutputError) -> OutputError {
        self.health = Health::Down(error.to_string());
        self.db = None;
        error
    }

    async fn prune(&mut self, db: &Arc<Mutex<Connection>>) -> Result<(), OutputError> {
        if self.retention_days == 0 || self.pruned.is_some_and(|at| at.elapsed() < PRUNE_EVERY) {
            return Ok(());
        }
        self.pruned = Some(Instant::now());
        let cutoff = format_time(&(now() - chrono::Duration::days(i64::from(self.retention_days))));
        let deleted = blocking(db, move |db| {
            db.execute("DELETE FROM events WHERE time < ?1", params![cutoff])
        })
        .await?;
        if deleted > 0 {
            tracing::info!(path = %self.path.display(), deleted, "history: old events deleted");
        }
        Ok(())
    }
}

#[async_trait]
impl Output for Sqlite {
    async fn start(&mut self) -> Result<(), OutputError> {
        if self.db.is_some() {
            return Ok(());
        }
        let path = self.path.clone();
        let opened = tokio::task::spawn_blocking(move || open(&path))
            .await
            .map_err(|e| OutputError::transient(format!("database task failed: {e}")))?
            .map_err(|e| {
                OutputError::transient(format!("cannot open {}: {e}", self.path.display()))
            });
        let db = match opened {
            Ok(db) => Arc::new(Mutex::new(db)),
            Err(e) => return Err(self.fail(e)),
        };
        self.db = Some(db.clone());
        self.health = Health::Up;
        self.prune(&db).await.map_err(|e| self.fail(e))
    }

    async fn deliver(&mut self, batch: &[Delivery]) -> Result<(), OutputError> {
        let Some(db) = self.db.clone() else {
            return Err(OutputError::transient("the database is not open"));
        };
        let rows: Vec<Row> = batch.iter().map(Row::of).collect();
        let written = blocking(&db, move |db| {
            let tx = db.transaction()?;
            {
                let mut insert = tx.prepare(
                    "INSERT OR REPLACE INTO events (seq, time, topic, type, user, id, event) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for row in &rows {
                    insert.execute(params![
                        row.seq, row.time, row.topic, row.kind, row.user, row.id, row.event
                    ])?;
                }
            }
            tx.commit()
        })
        .await;
        if let Err(e) = written {
            return Err(self.fail(e));
        }
        self.health = Health::Up;
        self.prune(&db).await.map_err(|e| self.fail(e))
    }

    async fn flush(&mut self) -> Result<(), OutputError> {
        let Some(db) = self.db.take() else {
            return Ok(());
        };
        // Folds the WAL into the database file so it is complete on its own.
        blocking(&db, |db| {
            db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        })
        .await
    }

    fn health(&self) -> Health {
        self.health.clone()
    }
}

/// One record as a row.
struct Row {
    seq: i64,
    time: String,
    topic: String,
    kind: Option<String>,
    user: Option<String>,
    id: Option<String>,
    event: String,
}

impl Row {
    fn of(record: &Delivery) -> Self {
        #[derive(Deserialize, Default)]
        struct Head {
            #[serde(default)]
            time: Option<String>,
            #[serde(default, rename = "type")]
            kind: Option<String>,
            #[serde(default)]
            user: Option<String>,
        }
        let head: Head = serde_json::from_slice(&record.message.payload).unwrap_or_default();
        Self {
            // SQLite integers are signed; seqs past i64::MAX are not a real concern.
            seq: i64::try_from(record.seq).unwrap_or(i64::MAX),
            time: head.time.unwrap_or_else(|| format_time(&now())),
            topic: record.message.topic.clone(),
            kind: head.kind,
            user: head.user,
            id: record.message.id.clone(),
            event: String::from_utf8_lossy(&record.message.payload).into_owned(),
        }
    }
}

/// Read access for `/api/events`: lines in the event log's `{"seq","topic","event"}` form.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
}

impl History {
    /// Up to `limit` records with seq > `since` (all, when `None`: the latest) matching
    /// `filters`, oldest first, as (seq, line).
    pub fn read(
        &self,
        since: Option<u64>,
        filters: &[String],
        limit: usize,
    ) -> Result<Vec<(u64, String)>, HistoryError> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let db = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        db.busy_timeout(Duration::from_secs(5))?;
        let (sql, mut cursor) = match since {
            Some(since) => (
                "SELECT seq, topic, event FROM events WHERE seq > ?1 ORDER BY seq ASC LIMIT ?2",
                i64::try_from(since).unwrap_or(i64::MAX),
            ),
            None => (
                "SELECT seq, topic, event FROM events WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
                i64::MAX,
            ),
        };
        let mut statement = db.prepare(sql)?;
        let mut found = Vec::new();
        loop {
            let rows = statement
                .query_map(params![cursor, READ_CHUNK as i64], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let Some(last) = rows.last() else { break };
            cursor = last.0;
            let exhausted = rows.len() < READ_CHUNK;
            for (seq, topic, event) in rows {
                if filters.iter().any(|f| filter_matches(f, &topic)) && found.len() < limit {
                    let seq = u64::try_from(seq).unwrap_or_default();
                    let topic = serde_json::Value::String(topic);
                    found.push((
                        seq,
                        format!("{{\"seq\":{seq},\"topic\":{topic},\"event\":{event}}}"),
                    ));
                }
            }
            if exhausted || found.len() >= limit {
                break;
            }
        }
        if since.is_none() {
            found.reverse();
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Message, Origin, Record};

    fn record(seq: u64, topic: &str) -> Delivery {
        Arc::new(Record::new(seq, Message::from_bytes(
                topic.into(),
                format!(r#"{{"id":"e{seq}","type":"cheer","user":"u{seq}","time":"2030-01-01T00:00:00.000Z"}}"#).as_bytes(),
                false,
                Origin::Daemon,
            )))
    }

    #[tokio::test]
    async fn writes_batches_once_and_reads_them_back_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let context = Context {
            state_dir: dir.path().to_path_buf(),
        };
        let table: toml::Table = toml::from_str("retention_days = 1").unwrap();
        let factory = parse(table).unwrap();
        let mut output = factory.build(&context);
        output.start().await.unwrap();
        let batch: Vec<_> = (1..=5000)
            .map(|seq| {
                record(
                    seq,
                    if seq % 2 == 0 {
                        "s/support/cheers"
                    } else {
                        "s/chat/messages"
                    },
                )
            })
            .collect();
        output.deliver(&batch).await.unwrap();
        // A retried batch is written once.
        output.deliver(&batch[4990..]).await.unwrap();
        output.flush().await.unwrap();

        let history = factory.history(&context).unwrap();
        let cheers = vec!["s/support/#".to_owned()];
        let got = history.read(Some(4000), &cheers, 3).unwrap();
        assert_eq!(
            got.iter().map(|l| l.0).collect::<Vec<_>>(),
            [4002, 4004, 4006]
        );
        let line: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
        assert_eq!(line["topic"], "s/support/cheers");
        assert_eq!(line["event"]["user"], "u4002");
        let latest = history.read(None, &cheers, 2).unwrap();
        assert_eq!(latest.iter().map(|l| l.0).collect::<Vec<_>>(), [4998, 5000]);
        let all = history.read(Some(0), &["#".to_owned()], 10_000).unwrap();
        assert_eq!(all.len(), 5000);
    }
}
