//! The hot path of figure 1 as a plain loop, for profilers that count
//! instructions rather than time (a deterministic view on a noisy machine):
//!
//! ```text
//! cargo build --release -p auth-bench --example hot_path_loop
//! valgrind --tool=callgrind target/release/examples/hot_path_loop floor 200000
//! valgrind --tool=callgrind target/release/examples/hot_path_loop layer 200000
//! valgrind --tool=callgrind target/release/examples/hot_path_loop no-replay 200000
//! valgrind --tool=callgrind target/release/examples/hot_path_loop origin 200000
//! valgrind --tool=callgrind target/release/examples/hot_path_loop origin-at-risk 200000
//! ```
//!
//! `layer` and `origin` have the defaults (every request keeps a copy for
//! a 401); `origin-at-risk` keeps one only while the token is at risk.
//!
//! Divide the instruction count (`I refs`) by the number of requests; the
//! set-up (runtime, one token fetch) adds a few hundred thousand in all.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_bench::{floor, request, token_endpoint, token_source, Noop};
use tower::{Layer, Service, ServiceExt};

/// Sends `n` requests through one service, as figure 1 does.
async fn drive<S>(mut service: S, n: u64)
where
    S: Service<http::Request<()>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..n {
        let ready = service.ready().await.expect("the service is ready");
        std::hint::black_box(ready.call(request()).await.expect("the no-op service answers"));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let contender = args.next().unwrap_or_else(|| "layer".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let source = token_source(token_endpoint(Arc::new(AtomicUsize::new(0)), Duration::ZERO, 3600));
        source.token().await.expect("the benchmark token endpoint answers");
        let started = Instant::now();
        match contender.as_str() {
            "floor" => drive(floor(), n).await,
            "layer" => drive(auth_bench::bearer_layer(&source).layer(Noop), n).await,
            "no-replay" => drive(auth_bench::bearer_layer(&source).without_replay().layer(Noop), n).await,
            "origin" => drive(auth_bench::origin_layer(&source).layer(Noop), n).await,
            "origin-at-risk" => drive(auth_bench::origin_layer_at_risk(&source).layer(Noop), n).await,
            other => {
                eprintln!("unknown contender {other:?}: use floor, layer, no-replay, origin or origin-at-risk");
                std::process::exit(2);
            }
        }
        let per_request = started.elapsed().as_nanos() as f64 / n as f64;
        println!("{contender}: {n} requests, {per_request:.1} ns per request");
        let default = std::mem::size_of::<auth_tower::ResponseFuture<Noop, ()>>();
        let without_replay = std::mem::size_of::<auth_tower::ResponseFuture<Noop, (), auth_tower::NoReplay>>();
        println!("the auth layer's response future here: {default} bytes, {without_replay} without replay");
    });
}
