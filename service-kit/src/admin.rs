//! The admin HTTP port: Prometheus text metrics at `GET /metrics`.
//!
//! Kept off the gRPC port so it can be firewalled separately and scraped
//! without a token.

use std::sync::Arc;

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{encoding::text::encode, registry::Registry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Called before each scrape to refresh gauges read from elsewhere (pool sizes).
pub type Refresh = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
struct Admin {
    registry: Arc<Registry>,
    refresh: Refresh,
}

async fn metrics(State(admin): State<Admin>) -> impl IntoResponse {
    (admin.refresh)();
    let mut text = String::new();
    match encode(&mut text, &admin.registry) {
        Ok(()) => (
            axum::http::StatusCode::OK,
            [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
            text,
        ),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, [(header::CONTENT_TYPE, "text/plain")], String::new())
        }
    }
}

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, refresh: Refresh, shutdown: CancellationToken) {
    let app = Router::new().route("/metrics", get(metrics)).with_state(Admin { registry, refresh });
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(%error, "admin server failed");
    }
}
