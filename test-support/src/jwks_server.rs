//! A JWKS endpoint served by the test on 127.0.0.1:0, whose answers the test
//! controls (keys, errors, garbage, delays) and whose fetches it counts.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// What the endpoint answers.
#[derive(Debug, Clone)]
pub enum JwksBehavior {
    /// 200 with this JSON document.
    Serve(Value),
    /// This HTTP status with an empty body.
    Fail(u16),
    /// 200 with this body (not JSON, or not a JWKS).
    Garbage(Vec<u8>),
    /// Wait this long, then answer with the document.
    Slow(Duration, Value),
}

#[derive(Debug)]
struct Shared {
    behavior: Mutex<JwksBehavior>,
    fetches: AtomicU64,
    fetched: tokio::sync::watch::Sender<u64>,
}

/// The running endpoint; stops when dropped.
#[derive(Debug)]
pub struct JwksServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

async fn serve_jwks(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    let count = shared.fetches.fetch_add(1, Ordering::SeqCst) + 1;
    shared.fetched.send_replace(count);
    let behavior = shared.behavior.lock().expect("behavior lock").clone();
    match behavior {
        JwksBehavior::Serve(document) => json(&document),
        JwksBehavior::Fail(status) => {
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR).into_response()
        }
        JwksBehavior::Garbage(body) => (StatusCode::OK, body).into_response(),
        JwksBehavior::Slow(delay, document) => {
            tokio::time::sleep(delay).await;
            json(&document)
        }
    }
}

fn json(document: &Value) -> axum::response::Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], document.to_string()).into_response()
}

impl JwksServer {
    /// Serves `behavior` at `http://127.0.0.1:{port}/api/auth/jwks`.
    pub async fn start(behavior: JwksBehavior) -> Self {
        let shared = Arc::new(Shared {
            behavior: Mutex::new(behavior),
            fetches: AtomicU64::new(0),
            fetched: tokio::sync::watch::Sender::new(0),
        });
        let app = Router::new().route("/api/auth/jwks", get(serve_jwks)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind jwks server");
        let addr = listener.local_addr().expect("jwks addr");
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        Self { addr, shared, stop }
    }

    /// Serves this JWKS document.
    pub async fn serving(document: Value) -> Self {
        Self::start(JwksBehavior::Serve(document)).await
    }

    /// The base URL (what `BETTER_AUTH_URL` would be).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The JWKS URL.
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("{}/api/auth/jwks", self.base_url())).expect("jwks url")
    }

    /// Changes what the endpoint answers from now on.
    pub fn set(&self, behavior: JwksBehavior) {
        *self.shared.behavior.lock().expect("behavior lock") = behavior;
    }

    /// Waits (at most 30 s) until the endpoint has received `count` requests.
    pub async fn wait_for_fetches(&self, count: u64) {
        let mut fetched = self.shared.fetched.subscribe();
        tokio::time::timeout(Duration::from_secs(30), fetched.wait_for(|seen| *seen >= count))
            .await
            .unwrap_or_else(|_| panic!("JWKS endpoint did not see {count} fetches within 30 s"))
            .expect("fetch counter closed");
    }

    /// How many requests the endpoint has received.
    pub fn fetches(&self) -> u64 {
        self.shared.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
