//! auth-service: verifies Better Auth JWTs and returns the verified identity.
//!
//! - [`config`]: environment variables and their defaults.
//! - [`token`], [`keys`], [`claims`], [`verifier`]: parsing, keys, claims, and
//!   the verification order that ties them together.
//! - [`jwks`]: the cached, rotating, outage-tolerant JWKS.
//! - [`service`], [`server`]: the gRPC service and the server around it.

pub mod claims;
pub mod clock;
pub mod config;
pub mod error;
pub mod jwks;
pub mod keys;
pub mod server;
pub mod service;
pub mod token;
pub mod verifier;

pub use config::{Config, ServeOptions, Settings};
pub use error::{Reason, VerifyError};
pub use jwks::{JwksCache, JwksSettings};
pub use verifier::Verifier;
