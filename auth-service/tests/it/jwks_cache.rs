//! The JWKS cache against an endpoint the test controls: rotation, cooldown,
//! single-flight, stale-on-failure and recovery. Time moves by hand.

use std::{sync::Arc, time::Duration};

use auth_service::{JwksCache, JwksSettings, Reason, Verifier, clock::Clock, jwks::DEFAULT_REFETCH_COOLDOWN};
use test_support::{
    JwksBehavior, JwksServer, TestKey,
    auth::policy_for,
    keys::{better_auth_claims, jwks},
};

struct Fixture {
    server: JwksServer,
    verifier: Arc<Verifier>,
    clock: Clock,
    issuer: String,
}

async fn fixture(keys: &[&TestKey], tune: impl FnOnce(&mut JwksSettings)) -> Fixture {
    let server = JwksServer::serving(jwks(keys)).await;
    let issuer = server.base_url();
    let clock = Clock::manual();
    let mut settings = JwksSettings::new(server.url());
    tune(&mut settings);
    let cache = JwksCache::with_clock(settings, clock.clone()).unwrap();
    // As at service start: the refresher's first fetch.
    cache.refresh_now().await.unwrap();
    Fixture { verifier: Arc::new(Verifier::new(cache, policy_for(&issuer))), server, clock, issuer }
}

impl Fixture {
    fn token(&self, key: &TestKey) -> String {
        key.sign(&better_auth_claims("u", &self.issuer))
    }
}

#[tokio::test]
async fn a_rotated_key_is_fetched_on_first_sight_of_its_kid() {
    let old = TestKey::generate("EdDSA", "old");
    let new = TestKey::generate("EdDSA", "new");
    let f = fixture(&[&old], |_| {}).await;
    f.verifier.verify(&f.token(&old)).await.unwrap();
    assert_eq!(f.server.fetches(), 1);

    // Better Auth rotates: a new key, the old one still published.
    f.server.set(JwksBehavior::Serve(jwks(&[&old, &new])));
    let identity = f.verifier.verify(&f.token(&new)).await.unwrap();
    assert_eq!(identity.key_id, "new");
    assert_eq!(f.server.fetches(), 2);
    // Both keys now verify without further fetches.
    f.verifier.verify(&f.token(&old)).await.unwrap();
    f.verifier.verify(&f.token(&new)).await.unwrap();
    assert_eq!(f.server.fetches(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_cooldown() {
    let key = TestKey::generate("EdDSA", "k1");
    let f = fixture(&[&key], |_| {}).await;
    f.verifier.verify(&f.token(&key)).await.unwrap();
    assert_eq!(f.server.fetches(), 1);

    let strangers: Vec<TestKey> = (0..20).map(|i| TestKey::generate("EdDSA", &format!("random-{i}"))).collect();
    // 1,000 tokens with unknown kids, sequential and concurrent.
    let mut tasks = Vec::new();
    for round in 0..50 {
        for stranger in &strangers {
            let verifier = f.verifier.clone();
            let token = f.token(stranger);
            tasks.push(tokio::spawn(async move { verifier.verify(&token).await }));
        }
        if round % 10 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err().reason, Reason::KeyUnknown);
    }
    assert_eq!(f.server.fetches(), 2, "one refetch for the whole flood");

    // Still within the cooldown: nothing.
    f.clock.advance(DEFAULT_REFETCH_COOLDOWN - Duration::from_secs(1));
    assert_eq!(f.verifier.verify(&f.token(&strangers[0])).await.unwrap_err().reason, Reason::KeyUnknown);
    assert_eq!(f.server.fetches(), 2);

    // After the cooldown, one more.
    f.clock.advance(Duration::from_secs(2));
    for stranger in &strangers {
        assert_eq!(f.verifier.verify(&f.token(stranger)).await.unwrap_err().reason, Reason::KeyUnknown);
    }
    assert_eq!(f.server.fetches(), 3);
    // The known key never stopped working.
    f.verifier.verify(&f.token(&key)).await.unwrap();
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch() {
    let old = TestKey::generate("ES256", "old");
    let new = TestKey::generate("ES256", "new");
    let f = fixture(&[&old], |_| {}).await;
    f.verifier.verify(&f.token(&old)).await.unwrap();

    // The endpoint is slow, so all 64 callers miss while the fetch is in flight.
    f.server.set(JwksBehavior::Slow(Duration::from_millis(300), jwks(&[&old, &new])));
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let verifier = f.verifier.clone();
            let token = f.token(&new);
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().key_id, "new", "every waiter gets the fetched key");
    }
    assert_eq!(f.server.fetches(), 2, "one fetch served all 64 misses");
}

#[tokio::test]
async fn failed_refresh_keeps_the_last_keys_until_max_staleness() {
    let key = TestKey::generate("RS256", "k1");
    let f = fixture(&[&key], |_| {}).await;
    f.verifier.verify(&f.token(&key)).await.unwrap();
    let ready = f.verifier.jwks().ready();
    assert!(*ready.borrow());

    // Better Auth goes down; the TTL passes.
    f.server.set(JwksBehavior::Fail(503));
    f.clock.advance(Duration::from_secs(11 * 60));
    f.verifier.verify(&f.token(&key)).await.expect("stale keys keep verifying");
    assert_eq!(f.server.fetches(), 2, "the refresh was attempted");
    assert_eq!(f.verifier.jwks().stats().fetch_failures.get(), 1);

    // Garbage and oversized answers are ignored the same way.
    f.server.set(JwksBehavior::Garbage(b"<html>maintenance</html>".to_vec()));
    f.clock.advance(DEFAULT_REFETCH_COOLDOWN);
    f.verifier.verify(&f.token(&key)).await.expect("garbage JWKS is ignored");
    f.server.set(JwksBehavior::Garbage(vec![b' '; 2 * 1024 * 1024]));
    f.clock.advance(DEFAULT_REFETCH_COOLDOWN);
    f.verifier.verify(&f.token(&key)).await.expect("huge JWKS is ignored");
    assert_eq!(f.server.fetches(), 4);

    // Past the staleness bound the keys are no longer trusted.
    f.clock.advance(Duration::from_secs(24 * 60 * 60));
    let error = f.verifier.verify(&f.token(&key)).await.unwrap_err();
    assert_eq!(error.reason, Reason::JwksUnavailable);
    assert!(error.message.contains("beyond the 1day staleness limit"), "{}", error.message);
    assert!(!*f.verifier.jwks().ready().borrow());

    // Recovery: Better Auth answers again, the next call after the cooldown refetches.
    f.server.set(JwksBehavior::Serve(jwks(&[&key])));
    f.clock.advance(DEFAULT_REFETCH_COOLDOWN);
    f.verifier.verify(&f.token(&key)).await.expect("recovered");
    assert!(*f.verifier.jwks().ready().borrow());
}

#[tokio::test]
async fn without_any_keys_verification_is_unavailable_not_unauthenticated() {
    let key = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(JwksBehavior::Fail(500)).await;
    let cache = JwksCache::new(JwksSettings::new(server.url())).unwrap();
    let f = Fixture {
        verifier: Arc::new(Verifier::new(cache, policy_for(&server.base_url()))),
        issuer: server.base_url(),
        server,
        clock: Clock::system(),
    };
    let error = f.verifier.verify(&f.token(&key)).await.unwrap_err();
    assert_eq!(error.reason, Reason::JwksUnavailable);
    assert_eq!(error.reason.code(), tonic::Code::Unavailable);
    assert!(error.message.starts_with("no signing keys yet"), "{}", error.message);
}

#[tokio::test]
async fn a_slow_jwks_endpoint_times_out_instead_of_hanging_callers() {
    let key = TestKey::generate("EdDSA", "k1");
    let f = fixture(&[&key], |settings| settings.fetch_timeout = Duration::from_millis(200)).await;
    f.server.set(JwksBehavior::Slow(Duration::from_secs(30), jwks(&[&key])));
    f.clock.advance(Duration::from_secs(24 * 60 * 60));
    // The endpoint would answer after 30 s; the 200 ms fetch deadline answers first.
    let error = f.verifier.verify(&f.token(&key)).await.unwrap_err();
    assert_eq!(error.reason, Reason::JwksUnavailable);
    assert!(error.message.contains("timed out"), "{}", error.message);
}

#[tokio::test]
async fn the_refresher_retries_until_the_first_fetch_succeeds() {
    let key = TestKey::generate("EdDSA", "k1");
    let server = JwksServer::start(JwksBehavior::Fail(503)).await;
    let cache = JwksCache::new(JwksSettings::new(server.url())).unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let refresher = tokio::spawn(cache.clone().run_refresher(stop.clone()));
    let mut ready = cache.ready();
    // Two failed attempts (the start and a retry), then the endpoint recovers.
    server.wait_for_fetches(2).await;
    assert!(!*ready.borrow());
    server.set(JwksBehavior::Serve(jwks(&[&key])));
    tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|ready| *ready))
        .await
        .expect("ready after the endpoint recovers")
        .unwrap();
    stop.cancel();
    refresher.await.unwrap();
}
