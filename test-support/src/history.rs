//! history-service started in-process on 127.0.0.1:0 with a real
//! auth-service in front of a JWKS the test serves (an EdDSA key, as Better
//! Auth uses by default), through the same `server::run` the binary uses.

use std::{net::SocketAddr, time::Duration};

use chat_proto::history::v1::history_service_client::HistoryServiceClient;
use history_service::{AppState, ServeOptions, Streams, server};
use service_kit::{AuthLayer, AuthLayerConfig, serve::Listeners};
use sqlx::PgPool;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::{
    metadata::{AsciiMetadataValue, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

use crate::{JwksServer, TestAuthService, TestKey, keys};

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Bearer {
    /// A bearer interceptor for `token` (`None`: send no authorization).
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(|token| MetadataValue::try_from(format!("Bearer {token}")).expect("ascii token")))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// When `TEST_PGBOUNCER_PORT` is set (scripts/test's second pass), the
/// service reaches the test database through PgBouncer in transaction mode,
/// as it reaches Neon through its pooler; PgBouncer 1.18 keeps no prepared
/// statements, so the service runs without them.
fn through_pgbouncer(pool: &PgPool, mut options: ServeOptions) -> (PgPool, ServeOptions) {
    let Some(port) = std::env::var("TEST_PGBOUNCER_PORT").ok().and_then(|port| port.parse::<u16>().ok()) else {
        return (pool.clone(), options);
    };
    let connect = (*pool.connect_options()).clone().host("127.0.0.1").port(port).statement_cache_capacity(0);
    let rerouted = sqlx::postgres::PgPoolOptions::new()
        .max_connections(pool.options().get_max_connections())
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(connect);
    options.prepared_statements = false;
    (rerouted, options)
}

/// A history client that authenticates as someone.
pub type Client = HistoryServiceClient<InterceptedService<Channel, Bearer>>;

/// A running history-service with its own auth-service and JWKS.
#[derive(Debug)]
pub struct TestHistory {
    /// Where history-service listens.
    pub addr: SocketAddr,
    /// The pool the service uses: the test's pool, or, when the suite runs
    /// behind PgBouncer (`TEST_PGBOUNCER_PORT`), an equal pool through it.
    pub service_pool: PgPool,
    /// Where its `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// The test's own pool, straight to PostgreSQL (for assertions).
    pub pool: PgPool,
    /// Its streaming tasks.
    pub streams: Streams,
    options: ServeOptions,
    /// Its identity layer (for its counters).
    pub auth_layer: AuthLayer,
    /// The auth-service it asks.
    pub auth: TestAuthService,
    /// The JWKS auth-service fetches.
    pub jwks: std::sync::Arc<JwksServer>,
    key: std::sync::Arc<TestKey>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestHistory {
    /// Starts history-service on `pool` (already migrated).
    pub async fn start(pool: PgPool) -> Self {
        Self::start_with(pool, ServeOptions { shutdown_grace: Duration::from_secs(5), ..ServeOptions::default() }).await
    }

    /// Starts with explicit serving options.
    pub async fn start_with(pool: PgPool, options: ServeOptions) -> Self {
        let key = TestKey::generate("EdDSA", "history-test-key");
        let jwks = JwksServer::serving(keys::jwks(&[&key])).await;
        let auth = TestAuthService::start_for(&jwks).await;
        Self::start_behind(pool, options, auth, jwks, key).await
    }

    /// Starts behind an auth-service that trusts the real Better Auth
    /// `better_auth`; every token then comes from Better Auth itself, so
    /// [`TestHistory::token`] is not for use (its key is trusted by nobody).
    pub async fn start_for_better_auth(
        pool: PgPool,
        options: ServeOptions,
        better_auth: &crate::better_auth::BetterAuth,
    ) -> Self {
        let auth = TestAuthService::start_with(
            auth_service::JwksSettings::new(better_auth.jwks_url()),
            crate::auth::policy_for(&better_auth.url),
            auth_service::clock::Clock::system(),
        )
        .await;
        let untrusted = JwksServer::serving(serde_json::json!({"keys": []})).await;
        Self::start_behind(pool, options, auth, untrusted, TestKey::generate("EdDSA", "untrusted")).await
    }

    /// Another replica: its own auth-service (trusting the same JWKS) and
    /// its own history-service on the same database.
    pub async fn replica(&self) -> Self {
        let auth = TestAuthService::start_for(&self.jwks).await;
        Self::launch(
            self.pool.clone(),
            self.service_pool.clone(),
            self.options.clone(),
            auth,
            self.jwks.clone(),
            self.key.clone(),
        )
        .await
    }

    /// Starts on `pool` exactly as given, never through PgBouncer (for tests
    /// that own their database server).
    pub async fn start_direct(pool: PgPool, options: ServeOptions) -> Self {
        let key = TestKey::generate("EdDSA", "history-test-key");
        let jwks = JwksServer::serving(keys::jwks(&[&key])).await;
        let auth = TestAuthService::start_for(&jwks).await;
        Self::launch(pool.clone(), pool, options, auth, std::sync::Arc::new(jwks), std::sync::Arc::new(key)).await
    }

    /// Starts in front of a given auth-service (e.g. one that trusts the real
    /// Better Auth); `jwks` and `key` mint the tokens of [`TestHistory::token`].
    pub async fn start_behind(
        pool: PgPool,
        options: ServeOptions,
        auth: TestAuthService,
        jwks: JwksServer,
        key: TestKey,
    ) -> Self {
        let (service_pool, options) = through_pgbouncer(&pool, options);
        Self::launch(pool, service_pool, options, auth, std::sync::Arc::new(jwks), std::sync::Arc::new(key)).await
    }

    async fn launch(
        pool: PgPool,
        service_pool: PgPool,
        options: ServeOptions,
        auth: TestAuthService,
        jwks: std::sync::Arc<JwksServer>,
        key: std::sync::Arc<TestKey>,
    ) -> Self {
        let auth_layer = AuthLayer::connect_lazy(&auth.url(), AuthLayerConfig::default()).expect("auth url");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind history-service");
        let addr = listener.local_addr().expect("history addr");
        let streams = Streams::new();
        let state = AppState { pool: service_pool.clone(), auth: auth_layer.clone(), streams: streams.clone() };
        let shutdown = CancellationToken::new();
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind history admin");
        let metrics_addr = admin.local_addr().expect("admin addr");
        let listeners = Listeners { grpc: listener, admin: Some(admin) };
        let task = tokio::spawn(server::run(listeners, state, options.clone(), shutdown.clone()));
        Self {
            addr,
            service_pool,
            options,
            metrics_addr,
            pool,
            streams,
            auth_layer,
            auth,
            jwks,
            key,
            shutdown,
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A valid token for `user_id`, shaped like Better Auth's.
    pub fn token(&self, user_id: &str) -> String {
        self.key.sign(&keys::better_auth_claims(user_id, &self.jwks.base_url()))
    }

    /// A token for `user_id` with these claims changed.
    pub fn token_with(&self, user_id: &str, changes: serde_json::Value) -> String {
        let mut claims = keys::better_auth_claims(user_id, &self.jwks.base_url());
        for (name, value) in changes.as_object().expect("object") {
            claims[name] = value.clone();
        }
        self.key.sign(&claims)
    }

    /// A client calling as `user_id`.
    pub async fn client(&self, user_id: &str) -> Client {
        self.client_with_token(Some(&self.token(user_id))).await
    }

    /// A client sending `token` (or no authorization at all).
    pub async fn client_with_token(&self, token: Option<&str>) -> Client {
        HistoryServiceClient::with_interceptor(crate::channel(self.url()).await, Bearer::new(token))
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        crate::scrape(self.metrics_addr).await
    }

    /// Shuts the server down and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("history task").expect("history run");
        }
    }

    /// Requests a shutdown without waiting (as SIGTERM would).
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits for the server task after [`TestHistory::begin_shutdown`].
    pub async fn join(mut self) -> anyhow::Result<()> {
        match self.task.take() {
            Some(task) => task.await.expect("history task"),
            None => Ok(()),
        }
    }
}

impl Drop for TestHistory {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
