//! One simulated day through the lifecycle: a request every second, 1-hour
//! tokens, a token endpoint that answers in 200 ms. The clock is simulated:
//! the loop jumps from event to event, so the day runs in milliseconds.

#![allow(clippy::disallowed_methods)] // one real Instant anchors simulated time

use std::time::{Duration, Instant};

use auth_core::{Lifecycle, Output, SourceConfig, Want};

const DAY: Duration = Duration::from_secs(24 * 3600);
const LATENCY: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct DayReport {
    requests: u64,
    fetches: u64,
    failures_injected: u64,
    waited: u64,
    waited_after_first_token: u64,
    expired_sent: u64,
}

/// Runs the day. `fail` decides, per fetch, whether the endpoint answers 503.
fn simulate_day(seed: u64, mut fail: impl FnMut(u64) -> bool) -> DayReport {
    let config =
        SourceConfig::builder("https://auth.example.com/token", "client").client_secret("secret").build().unwrap();
    let mut lc = Lifecycle::new(config, seed);
    let t0 = Instant::now();
    let mut report = DayReport::default();
    let mut pending: Option<(Instant, auth_core::FetchId)> = None;
    let mut had_token = false;
    let mut next_request = t0;
    loop {
        // The next event: a request, the fetch answer, or the machine's deadline.
        let mut now = next_request;
        if let Some((at, _)) = pending {
            now = now.min(at);
        }
        if let Some(deadline) = lc.poll_timeout() {
            now = now.min(deadline);
        }
        if now - t0 >= DAY {
            break;
        }
        if let Some((_, id)) = pending.filter(|(at, _)| *at == now) {
            pending = None;
            let failed = fail(report.fetches);
            let response = if failed {
                report.failures_injected += 1;
                http::Response::builder().status(503).body(b"busy".to_vec()).unwrap()
            } else {
                http::Response::new(br#"{"access_token":"tok","token_type":"Bearer","expires_in":3600}"#.to_vec())
            };
            lc.handle_fetch_response(now, id, &response);
        } else if now == next_request {
            next_request += Duration::from_secs(1);
            report.requests += 1;
            match lc.handle_token_wanted(now) {
                Want::Ready(token) => {
                    had_token = true;
                    if !token.is_usable(now) || token.expires_at() <= now {
                        report.expired_sent += 1;
                    }
                }
                Want::Wait => {
                    report.waited += 1;
                    if had_token {
                        report.waited_after_first_token += 1;
                    }
                }
                Want::Failed(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        } else {
            lc.handle_timeout(now);
        }
        while let Some(output) = lc.poll_output() {
            if let Output::Fetch(fetch) = output {
                assert!(pending.is_none(), "two fetches in flight");
                report.fetches += 1;
                pending = Some((now + LATENCY, fetch.id));
            }
        }
    }
    report
}

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
