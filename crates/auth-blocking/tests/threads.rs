//! Threads, renewal and shutdown, with scripted in-process endpoints
//! (closures) and no async runtime anywhere.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use auth_blocking::{BlockingTokenSource, Error, TransportError};
use auth_core::{SourceConfig, TokenError};
use http::{Request, Response};

fn config() -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", "client").client_secret("secret").build().unwrap()
}

/// A token endpoint issuing `tok-N` tokens of `lifetime` seconds after `latency`.
fn endpoint(
    calls: Arc<AtomicUsize>,
    lifetime: u64,
    latency: Duration,
) -> impl Fn(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> + Send + Sync + 'static {
    move |_request| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(latency);
        let body = format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{lifetime}}}"#);
        Ok(Response::new(body.into_bytes()))
    }
}

#[test]
fn sixteen_threads_on_a_cold_start_cause_one_token_request() {
    let calls = Arc::new(AtomicUsize::new(0));
    let source =
        BlockingTokenSource::with_seed(config(), endpoint(calls.clone(), 3600, Duration::from_millis(100)), 1).unwrap();
    let barrier = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let source = source.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                source.token().unwrap().header_value().to_str().unwrap().to_owned()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), "Bearer tok-1");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(source.stats().fetches, 1);
}

#[test]
fn renewal_runs_in_the_background_and_callers_do_not_wait() {
    let calls = Arc::new(AtomicUsize::new(0));
    // 3 s tokens: usable 2.7 s, renewed about 0.3 s before that; the renewal takes 300 ms.
    let source =
        BlockingTokenSource::with_seed(config(), endpoint(calls.clone(), 3, Duration::from_millis(300)), 2).unwrap();
    let first = source.token().unwrap();
    assert_eq!(first.header_value(), "Bearer tok-1");
    let renew_at = first.renew_at();
    std::thread::sleep(renew_at.saturating_duration_since(Instant::now()) + Duration::from_millis(150));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the background thread started the renewal");
    // The renewal is in flight (it takes 300 ms): callers get the old token
    // from the cache, without waiting on the fetch.
    let waits_before = source.stats().waits;
    let during = source.token().unwrap();
    assert_eq!(during.generation(), first.generation());
    assert_eq!(source.stats().waits, waits_before, "no caller waited on the renewal");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(source.token().unwrap().header_value(), "Bearer tok-2");
    assert_eq!(source.stats().waits, 1, "only the first call waited");
}

#[test]
fn dropping_the_last_handle_stops_the_background_thread() {
    let calls = Arc::new(AtomicUsize::new(0));
    let source = BlockingTokenSource::with_seed(config(), endpoint(calls.clone(), 2, Duration::ZERO), 3).unwrap();
    let clone = source.clone();
    source.token().unwrap();
    assert!(Arc::strong_count(&calls) > 1, "the thread holds the transport");
    drop(source);
    assert!(Arc::strong_count(&calls) > 1, "a clone still holds the source");
    drop(clone);
    // The drop joined the thread: the transport (and its Arc) is gone.
    assert_eq!(Arc::strong_count(&calls), 1);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no renewal after the handles were dropped");
}

#[test]
fn errors_reach_every_waiting_thread_and_name_the_provider_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let refusing = move |_request: Request<Vec<u8>>| -> Result<Response<Vec<u8>>, TransportError> {
        counter.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        Ok(Response::builder()
            .status(401)
            .body(br#"{"error":"invalid_client","error_description":"unknown client"}"#.to_vec())
            .unwrap())
    };
    let source = BlockingTokenSource::with_seed(config(), refusing, 4).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let source = source.clone();
            std::thread::spawn(move || source.token().unwrap_err())
        })
        .collect();
    for thread in threads {
        let error = thread.join().unwrap();
        assert_eq!(error.provider_error().unwrap().code.as_str(), "invalid_client");
        assert!(!error.to_string().contains("secret\""), "{error}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn transport_failures_are_transient_token_errors() {
    let failing = |_request: Request<Vec<u8>>| -> Result<Response<Vec<u8>>, TransportError> {
        Err(TransportError::timeout("timed out after 30s"))
    };
    let source = BlockingTokenSource::with_seed(config(), failing, 5).unwrap();
    match source.token() {
        Err(Error::Token(TokenError::Transport { timeout: true, .. })) => {}
        other => panic!("{other:?}"),
    }
}
