//! A token source's counters (a driver shares them through
//! [`PublishedStats`](crate::driver::PublishedStats)).

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
