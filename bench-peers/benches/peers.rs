//! The library side by side with the published crates users pick instead,
//! in the two frames of `auth-bench` (a tower stack over a no-op service,
//! and a reqwest-middleware client over a no-op last middleware), each
//! against its own floor (a static `Authorization` header), with 1 and 8
//! tasks on the multi-thread runtime: ns and heap allocations per request
//! with a cached token.
//!
//! - ours: `AuthLayer` / `AuthMiddleware` limited to the API's origin;
//! - aliri: `aliri_tokens::TokenWatcher`; `aliri_reqwest`'s middleware in
//!   the reqwest frame, and its header building in the tower frame (aliri
//!   has no client-side tower layer);
//! - middle: `ClientCredentialAuthorizer::authorization_header()` per
//!   request (what its `HttpClient` does), against the embedded provider;
//! - oauth2-rs: the usual `Arc<tokio::sync::RwLock<BasicTokenResponse>>`,
//!   read per request and formatted into a header.
//!
//! Run with `cargo xtask bench --peers`; the figures go to
//! `target/bench-figures/peers.json` of the main workspace.

use std::alloc::System;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use auth_bench::{bearer_header, floor, origin_layer, request, reqwest_frame, token_endpoint, token_source};
use auth_bench::{write_figures, Figure, Noop, API_URI};
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue, Request, Response};
use middle::Authorizer;
use oauth2::TokenResponse as _;
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{Layer, Service, ServiceExt};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A tower service that puts the header `header()` gives on each request.
#[derive(Clone)]
struct HeaderFrom<F> {
    header: F,
}

impl<F: Fn() -> HeaderValue> Service<Request<()>> for HeaderFrom<F> {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = <Noop as Service<Request<()>>>::Future;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<()>) -> Self::Future {
        request.headers_mut().insert(AUTHORIZATION, (self.header)());
        Noop.call(request)
    }
}

/// The oauth2-rs pattern in the tower frame: a tokio `RwLock` read per
/// request, formatted into a header, in a boxed future.
#[derive(Clone)]
struct RwLockOauth2 {
    token: Arc<tokio::sync::RwLock<oauth2::basic::BasicTokenResponse>>,
}

impl Service<Request<()>> for RwLockOauth2 {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<()>) -> Self::Future {
        let token = Arc::clone(&self.token);
        Box::pin(async move {
            let value = format!("Bearer {}", token.read().await.access_token().secret());
            if let Ok(value) = HeaderValue::from_str(&value) {
                request.headers_mut().insert(AUTHORIZATION, value);
            }
            Noop.call(request).await
        })
    }
}

/// A reqwest middleware that puts the header `header()` gives on each request.
struct MiddlewareFrom<F>(F);

#[async_trait::async_trait]
impl<F: Fn() -> HeaderValue + Send + Sync + 'static> Middleware for MiddlewareFrom<F> {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        request.headers_mut().insert(AUTHORIZATION, (self.0)());
        next.run(request, extensions).await
    }
}

/// The oauth2-rs pattern in the reqwest frame.
struct RwLockOauth2Middleware(Arc<tokio::sync::RwLock<oauth2::basic::BasicTokenResponse>>);

#[async_trait::async_trait]
impl Middleware for RwLockOauth2Middleware {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let value = format!("Bearer {}", self.0.read().await.access_token().secret());
        if let Ok(value) = HeaderValue::from_str(&value) {
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        next.run(request, extensions).await
    }
}

/// ns per request: `requests` split over `tasks` tasks, the median of five rounds.
fn time_tower<S>(runtime: &tokio::runtime::Runtime, service: &S, tasks: u64, requests: u64) -> f64
where
    S: Service<Request<()>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let round = || {
        runtime.block_on(async {
            let started = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let service = service.clone();
                    tokio::spawn(async move {
                        for _ in 0..requests / tasks {
                            let response = service.clone().oneshot(request()).await.expect("answered");
                            std::hint::black_box(response);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("the task ends");
            }
            started.elapsed().as_nanos() as f64 / requests as f64
        })
    };
    median(round)
}

fn time_reqwest(runtime: &tokio::runtime::Runtime, client: &ClientWithMiddleware, tasks: u64, requests: u64) -> f64 {
    let url = reqwest::Url::parse(API_URI).expect("the benchmark URL");
    let round = || {
        runtime.block_on(async {
            let started = Instant::now();
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move { reqwest_frame::drive(&client, &url, requests / tasks).await })
                })
                .collect();
            for handle in handles {
                handle.await.expect("the task ends");
            }
            started.elapsed().as_nanos() as f64 / requests as f64
        })
    };
    median(round)
}

fn median(mut round: impl FnMut() -> f64) -> f64 {
    round(); // warm-up
    let mut rounds: Vec<f64> = (0..5).map(|_| round()).collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

/// Heap allocations per request over `requests` requests, after a warm-up.
fn allocations(requests: u64, mut run: impl FnMut(u64)) -> f64 {
    run(requests);
    let region = Region::new(GLOBAL);
    run(requests);
    region.change().allocations as f64 / requests as f64
}

/// Allocations per request of a tower contender, one task.
fn tower_allocations<S>(runtime: &tokio::runtime::Runtime, service: &S) -> f64
where
    S: Service<Request<()>> + Clone,
    S::Error: std::fmt::Debug,
{
    allocations(10_000, |n| {
        runtime.block_on(async {
            for _ in 0..n {
                std::hint::black_box(service.clone().oneshot(request()).await.expect("answered"));
            }
        })
    })
}

/// One contender of a frame: how long a request takes with `tasks` tasks
/// (ns), and how many allocations it makes (one task).
struct Contender<'a> {
    name: &'static str,
    time: Box<dyn Fn(u64) -> f64 + 'a>,
    allocations: Box<dyn Fn() -> f64 + 'a>,
}

impl<'a> Contender<'a> {
    const TOWER_REQUESTS: u64 = 200_000;
    const REQWEST_REQUESTS: u64 = 50_000;

    fn tower<S>(name: &'static str, runtime: &'a tokio::runtime::Runtime, service: S) -> Self
    where
        S: Service<Request<()>> + Clone + Send + 'static,
        S::Future: Send,
        S::Error: std::fmt::Debug,
    {
        let timed = service.clone();
        Self {
            name,
            time: Box::new(move |tasks| time_tower(runtime, &timed, tasks, Self::TOWER_REQUESTS)),
            allocations: Box::new(move || tower_allocations(runtime, &service)),
        }
    }

    fn reqwest(name: &'static str, runtime: &'a tokio::runtime::Runtime, client: ClientWithMiddleware) -> Self {
        let timed = client.clone();
        let url = reqwest::Url::parse(API_URI).expect("the benchmark URL");
        Self {
            name,
            time: Box::new(move |tasks| time_reqwest(runtime, &timed, tasks, Self::REQWEST_REQUESTS)),
            allocations: Box::new(move || {
                allocations(10_000, |n| {
                    runtime.block_on(reqwest_frame::drive(&client, &url, n));
                })
            }),
        }
    }
}

/// The figures of one frame: ns and the ratio to the frame's floor (the
/// first contender) with 1 and 8 tasks, then allocations per request.
fn report(figures: &mut Vec<Figure>, frame: &str, contenders: &[Contender<'_>]) {
    for tasks in [1, 8] {
        let times: Vec<f64> = contenders.iter().map(|c| (c.time)(tasks)).collect();
        for (contender, ns) in contenders.iter().zip(&times) {
            let name = contender.name;
            figures.push(Figure::new(format!("peers, {frame}, {tasks} task(s): {name}"), *ns, "ns"));
            figures.push(Figure::new(format!("peers, {frame}, {tasks} task(s), ratio: {name}"), ns / times[0], "x"));
        }
    }
    for contender in contenders {
        let name = format!("peers, {frame}, allocations per request: {}", contender.name);
        figures.push(Figure::new(name, (contender.allocations)(), "allocs"));
    }
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return; // `cargo test` builds it; only `cargo bench` runs it
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let provider = auth_testkit::Provider::start(auth_testkit::ProviderConfig::new().client("peer", "peer-secret"))
        .expect("the embedded provider");
    let (ours_source, watcher, middle, oauth2_token) = runtime.block_on(async {
        let source = token_source(token_endpoint(Arc::new(AtomicUsize::new(0)), Duration::ZERO, 3600));
        source.token().await.expect("a first token");
        let watcher = aliri_tokens::TokenWatcher::spawn_from_token_source(
            aliri_tokens::sources::ConstTokenSource::new(auth_bench::token_value()),
            aliri_tokens::jitter::NullJitter,
            aliri_tokens::backoff::ErrorBackoffConfig::default(),
        )
        .await
        .expect("aliri's watcher");
        let token_url = url::Url::parse(&provider.token_url()).expect("the provider's URL");
        let middle = middle::ClientCredentialAuthorizerBuilder::new("peer", "peer-secret", token_url)
            .build()
            .await
            .expect("middle's authorizer");
        let body = serde_json::json!({ "access_token": auth_bench::token_value(), "token_type": "bearer", "expires_in": 3600 });
        let token: oauth2::basic::BasicTokenResponse = serde_json::from_value(body).expect("a token response");
        (source, watcher, Arc::new(middle), Arc::new(tokio::sync::RwLock::new(token)))
    });

    let aliri_header = {
        let watcher = watcher.clone();
        move || {
            let token = watcher.token();
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.access_token().as_str()))
                .unwrap_or(HeaderValue::from_static("Bearer x"));
            value.set_sensitive(true);
            value
        }
    };
    let middle_header = {
        let middle = Arc::clone(&middle);
        move || middle.authorization_header().map(|h| (*h).clone()).unwrap_or(HeaderValue::from_static("Bearer x"))
    };

    let tower = [
        Contender::tower("tower-http static header (floor)", &runtime, floor()),
        Contender::tower("auth layer with an origin (ours)", &runtime, origin_layer(&ours_source).layer(Noop)),
        Contender::tower("aliri_tokens TokenWatcher", &runtime, HeaderFrom { header: aliri_header.clone() }),
        Contender::tower("middle ClientCredentialAuthorizer", &runtime, HeaderFrom { header: middle_header.clone() }),
        Contender::tower("oauth2-rs with a tokio RwLock", &runtime, RwLockOauth2 { token: Arc::clone(&oauth2_token) }),
    ];
    let credentials = auth_core::Credentials::bearer("https://api.example.com").expect("the origin is valid");
    let reqwest = [
        ("static-header middleware (floor)", reqwest_frame::client(reqwest_frame::StaticHeader(bearer_header()))),
        (
            "AuthMiddleware with an origin (ours)",
            reqwest_frame::client(auth_reqwest::AuthMiddleware::new(ours_source.clone(), credentials)),
        ),
        (
            "aliri_reqwest AccessTokenMiddleware",
            reqwest_frame::client(aliri_reqwest::AccessTokenMiddleware::new(watcher.clone())),
        ),
        ("middle ClientCredentialAuthorizer", reqwest_frame::client(MiddlewareFrom(middle_header))),
        ("oauth2-rs with a tokio RwLock", reqwest_frame::client(RwLockOauth2Middleware(Arc::clone(&oauth2_token)))),
    ]
    .map(|(name, client)| Contender::reqwest(name, &runtime, client));
    let mut figures = Vec::new();
    report(&mut figures, "tower frame", &tower);
    report(&mut figures, "reqwest frame", &reqwest);
    write_figures("peers", &figures);
    drop(provider);
}
