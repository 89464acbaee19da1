//! Token sources on one host sharing a file store: each source has its own
//! `FileStore` on the same directory, as separate processes would.

mod blocking_fleet;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auth_core::secret::ExposeSecret;
use auth_core::store::StoreConfig;
use auth_core::SourceConfig;
use auth_store::FileStore;

fn config() -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", "fleet").client_secret("s").build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_async_sources_on_one_directory_make_one_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let endpoint = tower::service_fn(move |_request: http::Request<Vec<u8>>| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<_, Infallible>(http::Response::new(format!(r#"{{"access_token":"tok-{n}","expires_in":3600}}"#)))
        }
    });
    let sources: Vec<auth_tower::TokenSource> = (0..8)
        .map(|_| {
            let store = FileStore::open(dir.path().join("tokens")).unwrap();
            auth_tower::TokenSource::builder(config(), endpoint.clone())
                .store(store, StoreConfig::default())
                .build()
                .unwrap()
        })
        .collect();
    let mut calls_in_flight = tokio::task::JoinSet::new();
    for source in &sources {
        let source = source.clone();
        calls_in_flight.spawn(async move { source.token().await.map(|t| t.value().expose_secret().to_owned()) });
    }
    while let Some(outcome) = calls_in_flight.join_next().await {
        assert_eq!(outcome.unwrap().unwrap(), "tok-1");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch for eight sources");
    // A source started later (the next process) adopts the stored token.
    let late = auth_tower::TokenSource::builder(config(), endpoint)
        .store(FileStore::open(dir.path().join("tokens")).unwrap(), StoreConfig::default())
        .build()
        .unwrap();
    assert_eq!(late.token().await.unwrap().value().expose_secret(), "tok-1");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn blocking_sources_on_one_directory_make_one_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let (tokens, calls) = blocking_fleet::tokens_of_blocking_sources(&config(), 4, Duration::from_millis(100), || {
        FileStore::open(dir.path()).unwrap()
    });
    assert!(tokens.iter().all(|t| t == "tok-1"), "{tokens:?}");
    assert_eq!(calls, 1);
}

#[test]
fn the_budget_protocol_on_files() {
    let dir = tempfile::tempdir().unwrap();
    blocking_fleet::check_budget_protocol(&config(), || FileStore::open(dir.path()).unwrap());
}

#[test]
fn a_fleet_on_one_directory_shares_its_fetch_budget() {
    let dir = tempfile::tempdir().unwrap();
    blocking_fleet::check_shared_budget(|| FileStore::open(dir.path()).unwrap());
}

#[test]
fn a_large_budget_is_kept_whole_in_its_file() {
    use auth_core::store::{BudgetAnswer, BudgetLog, StoreAnswer, StoreOp};
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path()).unwrap();
    let key = config().cache_key().clone();
    let (t0, day, limit) = (1_800_000_000_000u64, auth_core::FETCH_BUDGET_WINDOW, 6_000);
    let slot = |at: u64| format!("{:032x}-{at}", u128::MAX);
    // 5,999 requests already counted: far more than a token record may
    // hold (256 KiB).
    let mut log = BudgetLog::default();
    for at in t0..t0 + 5_999 {
        let spent = u32::try_from(at - t0 + 1).unwrap();
        assert_eq!(log.spend(limit, day, at, &slot(at)), BudgetAnswer::Granted { spent });
    }
    let text = log.encode();
    assert!(text.len() > 256 * 1024);
    std::fs::write(dir.path().join(format!("{}.budget", key.fingerprint())), text).unwrap();
    let spend = |at: u64| {
        let op = StoreOp::SpendBudget { limit, window: day, at_unix_ms: at, slot: slot(at) };
        match store.execute_at(&key, std::time::SystemTime::now(), &op).unwrap() {
            StoreAnswer::Budget(answer) => answer,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(spend(t0 + 5_999), BudgetAnswer::Granted { spent: 6_000 }, "the 6,000th");
    assert_eq!(spend(t0 + 6_000), BudgetAnswer::Spent { next_at_unix_ms: t0 + 86_400_000 }, "all were counted");
}
