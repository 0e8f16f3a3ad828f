//! The identity layer on a small tonic service, wrapped exactly as
//! history-service wraps itself: `Server::builder().layer(AuthLayer)`.

use std::{net::SocketAddr, time::Duration};

use chat_proto::auth::v1::{
    VerifyTokenRequest, auth_service_client::AuthServiceClient, auth_service_server::AuthServiceServer,
};
use serde_json::json;
use service_kit::{AuthLayer, AuthLayerConfig, status};
use test_support::{
    JwksServer, TestAuthService, TestKey,
    keys::{better_auth_claims, now},
};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Status, transport::Server};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use test_support::whoami::WhoAmI;

struct Downstream {
    addr: SocketAddr,
    layer: AuthLayer,
    stop: CancellationToken,
}

impl Drop for Downstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn downstream(auth_url: &str) -> Downstream {
    let layer = AuthLayer::connect_lazy(
        auth_url,
        AuthLayerConfig { verify_timeout: Duration::from_secs(2), ..AuthLayerConfig::default() },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let stop = CancellationToken::new();
    let server = Server::builder()
        .layer(layer.clone())
        .add_service(health)
        .add_service(AuthServiceServer::new(WhoAmI))
        .serve_with_incoming_shutdown(service_kit::serve::incoming(listener), stop.clone().cancelled_owned());
    tokio::spawn(server);
    Downstream { addr, layer, stop }
}

async fn whoami(
    addr: SocketAddr,
    authorization: Option<&str>,
    extra: &[(&'static str, &str)],
) -> Result<String, Status> {
    let mut client = AuthServiceClient::connect(format!("http://{addr}")).await.unwrap();
    let mut request = Request::new(VerifyTokenRequest { token: String::new() });
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value.parse().unwrap());
    }
    for (name, value) in extra {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    client.verify_token(request).await.map(|response| response.into_inner().identity.unwrap().user_id)
}

struct Stack {
    key: TestKey,
    jwks: JwksServer,
    auth: TestAuthService,
    downstream: Downstream,
}

async fn stack() -> Stack {
    let key = TestKey::generate("EdDSA", "k1");
    let jwks = JwksServer::serving(test_support::keys::jwks(&[&key])).await;
    let auth = TestAuthService::start_for(&jwks).await;
    let downstream = downstream(&auth.url()).await;
    Stack { key, jwks, auth, downstream }
}

impl Stack {
    fn bearer(&self, user: &str) -> String {
        format!("Bearer {}", self.key.sign(&better_auth_claims(user, &self.jwks.base_url())))
    }
}

#[tokio::test]
async fn the_verified_identity_arrives_in_request_extensions() {
    let s = stack().await;
    assert_eq!(whoami(s.downstream.addr, Some(&s.bearer("alice")), &[]).await.unwrap(), "alice");
}

#[tokio::test]
async fn identity_metadata_sent_by_the_client_is_never_trusted() {
    let s = stack().await;
    let user = whoami(
        s.downstream.addr,
        Some(&s.bearer("alice")),
        &[("x-user-id", "bob"), ("x-auth-user", "bob"), ("x-forwarded-user", "bob")],
    )
    .await
    .unwrap();
    assert_eq!(user, "alice");
    let error = whoami(s.downstream.addr, None, &[("x-user-id", "bob")]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_call_without_a_token_is_token_missing() {
    let s = stack().await;
    let error = whoami(s.downstream.addr, None, &[]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    assert_eq!(status::reason(&error).as_deref(), Some("TOKEN_MISSING"));
    let error = whoami(s.downstream.addr, Some("Basic YTpi"), &[]).await.unwrap_err();
    assert_eq!(status::reason(&error).as_deref(), Some("TOKEN_MALFORMED"));
}

#[tokio::test]
async fn auth_service_rejections_pass_through_with_their_reason() {
    let s = stack().await;
    let mut claims = better_auth_claims("alice", &s.jwks.base_url());
    claims["exp"] = json!(now() - 600);
    let error = whoami(s.downstream.addr, Some(&format!("Bearer {}", s.key.sign(&claims))), &[]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    assert_eq!(status::reason(&error).as_deref(), Some("TOKEN_EXPIRED"));
    assert!(error.message().starts_with("token expired 10m"), "{}", error.message());
    // Rejections are not cached: each one asks again.
    let _ = whoami(s.downstream.addr, Some(&format!("Bearer {}", s.key.sign(&claims))), &[]).await;
    assert_eq!(s.downstream.layer.stats().verify_calls.get(), 2);
}

#[tokio::test]
async fn health_passes_without_a_token() {
    let s = stack().await;
    let mut client = HealthClient::new(test_support::channel(format!("http://{}", s.downstream.addr)).await);
    client.check(HealthCheckRequest { service: String::new() }).await.unwrap();
    assert_eq!(s.downstream.layer.stats().verify_calls.get(), 0);
}

#[tokio::test]
async fn a_cached_identity_does_not_call_auth_service_again_even_during_an_outage() {
    let s = stack().await;
    let alice = s.bearer("alice");
    assert_eq!(whoami(s.downstream.addr, Some(&alice), &[]).await.unwrap(), "alice");
    assert_eq!(whoami(s.downstream.addr, Some(&alice), &[]).await.unwrap(), "alice");
    let stats = s.downstream.layer.stats();
    assert_eq!(stats.verify_calls.get(), 1);
    assert_eq!(stats.cache_hits.get(), 1);

    // auth-service goes away: the cached identity keeps working...
    let bob = s.bearer("bob");
    s.auth.stop().await;
    assert_eq!(whoami(s.downstream.addr, Some(&alice), &[]).await.unwrap(), "alice");
    // ...and an unknown token is UNAVAILABLE, never UNAUTHENTICATED.
    let error = whoami(s.downstream.addr, Some(&bob), &[]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(status::reason(&error).as_deref(), Some("AUTH_SERVICE_UNAVAILABLE"));
    assert_eq!(stats.verify_calls.get(), 2);
}

#[tokio::test]
async fn an_unreachable_auth_service_is_unavailable() {
    // A port that was just free: nothing listens there.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let downstream = downstream(&format!("http://{closed}")).await;
    let key = TestKey::generate("EdDSA", "k1");
    let token = key.sign(&better_auth_claims("alice", "http://x"));
    let error = whoami(downstream.addr, Some(&format!("Bearer {token}")), &[]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(status::reason(&error).as_deref(), Some("AUTH_SERVICE_UNAVAILABLE"));
    assert!(error.message().contains("retry later"), "{}", error.message());
}

/// Collects log output in memory.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn tokens_never_reach_the_logs_even_at_debug_level() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt().json().with_env_filter("debug").with_writer(captured.clone()).finish();
    // The test runtime is single-threaded, so every task logs through this.
    let _guard = tracing::subscriber::set_default(subscriber);

    let s = stack().await;
    let good = s.bearer("alice");
    let mut expired_claims = better_auth_claims("alice", &s.jwks.base_url());
    expired_claims["exp"] = json!(now() - 600);
    let expired = format!("Bearer {}", s.key.sign(&expired_claims));
    let forged =
        format!("Bearer {}", TestKey::generate("EdDSA", "k1").sign(&better_auth_claims("mallory", &s.jwks.base_url())));
    assert!(whoami(s.downstream.addr, Some(&good), &[]).await.is_ok());
    assert!(whoami(s.downstream.addr, Some(&expired), &[]).await.is_err());
    assert!(whoami(s.downstream.addr, Some(&forged), &[]).await.is_err());
    drop(s);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("token rejected"), "the rejections were logged:\n{logs}");
    assert!(logs.contains("TOKEN_EXPIRED") && logs.contains("SIGNATURE_INVALID"), "{logs}");
    for token in [&good, &expired, &forged] {
        let token = token.trim_start_matches("Bearer ");
        // Not the token, nor any of its three parts.
        for part in std::iter::once(token).chain(token.split('.')) {
            assert!(!logs.contains(part), "a log line holds (part of) a token");
        }
    }
}

#[tokio::test]
async fn a_cached_identity_expires_with_its_token_and_is_not_reused_after() {
    let mut s = stack().await;
    // A token that expires in 2 s: the layer may reuse its identity for 2 s,
    // not for its usual 60 s. (auth-service's 60 s leeway would still accept
    // it, which is why the cache must not.)
    let mut claims = better_auth_claims("carol", &s.jwks.base_url());
    let expires = now() + 2;
    claims["exp"] = json!(expires);
    let carol = format!("Bearer {}", s.key.sign(&claims));
    assert_eq!(whoami(s.downstream.addr, Some(&carol), &[]).await.unwrap(), "carol");

    s.auth.halt().await;
    assert_eq!(
        whoami(s.downstream.addr, Some(&carol), &[]).await.unwrap(),
        "carol",
        "cached while auth-service is down"
    );
    // Real time has to pass here: the cache's clock is the system's. The wait
    // is bounded by the token's own 2 s lifetime.
    let until_expiry = (expires + 1 - now()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(until_expiry)).await;
    let error = whoami(s.downstream.addr, Some(&carol), &[]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "the expired entry was dropped, so auth-service is asked again");
    s.auth.resume().await;
}

#[tokio::test]
async fn a_hanging_auth_service_costs_at_most_the_verify_deadline() {
    // Accepts connections, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let layer = AuthLayer::connect_lazy(
        &format!("http://{silent_addr}"),
        AuthLayerConfig { verify_timeout: Duration::from_millis(300), ..AuthLayerConfig::default() },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(AuthServiceServer::new(WhoAmI))
            .serve_with_incoming_shutdown(service_kit::serve::incoming(listener), stop.clone().cancelled_owned()),
    );
    let token = TestKey::generate("EdDSA", "k1").sign(&better_auth_claims("alice", "http://x"));
    let error = whoami(addr, Some(&format!("Bearer {token}")), &[]).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(status::reason(&error).as_deref(), Some("AUTH_SERVICE_UNAVAILABLE"));
    assert!(error.message().contains("300ms"), "the deadline is named: {}", error.message());
    stop.cancel();
    held.abort();
}
