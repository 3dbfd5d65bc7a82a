//! Lenient, panic-free reads from an EventSub event body.
//!
//! Twitch adds fields and sends `null` for absent ones, and the mock servers are looser still,
//! so every read is optional; the normalizer decides which fields it cannot do without.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::normalize::NormalizeError;
use crate::event::UserRef;

/// An event body together with its subscription type, so errors can name both.
#[derive(Clone, Copy)]
pub(super) struct Body<'a> {
    ty: &'a str,
    value: &'a Value,
}

impl<'a> Body<'a> {
    pub(super) fn new(ty: &'a str, value: &'a Value) -> Self {
        Self { ty, value }
    }

    /// A nested body (`reward`, `message`, a notice's details), empty when absent.
    pub(super) fn child(&self, key: &str) -> Body<'a> {
        Body {
            ty: self.ty,
            value: self.get(key).unwrap_or(&Value::Null),
        }
    }

    /// A dotted path such as `reward.cost`; `null` counts as absent.
    pub(super) fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('.')
            .try_fold(self.value, |value, key| value.get(key))
            .filter(|value| !value.is_null())
    }

    pub(super) fn str(&self, path: &str) -> Option<&'a str> {
        self.get(path).and_then(Value::as_str)
    }

    /// A string that says something: absent, `null` and `""` are all `None`.
    pub(super) fn text(&self, path: &str) -> Option<String> {
        self.str(path)
            .filter(|text| !text.is_empty())
            .map(str::to_owned)
    }

    /// Numbers arrive as JSON numbers from Twitch but as strings from some mocks; both work.
    pub(super) fn u64(&self, path: &str) -> Option<u64> {
        match self.get(path)? {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64)),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub(super) fn u32(&self, path: &str) -> Option<u32> {
        self.u64(path).and_then(|n| u32::try_from(n).ok())
    }

    pub(super) fn bool(&self, path: &str) -> Option<bool> {
        match self.get(path)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub(super) fn time(&self, path: &str) -> Option<DateTime<Utc>> {
        self.str(path)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc))
    }

    pub(super) fn array(&self, path: &str) -> &'a [Value] {
        self.get(path)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    pub(super) fn need_str(&self, path: &str) -> Result<&'a str, NormalizeError> {
        self.str(path).ok_or_else(|| self.missing(path))
    }

    pub(super) fn need_u64(&self, path: &str) -> Result<u64, NormalizeError> {
        self.u64(path).ok_or_else(|| self.missing(path))
    }

    pub(super) fn need_u32(&self, path: &str) -> Result<u32, NormalizeError> {
        self.u32(path).ok_or_else(|| self.missing(path))
    }

    pub(super) fn missing(&self, path: &str) -> NormalizeError {
        NormalizeError::Field {
            subscription_type: self.ty.to_owned(),
            field: path.to_owned(),
        }
    }

    /// A login, lowercased as the contract promises: test payloads (and the odd real one)
    /// carry display-cased logins.
    pub(super) fn login(&self, path: &str) -> Option<String> {
        self.str(path)
            .filter(|login| !login.is_empty())
            .map(str::to_lowercase)
    }

    /// The user named by `<prefix>user_login`, `<prefix>user_id` and `<prefix>user_name`
    /// (prefix e.g. `""`, `"chatter_"`, `"from_broadcaster_"`, `"raid."`).
    pub(super) fn user(&self, prefix: &str) -> UserRef {
        UserRef {
            user: self.login(&format!("{prefix}user_login")),
            user_id: self.text(&format!("{prefix}user_id")),
            display_name: self.text(&format!("{prefix}user_name")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_are_lenient_and_never_panic() {
        let value = json!({"a": {"b": "7"}, "n": null, "f": 2.6, "s": "", "neg": -1});
        let body = Body::new("x", &value);
        assert_eq!(body.u64("a.b"), Some(7));
        assert_eq!(body.u64("f"), Some(3));
        assert_eq!(body.u64("neg"), None);
        assert_eq!(body.get("n"), None);
        assert_eq!(body.text("s"), None);
        assert_eq!(body.str("a.b.c"), None);
        assert!(body.array("a").is_empty());
        assert!(body.need_u64("missing").is_err());
    }
}
