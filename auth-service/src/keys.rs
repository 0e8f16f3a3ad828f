//! JWS algorithms and the public keys of a JWKS, ready to verify signatures.
//!
//! The algorithm a key verifies is decided by the key (`kty`, `crv`, `alg`),
//! never by the token: a token whose header names another algorithm than its
//! key allows is rejected before any signature check. Every primitive comes
//! from aws-lc-rs (the same backend jsonwebtoken uses), including P-521/SHA-512
//! (ES512), which jsonwebtoken's `Algorithm` enum cannot even name.

use std::fmt;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents, VerificationAlgorithm};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

/// A JWS signature algorithm this service verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (Better Auth's default). Also accepted under its RFC 9864 name `Ed25519`.
    EdDsa,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
}

const RSA_ALGORITHMS: [Algorithm; 6] =
    [Algorithm::Rs256, Algorithm::Rs384, Algorithm::Rs512, Algorithm::Ps256, Algorithm::Ps384, Algorithm::Ps512];

impl Algorithm {
    /// Parses a JWS `alg` value. `Ed25519` (RFC 9864) is the same as `EdDSA`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "EdDSA" | "Ed25519" => Self::EdDsa,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "ES512" => Self::Es512,
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            _ => return None,
        })
    }

    /// The canonical JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
        }
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Self::EdDsa => &signature::ED25519,
            Self::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::Es512 => &signature::ECDSA_P521_SHA512_FIXED,
            Self::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
        }
    }

    fn rsa_parameters(self) -> Option<&'static signature::RsaParameters> {
        Some(match self {
            Self::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Self::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Self::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Self::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One key of a JWKS document, as served (only the members we use).
#[derive(Debug, Clone, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`, `EC` or `RSA`.
    pub kty: String,
    /// Key id, matched against the token header's `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// Intended algorithm; older Better Auth JWKS omit it.
    #[serde(default)]
    pub alg: Option<String>,
    /// Curve of OKP and EC keys.
    #[serde(default)]
    pub crv: Option<String>,
    /// Public key use; keys for anything but `sig` are ignored.
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// OKP public key, or EC x coordinate.
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(default)]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(default)]
    pub n: Option<String>,
    /// RSA public exponent.
    #[serde(default)]
    pub e: Option<String>,
}

/// Why a JWK cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key is for encryption, not signatures.
    #[error("key use is {0:?}, not \"sig\"")]
    NotForSignatures(String),
    /// A key type or curve we do not verify with.
    #[error("unsupported key type {0}")]
    Unsupported(String),
    /// `alg` contradicts the key's type or curve, or is not an algorithm we verify.
    #[error("alg {alg} does not fit a {family} key")]
    AlgorithmMismatch {
        /// The key's `alg`.
        alg: String,
        /// What the key is (`Ed25519`, `EC P-256`, `RSA`).
        family: &'static str,
    },
    /// A required member is missing or is not valid base64url.
    #[error("member {0} is missing or not base64url")]
    BadMember(&'static str),
    /// The key material is not a valid public key.
    #[error("invalid key material: {0}")]
    Invalid(String),
}

/// A JWKS public key, parsed once, with the algorithms it may verify.
pub struct VerifyingKey {
    kid: String,
    family: &'static str,
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("algorithms", &self.algorithms().collect::<Vec<_>>())
            .finish()
    }
}

impl VerifyingKey {
    /// Parses a JWK. `kid` is the id it is filed under.
    pub fn from_jwk(kid: String, jwk: &Jwk) -> Result<Self, KeyError> {
        if let Some(use_) = &jwk.use_
            && use_ != "sig"
        {
            return Err(KeyError::NotForSignatures(use_.clone()));
        }
        let declared = jwk.alg.as_deref();
        let (family, algorithms, material): (&'static str, Vec<Algorithm>, KeyMaterial) = match jwk.kty.as_str() {
            "OKP" => {
                let crv = jwk.crv.as_deref().unwrap_or("Ed25519");
                if crv != "Ed25519" {
                    return Err(KeyError::Unsupported(format!("OKP {crv}")));
                }
                let x = decode_member(jwk.x.as_deref(), "x")?;
                ("Ed25519", vec![Algorithm::EdDsa], KeyMaterial::Raw(x))
            }
            "EC" => {
                let (family, algorithm, size) = match jwk.crv.as_deref() {
                    Some("P-256") => ("EC P-256", Algorithm::Es256, 32),
                    Some("P-384") => ("EC P-384", Algorithm::Es384, 48),
                    Some("P-521") => ("EC P-521", Algorithm::Es512, 66),
                    other => return Err(KeyError::Unsupported(format!("EC {}", other.unwrap_or("without crv")))),
                };
                let x = fixed_width(decode_member(jwk.x.as_deref(), "x")?, size, "x")?;
                let y = fixed_width(decode_member(jwk.y.as_deref(), "y")?, size, "y")?;
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                (family, vec![algorithm], KeyMaterial::Raw(point))
            }
            "RSA" => {
                let n = strip_leading_zeros(decode_member(jwk.n.as_deref(), "n")?);
                let e = strip_leading_zeros(decode_member(jwk.e.as_deref(), "e")?);
                // Without `alg` the key type still pins the family: any RSA
                // signature scheme, never HMAC or a curve.
                ("RSA", RSA_ALGORITHMS.to_vec(), KeyMaterial::Rsa { n, e })
            }
            other => return Err(KeyError::Unsupported(other.to_owned())),
        };
        let algorithms = match declared {
            None => algorithms,
            Some(name) => match Algorithm::from_name(name) {
                Some(algorithm) if algorithms.contains(&algorithm) => vec![algorithm],
                _ => {
                    return Err(KeyError::AlgorithmMismatch { alg: name.to_owned(), family });
                }
            },
        };
        let verifiers = algorithms
            .into_iter()
            .map(|algorithm| material.parse(algorithm).map(|key| (algorithm, key)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { kid, family, verifiers })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// What kind of key this is, for messages (`Ed25519`, `EC P-256`, `RSA`).
    pub fn family(&self) -> &'static str {
        self.family
    }

    /// The algorithms this key may verify.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.verifiers.iter().map(|(algorithm, _)| *algorithm)
    }

    /// Whether this key may verify `algorithm`.
    pub fn allows(&self, algorithm: Algorithm) -> bool {
        self.verifiers.iter().any(|(a, _)| *a == algorithm)
    }

    /// Checks `signature` over `message` with `algorithm`. `false` when the
    /// signature is wrong or the key does not allow the algorithm.
    pub fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verifiers
            .iter()
            .find(|(a, _)| *a == algorithm)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

enum KeyMaterial {
    Raw(Vec<u8>),
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl KeyMaterial {
    fn parse(&self, algorithm: Algorithm) -> Result<ParsedPublicKey, KeyError> {
        let parsed = match (self, algorithm.rsa_parameters()) {
            (Self::Raw(bytes), None) => ParsedPublicKey::new(algorithm.verification(), bytes),
            (Self::Rsa { n, e }, Some(params)) => RsaPublicKeyComponents { n, e }.to_parsed_public_key(params),
            _ => return Err(KeyError::Invalid(format!("{algorithm} does not fit this key"))),
        };
        parsed.map_err(|rejected| KeyError::Invalid(rejected.to_string()))
    }
}

fn decode_member(value: Option<&str>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let value = value.ok_or(KeyError::BadMember(name))?;
    URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).map_err(|_| KeyError::BadMember(name))
}

/// EC coordinates must be exactly the field size; some encoders drop leading zeros.
fn fixed_width(bytes: Vec<u8>, size: usize, name: &'static str) -> Result<Vec<u8>, KeyError> {
    match bytes.len().cmp(&size) {
        std::cmp::Ordering::Equal => Ok(bytes),
        std::cmp::Ordering::Less => {
            let mut padded = vec![0u8; size - bytes.len()];
            padded.extend_from_slice(&bytes);
            Ok(padded)
        }
        std::cmp::Ordering::Greater => Err(KeyError::BadMember(name)),
    }
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: serde_json::Value) -> Jwk {
        serde_json::from_value(json).unwrap()
    }

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn okp_key_without_alg_is_inferred_as_eddsa() {
        let key = VerifyingKey::from_jwk("k".into(), &jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","x":ED_X})))
            .unwrap();
        assert_eq!(key.algorithms().collect::<Vec<_>>(), vec![Algorithm::EdDsa]);
        assert_eq!(key.family(), "Ed25519");
    }

    #[test]
    fn rfc9864_ed25519_name_is_eddsa() {
        let key = VerifyingKey::from_jwk(
            "k".into(),
            &jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","alg":"Ed25519","x":ED_X})),
        )
        .unwrap();
        assert!(key.allows(Algorithm::EdDsa));
        assert_eq!(Algorithm::from_name("Ed25519"), Some(Algorithm::EdDsa));
    }

    #[test]
    fn alg_that_contradicts_the_key_type_is_rejected() {
        let error = VerifyingKey::from_jwk(
            "k".into(),
            &jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","alg":"RS256","x":ED_X})),
        )
        .unwrap_err();
        assert_eq!(error, KeyError::AlgorithmMismatch { alg: "RS256".into(), family: "Ed25519" });
    }

    #[test]
    fn hmac_and_encryption_keys_are_not_usable() {
        let oct =
            VerifyingKey::from_jwk("k".into(), &jwk(serde_json::json!({"kty":"oct","k":"c2VjcmV0"}))).unwrap_err();
        assert_eq!(oct, KeyError::Unsupported("oct".into()));
        let enc = VerifyingKey::from_jwk(
            "k".into(),
            &jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","use":"enc","x":ED_X})),
        )
        .unwrap_err();
        assert_eq!(enc, KeyError::NotForSignatures("enc".into()));
    }

    #[test]
    fn none_and_hmac_are_not_algorithms_we_know() {
        for name in ["none", "HS256", "HS384", "HS512", "", "eddsa"] {
            assert_eq!(Algorithm::from_name(name), None, "{name}");
        }
    }

    #[test]
    fn bad_key_material_is_reported_not_panicked_on() {
        let error =
            VerifyingKey::from_jwk("k".into(), &jwk(serde_json::json!({"kty":"OKP","crv":"Ed25519","x":"AAAA"})))
                .unwrap_err();
        assert!(matches!(error, KeyError::Invalid(_)), "{error:?}");
        let error = VerifyingKey::from_jwk(
            "k".into(),
            &jwk(serde_json::json!({"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"})),
        )
        .unwrap_err();
        assert!(matches!(error, KeyError::Invalid(_)), "{error:?}");
        let error = VerifyingKey::from_jwk("k".into(), &jwk(serde_json::json!({"kty":"RSA","n":"AQAB"}))).unwrap_err();
        assert_eq!(error, KeyError::BadMember("e"));
    }
}
