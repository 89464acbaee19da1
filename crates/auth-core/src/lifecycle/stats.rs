//! A token source's counters, and how a driver shares them between the
//! thread that runs the lifecycle and the handles that read them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A token source's counters since it was created: the lifecycle counts
/// every decision it takes; a driver adds the two events that never reach
/// it (`cache_hits`, `replays_after_401`). The drivers' `Stats` are this
/// type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Tokens a driver served from its published slot without asking the
    /// lifecycle (the lock-free read path). Filled by the driver; a driver
    /// may add them in batches (auth-tower: of 64, and when a service
    /// drops), so the latest may not show yet.
    pub cache_hits: u64,
    /// Requests a driver sent again after a 401, with a renewed token.
    /// Filled by the driver.
    pub replays_after_401: u64,
    /// Fetches started.
    pub fetches: u64,
    /// Tokens obtained.
    pub tokens: u64,
    /// Fetches that failed.
    pub failures: u64,
    /// Refresh grants rejected with `invalid_grant` and replaced by a client
    /// credentials fetch.
    pub refresh_fallbacks: u64,
    /// Tokens invalidated by a 401.
    pub invalidations: u64,
    /// 401s that did not invalidate because of the fetch-loop guard.
    pub suppressed: u64,
    /// `handle_token_wanted` calls answered with a token at once.
    pub hits: u64,
    /// `handle_token_wanted` calls told to wait.
    pub waits: u64,
    /// Store reads.
    pub store_reads: u64,
    /// Tokens taken from the store (fetched by a peer) instead of fetched.
    pub adoptions: u64,
    /// Renewal leases taken.
    pub leases_won: u64,
    /// Lease attempts that found a peer holding it (the token it fetched
    /// was awaited).
    pub leases_lost: u64,
    /// Waits for a peer's fetch that ended in a local fetch.
    pub peer_waits_expired: u64,
    /// Store operations that failed or timed out (each fell back to a
    /// local fetch or was skipped).
    pub store_errors: u64,
    /// Fetches not made because the fetch budget was spent.
    pub budget_refusals: u64,
    /// Counted fetches given back because the provider refused them.
    pub budget_refunds: u64,
    /// Claims on the shared refresh token written before spending it.
    pub refresh_claims: u64,
    /// Times the refresh token due to be spent was claimed by a peer (its
    /// new tokens were awaited instead).
    pub claim_waits: u64,
}

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
    /// Publishes the lifecycle's counters ([`Lifecycle::stats`](super::Lifecycle::stats)).
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
        if let Some(meters) = self.meters.get().filter(|_| attempt.counted(verdict)) {
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
