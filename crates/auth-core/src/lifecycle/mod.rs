//! The token lifecycle: a sans-IO state machine that decides when to fetch,
//! which token to hand out, and how to react to failures and 401s.
//!
//! [`Lifecycle`] owns no socket and reads no clock. It is driven with
//! explicit time (`now`) and events, and drained for actions:
//!
//! - getters (`&self`): [`Lifecycle::current_token`], [`Lifecycle::stats`], ...
//! - inputs (`handle_*`, each taking `now`):
//!   [`handle_token_wanted`](Lifecycle::handle_token_wanted),
//!   [`handle_fetch_response`](Lifecycle::handle_fetch_response),
//!   [`handle_fetch_failed`](Lifecycle::handle_fetch_failed),
//!   [`handle_unauthorized`](Lifecycle::handle_unauthorized),
//!   [`handle_timeout`](Lifecycle::handle_timeout),
//!   [`handle_discard`](Lifecycle::handle_discard);
//! - outputs: [`poll_output`](Lifecycle::poll_output) (drain after every
//!   input until `None`) and [`poll_timeout`](Lifecycle::poll_timeout) (call
//!   `handle_timeout` when it passes; a spurious call does nothing).
//!
//! # States
//!
//! ```text
//!            want                    fetch ok                 renew_at
//!  Empty ───────────▶ Fetching ───────────────▶ Fresh ───────────────▶ Stale
//!    ▲                  │  ▲                     ▲  │ 401(current gen)    │ (renewal in flight,
//!    │ backoff ends     │  │ refresh_token       │  ▼                     │  old token served)
//!    │                  │  │ invalid_grant:      │ Fetching ◀───────────┘
//!  Failed ◀─────────────┘  └ client_credentials  │
//!  (backing off; callers get the error unless a still-valid token exists)
//! ```
//!
//! A [`SourceGrant::SignIn`] source (a user's
//! tokens) starts `Empty` until [`Lifecycle::handle_sign_in`] or
//! [`Lifecycle::handle_restore`] gives it tokens, renews only with the
//! refresh token, and on `invalid_grant` (or with no refresh token) goes to
//! `Failed` with [`TokenError::SignInRequired`], sending nothing more until
//! the user signs in again; it never takes the client credentials branch.
//! With a shared store it spends the refresh token only under the renewal
//! lease, and never takes a rejected one from the store again.
//!
//! Invariants (checked by the property tests after every step):
//! a token is never handed out at or past `usable_until`; at most one fetch
//! is in flight; no fetch starts while a fresh token exists unless a 401
//! invalidated it; no fetch starts before a backoff ends; waiters are
//! answered (token or error) whenever a fetch completes, except when a
//! rejected refresh token is replaced by a client credentials fetch they
//! keep waiting on; `poll_timeout` is never earlier than the last `now`; a
//! sign-in source never asks for client credentials.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Response;

use crate::config::{SourceConfig, SourceGrant};
use crate::error::ConfigError;
use crate::error::{ErrorCode, SignInReason, TokenError};
use crate::request::{revocation_request, token_request, Grant, Revocable, RevocationRequest};
use crate::response::{parse_token_response_redacting, redactor_for, retry_after, TokenResponse, MAX_LIFETIME};
use crate::secret::{ExposeSecret, RefreshToken};
use crate::store::{
    unix_ms, BudgetAnswer, Envelope, LeaseOwner, Record, StoreAnswer, StoreConfig, StoreError, StoreOpId,
};
use crate::token::{AccessToken, Generation};

mod backoff;
mod budget;
mod outputs;
mod stats;
mod store_client;
mod timing;

use backoff::Backoff;
use budget::Budget;
use timing::Timing;

use store_client::{Acquiring, Awaiting, StoreClient};

pub use outputs::{
    FetchId, FetchReason, FetchRequest, GrantKind, Output, RejectedAfterRenewal, StoredToken, Unauthorized, Want,
    WithdrawReason,
};
pub use stats::{PublishedStats, Stats};

struct InFlight {
    id: FetchId,
    sent_at: Instant,
    grant: GrantKind,
    reason: FetchReason,
    /// Where the fetch was counted against the budget, to give it back.
    slot: Option<Slot>,
}

/// A fetch counted against the budget.
#[derive(Debug, Clone, Copy)]
struct Slot {
    id: u64,
    /// Counted in the shared store (and here).
    shared: bool,
}

struct Current {
    token: Arc<AccessToken>,
    reason: FetchReason,
    received_at: Instant,
    /// The API has accepted a request carrying it
    /// ([`Lifecycle::handle_accepted`]).
    accepted: bool,
}

/// The lifecycle of one token source. See the [module docs](self) for the
/// call order and the states.
pub struct Lifecycle {
    config: Arc<SourceConfig>,
    rng: fastrand::Rng,
    current: Option<Current>,
    /// The last token issued, kept after it is withdrawn so that provider
    /// text quoting it can still be redacted.
    last_issued: Option<Arc<AccessToken>>,
    refresh_token: Option<RefreshToken>,
    /// Why a sign-in source's user must sign in again, once the provider
    /// said so (cleared by new tokens).
    signed_out: Option<SignInReason>,
    fetch: Option<InFlight>,
    backoff: Option<Backoff>,
    consecutive_failures: u32,
    unauthorized_streak: u32,
    waiting: bool,
    /// A caller was refused during a backoff with no usable token: retry
    /// at the backoff's `demand_at`.
    demand: bool,
    /// The shared store's state, when one is configured.
    store: Option<Box<StoreClient>>,
    budget: Budget,
    next_fetch_id: u64,
    last_generation: u64,
    outputs: VecDeque<Output>,
    stats: Stats,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("cache_key", self.config.cache_key())
            .field("generation", &self.current.as_ref().map(|c| c.token.generation()))
            .field("fetch_in_flight", &self.fetch.as_ref().map(|f| f.id))
            .field("backoff_until", &self.backoff.as_ref().map(|b| b.until))
            .field("waiting", &self.waiting)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Lifecycle {
    /// A machine with no token. `seed` drives the jitter of renewal points
    /// and backoffs: give each replica a different one (random at start-up),
    /// and tests a fixed one.
    pub fn new(config: impl Into<Arc<SourceConfig>>, seed: u64) -> Self {
        Self {
            config: config.into(),
            rng: fastrand::Rng::with_seed(seed),
            current: None,
            last_issued: None,
            refresh_token: None,
            signed_out: None,
            fetch: None,
            backoff: None,
            consecutive_failures: 0,
            unauthorized_streak: 0,
            waiting: false,
            demand: false,
            store: None,
            budget: Budget::default(),
            next_fetch_id: 0,
            last_generation: 0,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// A machine with no token that shares its tokens through a store
    /// (see [`crate::store`]): before fetching it reads the store, adopts a
    /// token a peer fetched, or takes the renewal lease and fetches, then
    /// writes the new token back.
    pub fn with_store(config: impl Into<Arc<SourceConfig>>, seed: u64, store: StoreConfig) -> Self {
        let mut lifecycle = Self::new(config, seed);
        let owner = LeaseOwner(lifecycle.rng.u128(..));
        lifecycle.store = Some(Box::new(StoreClient::new(store, owner)));
        lifecycle
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &Arc<SourceConfig> {
        &self.config
    }

    /// The current token if it may be sent at `now`. Does not start a
    /// renewal; use [`Lifecycle::handle_token_wanted`] for that.
    pub fn current_token(&self, now: Instant) -> Option<&Arc<AccessToken>> {
        self.current.as_ref().map(|c| &c.token).filter(|t| t.is_usable(now))
    }

    /// The refresh token, when the provider issued one.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// The fetch in flight, if any.
    pub fn fetch_in_flight(&self) -> Option<FetchId> {
        self.fetch.as_ref().map(|f| f.id)
    }

    /// Until when fetches are held back after a failure, and the error.
    pub fn backoff(&self) -> Option<(Instant, &TokenError)> {
        self.backoff.as_ref().map(|b| (b.until, &b.error))
    }

    /// Whether callers are waiting on the fetch in flight.
    pub fn has_waiters(&self) -> bool {
        self.waiting
    }

    /// Counters since creation.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ----- inputs -----

    /// A caller needs a token at `now`.
    ///
    /// Returns a usable token at once when one exists (and starts its
    /// renewal in the background if it is due); otherwise starts the fetch
    /// (unless one is in flight) and says to wait; during a backoff with no
    /// usable token, returns the last error.
    pub fn handle_token_wanted(&mut self, now: Instant) -> Want {
        self.advance(now);
        if let Some(current) = &self.current {
            let token = Arc::clone(&current.token);
            if now >= token.renew_at && !self.busy() && self.backoff.is_none() {
                self.start_fetch(now, FetchReason::Renewal);
            }
            self.stats.hits += 1;
            return Want::Ready(token);
        }
        if !self.busy() {
            if let Some(backoff) = &self.backoff {
                if backoff.demand_at.is_none_or(|at| now < at) {
                    // A retry comes at `demand_at` (if the error is transient).
                    self.demand = true;
                    let mut error = backoff.error.clone();
                    if let TokenError::BudgetSpent { retry_in, .. } = &mut error {
                        *retry_in = backoff.until.saturating_duration_since(now);
                    }
                    return Want::Failed(error);
                }
                self.backoff = None;
            }
            self.start_fetch(now, FetchReason::NoToken);
            if let Some(backoff) = self.backoff.as_ref().filter(|_| !self.busy()) {
                // Refused at once: the fetch budget is spent.
                return Want::Failed(backoff.error.clone());
            }
        }
        self.waiting = true;
        self.stats.waits += 1;
        Want::Wait
    }

    /// The token endpoint answered fetch `id`; `wall` is the wall time at
    /// `now` (a `Retry-After` may be an HTTP-date). Answers for any other
    /// id than the fetch in flight are ignored.
    pub fn handle_fetch_response<B: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        wall: SystemTime,
        id: FetchId,
        response: &Response<B>,
    ) {
        self.advance(now);
        let Some(fetch) = self.fetch.take_if(|f| f.id == id) else {
            return;
        };
        match self.parse(wall, response).and_then(|parsed| self.install(now, &fetch, parsed)) {
            Ok(token) => {
                self.write_shared(&token, fetch.sent_at);
                self.delivered(token);
            }
            Err(error) => self.fail(now, fetch, error),
        }
    }

    /// Fetch `id` failed below HTTP (connect, TLS, timeout, oversized body).
    /// Answers for any other id than the fetch in flight are ignored.
    pub fn handle_fetch_failed(&mut self, now: Instant, id: FetchId, error: TokenError) {
        self.advance(now);
        if let Some(fetch) = self.fetch.take_if(|f| f.id == id) {
            let error = error.redacted(&redactor_for(&self.config, &self.held_secrets()));
            self.fail(now, fetch, error);
        }
    }

    /// The API accepted a request carrying the token of `generation` (it
    /// answered something other than 401). A token once accepted is
    /// settled: a later 401 to it is a revocation, renewed however soon it
    /// comes, and the run of tokens refused at once ends. Answers for any
    /// other token than the current one are ignored.
    pub fn handle_accepted(&mut self, generation: Generation) {
        if let Some(current) = self.current.as_mut().filter(|c| c.token.generation == generation) {
            if !current.accepted {
                current.accepted = true;
                self.unauthorized_streak = 0;
            }
        }
    }

    /// The API answered 401 to a request sent with the token of
    /// `generation`. Invalidates that token only if it is still current, so
    /// a burst of 401s causes one fetch; guards against a fetch loop: a
    /// token fetched because of a 401 and refused before the API accepted
    /// it once ([`Lifecycle::handle_accepted`]) is kept for a while and
    /// no other is fetched ([`Unauthorized::Suppressed`]). A token the API
    /// has accepted is renewed on a 401 however soon it comes.
    pub fn handle_unauthorized(&mut self, now: Instant, generation: Generation) -> Unauthorized {
        self.advance(now);
        let Some(current) = self.current.as_ref().filter(|c| c.token.generation == generation) else {
            return Unauthorized::AlreadyReplaced;
        };
        if current.reason == FetchReason::Unauthorized && !current.accepted {
            let until =
                current.received_at.checked_add(self.unauthorized_delay()).unwrap_or(current.token.usable_until);
            if now < until {
                self.stats.suppressed += 1;
                return Unauthorized::Suppressed { until };
            }
        }
        self.withdraw(WithdrawReason::Rejected);
        self.stats.invalidations += 1;
        self.invalidate_shared(generation);
        match (&mut self.fetch, self.store.as_mut().and_then(|s| s.acquiring.as_mut())) {
            (Some(fetch), _) => fetch.reason = FetchReason::Unauthorized,
            (None, Some(acquiring)) => acquiring.reason = FetchReason::Unauthorized,
            (None, None) if self.backoff.is_none() => self.start_fetch(now, FetchReason::Unauthorized),
            (None, None) => {}
        }
        Unauthorized::Invalidated
    }

    /// Time passed: expire tokens, end backoffs, start due renewals. Call it
    /// when [`Lifecycle::poll_timeout`] passes; extra calls are harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// Forgets the current token and refresh token (after revoking them,
    /// say). The next caller causes a new fetch.
    pub fn handle_discard(&mut self, now: Instant) {
        self.advance(now);
        if let Some(generation) = self.current.as_ref().map(|c| c.token.generation) {
            // Peers must not adopt it either.
            self.invalidate_shared(generation);
        }
        self.withdraw(WithdrawReason::Discarded);
        self.last_issued = None;
        self.refresh_token = None;
    }

    /// Forgets the current access token and refresh token (as
    /// [`Lifecycle::handle_discard`]) and returns the RFC 7009 requests that
    /// revoke them: the refresh token first (revoking it often revokes its
    /// access tokens too), then the access token if it was still usable.
    /// Send each and read its answer with
    /// [`RevocationRequest::parse_response`]. Fails, forgetting nothing,
    /// when no revocation URL is configured.
    pub fn handle_revoke(&mut self, now: Instant) -> Result<Vec<RevocationRequest>, ConfigError> {
        self.advance(now);
        let config = Arc::clone(&self.config);
        config.revocation_url().ok_or(ConfigError::NoRevocationUrl)?;
        let mut requests = Vec::with_capacity(2);
        if let Some(refresh) = &self.refresh_token {
            requests.push(revocation_request(&config, Revocable::RefreshToken(refresh))?);
        }
        if let Some(access) = self.current_token(now) {
            requests.push(revocation_request(&config, Revocable::AccessToken(access.value()))?);
        }
        // An answer may echo any token we hold, not only the one it revokes.
        for request in &mut requests {
            for secret in self.held_secrets() {
                request.redact_also(secret);
            }
        }
        self.handle_discard(now);
        Ok(requests)
    }

    /// Starts from a token saved earlier (a disk cache, another process):
    /// the access token is installed if it is still usable, the refresh
    /// token kept for the next renewal. Ignored when a token is already
    /// current. Emits [`Output::TokenReady`] when the access token is used.
    pub fn handle_restore(&mut self, now: Instant, stored: StoredToken) {
        self.advance(now);
        if self.current.is_some() {
            return;
        }
        if stored.refresh_token.is_some() {
            self.refresh_token = stored.refresh_token;
            self.signed_out = None;
        }
        let Some(access_token) = stored.access_token else {
            return;
        };
        let restored = InFlight {
            id: FetchId(0),
            sent_at: now,
            grant: GrantKind::ClientCredentials,
            reason: FetchReason::NoToken,
            slot: None,
        };
        let response = TokenResponse {
            access_token,
            // A saved lifetime is clamped like a fetched one.
            expires_in: Some(stored.expires_in.min(MAX_LIFETIME)),
            refresh_token: None,
            scope: stored.scope,
        };
        if let Ok(token) = self.install(now, &restored, response) {
            self.outputs.push_back(Output::TokenReady(token));
        }
    }

    /// A sign-in obtained tokens: `response` is the token endpoint's answer
    /// to the authorization code exchange (or the device code poll) sent at
    /// `sent_at`; `wall` is the wall time at `now`. The tokens replace
    /// whatever the machine held (a refresh token of the previous user
    /// included) and go to the shared store, where they replace any older
    /// record; from then on the access token is renewed with the refresh
    /// token. Waiters get the token ([`Output::TokenReady`]).
    ///
    /// Meant for [`SourceGrant::SignIn`] sources. A response that is not a
    /// usable token changes nothing and is returned as the error.
    pub fn handle_sign_in<B: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sent_at: Instant,
        response: &Response<B>,
    ) -> Result<Arc<AccessToken>, TokenError> {
        self.advance(now);
        let parsed = self.parse(wall, response)?;
        let signed_in = InFlight {
            id: FetchId(0),
            sent_at: sent_at.min(now),
            grant: GrantKind::ClientCredentials,
            reason: FetchReason::NoToken,
            slot: None,
        };
        let (refresh_before, signed_out_before) = (self.refresh_token.take(), self.signed_out.take());
        let token = match self.install(now, &signed_in, parsed) {
            Ok(token) => token,
            Err(error) => {
                (self.refresh_token, self.signed_out) = (refresh_before, signed_out_before);
                return Err(error);
            }
        };
        // A refresh in flight spends the previous user's token: its answer is ignored.
        self.fetch = None;
        self.release_lease();
        if let Some(store) = self.store.as_mut() {
            store.acquiring = None;
            store.awaiting = None;
            store.anchor = Some((now, wall));
            store.dead_refresh = None;
            // A sign-in replaces any record, however many renewals it saw.
            store.generation = store.generation.max(unix_ms(wall));
        }
        self.write_shared(&token, signed_in.sent_at);
        self.delivered(Arc::clone(&token));
        Ok(token)
    }

    /// The current token and refresh token, to save (a disk cache). `None`
    /// when there is neither.
    pub fn snapshot(&self, now: Instant) -> Option<StoredToken> {
        let token = self.current_token(now);
        if token.is_none() && self.refresh_token.is_none() {
            return None;
        }
        Some(StoredToken {
            access_token: token.map(|t| t.value().clone()),
            expires_in: token.map_or(Duration::ZERO, |t| t.remaining(now)),
            refresh_token: self.refresh_token.clone(),
            scope: token.and_then(|t| t.scope().map(str::to_owned)),
        })
    }

    /// The store answered operation `id` (see [`crate::store`]); `wall` is
    /// the wall time at `now`, to convert the store's Unix times. Answers to
    /// operations nobody waits for are counted and otherwise ignored.
    pub fn handle_store(
        &mut self,
        now: Instant,
        wall: SystemTime,
        id: StoreOpId,
        answer: Result<StoreAnswer, StoreError>,
    ) {
        let Some(store) = self.store.as_mut() else { return };
        store.anchor = Some((now, wall));
        let awaited = store.awaiting.take_if(|(awaited, _)| *awaited == id).map(|(_, what)| what);
        if store.failing != answer.is_err() {
            store.failing = answer.is_err();
            let error = answer.as_ref().err().cloned();
            self.outputs.push_back(Output::StoreHealth { available: error.is_none(), error });
        }
        if answer.is_err() {
            self.stats.store_errors += 1;
        }
        self.advance(now);
        let Some(what) = awaited else { return };
        let Some(store) = self.store.as_ref() else { return };
        let Some(acquiring) = store.acquiring.as_ref() else { return };
        let reason = acquiring.reason;
        // No acquisition starts while a lease is held (a write or a failure
        // releases it first): a held lease means the lease was won for this
        // one, and the read under way is the check before fetching.
        let leased = store.lease_held;
        let patience_over = acquiring.peer_wait_until.is_some_and(|until| now >= until);
        // A user's refresh token is spent only under the lease: with
        // rotation, a second use looks like theft to the provider. And a
        // store that fails to answer is not "no user signed in": the
        // tokens may well be there.
        let strict = self.config.grant() == SourceGrant::SignIn;
        match (what, answer) {
            (Awaiting::Budget(slot), Ok(StoreAnswer::Budget(BudgetAnswer::Granted))) => {
                self.budget.count(now, slot);
                self.send_fetch(now, reason, Some(Slot { id: slot, shared: true }));
            }
            (Awaiting::Budget(_), Ok(StoreAnswer::Budget(BudgetAnswer::Spent { next_at_unix_ms }))) => {
                let at = UNIX_EPOCH.checked_add(Duration::from_millis(next_at_unix_ms));
                let wait = at.and_then(|at| at.duration_since(wall).ok()).unwrap_or(Duration::ZERO);
                self.budget_spent(now, now.checked_add(wait), at, true);
            }
            // The store could not count it: count it here.
            (Awaiting::Budget(_), _) => self.fetch_now(now, reason, false),
            (Awaiting::Read, Ok(StoreAnswer::Envelope(envelope))) => {
                if envelope.is_some_and(|envelope| self.adopt(now, wall, &envelope)) {
                    // The previous holder wrote its token just before we won the lease.
                    self.release_lease();
                    return;
                }
                if leased {
                    self.fetch_now(now, reason, true);
                } else if patience_over && !strict {
                    self.stats.peer_waits_expired += 1;
                    self.fetch_now(now, reason, true);
                } else {
                    self.acquire_lease();
                }
            }
            (Awaiting::Lease, Ok(StoreAnswer::Lease(true))) => {
                self.stats.leases_won += 1;
                if let Some(store) = self.store.as_mut() {
                    store.lease_held = true;
                }
                // Reading and leasing are two steps: a peer may have written
                // its token and released the lease between them. Read again.
                self.read_store();
            }
            (Awaiting::Lease, Ok(StoreAnswer::Lease(false))) => {
                self.stats.leases_lost += 1;
                if strict {
                    // The peer is renewing: wait for its token as long as it holds the lease.
                    if let Some(acquiring) = self.store.as_mut().and_then(|s| s.acquiring.as_mut()) {
                        acquiring.peer_wait_until = None;
                    }
                }
                self.poll_store_later(now);
            }
            // A store error (or an answer of the wrong kind): with a usable
            // token, try the store again shortly; with callers waiting and
            // no token, fetch here at once, as without a store. A user's
            // refresh token is not spent without the lease: the store is
            // tried until the patience runs out, then callers get the error.
            (_, _) if (self.current.is_some() || strict) && !patience_over && !leased => self.poll_store_later(now),
            (_, answer) if strict && !leased => {
                let message = match answer {
                    Err(error) => error.to_string(),
                    Ok(_) => "it answered an operation with the wrong kind of answer".to_owned(),
                };
                self.back_off(now, TokenError::StoreUnavailable { message });
            }
            (_, _) => self.fetch_now(now, reason, false),
        }
    }

    /// Reads the store again after the poll interval, waiting for a peer's
    /// token (or for the store to answer) until the patience runs out: the
    /// peer wait, and never more than half the current token's remaining
    /// usable time, so that a renewal still ends before it stops.
    fn poll_store_later(&mut self, now: Instant) {
        let usable_until = self.current.as_ref().map(|c| c.token.usable_until);
        if let Some(store) = self.store.as_mut() {
            store.poll_later(now, usable_until);
        }
    }

    // ----- outputs -----

    /// The next action for the driver. Drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Lifecycle::handle_timeout`] must next be called: the token's
    /// `usable_until`, its renewal point (with background renewal), or the
    /// end of a backoff that holds back a renewal. `None`: nothing to do
    /// until an input arrives.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut deadline = None;
        if let Some(current) = &self.current {
            deadline = Some(current.token.usable_until);
            if !self.busy() {
                let next = match &self.backoff {
                    Some(backoff) => Some(backoff.until),
                    None if self.config.refresh_policy().background => Some(current.token.renew_at),
                    None => None,
                };
                deadline = earliest(deadline, next);
            }
        }
        if self.demand_retry_pending() {
            deadline = earliest(deadline, self.backoff.as_ref().and_then(|b| b.demand_at));
        }
        deadline = earliest(deadline, self.store.as_ref().and_then(|s| s.next_read()));
        deadline
    }

    // ----- internals -----

    /// Asks the store for the envelope.
    fn read_store(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        let request = store.read();
        self.stats.store_reads += 1;
        self.outputs.push_back(Output::Store(request));
    }

    fn acquire_lease(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        let request = store.acquire_lease();
        self.outputs.push_back(Output::Store(request));
    }

    fn release_lease(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        if let Some(request) = store.release_lease() {
            self.outputs.push_back(Output::Store(request));
        }
    }

    /// The current token of `generation` was rejected: delete it from the
    /// store too, if the store still holds that very token.
    fn invalidate_shared(&mut self, generation: Generation) {
        let Some(store) = self.store.as_mut() else { return };
        let Some(token) = self.last_issued.as_ref().filter(|t| t.generation == generation) else { return };
        let request = store.invalidate(crate::store::fingerprint(token.value().expose_secret()));
        self.outputs.push_back(Output::Store(request));
    }

    /// Writes a token this machine fetched to the store (releasing the
    /// lease with the write).
    fn write_shared(&mut self, token: &Arc<AccessToken>, sent_at: Instant) {
        let refresh_token = self.refresh_token.clone();
        let after_401 = self.current.as_ref().is_some_and(|c| c.reason == FetchReason::Unauthorized);
        let (key, streak) = (self.config.cache_key(), self.unauthorized_streak);
        let Some(store) = self.store.as_mut() else { return };
        let request = store.write(sent_at, token.expires_at, |issued, expires| {
            Record::from_parts(
                key,
                Some(token.value().clone()),
                issued,
                expires,
                token.lifetime_from_provider(),
                token.scope().map(str::to_owned),
                refresh_token,
                after_401,
                streak,
            )
        });
        if let Some(request) = request {
            self.outputs.push_back(Output::Store(request));
        }
    }

    /// Takes the token in `envelope` if it is good enough: for this cache
    /// key, not the one just rejected, and usable past this replica's own
    /// renewal point for it. Its refresh token is taken either way when
    /// the envelope is newer than anything seen.
    fn adopt(&mut self, now: Instant, wall: SystemTime, envelope: &Envelope) -> bool {
        let Some(store) = self.store.as_mut() else { return false };
        // A record is data from outside: checked before it changes anything.
        let Ok(record) = envelope.open(self.config.cache_key()) else {
            self.stats.store_errors += 1;
            return false;
        };
        if envelope.generation > crate::store::generation_bound(wall) {
            // Planted or corrupt: a generation no replica can have written
            // (sign-ins use the wall clock's milliseconds, renewals add one).
            self.stats.store_errors += 1;
            return false;
        }
        let newer = envelope.generation >= store.generation;
        store.generation = store.generation.max(envelope.generation);
        let rejected = store.rejected.as_deref() == Some(envelope.fingerprint.as_str());
        if newer {
            let dead = store.dead_refresh.as_deref();
            if let Some(refresh) =
                record.refresh_token().filter(|r| Some(crate::store::fingerprint(r.expose_secret()).as_str()) != dead)
            {
                self.refresh_token = Some(refresh.clone());
                self.signed_out = None;
            }
        }
        let current = self.current.as_ref().map(|c| crate::store::fingerprint(c.token.value().expose_secret()));
        let (Some(access), false) =
            (record.access_token(), rejected || current.as_deref() == Some(&envelope.fingerprint))
        else {
            return false;
        };
        // The record's times, as instants on this machine's clock.
        let Ok(remaining) = record.expires_at().duration_since(wall) else { return false };
        let lifetime = record.expires_at().duration_since(record.issued_at()).unwrap_or(remaining);
        let sent_at = now.checked_add(remaining).and_then(|end| end.checked_sub(lifetime)).unwrap_or(now);
        let reason = if record.after_401() { FetchReason::Unauthorized } else { FetchReason::NoToken };
        let adopted = InFlight { id: FetchId(0), sent_at, grant: GrantKind::ClientCredentials, reason, slot: None };
        let response = TokenResponse {
            access_token: access.clone(),
            expires_in: Some(lifetime.min(MAX_LIFETIME)),
            refresh_token: None,
            scope: record.scope().map(str::to_owned),
        };
        let previous = self.current.take();
        let streak = self.unauthorized_streak;
        match self.install(now, &adopted, response) {
            Ok(token) if now < token.renew_at => {
                self.unauthorized_streak = record.unauthorized_streak();
                if let Some(current) = self.current.as_mut() {
                    // The loop guard counts from when the peer got it.
                    current.received_at = sent_at;
                }
                if let Some(store) = self.store.as_mut() {
                    store.acquiring = None;
                }
                self.stats.adoptions += 1;
                self.delivered(token);
                true
            }
            _ => {
                // Not good enough: undo.
                self.current = previous;
                self.unauthorized_streak = streak;
                false
            }
        }
    }

    /// Brings the state up to `now`.
    fn advance(&mut self, now: Instant) {
        if self.current.as_ref().is_some_and(|c| !c.token.is_usable(now)) {
            self.withdraw(WithdrawReason::Expired);
        }
        if self.demand_retry_pending() && self.backoff.as_ref().and_then(|b| b.demand_at).is_some_and(|at| now >= at) {
            // Callers were refused while no token existed: retry now rather
            // than at the end of a long backoff.
            self.backoff = None;
            self.start_fetch(now, FetchReason::NoToken);
        }
        if self.backoff.as_ref().is_some_and(|b| now >= b.until) {
            self.backoff = None;
        }
        let renewal_due = self.current.as_ref().is_some_and(|c| now >= c.token.renew_at);
        if renewal_due && !self.busy() && self.backoff.is_none() && self.config.refresh_policy().background {
            self.start_fetch(now, FetchReason::Renewal);
        }
        if self.store.as_ref().and_then(|s| s.next_read()).is_some_and(|at| now >= at) {
            self.read_store();
        }
    }

    /// Whether a token is being obtained: a fetch in flight, or the store
    /// being consulted first.
    fn busy(&self) -> bool {
        self.fetch.is_some() || self.store.as_ref().is_some_and(|s| s.acquiring.is_some())
    }

    /// Obtains a new token: through the store when one is configured,
    /// otherwise by fetching at once.
    fn start_fetch(&mut self, now: Instant, reason: FetchReason) {
        if self.store.is_some() {
            self.demand = false;
            if let Some(store) = self.store.as_mut() {
                store.acquiring = Some(Acquiring { reason, peer_wait_until: None, next_read: None });
            }
            self.read_store();
        } else {
            self.fetch_now(now, reason, false);
        }
    }

    /// Sends the token request if the fetch budget allows it: counted in
    /// the store when one is configured and `store_ok` (it answered the
    /// acquisition so far), otherwise here.
    fn fetch_now(&mut self, now: Instant, reason: FetchReason, store_ok: bool) {
        if self.config.grant() == SourceGrant::SignIn && self.refresh_token.is_none() {
            // Checked before the budget counts a request that is never sent.
            self.refuse_without_refresh_token(now);
            return;
        }
        let Some(limit) = self.config.max_fetches_per_day() else {
            self.send_fetch(now, reason, None);
            return;
        };
        // This process's own fetches are a part of the fleet's: when they
        // alone fill the window, the store need not be asked.
        if let Some(next) = self.budget.full(now, limit) {
            let at = next.and_then(|next| self.store.as_ref().and_then(|s| s.wall(next)));
            self.budget_spent(now, next, at, false);
            return;
        }
        let id = self.budget.next_slot();
        if let Some(store) = self.store.as_mut().filter(|_| store_ok) {
            if let Some(request) = store.spend_budget(now, limit, id, reason) {
                self.outputs.push_back(Output::Store(request));
                return;
            }
        }
        self.budget.count(now, id);
        self.send_fetch(now, reason, Some(Slot { id, shared: false }));
    }

    /// The fetch budget is spent until `next` (no sooner than a second
    /// from now): no fetch until then; the current token is served while
    /// it is usable, and callers without one get the error.
    fn budget_spent(&mut self, now: Instant, next: Option<Instant>, at: Option<SystemTime>, shared: bool) {
        self.release_lease();
        if let Some(store) = self.store.as_mut() {
            store.acquiring = None;
        }
        let until = next.unwrap_or(now).max(now + Duration::from_secs(1));
        let limit = self.config.max_fetches_per_day().unwrap_or(0);
        let error = TokenError::BudgetSpent { limit, shared, retry_in: until - now, retry_at: at };
        self.stats.budget_refusals += 1;
        self.backoff = Some(Backoff { until, error: error.clone(), demand_at: None });
        self.waiting = false;
        self.outputs.push_back(Output::Failed(error));
    }

    /// Gives back the budget slot of a fetch the provider refused.
    fn refund(&mut self, slot: Slot) {
        self.budget.refund(slot.id);
        self.stats.budget_refunds += 1;
        if let Some(store) = self.store.as_mut().filter(|_| slot.shared) {
            let request = store.refund_budget(slot.id);
            self.outputs.push_back(Output::Store(request));
        }
    }

    /// Sends the token request.
    fn send_fetch(&mut self, now: Instant, reason: FetchReason, slot: Option<Slot>) {
        if let Some(store) = self.store.as_mut() {
            store.acquiring = None;
        }
        let sign_in = self.config.grant() == SourceGrant::SignIn;
        let use_refresh = self.config.refresh_policy().use_refresh_token || sign_in;
        let (grant, request) = match self.refresh_token.as_ref().filter(|_| use_refresh) {
            Some(refresh) => (GrantKind::RefreshToken, token_request(&self.config, Grant::RefreshToken(refresh))),
            None if sign_in => {
                // The refresh token can go between the budget's count and here (a discard).
                self.refuse_without_refresh_token(now);
                return;
            }
            None if self.config.grant() == SourceGrant::JwtBearer => {
                (GrantKind::JwtBearer, token_request(&self.config, Grant::JwtBearer))
            }
            None => (GrantKind::ClientCredentials, token_request(&self.config, Grant::ClientCredentials)),
        };
        self.demand = false;
        self.next_fetch_id += 1;
        let id = FetchId(self.next_fetch_id);
        self.fetch = Some(InFlight { id, sent_at: now, grant, reason, slot });
        self.stats.fetches += 1;
        self.outputs.push_back(Output::Fetch(FetchRequest { id, grant, reason, request }));
    }

    fn withdraw(&mut self, reason: WithdrawReason) {
        if let Some(current) = self.current.take() {
            self.outputs.push_back(Output::TokenWithdrawn { generation: current.token.generation, reason });
        }
    }

    /// Turns a parsed response into the current token.
    fn install(
        &mut self,
        now: Instant,
        fetch: &InFlight,
        response: TokenResponse,
    ) -> Result<Arc<AccessToken>, TokenError> {
        if response.refresh_token.is_some() {
            // A rotated refresh token replaces the spent one at once.
            self.refresh_token = response.refresh_token;
            self.signed_out = None;
        }
        let Timing { expires_at, usable_until, renew_at, lifetime, lifetime_from_provider } = Timing::of(
            self.config.refresh_policy(),
            response.expires_in.ok_or(self.config.default_lifetime()),
            fetch.sent_at,
            now,
            &mut self.rng,
        )?;
        // The parser checked the token type against the configuration.
        let dpop = self.config.dpop().cloned();
        let header = AccessToken::authorization_header(&response.access_token, dpop.is_some())
            .ok_or(TokenError::InvalidAccessToken { reason: "cannot be sent in an HTTP header" })?;
        self.last_generation += 1;
        let token = Arc::new(AccessToken {
            value: response.access_token,
            header,
            generation: Generation::nth(self.last_generation),
            issued_at: fetch.sent_at,
            expires_at,
            usable_until,
            renew_at,
            lifetime,
            lifetime_from_provider,
            scope: response.scope,
            dpop,
        });
        self.unauthorized_streak = match fetch.reason {
            FetchReason::Unauthorized => self.unauthorized_streak.saturating_add(1),
            FetchReason::NoToken | FetchReason::Renewal => 0,
        };
        // The new token replaces the old one (TokenReady says so): no withdrawal.
        self.current =
            Some(Current { token: Arc::clone(&token), reason: fetch.reason, received_at: now, accepted: false });
        self.last_issued = Some(Arc::clone(&token));
        Ok(token)
    }

    /// The tokens this machine holds, to redact from provider text (the
    /// parser adds the client secret).
    fn held_secrets(&self) -> Vec<&str> {
        let refresh = self.refresh_token.as_ref().map(|t| t.expose_secret());
        let current = self.current.as_ref().map(|c| c.token.value().expose_secret());
        let access = self.last_issued.as_ref().map(|t| t.value().expose_secret());
        refresh.into_iter().chain(current).chain(access).collect()
    }

    /// A sign-in source has no refresh token: no request; callers are told
    /// to sign the user in again, with why.
    fn refuse_without_refresh_token(&mut self, now: Instant) {
        let reason = self.signed_out.clone().unwrap_or(if self.last_issued.is_some() {
            SignInReason::NoRefreshToken
        } else {
            SignInReason::NotSignedIn
        });
        let error = self.sign_in_required(reason);
        self.back_off(now, error);
    }

    /// Parses a token endpoint answer, redacting every token held; an
    /// error's `Retry-After` in either form, against the wall time.
    fn parse<B: AsRef<[u8]>>(&self, wall: SystemTime, response: &Response<B>) -> Result<TokenResponse, TokenError> {
        let secrets = self.held_secrets();
        let (status, headers, body) = (response.status(), response.headers(), response.body().as_ref());
        parse_token_response_redacting(&self.config, &secrets, status, headers, body).map_err(|mut error| {
            error.fill_retry_after(retry_after(headers, wall));
            error
        })
    }

    /// A new token is current (fetched, adopted or signed in): the failures
    /// and backoff are over, and waiters get it.
    fn delivered(&mut self, token: Arc<AccessToken>) {
        self.consecutive_failures = 0;
        self.backoff = None;
        self.demand = false;
        self.waiting = false;
        self.stats.tokens += 1;
        self.outputs.push_back(Output::TokenReady(token));
    }

    /// The error that tells callers to sign the user in again.
    fn sign_in_required(&self, reason: SignInReason) -> TokenError {
        TokenError::SignInRequired { reason, hint: self.config.sign_in_hint().to_owned() }
    }

    /// Whether a refused caller is owed a retry at the backoff's `demand_at`.
    fn demand_retry_pending(&self) -> bool {
        self.demand && self.current.is_none() && !self.busy()
    }

    fn fail(&mut self, now: Instant, fetch: InFlight, mut error: TokenError) {
        if let Some(slot) = fetch.slot.filter(|_| nothing_issued(&error)) {
            self.refund(slot);
        }
        if fetch.grant == GrantKind::RefreshToken && error.code() == Some(&ErrorCode::InvalidGrant) {
            // The refresh token is dead: never spent again, even if the store still holds it.
            if let (Some(dead), Some(store)) = (self.refresh_token.take(), self.store.as_mut()) {
                store.dead_refresh = Some(crate::store::fingerprint(dead.expose_secret()));
            }
            match (self.config.grant(), error) {
                (SourceGrant::SignIn, TokenError::Provider(rejected)) => {
                    // Only the user can get new tokens: never the app's own in their place.
                    let reason = SignInReason::RefreshRejected(Box::new(rejected));
                    self.signed_out = Some(reason.clone());
                    error = self.sign_in_required(reason);
                }
                _ => {
                    // The client credentials still work.
                    self.stats.refresh_fallbacks += 1;
                    self.fetch_now(now, fetch.reason, true);
                    return;
                }
            }
        }
        self.back_off(now, error);
    }

    /// No token can be obtained now: the error goes to the waiters and to
    /// callers until the backoff ends.
    fn back_off(&mut self, now: Instant, error: TokenError) {
        if let Some(store) = self.store.as_mut() {
            store.acquiring = None;
        }
        self.release_lease();
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.stats.failures += 1;
        let policy = self.config.backoff_policy();
        self.backoff = Some(Backoff::after(now, policy, self.consecutive_failures, error.clone(), &mut self.rng));
        self.waiting = false;
        self.outputs.push_back(Output::Failed(error));
    }

    /// How long a token fetched because of a 401 is protected from being
    /// invalidated by another 401.
    fn unauthorized_delay(&self) -> Duration {
        backoff::unauthorized_delay(
            self.config.refresh_policy(),
            self.config.backoff_policy(),
            self.unauthorized_streak,
        )
    }
}

/// Whether a failed fetch certainly obtained no token, so that its budget
/// slot is given back: the provider answered with an error, or the request
/// did not complete. A success status with an unusable body counts.
fn nothing_issued(error: &TokenError) -> bool {
    match error {
        TokenError::Provider(_) | TokenError::Status { .. } | TokenError::Transport { .. } => true,
        TokenError::BodyTooLarge { status, .. } => !(200..300).contains(status),
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the tests anchor simulated time at one real instant
mod tests;
