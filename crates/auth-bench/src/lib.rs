//! Shared pieces of the benchmarks: the contenders (every one wraps the
//! same no-op inner service and sees the same requests), and the figure
//! files that `cargo xtask bench` gathers into its report.
//!
//! ```
//! let request = auth_bench::request();
//! assert_eq!(request.uri(), auth_bench::API_URI);
//! ```

#![deny(missing_docs)]

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use auth_core::SourceConfig;
use auth_tower::{Auth, AuthLayer, TokenSource};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, Uri};
use tower::{service_fn, Layer, Service};
use tower_http::set_header::{SetRequestHeader, SetRequestHeaderLayer};

/// The URI every benchmark request goes to.
pub const API_URI: &str = "https://api.example.com/v1/items";

/// A realistic bearer token: a JWT-sized (about 800 bytes) opaque string.
pub fn token_value() -> String {
    let mut token = String::from("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.");
    while token.len() < 800 {
        token.push_str("eyJzdWIiOiJjbGllbnQtaWQiLCJhdWQiOiJhcGkifQ");
    }
    token
}

/// The request every contender handles: a GET with no body. Its URI is
/// parsed once; each request clones it (a reference count), so that the
/// harness adds as little as possible to every contender.
pub fn request() -> Request<()> {
    static URI: std::sync::OnceLock<Uri> = std::sync::OnceLock::new();
    let mut request = Request::new(());
    *request.uri_mut() = URI.get_or_init(|| Uri::from_static(API_URI)).clone();
    request
}

/// The inner service of every contender: answers at once, allocates nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Noop;

impl<B> Service<Request<B>> for Noop {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

/// `Bearer <token>` as a sensitive header value.
pub fn bearer_header() -> HeaderValue {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {}", token_value())).unwrap_or(HeaderValue::from_static("Bearer x"));
    value.set_sensitive(true);
    value
}

/// The floor: tower-http setting a static `Authorization` header.
pub fn floor() -> SetRequestHeader<Noop, HeaderValue> {
    SetRequestHeaderLayer::overriding(AUTHORIZATION, bearer_header()).layer(Noop)
}

/// A token endpoint answering with the benchmark token after `latency`,
/// counting its requests.
pub fn token_endpoint(
    calls: Arc<AtomicUsize>,
    latency: Duration,
    lifetime_secs: u64,
) -> impl Service<Request<Vec<u8>>, Response = Response<String>, Error = Infallible, Future: Send> + Clone + Send + 'static
{
    let body = format!(r#"{{"access_token":"{}","token_type":"Bearer","expires_in":{lifetime_secs}}}"#, token_value());
    service_fn(move |_request: Request<Vec<u8>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let body = body.clone();
        async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            Ok::<_, Infallible>(Response::new(body))
        }
    })
}

/// A token source on `endpoint`. Must be called inside a tokio runtime.
pub fn token_source(
    endpoint: impl Service<Request<Vec<u8>>, Response = Response<String>, Error = Infallible, Future: Send>
        + Clone
        + Send
        + 'static,
) -> TokenSource {
    let config = SourceConfig::builder("https://auth.example.com/token", "bench-client")
        .client_secret("bench-secret")
        .build()
        .unwrap_or_else(|e| panic!("benchmark configuration: {e}"));
    let builder = TokenSource::builder(config, endpoint).seed(1);
    #[cfg(feature = "opentelemetry")]
    let builder = builder.meter(&meter());
    builder.build().unwrap_or_else(|e| panic!("token source: {e}"))
}

/// A meter of an SDK meter provider exporting to memory (by default every
/// 60 s, on a thread of its own), kept for the process.
#[cfg(feature = "opentelemetry")]
fn meter() -> opentelemetry::metrics::Meter {
    use opentelemetry::metrics::MeterProvider as _;
    static PROVIDER: std::sync::OnceLock<opentelemetry_sdk::metrics::SdkMeterProvider> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
            let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build();
            opentelemetry_sdk::metrics::SdkMeterProvider::builder().with_reader(reader).build()
        })
        .meter("auth-bench")
}

/// A token source whose tokens are DPoP-bound (a new ES256 key): every
/// request through the layer carries a freshly signed proof. Must be called
/// inside a tokio runtime.
pub fn dpop_token_source() -> TokenSource {
    dpop_token_source_with(auth_core::keys::SigningKey::generate_es256().unwrap_or_else(|e| panic!("a key: {e}")))
}

/// A token source whose tokens are DPoP-bound to `key`. Must be called
/// inside a tokio runtime.
pub fn dpop_token_source_with(key: auth_core::keys::SigningKey) -> TokenSource {
    let body = format!(r#"{{"access_token":"{}","token_type":"DPoP","expires_in":3600}}"#, token_value());
    let endpoint = service_fn(move |_request: Request<Vec<u8>>| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(Response::new(body)) }
    });
    let dpop = auth_core::dpop::Dpop::new(key).unwrap_or_else(|e| panic!("a DPoP key: {e}"));
    let config = SourceConfig::builder("https://auth.example.com/token", "bench-client")
        .client_secret("bench-secret")
        .dpop(dpop)
        .build()
        .unwrap_or_else(|e| panic!("benchmark configuration: {e}"));
    TokenSource::builder(config, endpoint).seed(1).build().unwrap_or_else(|e| panic!("token source: {e}"))
}

/// `iters` requests through `service`, one after the other: the time they
/// took.
pub async fn drive<S>(mut service: S, iters: u64) -> std::time::Duration
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    use tower::ServiceExt as _;
    let started = std::time::Instant::now();
    for _ in 0..iters {
        let ready = service.ready().await.expect("the service is ready");
        std::hint::black_box(ready.call(request()).await.expect("the call succeeds"));
    }
    started.elapsed()
}

/// The library's layer over the no-op service.
pub fn ours(source: &TokenSource) -> Auth<Noop> {
    bearer_layer(source).layer(Noop)
}

/// What users write by hand: the token behind an `std::sync::Mutex`
/// (Go's oauth2 `reuseTokenSource` locks a mutex per request).
#[derive(Debug, Clone)]
pub struct MutexAuth<S> {
    inner: S,
    token: Arc<Mutex<HeaderValue>>,
}

impl MutexAuth<Noop> {
    /// A mutex-guarded token over the no-op service.
    pub fn new(token: Arc<Mutex<HeaderValue>>) -> Self {
        Self { inner: Noop, token }
    }
}

impl<S: Service<Request<B>>, B> Service<Request<B>> for MutexAuth<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let value = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone();
        request.headers_mut().insert(AUTHORIZATION, value);
        self.inner.call(request)
    }
}

/// What users write by hand: the token behind an
/// `Arc<tokio::sync::RwLock<..>>`, read in an async block.
#[derive(Debug, Clone)]
pub struct RwLockAuth<S> {
    inner: S,
    token: Arc<tokio::sync::RwLock<HeaderValue>>,
}

impl RwLockAuth<Noop> {
    /// An RwLock-guarded token over the no-op service.
    pub fn new(token: Arc<tokio::sync::RwLock<HeaderValue>>) -> Self {
        Self { inner: Noop, token }
    }
}

impl<S, B> Service<Request<B>> for RwLockAuth<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let token = Arc::clone(&self.token);
        Box::pin(async move {
            let value = token.read().await.clone();
            request.headers_mut().insert(AUTHORIZATION, value);
            inner.call(request).await
        })
    }
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

impl Figure {
    /// A figure.
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self { name: name.into(), value, unit }
    }
}

/// Whether the benchmark binary runs as a benchmark (`cargo bench`), not as
/// a test (`cargo test` builds and smoke-runs it without timing anything).
pub fn benchmarking() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Writes the figures of `bench` to `target/bench-figures/<bench>.json`,
/// where `cargo xtask bench` gathers them.
pub fn write_figures(bench: &str, figures: &[Figure]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-figures");
    let items: Vec<serde_json::Value> =
        figures.iter().map(|f| serde_json::json!({ "name": f.name, "value": f.value, "unit": f.unit })).collect();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join(format!("{bench}.json")), serde_json::Value::Array(items).to_string()));
    if let Err(e) = written {
        eprintln!("could not write the figures of {bench}: {e}");
    }
    for figure in figures {
        println!("{:<70} {:>14.2} {}", figure.name, figure.value, figure.unit);
    }
}

/// How much longer `contender` takes than `floor` for the same work, as
/// both see the same machine: the median, over `rounds` rounds, of the
/// ratio of their times in that round. Each closure runs one batch and
/// returns how long it took; a round runs the two one after the other,
/// the floor first in even rounds and second in odd ones. On a shared,
/// noisy machine the speed drifts over seconds; contenders timed in turns
/// of a millisecond see the same drift, where contenders timed one after
/// the other for seconds each (criterion's groups) do not.
pub fn paired_ratio(
    rounds: usize,
    mut floor: impl FnMut() -> Duration,
    mut contender: impl FnMut() -> Duration,
) -> f64 {
    let mut ratios: Vec<f64> = (0..rounds.max(1))
        .map(|round| {
            let (floor, contender) = match round % 2 {
                0 => (floor(), contender()),
                _ => {
                    let contender = contender();
                    (floor(), contender)
                }
            };
            contender.as_secs_f64() / floor.max(Duration::from_nanos(1)).as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

/// The `q`-quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// The recommended set-up: the bearer layer limited to the API's origin
/// (the benchmark requests go to it), with the defaults (every request
/// keeps a copy to send again after a 401).
pub fn origin_layer(source: &TokenSource) -> AuthLayer {
    AuthLayer::bearer(source.clone(), "https://api.example.com").expect("the origin is valid")
}

/// [`origin_layer`] with the opt-in `ReplayCopies::AtRisk`: a request
/// keeps a copy only while its token is at risk (the benchmark's token is
/// settled after its first answer, so no request keeps one).
pub fn origin_layer_at_risk(source: &TokenSource) -> AuthLayer {
    origin_layer(source).replay_copies(auth_core::publish::replay::ReplayCopies::AtRisk)
}

/// The bearer layer the benchmarks measure. The benchmarks send requests
/// with a relative URI, so the credentials go to any origin (an explicit
/// opt-in: real clients name the API's origin).
pub fn bearer_layer(source: &TokenSource) -> AuthLayer {
    let credentials = auth_core::Credentials::builder().bearer_from_source().any_origin().build();
    AuthLayer::new(source.clone(), credentials.expect("bearer credentials for any origin are valid"))
}

/// The reqwest-middleware frame of figure 9: a client whose last middleware
/// answers at once (a no-op transport), and the floor middleware.
pub mod reqwest_frame {
    use std::time::{Duration, Instant};

    use http::{Extensions, HeaderValue};
    use reqwest::{Request, Response};
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};

    /// The floor: a middleware that sets a static `Authorization` header.
    #[derive(Debug)]
    pub struct StaticHeader(pub HeaderValue);

    #[async_trait::async_trait]
    impl Middleware for StaticHeader {
        async fn handle(
            &self,
            mut request: Request,
            extensions: &mut Extensions,
            next: Next<'_>,
        ) -> reqwest_middleware::Result<Response> {
            request.headers_mut().insert(http::header::AUTHORIZATION, self.0.clone());
            next.run(request, extensions).await
        }
    }

    /// The no-op transport: answers 200 with an empty body, sends nothing.
    #[derive(Debug)]
    pub struct Answer;

    #[async_trait::async_trait]
    impl Middleware for Answer {
        async fn handle(
            &self,
            request: Request,
            _: &mut Extensions,
            _: Next<'_>,
        ) -> reqwest_middleware::Result<Response> {
            std::hint::black_box(&request);
            Ok(Response::from(http::Response::new(reqwest::Body::from(""))))
        }
    }

    /// A client with `middleware` over the no-op transport.
    pub fn client(middleware: impl Middleware) -> ClientWithMiddleware {
        ClientBuilder::new(reqwest::Client::new()).with(middleware).with(Answer).build()
    }

    /// `iters` GET requests to `url` through `client`, one after the other.
    pub async fn drive(client: &ClientWithMiddleware, url: &reqwest::Url, iters: u64) -> Duration {
        let started = Instant::now();
        for _ in 0..iters {
            let request = Request::new(reqwest::Method::GET, url.clone());
            std::hint::black_box(client.execute(request).await.expect("the no-op transport answers"));
        }
        started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paired_ratio_is_the_median_of_rounds_timed_in_turns() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut round = 0u64;
        let floor = || {
            order.borrow_mut().push('f');
            Duration::from_micros(100)
        };
        // Twice as slow, but one round in five disturbed (ten times slower).
        let contender = || {
            order.borrow_mut().push('c');
            round += 1;
            Duration::from_micros(if round.is_multiple_of(5) { 2_000 } else { 200 })
        };
        assert_eq!(paired_ratio(9, floor, contender), 2.0);
        assert_eq!(order.borrow().iter().collect::<String>(), "fccffccffccffccffc", "in turns");
    }
}
