//! Why a token was not accepted, and how that becomes a gRPC status.

use tonic::{Code, Status};

/// `ErrorInfo` domain of auth-service errors.
pub const DOMAIN: &str = "auth.v1";

/// The machine-readable reason of a rejection (`google.rpc.ErrorInfo.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No token was given.
    TokenMissing,
    /// Not a well-formed compact JWS with the claims we need.
    TokenMalformed,
    /// `exp` is in the past (beyond the leeway). The frontend should refresh.
    TokenExpired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    TokenNotYetValid,
    /// The signature does not verify with the key.
    SignatureInvalid,
    /// No JWKS key has the token's `kid`, even after a refetch.
    KeyUnknown,
    /// `none`, HMAC, an unknown algorithm, or one the key does not allow.
    AlgorithmNotAllowed,
    /// `iss` is not the configured issuer.
    IssuerMismatch,
    /// `aud` holds none of the configured audiences.
    AudienceMismatch,
    /// No signing keys can be had (JWKS never fetched, or too stale).
    JwksUnavailable,
}

impl Reason {
    /// The `ErrorInfo.reason` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenMissing => "TOKEN_MISSING",
            Self::TokenMalformed => "TOKEN_MALFORMED",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::TokenNotYetValid => "TOKEN_NOT_YET_VALID",
            Self::SignatureInvalid => "SIGNATURE_INVALID",
            Self::KeyUnknown => "KEY_UNKNOWN",
            Self::AlgorithmNotAllowed => "ALGORITHM_NOT_ALLOWED",
            Self::IssuerMismatch => "ISSUER_MISMATCH",
            Self::AudienceMismatch => "AUDIENCE_MISMATCH",
            Self::JwksUnavailable => "JWKS_UNAVAILABLE",
        }
    }

    /// The gRPC code this reason is reported with.
    pub fn code(self) -> Code {
        match self {
            Self::JwksUnavailable => Code::Unavailable,
            _ => Code::Unauthenticated,
        }
    }
}

/// A rejected token: the reason and a message a person can act on.
///
/// Messages describe the token and the configuration, never the token text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.as_str())]
pub struct VerifyError {
    /// Machine-readable reason.
    pub reason: Reason,
    /// Human-readable explanation.
    pub message: String,
}

impl VerifyError {
    /// A rejection for `reason`.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

impl From<VerifyError> for Status {
    fn from(error: VerifyError) -> Self {
        service_kit::status::with_reason(error.reason.code(), DOMAIN, error.reason.as_str(), error.message)
    }
}
