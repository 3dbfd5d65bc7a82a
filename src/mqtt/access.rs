//! Who may use the embedded broker: logins per listener and who may publish commands.
//!
//! A listener on a non-loopback address makes clients log in with a `[mqtt.users]` entry of
//! credentials.toml (`[mqtt] login` changes which listeners do). Loopback clients may stay
//! anonymous, as a browser overlay in OBS on the streamer's machine does; but a client that
//! sends a username must send a right one, so a typo never degrades to anonymous access.
//!
//! Who may publish where is topic authority (`authority.rs`): reserved topics, `[bots.*]`
//! filters, first publishers, and `[mqtt] command_clients` for `R/command/#`. Refused publishes
//! get "not authorized" (MQTT 5 reason 0x87) or are dropped (3.1.1 has no negative
//! acknowledgement); one warning line per client and topic says who and why.
//!
//! The daemon's own connection and the CLI log in as a local superuser whose password is made
//! fresh at every start and kept only in the state dir (0600): whoever can read that dir already
//! owns the daemon, so `ongwatch trigger` keeps working with no extra setup. The superuser is
//! what makes the daemon's publishes on reserved topics pass, so it is always in use.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rmqtt::acl::AuthInfo;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::types::{AuthResult, FromType, PublishAclResult};
use serde::{Deserialize, Serialize};

use super::Endpoint;
use super::authority::{Authority, Rules};
use super::inproc::Inbound;
use super::{BotConfig, MqttConfig, MqttLogin, MqttMode};
use crate::credentials::Credentials;
use crate::event::TopicRoot;
use crate::secret::{random_secret, same_secret};
use crate::section::{Problem, Problems};

/// The reserved username of the daemon's own connection and the CLI.
pub const LOCAL_USER: &str = "ongwatch-local";
const LOCAL_LOGIN_FILE: &str = "mqtt-local-login.json";

/// The local superuser's login, written to the state dir for the CLI.
#[derive(Clone, Serialize, Deserialize)]
pub struct LocalLogin {
    pub username: String,
    pub password: String,
}

impl LocalLogin {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(LOCAL_LOGIN_FILE)
    }

    /// The login the running daemon wrote, if access control is on.
    pub fn read(state_dir: &Path) -> Option<Self> {
        let text = std::fs::read(Self::path(state_dir)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::state::write_private_atomic(&Self::path(state_dir), &text)
    }

    /// Makes `endpoint` log in as this user.
    pub fn use_for(self, endpoint: &mut Endpoint) {
        endpoint.username = Some(self.username);
        endpoint.password = Some(self.password);
    }

    pub fn remove(state_dir: &Path) {
        let _ = std::fs::remove_file(Self::path(state_dir));
    }
}

/// The embedded broker's access rules, checked against config and credentials together.
pub struct Access {
    pub tcp_anonymous: bool,
    pub ws_anonymous: bool,
    users: BTreeMap<String, String>,
    authority: std::sync::Arc<Authority>,
    local: LocalLogin,
}

impl Access {
    /// Every problem at once, each naming the key to change (`config_file`: where `[mqtt]`
    /// and `[bots.*]` were read from).
    pub fn new(
        mqtt: &MqttConfig,
        bots: &BTreeMap<String, BotConfig>,
        root: &TopicRoot,
        config_file: &str,
        credentials: &Credentials,
    ) -> Result<Self, Problems> {
        let anonymous = |addr: SocketAddr| match mqtt.login {
            MqttLogin::Never => true,
            MqttLogin::Always => false,
            MqttLogin::Remote => addr.ip().is_loopback(),
        };
        let users = credentials.mqtt_users().clone();
        let config_file = config_file.to_owned();
        let credentials_file = credentials
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "credentials.toml".into());
        let mut problems = Vec::new();
        if mqtt.mode == MqttMode::Embedded && users.is_empty() {
            for (key, addr) in [
                ("mqtt.listen", mqtt.listen_addr()),
                ("mqtt.ws_listen", mqtt.ws_listen_addr()),
            ] {
                if !anonymous(addr) {
                    problems.push(Problem {
                        file: config_file.clone(),
                        key: key.into(),
                        message: format!(
                            "clients of {addr} must log in, but {credentials_file} has no [mqtt.users]; add [mqtt.users] with name = \"password\" lines, or listen on 127.0.0.1, or set [mqtt] login = \"never\" on a trusted network"
                        ),
                    });
                }
            }
        }
        if users.contains_key(LOCAL_USER) {
            problems.push(Problem {
                file: credentials_file.clone(),
                key: format!("mqtt.users.{LOCAL_USER}"),
                message: "is reserved for the daemon itself; pick another name".into(),
            });
        }
        let rules = Rules::new(root, bots, &mqtt.command_clients);
        let embedded = mqtt.mode == MqttMode::Embedded;
        problems.extend(rules.problems(
            embedded.then_some(&users),
            &config_file,
            &credentials_file,
        ));
        for name in &mqtt.command_clients {
            if !users.contains_key(name) {
                problems.push(Problem {
                    file: config_file.clone(),
                    key: "mqtt.command_clients".into(),
                    message: format!(
                        "{name:?} is not in {credentials_file} [mqtt.users]; add it there with a password"
                    ),
                });
            }
        }
        if !problems.is_empty() {
            return Err(Problems(problems));
        }
        Ok(Self {
            tcp_anonymous: anonymous(mqtt.listen_addr()),
            ws_anonymous: anonymous(mqtt.ws_listen_addr()),
            users,
            authority: Authority::new(rules),
            local: LocalLogin {
                username: LOCAL_USER.into(),
                password: random_secret(),
            },
        })
    }

    /// The login of the daemon's own connection and of the CLI.
    pub fn local_login(&self) -> &LocalLogin {
        &self.local
    }

    /// The topic-authority table the broker's hooks fill (presence, counters, owners).
    pub fn authority(&self) -> std::sync::Arc<Authority> {
        self.authority.clone()
    }

    /// Installs logins, topic authority and presence as rmqtt hooks; with `inbound`, what
    /// clients may publish also goes to the daemon in process (`super::inproc`).
    pub async fn install(self, scx: &ServerContext, inbound: Option<std::sync::Arc<Inbound>>) {
        let register = scx.extends.hook_mgr().register();
        let rules = std::sync::Arc::new(self);
        register
            .add(
                Type::ClientAuthenticate,
                Box::new(LoginCheck(rules.clone())),
            )
            .await;
        let mut hooks = vec![
            Type::MessagePublishCheckAcl,
            Type::ClientConnected,
            Type::ClientDisconnected,
        ];
        // Wills and the local superuser's publishes never reach the ACL hook: taken before it.
        if inbound.is_some() {
            hooks.push(Type::MessagePublish);
        }
        for hook in hooks {
            register
                .add(
                    hook,
                    Box::new(AuthorityHooks(rules.authority.clone(), inbound.clone())),
                )
                .await;
        }
        register.start().await;
    }

    fn login(&self, username: &str, password: &[u8]) -> Option<bool> {
        if username == self.local.username {
            return same_secret(password, self.local.password.as_bytes()).then_some(true);
        }
        // Without [mqtt.users] a name is only a label (no [bots.*] can name it): as before
        // topic authority, any name is let in where anonymous clients are.
        if self.users.is_empty() {
            return Some(false);
        }
        let expected = self.users.get(username)?;
        same_secret(password, expected.as_bytes()).then_some(false)
    }
}

struct LoginCheck(std::sync::Arc<Access>);

#[async_trait]
impl Handler for LoginCheck {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let Parameter::ClientAuthenticate(info) = param else {
            return (true, acc);
        };
        let peer = info
            .id()
            .remote_addr
            .map(|a| a.to_string())
            .unwrap_or_default();
        let result = match info.username() {
            None => {
                tracing::warn!(
                    peer,
                    "refused an MQTT client without a login: this listener requires a [mqtt.users] username and password"
                );
                AuthResult::NotAuthorized
            }
            Some(username) => {
                let password = info.password().map(|p| p.as_ref()).unwrap_or_default();
                match self.0.login(username, password) {
                    Some(superuser) => AuthResult::Allow(
                        superuser,
                        Some(AuthInfo {
                            superuser,
                            expire_at: None,
                            rules: Vec::new(),
                        }),
                    ),
                    None => {
                        tracing::warn!(
                            peer,
                            username = username.as_ref() as &str,
                            "refused an MQTT login: wrong username or password"
                        );
                        AuthResult::BadUsernameOrPassword
                    }
                }
            }
        };
        (false, Some(HookResult::AuthResult(result)))
    }
}

/// Topic authority and presence: every publish of a client that is not the daemon, and every
/// connect and disconnect (clean, dropped or keepalive expiry) of one; and, in process, what
/// they may publish on its way into the hub.
struct AuthorityHooks(std::sync::Arc<Authority>, Option<std::sync::Arc<Inbound>>);

fn is_local(session: &rmqtt::session::Session) -> bool {
    session.id.username.as_ref().map(|u| u.as_ref() as &str) == Some(LOCAL_USER)
}

#[async_trait]
impl Handler for AuthorityHooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let username = session.id.username.as_ref().map(|u| u.as_ref() as &str);
                let client_id: &str = session.id.client_id.as_ref();
                let topic: &str = publish.inner.topic.as_ref();
                if let Err(rule) = self.0.check_publish(client_id, username, topic) {
                    return (
                        false,
                        Some(HookResult::PublishAclResult(PublishAclResult::rejected(
                            false,
                            Some(rule.name().into()),
                        ))),
                    );
                }
                if let Some(inbound) = &self.1 {
                    inbound.publish(topic, &publish.inner.payload).await;
                }
            }
            // Neither a will nor the local superuser's publish reaches the ACL hook.
            Parameter::MessagePublish(session, from, publish)
                if matches!(from.typ(), FromType::LastWill) || session.is_some_and(is_local) =>
            {
                if let Some(inbound) = &self.1 {
                    inbound
                        .publish(publish.inner.topic.as_ref(), &publish.inner.payload)
                        .await;
                }
            }
            Parameter::ClientConnected(session) if !is_local(session) => {
                let username = session.id.username.as_ref().map(|u| u.as_ref() as &str);
                self.0.connected(
                    session.id.client_id.as_ref(),
                    username,
                    session.id.create_time,
                );
            }
            Parameter::ClientDisconnected(session, _) if !is_local(session) => {
                self.0
                    .disconnected(session.id.client_id.as_ref(), session.id.create_time);
            }
            _ => {}
        }
        (true, acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[mqtt]` and `[bots.*]` of an ongwatch.toml text, checked against credentials.toml.
    fn access(config: &str, credentials: &str) -> Result<Access, Problems> {
        let table: toml::Table = toml::from_str(config).unwrap();
        let mut problems = Vec::new();
        let mqtt: MqttConfig = crate::section::read(&table, &mut problems);
        let bots = crate::section::section(&table, "bots", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let credentials = Credentials::parse(None, credentials).unwrap();
        let root = TopicRoot::new("stream").unwrap();
        Access::new(&mqtt, &bots, &root, "ongwatch.toml", &credentials)
    }

    #[test]
    fn loopback_defaults_let_any_name_in_but_not_the_daemons() {
        let access = access("", "").unwrap();
        assert!(access.tcp_anonymous && access.ws_anonymous);
        assert_eq!(access.login("anybot", b"whatever"), Some(false));
        assert_eq!(access.login(LOCAL_USER, b"guess"), None);
    }

    #[test]
    fn a_public_listener_without_users_is_refused_with_the_fix() {
        let err = access("[mqtt]\nlisten = \"0.0.0.0:1883\"\n", "")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("mqtt.listen"), "{err}");
        assert!(err.contains("[mqtt.users]"), "{err}");
        assert!(!err.contains("mqtt.ws_listen"), "{err}");
        let never = access("[mqtt]\nlisten = \"0.0.0.0:1883\"\nlogin = \"never\"\n", "").unwrap();
        assert!(never.tcp_anonymous);
    }

    #[test]
    fn logins_and_command_rights() {
        let access = access(
            "[mqtt]\nlisten = \"0.0.0.0:1883\"\ncommand_clients = [\"lights\"]\n",
            "[mqtt.users]\nlights = \"l1ght\"\noverlay = \"0v3r\"\n",
        )
        .unwrap();
        assert!(!access.tcp_anonymous && access.ws_anonymous);
        assert_eq!(access.login("lights", b"l1ght"), Some(false));
        assert_eq!(access.login("lights", b"wrong"), None);
        assert_eq!(access.login("nobody", b"l1ght"), None);
        let local = access.local_login().clone();
        assert_eq!(
            access.login(LOCAL_USER, local.password.as_bytes()),
            Some(true)
        );
        let authority = access.authority();
        let check = |login, topic| authority.check_publish("c", login, topic).is_ok();
        assert!(check(Some("lights"), "stream/command/chat/send"));
        assert!(!check(Some("overlay"), "stream/command/chat/send"));
        assert!(!check(None, "stream/command/trigger"));
        assert!(check(Some("overlay"), "stream/synthetic/bpm"));
    }

    #[test]
    fn unknown_command_clients_and_the_reserved_name_are_problems() {
        let err = access(
            "[mqtt]\ncommand_clients = [\"ghost\"]\n",
            "[mqtt.users]\nongwatch-local = \"x\"\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("\"ghost\" is not in"), "{err}");
        assert!(err.contains("mqtt.users.ongwatch-local"), "{err}");
        assert!(!err.contains("= \"x\""), "{err}");
    }
}
