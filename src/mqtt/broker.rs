//! The embedded MQTT broker (rmqtt): MQTT 3.1.1 and 5 on one TCP port, and MQTT over
//! WebSocket for browser overlays. See docs/DEPENDENCIES.md for why rmqtt.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::retain::{DefaultRetainStorage, RetainStorage};
use rmqtt::server::MqttServer;
use rmqtt::types::{Retain, TopicFilter, TopicName};
use thiserror::Error;
use tokio::task::JoinHandle;

use super::access::Access;
use super::ws_front::OriginPolicy;

#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("cannot listen on {key} = \"{addr}\": {source}; pick a free port or stop what uses it")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: rmqtt::Error,
    },
    #[error("cannot listen on {key} = \"{addr}\": {source}; pick a free port or stop what uses it")]
    BindFront {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running embedded broker; dropping it stops it.
pub struct EmbeddedBroker {
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    /// rmqtt's own WebSocket listener behind `ws` (loopback; only the front door connects).
    pub ws_backend: SocketAddr,
    task: JoinHandle<()>,
    front: JoinHandle<()>,
    scx: ServerContext,
}

impl EmbeddedBroker {
    /// Where the daemon publishes into this broker in process.
    pub fn link(&self) -> super::inproc::Link {
        super::inproc::Link {
            scx: self.scx.clone(),
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.task.abort();
        self.front.abort();
    }
}

/// rmqtt's own in-memory store answers "use the retainer plugin" and keeps nothing; this
/// enables the same tree through its inherent methods so retained state works embedded.
struct MemoryRetain(DefaultRetainStorage);

#[async_trait]
impl RetainStorage for MemoryRetain {
    fn enable(&self) -> bool {
        true
    }

    async fn set(
        &self,
        topic: &TopicName,
        retain: Retain,
        expiry_interval: Option<Duration>,
    ) -> rmqtt::Result<()> {
        self.0
            .set_with_timeout(topic, retain, expiry_interval)
            .await
    }

    async fn get(&self, topic_filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        self.0.get_message(topic_filter).await
    }

    async fn count(&self) -> isize {
        self.0.count().await
    }

    async fn max(&self) -> isize {
        self.0.max().await
    }
}

fn listener(name: &str, addr: SocketAddr, anonymous: bool) -> Builder {
    Builder::new()
        .name(name)
        .laddr(addr)
        .allow_anonymous(anonymous)
        .nodelay(true)
        .reuseaddr(Some(true))
        // Persistent QoS 1 subscribers may be away for a while: keep their backlog.
        .max_mqueue_len(100_000)
        .max_inflight(
            std::num::NonZeroU16::new(super::MAX_INFLIGHT).unwrap_or(std::num::NonZeroU16::MIN),
        )
        .message_expiry_interval(Duration::from_secs(24 * 60 * 60))
        .max_packet_size(1024 * 1024)
}

/// Binds both listeners (a taken port is an error here, not a silent failure) and serves
/// under the given access rules; WebSocket clients pass the origin check of `origins` first.
/// What clients may publish also goes to `inbound` (the daemon in process).
pub async fn start(
    listen: SocketAddr,
    ws_listen: SocketAddr,
    access: Access,
    origins: std::sync::Arc<OriginPolicy>,
    inbound: Option<std::sync::Arc<super::inproc::Inbound>>,
) -> Result<EmbeddedBroker, BrokerError> {
    // rmqtt's defaults are sized for a broker of millions of sessions; a streamer's bus has a
    // few dozen clients.
    let scx = ServerContext::new()
        .task_exec_workers(64)
        .task_exec_queue_max(100_000)
        // rmqtt refuses new connections while the machine's load or CPU is high; a streaming
        // PC runs its encoder near that all evening, and bots must still get in.
        .busy_check_enable(false)
        .build()
        .await;
    *scx.extends.retain_mut().await = Box::new(MemoryRetain(DefaultRetainStorage::new()));
    let (tcp_anonymous, ws_anonymous) = (access.tcp_anonymous, access.ws_anonymous);
    access.install(&scx, inbound).await;

    let tcp = listener("tcp", listen, tcp_anonymous)
        .bind()
        .and_then(|l| l.tcp())
        .map_err(|source| BrokerError::Bind {
            key: "mqtt.listen",
            addr: listen,
            source,
        })?;
    // rmqtt's own WebSocket listener is private; the front door on ws_listen checks origins
    // and tells it the real client address with the PROXY protocol.
    let private = SocketAddr::from(([127, 0, 0, 1], 0));
    let ws = listener("ws", private, ws_anonymous)
        .proxy_protocol(true)
        .bind()
        .and_then(|l| l.ws())
        .map_err(|source| BrokerError::Bind {
            key: "mqtt.ws_listen",
            addr: private,
            source,
        })?;
    let front = tokio::net::TcpListener::bind(ws_listen)
        .await
        .map_err(|source| BrokerError::BindFront {
            key: "mqtt.ws_listen",
            addr: ws_listen,
            source,
        })?;
    let tcp_addr = tcp.local_addr().unwrap_or(listen);
    let ws_private = ws.local_addr().unwrap_or(private);
    let ws_addr = front.local_addr().unwrap_or(ws_listen);
    let front_task = tokio::spawn(super::ws_front::serve(front, ws_private, origins));
    let server = MqttServer::new(scx.clone())
        .listener_by_id(tcp, 1)
        .listener_by_id(ws, 2)
        .build();
    let task = tokio::spawn(async move {
        if let Err(e) = server.run().await {
            tracing::error!(error = %e, "embedded MQTT broker stopped");
        }
    });
    Ok(EmbeddedBroker {
        tcp: tcp_addr,
        ws: ws_addr,
        ws_backend: ws_private,
        task,
        front: front_task,
        scx,
    })
}
