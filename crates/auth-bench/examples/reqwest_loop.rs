//! Figure 9's loop without criterion, for instruction counts (callgrind):
//!
//! ```text
//! cargo build --release -p auth-bench --example reqwest_loop
//! valgrind --tool=callgrind target/release/examples/reqwest_loop floor 100000
//! valgrind --tool=callgrind target/release/examples/reqwest_loop ours 100000
//! valgrind --tool=callgrind target/release/examples/reqwest_loop ours-at-risk 100000
//! ```
//!
//! `ours` has the defaults (every request keeps a copy for a 401);
//! `ours-at-risk` keeps one only while the token is at risk.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_bench::{bearer_header, reqwest_frame, token_endpoint, token_source, API_URI};

fn main() {
    let mut args = std::env::args().skip(1);
    let contender = args.next().unwrap_or_else(|| "ours".to_owned());
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        let source = token_source(token_endpoint(Arc::new(AtomicUsize::new(0)), Duration::ZERO, 3600));
        source.token().await.expect("the benchmark token endpoint answers");
        let client = match contender.as_str() {
            "floor" => reqwest_frame::client(reqwest_frame::StaticHeader(bearer_header())),
            "ours" | "ours-at-risk" => {
                let credentials = auth_core::Credentials::bearer("https://api.example.com").expect("a valid origin");
                let middleware = auth_reqwest::AuthMiddleware::new(source, credentials);
                let middleware = match contender.as_str() {
                    "ours" => middleware,
                    _ => middleware.replay_copies(auth_core::publish::replay::ReplayCopies::AtRisk),
                };
                reqwest_frame::client(middleware)
            }
            other => {
                eprintln!("unknown contender {other:?}: use floor, ours or ours-at-risk");
                std::process::exit(2);
            }
        };
        let url = reqwest::Url::parse(API_URI).expect("the benchmark URL");
        let started = Instant::now();
        reqwest_frame::drive(&client, &url, n).await;
        println!("{contender}: {n} requests, {:.1} ns per request", started.elapsed().as_nanos() as f64 / n as f64);
    });
}
