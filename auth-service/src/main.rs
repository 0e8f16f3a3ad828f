//! auth-service binary: configuration, telemetry, bind, serve until SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use auth_service::{Config, JwksCache, Verifier, config::Command, server};
use service_kit::serve::Listeners;
use tokio::net::TcpListener;

// glibc's allocator showed up as ~15% of history-service's CPU under load
// (malloc_consolidate, unlink_chunk); mimalloc is faster for the many small,
// short-lived allocations of request handling.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env();
    if config.command == Some(Command::Healthcheck) {
        std::process::exit(service_kit::probe::exit_code(config.listen).await);
    }
    let settings = match config.resolve() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("auth-service: configuration error: {error}");
            std::process::exit(2);
        }
    };
    service_kit::telemetry::init(settings.log_format, &settings.log_filter)
        .map_err(|error| anyhow::anyhow!("RUST_LOG: {error}"))?;

    let jwks = JwksCache::new(settings.jwks.clone()).context("building the JWKS HTTP client")?;
    let verifier = Arc::new(Verifier::new(jwks, settings.claims.clone()));
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("AUTH_LISTEN: cannot listen on {}", settings.listen))?;
    let admin = TcpListener::bind(settings.metrics_listen)
        .await
        .with_context(|| format!("AUTH_METRICS_LISTEN: cannot listen on {}", settings.metrics_listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        metrics = %admin.local_addr()?,
        jwks_url = %settings.jwks.url,
        issuers = ?settings.claims.issuers,
        audiences = ?settings.claims.audiences,
        "auth-service listening"
    );
    let shutdown = service_kit::shutdown::on_signal();
    let listeners = Listeners { grpc: listener, admin: Some(admin) };
    server::run(listeners, verifier, settings.serve, shutdown).await
}
