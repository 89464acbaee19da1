#![allow(missing_docs)] // a benchmark binary
//! Figure 5: a simulated day through the sans-IO core: one request per
//! second, 1-hour tokens, a token endpoint failing 5% of the time.

use std::time::Instant;

use auth_bench::{benchmarking, write_figures, Figure};
use auth_tests::simulate_day;

fn main() {
    let mut rng = fastrand::Rng::with_seed(7);
    let started = Instant::now();
    let report = simulate_day(7, |_| rng.f64() < 0.05);
    let wall = started.elapsed();
    assert_eq!(report.expired_sent, 0, "no request is ever sent with an expired token");
    if benchmarking() {
        write_figures(
            "day",
            &[
                Figure::new(
                    "simulated day (86,400 requests, 1 h tokens, 5% endpoint failures): token fetches",
                    report.fetches as f64,
                    "fetches",
                ),
                Figure::new("simulated day: token fetches that failed", report.failures_injected as f64, "fetches"),
                Figure::new(
                    "simulated day: requests that waited after the first token",
                    report.waited_after_first_token as f64,
                    "requests",
                ),
                Figure::new(
                    "simulated day: requests sent with an expired token",
                    report.expired_sent as f64,
                    "requests",
                ),
                Figure::new("simulated day: wall time to simulate the day", wall.as_secs_f64() * 1e3, "ms"),
            ],
        );
    }
}
