//! MQTT: the embedded broker, the daemon's own client connection to an external broker (the
//! bridge), and the daemon in process on its embedded broker (`inproc`).
//!
//! With an external broker the daemon is an ordinary MQTT 5 client. On its embedded broker it
//! publishes into rmqtt's router and takes what clients publish from rmqtt's hooks, with no
//! connection to itself; what a bot sees is the same either way (tests/broker.rs).

pub mod access;
pub mod acked;
pub mod authority;
pub mod bridge;
pub mod broker;
pub mod client;
pub mod config;
pub mod inproc;
pub mod ws_front;

pub use config::{BotConfig, MqttConfig, MqttLogin, MqttMode};

use std::time::Duration;

use rumqttc::v5::{MqttOptions, mqttbytes::v5::LastWill};
use thiserror::Error;

use crate::state::Runtime;

#[derive(Debug, Error)]
pub enum EndpointError {
    #[error(
        "mqtt.mode is \"off\": there is no MQTT bus to reach; set [mqtt] mode = \"embedded\" or \"external\""
    )]
    Off,
    #[error("{0} is not a usable MQTT URL (use mqtt://host:port or mqtts://host:port)")]
    BadUrl(String),
}

/// QoS 1 publishes awaiting their PUBACK, per connection; the embedded broker grants the same.
pub const MAX_INFLIGHT: u16 = 128;

/// Where a broker is and how to log in; never printed with its password.
#[derive(Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

impl Endpoint {
    pub fn from_url(url: &url::Url) -> Result<Self, EndpointError> {
        let tls = match url.scheme() {
            "mqtt" => false,
            "mqtts" => true,
            _ => return Err(EndpointError::BadUrl(url.to_string())),
        };
        let host = url
            .host_str()
            .ok_or_else(|| EndpointError::BadUrl(url.to_string()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let username = (!url.username().is_empty()).then(|| decode(url.username()));
        Ok(Self {
            host,
            port: url.port().unwrap_or(if tls { 8883 } else { 1883 }),
            tls,
            username,
            password: url.password().map(decode),
        })
    }

    /// The broker a CLI command (`trigger`, `tail`, `replay`) should talk to: the running
    /// daemon's embedded broker (from its runtime file, since the configured port may be 0),
    /// or the configured external broker.
    pub fn for_cli(mqtt: &MqttConfig, runtime: Option<&Runtime>) -> Result<Self, EndpointError> {
        match mqtt.mode {
            MqttMode::Off => Err(EndpointError::Off),
            MqttMode::External => Self::from_url(&mqtt.broker_url()),
            MqttMode::Embedded => {
                let addr = runtime.and_then(|r| r.mqtt).unwrap_or(mqtt.listen_addr());
                Ok(Self::local(addr))
            }
        }
    }

    /// A listening address as a place to connect to (0.0.0.0 means this machine).
    pub fn local(addr: std::net::SocketAddr) -> Self {
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            addr.ip().to_string()
        };
        Self {
            host,
            port: addr.port(),
            tls: false,
            username: None,
            password: None,
        }
    }

    pub fn options(&self, client_id: &str, will: Option<LastWill>) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        options.set_keep_alive(Duration::from_secs(15));
        options.set_max_packet_size(Some(1024 * 1024));
        // rumqttc sizes its in-flight table by this limit up front (u16::MAX slots, about
        // 15 MB per client, by default); brokers grant far fewer (rmqtt 128, mosquitto 20).
        options.set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
        // Events are small and latency matters more than packet count.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        options.set_network_options(network);
        if let (Some(user), password) = (&self.username, &self.password) {
            options.set_credentials(user.clone(), password.clone().unwrap_or_default());
        }
        if self.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(tls_config().into()));
        }
        if let Some(will) = will {
            options.set_last_will(will);
        }
        options
    }
}

/// rustls with the ring provider and the system's root certificates.
fn tls_config() -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the platform store holds but rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
        .unwrap_or_else(|_| unreachable!("ring supports the default protocol versions"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials() {
        let url = url::Url::parse("mqtts://bot:s%40cret@broker.example:8884").unwrap();
        let endpoint = Endpoint::from_url(&url).unwrap();
        assert_eq!(endpoint.host, "broker.example");
        assert_eq!(endpoint.port, 8884);
        assert!(endpoint.tls);
        assert_eq!(endpoint.username.as_deref(), Some("bot"));
        assert_eq!(endpoint.password.as_deref(), Some("s@cret"));
        assert_eq!(endpoint.to_string(), "mqtts://broker.example:8884");
        let plain = Endpoint::from_url(&url::Url::parse("mqtt://127.0.0.1").unwrap()).unwrap();
        assert_eq!((plain.port, plain.tls), (1883, false));
    }
}
