//! One simulated day through the lifecycle: a request every second, 1-hour
//! tokens, a token endpoint that answers in 200 ms; the day runs in
//! milliseconds on a simulated clock (`auth_tests::simulate_day`, shared
//! with the benchmark of the same day).

use auth_tests::simulate_day;

#[test]
fn a_day_of_one_request_per_second_with_one_hour_tokens() {
    for seed in 0..8 {
        let report = simulate_day(seed, |_| false);
        assert_eq!(report.requests, 86_400);
        assert!(report.fetches <= 25, "seed {seed}: {} fetches for 24 one-hour lifetimes", report.fetches);
        assert!(report.fetches >= 24, "seed {seed}: a 1-hour token cannot last a day: {report:?}");
        assert_eq!(report.waited_after_first_token, 0, "seed {seed}: a request waited after the first token");
        assert_eq!(report.waited, 1, "only the very first request waits");
        assert_eq!(report.expired_sent, 0);
    }
}

#[test]
fn a_day_with_a_flaky_token_endpoint_never_sends_an_expired_token() {
    let mut rng = fastrand::Rng::with_seed(5);
    let report = simulate_day(3, |_| rng.f64() < 0.05);
    assert_eq!(report.expired_sent, 0);
    assert_eq!(report.waited_after_first_token, 0, "{report:?}");
    assert!(report.fetches <= 25 + report.failures_injected, "{report:?}");
}
