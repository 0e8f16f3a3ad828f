//! Better Auth's JWKS: fetched, cached, refreshed on rotation, kept through outages.
//!
//! - The set is fetched at start (the refresher retries with backoff until it
//!   succeeds; health is NOT_SERVING until then) and again every `ttl`.
//! - A token with an unknown `kid` triggers a refetch, at most once per
//!   `refetch_cooldown`, so a flood of made-up `kid`s costs one request to
//!   Better Auth per cooldown. Concurrent misses share that one fetch
//!   (single-flight): they queue on one lock and find the new set when they
//!   get it.
//! - When a fetch fails, the last good set stays in use until it is
//!   `max_staleness` old; after that verification answers `UNAVAILABLE`
//!   (`JWKS_UNAVAILABLE`), never a false `UNAUTHENTICATED`.
//! - Responses are bounded (`fetch_timeout`, `max_bytes`); a key the service
//!   cannot use is skipped and logged, and a set with no usable key at all is
//!   treated as a failed fetch (the old keys stay).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use backon::{BackoffBuilder as _, ExponentialBuilder};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use serde::Deserialize;
use tokio::sync::{Mutex, watch};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::{
    clock::Clock,
    error::{Reason, VerifyError},
    keys::{Jwk, VerifyingKey},
};

/// Default time a fetched JWKS is used before it is fetched again.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(10 * 60);
/// Default minimum time between two fetches caused by unknown `kid`s or failures.
pub const DEFAULT_REFETCH_COOLDOWN: Duration = Duration::from_secs(30);
/// Default longest time the last good JWKS is used while fetches fail.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(24 * 60 * 60);
/// Default deadline of one JWKS request, body included.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest JWKS response accepted (1 MiB: thousands of keys).
pub const DEFAULT_MAX_JWKS_BYTES: usize = 1024 * 1024;
/// First retry delay of the background refresher after a failed fetch.
const RETRY_MIN_DELAY: Duration = Duration::from_millis(250);
/// Longest retry delay of the background refresher.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(30);

/// How the JWKS is fetched and cached.
#[derive(Debug, Clone)]
pub struct JwksSettings {
    /// Where the JWKS is served (`{BETTER_AUTH_URL}/api/auth/jwks`).
    pub url: Url,
    /// How long a fetched set is used before it is refreshed.
    pub ttl: Duration,
    /// Minimum time between fetches triggered by unknown `kid`s or after failures.
    pub refetch_cooldown: Duration,
    /// How long the last good set is used while fetches fail.
    pub max_staleness: Duration,
    /// Deadline of one fetch, body included.
    pub fetch_timeout: Duration,
    /// Largest response body accepted.
    pub max_bytes: usize,
}

impl JwksSettings {
    /// Settings with the defaults for `url`.
    pub fn new(url: Url) -> Self {
        Self {
            url,
            ttl: DEFAULT_JWKS_TTL,
            refetch_cooldown: DEFAULT_REFETCH_COOLDOWN,
            max_staleness: DEFAULT_MAX_STALENESS,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_bytes: DEFAULT_MAX_JWKS_BYTES,
        }
    }
}

/// Why a fetch produced no key set.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connection, TLS or timeout failure.
    #[error("request failed: {0}")]
    Request(String),
    /// A non-2xx answer.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// The body exceeded the size cap.
    #[error("response is larger than the {0}-byte limit")]
    TooLarge(usize),
    /// Not a JWKS document.
    #[error("response is not a JWKS (a JSON object with a keys array): {0}")]
    Parse(String),
    /// A JWKS, but without a single key this service can verify with.
    #[error("no usable signing key in the JWKS ({0})")]
    NoUsableKeys(String),
}

/// Counters of the JWKS cache (exported as metrics, read by tests).
#[derive(Debug, Default)]
pub struct JwksStats {
    /// HTTP fetches started.
    pub fetches: Counter,
    /// Fetches that failed.
    pub fetch_failures: Counter,
    /// Keys in the current set.
    pub keys: Gauge,
}

/// One fetched key set.
#[derive(Debug)]
struct KeySet {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Instant,
    generation: u64,
}

#[derive(Debug, Default)]
struct Gate {
    /// Last fetch made on demand (unknown `kid`, expired set); the cooldown
    /// is measured from it. Scheduled fetches pace themselves.
    last_on_demand: Option<Instant>,
    last_error: Option<String>,
}

enum RefreshError {
    CoolingDown { last_error: Option<String> },
    Fetch(FetchError),
}

impl RefreshError {
    fn describe(&self) -> String {
        match self {
            Self::CoolingDown { last_error: Some(error) } => format!("the last fetch failed ({error})"),
            Self::CoolingDown { last_error: None } => "a fetch was made moments ago".to_owned(),
            Self::Fetch(error) => error.to_string(),
        }
    }
}

struct Inner {
    settings: JwksSettings,
    client: reqwest::Client,
    clock: Clock,
    current: RwLock<Option<Arc<KeySet>>>,
    gate: Mutex<Gate>,
    stats: JwksStats,
    ready: watch::Sender<bool>,
}

/// The cached, self-refreshing JWKS. Cheap to clone.
#[derive(Clone)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache").field("settings", &self.inner.settings).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

impl JwksCache {
    /// A cache for `settings` on the system clock. Nothing is fetched until
    /// [`JwksCache::run_refresher`] runs or a key is asked for.
    pub fn new(settings: JwksSettings) -> Result<Self, reqwest::Error> {
        Self::with_clock(settings, Clock::system())
    }

    /// A cache on `clock` (tests move a manual clock past TTLs and cooldowns).
    pub fn with_clock(settings: JwksSettings, clock: Clock) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("auth-service/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.fetch_timeout)
            .timeout(settings.fetch_timeout)
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                client,
                clock,
                current: RwLock::new(None),
                gate: Mutex::new(Gate::default()),
                stats: JwksStats::default(),
                ready: watch::Sender::new(false),
            }),
        })
    }

    /// The cache's settings.
    pub fn settings(&self) -> &JwksSettings {
        &self.inner.settings
    }

    /// The cache's counters.
    pub fn stats(&self) -> &JwksStats {
        &self.inner.stats
    }

    /// Registers the cache's counters in `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        let stats = &self.inner.stats;
        registry.register("jwks_fetches", "JWKS fetches started", stats.fetches.clone());
        registry.register(
            "jwks_fetch_failures",
            "JWKS fetches that failed (the last good keys stay in use)",
            stats.fetch_failures.clone(),
        );
        registry.register("jwks_keys", "Usable keys in the cached JWKS", stats.keys.clone());
    }

    /// Whether usable keys are held (false before the first successful fetch
    /// and once the last good set is older than `max_staleness`).
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.inner.ready.subscribe()
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.inner.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn age(&self, set: &KeySet) -> Duration {
        self.inner.clock.now().saturating_duration_since(set.fetched_at)
    }

    fn update_ready(&self) {
        let usable = self.snapshot().is_some_and(|set| self.age(&set) < self.inner.settings.max_staleness);
        self.inner.ready.send_if_modified(|ready| std::mem::replace(ready, usable) != usable);
    }

    /// The key with id `kid`, refetching the JWKS when it is unknown (at most
    /// once per cooldown) or when the cached set has outlived its TTL.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, VerifyError> {
        let settings = &self.inner.settings;
        let snapshot = self.snapshot();
        let set = match snapshot {
            Some(set) if self.age(&set) < settings.ttl => set,
            stale => {
                let observed = stale.as_ref().map_or(0, |set| set.generation);
                match self.refresh(observed, false).await {
                    Ok(fresh) => fresh,
                    Err(error) => match stale {
                        Some(set) if self.age(&set) < settings.max_staleness => {
                            tracing::debug!(
                                age_secs = self.age(&set).as_secs(),
                                "using a stale JWKS: {}",
                                error.describe()
                            );
                            set
                        }
                        Some(set) => {
                            self.update_ready();
                            return Err(VerifyError::new(
                                Reason::JwksUnavailable,
                                format!(
                                    "the signing keys are {} old, beyond the {} staleness limit, and cannot be refreshed from {}: {}",
                                    humantime::format_duration(round_secs(self.age(&set))),
                                    humantime::format_duration(settings.max_staleness),
                                    settings.url,
                                    error.describe()
                                ),
                            ));
                        }
                        None => {
                            return Err(VerifyError::new(
                                Reason::JwksUnavailable,
                                format!(
                                    "no signing keys yet: the JWKS at {} cannot be fetched: {}; retry shortly",
                                    settings.url,
                                    error.describe()
                                ),
                            ));
                        }
                    },
                }
            }
        };
        if let Some(key) = set.keys.get(kid) {
            return Ok(key.clone());
        }
        // Unknown kid: Better Auth may have rotated its key since our fetch.
        let unknown = || {
            VerifyError::new(
                Reason::KeyUnknown,
                format!(
                    "no key with kid {:?} in the JWKS at {} (it holds {} keys); the token was signed by another Better Auth instance or with a deleted key",
                    truncate(kid, 64),
                    settings.url,
                    set.keys.len()
                ),
            )
        };
        match self.refresh(set.generation, false).await {
            Ok(fresh) => fresh.keys.get(kid).cloned().ok_or_else(unknown),
            Err(_) => Err(unknown()),
        }
    }

    /// Fetches a new set unless one was fetched since `observed` (then that
    /// one is returned) or, when not `forced` (an on-demand fetch), unless the
    /// last on-demand fetch was less than a cooldown ago. Holders of the lock
    /// serialize, so concurrent callers cause one fetch.
    async fn refresh(&self, observed: u64, forced: bool) -> Result<Arc<KeySet>, RefreshError> {
        let mut gate = self.inner.gate.lock().await;
        if let Some(current) = self.snapshot()
            && current.generation != observed
        {
            return Ok(current);
        }
        if !forced {
            let now = self.inner.clock.now();
            if let Some(last) = gate.last_on_demand
                && now.saturating_duration_since(last) < self.inner.settings.refetch_cooldown
            {
                return Err(RefreshError::CoolingDown { last_error: gate.last_error.clone() });
            }
            gate.last_on_demand = Some(now);
        }
        let outcome = self.fetch().await;
        let result = match outcome {
            Ok(keys) => {
                let set = Arc::new(KeySet {
                    keys,
                    fetched_at: self.inner.clock.now(),
                    generation: observed.max(self.snapshot().map_or(0, |s| s.generation)) + 1,
                });
                self.inner.stats.keys.set(set.keys.len() as i64);
                *self.inner.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(set.clone());
                gate.last_error = None;
                Ok(set)
            }
            Err(error) => {
                self.inner.stats.fetch_failures.inc();
                let held = self.snapshot().map(|set| self.age(&set));
                tracing::warn!(
                    url = %self.inner.settings.url,
                    held_keys_age_secs = held.map(|age| age.as_secs()),
                    "JWKS fetch failed: {error}; {}",
                    if held.is_some() { "keeping the last good keys" } else { "no keys yet" }
                );
                gate.last_error = Some(error.to_string());
                Err(RefreshError::Fetch(error))
            }
        };
        drop(gate);
        self.update_ready();
        result
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<VerifyingKey>>, FetchError> {
        let settings = &self.inner.settings;
        self.inner.stats.fetches.inc();
        let mut response = self
            .inner
            .client
            .get(settings.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| FetchError::Request(describe_reqwest(&error)))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response.content_length().is_some_and(|length| length > settings.max_bytes as u64) {
            return Err(FetchError::TooLarge(settings.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| FetchError::Request(describe_reqwest(&error)))? {
            if body.len() + chunk.len() > settings.max_bytes {
                return Err(FetchError::TooLarge(settings.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_jwks(&body)?;
        tracing::info!(url = %settings.url, keys = keys.len(), "fetched JWKS");
        Ok(keys)
    }

    /// Fetches the JWKS now (sharing a fetch already in flight), ignoring the
    /// cooldown, as the refresher does at start. Returns the number of keys.
    pub async fn refresh_now(&self) -> Result<usize, String> {
        let observed = self.snapshot().map_or(0, |set| set.generation);
        self.refresh(observed, true).await.map(|set| set.keys.len()).map_err(|error| error.describe())
    }

    /// Keeps the set fresh until `shutdown`: fetches now, then every `ttl`;
    /// after a failure retries with exponential backoff (250 ms up to 30 s).
    pub async fn run_refresher(self, shutdown: CancellationToken) {
        let backoff = || {
            ExponentialBuilder::default()
                .with_min_delay(RETRY_MIN_DELAY)
                .with_max_delay(RETRY_MAX_DELAY)
                .with_jitter()
                .without_max_times()
                .build()
        };
        let mut retries = backoff();
        loop {
            let observed = self.snapshot().map_or(0, |set| set.generation);
            let delay = match self.refresh(observed, true).await {
                Ok(set) => {
                    retries = backoff();
                    self.inner.settings.ttl.saturating_sub(self.age(&set))
                }
                Err(_) => retries.next().unwrap_or(RETRY_MAX_DELAY),
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(delay.max(RETRY_MIN_DELAY)) => {}
            }
        }
    }
}

/// Parses a JWKS document into its usable keys, skipping (and logging) the others.
pub fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, FetchError> {
    let document: JwksDocument =
        serde_json::from_slice(body).map_err(|error| FetchError::Parse(truncate(&error.to_string(), 200)))?;
    let mut keys = HashMap::with_capacity(document.keys.len());
    let mut skipped = Vec::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                skipped.push(format!("keys[{index}]: {error}"));
                continue;
            }
        };
        let Some(kid) = jwk.kid.clone().filter(|kid| !kid.is_empty()) else {
            skipped.push(format!("keys[{index}]: no kid"));
            continue;
        };
        if keys.contains_key(&kid) {
            skipped.push(format!("keys[{index}] ({kid}): duplicate kid"));
            continue;
        }
        match VerifyingKey::from_jwk(kid.clone(), &jwk) {
            Ok(key) => {
                keys.insert(kid, Arc::new(key));
            }
            Err(error) => skipped.push(format!("keys[{index}] ({kid}): {error}")),
        }
    }
    if !skipped.is_empty() {
        tracing::warn!(skipped = skipped.len(), "ignored JWKS keys: {}", truncate(&skipped.join("; "), 1000));
    }
    if keys.is_empty() {
        return Err(FetchError::NoUsableKeys(if skipped.is_empty() {
            "the keys array is empty".to_owned()
        } else {
            truncate(&skipped.join("; "), 300)
        }));
    }
    Ok(keys)
}

fn describe_reqwest(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn round_secs(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_keys_are_skipped_and_usable_ones_kept() {
        let body = serde_json::json!({"keys": [
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"good"},
            {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            "not an object",
        ]});
        let keys = parse_jwks(body.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), vec!["good"]);
    }

    #[test]
    fn a_jwks_without_usable_keys_is_a_failed_fetch() {
        let error = parse_jwks(br#"{"keys":[]}"#).unwrap_err();
        assert!(matches!(error, FetchError::NoUsableKeys(_)), "{error}");
        let error = parse_jwks(br#"{"keys":[{"kty":"oct","kid":"a"}]}"#).unwrap_err();
        assert!(error.to_string().contains("unsupported key type oct"), "{error}");
    }

    #[test]
    fn garbage_is_not_a_jwks() {
        for body in [&b"<html>"[..], b"{}", b"[]", b"{\"keys\":5}", b""] {
            assert!(matches!(parse_jwks(body), Err(FetchError::Parse(_))));
        }
    }
}
