//! auth-service integration tests: one binary, one module per concern.

#![allow(clippy::unwrap_used, missing_docs)]

mod better_auth;
mod grpc;
mod grpcurl;
mod hardening;
mod jwks_cache;
mod layer;
mod properties;
mod verifier;
