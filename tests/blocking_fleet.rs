//! Shared by the store tests: blocking token sources, each with its own
//! store handle, asking for a token at once from threads of their own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_blocking::{BlockingTokenSource, BlockingTokenStore, TransportError};
use auth_core::secret::ExposeSecret;
use auth_core::store::StoreConfig;
use auth_core::SourceConfig;

/// The store timeout of the sources that test sharing.
pub const SHARING_STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// A token endpoint that takes `latency`, counts its calls in `calls` and
/// numbers its tokens (`tok-N`), each valid `expires_in` seconds.
fn endpoint(
    calls: &Arc<AtomicUsize>,
    latency: Duration,
    expires_in: u64,
) -> impl Fn(http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TransportError> + Send + 'static {
    let calls = Arc::clone(calls);
    move |_request| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(latency);
        Ok(http::Response::new(format!(r#"{{"access_token":"tok-{n}","expires_in":{expires_in}}}"#).into_bytes()))
    }
}

/// `sources` blocking sources on stores made by `store`, against a token
/// endpoint that takes `latency` and numbers its tokens: the tokens each
/// source got, and how many token requests the endpoint received.
pub fn tokens_of_blocking_sources<S: BlockingTokenStore>(
    config: &SourceConfig,
    sources: usize,
    latency: Duration,
    store: impl Fn() -> S,
) -> (Vec<String>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let sources: Vec<BlockingTokenSource> = (0..sources)
        .map(|_| {
            BlockingTokenSource::builder(config.clone(), endpoint(&calls, latency, 3600))
                .store(store(), StoreConfig::default())
                // Sharing is what is tested here, not the fallback of a
                // slow store: a loaded test machine must not turn it on.
                .store_timeout(SHARING_STORE_TIMEOUT)
                .store_connect_timeout(SHARING_STORE_TIMEOUT)
                .build()
                .unwrap()
        })
        .collect();
    let tokens = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|s| scope.spawn(move || s.token().unwrap().value().expose_secret().to_owned()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (tokens, calls.load(Ordering::SeqCst))
}

/// The budget operations on stores made by `store` (each call a handle of
/// its own, as separate processes have): counted in a rolling window,
/// given back, and under contention exactly `limit` granted.
pub fn check_budget_protocol<S: BlockingTokenStore>(config: &SourceConfig, store: impl Fn() -> S + Sync) {
    use auth_core::store::{BudgetAnswer, StoreAnswer, StoreOp};
    let key = config.cache_key();
    let day = auth_core::FETCH_BUDGET_WINDOW;
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap())
        .unwrap();
    let spend = |store: &S, at: u64, slot: &str| match store
        .execute(
            key,
            SystemTime::now(),
            &StoreOp::SpendBudget { limit: 2, window: day, at_unix_ms: at, slot: slot.to_owned() },
        )
        .unwrap()
    {
        StoreAnswer::Budget(answer) => answer,
        other => panic!("{other:?}"),
    };
    let (a, b) = (store(), store());
    assert_eq!(spend(&a, t0, "a-1"), BudgetAnswer::Granted { spent: 1 });
    assert_eq!(spend(&b, t0 + 1_000, "b-1"), BudgetAnswer::Granted { spent: 2 });
    assert_eq!(spend(&a, t0 + 2_000, "a-2"), BudgetAnswer::Spent { next_at_unix_ms: t0 + 86_400_000 });
    b.execute(key, SystemTime::now(), &StoreOp::RefundBudget { slot: "a-1".to_owned() }).unwrap();
    assert_eq!(spend(&b, t0 + 3_000, "b-2"), BudgetAnswer::Granted { spent: 2 }, "a-1 was given back");
    assert_eq!(spend(&a, t0 + 4_000, "a-3"), BudgetAnswer::Spent { next_at_unix_ms: t0 + 1_000 + 86_400_000 });
    assert_eq!(spend(&a, t0 + 1_000 + 86_400_000, "a-4"), BudgetAnswer::Granted { spent: 2 }, "b-1 left the window");
    // Eight handles at once on a fresh key: exactly three granted.
    let other = SourceConfig::builder("https://auth.example.com/token", "budget-contention")
        .client_secret("s")
        .build()
        .unwrap();
    let granted = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for i in 0..8 {
            let (store, other, granted) = (store(), &other, &granted);
            scope.spawn(move || {
                let op = StoreOp::SpendBudget { limit: 3, window: day, at_unix_ms: t0, slot: format!("s-{i}") };
                if matches!(
                    store.execute(other.cache_key(), SystemTime::now(), &op).unwrap(),
                    StoreAnswer::Budget(BudgetAnswer::Granted { .. })
                ) {
                    granted.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(granted.load(Ordering::SeqCst), 3);
}

/// Blocking sources sharing a budget of one fetch a day through stores
/// made by `store`: the fleet makes that one fetch, serves its token while
/// it lasts, then every source says the budget is spent (counted across
/// the fleet) and when the next fetch is allowed; no second request.
pub fn check_shared_budget<S: BlockingTokenStore>(store: impl Fn() -> S) {
    let config = SourceConfig::builder("https://auth.example.com/token", "budget")
        .client_secret("s")
        .max_fetches_per_day(1)
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let sources: Vec<BlockingTokenSource> = (0..3)
        .map(|_| {
            BlockingTokenSource::builder(config.clone(), endpoint(&calls, Duration::ZERO, 2))
                .store(store(), StoreConfig::default())
                // Sharing is what is tested here, not the fallback of a
                // slow store: a loaded test machine must not turn it on.
                .store_timeout(SHARING_STORE_TIMEOUT)
                .store_connect_timeout(SHARING_STORE_TIMEOUT)
                .build()
                .unwrap()
        })
        .collect();
    for source in &sources {
        assert_eq!(source.token().unwrap().value().expose_secret(), "tok-1");
    }
    std::thread::sleep(Duration::from_millis(2_100));
    for source in &sources {
        let error = source.token().unwrap_err().to_string();
        assert!(error.contains("token budget is spent: 1 token requests in the last 24 hours"), "{error}");
        assert!(error.contains("the next is allowed in 23h"), "{error}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch in the day for the whole fleet");
    assert!(sources.iter().map(|s| s.stats().budget_refusals).sum::<u64>() >= 3);
}
