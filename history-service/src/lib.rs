//! history-service: conversations and messages in PostgreSQL over gRPC.
//!
//! - [`config`]: environment variables and their defaults.
//! - [`validate`]: request limits (named constants) and field violations.
//! - [`page_token`]: opaque, versioned keyset cursors.
//! - [`db`]: the SQL, always scoped to the caller's user id.
//! - [`service`], [`server`]: the gRPC service and the server around it.

pub mod config;
pub mod db;
pub mod error;
pub mod json;
pub mod page_token;
pub mod server;
pub mod service;
pub mod validate;

pub use config::{Config, ServeOptions, Settings};
pub use error::Error;
pub use server::{AppState, run};
pub use service::Streams;

/// The migrations of `migrations/`, embedded; used by the binary and the tests.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
