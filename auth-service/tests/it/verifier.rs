//! The verifier against keys of every Better Auth algorithm, and hostile tokens.

use std::time::{Duration, UNIX_EPOCH};

use auth_service::{JwksCache, JwksSettings, Reason, Verifier, clock::Clock, token::MAX_TOKEN_BYTES};
use serde_json::{Value, json};
use test_support::{
    JwksServer, TestKey,
    auth::policy_for,
    keys::{BETTER_AUTH_ALGORITHMS, b64, better_auth_claims, hs256_token, jwks, now, unsigned_token},
};

struct Fixture {
    server: JwksServer,
    verifier: Verifier,
    issuer: String,
}

async fn fixture(keys: &[&TestKey]) -> Fixture {
    let server = JwksServer::serving(jwks(keys)).await;
    let issuer = server.base_url();
    let jwks = JwksCache::with_clock(JwksSettings::new(server.url()), Clock::manual()).unwrap();
    Fixture { verifier: Verifier::new(jwks, policy_for(&issuer)), server, issuer }
}

async fn reason_of(fixture: &Fixture, token: &str) -> Reason {
    fixture.verifier.verify(token).await.expect_err("token must be rejected").reason
}

#[tokio::test]
async fn valid_tokens_of_every_better_auth_algorithm_verify() {
    for alg in BETTER_AUTH_ALGORITHMS {
        let key = TestKey::generate(alg, &format!("kid-{alg}"));
        let fixture = fixture(&[&key]).await;
        let token = key.sign(&better_auth_claims("user_42", &fixture.issuer));
        let identity = fixture.verifier.verify(&token).await.unwrap_or_else(|error| panic!("{alg}: {error}"));
        assert_eq!(identity.user_id, "user_42", "{alg}");
        assert_eq!(identity.email, "user_42@example.com");
        assert_eq!(identity.name, "User user_42");
        assert!(!identity.email_verified);
        assert_eq!(identity.algorithm, alg);
        assert_eq!(identity.key_id, format!("kid-{alg}"));
        assert_eq!(identity.issuer, fixture.issuer);
        assert_eq!(identity.audience, vec![fixture.issuer.clone()]);
        assert!(identity.claims.unwrap().fields.contains_key("createdAt"));
    }
}

#[tokio::test]
async fn keys_without_alg_are_inferred_from_their_type() {
    for alg in BETTER_AUTH_ALGORITHMS {
        let key = TestKey::generate(alg, "legacy");
        let server = JwksServer::serving(json!({"keys": [key.jwk_without_alg()]})).await;
        let jwks = JwksCache::new(JwksSettings::new(server.url())).unwrap();
        let verifier = Verifier::new(jwks, policy_for(&server.base_url()));
        let token = key.sign(&better_auth_claims("u", &server.base_url()));
        assert_eq!(verifier.verify(&token).await.unwrap().algorithm, alg);
    }
}

#[tokio::test]
async fn rfc9864_ed25519_header_name_is_accepted_as_eddsa() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let token =
        key.sign_with_header(&json!({"alg": "Ed25519", "kid": "k1"}), &better_auth_claims("u", &fixture.issuer));
    assert_eq!(fixture.verifier.verify(&token).await.unwrap().algorithm, "EdDSA");
}

#[tokio::test]
async fn expired_token_is_token_expired_and_says_when() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let mut claims = better_auth_claims("u", &fixture.issuer);
    claims["exp"] = json!(now() - 600);
    let error = fixture.verifier.verify(&key.sign(&claims)).await.unwrap_err();
    assert_eq!(error.reason, Reason::TokenExpired);
    assert!(error.message.starts_with("token expired 10m"), "{}", error.message);
}

#[tokio::test]
async fn expiry_is_judged_at_the_given_time_with_leeway() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let mut claims = better_auth_claims("u", &fixture.issuer);
    claims["exp"] = json!(1_900_000_000);
    claims["iat"] = json!(1_899_999_100);
    let token = key.sign(&claims);
    let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
    assert!(fixture.verifier.verify_at(&token, at(1_900_000_060)).await.is_ok());
    let error = fixture.verifier.verify_at(&token, at(1_900_000_192)).await.unwrap_err();
    assert_eq!(
        error.message,
        "token expired 3m 12s ago (at 2030-03-17T17:46:40Z); get a fresh one from Better Auth (/api/auth/token)"
    );
}

#[tokio::test]
async fn not_yet_valid_token_is_token_not_yet_valid() {
    let key = TestKey::generate("ES256", "k1");
    let fixture = fixture(&[&key]).await;
    let mut claims = better_auth_claims("u", &fixture.issuer);
    claims["nbf"] = json!(now() + 600);
    assert_eq!(reason_of(&fixture, &key.sign(&claims)).await, Reason::TokenNotYetValid);
}

#[tokio::test]
async fn wrong_issuer_is_issuer_mismatch_naming_both() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let mut claims = better_auth_claims("u", &fixture.issuer);
    claims["iss"] = json!("https://a.example");
    let error = fixture.verifier.verify(&key.sign(&claims)).await.unwrap_err();
    assert_eq!(error.reason, Reason::IssuerMismatch);
    assert!(
        error.message.starts_with(&format!("issuer https://a.example is not the configured {}", fixture.issuer)),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn wrong_audience_is_audience_mismatch() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let mut claims = better_auth_claims("u", &fixture.issuer);
    claims["aud"] = json!(["https://other.example"]);
    assert_eq!(reason_of(&fixture, &key.sign(&claims)).await, Reason::AudienceMismatch);
}

#[tokio::test]
async fn missing_sub_is_malformed() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let mut claims = better_auth_claims("u", &fixture.issuer);
    claims.as_object_mut().unwrap().remove("sub");
    assert_eq!(reason_of(&fixture, &key.sign(&claims)).await, Reason::TokenMalformed);
}

fn replace_part(token: &str, index: usize, part: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = part;
    parts.join(".")
}

#[tokio::test]
async fn tampered_payload_is_signature_invalid_for_every_algorithm() {
    for alg in BETTER_AUTH_ALGORITHMS {
        let key = TestKey::generate(alg, "k1");
        let fixture = fixture(&[&key]).await;
        let token = key.sign(&better_auth_claims("alice", &fixture.issuer));
        let forged = replace_part(&token, 1, &b64(better_auth_claims("mallory", &fixture.issuer).to_string()));
        assert_eq!(reason_of(&fixture, &forged).await, Reason::SignatureInvalid, "{alg}");
    }
}

#[tokio::test]
async fn tampered_signature_is_signature_invalid_for_every_algorithm() {
    for alg in BETTER_AUTH_ALGORITHMS {
        let key = TestKey::generate(alg, "k1");
        let fixture = fixture(&[&key]).await;
        let token = key.sign(&better_auth_claims("alice", &fixture.issuer));
        let mut signature = base64_decode(token.rsplit('.').next().unwrap());
        signature[0] ^= 0x01;
        let forged = replace_part(&token, 2, &b64(&signature));
        assert_eq!(reason_of(&fixture, &forged).await, Reason::SignatureInvalid, "{alg}");
        // A signature of the right length from another key of the same type.
        let other = TestKey::generate(alg, "k1");
        assert_eq!(
            reason_of(&fixture, &other.sign(&better_auth_claims("alice", &fixture.issuer))).await,
            Reason::SignatureInvalid,
            "{alg}"
        );
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap()
}

#[tokio::test]
async fn alg_none_is_algorithm_not_allowed() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let claims = better_auth_claims("u", &fixture.issuer);
    assert_eq!(reason_of(&fixture, &unsigned_token(&claims)).await, Reason::AlgorithmNotAllowed);
    let none_with_kid = format!("{}.{}.", b64(json!({"alg":"none","kid":"k1"}).to_string()), b64(claims.to_string()));
    assert_eq!(reason_of(&fixture, &none_with_kid).await, Reason::AlgorithmNotAllowed);
    assert_eq!(fixture.server.fetches(), 0, "junk must not trigger JWKS fetches");
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_algorithm_not_allowed() {
    for alg in BETTER_AUTH_ALGORITHMS {
        let key = TestKey::generate(alg, "k1");
        let fixture = fixture(&[&key]).await;
        let claims = better_auth_claims("u", &fixture.issuer);
        let public_jwk = key.jwk().to_string();
        for secret in [public_jwk.as_bytes(), key.jwk()["x"].as_str().or(key.jwk()["n"].as_str()).unwrap().as_bytes()] {
            assert_eq!(
                reason_of(&fixture, &hs256_token("k1", secret, &claims)).await,
                Reason::AlgorithmNotAllowed,
                "{alg}"
            );
        }
    }
}

#[tokio::test]
async fn header_alg_that_differs_from_the_key_is_algorithm_not_allowed() {
    let ed = TestKey::generate("EdDSA", "ed");
    let es = TestKey::generate("ES256", "es");
    let rs = TestKey::generate("RS256", "rs");
    let fixture = fixture(&[&ed, &es, &rs]).await;
    let claims = better_auth_claims("u", &fixture.issuer);
    // An ES256 signature presented under the Ed25519 key's kid.
    let error = fixture
        .verifier
        .verify(&es.sign_with_header(&json!({"alg": "ES256", "kid": "ed"}), &claims))
        .await
        .unwrap_err();
    assert_eq!(error.reason, Reason::AlgorithmNotAllowed);
    assert_eq!(error.message, "the token header says ES256 but key ed is an Ed25519 key for EdDSA");
    // PS256 on a key published for RS256.
    let ps = TestKey::generate("PS256", "x");
    assert_eq!(
        reason_of(&fixture, &ps.sign_with_header(&json!({"alg": "PS256", "kid": "rs"}), &claims)).await,
        Reason::AlgorithmNotAllowed
    );
    // EdDSA header on an EC key.
    assert_eq!(
        reason_of(&fixture, &ed.sign_with_header(&json!({"alg": "EdDSA", "kid": "es"}), &claims)).await,
        Reason::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn unknown_kid_is_key_unknown() {
    let key = TestKey::generate("EdDSA", "k1");
    let stranger = TestKey::generate("EdDSA", "k2");
    let fixture = fixture(&[&key]).await;
    let error = fixture.verifier.verify(&stranger.sign(&better_auth_claims("u", &fixture.issuer))).await.unwrap_err();
    assert_eq!(error.reason, Reason::KeyUnknown);
    assert!(error.message.starts_with("no key with kid \"k2\" in the JWKS"), "{}", error.message);
}

#[tokio::test]
async fn token_without_kid_is_key_unknown() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let token = key.sign_with_header(&json!({"alg": "EdDSA"}), &better_auth_claims("u", &fixture.issuer));
    assert_eq!(reason_of(&fixture, &token).await, Reason::KeyUnknown);
}

#[tokio::test]
async fn oversized_token_is_malformed_without_a_fetch() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let mut claims = better_auth_claims("u", &fixture.issuer);
    claims["padding"] = json!("x".repeat(MAX_TOKEN_BYTES));
    let error = fixture.verifier.verify(&key.sign(&claims)).await.unwrap_err();
    assert_eq!(error.reason, Reason::TokenMalformed);
    assert!(error.message.contains("tokens over 16384 bytes are rejected unread"), "{}", error.message);
    assert_eq!(fixture.server.fetches(), 0);
}

#[tokio::test]
async fn garbage_tokens_are_malformed_or_missing() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    assert_eq!(reason_of(&fixture, "").await, Reason::TokenMissing);
    for garbage in ["garbage", "a.b.c", "....", "eyJ.eyJ.sig", "%%%.%%%.%%%", "\u{0}"] {
        assert_eq!(reason_of(&fixture, garbage).await, Reason::TokenMalformed, "{garbage:?}");
    }
    // Valid header and signature over a payload that is not JSON.
    let header = b64(json!({"alg": "EdDSA", "kid": "k1"}).to_string());
    let payload = b64("not json");
    let input = format!("{header}.{payload}");
    let token = format!("{input}.{}", b64(key.sign_bytes(input.as_bytes())));
    assert_eq!(reason_of(&fixture, &token).await, Reason::TokenMalformed);
}

#[tokio::test]
async fn deeply_nested_claims_are_malformed_not_a_crash() {
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let nested = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    let header = b64(json!({"alg": "EdDSA", "kid": "k1"}).to_string());
    let payload = b64(format!(r#"{{"sub":"u","deep":{nested}}}"#));
    let input = format!("{header}.{payload}");
    let token = format!("{input}.{}", b64(key.sign_bytes(input.as_bytes())));
    assert_eq!(reason_of(&fixture, &token).await, Reason::TokenMalformed);
}

#[tokio::test]
async fn claims_are_checked_only_after_the_signature() {
    // An expired token with a bad signature reports the signature, so a forger
    // learns nothing about claim checks.
    let key = TestKey::generate("EdDSA", "k1");
    let fixture = fixture(&[&key]).await;
    let mut claims: Value = better_auth_claims("u", &fixture.issuer);
    claims["exp"] = json!(now() - 3600);
    let token = key.sign(&claims);
    let forged = replace_part(&token, 2, &b64([0u8; 64]));
    assert_eq!(reason_of(&fixture, &forged).await, Reason::SignatureInvalid);
}
