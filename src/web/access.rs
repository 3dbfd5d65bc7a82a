//! Who may use the HTTP server.
//!
//! Addresses in `[http] trusted` (loopback by default) are let in without a token; everyone
//! else needs `[http] token`, as `Authorization: Bearer <token>` or `?token=<token>`. With no
//! token configured, untrusted addresses are refused outright.
//!
//! Trusted, tokenless requests get two more checks, because a browser on the streamer's own
//! machine is itself on loopback: any web site it visits could otherwise drive the API.
//! - The `Host` header must be an IP literal or `localhost` (a DNS-rebinding page has its
//!   own host name there).
//! - An `Origin` header, when present, must be this server (a cross-site WebSocket or form
//!   post carries the foreign site's origin; CORS does not protect WebSockets).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::api::error_response;
use crate::secret::same_secret;

/// An address block such as `127.0.0.0/8` or `::1/128`; a bare address means just that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "{0:?} is not an address block; use e.g. \"127.0.0.1/32\", \"192.168.1.0/24\" or \"::1/128\""
)]
pub struct CidrError(String);

impl Cidr {
    /// Loopback, IPv4 and IPv6: the default `[http] trusted`.
    pub fn loopback() -> Vec<Cidr> {
        vec![
            Cidr {
                network: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                prefix: 8,
            },
            Cidr {
                network: IpAddr::V6(Ipv6Addr::LOCALHOST),
                prefix: 128,
            },
        ]
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The access rules, from `[http] token` and `[http] trusted`.
pub struct Access {
    token: String,
    trusted: Vec<Cidr>,
}

impl Access {
    pub fn new(token: String, trusted: Vec<Cidr>) -> Self {
        Self { token, trusted }
    }

    fn check(&self, peer: IpAddr, headers: &HeaderMap, query: Option<&str>) -> Result<(), Refusal> {
        let given = bearer(headers).or_else(|| query_token(query));
        if let Some(given) = given {
            if !self.token.is_empty() && same_secret(given.as_bytes(), self.token.as_bytes()) {
                return Ok(());
            }
            return Err(Refusal::WrongToken);
        }
        if !self.trusted.iter().any(|cidr| cidr.contains(peer)) {
            return Err(if self.token.is_empty() {
                Refusal::NoTokenConfigured {
                    peer,
                    trusted: self.trusted.iter().map(Cidr::to_string).collect(),
                }
            } else {
                Refusal::TokenRequired { peer }
            });
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !host.is_empty() && !is_local_host_name(host) {
            return Err(Refusal::HostName(host.to_owned()));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            let origin_host = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if origin_host != Some(host) {
                return Err(Refusal::CrossOrigin(origin.to_owned()));
            }
        }
        Ok(())
    }
}

enum Refusal {
    WrongToken,
    TokenRequired { peer: IpAddr },
    NoTokenConfigured { peer: IpAddr, trusted: Vec<String> },
    HostName(String),
    CrossOrigin(String),
}

impl Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::WrongToken => error_response(
                StatusCode::UNAUTHORIZED,
                "wrong token: send the [http] token of ongwatch.toml as Authorization: Bearer <token> or ?token=<token>",
            ),
            Refusal::TokenRequired { peer } => error_response(
                StatusCode::UNAUTHORIZED,
                format!(
                    "{peer} is not a trusted address, so a token is required: send the [http] token as Authorization: Bearer <token> or ?token=<token>"
                ),
            ),
            Refusal::NoTokenConfigured { peer, trusted } => error_response(
                StatusCode::FORBIDDEN,
                format!(
                    "ongwatch answers only {} because [http] token is not set; to allow {peer}, set [http] token in ongwatch.toml and send it as Authorization: Bearer <token> or ?token=<token>",
                    trusted.join(", ")
                ),
            ),
            Refusal::HostName(host) => error_response(
                StatusCode::FORBIDDEN,
                format!(
                    "Host {host:?} is refused without a token (DNS rebinding protection); open ongwatch by IP address or localhost, or pass the [http] token"
                ),
            ),
            Refusal::CrossOrigin(origin) => error_response(
                StatusCode::FORBIDDEN,
                format!(
                    "requests from the web page at {origin:?} are refused without a token; open the page from ongwatch itself, or pass the [http] token"
                ),
            ),
        }
    }
}

/// The middleware in front of every route.
pub async fn guard(
    State(access): State<Arc<Access>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match access.check(peer.ip(), request.headers(), request.uri().query()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::debug!(%peer, path = %request.uri().path(), "HTTP request refused");
            refusal.into_response().into_response()
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn query_token(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
}

fn is_local_host_name(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        // "[::1]:8080", "127.0.0.1:8080", "localhost:8080"
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn cidr_blocks() {
        let lan: Cidr = "192.168.1.0/24".parse().unwrap();
        assert!(lan.contains("192.168.1.77".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(one.contains("::ffff:127.0.0.1".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        for bad in ["127.0.0.1/33", "nope", "::1/129", "10.0.0.0/x"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_trust_and_browsers() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.168.1.5".parse().unwrap();
        let host = ("host", "127.0.0.1:8080");
        let open = Access::new(String::new(), Cidr::loopback());
        assert!(open.check(local, &headers(&[host]), None).is_ok());
        assert!(matches!(
            open.check(remote, &headers(&[host]), None),
            Err(Refusal::NoTokenConfigured { .. })
        ));
        assert!(matches!(
            open.check(local, &headers(&[("host", "evil.example:8080")]), None),
            Err(Refusal::HostName(_))
        ));
        assert!(matches!(
            open.check(
                local,
                &headers(&[host, ("origin", "https://evil.example")]),
                None
            ),
            Err(Refusal::CrossOrigin(_))
        ));
        assert!(
            open.check(
                local,
                &headers(&[host, ("origin", "http://127.0.0.1:8080")]),
                None
            )
            .is_ok()
        );

        let locked = Access::new("s3cret".into(), Cidr::loopback());
        assert!(matches!(
            locked.check(remote, &headers(&[host]), None),
            Err(Refusal::TokenRequired { .. })
        ));
        assert!(
            locked
                .check(remote, &headers(&[host]), Some("token=s3cret"))
                .is_ok()
        );
        assert!(
            locked
                .check(
                    remote,
                    &headers(&[("authorization", "Bearer s3cret")]),
                    None
                )
                .is_ok()
        );
        assert!(matches!(
            locked.check(local, &headers(&[host]), Some("token=nope")),
            Err(Refusal::WrongToken)
        ));
    }
}
