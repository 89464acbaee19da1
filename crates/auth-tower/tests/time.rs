//! Behaviour over time, on tokio's paused clock: background renewal,
//! backoff, Retry-After, expiry during an outage, recovery, timeouts and
//! shutdown. The token endpoint is an in-process scripted service whose
//! latency runs on the same paused clock.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use auth_core::TokenError;
use auth_tower::{AuthError, TokenSource};
use common::{config, Scripted, ScriptedEndpoint};
use http::{Request, Response};
use tokio::time::Instant;
use tower::{service_fn, Layer, ServiceExt};

const LATENCY: Duration = Duration::from_millis(200);

fn echo_api(
    source: &TokenSource,
) -> impl tower::Service<Request<String>, Response = Response<String>, Error = auth_tower::BoxError> + Clone {
    common::any_origin_bearer(source).layer(service_fn(|request: Request<String>| async move {
        let auth = request.headers()["authorization"].to_str().unwrap().to_owned();
        Ok::<_, Infallible>(Response::new(auth))
    }))
}

fn source(endpoint: &ScriptedEndpoint) -> TokenSource {
    TokenSource::builder(config("https://auth.example.com/token"), endpoint.service()).seed(7).build().unwrap()
}

/// Sends one request through `api` itself (not a clone), returning the
/// token it carried.
async fn send(
    api: &mut impl tower::Service<Request<String>, Response = Response<String>, Error = auth_tower::BoxError>,
) -> Result<String, auth_tower::BoxError> {
    let ready = api.ready().await?;
    Ok(ready.call(Request::new(String::new())).await?.into_body())
}

/// Sends one request and returns the token it carried and how long it took.
async fn call(
    api: &(impl tower::Service<Request<String>, Response = Response<String>, Error = auth_tower::BoxError> + Clone),
) -> (String, Duration) {
    let started = Instant::now();
    let response = api.clone().oneshot(Request::new(String::new())).await.unwrap();
    (response.into_body(), started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn renewal_runs_in_the_background_and_nobody_waits() {
    let endpoint = ScriptedEndpoint::new(
        vec![Scripted::token("first", 3600).latency(LATENCY), Scripted::token("second", 3600).latency(LATENCY)],
        Scripted::status(500, "unexpected"),
    );
    let source = source(&endpoint);
    let api = echo_api(&source);
    let (token, waited) = call(&api).await;
    assert_eq!(token, "Bearer first");
    assert_eq!(waited, LATENCY, "the very first call waits for the first token");

    let renew_at = Instant::from_std(source.cached().unwrap().renew_at());
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        if Instant::now() >= renew_at {
            break;
        }
        assert_eq!(call(&api).await, ("Bearer first".to_owned(), Duration::ZERO));
    }
    // At the renewal point the worker's timer starts one background fetch.
    tokio::time::sleep_until(renew_at).await;
    tokio::task::yield_now().await;
    assert_eq!(endpoint.calls(), 2, "the renewal fetch started on its own");
    // While it is in flight (200 ms), calls carry the old token and do not wait.
    for _ in 0..10 {
        assert_eq!(call(&api).await, ("Bearer first".to_owned(), Duration::ZERO));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(LATENCY).await;
    assert_eq!(call(&api).await, ("Bearer second".to_owned(), Duration::ZERO));
    assert_eq!(endpoint.calls(), 2);
    assert_eq!(source.stats().waits, 1);
}

#[tokio::test(start_paused = true)]
async fn a_500_then_200_backs_off_and_serves_the_valid_token_meanwhile() {
    let endpoint = ScriptedEndpoint::new(
        vec![Scripted::token("a", 3600), Scripted::status(500, "<h1>boom</h1>"), Scripted::token("b", 3600)],
        Scripted::status(500, "unexpected"),
    );
    let source = source(&endpoint);
    let api = echo_api(&source);
    assert_eq!(call(&api).await.0, "Bearer a");
    let renew_at = Instant::from_std(source.cached().unwrap().renew_at());
    tokio::time::sleep_until(renew_at).await;
    tokio::task::yield_now().await;
    assert_eq!(endpoint.calls(), 2);
    assert_eq!(source.stats().failures, 1, "the renewal failed");
    // Backoff: 1 s shortened by at most half. No retry before 0.5 s; the old token is served.
    tokio::time::sleep(Duration::from_millis(490)).await;
    assert_eq!(endpoint.calls(), 2, "no retry before the backoff ends");
    assert_eq!(call(&api).await, ("Bearer a".to_owned(), Duration::ZERO));
    tokio::time::sleep(Duration::from_millis(520)).await;
    assert_eq!(endpoint.calls(), 3, "retried once the backoff ended");
    assert_eq!(call(&api).await.0, "Bearer b");
}

#[tokio::test(start_paused = true)]
async fn a_429_retry_after_is_honoured() {
    let endpoint = ScriptedEndpoint::new(
        vec![
            Scripted::token("a", 3600),
            Scripted::status(429, "slow down").retry_after(30),
            Scripted::token("b", 3600),
        ],
        Scripted::status(500, "unexpected"),
    );
    let source = source(&endpoint);
    let api = echo_api(&source);
    assert_eq!(call(&api).await.0, "Bearer a");
    let renew_at = Instant::from_std(source.cached().unwrap().renew_at());
    tokio::time::sleep_until(renew_at).await;
    tokio::task::yield_now().await;
    assert_eq!(endpoint.calls(), 2);
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(endpoint.calls(), 2, "Retry-After: 30 is honoured");
    assert_eq!(call(&api).await.0, "Bearer a");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(endpoint.calls(), 3);
    assert_eq!(call(&api).await.0, "Bearer b");
}

#[tokio::test(start_paused = true)]
async fn an_outage_surfaces_only_when_the_token_is_truly_expired_then_recovers() {
    let endpoint = ScriptedEndpoint::new(vec![Scripted::token("a", 100)], Scripted::status(503, "maintenance"));
    let source = source(&endpoint);
    let api = echo_api(&source);
    assert_eq!(call(&api).await.0, "Bearer a");
    let usable_until = Instant::from_std(source.cached().unwrap().usable_until());
    // Until then every call is served with the old token, while renewals fail.
    while Instant::now() + Duration::from_secs(1) < usable_until {
        assert_eq!(call(&api).await, ("Bearer a".to_owned(), Duration::ZERO));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(endpoint.calls() > 2, "renewal was retried during the outage");
    tokio::time::sleep_until(usable_until).await;
    // Now the error surfaces, at once, typed, with the status.
    let started = Instant::now();
    let error = api.clone().oneshot(Request::new(String::new())).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    match error.downcast_ref::<AuthError>() {
        Some(AuthError::Token(TokenError::Status { status: 503, .. })) => {}
        other => panic!("{other:?}"),
    }
    // The endpoint heals; after the backoff the next call gets a new token.
    endpoint.push(Scripted::token("healed", 3600));
    tokio::time::sleep(Duration::from_secs(301)).await;
    assert_eq!(call(&api).await.0, "Bearer healed");
}

#[tokio::test(start_paused = true)]
async fn a_slow_token_endpoint_times_out() {
    let endpoint = ScriptedEndpoint::new(
        vec![Scripted::token("late", 3600).latency(Duration::from_secs(120))],
        Scripted::token("b", 3600),
    );
    let source = TokenSource::builder(config("https://auth.example.com/token"), endpoint.service())
        .fetch_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = source.token().await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(matches!(error, AuthError::Token(TokenError::Transport { timeout: true, .. })), "{error:?}");
    assert!(error.is_transient());
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_gives_up_does_not_cancel_the_shared_fetch() {
    let endpoint = ScriptedEndpoint::new(
        vec![Scripted::token("shared", 3600).latency(Duration::from_secs(2))],
        Scripted::status(500, "x"),
    );
    let source = source(&endpoint);
    let impatient = tokio::time::timeout(Duration::from_millis(100), source.token()).await;
    assert!(impatient.is_err(), "gave up");
    let patient = source.token().await.unwrap();
    assert_eq!(patient.header_value(), "Bearer shared");
    assert_eq!(endpoint.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_stops_all_background_work() {
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("t", 60));
    let source = source(&endpoint);
    let api = echo_api(&source);
    assert_eq!(call(&api).await.0, "Bearer t");
    assert_eq!(endpoint.calls(), 1);
    // The worker holds the transport (and with it a reference to the counter).
    assert!(Arc::strong_count(&endpoint.calls) > 1);
    drop(api);
    drop(source);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(Arc::strong_count(&endpoint.calls), 1, "the worker task ended and dropped its transport");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(endpoint.calls(), 1, "no request reached the token endpoint after the handles were dropped");
}

#[tokio::test(start_paused = true)]
async fn a_restored_token_is_used_without_a_fetch_and_snapshots_round_trip() {
    use auth_core::secret::{AccessTokenValue, RefreshToken};
    use auth_core::StoredToken;
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("fetched", 3600));
    let stored = StoredToken::new(
        Some(AccessTokenValue::new("saved")),
        Duration::from_secs(600),
        Some(RefreshToken::new("r")),
        None,
    );
    let source = TokenSource::builder(config("https://auth.example.com/token"), endpoint.service())
        .restore(stored)
        .build()
        .unwrap();
    let api = echo_api(&source);
    assert_eq!(call(&api).await, ("Bearer saved".to_owned(), Duration::ZERO));
    assert_eq!(endpoint.calls(), 0);
    tokio::time::sleep(Duration::from_secs(100)).await;
    let snapshot = source.snapshot().await.unwrap();
    assert_eq!(snapshot.expires_in, Duration::from_secs(500));
    assert!(snapshot.refresh_token.is_some());
}

#[tokio::test(start_paused = true)]
async fn without_background_renewal_the_first_request_past_the_renewal_point_starts_it() {
    let endpoint = ScriptedEndpoint::new(
        vec![Scripted::token("first", 3600), Scripted::token("second", 3600).latency(LATENCY)],
        Scripted::status(500, "unexpected"),
    );
    let policy = auth_core::RefreshPolicy { background: false, ..Default::default() };
    let config = auth_core::SourceConfig::builder("https://auth.example.com/token", "client-id")
        .client_secret("very-secret-client-secret")
        .refresh_policy(policy)
        .build()
        .unwrap();
    let source = TokenSource::builder(config, endpoint.service()).seed(7).build().unwrap();
    // One service, so that its reader (which skips the clock while the
    // token is fresh) is the one that sees the renewal point pass.
    let mut api = echo_api(&source);
    assert_eq!(send(&mut api).await.unwrap(), "Bearer first");
    let token = source.cached().unwrap();
    tokio::time::sleep_until(Instant::from_std(token.renew_at()) - Duration::from_secs(1)).await;
    assert_eq!(send(&mut api).await.unwrap(), "Bearer first");
    tokio::task::yield_now().await;
    assert_eq!(endpoint.calls(), 1, "no renewal before the renewal point, and none from a timer");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(endpoint.calls(), 1, "no background renewal");
    // Past the renewal point: this request still carries the old token and starts the renewal.
    assert_eq!(send(&mut api).await.unwrap(), "Bearer first");
    tokio::task::yield_now().await;
    assert_eq!(endpoint.calls(), 2, "the request past the renewal point started one renewal");
    tokio::time::sleep(LATENCY + Duration::from_millis(1)).await;
    assert_eq!(send(&mut api).await.unwrap(), "Bearer second");
    // At usable_until the old token is never sent: here the new one is in place long before.
    tokio::time::sleep_until(Instant::from_std(token.usable_until())).await;
    assert_eq!(send(&mut api).await.unwrap(), "Bearer second");
    assert_eq!(endpoint.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_is_never_sent_at_its_usable_until_through_a_long_lived_service() {
    // Every renewal fails: the token's end is reached with the same service
    // (and its cached read of the token) in use.
    let endpoint = ScriptedEndpoint::new(vec![Scripted::token("only", 100)], Scripted::status(503, "maintenance"));
    let source = source(&endpoint);
    let mut api = echo_api(&source);
    assert_eq!(send(&mut api).await.unwrap(), "Bearer only");
    let usable_until = Instant::from_std(source.cached().unwrap().usable_until());
    let mut sent = 1;
    while Instant::now() < usable_until {
        match send(&mut api).await {
            Ok(token) => assert_eq!(token, "Bearer only"),
            Err(error) => panic!("the token was still usable: {error}"),
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(sent > 300);
    assert!(send(&mut api).await.is_err(), "the expired token was not sent");
}

#[tokio::test(start_paused = true)]
async fn cache_hits_of_a_service_are_all_counted_by_the_time_it_drops() {
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("t", 3600));
    let source = source(&endpoint);
    let mut api = echo_api(&source);
    assert_eq!(send(&mut api).await.unwrap(), "Bearer t", "the first request waits for the fetch");
    for _ in 0..100 {
        assert_eq!(send(&mut api).await.unwrap(), "Bearer t");
    }
    let live = source.stats().cache_hits;
    assert!(live <= 100, "never more hits than requests: {live}");
    assert!(live >= 64, "hits are added at least every 64 requests: {live}");
    drop(api);
    let stats = source.stats();
    assert_eq!(stats.cache_hits, 100, "the rest are added when the service drops");
    assert_eq!((stats.fetches, stats.waits), (1, 1));
}

/// A token endpoint that is down until `healed_at` (tokio's clock), then
/// issues tokens.
fn outage_until(healed_at: Instant, calls: Arc<std::sync::atomic::AtomicUsize>) -> TokenSource {
    let transport = service_fn(move |_request: Request<Vec<u8>>| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let response = if Instant::now() < healed_at {
                Response::builder().status(503).body("down".to_owned())
            } else {
                Response::builder().status(200).body(r#"{"access_token":"healed","expires_in":3600}"#.to_owned())
            };
            Ok::<_, Infallible>(response.unwrap())
        }
    });
    TokenSource::builder(config("https://auth.example.com/token"), transport).seed(3).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn callers_get_a_token_within_two_seconds_after_a_thirty_minute_outage() {
    let start = Instant::now();
    let healed_at = start + Duration::from_secs(30 * 60);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let source = outage_until(healed_at, Arc::clone(&calls));
    // A caller every 100 ms, as a service under load would have.
    let recovered_at = loop {
        match source.token().await {
            Ok(token) => {
                assert_eq!(auth_core::secret::ExposeSecret::expose_secret(token.value()), "healed");
                break Instant::now();
            }
            Err(error) => assert!(error.is_transient(), "{error}"),
        }
        assert!(Instant::now() < healed_at + Duration::from_secs(60), "no recovery a minute after healing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after_healing = recovered_at.saturating_duration_since(healed_at);
    assert!(after_healing <= Duration::from_millis(2100), "first token {after_healing:?} after healing");
    // The endpoint was not hammered: about one try every 1.5-2 s.
    let tries = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!((850..=1250).contains(&tries), "{tries} token requests in 30 minutes");
}

#[tokio::test(start_paused = true)]
async fn without_callers_the_backoff_keeps_growing_during_an_outage() {
    let start = Instant::now();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let source = outage_until(start + Duration::from_secs(3600), Arc::clone(&calls));
    assert!(source.token().await.is_err());
    tokio::time::sleep(Duration::from_secs(30 * 60)).await;
    // One try only: nobody asked again, and no token exists to renew.
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_source_whose_runtime_is_not_driven_gives_a_clear_error_in_bounded_time() {
    // The source is made inside a current-thread runtime that then sits idle.
    let endpoint = ScriptedEndpoint::new(vec![], Scripted::token("t", 3600));
    let service = endpoint.service();
    let (idle, source) = std::thread::spawn(move || {
        let idle = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let source = idle.block_on(async {
            TokenSource::builder(config("https://auth.example.com/token"), service)
                .fetch_timeout(Duration::from_secs(2))
                .build()
                .unwrap()
        });
        (idle, source)
    })
    .join()
    .unwrap();
    let started = Instant::now();
    let error = source.token().await.unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(error, AuthError::Driver(auth_tower::TowerFailure::NotDriven { .. })), "{error:?}");
    assert_eq!(waited, Duration::from_secs(2) + auth_tower::WAIT_GRACE);
    let text = error.to_string();
    assert!(text.contains("not running its tasks") && text.contains("runtime"), "{text}");
    assert_eq!(endpoint.calls(), 0);
    drop(source);
    idle.shutdown_background();
}

#[tokio::test(start_paused = true)]
async fn a_transport_that_panics_fails_the_fetch_and_the_source_lives_on() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let transport = service_fn(move |_request: Request<Vec<u8>>| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            if n == 0 {
                panic!("transport bug 42");
            }
            Ok::<_, Infallible>(Response::new(r#"{"access_token":"after","expires_in":3600}"#.to_owned()))
        }
    });
    let source = TokenSource::builder(config("https://auth.example.com/token"), transport).build().unwrap();
    let error = source.token().await.unwrap_err();
    assert!(error.to_string().contains("transport bug 42"), "{error}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(source.token().await.is_ok(), "the worker survived and retried");
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_fails_says_so_instead_of_blaming_the_runtime() {
    /// A transport whose clone (made by the worker for each fetch) panics.
    struct BadClone;
    impl Clone for BadClone {
        fn clone(&self) -> Self {
            panic!("transport bug in clone");
        }
    }
    impl tower::Service<Request<Vec<u8>>> for BadClone {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;
        fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Request<Vec<u8>>) -> Self::Future {
            std::future::ready(Ok(Response::new(String::new())))
        }
    }
    let source = TokenSource::builder(config("https://auth.example.com/token"), BadClone).build().unwrap();
    let error = source.token().await.unwrap_err();
    assert!(
        matches!(&error, AuthError::WorkerFailed(message) if message.contains("transport bug in clone")),
        "{error:?}"
    );
    let again = source.token().await.unwrap_err();
    assert!(matches!(again, AuthError::WorkerFailed(_)), "{again:?}");
    assert!(!again.to_string().contains("runtime"), "{again}");
}
