//! Test harness shared by the services' tests.
//!
//! - [`keys`]: signing keys for every algorithm Better Auth uses, JWKs, tokens.
//! - [`jwks_server`]: a controllable JWKS endpoint on 127.0.0.1:0.
//! - [`auth`]: auth-service started in-process.
//! - [`better_auth`]: the real Better Auth (Node) from `e2e/better-auth`.

#![allow(clippy::unwrap_used, missing_docs)]

pub mod auth;
pub mod better_auth;
pub mod grpcurl;
pub mod history;
pub mod jwks_server;
pub mod keys;
pub mod pg;
pub mod whoami;

pub use auth::TestAuthService;
pub use jwks_server::{JwksBehavior, JwksServer};
pub use keys::TestKey;

/// A connected channel to `url` (`http://127.0.0.1:port`).
pub async fn channel(url: impl Into<String>) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(url.into()).expect("endpoint url").connect().await.expect("connect")
}

/// GETs `http://{addr}/metrics`.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics")).await.expect("scrape /metrics");
    assert!(response.status().is_success(), "/metrics answered {}", response.status());
    response.text().await.expect("metrics body")
}

/// The value of the sample `name{labels}` (labels as written in the text,
/// e.g. `grpc_code="OK"`; all must be present), or `None`.
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        if !labels.iter().all(|label| rest.contains(label)) {
            return None;
        }
        rest.rsplit(' ').next()?.parse().ok()
    })
}
