//! A token source's counters as its driver shares them between the
//! thread or task that runs the lifecycle and the handles that read them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::lifecycle::Stats;

/// A token source's counters as its driver shares them: the lifecycle's,
/// published by the thread or task that runs it before it answers anyone,
/// and the two events only the driver sees, added from any thread.
#[derive(Debug, Default)]
pub struct PublishedStats {
    hits: AtomicU64,
    replays: AtomicU64,
    lifecycle: Mutex<Stats>,
    /// Where replays are recorded too (feature `opentelemetry`).
    #[cfg(feature = "opentelemetry")]
    meters: std::sync::OnceLock<crate::telemetry::Meters>,
}

impl PublishedStats {
    /// Publishes the lifecycle's counters ([`Lifecycle::stats`](crate::Lifecycle::stats)).
    pub fn publish(&self, lifecycle: Stats) {
        *self.lifecycle.lock().unwrap_or_else(PoisonError::into_inner) = lifecycle;
    }

    /// Adds `n` tokens served without asking the lifecycle.
    pub fn add_cache_hits(&self, n: u64) {
        self.hits.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a request sent again after a 401.
    pub fn add_replay(&self) {
        self.replays.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "opentelemetry")]
        if let Some(meters) = self.meters.get() {
            meters.record_replay();
        }
    }

    /// Tells the counters what came of a request's answer (`verdict`, from
    /// [`judge`](crate::publish::replay::judge), for a request sent as
    /// `attempt`): with metrics, DPoP nonce retries to the API and the last
    /// answers to replayed requests are recorded. Call it after every
    /// verdict of a request that carried a DPoP proof or was sent again.
    #[inline]
    pub fn judged(&self, attempt: crate::publish::replay::Attempt, verdict: crate::publish::replay::Verdict) {
        #[cfg(feature = "opentelemetry")]
        // Most answers are not counted: that is known before the meters are looked up.
        if let Some(meters) = attempt.counted(verdict).then(|| self.meters.get()).flatten() {
            meters.record_verdict(attempt, verdict);
        }
        #[cfg(not(feature = "opentelemetry"))]
        let _ = (attempt, verdict);
    }

    /// Records the replays into `meters` as well, from now on (the first
    /// call decides).
    #[cfg(feature = "opentelemetry")]
    pub fn record_into(&self, meters: crate::telemetry::Meters) {
        let _ = self.meters.set(meters);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Stats {
        let mut stats = *self.lifecycle.lock().unwrap_or_else(PoisonError::into_inner);
        stats.cache_hits = self.hits.load(Ordering::Relaxed);
        stats.replays_after_401 = self.replays.load(Ordering::Relaxed);
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_the_lifecycles_counters_and_the_drivers_own() {
        let shared = PublishedStats::default();
        let lifecycle = Stats { fetches: 2, cache_hits: 99, ..Stats::default() };
        shared.publish(lifecycle);
        shared.add_cache_hits(64);
        shared.add_cache_hits(3);
        shared.add_replay();
        let stats = shared.snapshot();
        assert_eq!((stats.fetches, stats.cache_hits, stats.replays_after_401), (2, 67, 1), "the driver's own win");
        shared.publish(Stats { fetches: 3, ..Stats::default() });
        assert_eq!((shared.snapshot().fetches, shared.snapshot().cache_hits), (3, 67), "published again, hits kept");
    }
}
