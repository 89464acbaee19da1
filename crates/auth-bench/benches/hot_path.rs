#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Figures 1-3: the per-request cost of putting a cached token on a
//! request, against what a user would pick instead, in one run: the same
//! no-op inner service, the same requests, the same runtime.
//!
//! - `hot_path/*`: ns per request, one task, current-thread runtime;
//! - allocations per request (a counting global allocator);
//! - `contention/*/{1,2,8}`: ns per request (wall time / requests) with
//!   1, 2 and 8 tasks sharing one token on the multi-thread runtime.

use std::alloc::System;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auth_bench::{
    bearer_header, benchmarking, drive, floor, ours, paired_ratio, token_endpoint, token_source, write_figures, Figure,
    MutexAuth, RwLockAuth,
};
use criterion::{criterion_group, BenchmarkId, Criterion};
use http::Request;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tower::{Layer, Service};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// `iters` requests split over `tasks` tasks, each with its own clone.
async fn drive_concurrently<S>(service: S, iters: u64, tasks: u64) -> Duration
where
    S: Service<Request<()>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
{
    let per_task = (iters / tasks).max(1);
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(drive(service.clone(), per_task))).collect();
    for handle in handles {
        handle.await.expect("the task completes");
    }
    // Normalise to `iters` requests so criterion's per-iteration figure is per request.
    started.elapsed().mul_f64(iters as f64 / (per_task * tasks) as f64)
}

/// A token source on `runtime` that already holds its token.
fn warm_source(runtime: &tokio::runtime::Runtime) -> auth_tower::TokenSource {
    runtime.block_on(async {
        let source = token_source(token_endpoint(Arc::new(AtomicUsize::new(0)), Duration::ZERO, 3600));
        source.token().await.expect("a first token");
        source
    })
}

fn contenders(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let source = warm_source(&runtime);
    let mutex = Arc::new(Mutex::new(bearer_header()));
    let rwlock = Arc::new(tokio::sync::RwLock::new(bearer_header()));

    let mut group = c.benchmark_group("hot_path");
    group.bench_function("floor_tower_http_static_header", |b| {
        b.to_async(&runtime).iter_custom(|iters| drive(floor(), iters))
    });
    group.bench_function("auth_layer", |b| b.to_async(&runtime).iter_custom(|iters| drive(ours(&source), iters)));
    group.bench_function("auth_layer_with_origin", |b| {
        b.to_async(&runtime)
            .iter_custom(|iters| drive(auth_bench::origin_layer(&source).layer(auth_bench::Noop), iters))
    });
    group.bench_function("auth_layer_with_origin_at_risk", |b| {
        b.to_async(&runtime)
            .iter_custom(|iters| drive(auth_bench::origin_layer_at_risk(&source).layer(auth_bench::Noop), iters))
    });
    group.bench_function("auth_layer_without_replay_copy", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            drive(auth_bench::bearer_layer(&source).without_replay().layer(auth_bench::Noop), iters)
        })
    });
    // DPoP: the same layer with a DPoP-bound token, a proof signed per request.
    let dpop = runtime.block_on(async {
        let source = auth_bench::dpop_token_source();
        source.token().await.expect("a first DPoP token");
        source
    });
    group.bench_function("auth_layer_dpop", |b| b.to_async(&runtime).iter_custom(|iters| drive(ours(&dpop), iters)));
    group.bench_function("hand_written_std_mutex", |b| {
        b.to_async(&runtime).iter_custom(|iters| drive(MutexAuth::new(mutex.clone()), iters))
    });
    group.bench_function("hand_written_tokio_rwlock", |b| {
        b.to_async(&runtime).iter_custom(|iters| drive(RwLockAuth::new(rwlock.clone()), iters))
    });
    group.finish();

    if benchmarking() {
        allocations(&runtime, &source, &mutex, &rwlock);
        paired(&runtime, &source);
    }
}

/// Figure 1, paired: each contender against the floor in turns of
/// `BATCH` requests (see [`paired_ratio`]).
fn paired(runtime: &tokio::runtime::Runtime, source: &auth_tower::TokenSource) {
    const BATCH: u64 = 2_000;
    const ROUNDS: usize = 201;
    let mut figures = Vec::new();
    let mut against_floor = |name: &str, mut contender: Box<dyn FnMut() -> Duration + '_>| {
        let mut floor = floor();
        let mut floor = || runtime.block_on(drive(&mut floor, BATCH));
        paired_ratio(ROUNDS / 10, &mut floor, &mut contender); // warm-up
        let ratio = paired_ratio(ROUNDS, &mut floor, &mut contender);
        figures.push(Figure::new(format!("paired ratio to the floor: {name}"), ratio, "x"));
    };
    let mut layer = ours(source);
    against_floor("auth layer", Box::new(|| runtime.block_on(drive(&mut layer, BATCH))));
    let mut origin = auth_bench::origin_layer(source).layer(auth_bench::Noop);
    against_floor("auth layer with an origin", Box::new(|| runtime.block_on(drive(&mut origin, BATCH))));
    let mut at_risk = auth_bench::origin_layer_at_risk(source).layer(auth_bench::Noop);
    against_floor(
        "auth layer with an origin, ReplayCopies::AtRisk",
        Box::new(|| runtime.block_on(drive(&mut at_risk, BATCH))),
    );
    let mut without = auth_bench::bearer_layer(source).without_replay().layer(auth_bench::Noop);
    against_floor("auth layer, without_replay()", Box::new(|| runtime.block_on(drive(&mut without, BATCH))));
    write_figures("hot_path_paired", &figures);
}

/// Figure 2: heap allocations per request, each contender alone.
fn allocations(
    runtime: &tokio::runtime::Runtime,
    source: &auth_tower::TokenSource,
    mutex: &Arc<Mutex<http::HeaderValue>>,
    rwlock: &Arc<tokio::sync::RwLock<http::HeaderValue>>,
) {
    const REQUESTS: u64 = 10_000;
    let mut figures = Vec::new();
    let mut measure = |name: &str, run: &mut dyn FnMut()| {
        run(); // warm-up: lazily built state is not counted
        let region = Region::new(GLOBAL);
        run();
        let stats = region.change();
        figures.push(Figure::new(
            format!("allocations per request: {name}"),
            stats.allocations as f64 / REQUESTS as f64,
            "allocs",
        ));
    };
    measure("floor (tower-http static header)", &mut || {
        runtime.block_on(drive(floor(), REQUESTS));
    });
    measure("auth layer", &mut || {
        runtime.block_on(drive(ours(source), REQUESTS));
    });
    measure("auth layer with an origin", &mut || {
        runtime.block_on(drive(auth_bench::origin_layer(source).layer(auth_bench::Noop), REQUESTS));
    });
    measure("auth layer with an origin, ReplayCopies::AtRisk", &mut || {
        runtime.block_on(drive(auth_bench::origin_layer_at_risk(source).layer(auth_bench::Noop), REQUESTS));
    });
    measure("auth layer without the replay copy", &mut || {
        runtime.block_on(drive(auth_bench::bearer_layer(source).without_replay().layer(auth_bench::Noop), REQUESTS));
    });
    measure("hand-written std Mutex", &mut || {
        runtime.block_on(drive(MutexAuth::new(mutex.clone()), REQUESTS));
    });
    measure("hand-written tokio RwLock", &mut || {
        runtime.block_on(drive(RwLockAuth::new(rwlock.clone()), REQUESTS));
    });
    write_figures("hot_path", &figures);
}

fn contention(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let source = warm_source(&runtime);
    let mutex = Arc::new(Mutex::new(bearer_header()));
    let rwlock = Arc::new(tokio::sync::RwLock::new(bearer_header()));
    let mut group = c.benchmark_group("contention");
    for tasks in [1u64, 2, 8] {
        group.bench_with_input(BenchmarkId::new("floor_tower_http_static_header", tasks), &tasks, |b, &tasks| {
            b.to_async(&runtime).iter_custom(|iters| drive_concurrently(floor(), iters, tasks))
        });
        group.bench_with_input(BenchmarkId::new("auth_layer", tasks), &tasks, |b, &tasks| {
            b.to_async(&runtime).iter_custom(|iters| drive_concurrently(ours(&source), iters, tasks))
        });
        group.bench_with_input(BenchmarkId::new("hand_written_std_mutex", tasks), &tasks, |b, &tasks| {
            b.to_async(&runtime).iter_custom(|iters| drive_concurrently(MutexAuth::new(mutex.clone()), iters, tasks))
        });
        group.bench_with_input(BenchmarkId::new("hand_written_tokio_rwlock", tasks), &tasks, |b, &tasks| {
            b.to_async(&runtime).iter_custom(|iters| drive_concurrently(RwLockAuth::new(rwlock.clone()), iters, tasks))
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = contenders, contention
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
