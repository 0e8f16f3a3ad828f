//! `auth.v1.AuthService` over gRPC: identities, error details, health.

use chat_proto::auth::v1::{VerifyTokenRequest, auth_service_client::AuthServiceClient};
use serde_json::json;
use service_kit::status;
use test_support::{
    JwksBehavior, JwksServer, TestAuthService, TestKey,
    keys::{better_auth_claims, jwks, now},
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

async fn client(service: &TestAuthService) -> AuthServiceClient<tonic::transport::Channel> {
    AuthServiceClient::connect(service.url()).await.unwrap()
}

#[tokio::test]
async fn verify_token_returns_the_identity_of_a_valid_token() {
    let key = TestKey::generate("EdDSA", "k1");
    let jwks_server = JwksServer::serving(jwks(&[&key])).await;
    let service = TestAuthService::start_for(&jwks_server).await;
    let mut claims = better_auth_claims("user_7", &jwks_server.base_url());
    claims["sid"] = json!("session_9");
    let token = key.sign(&claims);

    let identity =
        client(&service).await.verify_token(VerifyTokenRequest { token }).await.unwrap().into_inner().identity.unwrap();
    assert_eq!(identity.user_id, "user_7");
    assert_eq!(identity.email, "user_7@example.com");
    assert_eq!(identity.name, "User user_7");
    assert_eq!(identity.session_id, "session_9");
    assert_eq!(identity.issuer, jwks_server.base_url());
    assert_eq!(identity.audience, vec![jwks_server.base_url()]);
    assert_eq!(identity.key_id, "k1");
    assert_eq!(identity.algorithm, "EdDSA");
    assert_eq!(identity.expires_at.unwrap().seconds, claims["exp"].as_i64().unwrap());
    assert_eq!(identity.issued_at.unwrap().seconds, claims["iat"].as_i64().unwrap());
    assert_eq!(identity.claims.unwrap().fields.len(), claims.as_object().unwrap().len());
}

#[tokio::test]
async fn rejections_carry_code_reason_domain_and_an_actionable_message() {
    let key = TestKey::generate("EdDSA", "k1");
    let jwks_server = JwksServer::serving(jwks(&[&key])).await;
    let service = TestAuthService::start_for(&jwks_server).await;
    let mut claims = better_auth_claims("u", &jwks_server.base_url());
    claims["exp"] = json!(now() - 3600);

    let error = client(&service).await.verify_token(VerifyTokenRequest { token: key.sign(&claims) }).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    assert_eq!(status::reason(&error).as_deref(), Some("TOKEN_EXPIRED"));
    assert_eq!(status::domain(&error).as_deref(), Some("auth.v1"));
    assert!(error.message().starts_with("token expired 1h"), "{}", error.message());

    let error = client(&service).await.verify_token(VerifyTokenRequest { token: String::new() }).await.unwrap_err();
    assert_eq!(error.code(), Code::Unauthenticated);
    assert_eq!(status::reason(&error).as_deref(), Some("TOKEN_MISSING"));
}

#[tokio::test]
async fn a_forwarded_bearer_prefix_is_tolerated() {
    let key = TestKey::generate("EdDSA", "k1");
    let jwks_server = JwksServer::serving(jwks(&[&key])).await;
    let service = TestAuthService::start_for(&jwks_server).await;
    let token = format!("Bearer {}", key.sign(&better_auth_claims("u", &jwks_server.base_url())));
    let response = client(&service).await.verify_token(VerifyTokenRequest { token }).await.unwrap();
    assert_eq!(response.into_inner().identity.unwrap().user_id, "u");
}

async fn health(service: &TestAuthService, name: &str) -> ServingStatus {
    let mut client = HealthClient::new(test_support::channel(service.url()).await);
    let response = client.check(HealthCheckRequest { service: name.to_owned() }).await.unwrap().into_inner();
    ServingStatus::try_from(response.status).unwrap()
}

#[tokio::test]
async fn health_is_not_serving_until_the_jwks_is_fetched_and_unavailable_meanwhile() {
    let key = TestKey::generate("EdDSA", "k1");
    let jwks_server = JwksServer::start(JwksBehavior::Fail(503)).await;
    let service = TestAuthService::start_with(
        auth_service::JwksSettings::new(jwks_server.url()),
        test_support::auth::policy_for(&jwks_server.base_url()),
        auth_service::clock::Clock::system(),
    )
    .await;
    jwks_server.wait_for_fetches(1).await;
    assert_eq!(health(&service, "").await, ServingStatus::NotServing);
    assert_eq!(health(&service, "auth.v1.AuthService").await, ServingStatus::NotServing);

    let token = key.sign(&better_auth_claims("u", &jwks_server.base_url()));
    let error = client(&service).await.verify_token(VerifyTokenRequest { token: token.clone() }).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(status::reason(&error).as_deref(), Some("JWKS_UNAVAILABLE"));

    // Better Auth comes up; the refresher's retry picks the keys up.
    jwks_server.set(JwksBehavior::Serve(jwks(&[&key])));
    service.wait_ready().await;
    let mut watch = HealthClient::new(test_support::channel(service.url()).await)
        .watch(HealthCheckRequest { service: String::new() })
        .await
        .unwrap()
        .into_inner();
    loop {
        let status = watch.message().await.unwrap().unwrap().status;
        if status == ServingStatus::Serving as i32 {
            break;
        }
    }
    client(&service).await.verify_token(VerifyTokenRequest { token }).await.unwrap();
}

#[tokio::test]
async fn metrics_count_verifications_and_jwks_fetches() {
    let key = TestKey::generate("EdDSA", "k1");
    let jwks_server = JwksServer::serving(jwks(&[&key])).await;
    let service = TestAuthService::start_for(&jwks_server).await;
    let mut client = client(&service).await;
    let token = key.sign(&better_auth_claims("u", &jwks_server.base_url()));
    client.verify_token(VerifyTokenRequest { token }).await.unwrap();
    let _ = client.verify_token(VerifyTokenRequest { token: "x.y.z".into() }).await;

    let text = service.metrics().await;
    let handled = |code: &str| {
        test_support::sample(
            &text,
            "auth_grpc_server_handled_total",
            &["grpc_method=\"VerifyToken\"", &format!("grpc_code=\"{code}\"")],
        )
    };
    assert_eq!(handled("OK"), Some(1.0), "{text}");
    assert_eq!(handled("UNAUTHENTICATED"), Some(1.0));
    assert_eq!(test_support::sample(&text, "auth_jwks_fetches_total", &[]), Some(1.0));
    assert_eq!(test_support::sample(&text, "auth_jwks_fetch_failures_total", &[]), Some(0.0));
    assert_eq!(test_support::sample(&text, "auth_jwks_keys", &[]), Some(1.0));
}
