//! AIP-193 error statuses: a code, a `google.rpc.ErrorInfo` with a machine
//! readable reason and domain, and a message a person can act on.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// A status with a `google.rpc.ErrorInfo { reason, domain }`.
pub fn with_reason(code: Code, domain: &str, reason: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(code, message, ErrorDetails::with_error_info(reason, domain, HashMap::new()))
}

/// One violated field of a request: its path (`messages[3].content`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field in the request, e.g. `messages[2].role`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field`, described by `description`.
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into() }
    }
}

/// `INVALID_ARGUMENT` with an `ErrorInfo` reason and a `google.rpc.BadRequest`
/// listing every violation. The message joins the violations so that a
/// client that only prints the message still sees what to fix.
pub fn invalid_argument(domain: &str, reason: &str, violations: &[FieldViolation]) -> Status {
    let message = violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ");
    let mut details = ErrorDetails::with_error_info(reason, domain, HashMap::new());
    for violation in violations {
        details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
    }
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// The `ErrorInfo` reason of a status, if it carries one.
pub fn reason(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

/// The `ErrorInfo` domain of a status, if it carries one.
pub fn domain(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.domain)
}

/// The `BadRequest` field violations of a status as `(field, description)` pairs.
pub fn field_violations(status: &Status) -> Vec<FieldViolation> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| FieldViolation::new(v.field, v.description)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_and_domain_survive_a_round_trip_through_status_details() {
        let status = with_reason(Code::Unauthenticated, "auth.v1", "TOKEN_EXPIRED", "expired");
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(reason(&status).as_deref(), Some("TOKEN_EXPIRED"));
        assert_eq!(domain(&status).as_deref(), Some("auth.v1"));
        assert_eq!(status.message(), "expired");
    }

    #[test]
    fn invalid_argument_lists_every_violation_in_details_and_message() {
        let status = invalid_argument(
            "history.v1",
            "INVALID_ARGUMENT",
            &[FieldViolation::new("title", "too long"), FieldViolation::new("messages[0].role", "required")],
        );
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "title: too long; messages[0].role: required");
        assert_eq!(
            field_violations(&status),
            vec![FieldViolation::new("title", "too long"), FieldViolation::new("messages[0].role", "required"),]
        );
    }
}
