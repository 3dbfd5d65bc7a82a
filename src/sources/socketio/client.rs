//! One Socket.IO connection over a websocket: handshake, liveness, emit and incoming events.
//!
//! The client is pull-driven: pings are sent and pong deadlines checked only while the caller
//! awaits [`SocketIoClient::next_event`]. The providers always do (they only pause to hand an
//! event to the bus), and it keeps the connection's whole lifetime inside the caller's
//! `select!`, so dropping the client is all it takes to end it.

use std::collections::VecDeque;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use super::packet::{EnginePacket, Handshake, SocketPacket};

/// Which Engine.IO revision the server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EioVersion {
    /// Socket.IO 2: the server sends `40` by itself; the client pings.
    V3,
    /// Socket.IO 3+: the client sends `40`; the server pings.
    V4,
}

impl EioVersion {
    fn query_value(self) -> &'static str {
        match self {
            EioVersion::V3 => "3",
            EioVersion::V4 => "4",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `http(s)://` or `ws(s)://` base. Its path is the Engine.IO path when set; `/` or empty
    /// means the conventional `/socket.io/`.
    pub url: String,
    /// Extra query parameters (e.g. `token`). Values may be secrets: they are never logged.
    pub query: Vec<(String, String)>,
    pub version: EioVersion,
    /// Limit for the TCP/TLS/websocket handshake plus the Engine.IO open and Socket.IO connect.
    pub connect_timeout: Duration,
}

/// An event the server emitted on the default namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketEvent {
    pub name: String,
    pub args: Vec<Value>,
}

#[derive(Debug, Error)]
pub enum SocketIoError {
    #[error("invalid Socket.IO URL: {0}")]
    BadUrl(String),
    /// The handshake was refused with 401/403: the credentials are wrong, retrying won't help.
    #[error("the server refused the credentials (HTTP {status})")]
    Unauthorized { status: u16 },
    #[error("the server answered the handshake with HTTP {status}")]
    HttpStatus { status: u16 },
    #[error("network error: {0}")]
    Network(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("no pong within {0:?} of a ping: the connection is dead")]
    PingTimeout(Duration),
    #[error("the server refused the Socket.IO connection: {0}")]
    ConnectRefused(String),
    #[error("the server disconnected the socket")]
    Disconnected,
    #[error("the connection was closed")]
    Closed,
}

impl SocketIoError {
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, SocketIoError::Unauthorized { .. })
    }
}

impl From<tungstenite::Error> for SocketIoError {
    fn from(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::Http(response) => {
                let status = response.status().as_u16();
                if status == 401 || status == 403 {
                    SocketIoError::Unauthorized { status }
                } else {
                    SocketIoError::HttpStatus { status }
                }
            }
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                SocketIoError::Closed
            }
            // tungstenite's messages name neither the URL nor its query, so no token leaks.
            other => SocketIoError::Network(other.to_string()),
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct SocketIoClient {
    ws: Ws,
    handshake: Handshake,
    version: EioVersion,
    /// Events that arrived before the connect packet, handed out first.
    pending: VecDeque<SocketEvent>,
    /// EIO 3: when to send the next ping (while no pong is awaited).
    next_ping: Instant,
    /// EIO 3: the pong must arrive before this.
    pong_deadline: Option<Instant>,
    /// EIO 4: the server's next ping must arrive before this.
    server_ping_deadline: Instant,
}

impl std::fmt::Debug for SocketIoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoClient")
            .field("sid", &self.handshake.sid)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Builds the websocket URL: scheme mapped to ws/wss, `/socket.io/` path, the caller's
/// query, then `EIO` and `transport=websocket`.
fn endpoint(options: &ClientOptions) -> Result<url::Url, SocketIoError> {
    let mut url = url::Url::parse(&options.url)
        .map_err(|e| SocketIoError::BadUrl(format!("{e} (expected e.g. https://host)")))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(SocketIoError::BadUrl(format!(
                "scheme {other:?} is not http, https, ws or wss"
            )));
        }
    };
    url.set_scheme(scheme)
        .map_err(|()| SocketIoError::BadUrl("cannot use a websocket scheme".to_owned()))?;
    if url.path().is_empty() || url.path() == "/" {
        url.set_path("/socket.io/");
    }
    {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in &options.query {
            pairs.append_pair(key, value);
        }
        pairs.append_pair("EIO", options.version.query_value());
        pairs.append_pair("transport", "websocket");
    }
    Ok(url)
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

impl SocketIoClient {
    /// Opens the websocket and waits for the Engine.IO open and the Socket.IO connect.
    pub async fn connect(options: &ClientOptions) -> Result<Self, SocketIoError> {
        let url = endpoint(options)?;
        let limit = options.connect_timeout;
        timeout(limit, Self::establish(url, options.version))
            .await
            .map_err(|_| SocketIoError::Timeout(limit))?
    }

    async fn establish(url: url::Url, version: EioVersion) -> Result<Self, SocketIoError> {
        let (mut ws, _response) = connect_async(url.as_str()).await?;
        let handshake = loop {
            match next_text(&mut ws).await? {
                Some(text) => match EnginePacket::parse(&text) {
                    Ok(EnginePacket::Open(handshake)) => break handshake,
                    Ok(_) => continue,
                    Err(e) => return Err(SocketIoError::Protocol(format!("bad open packet: {e}"))),
                },
                None => continue,
            }
        };
        if version == EioVersion::V4 {
            ws.send(Message::text(
                EnginePacket::Message(
                    SocketPacket::Connect {
                        namespace: "/".into(),
                        data: None,
                    }
                    .encode(),
                )
                .encode(),
            ))
            .await?;
        }
        let now = Instant::now();
        let mut client = SocketIoClient {
            ws,
            version,
            pending: VecDeque::new(),
            next_ping: now + millis(handshake.ping_interval_ms),
            pong_deadline: None,
            server_ping_deadline: now
                + millis(handshake.ping_interval_ms + handshake.ping_timeout_ms),
            handshake,
        };
        loop {
            let Some(text) = next_text(&mut client.ws).await? else {
                continue;
            };
            let packet = match EnginePacket::parse(&text) {
                Ok(EnginePacket::Message(message)) => SocketPacket::parse(&message),
                Ok(other) => {
                    client.on_engine_control(other).await?;
                    continue;
                }
                Err(e) => {
                    tracing::debug!("ignoring unparsable Engine.IO packet: {e}");
                    continue;
                }
            };
            match packet {
                Ok(SocketPacket::Connect { namespace, .. }) if namespace == "/" => {
                    return Ok(client);
                }
                Ok(SocketPacket::Error { data, .. }) => {
                    return Err(SocketIoError::ConnectRefused(describe(data)));
                }
                Ok(SocketPacket::Event {
                    namespace,
                    name,
                    args,
                    ..
                }) if namespace == "/" => client.pending.push_back(SocketEvent { name, args }),
                Ok(_) => {}
                Err(e) => tracing::debug!("ignoring unparsable Socket.IO packet: {e}"),
            }
        }
    }

    pub fn handshake_info(&self) -> &Handshake {
        &self.handshake
    }

    /// Emits `name` with `args` on the default namespace.
    pub async fn emit(&mut self, name: &str, args: Vec<Value>) -> Result<(), SocketIoError> {
        let packet = SocketPacket::Event {
            namespace: "/".into(),
            id: None,
            name: name.to_owned(),
            args,
        };
        self.send(EnginePacket::Message(packet.encode())).await
    }

    async fn send(&mut self, packet: EnginePacket) -> Result<(), SocketIoError> {
        self.ws.send(Message::text(packet.encode())).await?;
        Ok(())
    }

    /// The next event from the server, keeping the connection alive meanwhile. An error ends
    /// the connection: drop the client and reconnect.
    pub async fn next_event(&mut self) -> Result<SocketEvent, SocketIoError> {
        if let Some(event) = self.pending.pop_front() {
            return Ok(event);
        }
        loop {
            let deadline = self.timer_deadline();
            tokio::select! {
                frame = self.ws.next() => {
                    let text = match frame {
                        None => return Err(SocketIoError::Closed),
                        Some(Err(e)) => return Err(e.into()),
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) => return Err(SocketIoError::Closed),
                        // tungstenite answers websocket pings itself; binary attachments are unused.
                        Some(Ok(_)) => continue,
                    };
                    if let Some(event) = self.on_text(text.as_str()).await? {
                        return Ok(event);
                    }
                }
                () = sleep_until(deadline) => self.on_timer().await?,
            }
        }
    }

    fn timer_deadline(&self) -> Instant {
        match self.version {
            EioVersion::V3 => self.pong_deadline.unwrap_or(self.next_ping),
            EioVersion::V4 => self.server_ping_deadline,
        }
    }

    async fn on_timer(&mut self) -> Result<(), SocketIoError> {
        let now = Instant::now();
        match self.version {
            EioVersion::V3 => match self.pong_deadline {
                Some(deadline) if now >= deadline => Err(SocketIoError::PingTimeout(millis(
                    self.handshake.ping_timeout_ms,
                ))),
                Some(_) => Ok(()),
                None if now >= self.next_ping => {
                    self.pong_deadline = Some(now + millis(self.handshake.ping_timeout_ms));
                    self.send(EnginePacket::Ping(String::new())).await
                }
                None => Ok(()),
            },
            EioVersion::V4 if now >= self.server_ping_deadline => Err(SocketIoError::PingTimeout(
                millis(self.handshake.ping_interval_ms + self.handshake.ping_timeout_ms),
            )),
            EioVersion::V4 => Ok(()),
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<Option<SocketEvent>, SocketIoError> {
        let message = match EnginePacket::parse(text) {
            Ok(EnginePacket::Message(message)) => message,
            Ok(other) => {
                self.on_engine_control(other).await?;
                return Ok(None);
            }
            // One unreadable frame is the server's bug, not a reason to drop the connection.
            Err(e) => {
                tracing::debug!("ignoring unparsable Engine.IO packet: {e}");
                return Ok(None);
            }
        };
        match SocketPacket::parse(&message) {
            Ok(SocketPacket::Event {
                namespace,
                name,
                args,
                ..
            }) if namespace == "/" => Ok(Some(SocketEvent { name, args })),
            Ok(SocketPacket::Disconnect { namespace }) if namespace == "/" => {
                Err(SocketIoError::Disconnected)
            }
            Ok(SocketPacket::Error { namespace, data }) if namespace == "/" => {
                Err(SocketIoError::ConnectRefused(describe(data)))
            }
            Ok(SocketPacket::Binary) => {
                tracing::debug!("skipping a binary Socket.IO packet (unsupported)");
                Ok(None)
            }
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::debug!("ignoring unparsable Socket.IO packet: {e}");
                Ok(None)
            }
        }
    }

    async fn on_engine_control(&mut self, packet: EnginePacket) -> Result<(), SocketIoError> {
        match packet {
            EnginePacket::Close => Err(SocketIoError::Closed),
            EnginePacket::Ping(data) => {
                if self.version == EioVersion::V4 {
                    self.server_ping_deadline = Instant::now()
                        + millis(self.handshake.ping_interval_ms + self.handshake.ping_timeout_ms);
                }
                self.send(EnginePacket::Pong(data)).await
            }
            EnginePacket::Pong(_) => {
                if self.pong_deadline.take().is_some() {
                    self.next_ping = Instant::now() + millis(self.handshake.ping_interval_ms);
                }
                Ok(())
            }
            EnginePacket::Open(_)
            | EnginePacket::Message(_)
            | EnginePacket::Upgrade
            | EnginePacket::Noop => Ok(()),
        }
    }
}

/// Reads until a text frame; `None` for frames that carry no Engine.IO packet.
async fn next_text(ws: &mut Ws) -> Result<Option<String>, SocketIoError> {
    match ws.next().await {
        None => Err(SocketIoError::Closed),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(Message::Text(text))) => Ok(Some(text.as_str().to_owned())),
        Some(Ok(Message::Close(_))) => Err(SocketIoError::Closed),
        Some(Ok(_)) => Ok(None),
    }
}

fn describe(data: Option<Value>) -> String {
    match data {
        Some(Value::String(text)) => text,
        Some(Value::Object(map)) => match map.get("message").and_then(Value::as_str) {
            Some(message) => message.to_owned(),
            None => Value::Object(map).to_string(),
        },
        Some(other) => other.to_string(),
        None => "no reason given".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(url: &str) -> ClientOptions {
        ClientOptions {
            url: url.into(),
            query: vec![("token".into(), "a b&c".into())],
            version: EioVersion::V3,
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn endpoint_maps_scheme_and_path() {
        assert_eq!(
            endpoint(&options("https://sockets.streamlabs.com"))
                .unwrap()
                .as_str(),
            "wss://sockets.streamlabs.com/socket.io/?token=a+b%26c&EIO=3&transport=websocket"
        );
        assert_eq!(
            endpoint(&options("http://127.0.0.1:5000/"))
                .unwrap()
                .as_str(),
            "ws://127.0.0.1:5000/socket.io/?token=a+b%26c&EIO=3&transport=websocket"
        );
        assert_eq!(
            endpoint(&options("wss://proxy.example/custom/socket.io/?x=1"))
                .unwrap()
                .as_str(),
            "wss://proxy.example/custom/socket.io/?x=1&token=a+b%26c&EIO=3&transport=websocket"
        );
    }

    #[test]
    fn endpoint_rejects_bad_urls_without_echoing_secrets() {
        for bad in ["ftp://x", "not a url", ""] {
            let err = endpoint(&options(bad)).unwrap_err();
            assert!(matches!(err, SocketIoError::BadUrl(_)), "{bad}: {err}");
            assert!(!err.to_string().contains("a b&c"));
        }
    }

    #[test]
    fn describes_connect_errors() {
        assert_eq!(describe(None), "no reason given");
        assert_eq!(describe(Some(Value::String("nope".into()))), "nope");
        assert_eq!(
            describe(Some(serde_json::json!({"message": "Not authorized"}))),
            "Not authorized"
        );
        assert_eq!(describe(Some(serde_json::json!(3))), "3");
    }

    /// A scripted Engine.IO server on loopback, to test liveness without Python.
    async fn serve_once(
        script: impl FnOnce(Ws2) -> futures::future::BoxFuture<'static, ()> + Send + 'static,
    ) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let ws = tokio_tungstenite::accept_async(stream).await.unwrap();
            script(ws).await;
        });
        format!("http://{addr}")
    }

    type Ws2 = WebSocketStream<TcpStream>;

    async fn recv(ws: &mut Ws2) -> String {
        loop {
            if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
                return t.as_str().to_owned();
            }
        }
    }

    #[tokio::test]
    async fn eio3_pings_and_detects_a_missing_pong() {
        let url = serve_once(|mut ws| {
            Box::pin(async move {
                ws.send(Message::text(
                    r#"0{"sid":"s","upgrades":[],"pingInterval":50,"pingTimeout":100}"#,
                ))
                .await
                .unwrap();
                ws.send(Message::text("40")).await.unwrap();
                assert_eq!(recv(&mut ws).await, "2");
                ws.send(Message::text("3")).await.unwrap();
                ws.send(Message::text(r#"42["event",{"n":1}]"#))
                    .await
                    .unwrap();
                assert_eq!(recv(&mut ws).await, "2");
                // No pong this time; keep the socket open so only liveness can end it.
                let _ = recv(&mut ws).await;
            })
        })
        .await;
        let mut client = SocketIoClient::connect(&options(&url)).await.unwrap();
        assert_eq!(client.handshake_info().sid, "s");
        let event = client.next_event().await.unwrap();
        assert_eq!(event.name, "event");
        assert_eq!(event.args, vec![serde_json::json!({"n":1})]);
        let err = timeout(Duration::from_secs(10), client.next_event())
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, SocketIoError::PingTimeout(_)), "{err}");
    }

    #[tokio::test]
    async fn eio4_answers_server_pings_and_emits() {
        let url = serve_once(|mut ws| {
            Box::pin(async move {
                ws.send(Message::text(
                    r#"0{"sid":"s","upgrades":[],"pingInterval":1000,"pingTimeout":1000}"#,
                ))
                .await
                .unwrap();
                assert_eq!(recv(&mut ws).await, "40");
                ws.send(Message::text(r#"40{"sid":"x"}"#)).await.unwrap();
                assert_eq!(recv(&mut ws).await, r#"42["hello",1]"#);
                ws.send(Message::text("2")).await.unwrap();
                assert_eq!(recv(&mut ws).await, "3");
                ws.send(Message::text("garbage")).await.unwrap();
                ws.send(Message::text(r#"42["bye"]"#)).await.unwrap();
                ws.send(Message::text("41")).await.unwrap();
                let _ = ws.next().await;
            })
        })
        .await;
        let mut opts = options(&url);
        opts.version = EioVersion::V4;
        let mut client = SocketIoClient::connect(&opts).await.unwrap();
        client
            .emit("hello", vec![serde_json::json!(1)])
            .await
            .unwrap();
        assert_eq!(client.next_event().await.unwrap().name, "bye");
        assert!(matches!(
            client.next_event().await,
            Err(SocketIoError::Disconnected)
        ));
    }

    #[tokio::test]
    async fn connect_error_packet_is_reported() {
        let url = serve_once(|mut ws| {
            Box::pin(async move {
                ws.send(Message::text(
                    r#"0{"sid":"s","upgrades":[],"pingInterval":1000,"pingTimeout":1000}"#,
                ))
                .await
                .unwrap();
                ws.send(Message::text(r#"44"Not authorized""#))
                    .await
                    .unwrap();
                let _ = ws.next().await;
            })
        })
        .await;
        let err = SocketIoClient::connect(&options(&url)).await.unwrap_err();
        assert!(
            matches!(&err, SocketIoError::ConnectRefused(m) if m == "Not authorized"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn http_401_is_unauthorized() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 2048];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        let err = SocketIoClient::connect(&options(&format!("http://{addr}")))
            .await
            .unwrap_err();
        assert!(err.is_unauthorized(), "{err}");
    }

    #[tokio::test]
    async fn refused_port_is_a_network_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = SocketIoClient::connect(&options(&format!("http://{addr}")))
            .await
            .unwrap_err();
        assert!(matches!(err, SocketIoError::Network(_)), "{err}");
    }
}
