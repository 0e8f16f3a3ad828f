//! DEVELOPMENT ONLY. A stand-in for Better Auth on a developer machine, so
//! the stack runs without a Node app: it generates an Ed25519 key at start,
//! serves it as Better Auth does (`GET /api/auth/jwks`), and mints tokens with
//! Better Auth's header and claims (`GET /api/auth/token?user=...`).
//!
//! Anyone who can reach it can mint tokens, so it binds to 127.0.0.1 by
//! default and is a separate binary: auth-service and history-service never
//! trust it unless `BETTER_AUTH_URL` is pointed at it.
//!
//! On start it prints one JSON line to stdout: `{"url", "token", "user_id"}`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Query, State},
    http::header,
    response::IntoResponse,
    routing::get,
};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;
use test_support::keys::{TestKey, now};

/// Command line (and environment).
#[derive(Debug, Parser)]
#[command(name = "dev-issuer", about = "DEVELOPMENT ONLY: serves a Better Auth-shaped JWKS and mints tokens")]
struct Args {
    /// Listen address (keep it on loopback: anyone who reaches it can mint tokens).
    #[arg(long, env = "DEV_ISSUER_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// User id of the token printed at start.
    #[arg(long, env = "DEV_ISSUER_USER", default_value = "dev-user")]
    user: String,
    /// Lifetime of minted tokens (Better Auth's default is 15m; longer is handier locally).
    #[arg(long, env = "DEV_ISSUER_TOKEN_TTL", default_value = "12h", value_parser = humantime::parse_duration)]
    token_ttl: Duration,
}

struct Issuer {
    key: TestKey,
    url: String,
    ttl: Duration,
}

impl Issuer {
    /// A token shaped like Better Auth's `/api/auth/token` answer.
    fn token(&self, user_id: &str, email: Option<&str>, name: Option<&str>) -> String {
        let iat = now();
        let stamp = "2026-01-01T00:00:00.000Z";
        self.key.sign(&json!({
            "iat": iat,
            "id": user_id,
            "email": email.map_or_else(|| format!("{user_id}@example.com"), str::to_owned),
            "name": name.unwrap_or(user_id),
            "emailVerified": true,
            "image": null,
            "createdAt": stamp,
            "updatedAt": stamp,
            "sub": user_id,
            "exp": iat + self.ttl.as_secs() as i64,
            "iss": self.url,
            "aud": self.url,
        }))
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    user: Option<String>,
    email: Option<String>,
    name: Option<String>,
}

async fn jwks(State(issuer): State<Arc<Issuer>>) -> impl IntoResponse {
    let document = json!({ "keys": [issuer.key.jwk()] });
    ([(header::CONTENT_TYPE, "application/json")], document.to_string())
}

async fn token(State(issuer): State<Arc<Issuer>>, Query(query): Query<TokenQuery>) -> impl IntoResponse {
    let user = query.user.unwrap_or_else(|| "dev-user".to_owned());
    let token = issuer.token(&user, query.email.as_deref(), query.name.as_deref());
    ([(header::CONTENT_TYPE, "application/json")], json!({ "token": token }).to_string())
}

/// 32 alphanumerics, like Better Auth's key ids.
fn key_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).expect("random");
    bytes.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let issuer = Arc::new(Issuer { key: TestKey::generate("EdDSA", &key_id()), url: url.clone(), ttl: args.token_ttl });
    let first = issuer.token(&args.user, None, None);
    eprintln!(
        "dev-issuer: DEVELOPMENT ONLY — a stand-in for Better Auth at {url}; anyone who reaches it can mint tokens"
    );
    #[allow(clippy::print_stdout)]
    {
        println!("{}", json!({ "url": url, "token": first, "user_id": args.user }));
    }
    let app = Router::new().route("/api/auth/jwks", get(jwks)).route("/api/auth/token", get(token)).with_state(issuer);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            service_kit::shutdown::signal().await;
        })
        .await?;
    Ok(())
}
