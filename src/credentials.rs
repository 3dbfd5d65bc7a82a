//! `credentials.toml`: the secrets, kept apart from `ongwatch.toml` so the config can be shared.
//! Values are never logged or quoted in a problem.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::section::{Problem, Problems, one_line, unknown_field};

/// `credentials.toml`: `[<provider>.<environment>]` tables, the seed project's format, and
/// `[mqtt.users]` (name = "password") for the embedded broker.
#[derive(Clone, Default)]
pub struct Credentials {
    pub path: Option<PathBuf>,
    providers: BTreeMap<String, BTreeMap<String, ProviderCredentials>>,
    mqtt_users: BTreeMap<String, String>,
}

/// Keys of one `[<provider>.<environment>]` table. Values are secrets: never logged.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderCredentials {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub apikey: Option<String>,
    pub jwt: Option<String>,
    pub socket_token: Option<String>,
    /// obs-websocket's server password (`[obs.<environment>]`).
    pub password: Option<String>,
    /// `localdev` only: the placeholder broadcaster's user id and login.
    pub user_id: Option<String>,
    pub login: Option<String>,
}

impl fmt::Debug for ProviderCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<String>| v.as_ref().map(|_| "<set>");
        f.debug_struct("ProviderCredentials")
            .field("client_id", &shown(&self.client_id))
            .field("client_secret", &shown(&self.client_secret))
            .field("apikey", &shown(&self.apikey))
            .field("jwt", &shown(&self.jwt))
            .field("socket_token", &shown(&self.socket_token))
            .field("password", &shown(&self.password))
            .finish()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("path", &self.path)
            .field("providers", &self.providers)
            .field("mqtt_users", &self.mqtt_users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    pub fn load(path: Option<&Path>) -> Result<Self, Problems> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = crate::section::read_file(path, "--credentials")?;
        Self::parse(Some(path), &text)
    }

    pub fn parse(path: Option<&Path>, text: &str) -> Result<Self, Problems> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "credentials.toml".into());
        let mut problems = Vec::new();
        // The message of a TOML error can quote the offending line, which may hold a secret.
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| format!(" at byte {}", span.start))
                .unwrap_or_default();
            Problems(vec![Problem {
                file: name.clone(),
                key: String::new(),
                message: format!(
                    "not valid TOML{at}; check quotes and [provider.environment] headers"
                ),
            }])
        })?;
        let mut providers = BTreeMap::new();
        let mut mqtt_users = BTreeMap::new();
        for (provider, envs) in table {
            if provider == "mqtt" {
                mqtt_users = parse_mqtt_users(&name, &envs, &mut problems);
                continue;
            }
            let Some(envs) = envs.as_table() else {
                problems.push(Problem {
                    file: name.clone(),
                    key: provider.clone(),
                    message: format!("must be a table per environment, e.g. [{provider}.test]"),
                });
                continue;
            };
            let mut parsed = BTreeMap::new();
            for (env, value) in envs {
                match value.clone().try_into::<ProviderCredentials>() {
                    Ok(creds) => {
                        parsed.insert(env.clone(), creds);
                    }
                    Err(e) => {
                        let message = one_line(e.message());
                        let key = unknown_field(&message)
                            .map(|field| format!("{provider}.{env}.{field}"))
                            .unwrap_or_else(|| format!("{provider}.{env}"));
                        problems.push(Problem {
                            file: name.clone(),
                            key,
                            message: format!(
                                "{message}; known keys are client_id, client_secret, apikey, jwt, socket_token, password, user_id, login"
                            ),
                        });
                    }
                }
            }
            providers.insert(provider, parsed);
        }
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        Ok(Self {
            path: path.map(Path::to_path_buf),
            providers,
            mqtt_users,
        })
    }

    /// `[mqtt.users]`: who may log in to the embedded broker, name → password.
    pub fn mqtt_users(&self) -> &BTreeMap<String, String> {
        &self.mqtt_users
    }

    /// The `[<provider>.<environment>]` table, if present.
    pub fn get(&self, provider: &str, environment: &str) -> Option<&ProviderCredentials> {
        self.providers.get(provider)?.get(environment)
    }
}

/// `[mqtt.users]` of credentials.toml. Passwords are never quoted in a problem.
fn parse_mqtt_users(
    file: &str,
    value: &toml::Value,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let mut users = BTreeMap::new();
    let mut problem = |key: String, message: &str| {
        problems.push(Problem {
            file: file.to_owned(),
            key,
            message: message.to_owned(),
        })
    };
    let Some(table) = value.as_table() else {
        problem(
            "mqtt".into(),
            "must be a table: [mqtt.users] with name = \"password\" lines",
        );
        return users;
    };
    for (key, value) in table {
        if key != "users" {
            problem(
                format!("mqtt.{key}"),
                "unknown key; [mqtt] holds only [mqtt.users] with name = \"password\" lines",
            );
            continue;
        }
        let Some(entries) = value.as_table() else {
            problem(
                "mqtt.users".into(),
                "must be a table of name = \"password\" lines",
            );
            continue;
        };
        for (user, password) in entries {
            match password.as_str() {
                Some(password) if !password.is_empty() && !user.is_empty() => {
                    users.insert(user.clone(), password.to_owned());
                }
                _ => problem(
                    format!("mqtt.users.{user}"),
                    "must be a non-empty name = \"password\" string",
                ),
            }
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_credentials_are_accepted_and_never_printed() {
        let creds = Credentials::parse(
            None,
            "[twitch.test]\nclient_id = 'abc'\nclient_secret = 'zyx-secret'\n[streamelements.test]\napikey = \"se-secret\"\n[streamlabs.test]\nsocket_token = \"sl-secret\"\n",
        )
        .unwrap();
        assert_eq!(
            creds.get("twitch", "test").unwrap().client_id.as_deref(),
            Some("abc")
        );
        let debug = format!("{creds:?}");
        for secret in ["zyx-secret", "se-secret", "sl-secret", "abc"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let err = Credentials::parse(None, "[twitch.test]\nclient_id = 'abc\n").unwrap_err();
        assert!(!err.to_string().contains("abc"), "{err}");
    }
}
