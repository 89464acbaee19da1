#![allow(missing_docs)] // criterion_group! generates an undocumented function
//! Figure 9: the per-request cost of the reqwest-middleware adapter with a
//! cached token, against a middleware that sets a static `Authorization`
//! header (the floor), in one run (with its defaults: every request keeps
//! a copy for a 401; and with the opt-in `ReplayCopies::AtRisk`): the same
//! client, the same requests, and
//! a no-op transport (a last middleware that answers at once), so that
//! only what the middlewares do is measured. Nanoseconds per request on a
//! current-thread runtime, and heap allocations per request.

use std::alloc::System;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use auth_bench::{
    bearer_header, benchmarking, paired_ratio, token_endpoint, token_source, write_figures, Figure, API_URI,
};
use auth_core::publish::replay::ReplayCopies;
use auth_reqwest::AuthMiddleware;
use criterion::{criterion_group, Criterion};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

use auth_bench::reqwest_frame::{client, drive, StaticHeader};

fn contenders(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let source = runtime.block_on(async {
        let source = token_source(token_endpoint(Arc::new(AtomicUsize::new(0)), Duration::ZERO, 3600));
        source.token().await.expect("a first token");
        source
    });
    let url = reqwest::Url::parse(API_URI).expect("the benchmark URL");
    let credentials = auth_core::Credentials::bearer("https://api.example.com").expect("the origin is valid");
    let floor = client(StaticHeader(bearer_header()));
    let ours = client(AuthMiddleware::new(source.clone(), credentials.clone()));
    let at_risk = client(AuthMiddleware::new(source, credentials).replay_copies(ReplayCopies::AtRisk));

    let mut group = c.benchmark_group("reqwest");
    group.bench_function("floor_static_header_middleware", |b| {
        b.to_async(&runtime).iter_custom(|iters| drive(&floor, &url, iters))
    });
    group.bench_function("auth_middleware_with_origin", |b| {
        b.to_async(&runtime).iter_custom(|iters| drive(&ours, &url, iters))
    });
    group.bench_function("auth_middleware_with_origin_at_risk", |b| {
        b.to_async(&runtime).iter_custom(|iters| drive(&at_risk, &url, iters))
    });
    group.finish();

    if benchmarking() {
        const REQUESTS: u64 = 10_000;
        let mut figures = Vec::new();
        let contenders = [
            ("floor (static-header middleware)", &floor),
            ("auth middleware with an origin", &ours),
            ("auth middleware with an origin, ReplayCopies::AtRisk", &at_risk),
        ];
        for (name, client) in contenders {
            runtime.block_on(drive(client, &url, REQUESTS));
            let region = Region::new(GLOBAL);
            runtime.block_on(drive(client, &url, REQUESTS));
            let allocations = region.change().allocations as f64 / REQUESTS as f64;
            figures.push(Figure::new(format!("reqwest allocations per request: {name}"), allocations, "allocs"));
        }
        write_figures("reqwest", &figures);
        // Paired: in turns of 2,000 requests (see `paired_ratio`).
        let (runtime, url) = (&runtime, &url);
        let batch = |client| move || runtime.block_on(drive(client, url, 2_000));
        let mut paired = Vec::new();
        for (label, client) in [
            ("AuthMiddleware with an origin", &ours),
            ("AuthMiddleware with an origin, ReplayCopies::AtRisk", &at_risk),
        ] {
            paired_ratio(20, batch(&floor), batch(client)); // warm-up
            let ratio = paired_ratio(201, batch(&floor), batch(client));
            paired.push(Figure::new(format!("reqwest-middleware, paired ratio to the floor: {label}"), ratio, "x"));
        }
        write_figures("reqwest_paired", &paired);
    }
}

fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)).sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = contenders
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
