//! Shared helpers of the workspace-level tests.
//!
//! ```
//! let mut t0 = auth_tests::SimClock::new();
//! assert_eq!(t0.advance_secs(5).since_start().as_secs(), 5);
//! ```

#![deny(missing_docs)]

use std::time::{Duration, Instant};

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
