//! Token verification: header, key, signature, then claims.
//!
//! The order matters. Unsigned and HMAC tokens are refused before any key is
//! looked up (so junk cannot trigger JWKS refetches); the key decides which
//! algorithm is allowed; the payload is only decoded once the signature holds.

use std::time::SystemTime;

use chat_proto::auth::v1::Identity;

use crate::{
    claims::ClaimsPolicy,
    error::{Reason, VerifyError},
    jwks::JwksCache,
    keys::Algorithm,
    token,
};

/// Verifies Better Auth JWTs against a [`JwksCache`] and a [`ClaimsPolicy`].
#[derive(Debug, Clone)]
pub struct Verifier {
    jwks: JwksCache,
    policy: ClaimsPolicy,
}

impl Verifier {
    /// A verifier using `jwks` for keys and `policy` for claims.
    pub fn new(jwks: JwksCache, policy: ClaimsPolicy) -> Self {
        Self { jwks, policy }
    }

    /// The JWKS cache.
    pub fn jwks(&self) -> &JwksCache {
        &self.jwks
    }

    /// The claims policy.
    pub fn policy(&self) -> &ClaimsPolicy {
        &self.policy
    }

    /// Verifies `token` now.
    pub async fn verify(&self, token: &str) -> Result<Identity, VerifyError> {
        self.verify_at(token, SystemTime::now()).await
    }

    /// Verifies `token` as of wall-clock time `now`.
    pub async fn verify_at(&self, token: &str, now: SystemTime) -> Result<Identity, VerifyError> {
        let parsed = token::parse(token)?;
        let algorithm = allowed_algorithm(&parsed.header.alg)?;
        let kid = parsed.header.kid.as_deref().filter(|kid| !kid.is_empty()).ok_or_else(|| {
            VerifyError::new(Reason::KeyUnknown, "the token header has no kid, so no JWKS key can be chosen")
        })?;
        let key = self.jwks.key(kid).await?;
        if !key.allows(algorithm) {
            return Err(VerifyError::new(
                Reason::AlgorithmNotAllowed,
                format!(
                    "the token header says {algorithm} but key {kid} is an {} key for {}",
                    key.family(),
                    key.algorithms().map(Algorithm::name).collect::<Vec<_>>().join("/")
                ),
            ));
        }
        if !key.verify(algorithm, parsed.signing_input.as_bytes(), &parsed.signature) {
            return Err(VerifyError::new(
                Reason::SignatureInvalid,
                format!(
                    "the {algorithm} signature does not verify with key {kid}; the token was altered or not signed by this Better Auth"
                ),
            ));
        }
        let claims = token::decode_payload(parsed.payload)?;
        self.policy.validate(claims, now, kid, algorithm.name())
    }
}

/// The header's algorithm, if it is one we ever accept.
fn allowed_algorithm(name: &str) -> Result<Algorithm, VerifyError> {
    if name.eq_ignore_ascii_case("none") {
        return Err(VerifyError::new(Reason::AlgorithmNotAllowed, "unsigned tokens (alg none) are never accepted"));
    }
    if name.to_ascii_uppercase().starts_with("HS") {
        return Err(VerifyError::new(
            Reason::AlgorithmNotAllowed,
            format!(
                "{name} is a shared-secret (HMAC) algorithm; only Better Auth's public-key signatures are accepted"
            ),
        ));
    }
    Algorithm::from_name(name).ok_or_else(|| {
        let shown: String = name.chars().take(32).collect();
        VerifyError::new(
            Reason::AlgorithmNotAllowed,
            format!("algorithm {shown:?} is not supported; Better Auth signs with EdDSA, ES256, ES512, RS256 or PS256"),
        )
    })
}
