//! Serving: the database pool, the gRPC server with the identity layer,
//! health, reflection, gRPC-web and CORS, and the graceful drain. `main` and
//! the tests both call [`run`].

use std::sync::Arc;

use chat_proto::history::v1::history_service_server::HistoryServiceServer;
use prometheus_client::{metrics::gauge::Gauge, registry::Registry};
use service_kit::{AuthLayer, limit::RequestSizeLayer, observe::ObserveLayer, serve::Listeners};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    config::{DatabaseSettings, MAX_REQUEST_BYTES, ServeOptions},
    db::Db,
    service::{HistoryGrpc, Streams},
};

/// A pooled connection idle for longer than this is pinged before use;
/// fresher ones are trusted. (sqlx's default pings before every use: a
/// round trip per call. A connection that broke meanwhile fails its call
/// with UNAVAILABLE and is discarded; clients retry.)
pub const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// Pool options for `settings`: size, acquire timeout and, on every new
/// connection, the statement timeout.
pub fn pool_options(settings: &DatabaseSettings) -> PgPoolOptions {
    let statement_timeout = settings.statement_timeout;
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(connection).await?;
                }
                Ok(true)
            })
        })
        .after_connect(move |connection, _| {
            Box::pin(async move {
                if let Some(timeout) = statement_timeout {
                    sqlx::query("SELECT set_config('statement_timeout', $1, false)")
                        .bind(format!("{}ms", timeout.as_millis()))
                        .execute(connection)
                        .await?;
                }
                Ok(())
            })
        })
}

/// A lazily connecting pool: the service starts (and reports health) even
/// if the database is briefly unreachable; calls answer `UNAVAILABLE` meanwhile.
pub fn connect_lazy(settings: &DatabaseSettings) -> PgPool {
    pool_options(settings).connect_lazy_with(settings.connect.clone())
}

/// A pool on `connect` with the service's per-connection setup.
pub fn pool_with(connect: PgConnectOptions, settings: &DatabaseSettings) -> PgPool {
    pool_options(settings).connect_lazy_with(connect)
}

/// What the server needs besides its listener.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database pool (migrations already applied).
    pub pool: PgPool,
    /// The identity layer, connected to auth-service.
    pub auth: AuthLayer,
    /// Server-streaming tasks.
    pub streams: Streams,
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(chat_proto::HISTORY_SERVICE_NAME, status).await;
}

/// Registers the pool gauges; returns the closure that refreshes them.
fn pool_metrics(registry: &mut Registry, pool: &PgPool) -> service_kit::admin::Refresh {
    let (open, idle, max) = (Gauge::<i64>::default(), Gauge::<i64>::default(), Gauge::<i64>::default());
    registry.register("db_pool_connections", "Open connections in the pool", open.clone());
    registry.register("db_pool_idle_connections", "Idle connections in the pool", idle.clone());
    registry.register("db_pool_max_connections", "Pool size limit", max.clone());
    let pool = pool.clone();
    Arc::new(move || {
        open.set(i64::from(pool.size()));
        idle.set(pool.num_idle() as i64);
        max.set(i64::from(pool.options().get_max_connections()));
    })
}

/// Serves `history.v1.HistoryService` (and `/metrics` on the admin listener)
/// until `shutdown` is cancelled, then drains in-flight calls for at most
/// `options.shutdown_grace`.
pub async fn run(
    listeners: Listeners,
    state: AppState,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix("history");
    let observe = ObserveLayer::new(
        &mut registry,
        service_kit::observe::known_methods(&[chat_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET]),
    );
    state.auth.register_metrics(&mut registry);
    state.streams.register_metrics(&mut registry);
    let db = Db::new(state.pool.clone(), options.prepared_statements);
    db.register_metrics(&mut registry);
    let refresh = pool_metrics(&mut registry, &state.pool);
    let registry = Arc::new(registry);
    let admin_stop = CancellationToken::new();
    let admin = listeners
        .admin
        .map(|listener| tokio::spawn(service_kit::admin::serve(listener, registry, refresh, admin_stop.clone())));

    let (reporter, health_service) = tonic_health::server::health_reporter();
    // Migrations ran before `run`; the service is ready.
    set_health(&reporter, ServingStatus::Serving).await;
    let (reflection_v1, reflection_v1alpha) = service_kit::reflection::services(&[chat_proto::HISTORY_SERVICE_NAME])?;
    let history = HistoryServiceServer::new(HistoryGrpc::new(db, state.streams.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES);

    let drain = CancellationToken::new();
    let serve = Server::builder()
        .accept_http1(true)
        // Room for a 16 KiB token plus ordinary metadata; hyper's default
        // (16 KiB for the whole header list) would answer such a token with a
        // bare HTTP 431 instead of TOKEN_MALFORMED.
        .http2_max_header_list_size(service_kit::serve::MAX_HEADER_LIST_BYTES)
        .layer(service_kit::web::cors_layer(&options.cors_allowed_origins))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(observe)
        .layer(RequestSizeLayer::new(MAX_REQUEST_BYTES, crate::error::DOMAIN))
        .layer(state.auth.clone())
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(history)
        .serve_with_incoming_shutdown(service_kit::serve::incoming(listeners.grpc), drain.clone().cancelled_owned());

    let result = service_kit::shutdown::serve_with_grace(serve, shutdown, drain, options.shutdown_grace, async {
        set_health(&reporter, ServingStatus::NotServing).await;
    })
    .await;
    state.streams.shutdown().await;
    admin_stop.cancel();
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    result.map_err(Into::into)
}
