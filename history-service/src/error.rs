//! history-service errors and their one mapping to gRPC statuses.
//!
//! Database details never reach clients: they are logged, and the client gets
//! a generic message. Lost connections and pool timeouts are `UNAVAILABLE`
//! (retry), a statement timeout is `DEADLINE_EXCEEDED`, a serialization
//! failure is `ABORTED`.

use service_kit::status::{self, FieldViolation};
use tonic::{Code, Status};
use uuid::Uuid;

use crate::page_token::TokenError;

/// `ErrorInfo` domain of history-service errors.
pub const DOMAIN: &str = "history.v1";

/// Everything a history-service call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks a documented rule; each violation names its field.
    #[error("invalid request: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// A page token that was not issued for this request.
    #[error("invalid page token: {0}")]
    PageToken(#[from] TokenError),
    /// No conversation with this id belongs to the caller.
    #[error("conversation {0} not found")]
    ConversationNotFound(Uuid),
    /// A client-chosen conversation id is taken by a different conversation.
    #[error("conversation {0} already exists with other content")]
    ConversationExists(Uuid),
    /// A client-chosen message id is taken by a different message.
    #[error("message {0} already exists with other content")]
    MessageExists(Uuid),
    /// The database could not be reached in time (pool timeout, lost connection).
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// A statement ran past the statement timeout.
    #[error("statement timeout: {0}")]
    Timeout(sqlx::Error),
    /// A transaction lost a serialization race or a deadlock.
    #[error("transaction aborted: {0}")]
    Aborted(sqlx::Error),
    /// Anything else from the database.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl Error {
    /// A single-field `INVALID_ARGUMENT`.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

/// SQLSTATE classes that mean "the server went away or is refusing work".
fn is_connection_state(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code == "57P01" // admin_shutdown
        || code == "57P02" // crash_shutdown
        || code == "57P03" // cannot_connect_now
        || code == "53300" // too_many_connections
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::Unavailable(error)
            }
            sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => Self::Unavailable(error),
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("57014") => Self::Timeout(error),
                Some("40001" | "40P01") => Self::Aborted(error),
                Some(code) if is_connection_state(code) => Self::Unavailable(error),
                _ => Self::Database(error),
            },
            _ => Self::Database(error),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => status::invalid_argument(DOMAIN, "INVALID_ARGUMENT", &violations),
            Error::PageToken(token) => status::invalid_argument(
                DOMAIN,
                "PAGE_TOKEN_INVALID",
                &[FieldViolation::new("page_token", token.to_string())],
            ),
            Error::ConversationNotFound(id) => status::with_reason(
                Code::NotFound,
                DOMAIN,
                "CONVERSATION_NOT_FOUND",
                format!("conversation {id} not found"),
            ),
            Error::ConversationExists(id) => status::with_reason(
                Code::AlreadyExists,
                DOMAIN,
                "CONVERSATION_ALREADY_EXISTS",
                format!(
                    "conversation_id {id} is already used by a conversation with a different title or metadata; a retry must resend the same values, a new conversation needs a new id"
                ),
            ),
            Error::MessageExists(id) => status::with_reason(
                Code::AlreadyExists,
                DOMAIN,
                "MESSAGE_ALREADY_EXISTS",
                format!(
                    "message_id {id} is already used by a different message; a retry must resend the same conversation, role, content and sources, a new message needs a new id"
                ),
            ),
            Error::Unavailable(error) => {
                tracing::warn!(%error, "database unavailable");
                status::with_reason(
                    Code::Unavailable,
                    DOMAIN,
                    "DATABASE_UNAVAILABLE",
                    "the database is unavailable right now; retry with backoff (nothing was written)",
                )
            }
            Error::Timeout(error) => {
                tracing::warn!(%error, "statement timeout");
                status::with_reason(
                    Code::DeadlineExceeded,
                    DOMAIN,
                    "DATABASE_TIMEOUT",
                    "the database did not answer in time; retry later (nothing was written)",
                )
            }
            Error::Aborted(error) => {
                tracing::info!(%error, "transaction aborted");
                status::with_reason(
                    Code::Aborted,
                    DOMAIN,
                    "CONCURRENT_UPDATE",
                    "the call collided with a concurrent one; retry it (nothing was written)",
                )
            }
            Error::Database(error) => {
                tracing::error!(%error, "database error");
                status::with_reason(Code::Internal, DOMAIN, "INTERNAL", "internal error; it has been logged")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_and_io_errors_are_unavailable() {
        let status: Status = Error::from(sqlx::Error::PoolTimedOut).into();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status::reason(&status).as_deref(), Some("DATABASE_UNAVAILABLE"));
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert_eq!(Status::from(Error::from(io)).code(), Code::Unavailable);
    }

    #[test]
    fn other_database_errors_are_internal_without_details() {
        let status: Status = Error::from(sqlx::Error::RowNotFound).into();
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error; it has been logged");
    }

    #[test]
    fn a_bad_page_token_is_invalid_argument_on_page_token() {
        let status: Status = Error::from(TokenError::Malformed).into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status::reason(&status).as_deref(), Some("PAGE_TOKEN_INVALID"));
        assert_eq!(status::field_violations(&status)[0].field, "page_token");
    }
}
