//! auth-service integration tests: one binary, one module per concern.

#![allow(clippy::unwrap_used, missing_docs)]

mod better_auth;
mod grpc;
mod grpcurl;
mod jwks_cache;
mod layer;
mod verifier;
