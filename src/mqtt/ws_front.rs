//! The front door of the broker's MQTT-over-WebSocket listener: refuses browser pages of other
//! sites before any MQTT is spoken.
//!
//! A browser lets any web page open a WebSocket to `ws://127.0.0.1:9001` and sends the page's
//! origin in the `Origin` header; CORS does not apply. Without this check, any site the
//! streamer visits could publish `R/command/chat/send` as the streamer. rmqtt's WebSocket
//! handshake cannot be told to check origins, so this listener reads the HTTP upgrade request,
//! answers 403 to a foreign origin, and otherwise hands the connection, bytes unchanged, to
//! rmqtt's WebSocket listener on a private loopback port, prefixed with a PROXY protocol line so
//! the broker still sees (and the login rules still judge) the real client address.
//!
//! Allowed: no `Origin` (non-browser clients send none), an origin in `[mqtt] ws_origins`, and
//! ongwatch's own pages (the dashboard's HTTP port on the host the browser used to reach the
//! broker, loopback names counting as one host).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A browser's upgrade request is well under this; more is not a browser.
const MAX_HEAD: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Which `Origin` headers may open a WebSocket to the broker.
pub struct OriginPolicy {
    /// The dashboard's port, set once the web server is bound (0 until then).
    pub http_port: AtomicU16,
    /// `[mqtt] ws_origins`, as `scheme://host[:port]`.
    extra: Vec<url::Origin>,
}

impl OriginPolicy {
    pub fn new(ws_origins: &[String]) -> Arc<Self> {
        Arc::new(Self {
            http_port: AtomicU16::new(0),
            extra: ws_origins
                .iter()
                .filter_map(|o| url::Url::parse(o).ok())
                .map(|u| u.origin())
                .collect(),
        })
    }

    /// `host` is the request's `Host` header, the name the browser used for the broker.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let Ok(url) = url::Url::parse(origin) else {
            return false;
        };
        if self.extra.contains(&url.origin()) {
            return true;
        }
        let http_port = self.http_port.load(Ordering::Relaxed);
        let (Some(origin_host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        if http_port == 0 || port != http_port || !matches!(url.scheme(), "http" | "https") {
            return false;
        }
        let broker_host = host.map(host_name).unwrap_or_default();
        same_host(origin_host, broker_host)
    }
}

/// `Host` without its port (`[::1]:9001` → `[::1]`, `localhost:9001` → `localhost`).
fn host_name(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.parse::<u16>().is_ok() => {
            if name.starts_with('[') || !name.contains(':') {
                name
            } else {
                host
            }
        }
        _ => host,
    }
}

fn is_loopback_name(host: &str) -> bool {
    let bare = host.trim_matches(['[', ']']);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn same_host(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (is_loopback_name(a) && is_loopback_name(b))
}

/// Accepts on `listener` forever, passing allowed connections to `upstream`.
pub async fn serve(listener: TcpListener, upstream: SocketAddr, policy: Arc<OriginPolicy>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %e, "MQTT WebSocket listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let policy = policy.clone();
        tokio::spawn(async move {
            if let Err(e) = pass(stream, peer, upstream, &policy).await {
                tracing::debug!(%peer, error = %e, "MQTT WebSocket connection ended");
            }
        });
    }
}

async fn pass(
    mut client: TcpStream,
    peer: SocketAddr,
    upstream: SocketAddr,
    policy: &OriginPolicy,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let mut head = Vec::with_capacity(1024);
    let end = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut head))
        .await
        .map_err(|_| std::io::Error::other("no upgrade request in time"))??;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(
        request.parse(&head[..end]),
        Ok(httparse::Status::Complete(_))
    ) {
        client
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            )
            .await?;
        return Ok(());
    }
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let origin = header("origin");
    if !policy.allows(origin, header("host")) {
        let origin = origin.unwrap_or_default();
        tracing::warn!(
            %peer,
            origin,
            "refused an MQTT WebSocket from a web page of another site; add its origin to [mqtt] ws_origins if it is yours"
        );
        let body = format!(
            "the broker refuses web pages from {origin}; add it to [mqtt] ws_origins if it is yours\n"
        );
        let response = format!(
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        client.write_all(response.as_bytes()).await?;
        return Ok(());
    }
    let mut broker = TcpStream::connect(upstream).await?;
    let _ = broker.set_nodelay(true);
    let local = client.local_addr()?;
    // One write: rmqtt reads the PROXY line with a single peek.
    let mut first = proxy_line(peer, local).into_bytes();
    first.extend_from_slice(&head);
    broker.write_all(&first).await?;
    tokio::io::copy_bidirectional(&mut client, &mut broker).await?;
    Ok(())
}

/// Reads until the end of the HTTP head; returns its length (`head` may hold more after it).
async fn read_head(client: &mut TcpStream, head: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut buf = [0u8; 2048];
    loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the upgrade request"));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(at + 4);
        }
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("upgrade request too large"));
        }
    }
}

/// PROXY protocol v1: the client's address as the broker should see it.
fn proxy_line(peer: SocketAddr, local: SocketAddr) -> String {
    match (peer, local) {
        (SocketAddr::V4(p), SocketAddr::V4(l)) => format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            p.ip(),
            l.ip(),
            p.port(),
            l.port()
        ),
        (SocketAddr::V6(p), SocketAddr::V6(l)) => format!(
            "PROXY TCP6 {} {} {} {}\r\n",
            p.ip(),
            l.ip(),
            p.port(),
            l.port()
        ),
        _ => "PROXY UNKNOWN\r\n".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let policy = OriginPolicy::new(&["https://overlays.example".into()]);
        policy.http_port.store(8080, Ordering::Relaxed);
        assert!(policy.allows(None, Some("127.0.0.1:9001")));
        assert!(policy.allows(Some("http://127.0.0.1:8080"), Some("127.0.0.1:9001")));
        assert!(policy.allows(Some("http://localhost:8080"), Some("127.0.0.1:9001")));
        assert!(policy.allows(Some("http://192.168.1.5:8080"), Some("192.168.1.5:9001")));
        assert!(policy.allows(Some("https://overlays.example"), Some("127.0.0.1:9001")));
        assert!(!policy.allows(Some("https://evil.example"), Some("127.0.0.1:9001")));
        assert!(!policy.allows(Some("http://127.0.0.1:3000"), Some("127.0.0.1:9001")));
        assert!(!policy.allows(Some("http://evil.example:8080"), Some("127.0.0.1:9001")));
        assert!(!policy.allows(Some("null"), Some("127.0.0.1:9001")));
        assert!(policy.allows(Some("http://[::1]:8080"), Some("[::1]:9001")));
    }

    #[test]
    fn proxy_lines() {
        let p: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let l: SocketAddr = "10.0.0.1:9001".parse().unwrap();
        assert_eq!(
            proxy_line(p, l),
            "PROXY TCP4 10.0.0.2 10.0.0.1 5000 9001\r\n"
        );
    }
}
