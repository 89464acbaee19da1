//! The published token: the lock-free slot drivers read on every request.
//!
//! A driver's worker [`publish`](TokenSlot::publish)es each new token and
//! [`withdraw`](TokenSlot::withdraw)s it when the lifecycle says so; any
//! number of threads [`load`](TokenSlot::load) it with one atomic load (an
//! `arc-swap` guard: no lock, no reference count, no allocation), and a
//! [`SlotReader`] (one per client service) reads it with a single pointer
//! comparison.
//!
//! # When the clock is read
//!
//! Reading the clock costs more than everything else on the read path, so
//! a read takes a clock *closure* and calls it only when the answer may
//! depend on the time. Like the lifecycle, the slot is driven by time
//! events: the driver sleeps until [`TokenSlot::poll_timeout`] (the
//! published token's renewal point) and then calls
//! [`TokenSlot::handle_timeout`]. Until then the token is *fresh*: it is
//! far from its `usable_until` (the refresh-ahead window plus the safety
//! margin lie between), and reads skip the clock. From the renewal point
//! on, every read checks the clock against `usable_until` and reports the
//! first read past the renewal point (so a driver without background
//! renewal can start one). A [`SlotReader`] also reads the clock on every
//! 64th fresh read, so a driver whose timer is late cannot keep a token
//! fresh past its renewal point for long.
//!
//! # Which tokens are at risk, and which are accepted
//!
//! Every request whose body can be copied keeps a copy for a 401 by
//! default ([`ReplayCopies::Always`](crate::publish::replay::ReplayCopies::Always)). A read also tells whether its token
//! is [at risk](ReadToken::at_risk), for callers who keep copies only
//! then ([`ReplayCopies::AtRisk`](crate::publish::replay::ReplayCopies::AtRisk)), and the slot records which token the
//! API has accepted ([`TokenSlot::accept`]): the lifecycle's loop guard
//! holds renewals back only for a token refused before its first
//! acceptance ([`TokenSlot::handle_unauthorized`]). A token is *settled*
//! while it is fresh (before its renewal point), once the API has
//! accepted it, when its lifetime came from the provider, and when it is
//! not DPoP-bound. Anything else is at risk:
//!
//! - a token not yet accepted: a new one, one read from a shared store
//!   (another replica's fetch may have cost the provider's previous token),
//!   one published again after a 401;
//! - a token past its renewal point: the API's clock and ours may differ,
//!   and a renewal elsewhere may revoke it;
//! - a token whose lifetime was assumed (no `expires_in`);
//! - a DPoP-bound token: the API may ask for a new nonce at any time.
//!
//! ```
//! use std::time::Instant;
//! use auth_core::publish::slot::TokenSlot;
//!
//! let slot = TokenSlot::new();
//! assert!(slot.load(Instant::now).is_none());
//! assert!(slot.poll_timeout().is_none());
//! ```

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::cache::Cache;
use arc_swap::{ArcSwapOption, Guard};

use crate::lifecycle::Lifecycle;
use crate::publish::token::{AccessToken, Generation};

/// Fresh reads a [`SlotReader`] makes between two clock checks.
const SAMPLE_EVERY: u8 = 64;

/// The slot holding the token readers use.
#[derive(Debug, Default)]
pub struct TokenSlot {
    token: ArcSwapOption<AccessToken>,
    /// The generation of the published token while it is before its
    /// renewal point (as the driver's timer last saw it); 0 otherwise.
    fresh: AtomicU64,
    /// The generation of the published token once the API accepted it
    /// (see [`TokenSlot::accept`]); 0 before.
    accepted: AtomicU64,
    renewal_signalled: AtomicBool,
}

/// A token loaded from a [`TokenSlot`], usable when it was loaded.
pub struct Loaded {
    guard: Guard<Option<Arc<AccessToken>>>,
    renewal_due: bool,
    at_risk: bool,
}

impl Loaded {
    /// Whether a 401 to a request with this token can be cured by a new
    /// one often enough to keep a copy of the request (see the
    /// [module docs](self)).
    #[inline]
    pub fn at_risk(&self) -> bool {
        self.at_risk
    }

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

impl Deref for Loaded {
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

    /// The token, if it may be sent now; `clock` is called only when the
    /// token is not fresh (see the [module docs](self)).
    #[inline]
    pub fn load(&self, clock: impl FnOnce() -> Instant) -> Option<Loaded> {
        let guard = self.token.load();
        let token = guard.as_ref()?;
        let fresh = self.is_fresh(token);
        let renewal_due = if fresh { false } else { self.admit_at(token, clock())? };
        let at_risk = self.at_risk_when(token, fresh);
        Some(Loaded { guard, renewal_due, at_risk })
    }

    /// Whether `token` is at risk now (see the [module docs](self)): for
    /// a token held since it was loaded.
    #[inline]
    pub fn at_risk(&self, token: &AccessToken) -> bool {
        self.at_risk_when(token, self.is_fresh(token))
    }

    #[inline]
    fn at_risk_when(&self, token: &AccessToken, fresh: bool) -> bool {
        !fresh
            || self.accepted.load(Ordering::Relaxed) != token.generation().get()
            || !token.lifetime_from_provider
            || token.dpop.is_some()
    }

    /// The API accepted a request carrying the token of `generation` (it
    /// answered something other than 401): if that token is published,
    /// its requests stop keeping copies while it is fresh.
    pub fn accept(&self, generation: Generation) {
        if self.accepted.load(Ordering::Relaxed) == generation.get() {
            return;
        }
        let current = self.token.load();
        if current.as_ref().is_some_and(|t| t.generation() == generation) {
            self.accepted.store(generation.get(), Ordering::Relaxed);
        }
    }

    /// Whether the API has accepted a request carrying the token of
    /// `generation` while it was published (see [`TokenSlot::accept`]).
    pub fn accepted(&self, generation: Generation) -> bool {
        self.accepted.load(Ordering::Relaxed) == generation.get()
    }

    /// A driver's worker got a 401 for the token of `generation`: tells
    /// `lifecycle` first whether the API had accepted that token (so its
    /// loop guard holds back only a token refused before its first
    /// acceptance), then hands it the 401.
    pub fn handle_unauthorized(
        &self,
        lifecycle: &mut Lifecycle,
        now: Instant,
        generation: Generation,
    ) -> crate::lifecycle::Unauthorized {
        if self.accepted(generation) {
            lifecycle.handle_accepted(generation);
        }
        lifecycle.handle_unauthorized(now, generation)
    }

    #[inline]
    fn is_fresh(&self, token: &AccessToken) -> bool {
        self.fresh.load(Ordering::Acquire) == token.generation().get()
    }

    fn admit_at(&self, token: &AccessToken, now: Instant) -> Option<bool> {
        if !token.is_usable(now) {
            return None;
        }
        Some(now >= token.renew_at() && !self.renewal_signalled.swap(true, Ordering::Relaxed))
    }

    /// Makes `token` the one readers see (unless it already is), fresh
    /// when `now` is before its renewal point.
    pub fn publish(&self, token: &Arc<AccessToken>, now: Instant) {
        let current = self.token.load();
        if current.as_ref().is_none_or(|t| t.generation() != token.generation()) {
            // Published anew (or again after a withdrawal): not accepted yet.
            self.accepted.store(0, Ordering::Relaxed);
            self.token.store(Some(Arc::clone(token)));
            self.renewal_signalled.store(false, Ordering::Relaxed);
        }
        let fresh = if now < token.renew_at() { token.generation().get() } else { 0 };
        self.fresh.store(fresh, Ordering::Release);
    }

    /// Stops readers from using the token of `generation`, if it is the
    /// one published (a 401, an expiry): a later token is never touched.
    pub fn withdraw(&self, generation: Generation) {
        let current = self.token.load();
        if current.as_ref().is_some_and(|t| t.generation() == generation) {
            self.end_fresh(generation);
            self.token.compare_and_swap(&*current, None);
        }
    }

    /// When the driver must call [`TokenSlot::handle_timeout`]: the
    /// renewal point of the fresh token, if there is one.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let token = self.token.load();
        token.as_ref().filter(|t| self.is_fresh(t)).map(|t| t.renew_at())
    }

    /// Ends the fresh period of the published token once `now` reaches
    /// its renewal point: from then on every read checks the clock.
    pub fn handle_timeout(&self, now: Instant) {
        if let Some(token) = self.token.load().as_ref() {
            self.end_fresh_if_due(token, now);
        }
    }

    /// When a driver's worker must wake next: the earlier of `lifecycle`'s
    /// deadline and this slot's (see [`TokenSlot::poll_timeout`]).
    pub fn poll_timeout_with(&self, lifecycle: &Lifecycle) -> Option<Instant> {
        match (lifecycle.poll_timeout(), self.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The time event of a driver's worker, woken at
    /// [`TokenSlot::poll_timeout_with`]: the slot's, then `lifecycle`'s.
    pub fn handle_timeout_with(&self, lifecycle: &mut Lifecycle, now: Instant) {
        self.handle_timeout(now);
        lifecycle.handle_timeout(now);
    }

    /// Ends the fresh period of `token` if `now` is past its renewal point.
    fn end_fresh_if_due(&self, token: &AccessToken, now: Instant) {
        if now >= token.renew_at() {
            self.end_fresh(token.generation());
        }
    }

    fn end_fresh(&self, generation: Generation) {
        let _ = self.fresh.compare_exchange(generation.get(), 0, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// A reader for one client (one service instance): it keeps the
    /// published token and rechecks only whether it changed, one atomic
    /// load per read.
    pub fn reader(self: &Arc<Self>) -> SlotReader {
        SlotReader {
            cache: Cache::new(Published(Arc::clone(self))),
            slot: Arc::clone(self),
            until_sample: SAMPLE_EVERY,
        }
    }
}

/// The slot as `arc-swap`'s cache wants it: something dereferencing to
/// the swapped pointer.
#[derive(Debug, Clone)]
struct Published(Arc<TokenSlot>);

impl Deref for Published {
    type Target = ArcSwapOption<AccessToken>;

    fn deref(&self) -> &Self::Target {
        &self.0.token
    }
}

/// A per-client view of a [`TokenSlot`], for the hot path: it holds the
/// published token and reloads it only when the slot changed. Clone one
/// per client; reading needs `&mut self`.
///
/// A reader keeps the token it last saw alive (and in memory) until its
/// next read or its drop, even after the slot withdrew it; it never hands
/// out a withdrawn token.
#[derive(Debug, Clone)]
pub struct SlotReader {
    cache: Cache<Published, Option<Arc<AccessToken>>>,
    slot: Arc<TokenSlot>,
    until_sample: u8,
}

/// A token read through a [`SlotReader`], usable when it was read.
#[derive(Debug)]
pub struct ReadToken<'a> {
    token: &'a Arc<AccessToken>,
    renewal_due: bool,
    at_risk: bool,
}

impl<'a> ReadToken<'a> {
    /// Whether a 401 to a request with this token can be cured by a new
    /// one often enough to keep a copy of the request (see the
    /// [module docs](self)).
    #[inline]
    pub fn at_risk(&self) -> bool {
        self.at_risk
    }

    /// Whether this read is the first to see the token past its renewal
    /// point: the reader should tell its worker (once per token).
    #[inline]
    pub fn renewal_due(&self) -> bool {
        self.renewal_due
    }

    /// A shared handle on the token (a reference count).
    pub fn to_arc(&self) -> Arc<AccessToken> {
        Arc::clone(self.token)
    }

    /// The reader's handle on the token, for as long as the reader is
    /// borrowed.
    #[inline]
    pub fn as_arc(&self) -> &'a Arc<AccessToken> {
        self.token
    }
}

impl Deref for ReadToken<'_> {
    type Target = AccessToken;

    #[inline]
    fn deref(&self) -> &AccessToken {
        self.token
    }
}

impl SlotReader {
    /// The token, if it may be sent now; `clock` is called only when the
    /// token is not fresh, and on every 64th fresh read (a check that
    /// does not depend on the driver's timer).
    #[inline(always)]
    pub fn load(&mut self, clock: impl FnOnce() -> Instant) -> Option<ReadToken<'_>> {
        let token = self.cache.load().as_ref()?;
        let slot = &self.slot;
        let fresh = slot.is_fresh(token);
        let renewal_due = if fresh {
            self.until_sample -= 1;
            if self.until_sample == 0 {
                self.until_sample = SAMPLE_EVERY;
                sample(slot, token, clock())?
            } else {
                false
            }
        } else {
            slot.admit_at(token, clock())?
        };
        let at_risk = slot.at_risk_when(token, fresh);
        Some(ReadToken { token, renewal_due, at_risk })
    }
}

/// A clock check of a fresh token: ends its fresh period itself when the
/// driver's timer is late.
#[cold]
fn sample(slot: &TokenSlot, token: &AccessToken, now: Instant) -> Option<bool> {
    slot.end_fresh_if_due(token, now);
    slot.admit_at(token, now)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tokens for tests are anchored at the real clock
mod tests {
    use super::*;
    use std::time::Duration;

    fn no_clock() -> Instant {
        panic!("a fresh token is read without the clock")
    }

    #[test]
    fn publish_load_signal_and_withdraw_by_generation() {
        let slot = TokenSlot::new();
        let token = Arc::new(AccessToken::for_tests("t"));
        let now = Instant::now();
        slot.publish(&token, now);
        let loaded = slot.load(no_clock).unwrap();
        assert_eq!(loaded.header_value(), "Bearer t");
        assert!(!loaded.renewal_due());
        assert_eq!(slot.poll_timeout(), Some(token.renew_at()));
        // The timer before the renewal point changes nothing.
        slot.handle_timeout(now);
        assert!(slot.load(no_clock).is_some());
        // At the renewal point the fresh period ends: the clock decides.
        let later = token.renew_at() + Duration::from_secs(1);
        slot.handle_timeout(later);
        assert_eq!(slot.poll_timeout(), None);
        assert!(slot.load(|| later).unwrap().renewal_due());
        assert!(!slot.load(|| later).unwrap().renewal_due());
        // Past usable_until: not handed out.
        assert!(slot.load(|| token.usable_until()).is_none());
        // Withdrawing another generation changes nothing.
        slot.withdraw(Generation::nth(99));
        assert!(slot.load(|| now).is_some());
        slot.withdraw(token.generation());
        assert!(slot.load(|| now).is_none());
    }

    #[test]
    fn a_token_published_past_its_renewal_point_is_never_fresh() {
        let slot = TokenSlot::new();
        let token = Arc::new(AccessToken::for_tests("t"));
        let late = token.renew_at() + Duration::from_secs(1);
        slot.publish(&token, late);
        assert_eq!(slot.poll_timeout(), None);
        assert!(slot.load(|| late).unwrap().renewal_due());
        assert!(slot.load(|| token.usable_until()).is_none());
        let mut reader = Arc::new(slot).reader();
        assert!(reader.load(|| token.usable_until()).is_none());
    }

    #[test]
    fn withdrawing_ends_the_fresh_period() {
        let slot = Arc::new(TokenSlot::new());
        let token = Arc::new(AccessToken::for_tests("t"));
        let now = Instant::now();
        slot.publish(&token, now);
        let mut reader = slot.reader();
        assert!(reader.load(no_clock).is_some());
        slot.withdraw(token.generation());
        assert!(reader.load(no_clock).is_none());
        // Published again (the lifecycle kept it): fresh again.
        slot.publish(&token, now);
        assert!(reader.load(no_clock).is_some());
    }

    #[test]
    fn a_reader_follows_the_slot_and_samples_the_clock() {
        let slot = Arc::new(TokenSlot::new());
        let mut reader = slot.reader();
        assert!(reader.load(no_clock).is_none());
        let first = Arc::new(AccessToken::for_tests("first"));
        let now = Instant::now();
        slot.publish(&first, now);
        assert_eq!(reader.load(no_clock).unwrap().header_value(), "Bearer first");

        // The driver's timer is late: the token stays fresh in the slot,
        // but the 64th fresh read samples the clock, sees the renewal point
        // pass and ends the fresh period.
        let late = first.renew_at() + Duration::from_secs(1);
        let (mut clock_reads, mut renewal_reports) = (0, 0);
        for _ in 1..SAMPLE_EVERY {
            let read = reader.load(|| {
                clock_reads += 1;
                late
            });
            renewal_reports += usize::from(read.unwrap().renewal_due());
        }
        assert_eq!((clock_reads, renewal_reports), (1, 1), "one sample, which reports the renewal");
        assert_eq!(slot.poll_timeout(), None, "the sample ended the fresh period");
        // From now on every read checks the clock; the renewal is not reported twice.
        let mut clock_reads = 0;
        for _ in 0..3 {
            let read = reader.load(|| {
                clock_reads += 1;
                late
            });
            assert!(!read.unwrap().renewal_due());
        }
        assert_eq!(clock_reads, 3);
        assert!(reader.load(|| first.usable_until()).is_none());

        // A new token replaces the cached one at the next read.
        let mut second = AccessToken::for_tests("second");
        second.generation = Generation::nth(2);
        slot.publish(&Arc::new(second), now);
        let read = reader.load(no_clock).unwrap();
        assert_eq!(read.header_value(), "Bearer second");
        assert_eq!(read.generation(), Generation::nth(2));
    }

    /// A token numbered `n`, with its renewal point `renew_in` from `base`.
    fn numbered(n: u64, base: Instant, renew_in: Duration) -> Arc<AccessToken> {
        let mut token = AccessToken::for_tests(&format!("t{n}"));
        token.generation = Generation::nth(n);
        token.issued_at = base;
        token.renew_at = base + renew_in;
        token.usable_until = base + renew_in + Duration::from_secs(60);
        token.expires_at = token.usable_until + Duration::from_secs(10);
        Arc::new(token)
    }

    #[test]
    fn a_token_is_at_risk_until_the_api_accepts_it_and_again_past_its_renewal_point() {
        let slot = Arc::new(TokenSlot::new());
        let now = Instant::now();
        let token = numbered(1, now, Duration::from_secs(3000));
        slot.publish(&token, now);
        let mut reader = slot.reader();
        assert!(slot.load(no_clock).unwrap().at_risk(), "new: not yet accepted");
        assert!(reader.load(no_clock).unwrap().at_risk());
        slot.accept(Generation::nth(2));
        assert!(reader.load(no_clock).unwrap().at_risk(), "another token's answer settles nothing");
        slot.accept(token.generation());
        assert!(!reader.load(no_clock).unwrap().at_risk(), "accepted and fresh: settled");
        assert!(!slot.load(no_clock).unwrap().at_risk());
        assert!(!slot.at_risk(&token));

        // Withdrawn after a 401 and published again: at risk until accepted again.
        slot.withdraw(token.generation());
        slot.accept(token.generation());
        slot.publish(&token, now);
        assert!(reader.load(no_clock).unwrap().at_risk());
        slot.accept(token.generation());
        assert!(!reader.load(no_clock).unwrap().at_risk());

        // Past the renewal point: at risk again, accepted or not.
        let late = token.renew_at();
        slot.handle_timeout(late);
        assert!(reader.load(|| late).unwrap().at_risk());
        assert!(slot.load(|| late).unwrap().at_risk());

        // A new token starts at risk.
        let next = numbered(2, late, Duration::from_secs(3000));
        slot.publish(&next, late);
        assert!(reader.load(no_clock).unwrap().at_risk());
    }

    #[test]
    fn an_assumed_lifetime_or_a_dpop_key_keeps_a_token_at_risk() {
        let now = Instant::now();
        let mut assumed = AccessToken::for_tests("assumed");
        assumed.lifetime_from_provider = false;
        let mut bound = AccessToken::for_tests("bound");
        bound.generation = Generation::nth(2);
        bound.dpop = Some(crate::dpop::Dpop::generate().expect("a DPoP key"));
        for token in [assumed, bound] {
            let slot = TokenSlot::new();
            let token = Arc::new(token);
            slot.publish(&token, now);
            slot.accept(token.generation());
            assert!(slot.load(no_clock).unwrap().at_risk(), "{token:?}");
        }
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Publish(u64, u64),
            Accept(u64),
            Withdraw(u64),
            Timeout(u64),
            Read(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            let generation = 1u64..4;
            let second = 0u64..200;
            prop_oneof![
                (generation.clone(), second.clone()).prop_map(|(g, s)| Op::Publish(g, s)),
                generation.clone().prop_map(Op::Accept),
                generation.prop_map(Op::Withdraw),
                second.clone().prop_map(Op::Timeout),
                second.prop_map(Op::Read),
            ]
        }

        proptest! {
            /// Against a model: a read is settled (no copy) exactly when
            /// the published token was accepted since it was last
            /// published, and it is before its renewal point; it is handed
            /// out exactly when published and usable.
            #[test]
            fn reads_are_settled_only_when_accepted_and_fresh(ops in proptest::collection::vec(op(), 1..60)) {
                let base = Instant::now();
                let at = |s: u64| base + Duration::from_secs(s);
                // Token n renews 100 s after `base` and is usable 60 s more.
                let tokens: Vec<_> = (1..4).map(|n| numbered(n, base, Duration::from_secs(100))).collect();
                let slot = Arc::new(TokenSlot::new());
                let mut reader = slot.reader();
                // The model: what is published, whether accepted, whether the timer ended its fresh period.
                let (mut published, mut accepted, mut fresh) = (None::<u64>, false, false);
                for op in ops {
                    match op {
                        Op::Publish(g, s) => {
                            if published != Some(g) {
                                accepted = false;
                            }
                            published = Some(g);
                            fresh = s < 100;
                            slot.publish(&tokens[g as usize - 1], at(s));
                        }
                        Op::Accept(g) => {
                            accepted |= published == Some(g);
                            slot.accept(Generation::nth(g));
                        }
                        Op::Withdraw(g) => {
                            if published == Some(g) {
                                published = None;
                                accepted = false;
                                fresh = false;
                            }
                            slot.withdraw(Generation::nth(g));
                        }
                        Op::Timeout(s) => {
                            fresh &= s < 100;
                            slot.handle_timeout(at(s));
                        }
                        Op::Read(s) => {
                            let usable = published.is_some() && (fresh || s < 160);
                            let loaded = slot.load(|| at(s));
                            prop_assert_eq!(loaded.is_some(), usable);
                            if let Some(loaded) = loaded {
                                prop_assert_eq!(loaded.at_risk(), !(accepted && fresh));
                            }
                            // The reader may sample the clock (every 64th read); with fewer reads it agrees.
                            let read = reader.load(|| at(s));
                            prop_assert_eq!(read.as_ref().map(|r| r.at_risk()), usable.then_some(!(accepted && fresh)));
                        }
                    }
                }
            }
        }
    }
}
