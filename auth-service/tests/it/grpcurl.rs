//! grpcurl 1.8.6 (reflection v1alpha only) against a running auth-service.

use serde_json::Value;
use test_support::{
    JwksServer, TestAuthService, TestKey, grpcurl,
    keys::{better_auth_claims, jwks},
};

#[tokio::test]
async fn grpcurl_lists_describes_and_calls_auth_service() {
    let key = TestKey::generate("EdDSA", "k1");
    let jwks_server = JwksServer::serving(jwks(&[&key])).await;
    let service = TestAuthService::start_for(&jwks_server).await;
    let addr = service.addr.to_string();

    let services = grpcurl::ok(&["-plaintext", &addr, "list"]).await;
    let services: Vec<&str> = services.lines().collect();
    assert!(services.contains(&"auth.v1.AuthService"), "{services:?}");
    assert!(services.contains(&"grpc.health.v1.Health"), "{services:?}");

    let described = grpcurl::ok(&["-plaintext", &addr, "describe", "auth.v1.AuthService"]).await;
    assert!(
        described.contains("rpc VerifyToken ( .auth.v1.VerifyTokenRequest ) returns ( .auth.v1.VerifyTokenResponse );"),
        "{described}"
    );
    let identity_type = grpcurl::ok(&["-plaintext", &addr, "describe", "auth.v1.Identity"]).await;
    assert!(identity_type.contains(".google.protobuf.Timestamp expires_at = 11;"), "{identity_type}");

    let token = key.sign(&better_auth_claims("grpcurl_user", &jwks_server.base_url()));
    let body = serde_json::json!({ "token": token }).to_string();
    let answer = grpcurl::ok(&["-plaintext", "-d", &body, &addr, "auth.v1.AuthService/VerifyToken"]).await;
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["identity"]["userId"], "grpcurl_user");
    assert_eq!(answer["identity"]["algorithm"], "EdDSA");

    let health = grpcurl::ok(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]).await;
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "SERVING");

    // A rejection shows the code and message grpcurl users read.
    let rejected =
        grpcurl::run(&["-plaintext", "-d", r#"{"token":"not-a-jwt"}"#, &addr, "auth.v1.AuthService/VerifyToken"]).await;
    assert_ne!(rejected.code, Some(0));
    assert!(rejected.stderr.contains("Code: Unauthenticated"), "{}", rejected.stderr);
    assert!(rejected.stderr.contains("a JWT has 3 dot-separated parts; this token has 1"), "{}", rejected.stderr);
}
