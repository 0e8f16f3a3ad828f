//! auth-service configuration, from environment variables (or the mirroring
//! command-line flags). Nothing else in the service reads the environment.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `BETTER_AUTH_URL` | (required unless the three below are set) | Better Auth base URL, e.g. `https://app.example.com` |
//! | `AUTH_JWKS_URL` | `{BETTER_AUTH_URL}/api/auth/jwks` | Where the JWKS is fetched |
//! | `AUTH_ISSUER` | origin of `BETTER_AUTH_URL` | Accepted `iss` (comma list) |
//! | `AUTH_AUDIENCE` | origin of `BETTER_AUTH_URL` | Accepted `aud` (comma list) |
//! | `AUTH_LISTEN` | `0.0.0.0:50051` | gRPC (and gRPC-web) address |
//! | `AUTH_METRICS_LISTEN` | `0.0.0.0:9091` | Admin HTTP address (`/metrics`) |
//! | `AUTH_CLOCK_LEEWAY` | `60s` | Clock skew tolerated on `exp`/`nbf`/`iat` |
//! | `AUTH_JWKS_TTL` | `10m` | Refresh period of the JWKS |
//! | `AUTH_JWKS_REFETCH_COOLDOWN` | `30s` | Minimum time between refetches on unknown `kid` or failure |
//! | `AUTH_JWKS_MAX_STALENESS` | `24h` | How long the last good JWKS is used while Better Auth is unreachable |
//! | `AUTH_JWKS_FETCH_TIMEOUT` | `5s` | Deadline of one JWKS request |
//! | `AUTH_JWKS_MAX_BYTES` | `1048576` | Largest JWKS response accepted |
//! | `CORS_ALLOWED_ORIGINS` | (none) | Browser origins allowed to call over gRPC-web (comma list, `*` for any) |
//! | `SHUTDOWN_GRACE` | `10s` | How long in-flight calls may take to finish after SIGTERM |
//! | `LOG_FORMAT` | `text` | `text` or `json` |
//! | `RUST_LOG` | `info` | Log filter |
//!
//! Durations take units: `500ms`, `30s`, `10m`, `24h`.

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};
use service_kit::telemetry::LogFormat;
use url::Url;

use crate::{
    claims::ClaimsPolicy,
    jwks::{
        DEFAULT_FETCH_TIMEOUT, DEFAULT_JWKS_TTL, DEFAULT_MAX_JWKS_BYTES, DEFAULT_MAX_STALENESS,
        DEFAULT_REFETCH_COOLDOWN, JwksSettings,
    },
};

/// Default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50051";
/// Default admin (metrics) listen address.
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9091";
/// Default clock leeway.
pub const DEFAULT_CLOCK_LEEWAY: Duration = Duration::from_secs(60);
/// Default drain time after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Better Auth's JWKS path under its base URL.
pub const JWKS_PATH: &str = "/api/auth/jwks";

/// Raw configuration as given; [`Config::resolve`] validates it.
#[derive(Debug, Clone, Parser)]
#[command(name = "auth-service", version, about = "Verifies Better Auth JWTs over gRPC")]
pub struct Config {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Better Auth base URL (its origin is the default issuer and audience).
    #[arg(long, env = "BETTER_AUTH_URL", value_name = "BETTER_AUTH_URL")]
    pub better_auth_url: Option<String>,
    /// JWKS URL [default: {BETTER_AUTH_URL}/api/auth/jwks].
    #[arg(long, env = "AUTH_JWKS_URL", value_name = "AUTH_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Accepted issuers, comma-separated [default: origin of BETTER_AUTH_URL].
    #[arg(long, env = "AUTH_ISSUER", value_name = "AUTH_ISSUER", value_delimiter = ',')]
    pub issuer: Vec<String>,
    /// Accepted audiences, comma-separated [default: origin of BETTER_AUTH_URL].
    #[arg(long, env = "AUTH_AUDIENCE", value_name = "AUTH_AUDIENCE", value_delimiter = ',')]
    pub audience: Vec<String>,
    /// gRPC listen address.
    #[arg(long, env = "AUTH_LISTEN", value_name = "AUTH_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Admin HTTP listen address (Prometheus `/metrics`).
    #[arg(long, env = "AUTH_METRICS_LISTEN", value_name = "AUTH_METRICS_LISTEN", default_value = DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,
    /// Clock skew tolerated on exp/nbf/iat.
    #[arg(long, env = "AUTH_CLOCK_LEEWAY", value_name = "AUTH_CLOCK_LEEWAY", default_value = "60s", value_parser = humantime::parse_duration)]
    pub clock_leeway: Duration,
    /// Refresh period of the JWKS.
    #[arg(long, env = "AUTH_JWKS_TTL", value_name = "AUTH_JWKS_TTL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub jwks_ttl: Duration,
    /// Minimum time between refetches caused by unknown kids or failures.
    #[arg(long, env = "AUTH_JWKS_REFETCH_COOLDOWN", value_name = "AUTH_JWKS_REFETCH_COOLDOWN", default_value = "30s", value_parser = humantime::parse_duration)]
    pub jwks_refetch_cooldown: Duration,
    /// How long the last good JWKS is used while fetches fail.
    #[arg(long, env = "AUTH_JWKS_MAX_STALENESS", value_name = "AUTH_JWKS_MAX_STALENESS", default_value = "24h", value_parser = humantime::parse_duration)]
    pub jwks_max_staleness: Duration,
    /// Deadline of one JWKS request.
    #[arg(long, env = "AUTH_JWKS_FETCH_TIMEOUT", value_name = "AUTH_JWKS_FETCH_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub jwks_fetch_timeout: Duration,
    /// Largest JWKS response accepted, in bytes.
    #[arg(long, env = "AUTH_JWKS_MAX_BYTES", value_name = "AUTH_JWKS_MAX_BYTES", default_value_t = DEFAULT_MAX_JWKS_BYTES)]
    pub jwks_max_bytes: usize,
    /// Browser origins allowed over gRPC-web, comma-separated (`*` for any).
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_name = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: String,
    /// Drain time for in-flight calls after SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_GRACE", value_name = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (EnvFilter syntax).
    #[arg(long, env = "RUST_LOG", value_name = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
}

/// Subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Ask the running service (at AUTH_LISTEN) whether it serves; exit 0 if so.
    Healthcheck,
}

pub use service_kit::config::ConfigError;

/// Validated settings the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Admin listen address.
    pub metrics_listen: SocketAddr,
    /// JWKS fetching and caching.
    pub jwks: JwksSettings,
    /// Claim checks.
    pub claims: ClaimsPolicy,
    /// Serving options.
    pub serve: ServeOptions,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_filter: String,
}

/// How the gRPC server behaves, independent of verification.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Browser origins allowed over gRPC-web.
    pub cors_allowed_origins: Vec<String>,
    /// Drain time after a shutdown request.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { cors_allowed_origins: Vec::new(), shutdown_grace: DEFAULT_SHUTDOWN_GRACE }
    }
}

fn parse_url(variable: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|error| ConfigError::invalid(variable, format!("{value:?}: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::invalid(
            variable,
            format!("{value:?} must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(url)
}

fn positive(variable: &'static str, value: Duration) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        return Err(ConfigError::invalid(variable, "must be greater than zero"));
    }
    Ok(value)
}

impl Config {
    /// Reads flags and environment (exits with a usage message on a bad value).
    pub fn from_env() -> Self {
        Self::parse()
    }

    /// Validates and fills in defaults derived from `BETTER_AUTH_URL`.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let base = self
            .better_auth_url
            .as_deref()
            .filter(|value| !value.trim().is_empty())
            .map(|value| parse_url("BETTER_AUTH_URL", value.trim()))
            .transpose()?;
        let origin = base.as_ref().map(|url| url.origin().ascii_serialization());
        let missing = |variable| ConfigError::Missing {
            variable,
            hint: "set BETTER_AUTH_URL to Better Auth's base URL (e.g. http://localhost:3000), or set all of AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE",
        };

        let jwks_url = match (self.jwks_url.as_deref().filter(|v| !v.trim().is_empty()), &base) {
            (Some(url), _) => parse_url("AUTH_JWKS_URL", url.trim())?,
            (None, Some(base)) => {
                let mut url = base.clone();
                let path = format!("{}{JWKS_PATH}", base.path().trim_end_matches('/'));
                url.set_path(&path);
                url
            }
            (None, None) => return Err(missing("BETTER_AUTH_URL")),
        };
        let list = |values: Vec<String>| -> Vec<String> {
            values.into_iter().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect()
        };
        let issuers = match (list(self.issuer), &origin) {
            (given, _) if !given.is_empty() => given,
            (_, Some(origin)) => vec![origin.clone()],
            _ => return Err(missing("AUTH_ISSUER")),
        };
        let audiences = match (list(self.audience), &origin) {
            (given, _) if !given.is_empty() => given,
            (_, Some(origin)) => vec![origin.clone()],
            _ => return Err(missing("AUTH_AUDIENCE")),
        };
        if self.jwks_max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "AUTH_JWKS_MAX_BYTES",
                format!("{} bytes; it must be at least 1024", self.jwks_max_bytes),
            ));
        }
        let cors_allowed_origins = service_kit::web::parse_origins(&self.cors_allowed_origins)
            .map_err(|error| ConfigError::invalid("CORS_ALLOWED_ORIGINS", error.to_string()))?;
        Ok(Settings {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            jwks: JwksSettings {
                url: jwks_url,
                ttl: positive("AUTH_JWKS_TTL", self.jwks_ttl)?,
                refetch_cooldown: self.jwks_refetch_cooldown,
                max_staleness: positive("AUTH_JWKS_MAX_STALENESS", self.jwks_max_staleness)?,
                fetch_timeout: positive("AUTH_JWKS_FETCH_TIMEOUT", self.jwks_fetch_timeout)?,
                max_bytes: self.jwks_max_bytes,
            },
            claims: ClaimsPolicy { issuers, audiences, leeway: self.clock_leeway },
            serve: ServeOptions { cors_allowed_origins, shutdown_grace: self.shutdown_grace },
            log_format: self.log_format,
            log_filter: self.log_filter,
        })
    }
}

// Keep the documented defaults and the constants in one place.
const _: () = {
    assert!(DEFAULT_JWKS_TTL.as_secs() == 600);
    assert!(DEFAULT_REFETCH_COOLDOWN.as_secs() == 30);
    assert!(DEFAULT_MAX_STALENESS.as_secs() == 86_400);
    assert!(DEFAULT_FETCH_TIMEOUT.as_secs() == 5);
    assert!(DEFAULT_CLOCK_LEEWAY.as_secs() == 60);
    assert!(DEFAULT_SHUTDOWN_GRACE.as_secs() == 10);
};

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut argv = vec!["auth-service"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).unwrap().resolve()
    }

    #[test]
    fn better_auth_url_alone_gives_jwks_url_issuer_and_audience() {
        let settings = config(&["--better-auth-url", "https://app.example.com/"]).unwrap();
        assert_eq!(settings.jwks.url.as_str(), "https://app.example.com/api/auth/jwks");
        assert_eq!(settings.claims.issuers, vec!["https://app.example.com"]);
        assert_eq!(settings.claims.audiences, vec!["https://app.example.com"]);
        assert_eq!(settings.jwks.ttl, DEFAULT_JWKS_TTL);
        assert_eq!(settings.jwks.refetch_cooldown, DEFAULT_REFETCH_COOLDOWN);
        assert_eq!(settings.jwks.max_staleness, DEFAULT_MAX_STALENESS);
        assert_eq!(settings.claims.leeway, DEFAULT_CLOCK_LEEWAY);
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
    }

    #[test]
    fn explicit_values_override_the_derived_ones() {
        let settings = config(&[
            "--better-auth-url",
            "http://localhost:3000",
            "--jwks-url",
            "http://auth.internal/jwks",
            "--issuer",
            "a,b",
            "--audience",
            "c",
            "--jwks-ttl",
            "90s",
        ])
        .unwrap();
        assert_eq!(settings.jwks.url.as_str(), "http://auth.internal/jwks");
        assert_eq!(settings.claims.issuers, vec!["a", "b"]);
        assert_eq!(settings.claims.audiences, vec!["c"]);
        assert_eq!(settings.jwks.ttl, Duration::from_secs(90));
    }

    #[test]
    fn missing_better_auth_url_names_the_variable() {
        let error = config(&[]).unwrap_err();
        assert!(error.to_string().starts_with("BETTER_AUTH_URL is not set"), "{error}");
    }

    #[test]
    fn invalid_url_names_the_variable() {
        let error = config(&["--better-auth-url", "localhost:3000"]).unwrap_err();
        assert!(error.to_string().starts_with("BETTER_AUTH_URL is invalid: \"localhost:3000\""), "{error}");
    }

    #[test]
    fn bad_duration_names_the_variable() {
        let error = Config::try_parse_from(["auth-service", "--jwks-ttl", "soon"]).unwrap_err();
        assert!(error.to_string().contains("AUTH_JWKS_TTL"), "{error}");
    }

    #[test]
    fn zero_ttl_is_rejected() {
        let error = config(&["--better-auth-url", "http://x", "--jwks-ttl", "0s"]).unwrap_err();
        assert!(error.to_string().starts_with("AUTH_JWKS_TTL"), "{error}");
    }
}
