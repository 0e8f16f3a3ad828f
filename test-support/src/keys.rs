//! Signing keys of every algorithm Better Auth can use, generated in the
//! test, their JWKs, and tokens signed with them (honest or hostile).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{
    rand::SystemRandom,
    rsa::KeySize,
    signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The algorithms Better Auth's JWT plugin signs with.
pub const BETTER_AUTH_ALGORITHMS: [&str; 5] = ["EdDSA", "ES256", "ES512", "RS256", "PS256"];

enum Signer {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair, &'static str, usize),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

/// A private key with its `kid` and algorithm.
pub struct TestKey {
    /// Key id, put in the JWK and the token header.
    pub kid: String,
    /// JWS algorithm name.
    pub alg: &'static str,
    signer: Signer,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey").field("kid", &self.kid).field("alg", &self.alg).finish()
    }
}

/// base64url without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs() as i64
}

impl TestKey {
    /// Generates a key for `alg` (EdDSA, ES256, ES384, ES512, RS256, PS256, ...).
    pub fn generate(alg: &str, kid: &str) -> Self {
        let (alg, signer): (&'static str, Signer) = match alg {
            "EdDSA" => ("EdDSA", Signer::Ed25519(Ed25519KeyPair::generate().expect("ed25519"))),
            "ES256" => (
                "ES256",
                Signer::Ecdsa(
                    EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).expect("p256"),
                    "P-256",
                    32,
                ),
            ),
            "ES384" => (
                "ES384",
                Signer::Ecdsa(
                    EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).expect("p384"),
                    "P-384",
                    48,
                ),
            ),
            "ES512" => (
                "ES512",
                Signer::Ecdsa(
                    EcdsaKeyPair::generate(&signature::ECDSA_P521_SHA512_FIXED_SIGNING).expect("p521"),
                    "P-521",
                    66,
                ),
            ),
            "RS256" => (
                "RS256",
                Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"), &signature::RSA_PKCS1_SHA256),
            ),
            "RS512" => (
                "RS512",
                Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"), &signature::RSA_PKCS1_SHA512),
            ),
            "PS256" => {
                ("PS256", Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"), &signature::RSA_PSS_SHA256))
            }
            other => panic!("no test key for {other}"),
        };
        Self { kid: kid.to_owned(), alg, signer }
    }

    /// The public JWK, shaped like Better Auth's (`alg`, `kid`, `kty`, `crv`, no `use`).
    pub fn jwk(&self) -> Value {
        let mut jwk = self.jwk_without_alg();
        jwk["alg"] = json!(self.alg);
        jwk
    }

    /// The public JWK without `alg`, as older Better Auth versions served it.
    pub fn jwk_without_alg(&self) -> Value {
        match &self.signer {
            Signer::Ed25519(pair) => json!({
                "kty": "OKP", "crv": "Ed25519", "kid": self.kid,
                "x": b64(pair.public_key().as_ref()),
            }),
            Signer::Ecdsa(pair, crv, size) => {
                let point = pair.public_key().as_ref();
                json!({
                    "kty": "EC", "crv": crv, "kid": self.kid,
                    "x": b64(&point[1..1 + size]), "y": b64(&point[1 + size..]),
                })
            }
            Signer::Rsa(pair, _) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA", "kid": self.kid,
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
        }
    }

    /// Raw signature over `message` with this key's algorithm.
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Signer::Ecdsa(pair, ..) => pair.sign(&rng, message).expect("ecdsa sign").as_ref().to_vec(),
            Signer::Rsa(pair, encoding) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(*encoding, &rng, message, &mut signature).expect("rsa sign");
                signature
            }
        }
    }

    /// A token with Better Auth's header (`alg`, `kid`) and these claims.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(&json!({"alg": self.alg, "kid": self.kid}), claims)
    }

    /// A token with any header, signed with this key's algorithm.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let signature = self.sign_bytes(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(signature))
    }
}

/// A JWKS document holding these keys' public JWKs.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
}

/// Claims shaped like Better Auth's default payload (the user row, `sub`,
/// `iat`, `exp` 15 minutes later, `iss` and `aud` = `issuer`).
pub fn better_auth_claims(user_id: &str, issuer: &str) -> Value {
    let now = now();
    json!({
        "iat": now,
        "id": user_id,
        "email": format!("{user_id}@example.com"),
        "name": format!("User {user_id}"),
        "emailVerified": false,
        "image": null,
        "createdAt": "2026-12-01T10:00:00.000Z",
        "updatedAt": "2026-12-01T10:00:00.000Z",
        "sub": user_id,
        "exp": now + 900,
        "iss": issuer,
        "aud": issuer,
    })
}

/// An unsigned `alg: none` token.
pub fn unsigned_token(claims: &Value) -> String {
    format!("{}.{}.", b64(json!({"alg": "none"}).to_string()), b64(claims.to_string()))
}

/// An HS256 token whose HMAC key is `secret` (e.g. a public key's bytes, the
/// classic algorithm-confusion attack).
pub fn hs256_token(kid: &str, secret: &[u8], claims: &Value) -> String {
    let signing_input = format!("{}.{}", b64(json!({"alg": "HS256", "kid": kid}).to_string()), b64(claims.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(tag.as_ref()))
}
