//! Blocking token sources sharing a store: one fetch for many sources, and
//! a hung or broken store never fails a request nor holds it up past the
//! store timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use auth_blocking::{BlockingTokenSource, BlockingTokenStore, TransportError};
use auth_core::secret::ExposeSecret;
use auth_core::store::{MemoryStore, StoreAnswer, StoreConfig, StoreError, StoreOp};
use auth_core::{CacheKey, SourceConfig};

fn config() -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", "id").client_secret("s").build().unwrap()
}

/// A token endpoint that takes 50 ms and counts its calls.
fn endpoint(
    calls: &Arc<AtomicUsize>,
) -> impl Fn(http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> + Send + Sync + 'static {
    let calls = Arc::clone(calls);
    move |_request| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(Duration::from_millis(50));
        Ok(http::Response::new(format!(r#"{{"access_token":"tok-{n}","expires_in":3600}}"#).into_bytes()))
    }
}

/// The tokens `sources` get, asking at once (from threads of their own).
fn tokens_at_once(sources: &[BlockingTokenSource]) -> Vec<String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|source| scope.spawn(move || source.token().unwrap().value().expose_secret().to_owned()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn four_sources_on_one_store_make_one_fetch() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = MemoryStore::new();
    let sources: Vec<BlockingTokenSource> = (0..4)
        .map(|_| {
            BlockingTokenSource::builder(config(), endpoint(&calls))
                .store(store.clone(), StoreConfig::default())
                .build()
                .unwrap()
        })
        .collect();
    let tokens = tokens_at_once(&sources);
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for four sources");
    assert_eq!(sources.iter().map(|s| s.stats().adoptions).sum::<u64>(), 3);
}

/// A store that never answers.
struct Hung;

impl BlockingTokenStore for Hung {
    fn execute(&self, _key: &CacheKey, _now: SystemTime, _op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        std::thread::sleep(Duration::from_secs(3600));
        Err(StoreError::new("woke up"))
    }
}

/// `source`, whose store does not answer, gets the endpoint's first token
/// at once (well within 2 s), with the store's failure counted.
fn gets_its_own_token_without_waiting(source: &BlockingTokenSource, calls: &AtomicUsize) {
    let started = Instant::now();
    assert_eq!(source.token().unwrap().value().expose_secret(), "tok-1");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    assert!(source.stats().store_errors >= 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_hung_store_costs_one_store_timeout_and_no_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let source = BlockingTokenSource::builder(config(), endpoint(&calls))
        .store(Hung, StoreConfig::default())
        .store_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    gets_its_own_token_without_waiting(&source, &calls);
}

/// A store that takes `connect` to get ready (once, as a TLS handshake
/// does; `None`: never), then answers as `inner`.
struct SlowToConnect {
    inner: MemoryStore,
    connect: Option<Duration>,
    ready: std::sync::OnceLock<()>,
}

impl BlockingTokenStore for SlowToConnect {
    fn connect(&self) -> Result<(), StoreError> {
        let takes = self.connect.unwrap_or(Duration::from_secs(3600));
        self.ready.get_or_init(|| std::thread::sleep(takes));
        Ok(())
    }

    fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        BlockingTokenStore::execute(&self.inner, key, now, op)
    }
}

#[test]
fn connecting_is_not_charged_to_an_operation() {
    // Each source connects for a second, an operation may take 300 ms:
    // still one fetch between them.
    let (calls, store) = (Arc::new(AtomicUsize::new(0)), MemoryStore::new());
    let sources: Vec<BlockingTokenSource> = (0..2)
        .map(|_| {
            let slow = SlowToConnect {
                inner: store.clone(),
                connect: Some(Duration::from_secs(1)),
                ready: Default::default(),
            };
            BlockingTokenSource::builder(config(), endpoint(&calls))
                .store(slow, StoreConfig::default())
                .store_timeout(Duration::from_millis(300))
                .store_connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap()
        })
        .collect();
    let tokens = tokens_at_once(&sources);
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for two sources that connect slowly");
    assert_eq!(sources.iter().map(|s| s.stats().store_errors).sum::<u64>(), 0);
}

#[test]
fn a_store_that_never_gets_ready_costs_one_connect_timeout() {
    let calls = Arc::new(AtomicUsize::new(0));
    let never = SlowToConnect { inner: MemoryStore::new(), connect: None, ready: Default::default() };
    let source = BlockingTokenSource::builder(config(), endpoint(&calls))
        .store(never, StoreConfig::default())
        .store_connect_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    gets_its_own_token_without_waiting(&source, &calls);
}

#[test]
fn a_discarded_token_is_forgotten_by_the_store_and_no_peer_adopts_it() {
    let calls = Arc::new(AtomicUsize::new(0));
    let store = MemoryStore::new();
    let source = || {
        BlockingTokenSource::builder(config(), endpoint(&calls))
            .store(store.clone(), StoreConfig::default())
            .build()
            .unwrap()
    };
    let first = source();
    assert_eq!(first.token().unwrap().value().expose_secret(), "tok-1");
    first.flush();
    let key = first.config().cache_key().clone();
    assert!(matches!(store.apply(&key, SystemTime::now(), &StoreOp::Read), StoreAnswer::Envelope(Some(_))));
    first.discard();
    assert!(matches!(store.apply(&key, SystemTime::now(), &StoreOp::Read), StoreAnswer::Envelope(None)));
    assert_eq!(source().token().unwrap().value().expose_secret(), "tok-2", "a peer fetches its own");
}
