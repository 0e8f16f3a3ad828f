//! history-service configuration, from environment variables (or the
//! mirroring command-line flags). Nothing else in the service reads the
//! environment.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `DATABASE_URL` | (required) | PostgreSQL URL; Neon strings (`sslmode=require`, `channel_binding=...`) work |
//! | `DATABASE_MIGRATION_URL` | `DATABASE_URL` | Direct (unpooled) URL for migrations, when `DATABASE_URL` goes through a transaction pooler |
//! | `HISTORY_LISTEN` | `0.0.0.0:50052` | gRPC (and gRPC-web) address |
//! | `HISTORY_METRICS_LISTEN` | `0.0.0.0:9092` | Admin HTTP address (`/metrics`) |
//! | `AUTH_SERVICE_URL` | `http://127.0.0.1:50051` | auth-service, asked to verify every call's token |
//! | `AUTH_VERIFY_TIMEOUT` | `3s` | Deadline of one `VerifyToken` call |
//! | `IDENTITY_CACHE_TTL` | `60s` | Longest reuse of a verified token (never past its `exp`) |
//! | `IDENTITY_CACHE_CAPACITY` | `10000` | Verified tokens kept |
//! | `CORS_ALLOWED_ORIGINS` | (none) | Browser origins allowed over gRPC-web (comma list, `*` for any) |
//! | `DATABASE_MAX_CONNECTIONS` | `10` | Pool size |
//! | `DATABASE_ACQUIRE_TIMEOUT` | `5s` | Wait for a pooled connection before answering `UNAVAILABLE` |
//! | `DATABASE_STATEMENT_TIMEOUT` | `15s` | Server-side limit per statement (`0s` leaves the server's setting) |
//! | `DATABASE_STATEMENT_CACHE` | `100` | Prepared statements cached per connection |
//! | `DATABASE_PREPARED_STATEMENTS` | `true` | `false` behind a transaction pooler without prepared-statement support (PgBouncer < 1.21): no statement cache, every call in an explicit transaction |
//! | `SHUTDOWN_GRACE` | `10s` | How long in-flight calls may take to finish after SIGTERM |
//! | `LOG_FORMAT` | `text` | `text` or `json` |
//! | `RUST_LOG` | `info,sqlx::postgres::notice=warn` | Log filter |

use std::{net::SocketAddr, str::FromStr, time::Duration};

use clap::{Parser, Subcommand};
use service_kit::{AuthLayerConfig, telemetry::LogFormat};
use sqlx::postgres::PgConnectOptions;

/// Default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:50052";
/// Default admin listen address.
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:9092";
/// Default auth-service address.
pub const DEFAULT_AUTH_SERVICE_URL: &str = "http://127.0.0.1:50051";
/// Default pool size.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// Default pool acquire timeout.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default statement timeout.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// Default prepared statements cached per connection.
pub const DEFAULT_STATEMENT_CACHE: usize = 100;
/// Default drain time after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Largest gRPC request accepted, in bytes (100 messages of a few KiB fit
/// easily; single messages up to the content and sources limits fit).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

/// Raw configuration as given; [`Config::resolve`] validates it.
#[derive(Debug, Clone, Parser)]
#[command(name = "history-service", version, about = "Conversation history over gRPC, backed by PostgreSQL")]
pub struct Config {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Direct (unpooled) URL for migrations [default: DATABASE_URL].
    #[arg(
        long,
        env = "DATABASE_MIGRATION_URL",
        value_name = "DATABASE_MIGRATION_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_migration_url: Option<String>,
    /// gRPC listen address.
    #[arg(long, env = "HISTORY_LISTEN", value_name = "HISTORY_LISTEN", default_value = DEFAULT_LISTEN, global = true)]
    pub listen: SocketAddr,
    /// Admin HTTP listen address (Prometheus `/metrics`).
    #[arg(long, env = "HISTORY_METRICS_LISTEN", value_name = "HISTORY_METRICS_LISTEN", default_value = DEFAULT_METRICS_LISTEN)]
    pub metrics_listen: SocketAddr,
    /// auth-service URL.
    #[arg(long, env = "AUTH_SERVICE_URL", value_name = "AUTH_SERVICE_URL", default_value = DEFAULT_AUTH_SERVICE_URL)]
    pub auth_service_url: String,
    /// Deadline of one VerifyToken call.
    #[arg(long, env = "AUTH_VERIFY_TIMEOUT", value_name = "AUTH_VERIFY_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub auth_verify_timeout: Duration,
    /// Longest reuse of a verified token.
    #[arg(long, env = "IDENTITY_CACHE_TTL", value_name = "IDENTITY_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub identity_cache_ttl: Duration,
    /// Verified tokens kept.
    #[arg(long, env = "IDENTITY_CACHE_CAPACITY", value_name = "IDENTITY_CACHE_CAPACITY", default_value_t = 10_000)]
    pub identity_cache_capacity: u64,
    /// Browser origins allowed over gRPC-web, comma-separated (`*` for any).
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_name = "CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: String,
    /// Pool size.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", value_name = "DATABASE_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, global = true)]
    pub database_max_connections: u32,
    /// Wait for a pooled connection.
    #[arg(long, env = "DATABASE_ACQUIRE_TIMEOUT", value_name = "DATABASE_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub database_acquire_timeout: Duration,
    /// Server-side limit per statement (0s: leave the server's setting).
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT", value_name = "DATABASE_STATEMENT_TIMEOUT", default_value = "15s", value_parser = humantime::parse_duration, global = true)]
    pub database_statement_timeout: Duration,
    /// Prepared statements cached per connection.
    #[arg(long, env = "DATABASE_STATEMENT_CACHE", value_name = "DATABASE_STATEMENT_CACHE", default_value_t = DEFAULT_STATEMENT_CACHE, global = true)]
    pub database_statement_cache: usize,
    /// Whether the connection keeps prepared statements (false behind PgBouncer < 1.21 in transaction mode).
    #[arg(long, env = "DATABASE_PREPARED_STATEMENTS", value_name = "DATABASE_PREPARED_STATEMENTS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub database_prepared_statements: bool,
    /// Drain time for in-flight calls after SIGTERM/SIGINT.
    #[arg(long, env = "SHUTDOWN_GRACE", value_name = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
    /// Log format: text or json.
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// Log filter (EnvFilter syntax).
    #[arg(
        long,
        env = "RUST_LOG",
        value_name = "RUST_LOG",
        default_value = "info,sqlx::postgres::notice=warn",
        global = true
    )]
    pub log_filter: String,
}

/// Subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Ask the running service (at HISTORY_LISTEN) whether it serves; exit 0 if so.
    Healthcheck,
}

pub use service_kit::config::ConfigError;

/// Database pool settings.
#[derive(Clone)]
pub struct DatabaseSettings {
    /// Connection options parsed from `DATABASE_URL`.
    pub connect: PgConnectOptions,
    /// Connection options for migrations (`DATABASE_MIGRATION_URL`, else `connect`).
    pub migrate: PgConnectOptions,
    /// Pool size.
    pub max_connections: u32,
    /// Wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// Per-statement limit, if any.
    pub statement_timeout: Option<Duration>,
}

impl std::fmt::Debug for DatabaseSettings {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("database", &self.connect.get_database())
            .field("username", &self.connect.get_username())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// How the gRPC server behaves.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Browser origins allowed over gRPC-web.
    pub cors_allowed_origins: Vec<String>,
    /// Drain time after a shutdown request.
    pub shutdown_grace: Duration,
    /// Whether the database connection keeps prepared statements between
    /// calls (false behind PgBouncer < 1.21 in transaction mode).
    pub prepared_statements: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { cors_allowed_origins: Vec::new(), shutdown_grace: DEFAULT_SHUTDOWN_GRACE, prepared_statements: true }
    }
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What to do.
    pub command: Command,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Admin listen address.
    pub metrics_listen: SocketAddr,
    /// auth-service URL.
    pub auth_service_url: String,
    /// Identity layer settings.
    pub identity: AuthLayerConfig,
    /// Database pool.
    pub database: DatabaseSettings,
    /// Serving options.
    pub serve: ServeOptions,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_filter: String,
}

/// Parses a PostgreSQL URL as Neon, RDS or a local server gives it.
pub fn parse_database_url(url: &str) -> Result<PgConnectOptions, ConfigError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(ConfigError::Invalid {
            variable: "DATABASE_URL",
            reason: "must start with postgres:// or postgresql://".into(),
        });
    }
    PgConnectOptions::from_str(url).map_err(|error| ConfigError::Invalid {
        variable: "DATABASE_URL",
        // sqlx's message names the problem without repeating the password.
        reason: format!("{error}; expected postgres://user:password@host:5432/database?sslmode=require"),
    })
}

impl Config {
    /// Reads flags and environment (exits with a usage message on a bad value).
    pub fn from_env() -> Self {
        Self::parse()
    }

    /// Validates.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let url = self.database_url.as_deref().map(str::trim).filter(|url| !url.is_empty()).ok_or(
            ConfigError::Missing {
                variable: "DATABASE_URL",
                hint: "set it to a PostgreSQL URL, e.g. postgres://postgres@127.0.0.1:5432/postgres (scripts/stack starts a private PostgreSQL for you)",
            },
        )?;
        let statement_cache = if self.database_prepared_statements { self.database_statement_cache } else { 0 };
        let connect =
            parse_database_url(url)?.statement_cache_capacity(statement_cache).application_name("history-service");
        let migrate = match self.database_migration_url.as_deref().map(str::trim).filter(|url| !url.is_empty()) {
            Some(url) => parse_database_url(url)
                .map_err(|error| match error {
                    ConfigError::Invalid { reason, .. } => {
                        ConfigError::Invalid { variable: "DATABASE_MIGRATION_URL", reason }
                    }
                    other => other,
                })?
                .application_name("history-service-migrate"),
            None => connect.clone(),
        };
        if self.database_max_connections == 0 {
            return Err(ConfigError::Invalid {
                variable: "DATABASE_MAX_CONNECTIONS",
                reason: "must be at least 1".into(),
            });
        }
        if self.database_acquire_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                variable: "DATABASE_ACQUIRE_TIMEOUT",
                reason: "must be greater than zero".into(),
            });
        }
        let auth_url = self.auth_service_url.trim().to_owned();
        if !(auth_url.starts_with("http://") || auth_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                variable: "AUTH_SERVICE_URL",
                reason: format!("{auth_url:?} must start with http:// or https://"),
            });
        }
        if self.auth_verify_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                variable: "AUTH_VERIFY_TIMEOUT",
                reason: "must be greater than zero".into(),
            });
        }
        let cors_allowed_origins = service_kit::web::parse_origins(&self.cors_allowed_origins)
            .map_err(|error| ConfigError::Invalid { variable: "CORS_ALLOWED_ORIGINS", reason: error.to_string() })?;
        Ok(Settings {
            command: self.command.unwrap_or(Command::Serve),
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            auth_service_url: auth_url,
            identity: AuthLayerConfig {
                verify_timeout: self.auth_verify_timeout,
                cache_ttl: self.identity_cache_ttl,
                cache_capacity: self.identity_cache_capacity,
                ..AuthLayerConfig::default()
            },
            database: DatabaseSettings {
                connect,
                migrate,
                max_connections: self.database_max_connections,
                acquire_timeout: self.database_acquire_timeout,
                statement_timeout: (!self.database_statement_timeout.is_zero())
                    .then_some(self.database_statement_timeout),
            },
            serve: ServeOptions {
                cors_allowed_origins,
                shutdown_grace: self.shutdown_grace,
                prepared_statements: self.database_prepared_statements,
            },
            log_format: self.log_format,
            log_filter: self.log_filter,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str]) -> Result<Settings, ConfigError> {
        let mut argv = vec!["history-service"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).unwrap().resolve()
    }

    #[test]
    fn neon_connection_strings_are_accepted() {
        let settings = resolve(&[
            "--database-url",
            "postgresql://neondb_owner:secret@ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech/neondb?sslmode=require&channel_binding=require",
        ])
        .unwrap();
        assert_eq!(settings.database.connect.get_host(), "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech");
        assert_eq!(settings.database.connect.get_database(), Some("neondb"));
        assert_eq!(settings.command, Command::Serve);
        assert_eq!(settings.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(settings.auth_service_url, DEFAULT_AUTH_SERVICE_URL);
        assert_eq!(settings.database.statement_timeout, Some(DEFAULT_STATEMENT_TIMEOUT));
    }

    #[test]
    fn migrations_can_use_a_direct_url_beside_a_pooled_one() {
        let settings = resolve(&[
            "--database-url",
            "postgres://u:p@ep-x-pooler.us-east-2.aws.neon.tech/db?sslmode=require",
            "--database-migration-url",
            "postgres://u:p@ep-x.us-east-2.aws.neon.tech/db?sslmode=require",
        ])
        .unwrap();
        assert_eq!(settings.database.connect.get_host(), "ep-x-pooler.us-east-2.aws.neon.tech");
        assert_eq!(settings.database.migrate.get_host(), "ep-x.us-east-2.aws.neon.tech");
        let same = resolve(&["--database-url", "postgres://u@h/db"]).unwrap();
        assert_eq!(same.database.migrate.get_host(), "h");
        let error =
            resolve(&["--database-url", "postgres://u@h/db", "--database-migration-url", "http://x"]).unwrap_err();
        assert!(error.to_string().starts_with("DATABASE_MIGRATION_URL is invalid"), "{error}");
    }

    #[test]
    fn missing_database_url_names_the_variable() {
        let error = resolve(&["--database-url", ""]).unwrap_err();
        assert!(error.to_string().starts_with("DATABASE_URL is not set"), "{error}");
    }

    #[test]
    fn a_bad_database_url_does_not_echo_the_password() {
        let error = resolve(&["--database-url", "mysql://u:hunter2@h/db"]).unwrap_err();
        assert!(error.to_string().starts_with("DATABASE_URL is invalid"), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let error = resolve(&["--database-url", "postgres://u:hunter2@h:notaport/db"]).unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let settings = resolve(&["--database-url", "postgres://u:hunter2@h/db"]).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn migrate_is_a_subcommand() {
        let settings = resolve(&["migrate", "--database-url", "postgres://localhost/db"]).unwrap();
        assert_eq!(settings.command, Command::Migrate);
    }

    #[test]
    fn zero_statement_timeout_leaves_the_server_setting() {
        let settings =
            resolve(&["--database-url", "postgres://localhost/db", "--database-statement-timeout", "0s"]).unwrap();
        assert_eq!(settings.database.statement_timeout, None);
    }
}
