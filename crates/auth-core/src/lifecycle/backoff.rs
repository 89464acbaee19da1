//! How long a lifecycle waits after a failure before it asks again, and
//! how soon a caller's demand may bring that forward; how long a token
//! fetched for a 401 is protected from another 401.

use std::time::{Duration, Instant};

use crate::config::{BackoffPolicy, RefreshPolicy};
use crate::error::TokenError;

/// A backoff under way: no fetch before `until`, and callers get `error`
/// unless a usable token exists.
pub(super) struct Backoff {
    pub(super) until: Instant,
    pub(super) error: TokenError,
    /// When a caller's demand may bring the retry forward (transient
    /// errors only): see [`BackoffPolicy::demand_retry`].
    pub(super) demand_at: Option<Instant>,
}

impl Backoff {
    /// The backoff after the `failures`th failure in a row, `error`, at
    /// `now`.
    pub(super) fn after(
        now: Instant,
        policy: &BackoffPolicy,
        failures: u32,
        error: TokenError,
        rng: &mut fastrand::Rng,
    ) -> Self {
        let until = now.checked_add(delay(policy, failures, &error, rng)).unwrap_or(now);
        let demand_at = demand_delay(policy, &error, rng).and_then(|d| now.checked_add(d)).map(|at| at.min(until));
        Self { until, error, demand_at }
    }
}

/// The wait after the `failures`th failure in a row: exponential with
/// jitter up to the policy's maximum, at least the permanent delay for a
/// permanent error, and at least what a `Retry-After` asked (capped).
fn delay(policy: &BackoffPolicy, failures: u32, error: &TokenError, rng: &mut fastrand::Rng) -> Duration {
    if matches!(error, TokenError::SignInRequired { .. }) {
        // No request is sent until the user signs in; the store (where a
        // sign-in elsewhere lands) is read again after this.
        return policy.initial;
    }
    let exponent = failures.saturating_sub(1).min(64) as i32;
    let base = (policy.initial.as_secs_f64() * policy.multiplier.powi(exponent)).min(policy.max.as_secs_f64());
    let jittered = base * (1.0 - policy.jitter * rng.f64());
    // Saturating: an out-of-range float is the longest delay allowed.
    let mut delay = Duration::try_from_secs_f64(jittered.max(0.001)).unwrap_or(policy.max);
    if !error.is_transient() {
        delay = delay.max(policy.permanent_delay);
    }
    if let Some(asked) = error.retry_after() {
        delay = delay.max(asked.min(policy.max_retry_after));
    }
    delay
}

/// How soon after a transient failure a refused caller brings the retry
/// forward: [`BackoffPolicy::demand_retry`], shortened by up to a quarter
/// at random, but no sooner than a `Retry-After`. `None` for permanent
/// errors (their backoff stands).
fn demand_delay(policy: &BackoffPolicy, error: &TokenError, rng: &mut fastrand::Rng) -> Option<Duration> {
    if !error.is_transient() {
        return None;
    }
    let delay = policy.demand_retry.mul_f64(1.0 - 0.25 * rng.f64());
    Some(match error.retry_after() {
        Some(asked) => delay.max(asked.min(policy.max_retry_after)),
        None => delay,
    })
}

/// How long a token fetched because of a 401 is protected from being
/// invalidated by another 401: the policy's base, doubled with each 401
/// in a row, at most the backoff's maximum.
pub(super) fn unauthorized_delay(refresh: &RefreshPolicy, backoff: &BackoffPolicy, streak: u32) -> Duration {
    let base = refresh.unauthorized_backoff;
    let doublings = streak.saturating_sub(1).min(16);
    base.saturating_mul(1 << doublings).min(backoff.max.max(base))
}
