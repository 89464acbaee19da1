//! When a token expires, until when it may be sent, and when it is
//! renewed: from its lifetime, the moment the request for it was sent and
//! the refresh policy.

use std::time::{Duration, Instant};

use crate::config::RefreshPolicy;
use crate::error::TokenError;

/// A new token's times.
pub(super) struct Timing {
    pub(super) expires_at: Instant,
    /// The safety margin before `expires_at`: never sent at or after it.
    pub(super) usable_until: Instant,
    pub(super) renew_at: Instant,
    pub(super) lifetime: Duration,
    /// The provider said the lifetime (`expires_in`).
    pub(super) lifetime_from_provider: bool,
}

impl Timing {
    /// The times of a token whose request was sent at `sent_at` and that
    /// arrived at `now`; its lifetime as the provider said (`Ok`) or
    /// assumed (`Err`, the configured default). Expiry counts from when
    /// the request was sent; the renewal point comes ahead of the end by
    /// the policy's fraction (at most its maximum), with jitter, and a
    /// token that arrived late is renewed halfway through what is left.
    pub(super) fn of(
        policy: &RefreshPolicy,
        lifetime: Result<Duration, Duration>,
        sent_at: Instant,
        now: Instant,
        rng: &mut fastrand::Rng,
    ) -> Result<Self, TokenError> {
        let (lifetime, lifetime_from_provider) = match lifetime {
            Ok(lifetime) => (lifetime, true),
            Err(assumed) => (assumed, false),
        };
        let elapsed = now.saturating_duration_since(sent_at);
        let expired = TokenError::ExpiredOnArrival { lifetime, elapsed };
        let expires_at = sent_at.checked_add(lifetime).ok_or_else(|| expired.clone())?;
        let margin = policy.safety_margin.min(lifetime / 10);
        let usable_until = expires_at.checked_sub(margin).unwrap_or(expires_at);
        if usable_until <= now {
            return Err(expired);
        }
        let usable = usable_until.duration_since(sent_at);
        let window = usable.mul_f64(policy.refresh_ahead_fraction).min(policy.max_refresh_ahead);
        let window = window.mul_f64(1.0 + policy.jitter * rng.f64()).min(usable / 2);
        let late_floor = now + usable_until.duration_since(now) / 2;
        let renew_at = (usable_until - window).max(late_floor);
        Ok(Self { expires_at, usable_until, renew_at, lifetime, lifetime_from_provider })
    }
}
