//! The drivers' OpenTelemetry metrics (feature `opentelemetry`), read back
//! from the SDK's in-memory exporter after a scripted scenario: each
//! instrument reports what happened, nothing is recorded for requests that
//! have a settled token, and no attribute holds a secret.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auth_core::secret::ExposeSecret;
use auth_core::SourceConfig;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

fn config() -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", "metrics-client")
        .client_secret("the-secret")
        .build()
        .unwrap()
}

/// A meter provider whose metrics are read back in memory.
fn provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
    (provider, exporter)
}

/// Every data point exported, as `name{attributes} value` (a counter's sum,
/// a histogram's count), sorted.
fn points(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> Vec<String> {
    provider.force_flush().unwrap();
    let mut points = Vec::new();
    let Some(latest) = exporter.get_finished_metrics().unwrap().pop() else { return points };
    for scope in latest.scope_metrics() {
        for metric in scope.metrics() {
            let name = metric.name();
            let attributes = |attributes: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                let mut pairs: Vec<String> = attributes.map(|kv| format!("{}={}", kv.key, kv.value)).collect();
                pairs.sort();
                pairs.join(",")
            };
            match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    for point in sum.data_points() {
                        points.push(format!("{name}{{{}}} {}", attributes(&mut point.attributes()), point.value()));
                    }
                }
                AggregatedMetrics::U64(MetricData::Gauge(gauge)) => {
                    for point in gauge.data_points() {
                        points.push(format!("{name}{{{}}} {}", attributes(&mut point.attributes()), point.value()));
                    }
                }
                AggregatedMetrics::F64(MetricData::Histogram(histogram)) => {
                    for point in histogram.data_points() {
                        points.push(format!("{name}{{{}}} {}", attributes(&mut point.attributes()), point.count()));
                    }
                }
                other => panic!("unexpected data for {name}: {other:?}"),
            }
        }
    }
    points.sort();
    points
}

/// No exported text holds a token or the client secret.
fn holds_no_secret(points: &[String]) {
    for point in points {
        assert!(!["tok-", "the-secret", "app-secret"].iter().any(|secret| point.contains(secret)), "{point}");
    }
}

type Endpoint = tower::util::BoxCloneSyncService<http::Request<Vec<u8>>, http::Response<String>, Infallible>;

/// Numbered 2 s tokens (`tok-N`).
fn endpoint(calls: &Arc<AtomicUsize>) -> Endpoint {
    let calls = Arc::clone(calls);
    tower::util::BoxCloneSyncService::new(tower::service_fn(move |_request: http::Request<Vec<u8>>| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, Infallible>(http::Response::new(format!(r#"{{"access_token":"tok-{n}","expires_in":2}}"#))) }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_source_reports_its_first_token_a_renewal_and_a_401() {
    let (provider, exporter) = provider();
    let calls = Arc::new(AtomicUsize::new(0));
    let source =
        auth_tower::TokenSource::builder(config(), endpoint(&calls)).meter(&provider.meter("auth")).build().unwrap();
    let first = source.token().await.unwrap();
    // Requests with the settled token record nothing.
    for _ in 0..1000 {
        source.token().await.unwrap();
    }
    let after_first = points(&provider, &exporter);
    assert!(
        after_first.contains(
            &"auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=no_token} 1".to_owned()
        ),
        "{after_first:#?}"
    );
    // The background renewal (at 70-80% of 2 s), then a 401 to the renewed token.
    while source.token().await.unwrap().generation() == first.generation() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let renewed = source.token().await.unwrap();
    source.invalidate(renewed.generation());
    let third = source.token().await.unwrap();
    assert_eq!(third.value().expose_secret(), "tok-3");
    source.flush().await;
    let points = points(&provider, &exporter);
    for expected in [
        "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=no_token} 1",
        "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=renewal} 1",
        "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=unauthorized} 1",
        "auth.token.request.duration{auth.outcome=ok,auth.reason=renewal} 1",
        "auth.token.lifetime{auth.token.origin=fetched} 3",
        "auth.token.replaced.remaining{auth.token.origin=fetched} 1",
        "auth.unauthorized{auth.outcome=invalidated} 1",
    ] {
        assert!(points.contains(&expected.to_owned()), "{expected} missing from {points:#?}");
    }
    // The first caller waited (and the one after the 401, if it asked
    // before the new token came); the renewal kept everyone served.
    let waited = points.iter().find(|p| p.starts_with("auth.token.wait.duration{auth.outcome=token}"));
    assert!(waited.is_some_and(|p| p.ends_with(" 1") || p.ends_with(" 2")), "{points:#?}");
    holds_no_secret(&points);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_blocking_source_reports_a_refused_request_and_its_waiter_and_nothing_without_a_meter() {
    let (provider, exporter) = provider();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let transport = move |_request: http::Request<Vec<u8>>| {
        counted.fetch_add(1, Ordering::SeqCst);
        let mut response = http::Response::new(br#"{"error":"invalid_client"}"#.to_vec());
        *response.status_mut() = http::StatusCode::UNAUTHORIZED;
        Ok::<_, auth_blocking::TransportError>(response)
    };
    let source = auth_blocking::BlockingTokenSource::builder(config(), transport)
        .meter_by_cache_key(&provider.meter("auth"))
        .build()
        .unwrap();
    assert!(source.token().is_err(), "the provider refused");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let points = points(&provider, &exporter);
    let key = format!("auth.cache_key={}", config().cache_key().fingerprint());
    let expected = [
        format!(
            "auth.token.request.duration{{{key},auth.outcome=refused,auth.reason=no_token}} 1"
        ),
        format!(
            "auth.token.requests{{{key},auth.error.code=invalid_client,auth.grant=client_credentials,auth.outcome=refused,auth.reason=no_token}} 1"
        ),
        format!("auth.token.wait.duration{{{key},auth.outcome=error}} 1"),
    ];
    assert_eq!(points, expected, "exactly these");
    holds_no_secret(&points);

    // A source without a meter records nothing.
    let (quiet, exporter) = self::provider();
    let plain = auth_blocking::BlockingTokenSource::builder(config(), |_request: http::Request<Vec<u8>>| {
        Ok::<_, auth_blocking::TransportError>(http::Response::new(
            br#"{"access_token":"tok-9","expires_in":60}"#.to_vec(),
        ))
    })
    .build()
    .unwrap();
    plain.token().unwrap();
    let _meter = quiet.meter("auth");
    assert!(self::points(&quiet, &exporter).is_empty());
}

/// A store that fails while `down` is set.
#[derive(Clone, Default)]
struct Flaky {
    inner: auth_core::store::MemoryStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl Flaky {
    /// The memory store's answer, or an error while `down` is set.
    fn answer(
        &self,
        key: &auth_core::CacheKey,
        now: std::time::SystemTime,
        op: &auth_core::store::StoreOp,
    ) -> Result<auth_core::store::StoreAnswer, auth_core::store::StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(auth_core::store::StoreError::new("down")),
            false => Ok(self.inner.apply(key, now, op)),
        }
    }
}

#[async_trait::async_trait]
impl auth_core::store::TokenStore for Flaky {
    async fn execute(
        &self,
        key: &auth_core::CacheKey,
        now: std::time::SystemTime,
        op: &auth_core::store::StoreOp,
    ) -> Result<auth_core::store::StoreAnswer, auth_core::store::StoreError> {
        self.answer(key, now, op)
    }
}

impl auth_core::store::BlockingTokenStore for Flaky {
    fn execute(
        &self,
        key: &auth_core::CacheKey,
        now: std::time::SystemTime,
        op: &auth_core::store::StoreOp,
    ) -> Result<auth_core::store::StoreAnswer, auth_core::store::StoreError> {
        self.answer(key, now, op)
    }
}

/// What the scripted scenario does with a token source, whichever driver
/// runs it.
trait Scripted {
    fn token(&self) -> Result<Arc<auth_core::AccessToken>, String>;
    /// A 401 to `generation`, and the token to replay with.
    fn reject(&self, generation: auth_core::Generation) -> Result<Option<Arc<auth_core::AccessToken>>, String>;
    fn accept(&self, generation: auth_core::Generation);
    fn flush(&self);
}

struct Async(tokio::runtime::Runtime, auth_tower::TokenSource);

impl Scripted for Async {
    fn token(&self) -> Result<Arc<auth_core::AccessToken>, String> {
        self.0.block_on(self.1.token()).map_err(|e| e.to_string())
    }
    fn reject(&self, generation: auth_core::Generation) -> Result<Option<Arc<auth_core::AccessToken>>, String> {
        self.0.block_on(self.1.reject(generation)).map_err(|e| e.to_string())
    }
    fn accept(&self, generation: auth_core::Generation) {
        self.1.accept(generation);
    }
    fn flush(&self) {
        self.0.block_on(self.1.flush());
    }
}

impl Scripted for auth_blocking::BlockingTokenSource {
    fn token(&self) -> Result<Arc<auth_core::AccessToken>, String> {
        auth_blocking::BlockingTokenSource::token(self).map_err(|e| e.to_string())
    }
    fn reject(&self, generation: auth_core::Generation) -> Result<Option<Arc<auth_core::AccessToken>>, String> {
        auth_blocking::BlockingTokenSource::reject(self, generation).map_err(|e| e.to_string())
    }
    fn accept(&self, generation: auth_core::Generation) {
        auth_blocking::BlockingTokenSource::accept(self, generation);
    }
    fn flush(&self) {
        auth_blocking::BlockingTokenSource::flush(self);
    }
}

/// A budget of five token requests a day, shared through `store`.
fn budgeted() -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", "metrics-client")
        .client_secret("the-secret")
        .max_fetches_per_day(5)
        .build()
        .unwrap()
}

/// The scenario of issue 33, the same for every driver: the first token,
/// a background renewal, a 401 answered with a replay, a store outage and
/// its recovery, a spent budget. Returns the exported points.
fn scenario(
    source: &impl Scripted,
    store: &Flaky,
    calls: &AtomicUsize,
    metrics: &(SdkMeterProvider, InMemoryMetricExporter),
) -> Vec<String> {
    let first = source.token().unwrap();
    source.accept(first.generation());
    // The background renewal (at 70-80% of the 2 s).
    let renewed = loop {
        let token = source.token().unwrap();
        if token.generation() != first.generation() {
            break token;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    source.accept(renewed.generation());
    let replayed = source.reject(renewed.generation()).unwrap().expect("a token to replay with");
    source.accept(replayed.generation());
    source.flush();
    // The store goes down: the next token is fetched without it.
    store.down.store(true, Ordering::SeqCst);
    let alone = source.reject(replayed.generation()).unwrap().expect("fetched without the store");
    source.accept(alone.generation());
    source.flush();
    assert!(points(&metrics.0, &metrics.1).contains(&"auth.store.available{} 0".to_owned()));
    // It comes back: the next token goes through it again.
    store.down.store(false, Ordering::SeqCst);
    let back = source.reject(alone.generation()).unwrap().expect("fetched through the store again");
    source.accept(back.generation());
    source.flush();
    // Five requests made: the sixth does not fit in the day's budget.
    let error = source.reject(back.generation()).unwrap_err();
    assert!(error.contains("budget"), "{error}");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    // A caller refused at once may hear before the refusal is recorded
    // (the next step of the source records it): flushing waits for it.
    source.flush();
    points(&metrics.0, &metrics.1)
}

/// What the scenario reports, whichever driver ran it: exactly these
/// counts and last values (histograms: how many were recorded).
fn assert_scenario(points: &[String]) {
    let counted: Vec<&str> = points
        .iter()
        .map(String::as_str)
        .filter(|p| !p.contains(".duration{") && !p.starts_with("auth.store.operations{"))
        .collect();
    assert_eq!(
        counted,
        [
            "auth.replays{} 3",
            "auth.store.available{} 1",
            // Each request's lease, the sixth's too (given back unused).
            "auth.store.leases{auth.outcome=won} 5",
            // The sixth request: this process alone made five.
            "auth.token.budget.refusals{auth.budget.shared=false} 1",
            "auth.token.budget.remaining{auth.budget.shared=false} 0",
            // The store counted four: the fourth was made while it was down.
            "auth.token.budget.remaining{auth.budget.shared=true} 1",
            "auth.token.budget.spent{auth.budget.shared=false} 5",
            "auth.token.budget.spent{auth.budget.shared=true} 4",
            "auth.token.lifetime{auth.token.origin=fetched} 5",
            // Only the renewal replaced a token with life left (a 401 withdraws it).
            "auth.token.replaced.remaining{auth.token.origin=fetched} 1",
            "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=no_token} 1",
            "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=renewal} 1",
            "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=unauthorized} 3",
            "auth.unauthorized{auth.outcome=invalidated} 4",
        ],
        "{points:#?}"
    );
    for (operation, outcome) in [
        ("read", "ok"),
        ("acquire_lease", "ok"),
        ("write", "ok"),
        ("spend_budget", "ok"),
        ("invalidate", "ok"),
        ("read", "error"),
        ("invalidate", "error"),
    ] {
        let prefix = format!("auth.store.operations{{auth.outcome={outcome},auth.store.operation={operation}}} ");
        assert!(points.iter().any(|p| p.starts_with(&prefix)), "{prefix} missing from {points:#?}");
    }
    holds_no_secret(points);
}

#[test]
fn the_scripted_scenario_reports_the_same_in_the_async_driver() {
    let metrics = provider();
    let (calls, store) = (Arc::new(AtomicUsize::new(0)), Flaky::default());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let source = runtime.block_on(async {
        auth_tower::TokenSource::builder(budgeted(), endpoint(&calls))
            .store(store.clone(), auth_core::store::StoreConfig::default())
            .meter(&metrics.0.meter("auth"))
            .build()
            .unwrap()
    });
    let points = scenario(&Async(runtime, source), &store, &calls, &metrics);
    assert_scenario(&points);
}

#[test]
fn the_scripted_scenario_reports_the_same_in_the_blocking_driver() {
    let metrics = provider();
    let (calls, store) = (Arc::new(AtomicUsize::new(0)), Flaky::default());
    let counted = Arc::clone(&calls);
    let transport = move |_request: http::Request<Vec<u8>>| {
        let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
        Ok::<_, auth_blocking::TransportError>(http::Response::new(
            format!(r#"{{"access_token":"tok-{n}","expires_in":2}}"#).into_bytes(),
        ))
    };
    let source = auth_blocking::BlockingTokenSource::builder(budgeted(), transport)
        .store(store.clone(), auth_core::store::StoreConfig::default())
        .meter(&metrics.0.meter("auth"))
        .build()
        .unwrap();
    let points = scenario(&source, &store, &calls, &metrics);
    assert_scenario(&points);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_sharing_a_store_report_its_operations_leases_and_health() {
    let (provider, exporter) = provider();
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Flaky::default();
    let meter = provider.meter("auth");
    let source = |store: Flaky| {
        auth_tower::TokenSource::builder(config(), endpoint(&calls))
            .store(store, auth_core::store::StoreConfig::default())
            .meter(&meter)
            .build()
            .unwrap()
    };
    let (a, b) = (source(store.clone()), source(store.clone()));
    a.token().await.unwrap();
    b.token().await.unwrap();
    a.flush().await;
    b.flush().await;
    let points = points(&provider, &exporter);
    for expected in [
        "auth.store.leases{auth.outcome=won} 1",
        "auth.token.lifetime{auth.token.origin=adopted} 1",
        "auth.token.lifetime{auth.token.origin=fetched} 1",
        "auth.store.operations{auth.outcome=ok,auth.store.operation=acquire_lease} 1",
        "auth.store.operations{auth.outcome=ok,auth.store.operation=write} 1",
    ] {
        assert!(points.contains(&expected.to_owned()), "{expected} missing from {points:#?}");
    }
    let reads =
        points.iter().find(|p| p.starts_with("auth.store.operations{auth.outcome=ok,auth.store.operation=read}"));
    assert!(reads.is_some(), "{points:#?}");
    assert!(points
        .iter()
        .any(|p| p.starts_with("auth.store.operation.duration{auth.outcome=ok,auth.store.operation=read}")));

    // The store goes down: a fresh source's operations fail, and the store is said unavailable (0).
    store.down.store(true, Ordering::SeqCst);
    let c = source(store.clone());
    c.token().await.unwrap();
    c.flush().await;
    let points = self::points(&provider, &exporter);
    assert!(
        points.iter().any(|p| p.starts_with("auth.store.operations{auth.outcome=error,auth.store.operation=read}")),
        "{points:#?}"
    );
    assert!(
        points.contains(&"auth.store.available{} 1".to_owned())
            || points.iter().any(|p| p.starts_with("auth.store.available")),
        "{points:#?}"
    );
    holds_no_secret(&points);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reqwest_client_records_through_its_token_source() {
    let (provider, exporter) = provider();
    let server =
        auth_testkit::Provider::start(auth_testkit::ProviderConfig::new().client("app", "app-secret")).unwrap();
    let client = auth_reqwest::AuthClient::builder()
        .client_credentials(server.token_url(), "app")
        .client_secret("app-secret")
        .api_origin(server.url())
        .meter(&provider.meter("auth"))
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(client.get(server.api_url("x")).send().await.unwrap().status(), 200);
    }
    server.revoke_all();
    assert_eq!(client.get(server.api_url("x")).send().await.unwrap().status(), 200);
    let points = points(&provider, &exporter);
    for expected in [
        "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=no_token} 1",
        "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=unauthorized} 1",
        "auth.unauthorized{auth.outcome=invalidated} 1",
        "auth.replays{} 1",
    ] {
        assert!(points.contains(&expected.to_owned()), "{expected} missing from {points:#?}");
    }
    holds_no_secret(&points);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_reports_what_was_spent_and_what_remains() {
    let (provider, exporter) = provider();
    let calls = Arc::new(AtomicUsize::new(0));
    let config = SourceConfig::builder("https://auth.example.com/token", "metrics-client")
        .client_secret("the-secret")
        .max_fetches_per_day(2)
        .build()
        .unwrap();
    let source =
        auth_tower::TokenSource::builder(config, endpoint(&calls)).meter(&provider.meter("auth")).build().unwrap();
    let first = source.token().await.unwrap();
    source.accept(first.generation());
    let second = source.reject(first.generation()).await.unwrap().expect("a renewed token");
    source.accept(second.generation());
    // A third request does not fit in the budget of two.
    let error = source.reject(second.generation()).await.unwrap_err();
    assert!(error.to_string().contains("budget"), "{error}");
    source.flush().await;
    let points = points(&provider, &exporter);
    for expected in [
        "auth.token.budget.spent{auth.budget.shared=false} 2",
        "auth.token.budget.remaining{auth.budget.shared=false} 0",
        "auth.token.budget.refusals{auth.budget.shared=false} 1",
        "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=unauthorized} 1",
    ] {
        assert!(points.contains(&expected.to_owned()), "{expected} missing from {points:#?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    holds_no_secret(&points);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_nonce_retries_and_a_replays_outcome_are_counted() {
    let (provider, exporter) = provider();
    let server = auth_testkit::Provider::start(
        auth_testkit::ProviderConfig::new()
            .client("app", "app-secret")
            .dpop_nonces(true)
            .api_dpop_nonce(true)
            .require_dpop(true),
    )
    .unwrap();
    let client = auth_reqwest::AuthClient::builder()
        .client_credentials(server.token_url(), "app")
        .client_secret("app-secret")
        .dpop(auth_core::dpop::Dpop::generate().unwrap())
        .api_origin(server.url())
        .meter(&provider.meter("auth"))
        .build()
        .unwrap();
    assert_eq!(client.get(server.api_url("x")).send().await.unwrap().status(), 200);
    server.revoke_all();
    assert_eq!(client.post(server.api_url("x")).body("order=1").send().await.unwrap().status(), 200);
    let points = points(&provider, &exporter);
    for expected in [
        "auth.replays{} 1",
        "auth.replay.outcomes{auth.outcome=accepted} 1",
        "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=no_token} 1",
        "auth.token.requests{auth.grant=client_credentials,auth.outcome=ok,auth.reason=unauthorized} 1",
    ] {
        assert!(points.contains(&expected.to_owned()), "{expected} missing from {points:#?}");
    }
    for endpoint in ["api", "token"] {
        let prefix = format!("auth.dpop.nonce_retries{{auth.endpoint={endpoint}}} ");
        assert!(points.iter().any(|p| p.starts_with(&prefix)), "{prefix} missing from {points:#?}");
    }
    holds_no_secret(&points);
}
