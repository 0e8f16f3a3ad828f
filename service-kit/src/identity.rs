//! The identity layer: authenticates every gRPC call by asking auth-service.
//!
//! [`AuthLayer`] wraps any tonic server (the whole `Server` through
//! `Server::builder().layer(..)`, or one generated service, since
//! [`RequireIdentity`] forwards `NamedService`). For each call it
//!
//! 1. lets health and reflection calls through untouched (probes and grpcurl
//!    need no token);
//! 2. reads `authorization: Bearer <jwt>`; nothing else the client sends
//!    (`x-user-id` and the like) is ever read;
//! 3. looks the token up in a bounded cache keyed by its SHA-256 digest (the
//!    token itself is never stored or logged); an entry lives until
//!    `min(exp, cache_ttl)`;
//! 4. otherwise calls `auth.v1.AuthService/VerifyToken` with a deadline;
//!    concurrent calls with the same token share one verification;
//! 5. puts the verified identity into the request extensions as a [`Caller`].
//!
//! Rejections keep auth-service's status and `ErrorInfo` reason
//! (`UNAUTHENTICATED`/`TOKEN_EXPIRED`, ...). When auth-service cannot be
//! reached, or answers anything but a verdict, the call fails with
//! `UNAVAILABLE` (reason `AUTH_SERVICE_UNAVAILABLE`), never `UNAUTHENTICATED`:
//! a frontend must not sign its user out because of an outage.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use aws_lc_rs::digest;
use chat_proto::auth::v1::{Identity, VerifyTokenRequest, auth_service_client::AuthServiceClient};
use http::header::AUTHORIZATION;
use moka::{Expiry, future::Cache};
use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tonic::{Code, Status, body::Body, server::NamedService, transport::Channel};
use tower::{Layer, Service};

use crate::status;

/// `ErrorInfo` domain of the errors this layer makes itself.
pub const DOMAIN: &str = "auth.v1";
/// Default deadline of one `VerifyToken` call.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(3);
/// Default longest life of a cached identity (shorter when the token expires sooner).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// Default number of cached identities.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Calls under these path prefixes need no token.
pub const DEFAULT_PUBLIC_PREFIXES: &[&str] =
    &["/grpc.health.v1.Health/", "/grpc.reflection.v1.ServerReflection/", "/grpc.reflection.v1alpha.ServerReflection/"];

/// Settings of the identity layer.
#[derive(Debug, Clone)]
pub struct AuthLayerConfig {
    /// Deadline of one `VerifyToken` call to auth-service.
    pub verify_timeout: Duration,
    /// Longest life of a cached identity.
    pub cache_ttl: Duration,
    /// Maximum number of cached identities.
    pub cache_capacity: u64,
    /// Path prefixes that pass without a token.
    pub public_prefixes: Vec<String>,
}

impl Default for AuthLayerConfig {
    fn default() -> Self {
        Self {
            verify_timeout: DEFAULT_VERIFY_TIMEOUT,
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            public_prefixes: DEFAULT_PUBLIC_PREFIXES.iter().map(|p| (*p).to_owned()).collect(),
        }
    }
}

/// The verified caller of a request, put into its extensions by [`AuthLayer`].
///
/// Handlers read it with [`Caller::from_request`]; nothing a client sends can
/// create one.
#[derive(Debug, Clone)]
pub struct Caller(Arc<Identity>);

impl Caller {
    /// Wraps an identity verified by auth-service.
    pub fn new(identity: Arc<Identity>) -> Self {
        Self(identity)
    }

    /// The Better Auth user id (`sub`).
    pub fn user_id(&self) -> &str {
        &self.0.user_id
    }

    /// The whole verified identity.
    pub fn identity(&self) -> &Identity {
        &self.0
    }

    /// The caller of `request`, or `INTERNAL` when the server was not wrapped
    /// in [`AuthLayer`] (a deployment bug, not the client's fault).
    pub fn from_request<T>(request: &tonic::Request<T>) -> Result<Self, Status> {
        request.extensions().get::<Self>().cloned().ok_or_else(|| {
            tracing::error!(
                "request reached a handler without a verified identity; is the server wrapped in AuthLayer?"
            );
            Status::internal("the server is misconfigured: no identity layer")
        })
    }
}

/// Counters of the identity layer (exported as metrics, read by tests).
#[derive(Debug, Default)]
pub struct IdentityStats {
    /// Calls answered from the identity cache.
    pub cache_hits: Counter,
    /// Calls that had to ask auth-service.
    pub cache_misses: Counter,
    /// `VerifyToken` calls made.
    pub verify_calls: Counter,
    /// `VerifyToken` calls that failed for a reason other than a bad token.
    pub verify_failures: Counter,
}

/// A cached verification: the identity and how long it may be reused.
#[derive(Clone)]
struct CachedIdentity {
    identity: Arc<Identity>,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<[u8; 32], CachedIdentity> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &CachedIdentity,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

struct Shared {
    client: AuthServiceClient<Channel>,
    cache: Cache<[u8; 32], CachedIdentity>,
    config: AuthLayerConfig,
    stats: Arc<IdentityStats>,
}

/// Tower layer that authenticates every call through auth-service.
#[derive(Clone)]
pub struct AuthLayer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthLayer").field("config", &self.shared.config).finish_non_exhaustive()
    }
}

impl AuthLayer {
    /// A layer that verifies tokens with the auth-service behind `channel`.
    pub fn new(channel: Channel, config: AuthLayerConfig) -> Self {
        let cache = Cache::builder().max_capacity(config.cache_capacity).expire_after(PerEntryTtl).build();
        Self {
            shared: Arc::new(Shared { client: AuthServiceClient::new(channel), cache, config, stats: Arc::default() }),
        }
    }

    /// Connects lazily to auth-service at `url` (the first call connects, and
    /// the channel reconnects by itself after an outage).
    pub fn connect_lazy(url: &str, config: AuthLayerConfig) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
            .connect_timeout(config.verify_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self::new(channel, config))
    }

    /// The layer's counters.
    pub fn stats(&self) -> Arc<IdentityStats> {
        self.shared.stats.clone()
    }

    /// Registers the layer's counters and cache size in `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let stats = &self.shared.stats;
        registry.register(
            "identity_cache_hits",
            "Calls authenticated from the identity cache",
            stats.cache_hits.clone(),
        );
        registry.register("identity_cache_misses", "Calls that had to ask auth-service", stats.cache_misses.clone());
        registry.register("auth_verify_calls", "VerifyToken calls made to auth-service", stats.verify_calls.clone());
        registry.register(
            "auth_verify_failures",
            "VerifyToken calls that got no verdict (auth-service unreachable, timed out, or broken)",
            stats.verify_failures.clone(),
        );
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = RequireIdentity<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireIdentity { inner, shared: self.shared.clone() }
    }
}

/// The service [`AuthLayer`] produces.
#[derive(Clone)]
pub struct RequireIdentity<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for RequireIdentity<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequireIdentity").finish_non_exhaustive()
    }
}

impl<S: NamedService> NamedService for RequireIdentity<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> Service<http::Request<B>> for RequireIdentity<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was driven to readiness is the one we must call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move {
            let path = request.uri().path();
            if shared.config.public_prefixes.iter().any(|prefix| path.starts_with(prefix.as_str())) {
                return inner.call(request).await;
            }
            match shared.authenticate(request.headers()).await {
                Ok(identity) => {
                    tracing::Span::current().record("user_id", identity.user_id.as_str());
                    request.extensions_mut().insert(Caller(identity));
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

impl Shared {
    async fn authenticate(&self, headers: &http::HeaderMap) -> Result<Arc<Identity>, Status> {
        let token = bearer_token(headers)?;
        let key = token_digest(token);
        if let Some(hit) = self.cache.get(&key).await {
            self.stats.cache_hits.inc();
            return Ok(hit.identity);
        }
        self.stats.cache_misses.inc();
        let token = token.to_owned();
        // Concurrent calls with the same token share this one verification.
        self.cache.try_get_with(key, self.verify(token)).await.map(|cached| cached.identity).map_err(|shared| {
            let status: &Status = &shared;
            Status::with_details(status.code(), status.message(), status.details().to_vec().into())
        })
    }

    async fn verify(&self, token: String) -> Result<CachedIdentity, Status> {
        self.stats.verify_calls.inc();
        let mut request = tonic::Request::new(VerifyTokenRequest { token });
        request.set_timeout(self.config.verify_timeout);
        let mut client = self.client.clone();
        let outcome = tokio::time::timeout(self.config.verify_timeout, client.verify_token(request)).await;
        let response = match outcome {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) if is_verdict(&status) => return Err(status),
            Ok(Err(status)) => {
                self.stats.verify_failures.inc();
                tracing::warn!(code = ?status.code(), message = status.message(), "auth-service call failed");
                let detail = match status.code() {
                    // The channel's own connect/request deadline fired.
                    Code::DeadlineExceeded | Code::Cancelled => {
                        format!("no answer within {}", humanize(self.config.verify_timeout))
                    }
                    code => format!("{} ({})", status.message(), code_name(code)),
                };
                return Err(unavailable(&detail));
            }
            Err(_) => {
                self.stats.verify_failures.inc();
                tracing::warn!(
                    timeout_ms = self.config.verify_timeout.as_millis() as u64,
                    "auth-service call timed out"
                );
                return Err(unavailable(&format!("no answer within {}", humanize(self.config.verify_timeout))));
            }
        };
        let identity = response.identity.ok_or_else(|| {
            self.stats.verify_failures.inc();
            unavailable("auth-service answered without an identity")
        })?;
        let ttl = identity
            .expires_at
            .as_ref()
            .and_then(|expires_at| {
                let expires = SystemTime::UNIX_EPOCH.checked_add(Duration::new(
                    expires_at.seconds.try_into().ok()?,
                    expires_at.nanos.try_into().ok()?,
                ))?;
                expires.duration_since(SystemTime::now()).ok()
            })
            .unwrap_or(Duration::ZERO)
            .min(self.config.cache_ttl);
        Ok(CachedIdentity { identity: Arc::new(identity), ttl })
    }
}

/// Whether auth-service judged the token (as opposed to failing to judge it).
/// `UNAUTHENTICATED` is a verdict on the token; `UNAVAILABLE` with auth-service's
/// own `ErrorInfo` (`JWKS_UNAVAILABLE`) is passed on as it is too.
fn is_verdict(status: &Status) -> bool {
    match status.code() {
        Code::Unauthenticated => true,
        Code::Unavailable => status::domain(status).as_deref() == Some(DOMAIN),
        _ => false,
    }
}

fn unavailable(detail: &str) -> Status {
    status::with_reason(
        Code::Unavailable,
        DOMAIN,
        "AUTH_SERVICE_UNAVAILABLE",
        format!(
            "cannot verify the token right now: auth-service is unavailable: {detail}; retry later, the token itself was not rejected"
        ),
    )
}

fn code_name(code: Code) -> String {
    format!("{code:?}")
}

fn humanize(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{}ms", duration.as_millis())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// The token of `authorization: Bearer <token>`.
fn bearer_token(headers: &http::HeaderMap) -> Result<&str, Status> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(status::with_reason(
            Code::Unauthenticated,
            DOMAIN,
            "TOKEN_MISSING",
            "this call needs `authorization: Bearer <token>` metadata with a Better Auth JWT (get one from /api/auth/token)",
        ));
    };
    let malformed = || {
        status::with_reason(
            Code::Unauthenticated,
            DOMAIN,
            "TOKEN_MALFORMED",
            "the authorization metadata must be `Bearer <token>` with a Better Auth JWT",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(malformed());
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(status::with_reason(
            Code::Unauthenticated,
            DOMAIN,
            "TOKEN_MISSING",
            "the authorization metadata has an empty bearer token",
        ));
    }
    Ok(token)
}

fn token_digest(token: &str) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        map.insert(AUTHORIZATION, value.parse().unwrap());
        map
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_whitespace_tolerant() {
        assert_eq!(bearer_token(&headers("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer_token(&headers("bearer  abc ")).unwrap(), "abc");
    }

    #[test]
    fn missing_authorization_is_token_missing() {
        let status = bearer_token(&http::HeaderMap::new()).unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(status::reason(&status).as_deref(), Some("TOKEN_MISSING"));
    }

    #[test]
    fn other_schemes_are_token_malformed() {
        for value in ["Basic dXNlcjpwYXNz", "abc", "Token abc"] {
            let status = bearer_token(&headers(value)).unwrap_err();
            assert_eq!(status::reason(&status).as_deref(), Some("TOKEN_MALFORMED"), "{value}");
        }
    }

    #[test]
    fn empty_bearer_is_token_missing() {
        let status = bearer_token(&headers("Bearer  ")).unwrap_err();
        assert_eq!(status::reason(&status).as_deref(), Some("TOKEN_MISSING"));
    }

    #[test]
    fn only_unauthenticated_and_auth_service_unavailable_are_verdicts() {
        assert!(is_verdict(&status::with_reason(Code::Unauthenticated, DOMAIN, "TOKEN_EXPIRED", "x")));
        assert!(is_verdict(&status::with_reason(Code::Unavailable, DOMAIN, "JWKS_UNAVAILABLE", "x")));
        assert!(!is_verdict(&Status::unavailable("connection refused")));
        assert!(!is_verdict(&Status::internal("boom")));
        assert!(!is_verdict(&Status::deadline_exceeded("slow")));
    }
}
