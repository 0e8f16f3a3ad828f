//! Serving: the gRPC server with health, reflection, gRPC-web and CORS, the
//! JWKS refresher, and the graceful drain. `main` and the tests both call [`run`].

use std::sync::Arc;

use chat_proto::auth::v1::auth_service_server::AuthServiceServer;
use prometheus_client::registry::Registry;
use service_kit::{limit::RequestSizeLayer, observe::ObserveLayer, serve::Listeners};
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{config::ServeOptions, service::AuthGrpc, verifier::Verifier};

/// Largest request message accepted: a token is at most 16 KiB, so 64 KiB
/// leaves room for protobuf framing and nothing else.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Sets the overall and the `auth.v1.AuthService` health status.
async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(chat_proto::AUTH_SERVICE_NAME, status).await;
}

/// Serves `auth.v1.AuthService` (and `/metrics` on the admin listener) until
/// `shutdown` is cancelled, then drains in-flight calls for at most
/// `options.shutdown_grace`.
///
/// Health is NOT_SERVING until the JWKS has been fetched once (the refresher
/// keeps retrying), and again from the moment shutdown starts.
pub async fn run(
    listeners: Listeners,
    verifier: Arc<Verifier>,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut registry = Registry::with_prefix("auth");
    let observe = ObserveLayer::new(
        &mut registry,
        service_kit::observe::known_methods(&[chat_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET]),
    );
    verifier.jwks().register_metrics(&mut registry);
    let registry = Arc::new(registry);

    let (reporter, health_service) = tonic_health::server::health_reporter();
    set_health(&reporter, ServingStatus::NotServing).await;

    let (reflection_v1, reflection_v1alpha) = service_kit::reflection::services(&[chat_proto::AUTH_SERVICE_NAME])?;

    // Background work stops with the server.
    let background = shutdown.child_token();
    let admin = listeners.admin.map(|listener| {
        tokio::spawn(service_kit::admin::serve(listener, registry.clone(), Arc::new(|| {}), background.clone()))
    });
    let refresher = tokio::spawn(verifier.jwks().clone().run_refresher(background.clone()));
    let health_task = {
        let reporter = reporter.clone();
        let mut ready = verifier.jwks().ready();
        let background = background.clone();
        tokio::spawn(async move {
            loop {
                let status =
                    if *ready.borrow_and_update() { ServingStatus::Serving } else { ServingStatus::NotServing };
                set_health(&reporter, status).await;
                tokio::select! {
                    () = background.cancelled() => break,
                    changed = ready.changed() => if changed.is_err() { break },
                }
            }
        })
    };

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
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(AuthServiceServer::new(AuthGrpc::new(verifier)))
        .serve_with_incoming_shutdown(service_kit::serve::incoming(listeners.grpc), drain.clone().cancelled_owned());

    let result =
        service_kit::shutdown::serve_with_grace(serve, shutdown.clone(), drain, options.shutdown_grace, async {
            background.cancel();
            // The health task may still be running; make the final word NOT_SERVING.
            set_health(&reporter, ServingStatus::NotServing).await;
        })
        .await;
    background.cancel();
    let _ = refresher.await;
    let _ = health_task.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    result.map_err(Into::into)
}
