//! The one outbound HTTP client: reqwest on rustls (ring) with the system's root certificates,
//! bounded timeouts and ongwatch's user agent. Every component that calls an HTTP API (OAuth,
//! Helix, webhooks, Home Assistant) builds its client here so TLS is configured once.

use std::time::Duration;

/// An HTTP client: rustls with ring and the system's root certificates.
pub fn http_client() -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the platform store holds but rustls cannot parse is skipped, as browsers do.
        let _ = roots.add(cert);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("ongwatch/", env!("CARGO_PKG_VERSION")));
    let builder = match tls {
        Ok(tls) => builder.tls_backend_preconfigured(tls),
        Err(_) => builder,
    };
    builder.build().unwrap_or_else(|_| reqwest::Client::new())
}

/// `host[:port]` of `url`, for messages: never the path or query, which may carry a token.
pub fn host_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}
