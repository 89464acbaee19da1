//! Shared helpers of the workspace-level tests.
//!
//! ```
//! let mut t0 = auth_tests::SimClock::new();
//! assert_eq!(t0.advance_secs(5).since_start().as_secs(), 5);
//! ```

#![deny(missing_docs)]
#![allow(clippy::disallowed_methods)] // one real Instant anchors simulated time

pub mod fleet_scale;
pub mod fleet_sim;

use std::time::{Duration, Instant};

use auth_core::{Lifecycle, Output, SourceConfig, Want};

/// A simulated clock: an `Instant` fixed at creation that only moves when
/// told to, so tests assert on simulated time.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    start: Instant,
    now: Instant,
}

impl SimClock {
    /// A clock at its start.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let start = Instant::now();
        Self { start, now: start }
    }
    /// The current simulated instant.
    pub fn now(&self) -> Instant {
        self.now
    }
    /// Moves forward by `secs` seconds.
    pub fn advance_secs(&mut self, secs: u64) -> &mut Self {
        self.now += Duration::from_secs(secs);
        self
    }
    /// Moves forward to `instant` (never backwards).
    pub fn advance_to(&mut self, instant: Instant) {
        self.now = self.now.max(instant);
    }
    /// Simulated time since the start.
    pub fn since_start(&self) -> Duration {
        self.now - self.start
    }
}

/// Builds a JSON token endpoint answer.
pub fn json_response(status: u16, body: &str) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body.as_bytes().to_vec());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

/// One day.
pub const DAY: Duration = Duration::from_secs(24 * 3600);
/// The simulated token endpoint latency.
pub const LATENCY: Duration = Duration::from_millis(200);

/// What happened during a simulated day.
#[derive(Debug, Default, Clone, Copy)]
pub struct DayReport {
    /// Requests made (one per second).
    pub requests: u64,
    /// Token fetches started.
    pub fetches: u64,
    /// Fetches answered 503 by the simulated endpoint.
    pub failures_injected: u64,
    /// Requests that had to wait for a token.
    pub waited: u64,
    /// Of those, requests after the first token had been obtained.
    pub waited_after_first_token: u64,
    /// Requests handed a token at or past its hard expiry.
    pub expired_sent: u64,
}

/// Runs the day: one request per second, 1-hour tokens, a token endpoint
/// answering in 200 ms; `fail` decides, per fetch, whether it answers 503.
/// The clock is simulated: the loop jumps from event to event.
pub fn simulate_day(seed: u64, mut fail: impl FnMut(u64) -> bool) -> DayReport {
    let config = SourceConfig::builder("https://auth.example.com/token", "client")
        .client_secret("secret")
        .build()
        .expect("a valid configuration");
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
                let mut busy = http::Response::new(b"busy".to_vec());
                *busy.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                busy
            } else {
                http::Response::new(br#"{"access_token":"tok","token_type":"Bearer","expires_in":3600}"#.to_vec())
            };
            lc.handle_fetch_response(now, std::time::SystemTime::now(), id, &response);
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
                _ => {}
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
