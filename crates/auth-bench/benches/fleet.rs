#![allow(missing_docs)] // a benchmark binary
//! Figure 7: a simulated fleet through the sans-IO core: 100 replicas for
//! 24 h, a request per replica every 10 s, 1-hour tokens, sharing one store
//! that takes 20 ms per operation and fails 5% of them; and the same fleet
//! without a shared store.

use std::time::{Duration, Instant};

use auth_bench::{benchmarking, write_figures, Figure};
use auth_tests::fleet_sim::simulate_fleet_day;

fn main() {
    let started = Instant::now();
    let shared = simulate_fleet_day(100, true, Duration::from_millis(20), 0.05);
    let wall = started.elapsed();
    let alone = simulate_fleet_day(100, false, Duration::ZERO, 0.0);
    assert_eq!(shared.expired_sent, 0, "no request is ever sent with an expired token");
    if benchmarking() {
        let fleet =
            "simulated fleet (100 replicas, 24 h, 1 h tokens, a shared store with 20 ms latency and 5% failures)";
        write_figures(
            "fleet",
            &[
                Figure::new(format!("{fleet}: token fetches"), shared.fetches as f64, "fetches"),
                Figure::new(
                    format!("{fleet}: requests sent with an expired token"),
                    shared.expired_sent as f64,
                    "requests",
                ),
                Figure::new(
                    format!("{fleet}: requests that waited after the first token"),
                    shared.waited_after_start as f64,
                    "requests",
                ),
                Figure::new(format!("{fleet}: requests that failed"), shared.failed_calls as f64, "requests"),
                Figure::new("the same fleet without a shared store: token fetches", alone.fetches as f64, "fetches"),
                Figure::new("simulated fleet: wall time to simulate the day", wall.as_secs_f64() * 1e3, "ms"),
            ],
        );
    }
}
