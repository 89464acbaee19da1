#![allow(missing_docs)] // a benchmark binary
//! Figure 7: a simulated fleet through the sans-IO core: 100 replicas for
//! 24 h, a request per replica every 10 s, 1-hour tokens, sharing one store
//! that takes 20 ms per operation and fails 5% of them; and the same fleet
//! without a shared store. Then 10,000 replicas for a day (an event-driven
//! simulation, `auth_tests::fleet_scale`): what the store sees.

use std::time::{Duration, Instant};

use auth_bench::{benchmarking, write_figures, Figure};
use auth_tests::fleet_scale::simulate_scale_day;
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
        let started = Instant::now();
        let large = simulate_scale_day(10_000, Duration::from_millis(2), Duration::from_secs(10));
        let wall = started.elapsed();
        assert_eq!(large.expired_sent, 0, "no request is ever sent with an expired token");
        let fleet = "simulated fleet of 10,000 replicas (24 h, 1 h tokens, a request per replica every 10 s, a store answering in 2 ms)";
        let mut figures = vec![
            Figure::new(format!("{fleet}: token fetches"), large.fetches as f64, "fetches"),
            Figure::new(
                format!("{fleet}: store operations per replica per token lifetime"),
                large.ops_per_replica_per_lifetime(),
                "ops",
            ),
            Figure::new(
                format!("{fleet}: peak store operations in one second (the cold start)"),
                large.peak_ops_per_second as f64,
                "ops/s",
            ),
            Figure::new(
                format!("{fleet}: peak store operations in one second after the cold start (renewals)"),
                large.peak_ops_per_second_after_start as f64,
                "ops/s",
            ),
            Figure::new(
                format!("{fleet}: requests that waited (each replica's first)"),
                large.waited as f64,
                "requests",
            ),
        ];
        for (kind, count) in &large.store_ops {
            figures.push(Figure::new(format!("{fleet}: store operations, {kind}"), *count as f64, "ops"));
        }
        figures.push(Figure::new(
            "simulated fleet of 10,000: wall time to simulate the day",
            wall.as_secs_f64() * 1e3,
            "ms",
        ));
        write_figures("fleet_scale", &figures);
    }
}
