//! The real Better Auth, from `e2e/better-auth` (pinned by its lockfile),
//! run with Node on 127.0.0.1: sign-up over its HTTP API, JWTs from
//! `/api/auth/token`, its real JWKS, and key rotation.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

/// A signed-up Better Auth user and their session cookie.
#[derive(Debug, Clone)]
pub struct Session {
    /// Better Auth's user id (the JWT `sub`).
    pub user_id: String,
    /// The user's email.
    pub email: String,
    cookie: String,
}

/// A running Better Auth server; killed when dropped.
#[derive(Debug)]
pub struct BetterAuth {
    /// Base URL (`http://127.0.0.1:{port}`), also the tokens' `iss` and `aud`.
    pub url: String,
    /// The signing algorithm it was started with.
    pub alg: String,
    http: reqwest::Client,
    _child: Child,
}

/// `e2e/better-auth` in this repository.
pub fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e/better-auth")
}

impl BetterAuth {
    /// Starts Better Auth signing with `alg` (EdDSA, ES256, ES512, RS256, PS256).
    pub async fn start(alg: &str) -> Self {
        let dir = project_dir();
        assert!(
            dir.join("node_modules/better-auth").is_dir(),
            "Better Auth is not installed: run `npm ci --prefix e2e/better-auth` (scripts/test does this)"
        );
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .env("BA_ALG", alg)
            .env("BA_PORT", "0")
            .env("BA_TEST_ENDPOINTS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node (is Node.js 20+ installed?)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("Better Auth did not start within 60 s")
            .expect("read Better Auth stdout")
            .expect("Better Auth exited before printing its URL");
        let ready: Value = serde_json::from_str(&line).expect("Better Auth ready line is JSON");
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            url: ready["url"].as_str().expect("url").to_owned(),
            alg: alg.to_owned(),
            http: reqwest::Client::new(),
            _child: child,
        }
    }

    /// The JWKS URL.
    pub fn jwks_url(&self) -> url::Url {
        url::Url::parse(&format!("{}/api/auth/jwks", self.url)).expect("jwks url")
    }

    /// Signs a new user up with email and password.
    pub async fn sign_up(&self, email: &str, name: &str) -> Session {
        let response = self
            .http
            .post(format!("{}/api/auth/sign-up/email", self.url))
            .header("origin", &self.url)
            .json(&json!({"email": email, "password": "correct horse battery staple", "name": name}))
            .send()
            .await
            .expect("sign-up request");
        assert!(response.status().is_success(), "sign-up failed: {}", response.status());
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next())
            .collect::<Vec<_>>()
            .join("; ");
        let body: Value = response.json().await.expect("sign-up body");
        Session { user_id: body["user"]["id"].as_str().expect("user id").to_owned(), email: email.to_owned(), cookie }
    }

    /// A fresh JWT for the session, from `/api/auth/token`.
    pub async fn token(&self, session: &Session) -> String {
        let response = self
            .http
            .get(format!("{}/api/auth/token", self.url))
            .header(reqwest::header::COOKIE, &session.cookie)
            .send()
            .await
            .expect("token request");
        assert!(response.status().is_success(), "token failed: {}", response.status());
        let body: Value = response.json().await.expect("token body");
        body["token"].as_str().expect("token").to_owned()
    }

    /// Creates a new signing key (the old one stays in the JWKS); returns its kid.
    pub async fn rotate(&self) -> String {
        let body: Value = self
            .http
            .post(format!("{}/__test/rotate", self.url))
            .send()
            .await
            .expect("rotate request")
            .json()
            .await
            .expect("rotate body");
        body["kid"].as_str().expect("kid").to_owned()
    }
}
