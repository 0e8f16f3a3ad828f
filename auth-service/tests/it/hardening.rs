//! Hostile input against auth-service over gRPC: every attack is rejected
//! with its reason, floods cost at most one JWKS fetch per cooldown, and the
//! service stays healthy.

use auth_service::{JwksSettings, clock::Clock};
use chat_proto::auth::v1::{VerifyTokenRequest, auth_service_client::AuthServiceClient};
use serde_json::json;
use service_kit::status;
use test_support::{
    JwksServer, TestAuthService, TestKey,
    auth::policy_for,
    keys::{b64, better_auth_claims, hs256_token, jwks, now, unsigned_token},
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

async fn assert_healthy(service: &TestAuthService) {
    let response = HealthClient::new(test_support::channel(service.url()).await)
        .check(HealthCheckRequest { service: String::new() })
        .await
        .unwrap();
    assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);
}

fn with_part(token: &str, index: usize, part: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = part;
    parts.join(".")
}

#[tokio::test]
async fn every_hostile_token_is_rejected_with_its_reason_and_the_service_stays_healthy() {
    let ed = TestKey::generate("EdDSA", "ed");
    let es = TestKey::generate("ES256", "es");
    let rs = TestKey::generate("RS256", "rs");
    let impostor = TestKey::generate("EdDSA", "ed");
    let jwks_server = JwksServer::serving(jwks(&[&ed, &es, &rs])).await;
    let service = TestAuthService::start_for(&jwks_server).await;
    let issuer = jwks_server.base_url();
    let claims = better_auth_claims("victim", &issuer);
    let with = |changes: serde_json::Value| {
        let mut claims = claims.clone();
        for (key, value) in changes.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        ed.sign(&claims)
    };
    let valid = ed.sign(&claims);
    let nested = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_input = format!(
        "{}.{}",
        b64(json!({"alg": "EdDSA", "kid": "ed"}).to_string()),
        b64(format!(r#"{{"sub":"x","a":{nested}}}"#))
    );
    let deep = format!("{deep_input}.{}", b64(ed.sign_bytes(deep_input.as_bytes())));

    let cases: Vec<(&str, String, Code, &str)> = vec![
        ("alg none", unsigned_token(&claims), Code::Unauthenticated, "ALGORITHM_NOT_ALLOWED"),
        (
            "HS256 keyed with the public JWK",
            hs256_token("ed", ed.jwk().to_string().as_bytes(), &claims),
            Code::Unauthenticated,
            "ALGORITHM_NOT_ALLOWED",
        ),
        (
            "HS256 keyed with the RSA modulus",
            hs256_token("rs", rs.jwk()["n"].as_str().unwrap().as_bytes(), &claims),
            Code::Unauthenticated,
            "ALGORITHM_NOT_ALLOWED",
        ),
        (
            "RS256 header on the Ed25519 key",
            rs.sign_with_header(&json!({"alg": "RS256", "kid": "ed"}), &claims),
            Code::Unauthenticated,
            "ALGORITHM_NOT_ALLOWED",
        ),
        (
            "ES256 header on the RSA key",
            es.sign_with_header(&json!({"alg": "ES256", "kid": "rs"}), &claims),
            Code::Unauthenticated,
            "ALGORITHM_NOT_ALLOWED",
        ),
        (
            "EdDSA header on the EC key",
            ed.sign_with_header(&json!({"alg": "EdDSA", "kid": "es"}), &claims),
            Code::Unauthenticated,
            "ALGORITHM_NOT_ALLOWED",
        ),
        ("kid pointing at another key", impostor.sign(&claims), Code::Unauthenticated, "SIGNATURE_INVALID"),
        (
            "tampered payload",
            with_part(&valid, 1, &b64(better_auth_claims("attacker", &issuer).to_string())),
            Code::Unauthenticated,
            "SIGNATURE_INVALID",
        ),
        ("tampered signature", with_part(&valid, 2, &b64([7u8; 64])), Code::Unauthenticated, "SIGNATURE_INVALID"),
        ("expired", with(json!({"exp": now() - 3600})), Code::Unauthenticated, "TOKEN_EXPIRED"),
        ("not yet valid", with(json!({"nbf": now() + 3600})), Code::Unauthenticated, "TOKEN_NOT_YET_VALID"),
        ("wrong issuer", with(json!({"iss": "https://evil.example"})), Code::Unauthenticated, "ISSUER_MISMATCH"),
        ("wrong audience", with(json!({"aud": "https://evil.example"})), Code::Unauthenticated, "AUDIENCE_MISMATCH"),
        ("missing sub", with(json!({"sub": null})), Code::Unauthenticated, "TOKEN_MALFORMED"),
        ("17 KB token", with(json!({"pad": "x".repeat(17 * 1024)})), Code::Unauthenticated, "TOKEN_MALFORMED"),
        ("1 MB token", "a".repeat(1024 * 1024), Code::ResourceExhausted, "MESSAGE_TOO_LARGE"),
        ("not base64", "!!!.???.***".to_owned(), Code::Unauthenticated, "TOKEN_MALFORMED"),
        ("deeply nested claims", deep, Code::Unauthenticated, "TOKEN_MALFORMED"),
        ("unknown kid", TestKey::generate("EdDSA", "nobody").sign(&claims), Code::Unauthenticated, "KEY_UNKNOWN"),
    ];
    let mut client = AuthServiceClient::new(test_support::channel(service.url()).await);
    for (name, token, code, reason) in cases {
        let error = client.verify_token(VerifyTokenRequest { token }).await.expect_err(name);
        assert_eq!(error.code(), code, "{name}: {error:?}");
        assert_eq!(status::reason(&error).as_deref(), Some(reason), "{name}: {error:?}");
    }
    assert_healthy(&service).await;
    let identity =
        client.verify_token(VerifyTokenRequest { token: valid }).await.unwrap().into_inner().identity.unwrap();
    assert_eq!(identity.user_id, "victim");
}

#[tokio::test]
async fn ten_thousand_tokens_with_random_kids_cost_one_jwks_fetch() {
    let key = TestKey::generate("EdDSA", "real");
    let jwks_server = JwksServer::serving(jwks(&[&key])).await;
    // A clock that does not move: the whole flood falls in one cooldown.
    let service = TestAuthService::start_with(
        JwksSettings::new(jwks_server.url()),
        policy_for(&jwks_server.base_url()),
        Clock::manual(),
    )
    .await;
    service.wait_ready().await;
    let before = jwks_server.fetches();
    let channel = test_support::channel(service.url()).await;
    let payload = b64(better_auth_claims("u", &jwks_server.base_url()).to_string());

    let workers: Vec<_> = (0..32)
        .map(|worker| {
            let mut client = AuthServiceClient::new(channel.clone());
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut reasons = std::collections::HashMap::<String, usize>::new();
                for n in (worker..10_000).step_by(32) {
                    let header = b64(json!({"alg": "EdDSA", "kid": format!("random-{n}")}).to_string());
                    let token = format!("{header}.{payload}.{}", b64([n as u8; 64]));
                    let error = client.verify_token(VerifyTokenRequest { token }).await.unwrap_err();
                    *reasons.entry(status::reason(&error).unwrap_or_default()).or_default() += 1;
                }
                reasons
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        for (reason, count) in worker.await.unwrap() {
            assert_eq!(reason, "KEY_UNKNOWN");
            total += count;
        }
    }
    assert_eq!(total, 10_000);
    assert_eq!(jwks_server.fetches() - before, 1, "one refetch for the whole flood");
    assert_healthy(&service).await;
    let mut client = AuthServiceClient::new(channel);
    let token = key.sign(&better_auth_claims("u", &jwks_server.base_url()));
    assert_eq!(
        client.verify_token(VerifyTokenRequest { token }).await.unwrap().into_inner().identity.unwrap().user_id,
        "u"
    );
}
