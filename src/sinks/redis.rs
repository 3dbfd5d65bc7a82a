//! `kind = "redis"`: XADD every record to a stream (one per topic by default, or one for
//! all), trimmed with `MAXLEN ~`, and optionally PUBLISH it on a channel named by its topic.
//!
//! Entries carry `seq`, `topic` and `event` (the JSON). A batch is one pipeline. When a
//! pipeline fails half-way its effect is unknown, so before the retry the last `seq` of each
//! stream is read back and what is already there is skipped: a restart of Redis mid-burst
//! neither loses nor repeats entries.

use std::collections::HashMap;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client, RedisError, Value};
use async_trait::async_trait;
use serde::Deserialize;

use super::output::{Context, Factory, Health, KeyProblems, Kind, Output, OutputError, keys};
use crate::hub::Delivery;

pub const KIND: Kind = Kind {
    name: "redis",
    parse,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    url: String,
    /// Stream key; `{topic}` is the topic with `/` as `:`. Without `{topic}`: one stream.
    #[serde(default = "default_stream")]
    stream: String,
    /// Approximate length each stream is trimmed to; 0: never trimmed.
    #[serde(default = "default_maxlen")]
    maxlen: u64,
    /// Also PUBLISH each event (the JSON) on a channel named by its topic.
    #[serde(default)]
    publish: bool,
}

fn default_stream() -> String {
    "ongwatch:{topic}".into()
}

fn default_maxlen() -> u64 {
    100_000
}

#[derive(Debug, Clone)]
struct Settings {
    url: String,
    stream: String,
    maxlen: u64,
    publish: bool,
}

fn parse(table: toml::Table) -> Result<Box<dyn Factory>, KeyProblems> {
    let keys: Keys = keys(table)?;
    let mut problems = Vec::new();
    match url::Url::parse(&keys.url) {
        Ok(url) if url.scheme() == "redis" && url.host_str().is_some() => {}
        Ok(url) if url.scheme() == "rediss" => problems.push((
            "url".into(),
            "rediss:// (TLS) is not built in; use redis:// on a trusted network or a TLS tunnel"
                .into(),
        )),
        _ => problems.push((
            "url".into(),
            format!(
                "{:?} is not a Redis URL; use e.g. \"redis://127.0.0.1:6379\" or \"redis://:password@host:6379/0\"",
                keys.url
            ),
        )),
    }
    if keys.stream.is_empty() {
        problems.push((
            "stream".into(),
            "must not be empty; e.g. \"ongwatch:{topic}\" or \"ongwatch:events\"".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Box::new(Settings {
        url: keys.url,
        stream: keys.stream,
        maxlen: keys.maxlen,
        publish: keys.publish,
    }))
}

impl Factory for Settings {
    fn build(&self, _context: &Context) -> Box<dyn Output> {
        Box::new(Redis {
            settings: self.clone(),
            connection: None,
            unsure: false,
            health: Health::Down("not connected yet".into()),
        })
    }
}

struct Redis {
    settings: Settings,
    connection: Option<MultiplexedConnection>,
    /// The last pipeline failed after it may have reached Redis.
    unsure: bool,
    health: Health,
}

impl Redis {
    fn key(&self, topic: &str) -> String {
        self.settings
            .stream
            .replace("{topic}", &topic.replace('/', ":"))
    }

    fn fail(&mut self, e: RedisError) -> OutputError {
        self.unsure = true;
        self.connection = None;
        let error = match e.code() {
            // The key holds something else, or the command is refused as such.
            Some("WRONGTYPE") | Some("ERR") => OutputError::rejected(format!("Redis: {e}")),
            _ => OutputError::transient(format!("Redis: {e}")),
        };
        self.health = Health::Down(error.to_string());
        error
    }

    /// The highest `seq` already in each stream the batch writes to.
    async fn stream_tails(
        &self,
        connection: &mut MultiplexedConnection,
        batch: &[Delivery],
    ) -> Result<HashMap<String, u64>, RedisError> {
        let mut tails = HashMap::new();
        for record in batch {
            let key = self.key(&record.message.topic);
            if tails.contains_key(&key) {
                continue;
            }
            let last: Value = ::redis::cmd("XREVRANGE")
                .arg(&key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(connection)
                .await?;
            tails.insert(key, last_seq(&last).unwrap_or(0));
        }
        Ok(tails)
    }
}

/// The `seq` field of the single entry XREVRANGE ... COUNT 1 returned.
fn last_seq(reply: &Value) -> Option<u64> {
    let Value::Array(entries) = reply else {
        return None;
    };
    let Some(Value::Array(entry)) = entries.first() else {
        return None;
    };
    let Some(Value::Array(fields)) = entry.get(1) else {
        return None;
    };
    fields.chunks(2).find_map(|pair| match pair {
        [Value::BulkString(name), Value::BulkString(value)] if name == b"seq" => {
            std::str::from_utf8(value).ok()?.parse().ok()
        }
        _ => None,
    })
}

#[async_trait]
impl Output for Redis {
    async fn start(&mut self) -> Result<(), OutputError> {
        if self.connection.is_some() {
            return Ok(());
        }
        let client = Client::open(self.settings.url.as_str())
            .map_err(|e| OutputError::transient(format!("Redis URL: {e}")))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        match client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => {
                self.connection = Some(connection);
                self.health = Health::Up;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn deliver(&mut self, batch: &[Delivery]) -> Result<(), OutputError> {
        let Some(mut connection) = self.connection.clone() else {
            return Err(OutputError::transient("not connected to Redis"));
        };
        let tails = if self.unsure {
            match self.stream_tails(&mut connection, batch).await {
                Ok(tails) => tails,
                Err(e) => return Err(self.fail(e)),
            }
        } else {
            HashMap::new()
        };
        let mut pipe = ::redis::pipe();
        for record in batch {
            let key = self.key(&record.message.topic);
            if tails.get(&key).is_some_and(|&last| record.seq <= last) {
                continue;
            }
            let add = pipe.cmd("XADD").arg(&key);
            if self.settings.maxlen > 0 {
                add.arg("MAXLEN").arg("~").arg(self.settings.maxlen);
            }
            add.arg("*")
                .arg("seq")
                .arg(record.seq)
                .arg("topic")
                .arg(&record.message.topic)
                .arg("event")
                .arg(&record.message.payload[..])
                .ignore();
            if self.settings.publish {
                pipe.cmd("PUBLISH")
                    .arg(&record.message.topic)
                    .arg(&record.message.payload[..])
                    .ignore();
            }
        }
        match pipe.query_async::<()>(&mut connection).await {
            Ok(()) => {
                self.unsure = false;
                self.health = Health::Up;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn flush(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn health(&self) -> Health {
        self.health.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seq_is_read_from_the_last_entry() {
        let reply = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"1-0".to_vec()),
            Value::Array(vec![
                Value::BulkString(b"seq".to_vec()),
                Value::BulkString(b"42".to_vec()),
                Value::BulkString(b"topic".to_vec()),
                Value::BulkString(b"t".to_vec()),
            ]),
        ])]);
        assert_eq!(last_seq(&reply), Some(42));
        assert_eq!(last_seq(&Value::Array(vec![])), None);
    }
}
