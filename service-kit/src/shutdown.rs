//! Graceful shutdown: wait for SIGINT or SIGTERM, then give in-flight calls a
//! bounded time to finish.

use std::{future::Future, time::Duration};

use tokio_util::sync::CancellationToken;

/// Resolves on the first SIGINT or SIGTERM and returns its name.
pub async fn signal() -> &'static str {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

/// A token cancelled on the first SIGINT/SIGTERM (the signal is logged).
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        let name = signal().await;
        tracing::info!(signal = name, "shutdown requested");
        trigger.cancel();
    });
    token
}

/// Runs `serve` (a server future that drains once `drain` is cancelled)
/// until it finishes by itself, or, after `shutdown` is cancelled, for at
/// most `grace` more. `before_drain` runs once at the shutdown request, before
/// the server stops accepting calls (health turns NOT_SERVING there).
pub async fn serve_with_grace<F, E, B>(
    serve: F,
    shutdown: CancellationToken,
    drain: CancellationToken,
    grace: Duration,
    before_drain: B,
) -> Result<(), E>
where
    F: Future<Output = Result<(), E>>,
    B: Future<Output = ()>,
{
    tokio::pin!(serve);
    tokio::select! {
        result = &mut serve => return result,
        () = shutdown.cancelled() => {}
    }
    before_drain.await;
    drain.cancel();
    match tokio::time::timeout(grace, &mut serve).await {
        Ok(result) => {
            tracing::info!("drained; stopped");
            result
        }
        Err(_) => {
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                "in-flight calls did not finish within the grace period; stopping anyway"
            );
            Ok(())
        }
    }
}
