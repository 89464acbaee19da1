//! The published token: the lock-free slot drivers read on every request.
//!
//! A driver's worker [`publish`](TokenSlot::publish)es each new token and
//! [`withdraw`](TokenSlot::withdraw)s it when the lifecycle says so; any
//! number of threads [`load`](TokenSlot::load) it with one atomic load (an
//! `arc-swap` guard: no lock, no reference count, no allocation).
//!
//! ```
//! use std::time::Instant;
//! use auth_core::slot::TokenSlot;
//!
//! let slot = TokenSlot::new();
//! assert!(slot.load(Instant::now()).is_none());
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::{ArcSwapOption, Guard};

use crate::token::{AccessToken, Generation};

/// The slot holding the token readers use.
#[derive(Debug, Default)]
pub struct TokenSlot {
    token: ArcSwapOption<AccessToken>,
    renewal_signalled: AtomicBool,
}

/// A token loaded from a [`TokenSlot`], usable when it was loaded.
pub struct Loaded {
    guard: Guard<Option<Arc<AccessToken>>>,
    renewal_due: bool,
}

impl Loaded {
    /// Whether this load is the first to see the token past its renewal
    /// point: the reader should tell its worker (once per token).
    #[inline]
    pub fn renewal_due(&self) -> bool {
        self.renewal_due
    }

    /// A shared handle on the token (a reference count).
    pub fn to_arc(&self) -> Arc<AccessToken> {
        Arc::clone(self.arc())
    }

    #[inline]
    fn arc(&self) -> &Arc<AccessToken> {
        match &*self.guard {
            Some(token) => token,
            // Safe: `TokenSlot::load` builds a `Loaded` only from a guard holding `Some`.
            None => unreachable!("Loaded always holds a token"),
        }
    }
}

impl std::ops::Deref for Loaded {
    type Target = AccessToken;

    #[inline]
    fn deref(&self) -> &AccessToken {
        self.arc()
    }
}

impl TokenSlot {
    /// An empty slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token, if it may be sent at `now` (before its `usable_until`).
    #[inline]
    pub fn load(&self, now: Instant) -> Option<Loaded> {
        let guard = self.token.load();
        let token = guard.as_ref().filter(|t| t.is_usable(now))?;
        let renewal_due = now >= token.renew_at() && !self.renewal_signalled.swap(true, Ordering::Relaxed);
        Some(Loaded { guard, renewal_due })
    }

    /// Makes `token` the one readers see (unless it already is).
    pub fn publish(&self, token: &Arc<AccessToken>) {
        let current = self.token.load();
        if current.as_ref().is_none_or(|t| t.generation() != token.generation()) {
            self.token.store(Some(Arc::clone(token)));
            self.renewal_signalled.store(false, Ordering::Relaxed);
        }
    }

    /// Stops readers from using the token of `generation`, if it is the
    /// one published (a 401, an expiry): a later token is never touched.
    pub fn withdraw(&self, generation: Generation) {
        let current = self.token.load();
        if current.as_ref().is_some_and(|t| t.generation() == generation) {
            self.token.compare_and_swap(&*current, None);
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tokens for tests are anchored at the real clock
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn publish_load_signal_and_withdraw_by_generation() {
        let slot = TokenSlot::new();
        let token = Arc::new(AccessToken::for_tests("t"));
        slot.publish(&token);
        let now = Instant::now();
        let loaded = slot.load(now).unwrap();
        assert_eq!(loaded.header_value(), "Bearer t");
        assert!(!loaded.renewal_due());
        // Past the renewal point: signalled once.
        let later = token.renew_at() + Duration::from_secs(1);
        assert!(slot.load(later).unwrap().renewal_due());
        assert!(!slot.load(later).unwrap().renewal_due());
        // Past usable_until: not handed out.
        assert!(slot.load(token.usable_until()).is_none());
        // Withdrawing another generation changes nothing.
        slot.withdraw(Generation(99));
        assert!(slot.load(now).is_some());
        slot.withdraw(token.generation());
        assert!(slot.load(now).is_none());
    }
}
