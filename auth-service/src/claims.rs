//! Claim checks (`exp`, `nbf`, `iat`, `iss`, `aud`, `sub`) and the identity
//! a verified token carries.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_proto::auth::v1::Identity;
use prost_types::{ListValue, Struct, Timestamp, Value, value::Kind};
use serde_json::{Map, Value as Json};

use crate::error::{Reason, VerifyError};

/// What a token's claims must satisfy.
#[derive(Debug, Clone)]
pub struct ClaimsPolicy {
    /// Accepted `iss` values (any one matches).
    pub issuers: Vec<String>,
    /// Accepted `aud` values (the token must name at least one).
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
}

/// Where the user could get a fresh token; appended to expiry messages.
const REFRESH_HINT: &str = "get a fresh one from Better Auth (/api/auth/token)";

impl ClaimsPolicy {
    /// Checks `claims` at wall-clock time `now` and builds the identity.
    pub fn validate(
        &self,
        claims: Map<String, Json>,
        now: SystemTime,
        key_id: &str,
        algorithm: &str,
    ) -> Result<Identity, VerifyError> {
        let now_secs = unix_seconds(now);
        let leeway = self.leeway.as_secs_f64();

        let exp = numeric_date(&claims, "exp")?.ok_or_else(|| {
            VerifyError::new(Reason::TokenMalformed, "the token has no exp claim; tokens must expire")
        })?;
        if now_secs > exp + leeway {
            return Err(VerifyError::new(
                Reason::TokenExpired,
                format!("token expired {} ago (at {}); {REFRESH_HINT}", ago(now_secs - exp), rfc3339(exp)),
            ));
        }
        if let Some(nbf) = numeric_date(&claims, "nbf")?
            && nbf > now_secs + leeway
        {
            return Err(VerifyError::new(
                Reason::TokenNotYetValid,
                format!(
                    "token is not valid before {} ({} from now); check the clocks of Better Auth and this service",
                    rfc3339(nbf),
                    ago(nbf - now_secs)
                ),
            ));
        }
        let iat = numeric_date(&claims, "iat")?;
        if let Some(iat) = iat
            && iat > now_secs + leeway
        {
            return Err(VerifyError::new(
                Reason::TokenNotYetValid,
                format!(
                    "token was issued {} in the future (iat {}); check the clocks of Better Auth and this service",
                    ago(iat - now_secs),
                    rfc3339(iat)
                ),
            ));
        }

        let issuer = match claims.get("iss") {
            Some(Json::String(iss)) => iss.clone(),
            Some(_) => return Err(VerifyError::new(Reason::TokenMalformed, "the iss claim is not a string")),
            None => {
                return Err(VerifyError::new(
                    Reason::IssuerMismatch,
                    format!("the token has no iss claim; expected {}", self.issuers.join(" or ")),
                ));
            }
        };
        if !self.issuers.iter().any(|expected| same_url(expected, &issuer)) {
            return Err(VerifyError::new(
                Reason::IssuerMismatch,
                format!(
                    "issuer {issuer} is not the configured {} (set AUTH_ISSUER if Better Auth's base URL differs)",
                    self.issuers.join(" or ")
                ),
            ));
        }

        let audience = match claims.get("aud") {
            Some(Json::String(aud)) => vec![aud.clone()],
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| VerifyError::new(Reason::TokenMalformed, "the aud claim holds a non-string"))?,
            Some(_) => {
                return Err(VerifyError::new(Reason::TokenMalformed, "the aud claim is neither a string nor a list"));
            }
            None => Vec::new(),
        };
        if !audience.iter().any(|aud| self.audiences.iter().any(|expected| same_url(expected, aud))) {
            let got = if audience.is_empty() { "none".to_owned() } else { audience.join(", ") };
            return Err(VerifyError::new(
                Reason::AudienceMismatch,
                format!(
                    "audience {got} does not include the configured {} (set AUTH_AUDIENCE if Better Auth signs for another audience)",
                    self.audiences.join(" or ")
                ),
            ));
        }

        let user_id = match claims.get("sub") {
            Some(Json::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => return Err(VerifyError::new(Reason::TokenMalformed, "the token has no sub claim (the user id)")),
        };

        let text = |name: &str| claims.get(name).and_then(Json::as_str).unwrap_or_default().to_owned();
        let session_id = ["sid", "sessionId", "session_id"]
            .iter()
            .find_map(|name| claims.get(*name).and_then(Json::as_str))
            .unwrap_or_default()
            .to_owned();
        Ok(Identity {
            email: text("email"),
            name: text("name"),
            email_verified: claims.get("emailVerified").and_then(Json::as_bool).unwrap_or(false),
            session_id,
            issuer,
            audience,
            key_id: key_id.to_owned(),
            algorithm: algorithm.to_owned(),
            issued_at: iat.map(timestamp),
            expires_at: Some(timestamp(exp)),
            claims: Some(to_struct(claims)),
            user_id,
        })
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional).
fn numeric_date(claims: &Map<String, Json>, name: &str) -> Result<Option<f64>, VerifyError> {
    match claims.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(number)) => number.as_f64().filter(|value| value.is_finite()).map(Some).ok_or_else(|| {
            VerifyError::new(Reason::TokenMalformed, format!("the {name} claim is not a usable number"))
        }),
        Some(_) => Err(VerifyError::new(
            Reason::TokenMalformed,
            format!("the {name} claim is not a number of seconds since 1970"),
        )),
    }
}

/// Compares issuer/audience URLs, ignoring one trailing slash.
fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn unix_seconds(time: SystemTime) -> f64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    }
}

/// `3m 12s` for a positive number of seconds.
fn ago(seconds: f64) -> String {
    humantime::format_duration(Duration::from_secs(seconds.max(0.0).round() as u64)).to_string()
}

fn rfc3339(seconds: f64) -> String {
    if !(0.0..=253_402_300_799.0).contains(&seconds) {
        return format!("{seconds} seconds after 1970");
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds as u64)).to_string()
}

fn timestamp(seconds: f64) -> Timestamp {
    let whole = seconds.floor();
    Timestamp { seconds: whole as i64, nanos: ((seconds - whole) * 1e9) as i32 }
}

/// Converts a JSON object into a `google.protobuf.Struct`.
pub fn to_struct(map: Map<String, Json>) -> Struct {
    Struct { fields: map.into_iter().map(|(key, value)| (key, to_value(value))).collect() }
}

/// Converts JSON into a `google.protobuf.Value`.
pub fn to_value(json: Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s),
        Json::Array(items) => Kind::ListValue(ListValue { values: items.into_iter().map(to_value).collect() }),
        Json::Object(map) => Kind::StructValue(to_struct(map)),
    };
    Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn policy() -> ClaimsPolicy {
        ClaimsPolicy {
            issuers: vec!["http://localhost:3000".into()],
            audiences: vec!["http://localhost:3000".into()],
            leeway: Duration::from_secs(60),
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn claims(extra: Json) -> Map<String, Json> {
        let mut base = json!({
            "sub": "user_1", "iss": "http://localhost:3000", "aud": "http://localhost:3000",
            "iat": NOW - 10, "exp": NOW + 900, "email": "a@example.com", "name": "Ada",
            "emailVerified": true, "image": null,
        });
        for (key, value) in extra.as_object().unwrap() {
            if value == &json!("__remove__") {
                base.as_object_mut().unwrap().remove(key);
            } else {
                base[key] = value.clone();
            }
        }
        base.as_object().unwrap().clone()
    }

    fn check(extra: Json) -> Result<Identity, VerifyError> {
        policy().validate(claims(extra), now(), "kid1", "EdDSA")
    }

    #[test]
    fn better_auth_payload_becomes_an_identity() {
        let identity = check(json!({})).unwrap();
        assert_eq!(identity.user_id, "user_1");
        assert_eq!(identity.email, "a@example.com");
        assert_eq!(identity.name, "Ada");
        assert!(identity.email_verified);
        assert_eq!(identity.issuer, "http://localhost:3000");
        assert_eq!(identity.audience, vec!["http://localhost:3000"]);
        assert_eq!(identity.key_id, "kid1");
        assert_eq!(identity.algorithm, "EdDSA");
        assert_eq!(identity.expires_at, Some(Timestamp { seconds: (NOW + 900) as i64, nanos: 0 }));
        assert_eq!(identity.issued_at, Some(Timestamp { seconds: (NOW - 10) as i64, nanos: 0 }));
        let claims = identity.claims.unwrap();
        assert_eq!(claims.fields["image"].kind, Some(Kind::NullValue(0)));
        assert_eq!(claims.fields.len(), 9);
    }

    #[test]
    fn expired_token_says_how_long_ago() {
        let error = check(json!({"exp": NOW - 192})).unwrap_err();
        assert_eq!(error.reason, Reason::TokenExpired);
        assert_eq!(
            error.message,
            "token expired 3m 12s ago (at 2027-01-15T07:56:48Z); get a fresh one from Better Auth (/api/auth/token)"
        );
    }

    #[test]
    fn expiry_within_the_leeway_is_accepted() {
        assert!(check(json!({"exp": NOW - 59})).is_ok());
    }

    #[test]
    fn missing_exp_is_malformed() {
        assert_eq!(check(json!({"exp": "__remove__"})).unwrap_err().reason, Reason::TokenMalformed);
        assert_eq!(check(json!({"exp": "soon"})).unwrap_err().reason, Reason::TokenMalformed);
    }

    #[test]
    fn future_nbf_and_iat_are_not_yet_valid() {
        assert_eq!(check(json!({"nbf": NOW + 300})).unwrap_err().reason, Reason::TokenNotYetValid);
        assert_eq!(check(json!({"iat": NOW + 300})).unwrap_err().reason, Reason::TokenNotYetValid);
        assert!(check(json!({"nbf": NOW + 30, "iat": NOW + 30})).is_ok());
    }

    #[test]
    fn wrong_issuer_names_both() {
        let error = check(json!({"iss": "https://a.example"})).unwrap_err();
        assert_eq!(error.reason, Reason::IssuerMismatch);
        assert!(error.message.starts_with("issuer https://a.example is not the configured http://localhost:3000"));
        assert_eq!(check(json!({"iss": "__remove__"})).unwrap_err().reason, Reason::IssuerMismatch);
    }

    #[test]
    fn issuer_trailing_slash_is_ignored() {
        assert!(check(json!({"iss": "http://localhost:3000/"})).is_ok());
    }

    #[test]
    fn audience_may_be_a_list_and_must_intersect() {
        let identity = check(json!({"aud": ["other", "http://localhost:3000"]})).unwrap();
        assert_eq!(identity.audience, vec!["other", "http://localhost:3000"]);
        let error = check(json!({"aud": ["other"]})).unwrap_err();
        assert_eq!(error.reason, Reason::AudienceMismatch);
        assert_eq!(check(json!({"aud": "__remove__"})).unwrap_err().reason, Reason::AudienceMismatch);
    }

    #[test]
    fn missing_or_empty_sub_is_malformed() {
        assert_eq!(check(json!({"sub": "__remove__"})).unwrap_err().reason, Reason::TokenMalformed);
        assert_eq!(check(json!({"sub": ""})).unwrap_err().reason, Reason::TokenMalformed);
        assert_eq!(check(json!({"sub": 42})).unwrap_err().reason, Reason::TokenMalformed);
    }

    #[test]
    fn session_id_is_read_from_common_claim_names() {
        assert_eq!(check(json!({"sid": "s1"})).unwrap().session_id, "s1");
        assert_eq!(check(json!({"sessionId": "s2"})).unwrap().session_id, "s2");
        assert_eq!(check(json!({})).unwrap().session_id, "");
    }
}
