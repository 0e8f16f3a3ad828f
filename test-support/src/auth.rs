//! auth-service, started in-process on 127.0.0.1:0 through the same
//! `server::run` the binary uses.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use auth_service::{JwksCache, JwksSettings, ServeOptions, Verifier, claims::ClaimsPolicy, clock::Clock, server};
use service_kit::serve::Listeners;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::jwks_server::JwksServer;

/// A running auth-service; shut down when dropped or stopped.
#[derive(Debug)]
pub struct TestAuthService {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its `/metrics` is served.
    pub metrics_addr: SocketAddr,
    /// Its verifier (and through it the JWKS cache and its counters).
    pub verifier: Arc<Verifier>,
    settings: JwksSettings,
    policy: ClaimsPolicy,
    clock: Clock,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Claims policy for tokens issued by `issuer` (also the audience), 60 s leeway.
pub fn policy_for(issuer: &str) -> ClaimsPolicy {
    ClaimsPolicy {
        issuers: vec![issuer.to_owned()],
        audiences: vec![issuer.to_owned()],
        leeway: Duration::from_secs(60),
    }
}

impl TestAuthService {
    /// Starts with explicit settings, on a fresh port.
    pub async fn start_with(settings: JwksSettings, policy: ClaimsPolicy, clock: Clock) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind auth-service");
        Self::start_on(listener, settings, policy, clock).await
    }

    /// Starts on a given listener (to restart on the same port).
    pub async fn start_on(listener: TcpListener, settings: JwksSettings, policy: ClaimsPolicy, clock: Clock) -> Self {
        let addr = listener.local_addr().expect("auth addr");
        let jwks = JwksCache::with_clock(settings.clone(), clock.clone()).expect("jwks client");
        let verifier = Arc::new(Verifier::new(jwks, policy.clone()));
        let shutdown = CancellationToken::new();
        let options = ServeOptions { shutdown_grace: Duration::from_secs(5), ..ServeOptions::default() };
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind auth admin");
        let metrics_addr = admin.local_addr().expect("admin addr");
        let listeners = Listeners { grpc: listener, admin: Some(admin) };
        let task = tokio::spawn(server::run(listeners, verifier.clone(), options, shutdown.clone()));
        Self { addr, metrics_addr, verifier, settings, policy, clock, shutdown, task: Some(task) }
    }

    /// Starts against a test JWKS endpoint, accepting tokens whose `iss` and
    /// `aud` are that endpoint's base URL, and waits for the first fetch.
    pub async fn start_for(jwks: &JwksServer) -> Self {
        let service =
            Self::start_with(JwksSettings::new(jwks.url()), policy_for(&jwks.base_url()), Clock::system()).await;
        service.wait_ready().await;
        service
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the JWKS has been fetched (health SERVING).
    pub async fn wait_ready(&self) {
        let mut ready = self.verifier.jwks().ready();
        tokio::time::timeout(Duration::from_secs(10), ready.wait_for(|ready| *ready))
            .await
            .expect("auth-service JWKS not ready within 10 s")
            .expect("ready channel closed");
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        crate::scrape(self.metrics_addr).await
    }

    /// Stops serving (the port closes) but keeps the address for [`Self::resume`].
    pub async fn halt(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("auth-service task").expect("auth-service run");
        }
    }

    /// Serves again on the same address, with a fresh JWKS cache, and waits
    /// until it is ready.
    pub async fn resume(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind the auth-service port");
        let restarted = Self::start_on(listener, self.settings.clone(), self.policy.clone(), self.clock.clone()).await;
        restarted.wait_ready().await;
        let mut restarted = restarted;
        self.verifier = restarted.verifier.clone();
        self.metrics_addr = restarted.metrics_addr;
        // Take the running server over; dropping `restarted` then cancels
        // only the placeholder token it is left with.
        self.shutdown = std::mem::replace(&mut restarted.shutdown, CancellationToken::new());
        self.task = restarted.task.take();
    }

    /// Shuts down and waits until the port is closed.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("auth-service task").expect("auth-service run");
        }
    }
}

impl Drop for TestAuthService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
