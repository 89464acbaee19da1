//! Token sources sharing a real Redis (a `redis-server` this test starts on
//! a free loopback port): one fetch for a fleet, and a Redis that dies or
//! freezes never fails a request nor holds one up past the store timeout.
//!
//! Without `redis-server` on the PATH the tests print a notice and pass,
//! unless `AUTH_REQUIRE_REDIS=1` (as CI sets), which makes that a failure.

mod blocking_fleet;
mod rotating;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::secret::ExposeSecret;
use auth_core::store::{Envelope, LeaseOwner, Record, StoreAnswer, StoreConfig, StoreOp};
use auth_core::SourceConfig;
use auth_store::{BlockingRedisStore, RedisStore};

use auth_testkit::redis::{RedisCluster, RedisSentinel, RedisServer as Redis};
use blocking_fleet::SHARING_STORE_TIMEOUT as SHARING;
use rotating::{Endpoint, Rotating};

fn config() -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", "fleet").client_secret("s").build().unwrap()
}

/// A token endpoint with 50 ms latency that counts its calls.
fn endpoint(calls: &Arc<AtomicUsize>) -> Endpoint {
    let calls = Arc::clone(calls);
    tower::util::BoxCloneSyncService::new(tower::service_fn(move |_request: http::Request<Vec<u8>>| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<_, Infallible>(http::Response::new(format!(r#"{{"access_token":"tok-{n}","expires_in":3600}}"#)))
        }
    }))
}

fn source(endpoint: &Endpoint, store: RedisStore, store_config: StoreConfig) -> auth_tower::TokenSource {
    auth_tower::TokenSource::builder(config(), endpoint.clone()).store(store, store_config).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_on_redis() {
    let Some(redis) = Redis::start() else { return };
    check_protocol(RedisStore::new(&redis.url()).unwrap()).await;
}

/// The store protocol, operation by operation, on `store`.
async fn check_protocol(store: RedisStore) {
    let key = config().cache_key().clone();
    let now = std::time::SystemTime::now();
    let (a, b) = (LeaseOwner::new(1), LeaseOwner::new(2));
    let ttl = Duration::from_secs(40);
    let lease = |owner| StoreOp::AcquireLease { owner, ttl };
    assert!(matches!(store.execute_async(&key, &lease(a)).await.unwrap(), StoreAnswer::Lease(true)));
    assert!(matches!(store.execute_async(&key, &lease(b)).await.unwrap(), StoreAnswer::Lease(false)));
    let envelope =
        |generation, token| Envelope::seal(&Record::new(&key, token, now + Duration::from_secs(3600)), generation);
    let write = |generation, token, release| StoreOp::Write { envelope: envelope(generation, token), release };
    assert!(matches!(store.execute_async(&key, &write(2, "t2", Some(a))).await.unwrap(), StoreAnswer::Written(true)));
    assert!(matches!(store.execute_async(&key, &lease(b)).await.unwrap(), StoreAnswer::Lease(true)), "released");
    assert!(matches!(store.execute_async(&key, &write(1, "t1", None)).await.unwrap(), StoreAnswer::Written(false)));
    let StoreAnswer::Envelope(Some(read)) = store.execute_async(&key, &StoreOp::Read).await.unwrap() else { panic!() };
    assert_eq!(read.generation, 2);
    assert_eq!(read.open(&key).unwrap().access_token_value(), Some("t2"));
    let invalidate = |fingerprint: &str| StoreOp::Invalidate { fingerprint: fingerprint.to_owned() };
    store.execute_async(&key, &invalidate("another")).await.unwrap();
    assert!(matches!(store.execute_async(&key, &StoreOp::Read).await.unwrap(), StoreAnswer::Envelope(Some(_))));
    store.execute_async(&key, &invalidate(&read.fingerprint)).await.unwrap();
    assert!(matches!(store.execute_async(&key, &StoreOp::Read).await.unwrap(), StoreAnswer::Envelope(None)));
    store.execute_async(&key, &StoreOp::ReleaseLease { owner: a }).await.unwrap();
    assert!(matches!(store.execute_async(&key, &lease(a)).await.unwrap(), StoreAnswer::Lease(false)), "b holds it");
}

/// The tokens `sources` get, asking at once (in tasks of their own).
async fn tokens_at_once(sources: &[auth_tower::TokenSource]) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for source in sources {
        let source = source.clone();
        tasks.spawn(async move { source.token().await.map(|t| t.value().expose_secret().to_owned()) });
    }
    let mut tokens = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        tokens.push(outcome.unwrap().unwrap());
    }
    tokens
}

/// Sources on stores made by `store`, asking at once: the tokens they got,
/// and how many token requests were made.
async fn tokens_of_async_sources(n: usize, store: impl Fn() -> RedisStore) -> (Vec<String>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = endpoint(&calls);
    let sources: Vec<_> = (0..n)
        .map(|_| {
            auth_tower::TokenSource::builder(config(), endpoint.clone())
                .store(store(), StoreConfig::default())
                // Sharing is what is tested here, not the fallback of a slow
                // store: a loaded test machine must not turn it on.
                .store_timeout(SHARING)
                .store_connect_timeout(SHARING)
                .build()
                .unwrap()
        })
        .collect();
    (tokens_at_once(&sources).await, calls.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_sources_with_their_own_connections_make_one_fetch() {
    let Some(redis) = Redis::start() else { return };
    let (tokens, calls) = tokens_of_async_sources(8, || RedisStore::new(&redis.url()).unwrap().timeout(SHARING)).await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 1, "one fetch for the fleet");
}

/// Four async sources on the TLS store at `url` whose certificate `ca`
/// signed make one fetch, and three blocking sources adopt its token.
async fn shares_one_fetch_over_tls(url: String, ca: &str) {
    let ca = ca.as_bytes().to_vec();
    let (tokens, calls) =
        tokens_of_async_sources(4, || RedisStore::with_root_certificate(&url, &ca).unwrap().timeout(SHARING)).await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 1, "one fetch for the fleet, over TLS");
    let (tokens, calls) = tokio::task::spawn_blocking(move || {
        blocking_fleet::tokens_of_blocking_sources(&config(), 3, Duration::from_millis(50), || {
            BlockingRedisStore::with_root_certificate(&url, &ca).unwrap().timeout(SHARING)
        })
    })
    .await
    .unwrap();
    assert!(tokens.iter().all(|t| t == "tok-1"), "blocking sources adopt it over TLS too: {tokens:?}");
    assert_eq!(calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_shares_over_tls_and_checks_the_certificate() {
    let Some(redis) = Redis::start_tls() else { return };
    shares_one_fetch_over_tls(redis.tls_url(), redis.ca_pem().unwrap()).await;
    // The system's roots do not know the test CA: the store is refused (a
    // store error), and the source fetches on its own.
    let refused =
        RedisStore::new(&redis.tls_url()).unwrap().execute_async(&config().cache_key().clone(), &StoreOp::Read).await;
    let message = refused.unwrap_err().message;
    assert!(message.to_lowercase().contains("certificate"), "{message}");
    let untrusting = source(
        &endpoint(&Arc::new(AtomicUsize::new(0))),
        RedisStore::new(&redis.tls_url()).unwrap(),
        StoreConfig::default(),
    );
    assert_eq!(untrusting.token().await.unwrap().value().expose_secret(), "tok-1", "its own endpoint's first token");
    untrusting.flush().await;
    assert!(untrusting.stats().store_errors >= 1);
    assert_eq!(untrusting.stats().adoptions, 0);
}

/// A loopback proxy to `port` that holds every new connection for `delay`
/// before it passes bytes on: a Redis that is slow to connect to (a far
/// region, a loaded host), whatever the scheduling.
async fn slow_to_connect(port: u16, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    proxy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_slower_than_an_operation_still_shares_one_fetch() {
    // Connecting (here 400 ms, more than the 250 ms an operation may take)
    // has a wait of its own: a fleet that starts at once shares one fetch.
    let Some(redis) = Redis::start_tls() else { return };
    let proxy = slow_to_connect(redis.port(), Duration::from_millis(400)).await;
    let url = redis.tls_url().replace(&format!(":{}/", redis.port()), &format!(":{proxy}/"));
    let ca = redis.ca_pem().unwrap().as_bytes().to_vec();
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = endpoint(&calls);
    let sources: Vec<_> = (0..4)
        .map(|_| source(&endpoint, RedisStore::with_root_certificate(&url, &ca).unwrap(), StoreConfig::default()))
        .collect();
    assert!(tokens_at_once(&sources).await.iter().all(|t| t == "tok-1"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch, though every connection took 400 ms");
    assert_eq!(sources.iter().map(|s| s.stats().store_errors).sum::<u64>(), 0);
    // The blocking store: the same wait of its own.
    let blocking = tokio::task::spawn_blocking(move || {
        blocking_fleet::tokens_of_blocking_sources(&config(), 2, Duration::from_millis(50), || {
            BlockingRedisStore::with_root_certificate(&url, &ca).unwrap()
        })
    });
    let (tokens, calls) = blocking.await.unwrap();
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 0, "adopted over a slow connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_or_frozen_costs_no_request_and_sharing_resumes() {
    let Some(redis) = Redis::start() else { return };
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = endpoint(&calls);
    let a = source(&endpoint, RedisStore::new(&redis.url()).unwrap(), StoreConfig::default());
    let b = source(&endpoint, RedisStore::new(&redis.url()).unwrap(), StoreConfig::default());
    let first = a.token().await.unwrap();
    b.token().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Frozen: a 401 forces b to obtain a new token; the store does not answer.
    redis.signal("-STOP");
    let started = Instant::now();
    let renewed = b.reject(b.token().await.unwrap().generation()).await.unwrap().expect("replay");
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(1500), "waited {waited:?} with Redis frozen");
    assert_ne!(renewed.value().expose_secret(), first.value().expose_secret());
    assert!(b.stats().store_errors >= 1);

    // Back: the next new token is shared again.
    redis.signal("-CONT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fetched = calls.load(Ordering::SeqCst);
    let renewed_a = a.reject(first.generation()).await.unwrap().expect("replay");
    let c = source(&endpoint, RedisStore::new(&redis.url()).unwrap(), StoreConfig::default());
    assert_eq!(c.token().await.unwrap().value().expose_secret(), renewed_a.value().expose_secret());
    assert!(calls.load(Ordering::SeqCst) <= fetched + 1, "c adopted a's token");

    // A token fetched after a 401 and rejected again at once is not
    // replaced: the fetch-loop guard is shared through the store.
    let adopted = c.token().await.unwrap();
    assert!(c.reject(adopted.generation()).await.unwrap().is_none(), "suppressed: no replay");

    // Killed: cached tokens keep serving, new sources fetch on their own.
    let url = redis.url();
    drop(redis);
    let started = Instant::now();
    assert_eq!(a.token().await.unwrap().value().expose_secret(), renewed_a.value().expose_secret());
    let d = source(&endpoint, RedisStore::new(&url).unwrap(), StoreConfig::default());
    assert!(d.token().await.is_ok(), "a source whose Redis is gone still gets a token");
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert!(d.stats().store_errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_that_died_blocks_the_others_at_most_for_its_ttl() {
    let Some(redis) = Redis::start() else { return };
    let key = config().cache_key().clone();
    // A holder took the lease for 1.5 s and died before writing a token.
    let dead = RedisStore::new(&redis.url()).unwrap();
    let lease = StoreOp::AcquireLease { owner: LeaseOwner::new(99), ttl: Duration::from_millis(1500) };
    assert!(matches!(dead.execute_async(&key, &lease).await.unwrap(), StoreAnswer::Lease(true)));
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = endpoint(&calls);
    let mut patient = StoreConfig::default();
    patient.poll_interval = Duration::from_millis(100);
    let sources: Vec<_> =
        (0..4).map(|_| source(&endpoint, RedisStore::new(&redis.url()).unwrap(), patient.clone())).collect();
    let started = Instant::now();
    assert!(tokens_at_once(&sources).await.iter().all(|t| t == "tok-1"));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1300) && waited < Duration::from_secs(3), "waited {waited:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch once the dead lease expired");
}

#[test]
fn blocking_sources_on_redis_make_one_fetch_without_an_async_runtime() {
    let Some(redis) = Redis::start() else { return };
    let (tokens, calls) = blocking_fleet::tokens_of_blocking_sources(&config(), 4, Duration::from_millis(50), || {
        BlockingRedisStore::new(&redis.url()).unwrap().timeout(SHARING)
    });
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_records_are_shared_and_unreadable_without_the_key() {
    let Some(redis) = Redis::start() else { return };
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = endpoint(&calls);
    let encrypted = || auth_store::Encrypted::new(RedisStore::new(&redis.url()).unwrap(), &[42u8; 32]);
    let a = auth_tower::TokenSource::builder(config(), endpoint.clone())
        .store(encrypted(), StoreConfig::default())
        .build()
        .unwrap();
    let token = a.token().await.unwrap();
    a.flush().await;
    let b = auth_tower::TokenSource::builder(config(), endpoint.clone())
        .store(encrypted(), StoreConfig::default())
        .build()
        .unwrap();
    assert_eq!(b.token().await.unwrap().value().expose_secret(), token.value().expose_secret());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "shared through the encrypted record");
    // Redis itself holds no token.
    let raw = RedisStore::new(&redis.url()).unwrap();
    let StoreAnswer::Envelope(Some(envelope)) = raw.execute_async(config().cache_key(), &StoreOp::Read).await.unwrap()
    else {
        panic!("no record")
    };
    assert!(!String::from_utf8_lossy(&envelope.payload).contains(token.value().expose_secret()));
    // Another key cannot use it: that source fetches its own token.
    let c = auth_tower::TokenSource::builder(config(), endpoint)
        .store(auth_store::Encrypted::new(RedisStore::new(&redis.url()).unwrap(), &[1u8; 32]), StoreConfig::default())
        .build()
        .unwrap();
    assert_ne!(c.token().await.unwrap().value().expose_secret(), token.value().expose_secret());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn the_budget_protocol_on_redis() {
    let Some(redis) = Redis::start() else { return };
    blocking_fleet::check_budget_protocol(&config(), || BlockingRedisStore::new(&redis.url()).unwrap());
}

#[test]
fn a_fleet_on_redis_shares_its_fetch_budget() {
    let Some(redis) = Redis::start() else { return };
    // Sharing is tested, not a slow Redis: a loaded machine must not time out.
    blocking_fleet::check_shared_budget(|| {
        BlockingRedisStore::new(&redis.url()).unwrap().timeout(Duration::from_secs(5))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_refresh_tokens_are_never_spent_twice_on_redis() {
    let Some(redis) = Redis::start() else { return };
    let provider = Rotating::default();
    let sources: Vec<_> = (0..6)
        .map(|_| source(&provider.endpoint(), RedisStore::new(&redis.url()).unwrap(), StoreConfig::default()))
        .collect();
    // Six sources ask for tokens every 20 ms for 7 s: 2 s tokens, so the
    // fleet renews about four times, each time racing to refresh.
    let deadline = Instant::now() + Duration::from_secs(7);
    let mut tasks = tokio::task::JoinSet::new();
    for source in &sources {
        let source = source.clone();
        tasks.spawn(async move {
            let mut failures = 0;
            while Instant::now() < deadline {
                if source.token().await.is_err() {
                    failures += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            failures
        });
    }
    while let Some(failures) = tasks.join_next().await {
        assert_eq!(failures.unwrap(), 0, "no caller failed");
    }
    let state = provider.state.lock().unwrap();
    assert_eq!(state.reused, 0, "a refresh token was presented after it was spent");
    assert!(state.refreshes >= 3, "the fleet renewed with its refresh tokens ({} refreshes)", state.refreshes);
    // About five (the cold start and four renewals); six sources renewing
    // on their own would make well over twenty.
    assert!(state.issued <= 7, "one token per lifetime for the fleet, not per source: {} issued", state.issued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_at_every_replica_gives_the_fleet_one_new_token() {
    let Some(redis) = Redis::start() else { return };
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = endpoint(&calls);
    let sources: Vec<_> =
        (0..4).map(|_| source(&endpoint, RedisStore::new(&redis.url()).unwrap(), StoreConfig::default())).collect();
    let mut first = Vec::new();
    for source in &sources {
        first.push(source.token().await.unwrap());
    }
    assert!(first.iter().all(|t| t.value().expose_secret() == "tok-1"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The API rejects tok-1 at every replica at once: one of them deletes
    // it from the store and fetches; the others adopt what it wrote.
    let mut tasks = tokio::task::JoinSet::new();
    for (source, token) in sources.iter().zip(&first) {
        let (source, generation) = (source.clone(), token.generation());
        tasks.spawn(async move {
            source.invalidate(generation);
            source.token().await.map(|t| t.value().expose_secret().to_owned())
        });
    }
    while let Some(token) = tasks.join_next().await {
        assert_eq!(token.unwrap().unwrap(), "tok-2");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one new token for the fleet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_for_another_cache_key_is_ignored() {
    let Some(redis) = Redis::start() else { return };
    let store = RedisStore::new(&redis.url()).unwrap();
    let other = SourceConfig::builder("https://other.example.com/token", "fleet").client_secret("s").build().unwrap();
    // A record of another configuration, planted where this one's lives
    // (a writer that mixed up keys, or a tampered store).
    let planted =
        Record::new(other.cache_key(), "not-for-you", std::time::SystemTime::now() + Duration::from_secs(3600));
    let write = StoreOp::Write { envelope: Envelope::seal(&planted, 99), release: None };
    assert!(matches!(store.execute_async(config().cache_key(), &write).await.unwrap(), StoreAnswer::Written(true)));
    let calls = Arc::new(AtomicUsize::new(0));
    let source = source(&endpoint(&calls), store, StoreConfig::default());
    assert_eq!(source.token().await.unwrap().value().expose_secret(), "tok-1", "fetched, not adopted");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(source.stats().adoptions, 0);
}

// ----- Redis Cluster: three primaries, the keys of a cache key in one slot -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else { return };
    check_protocol(RedisStore::new(&cluster.url()).unwrap()).await;
    // The record, lease and budget keys share the cache key's hash tag:
    // all three are on one primary.
    let fingerprint = config().cache_key().fingerprint().to_owned();
    let holders: Vec<u16> = cluster
        .nodes()
        .iter()
        .filter(|node| {
            let keys = std::process::Command::new("redis-cli")
                .args(["-p", &node.port().to_string(), "--scan", "--pattern", &format!("*{{{fingerprint}}}*")])
                .output()
                .unwrap();
            !keys.stdout.is_empty()
        })
        .map(|node| node.port())
        .collect();
    assert_eq!(holders.len(), 1, "one primary holds the cache key's keys: {holders:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_confirmed_on_the_replica_of_the_keys_primary_in_a_cluster() {
    let Some(cluster) = RedisCluster::start_with_replicas() else { return };
    let key = config().cache_key().clone();
    let lease = |owner| StoreOp::AcquireLease { owner: LeaseOwner::new(owner), ttl: Duration::from_secs(30) };
    // The WAIT reaches the primary that took the write, whose replica confirms it.
    let confirming = RedisStore::new(&cluster.url()).unwrap().confirm_writes(1, Duration::from_secs(1));
    assert!(matches!(confirming.execute_async(&key, &lease(1)).await.unwrap(), StoreAnswer::Lease(true)));
    let record = Record::new(&key, "t1", std::time::SystemTime::now() + Duration::from_secs(60));
    let claim = StoreOp::CompareAndSet { envelope: Envelope::seal(&record, 1), expected: 0 };
    assert!(matches!(confirming.execute_async(&key, &claim).await.unwrap(), StoreAnswer::Written(true)));
    // Frozen, the replica of the key's own primary confirms nothing (any other would).
    let record_key = format!("auth-store:{{{}}}:record", key.fingerprint());
    let is_primary = |node: &Redis| node.cli(&["info", "replication"]).contains("role:master");
    let primary = cluster.nodes().iter().find(|n| is_primary(n) && n.cli(&["EXISTS", &record_key]).trim() == "1");
    let primary_port = format!("master_port:{}", primary.expect("the key's primary").port());
    let replica = cluster.nodes().iter().find(|n| n.cli(&["info", "replication"]).contains(&primary_port)).unwrap();
    confirming.execute_async(&key, &StoreOp::ReleaseLease { owner: LeaseOwner::new(1) }).await.unwrap();
    replica.signal("-STOP");
    let unconfirmed = confirming.execute_async(&key, &lease(3)).await;
    replica.signal("-CONT");
    assert!(unconfirmed.unwrap_err().message.contains("not confirmed"), "the WAIT went elsewhere");
    confirming.execute_async(&key, &StoreOp::Invalidate { fingerprint: record.fingerprint() }).await.unwrap();
    let url = cluster.url();
    let (tokens, calls) = tokens_of_async_sources(8, || {
        RedisStore::new(&url).unwrap().timeout(SHARING).confirm_writes(1, Duration::from_secs(1))
    })
    .await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 1, "one fetch for the fleet, every write confirmed");
    let blocking = BlockingRedisStore::new(&url).unwrap().confirm_writes(1, Duration::from_secs(1));
    let answer = tokio::task::spawn_blocking(move || {
        auth_core::store::BlockingTokenStore::execute(&blocking, &key, std::time::SystemTime::now(), &lease(2))
    });
    assert!(matches!(answer.await.unwrap().unwrap(), StoreAnswer::Lease(true)), "blocking stores route it too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_replicas_a_cluster_confirms_nothing_and_gives_the_lease_back() {
    let Some(cluster) = RedisCluster::start() else { return };
    let key = config().cache_key().clone();
    let lease = |owner| StoreOp::AcquireLease { owner: LeaseOwner::new(owner), ttl: Duration::from_secs(30) };
    let confirming = RedisStore::new(&cluster.url()).unwrap().confirm_writes(1, Duration::from_millis(100));
    let error = confirming.execute_async(&key, &lease(1)).await.unwrap_err();
    assert!(error.message.contains("not confirmed by 1 replica"), "{error}");
    let plain = RedisStore::new(&cluster.url()).unwrap().timeout(SHARING);
    assert!(matches!(plain.execute_async(&key, &lease(2)).await.unwrap(), StoreAnswer::Lease(true)), "given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_sources_on_a_cluster_make_one_fetch() {
    let Some(cluster) = RedisCluster::start() else { return };
    let (tokens, calls) =
        tokens_of_async_sources(8, || RedisStore::new(&cluster.url()).unwrap().timeout(SHARING)).await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 1, "one fetch for the fleet");
}

#[test]
fn blocking_sources_on_a_cluster_make_one_fetch_and_share_the_budget() {
    let Some(cluster) = RedisCluster::start() else { return };
    let (tokens, calls) = blocking_fleet::tokens_of_blocking_sources(&config(), 4, Duration::from_millis(50), || {
        BlockingRedisStore::new(&cluster.url()).unwrap().timeout(SHARING)
    });
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 1);
    blocking_fleet::check_budget_protocol(&config(), || BlockingRedisStore::new(&cluster.url()).unwrap());
    blocking_fleet::check_shared_budget(|| {
        BlockingRedisStore::new(&cluster.url()).unwrap().timeout(Duration::from_secs(5))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_cluster_shares_over_tls_and_checks_the_certificate() {
    let Some(cluster) = RedisCluster::start_tls() else { return };
    shares_one_fetch_over_tls(cluster.tls_url(), cluster.nodes()[0].ca_pem().unwrap()).await;
    // The system's roots do not know the test CA: refused.
    let refused =
        RedisStore::new(&cluster.tls_url()).unwrap().execute_async(&config().cache_key().clone(), &StoreOp::Read).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_planted_at_another_key_of_a_cluster_is_not_adopted() {
    let Some(cluster) = RedisCluster::start() else { return };
    let other =
        SourceConfig::builder("https://auth.example.com/token", "another-client").client_secret("s").build().unwrap();
    let store = RedisStore::new(&cluster.url()).unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    // The other client's record, written where this client's belongs.
    let planted = Envelope::seal(&Record::new(other.cache_key(), "planted", later), 7);
    let write = StoreOp::Write { envelope: planted, release: None };
    assert!(matches!(store.execute_async(config().cache_key(), &write).await.unwrap(), StoreAnswer::Written(true)));
    let (tokens, calls) =
        tokens_of_async_sources(2, || RedisStore::new(&cluster.url()).unwrap().timeout(SHARING)).await;
    assert!(tokens.iter().all(|t| t != "planted"), "{tokens:?}");
    assert!(calls >= 1, "fetched its own");
}

// ----- Redis Sentinel: a primary, a replica, one Sentinel -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_behind_sentinel_share_one_fetch_and_follow_a_failover() {
    let Some(sentinel) = RedisSentinel::start() else { return };
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = endpoint(&calls);
    let store = || RedisStore::new(&sentinel.url()).unwrap().timeout(SHARING);
    let source = |store| {
        auth_tower::TokenSource::builder(config(), endpoint.clone())
            .store(store, StoreConfig::default())
            .store_timeout(SHARING)
            .store_connect_timeout(SHARING)
            .build()
            .unwrap()
    };
    let before: Vec<_> = (0..4).map(|_| source(store())).collect();
    let tokens = tokens_at_once(&before).await;
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch behind Sentinel");
    for source in &before {
        source.flush().await;
    }
    // The replica becomes the primary, once it holds the record
    // (replication is asynchronous: without this wait a failover may lose
    // it, and the fleet then fetches once more).
    sentinel.wait_for_replication();
    let kept = store();
    kept.execute_async(config().cache_key(), &StoreOp::Read).await.unwrap();
    let (first, _) = sentinel.servers();
    let first_port = first.port();
    sentinel.failover();
    assert_ne!(sentinel.primary_port(), Some(first_port));
    let after = source(store());
    let adopted = after.token().await.unwrap();
    assert_eq!(adopted.value().expose_secret(), "tok-1", "adopted from the new primary");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A store connected to the old primary (now a replica, which refuses
    // writes) finds the new one: at most one operation fails.
    let lease = StoreOp::AcquireLease { owner: LeaseOwner::new(9), ttl: Duration::from_secs(5) };
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        outcomes.push(kept.execute_async(config().cache_key(), &lease).await.is_ok());
    }
    assert!(outcomes.iter().filter(|ok| !**ok).count() <= 1 && outcomes[2], "{outcomes:?}");
}

#[test]
fn blocking_sources_behind_sentinel_share_one_fetch_and_follow_a_failover() {
    let Some(sentinel) = RedisSentinel::start() else { return };
    let store = || BlockingRedisStore::new(&sentinel.url()).unwrap().timeout(SHARING);
    let (tokens, calls) = blocking_fleet::tokens_of_blocking_sources(&config(), 4, Duration::from_millis(50), store);
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 1);
    let kept = store();
    let config = config();
    let key = config.cache_key();
    auth_core::store::BlockingTokenStore::execute(&kept, key, std::time::SystemTime::now(), &StoreOp::Read).unwrap();
    sentinel.failover();
    let lease = StoreOp::AcquireLease { owner: LeaseOwner::new(9), ttl: Duration::from_secs(5) };
    let outcomes: Vec<bool> = (0..3)
        .map(|_| {
            auth_core::store::BlockingTokenStore::execute(&kept, key, std::time::SystemTime::now(), &lease).is_ok()
        })
        .collect();
    assert!(outcomes.iter().filter(|ok| !**ok).count() <= 1 && outcomes[2], "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_counts_only_once_a_replica_has_it_when_asked() {
    let Some(sentinel) = RedisSentinel::start() else { return };
    // Generous: the replica acknowledges late on a loaded test machine.
    let within = Duration::from_secs(1);
    let confirming = RedisStore::new(&sentinel.url()).unwrap().timeout(SHARING).confirm_writes(1, within);
    let plain = RedisStore::new(&sentinel.url()).unwrap().timeout(SHARING);
    let key = config().cache_key().clone();
    let (a, b, c) = (LeaseOwner::new(1), LeaseOwner::new(2), LeaseOwner::new(3));
    let lease = |owner| StoreOp::AcquireLease { owner, ttl: Duration::from_secs(30) };
    // With the replica up (and in sync), the lease is confirmed and held.
    sentinel.wait_for_replication();
    assert!(matches!(confirming.execute_async(&key, &lease(a)).await.unwrap(), StoreAnswer::Lease(true)));
    assert!(matches!(plain.execute_async(&key, &lease(b)).await.unwrap(), StoreAnswer::Lease(false)), "a holds it");
    confirming.execute_async(&key, &StoreOp::ReleaseLease { owner: a }).await.unwrap();
    // With the replica frozen, WAIT sees no replica: not held, and given back.
    let (_, replica) = sentinel.servers();
    replica.signal("-STOP");
    let started = Instant::now();
    let answer = confirming.execute_async(&key, &lease(a)).await;
    replica.signal("-CONT");
    let error = answer.unwrap_err();
    assert!(error.message.contains("not confirmed by 1 replica"), "an unconfirmed lease is not won: {error}");
    assert!(started.elapsed() >= within, "it waited for the replica");
    assert!(matches!(plain.execute_async(&key, &lease(c)).await.unwrap(), StoreAnswer::Lease(true)), "given back");
}
