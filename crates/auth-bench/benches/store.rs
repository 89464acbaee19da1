#![allow(missing_docs)] // a benchmark binary
//! Figure 8, on a real `redis-server` (started on a free loopback port):
//!
//! - cold start: 20 token sources, each with its own Redis connection, ask
//!   for a token at once against a 50 ms token endpoint: token requests
//!   (target 1) and the time until all are served;
//! - the hot path: a request through the layer with a Redis-backed source
//!   against one with a memory-only source (the hot path never touches the
//!   store, so the two should be equal).
//!
//! Without redis-server it prints a notice and writes no figures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_bench::{benchmarking, ours, request, token_endpoint, token_source, write_figures, Figure};
use auth_core::store::StoreConfig;
use auth_core::SourceConfig;
use auth_store::RedisStore;
use auth_testkit::redis::RedisServer;
use auth_tower::TokenSource;
use tower::{Service, ServiceExt};

fn main() {
    if !benchmarking() {
        return;
    }
    let Some(redis) = RedisServer::start() else { return };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut figures = Vec::new();
    runtime.block_on(cold_start(&redis, &mut figures));
    runtime.block_on(hot_path(&redis, &mut figures));
    write_figures("store", &figures);
}

fn config() -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", "bench-client")
        .client_secret("bench-secret")
        .build()
        .unwrap_or_else(|e| panic!("benchmark configuration: {e}"))
}

async fn cold_start(redis: &RedisServer, figures: &mut Vec<Figure>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = token_endpoint(calls.clone(), Duration::from_millis(50), 3600);
    let sources: Vec<TokenSource> = (0..20)
        .map(|seed| {
            let store = RedisStore::new(&redis.url()).expect("a Redis URL");
            TokenSource::builder(config(), endpoint.clone())
                .store(store, StoreConfig::default())
                .seed(seed)
                .build()
                .expect("a token source")
        })
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = sources
        .iter()
        .map(|source| {
            let source = source.clone();
            tokio::spawn(async move { source.token().await })
        })
        .collect();
    for task in tasks {
        task.await.expect("the task completes").expect("a token");
    }
    let elapsed = started.elapsed();
    figures.push(Figure::new(
        "Redis store, cold start: token requests for 20 sources (own connections, 50 ms endpoint)",
        calls.load(Ordering::SeqCst) as f64,
        "requests",
    ));
    figures.push(Figure::new(
        "Redis store, cold start: time until all 20 are served",
        elapsed.as_secs_f64() * 1e3,
        "ms",
    ));
}

/// ns per request through the layer, over `iters` requests after a warm-up.
async fn per_request(source: &TokenSource, iters: u32) -> f64 {
    let mut service = ours(source);
    for _ in 0..10_000 {
        let ready = ServiceExt::<http::Request<()>>::ready(&mut service).await.expect("ready");
        std::hint::black_box(ready.call(request()).await.expect("call"));
    }
    let started = Instant::now();
    for _ in 0..iters {
        let ready = ServiceExt::<http::Request<()>>::ready(&mut service).await.expect("ready");
        std::hint::black_box(ready.call(request()).await.expect("call"));
    }
    started.elapsed().as_nanos() as f64 / f64::from(iters)
}

async fn hot_path(redis: &RedisServer, figures: &mut Vec<Figure>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let memory = token_source(token_endpoint(calls.clone(), Duration::ZERO, 3600));
    let store = RedisStore::new(&redis.url()).expect("a Redis URL");
    let shared = TokenSource::builder(config(), token_endpoint(calls, Duration::ZERO, 3600))
        .store(store, StoreConfig::default())
        .seed(1)
        .build()
        .expect("a token source");
    memory.token().await.expect("a token");
    shared.token().await.expect("a token");
    // Alternate to spread the machine's noise over both.
    let (mut on_memory, mut on_redis) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        on_memory.push(per_request(&memory, 200_000).await);
        on_redis.push(per_request(&shared, 200_000).await);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let (memory_ns, redis_ns) = (median(&mut on_memory), median(&mut on_redis));
    figures.push(Figure::new("hot path, cached token: memory-only source", memory_ns, "ns"));
    figures.push(Figure::new("hot path, cached token: Redis-backed source", redis_ns, "ns"));
    figures.push(Figure::new("hot path: Redis-backed / memory-only", redis_ns / memory_ns, "x"));
}
