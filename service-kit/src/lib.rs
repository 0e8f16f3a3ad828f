//! What auth-service and history-service share.
//!
//! - [`identity`]: the tower layer that authenticates every call by asking
//!   auth-service, caches verified identities and hands handlers a [`Caller`].
//! - [`status`]: AIP-193 errors (`google.rpc.ErrorInfo`, `BadRequest`).
//! - [`telemetry`]: tracing setup (text or JSON logs).
//! - [`shutdown`]: SIGINT/SIGTERM handling and the bounded drain; [`serve`]:
//!   listeners and socket options; [`limit`]: the request size limit.
//! - [`observe`]: a span, a log line and metrics per call; [`admin`]: `/metrics`.
//! - [`reflection`], [`web`]: server reflection, gRPC-web CORS.

pub mod admin;
pub mod config;
pub mod identity;
pub mod limit;
pub mod observe;
pub mod probe;
pub mod reflection;
pub mod serve;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod web;

pub use identity::{AuthLayer, AuthLayerConfig, Caller, RequireIdentity};
