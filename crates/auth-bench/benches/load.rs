#![allow(missing_docs)] // a benchmark binary
//! Figures 4 and 6, measured on tokio's multi-thread runtime in real time:
//!
//! - cold-start stampede: 10,000 concurrent requests through the layer
//!   against a token endpoint with 50 ms latency;
//! - renewal under load: steady requests across a renewal with a 200 ms
//!   token endpoint, background renewal (the library) against a blocking
//!   renewal at expiry (the Go oauth2 / Spring style), in one run.
//!
//! Under `cargo test` it runs a small version of each, as a smoke test.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use auth_bench::{benchmarking, ours, quantile, request, token_endpoint, token_source, write_figures, Figure, Noop};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use tower::{service_fn, Layer, Service, ServiceExt};

fn main() {
    let full = benchmarking();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut figures = Vec::new();
    runtime.block_on(stampede(if full { 10_000 } else { 200 }, &mut figures));
    let (lifetime, run_for) = if full { (3, Duration::from_millis(3500)) } else { (1, Duration::from_millis(1200)) };
    runtime.block_on(renewal_under_load(lifetime, run_for, &mut figures));
    if full {
        write_figures("load", &figures);
    }
}

/// Figure 4.
async fn stampede(requests: usize, figures: &mut Vec<Figure>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let authorised = Arc::new(AtomicUsize::new(0));
    let source = token_source(token_endpoint(calls.clone(), Duration::from_millis(50), 3600));
    let seen = authorised.clone();
    let api = auth_bench::bearer_layer(&source).layer(service_fn(move |request: Request<()>| {
        if request.headers().contains_key(AUTHORIZATION) {
            seen.fetch_add(1, Ordering::Relaxed);
        }
        std::future::ready(Ok::<_, std::convert::Infallible>(Response::new(())))
    }));
    let started = Instant::now();
    let tasks: Vec<_> = (0..requests).map(|_| tokio::spawn(api.clone().oneshot(request()))).collect();
    for task in tasks {
        task.await.expect("the task completes").expect("the request is authorised");
    }
    let elapsed = started.elapsed();
    assert_eq!(authorised.load(Ordering::Relaxed), requests, "every request carried the token");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a cold start makes exactly one token request");
    figures.push(Figure::new(
        format!("cold-start stampede: token requests for {requests} concurrent requests"),
        calls.load(Ordering::SeqCst) as f64,
        "requests",
    ));
    figures.push(Figure::new(
        format!("cold-start stampede: time until all {requests} are authorised (50 ms endpoint)"),
        elapsed.as_secs_f64() * 1e3,
        "ms",
    ));
}

/// The Go oauth2 / Spring style: a lock around "is the token still good?
/// if not, fetch one now", taken by every request; whoever finds it expired
/// fetches while everybody else waits.
#[derive(Clone)]
struct BlockingRenewal<E> {
    endpoint: E,
    state: Arc<tokio::sync::Mutex<Option<(HeaderValue, Instant)>>>,
    lifetime: Duration,
}

impl<E> Service<Request<()>> for BlockingRenewal<E>
where
    E: Service<Request<Vec<u8>>, Response = Response<String>, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    E::Future: Send,
{
    type Response = Response<()>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<()>, std::convert::Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<()>) -> Self::Future {
        let (state, mut endpoint, lifetime) = (self.state.clone(), self.endpoint.clone(), self.lifetime);
        Box::pin(async move {
            let mut guard = state.lock().await;
            if guard.as_ref().is_none_or(|(_, until)| Instant::now() >= *until) {
                let sent = Instant::now();
                let body = endpoint.ready().await?.call(Request::new(Vec::new())).await?.into_body();
                let token = body.split('"').nth(3).unwrap_or("").to_owned();
                let value =
                    HeaderValue::from_str(&format!("Bearer {token}")).unwrap_or(HeaderValue::from_static("Bearer x"));
                // The same hard margin as the library: min(10 s, lifetime / 10).
                let margin = Duration::from_secs(10).min(lifetime / 10);
                *guard = Some((value, sent + lifetime - margin));
            }
            let value = guard.as_ref().map(|(v, _)| v.clone()).unwrap_or(HeaderValue::from_static("Bearer x"));
            drop(guard);
            request.headers_mut().insert(AUTHORIZATION, value);
            Noop.call(request).await
        })
    }
}

/// Steady requests from 4 tasks, one per millisecond each, for `run_for`;
/// every request's latency.
async fn steady<S>(service: S, run_for: Duration) -> Vec<Duration>
where
    S: Service<Request<()>, Response = Response<()>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    let until = Instant::now() + run_for;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let mut service = service.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    let ready = service.ready().await.expect("ready");
                    ready.call(request()).await.expect("the request succeeds");
                    latencies.push(started.elapsed());
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("the task completes"));
    }
    all.sort();
    all
}

/// Figure 6.
async fn renewal_under_load(lifetime_secs: u64, run_for: Duration, figures: &mut Vec<Figure>) {
    let latency = Duration::from_millis(200);
    let lifetime = Duration::from_secs(lifetime_secs);

    let background_calls = Arc::new(AtomicUsize::new(0));
    let source = token_source(token_endpoint(background_calls.clone(), latency, lifetime_secs));
    source.token().await.expect("a first token");
    let background = steady(ours(&source), run_for).await;
    // Counted now: the source would go on renewing during the other run.
    let background_renewals = background_calls.load(Ordering::SeqCst).saturating_sub(1);
    drop(source);

    let blocking_calls = Arc::new(AtomicUsize::new(0));
    let blocking = BlockingRenewal {
        endpoint: token_endpoint(blocking_calls.clone(), latency, lifetime_secs),
        state: Arc::new(tokio::sync::Mutex::new(None)),
        lifetime,
    };
    blocking.clone().oneshot(request()).await.expect("a first token");
    let at_expiry = steady(blocking, run_for).await;
    let blocking_renewals = blocking_calls.load(Ordering::SeqCst).saturating_sub(1);

    for (style, latencies, renewals) in [
        ("background renewal (library)", &background, background_renewals),
        ("blocking renewal at expiry (Go/Spring style)", &at_expiry, blocking_renewals),
    ] {
        figures.push(Figure::new(
            format!("renewal under load, {style}: renewals during the run"),
            renewals as f64,
            "fetches",
        ));
        for (label, q) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
            figures.push(Figure::new(
                format!("renewal under load, {style}: {label} added latency"),
                quantile(latencies, q).as_secs_f64() * 1e6,
                "µs",
            ));
        }
        let waited = latencies.iter().filter(|l| **l >= Duration::from_millis(10)).count();
        figures.push(Figure::new(
            format!("renewal under load, {style}: requests that waited 10 ms or more"),
            waited as f64,
            "requests",
        ));
    }
}
