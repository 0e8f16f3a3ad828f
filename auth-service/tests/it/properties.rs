//! Property tests: token and JWKS parsing never panic and never accept a
//! malformed or altered input.

use std::sync::OnceLock;

use auth_service::{JwksCache, JwksSettings, Verifier, jwks::parse_jwks, token};
use proptest::prelude::*;
use serde_json::{Value, json};
use test_support::{
    JwksServer, TestKey,
    auth::policy_for,
    keys::{better_auth_claims, jwks},
};

/// One runtime, JWKS endpoint, key and verifier for every generated case.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    token: String,
    _server: JwksServer,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let key = TestKey::generate("EdDSA", "k1");
        let (server, verifier) = runtime.block_on(async {
            let server = JwksServer::serving(jwks(&[&key])).await;
            let cache = JwksCache::new(JwksSettings::new(server.url())).unwrap();
            cache.refresh_now().await.unwrap();
            let verifier = Verifier::new(cache, policy_for(&server.base_url()));
            (server, verifier)
        });
        let token = key.sign(&better_auth_claims("u", &server.base_url()));
        assert!(runtime.block_on(verifier.verify(&token)).is_ok());
        Fixture { runtime, verifier, token, _server: server }
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map("[a-z]{0,6}", inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_parse_into_an_accepted_token(input in ".{0,400}") {
        let f = fixture();
        let _ = token::parse(&input);
        prop_assert!(f.runtime.block_on(f.verifier.verify(&input)).is_err());
    }

    #[test]
    fn any_change_to_a_valid_token_is_rejected(position in any::<prop::sample::Index>(), replacement in any::<char>()) {
        let f = fixture();
        let mut chars: Vec<char> = f.token.chars().collect();
        let index = position.index(chars.len());
        prop_assume!(chars[index] != replacement);
        chars[index] = replacement;
        let altered: String = chars.into_iter().collect();
        prop_assert!(f.runtime.block_on(f.verifier.verify(&altered)).is_err(), "accepted {altered}");
    }

    #[test]
    fn truncated_or_extended_tokens_are_rejected(cut in 0usize..400, extra in "[A-Za-z0-9_.-]{1,10}") {
        let f = fixture();
        let cut = cut.min(f.token.len() - 1);
        prop_assert!(f.runtime.block_on(f.verifier.verify(&f.token[..cut])).is_err());
        let extended = format!("{}{extra}", f.token);
        prop_assert!(f.runtime.block_on(f.verifier.verify(&extended)).is_err());
    }

    #[test]
    fn arbitrary_json_never_panics_the_jwks_parser(keys in prop::collection::vec(json_value(), 0..6), document in json_value()) {
        let _ = parse_jwks(json!({ "keys": keys }).to_string().as_bytes());
        let _ = parse_jwks(document.to_string().as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_jwks_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_jwks(&bytes);
    }

    #[test]
    fn jwk_shaped_garbage_is_skipped_not_trusted(
        kty in prop_oneof![Just("OKP".to_owned()), Just("EC".to_owned()), Just("RSA".to_owned()), Just("oct".to_owned()), ".{0,5}"],
        crv in prop_oneof![Just("Ed25519".to_owned()), Just("P-256".to_owned()), Just("P-521".to_owned()), Just("X25519".to_owned()), ".{0,5}"],
        alg in prop_oneof![Just("EdDSA".to_owned()), Just("ES256".to_owned()), Just("RS256".to_owned()), Just("HS256".to_owned()), Just("none".to_owned()), ".{0,5}"],
        x in "[A-Za-z0-9_-]{0,90}",
        y in "[A-Za-z0-9_-]{0,90}",
        n in "[A-Za-z0-9_-]{0,400}",
    ) {
        let document = json!({"keys": [{"kty": kty, "crv": crv, "alg": alg, "kid": "k", "x": x, "y": y, "n": n, "e": "AQAB"}]});
        if let Ok(keys) = parse_jwks(document.to_string().as_bytes()) {
            // Whatever was accepted is a public-key algorithm that fits the key type.
            for key in keys.values() {
                for algorithm in key.algorithms() {
                    prop_assert!(!algorithm.name().starts_with("HS") && algorithm.name() != "none");
                }
            }
        }
    }
}
