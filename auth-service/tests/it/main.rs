//! auth-service integration tests: one binary, one module per concern.

#![allow(clippy::unwrap_used, missing_docs)]

mod grpc;
mod jwks_cache;
mod layer;
mod verifier;
