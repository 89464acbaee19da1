//! The renewal and backoff policies and every bound a configuration is
//! checked against.

#[cfg(doc)]
use super::{SourceConfigBuilder, SourceGrant};

use std::time::Duration;

use crate::error::ConfigError;

/// When a token is renewed and when it stops being sent.
///
/// For a token with lifetime `L` fetched at `sent`:
///
/// - `expires_at = sent + L`;
/// - the *safety margin* is `min(safety_margin, L / 10)`: inside it the token
///   is never sent, because it may expire in flight or on a server whose
///   clock runs ahead. It shrinks for short tokens so that a 10-second token
///   is still usable for 9 seconds;
/// - the token is *usable* until `expires_at - margin`; call that `U` after
///   `sent`;
/// - renewal starts `min(U * refresh_ahead_fraction, max_refresh_ahead)`
///   before the end of `U`, widened by a random share of up to `jitter` of
///   that window (so that replicas started together do not renew together),
///   and never before `U / 2`.
///
/// With the defaults a 1-hour token is renewed 60-90 s before it stops
/// being usable (one fetch per lifetime: at most 25 a day), a 24-hour
/// token likewise, and a 60-second token 5-8 s before. Until the renewal
/// completes, the old token keeps being served: no caller waits.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshPolicy {
    /// Share of the usable lifetime spent in the renewal window. Default
    /// `0.1`. Range `0.0..=0.5`.
    pub refresh_ahead_fraction: f64,
    /// Upper bound of the renewal window before jitter. At most 1 day.
    /// Default 60 s: long
    /// enough for a few retries with backoff, short enough that a 1-hour
    /// token costs one fetch per lifetime (MSAL uses 5 min, Google 3m45s,
    /// both at the price of extra fetches a day).
    pub max_refresh_ahead: Duration,
    /// Random widening of the renewal window, as a share of it. Default
    /// `0.5`. Range `0.0..=1.0`.
    pub jitter: f64,
    /// The hard margin before expiry inside which a token is not sent.
    /// Default 10 s (Go's oauth2 uses 10 s; Spring 60 s). At most 1 hour.
    pub safety_margin: Duration,
    /// Renew from a timer at the renewal point even when no caller asks.
    /// Default `true`: callers never wait after the first token. With
    /// `false` the renewal starts on the first request after the renewal
    /// point (that request still uses the old token).
    pub background: bool,
    /// Renew with the refresh token when the provider issued one, falling
    /// back to the client credentials grant on `invalid_grant`. Default
    /// `true`. A [`SourceGrant::SignIn`] source always renews with its
    /// refresh token (it has nothing else) and never falls back.
    pub use_refresh_token: bool,
    /// After a token fetched because of a 401 is itself answered 401, the
    /// next 401-triggered fetch waits this long, doubling each time up to
    /// [`BackoffPolicy::max`]. Default 10 s. It keeps an API that rejects
    /// every token (wrong audience, wrong API key) from causing a fetch loop.
    /// More than zero, at most 1 day.
    pub unauthorized_backoff: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            refresh_ahead_fraction: 0.1,
            max_refresh_ahead: Duration::from_secs(60),
            jitter: 0.5,
            safety_margin: Duration::from_secs(10),
            background: true,
            use_refresh_token: true,
            unauthorized_backoff: Duration::from_secs(10),
        }
    }
}

/// How failed token fetches are retried.
///
/// After the `n`th consecutive failure the next fetch waits
/// `min(initial * multiplier^(n-1), max)`, shortened by a random share of up
/// to `jitter`. A permanent error (bad credentials or scope) waits at least
/// `permanent_delay`; a `Retry-After` from the provider is honoured up to
/// `max_retry_after`. While waiting, callers are served the still-valid
/// token if one exists, and otherwise get the last error at once; after a
/// transient error, such a refused caller brings the next try forward to
/// [`demand_retry`](BackoffPolicy::demand_retry) after the failure, so that
/// callers get a token soon after the endpoint heals, however long the
/// outage was. Without callers the backoff grows up to `max`.
///
/// Every value is checked by [`SourceConfigBuilder::build`]; the bounds
/// are given with each field.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffPolicy {
    /// First delay. Default 1 s. Range: more than zero, at most 1 hour.
    pub initial: Duration,
    /// Growth factor. Default `2.0`. Range `1.0..=10.0`.
    pub multiplier: f64,
    /// Longest delay. Default 5 min. Range: at least `initial`, at most 1 day.
    pub max: Duration,
    /// Random shortening, as a share of the delay. Default `0.5` (delays
    /// fall between half and all of the computed value). Range `0.0..=1.0`.
    pub jitter: f64,
    /// Least delay after a permanent error. Default 60 s: a fixed
    /// configuration will not heal by itself, and hammering the endpoint
    /// with bad credentials can get a client locked out. At most 1 day.
    pub permanent_delay: Duration,
    /// Cap on an honoured `Retry-After`. Default 10 min. At most 1 day.
    pub max_retry_after: Duration,
    /// While no usable token exists and callers ask for one, a transient
    /// failure is retried this long after it happened (shortened by up to
    /// a quarter at random; a `Retry-After` is still honoured) rather than
    /// at the end of the backoff. Default 2 s. Range: 100 ms to 10 min.
    pub demand_retry: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.5,
            permanent_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
            demand_retry: Duration::from_secs(2),
        }
    }
}

/// The window of [`SourceConfigBuilder::max_fetches_per_day`]: 24 hours.
pub const FETCH_BUDGET_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The largest fetch budget ([`SourceConfigBuilder::max_fetches_per_day`]).
pub const MAX_FETCHES_PER_DAY: u32 = 100_000;

/// Longest lifetime accepted from `expires_in`: 366 days. Larger values
/// are clamped, so that no arithmetic on an `Instant` can overflow.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// The longest delay or window a policy may name: longer ones are
/// mistakes, and would overflow `Instant` arithmetic on some platforms.
pub(super) const ONE_DAY: Duration = Duration::from_secs(24 * 3600);
pub(super) const ONE_HOUR: Duration = Duration::from_secs(3600);

/// The largest response body cap: bodies are read whole into memory.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;

pub(super) fn validate_policies(
    refresh: &RefreshPolicy,
    backoff: &BackoffPolicy,
    default_lifetime: Duration,
    max_body_bytes: usize,
) -> Result<(), ConfigError> {
    let checks: [(bool, &'static str, &'static str); 16] = [
        ((0.0..=0.5).contains(&refresh.refresh_ahead_fraction), "refresh_ahead_fraction", "0.0 to 0.5"),
        ((0.0..=1.0).contains(&refresh.jitter), "refresh jitter", "0.0 to 1.0"),
        (refresh.max_refresh_ahead <= ONE_DAY, "max_refresh_ahead", "at most 1 day"),
        (refresh.safety_margin <= ONE_HOUR, "safety_margin", "at most 1 hour"),
        (
            !refresh.unauthorized_backoff.is_zero() && refresh.unauthorized_backoff <= ONE_DAY,
            "unauthorized_backoff",
            "more than zero and at most 1 day",
        ),
        ((1.0..=10.0).contains(&backoff.multiplier), "backoff multiplier", "1.0 to 10.0"),
        ((0.0..=1.0).contains(&backoff.jitter), "backoff jitter", "0.0 to 1.0"),
        (
            !backoff.initial.is_zero() && backoff.initial <= ONE_HOUR,
            "backoff initial",
            "more than zero and at most 1 hour",
        ),
        (backoff.max >= backoff.initial, "backoff max", "at least the initial delay"),
        (backoff.max <= ONE_DAY, "backoff max", "at most 1 day"),
        (backoff.permanent_delay <= ONE_DAY, "backoff permanent_delay", "at most 1 day"),
        (backoff.max_retry_after <= ONE_DAY, "backoff max_retry_after", "at most 1 day"),
        (
            (Duration::from_millis(100)..=Duration::from_secs(600)).contains(&backoff.demand_retry),
            "backoff demand_retry",
            "100 ms to 10 minutes",
        ),
        (
            !default_lifetime.is_zero() && default_lifetime <= MAX_LIFETIME,
            "default_lifetime",
            "more than zero and at most 366 days",
        ),
        (max_body_bytes >= 1024, "max_body_bytes", "at least 1024"),
        (max_body_bytes <= MAX_BODY_BYTES_LIMIT, "max_body_bytes", "at most 16 MiB"),
    ];
    match checks.iter().find(|(ok, _, _)| !ok) {
        Some((_, name, reason)) => Err(ConfigError::InvalidPolicy { name, reason }),
        None => Ok(()),
    }
}
