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
//! A [`SourceGrant::SignIn`](crate::config::SourceGrant::SignIn) source (a user's
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
use std::time::{Instant, SystemTime};

use http::Response;

use crate::config::SourceConfig;
use crate::error::ConfigError;
use crate::error::{SignInReason, TokenError};
use crate::publish::token::{AccessToken, Generation};
use crate::secret::RefreshToken;
use crate::store::{LeaseOwner, StoreConfig};
use crate::wire::request::{revocation_request, Revocable, RevocationRequest};
use crate::wire::response::redactor_for;

mod backoff;
mod budget;
mod claims;
mod fetching;
mod handed;
mod observations;
mod outputs;
mod sharing;
mod stats;
mod step_up;
mod store_client;
mod timing;
mod upstream;

use backoff::Backoff;
use budget::Budget;

use store_client::StoreClient;

pub use observations::{Observation, RequestOutcome, TokenOrigin, UnauthorizedOutcome};
pub use outputs::{
    FetchId, FetchReason, FetchRequest, GrantKind, Output, RejectedAfterRenewal, StoredToken, Unauthorized, Want,
    WithdrawReason,
};
pub use stats::Stats;

struct InFlight {
    id: FetchId,
    sent_at: Instant,
    grant: GrantKind,
    reason: FetchReason,
    /// Where the fetch was counted against the budget, to give it back.
    slot: Option<Slot>,
    /// How many step-up scopes it asked for ([`Lifecycle::handle_step_up`]).
    scopes_added: usize,
}

/// A fetch counted against the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// How many step-up scopes it was asked with.
    scopes_added: usize,
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
    /// The fingerprint of a restored access token that was too old to
    /// install: a discard also deletes a stored record that still holds it
    /// (with the refresh token restored beside it).
    restored_unused: Option<String>,
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
    /// Whether observations are kept ([`Lifecycle::observe`]).
    observing: bool,
    observations: VecDeque<Observation>,
    stats: Stats,
    /// How many scopes step-ups added to the configured ones (the last of
    /// `config`'s scopes).
    scopes_added: usize,
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
            restored_unused: None,
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
            observing: false,
            observations: VecDeque::new(),
            stats: Stats::default(),
            scopes_added: 0,
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
        let spent = (fetch.grant == GrantKind::RefreshToken).then(|| self.claimed_refresh()).flatten();
        let replaced_left = self.current_left(now);
        let answered = self
            .parse(wall, response)
            .and_then(|parsed| self.exchanged(&fetch, parsed))
            .and_then(|parsed| self.install(now, &fetch, parsed));
        let outcome = answered.as_ref().map_or_else(RequestOutcome::of, |_| RequestOutcome::Granted);
        let took = now.saturating_duration_since(fetch.sent_at);
        self.observed(Observation::TokenRequest { reason: fetch.reason, grant: fetch.grant, outcome, took });
        match answered {
            Ok(token) => {
                let lifetime = token.lifetime();
                self.observed(Observation::TokenInstalled { origin: TokenOrigin::Fetched, lifetime, replaced_left });
                self.write_shared(&token, fetch.sent_at, spent);
                self.delivered(token);
            }
            Err(error) => {
                if let Some(spent) = spent {
                    self.publish_rotated(now, spent);
                }
                self.fail(now, fetch, error);
            }
        }
    }

    /// Fetch `id` failed below HTTP (connect, TLS, timeout, oversized body).
    /// Answers for any other id than the fetch in flight are ignored.
    pub fn handle_fetch_failed(&mut self, now: Instant, id: FetchId, error: TokenError) {
        self.advance(now);
        if let Some(fetch) = self.fetch.take_if(|f| f.id == id) {
            let error = error.redacted(&redactor_for(&self.config, &self.held_secrets()));
            let (reason, grant, took) = (fetch.reason, fetch.grant, now.saturating_duration_since(fetch.sent_at));
            self.observed(Observation::TokenRequest { reason, grant, outcome: RequestOutcome::of(&error), took });
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
            self.observed(Observation::Unauthorized { outcome: UnauthorizedOutcome::AlreadyReplaced });
            return Unauthorized::AlreadyReplaced;
        };
        if current.reason == FetchReason::Unauthorized && !current.accepted {
            let until =
                current.received_at.checked_add(self.unauthorized_delay()).unwrap_or(current.token.usable_until);
            if now < until {
                self.stats.suppressed += 1;
                self.observed(Observation::Unauthorized { outcome: UnauthorizedOutcome::Suppressed });
                return Unauthorized::Suppressed { until };
            }
        }
        self.withdraw(WithdrawReason::Rejected);
        self.stats.invalidations += 1;
        self.observed(Observation::Unauthorized { outcome: UnauthorizedOutcome::Invalidated });
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
        // Peers must not adopt the tokens either: the record that holds
        // them is deleted (if it still holds them).
        match self.current.as_ref().map(|c| c.token.generation) {
            Some(generation) => self.invalidate_shared(generation),
            None => {
                if let Some(fingerprint) = self.restored_unused.take() {
                    self.invalidate_record(fingerprint);
                }
            }
        }
        self.restored_unused = None;
        if let Some(store) = self.store.as_mut() {
            store.publishing = None;
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
        deadline = earliest(deadline, self.store.as_ref().and_then(|s| s.next_publish()));
        deadline
    }

    // ----- internals -----

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
        self.republish(now);
    }

    /// Whether a token is being obtained: a fetch in flight, or the store
    /// being consulted first.
    fn busy(&self) -> bool {
        self.fetch.is_some() || self.store.as_ref().is_some_and(|s| s.acquiring.is_some())
    }

    fn withdraw(&mut self, reason: WithdrawReason) {
        if let Some(current) = self.current.take() {
            self.outputs.push_back(Output::TokenWithdrawn { generation: current.token.generation, reason });
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the tests anchor simulated time at one real instant
mod tests;
