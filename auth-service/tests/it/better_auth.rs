//! End to end with the real Better Auth (Node, pinned by its lockfile): real
//! sign-up, real JWTs from /api/auth/token, the real JWKS, real rotation.

use auth_service::{JwksSettings, clock::Clock};
use chat_proto::auth::v1::{VerifyTokenRequest, auth_service_client::AuthServiceClient};
use test_support::{TestAuthService, auth::policy_for, better_auth::BetterAuth};

async fn verify(service: &TestAuthService, token: &str) -> chat_proto::auth::v1::Identity {
    AuthServiceClient::new(test_support::channel(service.url()).await)
        .verify_token(VerifyTokenRequest { token: token.to_owned() })
        .await
        .unwrap_or_else(|status| panic!("VerifyToken failed: {status:?}"))
        .into_inner()
        .identity
        .unwrap()
}

async fn signed_up_user_verifies(alg: &str) {
    let better_auth = BetterAuth::start(alg).await;
    let service = TestAuthService::start_with(
        JwksSettings::new(better_auth.jwks_url()),
        policy_for(&better_auth.url),
        Clock::system(),
    )
    .await;
    let session = better_auth.sign_up(&format!("{}@example.com", alg.to_lowercase()), "Ada Lovelace").await;
    let token = better_auth.token(&session).await;

    let identity = verify(&service, &token).await;
    assert_eq!(identity.user_id, session.user_id);
    assert_eq!(identity.email, session.email);
    assert_eq!(identity.name, "Ada Lovelace");
    assert!(!identity.email_verified);
    assert_eq!(identity.algorithm, alg);
    assert_eq!(identity.issuer, better_auth.url);
    assert_eq!(identity.audience, vec![better_auth.url.clone()]);
    assert_eq!(identity.key_id.len(), 32, "Better Auth kids are 32 alphanumerics");
    let claims = identity.claims.unwrap().fields;
    assert!(claims.contains_key("createdAt") && claims.contains_key("id"));
}

#[tokio::test]
async fn a_real_better_auth_eddsa_token_verifies() {
    signed_up_user_verifies("EdDSA").await;
}

#[tokio::test]
async fn a_real_better_auth_es256_token_verifies() {
    signed_up_user_verifies("ES256").await;
}

#[tokio::test]
async fn a_real_better_auth_es512_token_verifies() {
    signed_up_user_verifies("ES512").await;
}

#[tokio::test]
async fn a_real_better_auth_rs256_token_verifies() {
    signed_up_user_verifies("RS256").await;
}

#[tokio::test]
async fn a_real_better_auth_ps256_token_verifies() {
    signed_up_user_verifies("PS256").await;
}

#[tokio::test]
async fn a_better_auth_key_rotation_is_picked_up_without_a_restart() {
    let better_auth = BetterAuth::start("EdDSA").await;
    let service = TestAuthService::start_with(
        JwksSettings::new(better_auth.jwks_url()),
        policy_for(&better_auth.url),
        Clock::system(),
    )
    .await;
    let session = better_auth.sign_up("rotation@example.com", "Rot").await;
    let old_token = better_auth.token(&session).await;
    let old = verify(&service, &old_token).await;

    let new_kid = better_auth.rotate().await;
    let new_token = better_auth.token(&session).await;
    let new = verify(&service, &new_token).await;
    assert_eq!(new.key_id, new_kid);
    assert_ne!(new.key_id, old.key_id);
    assert_eq!(new.user_id, session.user_id);
    // The old key is still published (grace period): old tokens keep verifying.
    assert_eq!(verify(&service, &old_token).await.key_id, old.key_id);
    assert_eq!(service.verifier.jwks().stats().keys.get(), 2);
}
