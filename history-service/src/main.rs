//! history-service binary: configuration, telemetry, pool, migrations, bind,
//! serve until SIGTERM. `history-service migrate` only applies migrations.

use anyhow::Context as _;
use history_service::{AppState, Config, MIGRATOR, Streams, config::Command, server};
use service_kit::{AuthLayer, serve::Listeners};
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
            eprintln!("history-service: configuration error: {error}");
            std::process::exit(2);
        }
    };
    service_kit::telemetry::init(settings.log_format, &settings.log_filter)
        .map_err(|error| anyhow::anyhow!("RUST_LOG: {error}"))?;

    let pool = server::connect_lazy(&settings.database);
    MIGRATOR.run(&pool).await.context("applying migrations (is DATABASE_URL reachable?)")?;
    tracing::info!(migrations = MIGRATOR.iter().count(), "migrations applied");
    if settings.command == Command::Migrate {
        return Ok(());
    }

    let auth = AuthLayer::connect_lazy(&settings.auth_service_url, settings.identity.clone())
        .with_context(|| format!("AUTH_SERVICE_URL: {:?} is not a usable URL", settings.auth_service_url))?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("HISTORY_LISTEN: cannot listen on {}", settings.listen))?;
    let admin = TcpListener::bind(settings.metrics_listen)
        .await
        .with_context(|| format!("HISTORY_METRICS_LISTEN: cannot listen on {}", settings.metrics_listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
        metrics = %admin.local_addr()?,
        auth_service = %settings.auth_service_url,
        pool_size = settings.database.max_connections,
        "history-service listening"
    );
    let state = AppState { pool, auth, streams: Streams::new() };
    let shutdown = service_kit::shutdown::on_signal();
    server::run(Listeners { grpc: listener, admin: Some(admin) }, state, settings.serve, shutdown).await
}
