//! Token sources sharing a store (auth-tower driver): one fetch for many
//! sources, and a store that fails or hangs never fails or holds up a
//! request past the store timeout.

mod common;

use std::time::{Duration, SystemTime};

use auth_core::store::{MemoryStore, StoreAnswer, StoreConfig, StoreError, StoreOp};
use auth_core::CacheKey;
use auth_tower::{TokenSource, TokenStore};
use common::{config, Scripted, ScriptedEndpoint};
use tokio::time::Instant;

const LATENCY: Duration = Duration::from_millis(50);

fn fleet_source(endpoint: &ScriptedEndpoint, store: impl TokenStore) -> TokenSource {
    TokenSource::builder(config("https://auth.example.com/token"), endpoint.service())
        .store(store, StoreConfig::default())
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn eight_sources_on_one_store_make_one_fetch_on_a_cold_start() {
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("shared", 3600).latency(LATENCY));
    let store = MemoryStore::new();
    let sources: Vec<TokenSource> = (0..8).map(|_| fleet_source(&endpoint, store.clone())).collect();
    let mut calls = tokio::task::JoinSet::new();
    for source in &sources {
        for _ in 0..10 {
            let source = source.clone();
            calls.spawn(async move { source.token().await.map(|t| t.value().clone()) });
        }
    }
    let started = Instant::now();
    while let Some(outcome) = calls.join_next().await {
        let token = outcome.unwrap().unwrap();
        assert_eq!(auth_core::secret::ExposeSecret::expose_secret(&token), "shared");
    }
    assert_eq!(endpoint.calls(), 1, "one fetch for eight sources");
    assert!(started.elapsed() < Duration::from_secs(1), "served in {:?}", started.elapsed());
    let adoptions: u64 = sources.iter().map(|s| s.stats().adoptions).sum();
    let won: u64 = sources.iter().map(|s| s.stats().leases_won).sum();
    assert_eq!((adoptions, won), (7, 1));
}

/// A store that never answers.
struct Hanging;

#[async_trait::async_trait]
impl TokenStore for Hanging {
    async fn execute(&self, _key: &CacheKey, _now: SystemTime, _op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        std::future::pending().await
    }
}

/// A store that always fails.
struct Broken;

#[async_trait::async_trait]
impl TokenStore for Broken {
    async fn execute(&self, _key: &CacheKey, _now: SystemTime, _op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        Err(StoreError::new("connection refused"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_costs_at_most_the_store_timeout() {
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("local", 3600).latency(LATENCY));
    let source = fleet_source(&endpoint, Hanging);
    let started = Instant::now();
    let token = source.token().await.unwrap();
    assert_eq!(auth_core::secret::ExposeSecret::expose_secret(token.value()), "local");
    assert_eq!(started.elapsed(), auth_tower::source::DEFAULT_STORE_TIMEOUT + LATENCY);
    assert_eq!(source.stats().store_errors, 1);
    // Later calls use the token: the store is not on the hot path.
    let started = Instant::now();
    source.token().await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
}

/// A store that takes `connect` to get ready (once, as a TLS handshake
/// does), then answers as `inner`.
struct SlowToConnect {
    inner: MemoryStore,
    connect: Option<Duration>,
    ready: tokio::sync::OnceCell<()>,
}

#[async_trait::async_trait]
impl TokenStore for SlowToConnect {
    async fn connect(&self) -> Result<(), StoreError> {
        match self.connect {
            Some(takes) => self.ready.get_or_init(|| tokio::time::sleep(takes)).await,
            None => std::future::pending().await,
        };
        Ok(())
    }

    async fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        self.inner.execute(key, now, op).await
    }
}

#[tokio::test(start_paused = true)]
async fn connecting_is_not_charged_to_an_operation() {
    // Each source connects on its own, for longer than an operation may
    // take: still one fetch between them.
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("shared", 3600).latency(LATENCY));
    let store = MemoryStore::new();
    let connect = Some(auth_tower::source::DEFAULT_STORE_TIMEOUT * 2);
    let sources: Vec<TokenSource> = (0..4)
        .map(|_| {
            let store = SlowToConnect { inner: store.clone(), connect, ready: tokio::sync::OnceCell::new() };
            fleet_source(&endpoint, store)
        })
        .collect();
    let mut calls = tokio::task::JoinSet::new();
    for source in &sources {
        let source = source.clone();
        calls.spawn(async move { source.token().await.map(|t| t.value().clone()) });
    }
    while let Some(outcome) = calls.join_next().await {
        assert_eq!(auth_core::secret::ExposeSecret::expose_secret(&outcome.unwrap().unwrap()), "shared");
    }
    assert_eq!(endpoint.calls(), 1, "one fetch for four sources that connect slowly");
    assert_eq!(sources.iter().map(|s| s.stats().store_errors).sum::<u64>(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_store_that_never_gets_ready_costs_at_most_the_connect_timeout() {
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("local", 3600).latency(LATENCY));
    let never = SlowToConnect { inner: MemoryStore::new(), connect: None, ready: tokio::sync::OnceCell::new() };
    let source = TokenSource::builder(config("https://auth.example.com/token"), endpoint.service())
        .store(never, StoreConfig::default())
        .store_connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    source.token().await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(300) + LATENCY);
    assert_eq!(source.stats().store_errors, 1);
}

#[tokio::test(start_paused = true)]
async fn a_broken_store_falls_back_to_a_local_fetch_without_an_error() {
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("local", 3600).latency(LATENCY));
    let sources: Vec<TokenSource> = (0..3).map(|_| fleet_source(&endpoint, Broken)).collect();
    for source in &sources {
        let started = Instant::now();
        source.token().await.unwrap();
        assert_eq!(started.elapsed(), LATENCY, "no wait beyond the fetch");
    }
    assert_eq!(endpoint.calls(), 3, "each source fetched for itself");
}

#[tokio::test(start_paused = true)]
async fn a_401_at_one_source_is_one_new_token_for_all() {
    let endpoint = ScriptedEndpoint::new(
        vec![Scripted::token("first", 3600).latency(LATENCY), Scripted::token("second", 3600).latency(LATENCY)],
        Scripted::status(500, "a third fetch"),
    );
    let store = MemoryStore::new();
    let (a, b) = (fleet_source(&endpoint, store.clone()), fleet_source(&endpoint, store));
    let first_a = a.token().await.unwrap();
    let first_b = b.token().await.unwrap();
    assert_eq!(endpoint.calls(), 1);
    // The API rejects "first", at a, then at b.
    let renewed_a = a.reject(first_a.generation()).await.unwrap().expect("a replays");
    assert_eq!(auth_core::secret::ExposeSecret::expose_secret(renewed_a.value()), "second");
    let renewed_b = b.reject(first_b.generation()).await.unwrap().expect("b replays");
    assert_eq!(auth_core::secret::ExposeSecret::expose_secret(renewed_b.value()), "second");
    assert_eq!(endpoint.calls(), 2, "b adopted a's new token");
}

#[tokio::test(start_paused = true)]
async fn a_discarded_token_is_forgotten_by_the_store_and_no_peer_adopts_it() {
    let endpoint = ScriptedEndpoint::new(vec![Scripted::token("first", 3600)], Scripted::token("second", 3600));
    let store = MemoryStore::new();
    let source = fleet_source(&endpoint, store.clone());
    let first = source.token().await.unwrap();
    assert_eq!(auth_core::secret::ExposeSecret::expose_secret(first.value()), "first");
    source.flush().await;
    let key = source.config().cache_key().clone();
    let read = |store: &MemoryStore| store.apply(&key, SystemTime::now(), &StoreOp::Read);
    assert!(matches!(read(&store), StoreAnswer::Envelope(Some(_))), "written");

    source.discard().await;
    assert!(matches!(read(&store), StoreAnswer::Envelope(None)), "the record is deleted");
    // A peer starting now fetches its own token instead of adopting it.
    let peer = fleet_source(&endpoint, store.clone());
    let token = peer.token().await.unwrap();
    assert_eq!(auth_core::secret::ExposeSecret::expose_secret(token.value()), "second");
    // And so does the source that discarded it.
    assert_ne!(source.token().await.unwrap().generation(), first.generation());
}
