//! How a component reads its section of `ongwatch.toml` and reports what is wrong with it.
//!
//! Every component owns its section type and its checks; they all report [`Problem`]s in the
//! same shape (file, key, message with the fix) so `ongwatch check` can list every problem of
//! every section at once instead of stopping at the first.

use std::fmt;
use std::net::SocketAddr;

use serde::de::DeserializeOwned;

/// One thing wrong with a config or credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

/// All problems found while loading; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// The text of a config file the user named with `flag` (e.g. `--config`); the problem names
/// the file and the fix.
pub fn read_file(path: &std::path::Path, flag: &str) -> Result<String, Problems> {
    std::fs::read_to_string(path).map_err(|e| {
        Problems(vec![Problem {
            file: path.display().to_string(),
            key: String::new(),
            message: format!("cannot read it ({e}); pass an existing file to {flag}"),
        }])
    })
}

/// Deserializes `[name]` of `table` into `T`, or `T::default()` when absent or unreadable
/// (the reason goes to `problems` as `(key, message)`).
pub fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    name: &str,
    problems: &mut Vec<(String, String)>,
) -> T {
    let Some(value) = table.get(name) else {
        return T::default();
    };
    if !value.is_table() {
        problems.push((name.into(), format!("must be a table: [{name}]")));
        return T::default();
    }
    match value.clone().try_into::<T>() {
        Ok(parsed) => parsed,
        Err(e) => {
            let message = one_line(e.message());
            let key = unknown_field(&message)
                .map(|field| format!("{name}.{field}"))
                .unwrap_or_else(|| name.to_owned());
            problems.push((key, message));
            T::default()
        }
    }
}

/// Pulls the field name out of serde's "unknown field `x`, expected ..." message.
pub fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A listen address: `ip:port`, or `localhost:port`.
pub fn parse_listen(value: &str) -> Result<SocketAddr, &'static str> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err("has no port");
    };
    let port: u16 = port
        .parse()
        .map_err(|_| "has an invalid port (0 to 65535)")?;
    match host {
        "localhost" => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => Err("is not an IP address and port"),
    }
}

/// A component's section of `ongwatch.toml`: its table key, its defaults (every key is
/// optional) and its own checks. `config` only reads the file and calls [`read`] per section.
pub trait Section: DeserializeOwned + Default {
    /// The top-level key, e.g. `"mqtt"` for `[mqtt]`.
    const KEY: &'static str;

    /// What is wrong with the values, as `(full key, message with the fix)`.
    fn problems(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Reads `[T::KEY]` and runs its checks, adding every problem to `problems`.
pub fn read<T: Section>(table: &toml::Table, problems: &mut Vec<(String, String)>) -> T {
    let parsed: T = section(table, T::KEY, problems);
    problems.extend(parsed.problems());
    parsed
}

/// `(key, message)` when `value` is not a URL.
pub fn url_problem(key: &str, value: &str) -> Option<(String, String)> {
    url::Url::parse(value).is_err().then(|| {
        (
            key.to_owned(),
            format!("{value:?} is not a URL; use e.g. \"https://host/path\""),
        )
    })
}
