//! Compact JWS parsing: size limit, the three base64url parts, the header.
//!
//! Nothing here trusts the token: the header only says which key to look up
//! and which algorithm the signer claims; the key decides what is allowed.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

use crate::error::{Reason, VerifyError};

/// Tokens longer than this are rejected before any parsing (16 KiB).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The protected header members we read.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// Signature algorithm claimed by the signer.
    pub alg: String,
    /// Id of the signing key.
    #[serde(default)]
    pub kid: Option<String>,
    /// Critical extensions: we understand none, so any is a rejection (RFC 7515 §4.1.11).
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// A parsed, not yet verified, compact JWS.
#[derive(Debug)]
pub struct UnverifiedToken<'a> {
    /// The protected header.
    pub header: Header,
    /// `base64url(header) . base64url(payload)`: the signed bytes.
    pub signing_input: &'a str,
    /// The base64url payload, decoded only after the signature verifies.
    pub payload: &'a str,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

fn malformed(message: impl Into<String>) -> VerifyError {
    VerifyError::new(Reason::TokenMalformed, message)
}

/// Splits and decodes a compact JWS.
pub fn parse(token: &str) -> Result<UnverifiedToken<'_>, VerifyError> {
    if token.is_empty() {
        return Err(VerifyError::new(Reason::TokenMissing, "no token was given"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed(format!(
            "the token is {} bytes; tokens over {MAX_TOKEN_BYTES} bytes are rejected unread",
            token.len()
        )));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let count = token.split('.').count();
        return Err(malformed(if count == 5 {
            "the token is an encrypted JWE (5 parts); only signed JWTs (3 parts) are accepted".to_owned()
        } else {
            format!("a JWT has 3 dot-separated parts; this token has {count}")
        }));
    };
    let header_bytes = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| malformed("the JWT header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|error| malformed(format!("the JWT header is not a JSON object with a string alg: {error}")))?;
    if header.crit.is_some() {
        return Err(malformed("the JWT header has critical extensions (crit), which this service does not support"));
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed("the JWT signature is not base64url"))?;
    if payload.is_empty() {
        return Err(malformed("the JWT payload is empty"));
    }
    Ok(UnverifiedToken { header, signing_input: &token[..header_b64.len() + 1 + payload.len()], payload, signature })
}

/// Decodes the payload of a token whose signature verified.
pub fn decode_payload(payload: &str) -> Result<serde_json::Map<String, serde_json::Value>, VerifyError> {
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| malformed("the JWT payload is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|error| malformed(format!("the JWT payload is not a JSON object: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn a_well_formed_token_splits_into_header_signing_input_and_signature() {
        let token = format!("{}.{}.{}", b64(r#"{"alg":"EdDSA","kid":"k1"}"#), b64(r#"{"sub":"u"}"#), b64("sig"));
        let parsed = parse(&token).unwrap();
        assert_eq!(parsed.header.alg, "EdDSA");
        assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.signature, b"sig");
        assert_eq!(parsed.signing_input, token.rsplit_once('.').unwrap().0);
        assert_eq!(decode_payload(parsed.payload).unwrap()["sub"], "u");
    }

    #[test]
    fn empty_token_is_missing() {
        assert_eq!(parse("").unwrap_err().reason, Reason::TokenMissing);
    }

    #[test]
    fn oversized_token_is_rejected_before_parsing() {
        let token = "a".repeat(MAX_TOKEN_BYTES + 1);
        let error = parse(&token).unwrap_err();
        assert_eq!(error.reason, Reason::TokenMalformed);
        assert!(error.message.contains("16385 bytes"), "{}", error.message);
    }

    #[test]
    fn wrong_part_counts_are_malformed() {
        for token in ["abc", "a.b", "a.b.c.d", "a.b.c.d.e"] {
            assert_eq!(parse(token).unwrap_err().reason, Reason::TokenMalformed, "{token}");
        }
        assert!(parse("a.b.c.d.e").unwrap_err().message.contains("JWE"));
    }

    #[test]
    fn garbage_header_is_malformed() {
        for header in ["!!!", &b64("not json"), &b64(r#"{"alg":5}"#), &b64("[]")] {
            let token = format!("{header}.{}.{}", b64("{}"), b64("s"));
            assert_eq!(parse(&token).unwrap_err().reason, Reason::TokenMalformed, "{header}");
        }
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let token = format!("{}.{}.{}", b64(r#"{"alg":"EdDSA","crit":["b64"],"b64":false}"#), b64("{}"), b64("s"));
        assert!(parse(&token).unwrap_err().message.contains("crit"));
    }
}
