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

use crate::config::{SourceConfig, SourceGrant, FETCH_BUDGET_WINDOW};
use crate::error::ConfigError;
use crate::error::{ErrorCode, SignInReason, TokenError};
use crate::request::{revocation_request, token_request, Grant, Revocable, RevocationRequest};
use crate::response::{parse_token_response_redacting, redactor_for, retry_after, TokenResponse, MAX_LIFETIME};
use crate::secret::{AccessTokenValue, ExposeSecret, RefreshToken};
use crate::store::{
    unix_ms, BudgetAnswer, Envelope, LeaseOwner, Record, StoreAnswer, StoreConfig, StoreError, StoreOp, StoreOpId,
    StoreRequest,
};
use crate::token::{AccessToken, Generation};

/// Identifies one token fetch, so that a late answer to an abandoned fetch
/// cannot be mistaken for the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FetchId(u64);

impl FetchId {
    /// The number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The grant a fetch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantKind {
    /// `client_credentials`.
    ClientCredentials,
    /// `refresh_token`.
    RefreshToken,
    /// The RFC 7523 JWT bearer grant (a [`SourceGrant::JwtBearer`] source).
    JwtBearer,
}

/// Why a fetch was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchReason {
    /// No usable token existed and a caller wanted one.
    NoToken,
    /// The token reached its renewal point; it is still served meanwhile.
    Renewal,
    /// The API answered 401 to the current token.
    Unauthorized,
}

/// A token request to send. Send it, then report the outcome with
/// [`Lifecycle::handle_fetch_response`] or [`Lifecycle::handle_fetch_failed`]
/// with the same `id`.
///
/// Its `Debug` shows the id, grant, reason, method, URI and header names;
/// never the body or a header value.
#[non_exhaustive]
pub struct FetchRequest {
    /// The fetch's id.
    pub id: FetchId,
    /// Its grant.
    pub grant: GrantKind,
    /// Why it was started.
    pub reason: FetchReason,
    /// The request. Its body may hold the client secret or refresh token:
    /// do not log it.
    pub request: http::Request<Vec<u8>>,
}

impl std::fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("FetchRequest");
        out.field("id", &self.id).field("grant", &self.grant).field("reason", &self.reason);
        crate::request::describe_request(&mut out, &self.request);
        out.finish_non_exhaustive()
    }
}

/// What the machine asks the driver to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Send this token request.
    Fetch(FetchRequest),
    /// A new token: publish it for readers and hand it to every waiter.
    TokenReady(Arc<AccessToken>),
    /// A fetch failed and will be retried after a backoff: hand the error to
    /// every waiter. A still-valid token, if any, stays published.
    Failed(TokenError),
    /// Carry out this operation on the shared token store (only with a
    /// [`StoreConfig`]) and answer with [`Lifecycle::handle_store`].
    Store(StoreRequest),
    /// This token must no longer be sent: unpublish it.
    TokenWithdrawn {
        /// The token's generation.
        generation: Generation,
        /// Why.
        reason: WithdrawReason,
    },
    /// The shared store stopped answering (the first failure after a
    /// success, with its error) or answers again: log it. Emitted once per
    /// change, so that an outage is said once, not per operation.
    StoreHealth {
        /// Whether the store answers now.
        available: bool,
        /// The failure that made it unavailable.
        error: Option<StoreError>,
    },
}

/// Why a token was withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithdrawReason {
    /// It reached `usable_until` (expiry minus the safety margin).
    Expired,
    /// The API answered 401 to it.
    Rejected,
    /// The driver discarded it ([`Lifecycle::handle_discard`]).
    Discarded,
}

/// The answer to [`Lifecycle::handle_token_wanted`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Want {
    /// Use this token now.
    Ready(Arc<AccessToken>),
    /// A fetch is in flight: wait for the next [`Output::TokenReady`] or
    /// [`Output::Failed`].
    Wait,
    /// No usable token, and the machine is backing off after this error:
    /// fail the call now.
    Failed(TokenError),
}

/// The answer to [`Lifecycle::handle_unauthorized`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unauthorized {
    /// It was the current token: it is withdrawn and a new one is being
    /// fetched. Replay the request (once) with the next token.
    Invalidated,
    /// That token was already replaced or withdrawn. Replay the request
    /// (once) with the current token.
    AlreadyReplaced,
    /// That token was itself fetched because of a 401 and the API refused
    /// it before accepting any request with it: the API rejects new tokens
    /// (wrong audience, scope or API key?). No fetch before `until`; do not
    /// replay, return the 401 marked [`RejectedAfterRenewal`].
    Suppressed {
        /// When a 401 may invalidate this token again.
        until: Instant,
    },
}

/// The mark on a 401 that a renewed token did not cure: drivers put it in
/// the response's extensions (`response.extensions().get::<RejectedAfterRenewal>()`)
/// when a token fetched because of a 401 is refused before the API accepted
/// any request with it: the replay of a request with the token fetched for
/// its own 401 is answered 401 ([`Verdict::RejectedAfterRenewal`]), or the
/// lifecycle held a renewal back ([`Unauthorized::Suppressed`]). The
/// provider issues tokens this API does not accept, and fetching more will
/// not help. A 401 to a token the API had accepted is a revocation and is
/// not marked. Its `Display` says what to check.
///
/// [`Verdict::RejectedAfterRenewal`]: crate::replay::Verdict::RejectedAfterRenewal
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RejectedAfterRenewal;

impl RejectedAfterRenewal {
    /// What the mark means and what to check, for logs and error output.
    pub const HINT: &'static str = "the API rejected (401) a new token, fetched because of a 401, before \
         accepting any request with it: \
         the provider issues tokens this API does not accept; check the audience, scope and resource \
         the token is requested with, the API key, and that the token URL and the API are the same \
         environment (sandbox or production)";
}

impl std::fmt::Display for RejectedAfterRenewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::HINT)
    }
}

impl Unauthorized {
    /// Whether the request that got the 401 should be replayed.
    pub fn should_replay(self) -> bool {
        !matches!(self, Self::Suppressed { .. })
    }
}

/// A token saved outside the machine, to restore with
/// [`Lifecycle::handle_restore`] or as taken by [`Lifecycle::snapshot`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoredToken {
    /// The access token, if one is worth keeping.
    pub access_token: Option<AccessTokenValue>,
    /// Its remaining lifetime.
    pub expires_in: Duration,
    /// The refresh token, if any.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope, if known.
    pub scope: Option<String>,
}

impl StoredToken {
    /// A saved token: the access token (if any) with its remaining
    /// lifetime, the refresh token and scope (if any).
    pub fn new(
        access_token: Option<AccessTokenValue>,
        expires_in: Duration,
        refresh_token: Option<RefreshToken>,
        scope: Option<String>,
    ) -> Self {
        Self { access_token, expires_in, refresh_token, scope }
    }
}

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
}

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

/// This process's fetches counted against the budget.
#[derive(Default)]
struct Budget {
    /// When each fetch in the window was made, oldest first, and its slot.
    local: VecDeque<(Instant, u64)>,
    next_slot: u64,
}

struct Current {
    token: Arc<AccessToken>,
    reason: FetchReason,
    received_at: Instant,
    /// The API has accepted a request carrying it
    /// ([`Lifecycle::handle_accepted`]).
    accepted: bool,
}

/// The shared store's state within one lifecycle.
struct Shared {
    config: StoreConfig,
    owner: LeaseOwner,
    next_op: u64,
    /// The store operation the acquisition waits on.
    awaiting: Option<(StoreOpId, Awaiting)>,
    /// A token is being obtained through the store (no fetch yet).
    acquiring: Option<Acquiring>,
    lease_held: bool,
    /// The newest generation seen in the store.
    generation: u64,
    /// The fingerprint of the token a 401 rejected: never adopted again.
    rejected: Option<String>,
    /// The fingerprint of the refresh token the provider rejected: never
    /// taken from the store again (it would be spent again and again).
    dead_refresh: Option<String>,
    /// An instant and the wall time at that instant, from the latest store
    /// answer: converts between the store's Unix times and `Instant`s.
    anchor: Option<(Instant, SystemTime)>,
    /// The last operation failed.
    failing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Awaiting {
    Read,
    Lease,
    /// A budget slot, by id.
    Budget(u64),
}

struct Acquiring {
    reason: FetchReason,
    /// A peer holds the lease: wait for its token until then.
    peer_wait_until: Option<Instant>,
    /// Read the store again at this instant.
    next_read: Option<Instant>,
}

impl Shared {
    fn next_read(&self) -> Option<Instant> {
        self.acquiring.as_ref().and_then(|a| a.next_read).filter(|_| self.awaiting.is_none())
    }

    fn request(&mut self, op: StoreOp) -> StoreRequest {
        self.next_op += 1;
        StoreRequest { id: StoreOpId(self.next_op), op }
    }

    /// The name of budget slot `id` in the store: unique per source.
    fn slot_name(&self, id: u64) -> String {
        format!("{}-{id}", self.owner.as_hex())
    }

    fn wall(&self, at: Instant) -> Option<SystemTime> {
        let (instant, wall) = self.anchor?;
        if at >= instant {
            wall.checked_add(at - instant)
        } else {
            wall.checked_sub(instant - at)
        }
    }
}

struct Backoff {
    until: Instant,
    error: TokenError,
    /// When a caller's demand may bring the retry forward (transient
    /// errors only): see [`BackoffPolicy::demand_retry`](crate::BackoffPolicy::demand_retry).
    demand_at: Option<Instant>,
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
    store: Option<Box<Shared>>,
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
        lifecycle.store = Some(Box::new(Shared {
            config: store,
            owner,
            next_op: 0,
            awaiting: None,
            acquiring: None,
            lease_held: false,
            generation: 0,
            rejected: None,
            dead_refresh: None,
            anchor: None,
            failing: false,
        }));
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
                self.budget.local.push_back((now, slot));
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
        let Some(store) = self.store.as_mut() else { return };
        let (wait, poll) = (store.config.peer_wait, store.config.poll_interval);
        let Some(acquiring) = store.acquiring.as_mut() else { return };
        let mut until = now + wait;
        if let Some(usable_until) = usable_until {
            until = until.min(now + usable_until.saturating_duration_since(now) / 2);
        }
        let until = *acquiring.peer_wait_until.get_or_insert(until);
        acquiring.next_read = Some((now + poll).min(until.max(now)));
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
        if let Some(acquiring) = store.acquiring.as_mut() {
            acquiring.next_read = None;
        }
        let request = store.request(StoreOp::Read);
        store.awaiting = Some((request.id, Awaiting::Read));
        self.stats.store_reads += 1;
        self.outputs.push_back(Output::Store(request));
    }

    fn acquire_lease(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        let op = StoreOp::AcquireLease { owner: store.owner, ttl: store.config.lease_ttl };
        let request = store.request(op);
        store.awaiting = Some((request.id, Awaiting::Lease));
        self.outputs.push_back(Output::Store(request));
    }

    fn release_lease(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        if std::mem::take(&mut store.lease_held) {
            let request = store.request(StoreOp::ReleaseLease { owner: store.owner });
            self.outputs.push_back(Output::Store(request));
        }
    }

    /// The current token of `generation` was rejected: delete it from the
    /// store too, if the store still holds that very token.
    fn invalidate_shared(&mut self, generation: Generation) {
        let Some(store) = self.store.as_mut() else { return };
        let Some(token) = self.last_issued.as_ref().filter(|t| t.generation == generation) else { return };
        let fingerprint = crate::store::fingerprint(token.value().expose_secret());
        store.rejected = Some(fingerprint.clone());
        let request = store.request(StoreOp::Invalidate { fingerprint });
        self.outputs.push_back(Output::Store(request));
    }

    /// Writes a token this machine fetched to the store (releasing the
    /// lease with the write).
    fn write_shared(&mut self, token: &Arc<AccessToken>, sent_at: Instant) {
        let refresh_token = self.refresh_token.clone();
        let Some(store) = self.store.as_mut() else { return };
        let (Some(issued), Some(expires)) = (store.wall(sent_at), store.wall(token.expires_at)) else {
            // No wall time known yet (no store answer so far): nothing to share.
            self.release_lease();
            return;
        };
        let Some(generation) = store.generation.checked_add(1) else {
            // Unreachable (adopted generations are bounded): never wraps.
            self.release_lease();
            return;
        };
        let release = std::mem::take(&mut store.lease_held).then_some(store.owner);
        let after_401 = self.current.as_ref().is_some_and(|c| c.reason == FetchReason::Unauthorized);
        let record = Record::from_parts(
            self.config.cache_key(),
            Some(token.value().clone()),
            issued,
            expires,
            token.lifetime_from_provider(),
            token.scope().map(str::to_owned),
            refresh_token,
            after_401,
            self.unauthorized_streak,
        );
        store.generation = generation;
        let envelope = Envelope::seal(&record, generation);
        let request = store.request(StoreOp::Write { envelope, release });
        self.outputs.push_back(Output::Store(request));
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
        if let Some(start) = now.checked_sub(FETCH_BUDGET_WINDOW) {
            while self.budget.local.front().is_some_and(|(at, _)| *at <= start) {
                self.budget.local.pop_front();
            }
        }
        if self.budget.local.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            let next = self.budget.local.front().and_then(|(at, _)| at.checked_add(FETCH_BUDGET_WINDOW));
            let at = next.and_then(|next| self.store.as_ref().and_then(|s| s.wall(next)));
            self.budget_spent(now, next, at, false);
            return;
        }
        self.budget.next_slot += 1;
        let id = self.budget.next_slot;
        if let Some(store) = self.store.as_mut().filter(|_| store_ok) {
            if let Some(at) = store.wall(now) {
                let op = StoreOp::SpendBudget {
                    limit,
                    window: FETCH_BUDGET_WINDOW,
                    at_unix_ms: unix_ms(at),
                    slot: store.slot_name(id),
                };
                store.acquiring.get_or_insert(Acquiring { reason, peer_wait_until: None, next_read: None }).reason =
                    reason;
                let request = store.request(op);
                store.awaiting = Some((request.id, Awaiting::Budget(id)));
                self.outputs.push_back(Output::Store(request));
                return;
            }
        }
        self.budget.local.push_back((now, id));
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
        self.budget.local.retain(|(_, id)| *id != slot.id);
        self.stats.budget_refunds += 1;
        if let Some(store) = self.store.as_mut().filter(|_| slot.shared) {
            let request = store.request(StoreOp::RefundBudget { slot: store.slot_name(slot.id) });
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
        let policy = self.config.refresh_policy();
        let (lifetime, lifetime_from_provider) = match response.expires_in {
            Some(lifetime) => (lifetime, true),
            None => (self.config.default_lifetime(), false),
        };
        let elapsed = now.saturating_duration_since(fetch.sent_at);
        let expired = TokenError::ExpiredOnArrival { lifetime, elapsed };
        let expires_at = fetch.sent_at.checked_add(lifetime).ok_or_else(|| expired.clone())?;
        let margin = policy.safety_margin.min(lifetime / 10);
        let usable_until = expires_at.checked_sub(margin).unwrap_or(expires_at);
        if usable_until <= now {
            return Err(expired);
        }
        let usable = usable_until.duration_since(fetch.sent_at);
        let window = usable.mul_f64(policy.refresh_ahead_fraction).min(policy.max_refresh_ahead);
        let window = window.mul_f64(1.0 + policy.jitter * self.rng.f64()).min(usable / 2);
        // A token that arrived late is renewed halfway through what is left.
        let late_floor = now + usable_until.duration_since(now) / 2;
        let renew_at = (usable_until - window).max(late_floor);
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
        let delay = self.backoff_delay(&error);
        let until = now.checked_add(delay).unwrap_or(now);
        let demand_at = self.demand_delay(&error).and_then(|d| now.checked_add(d)).map(|at| at.min(until));
        self.backoff = Some(Backoff { until, error: error.clone(), demand_at });
        self.waiting = false;
        self.outputs.push_back(Output::Failed(error));
    }

    fn backoff_delay(&mut self, error: &TokenError) -> Duration {
        let policy = self.config.backoff_policy();
        if matches!(error, TokenError::SignInRequired { .. }) {
            // No request is sent until the user signs in; the store (where a
            // sign-in elsewhere lands) is read again after this.
            return policy.initial;
        }
        let exponent = self.consecutive_failures.saturating_sub(1).min(64) as i32;
        let base = (policy.initial.as_secs_f64() * policy.multiplier.powi(exponent)).min(policy.max.as_secs_f64());
        let jittered = base * (1.0 - policy.jitter * self.rng.f64());
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

    /// How soon after a transient failure a refused caller brings the
    /// retry forward: [`BackoffPolicy::demand_retry`](crate::BackoffPolicy::demand_retry),
    /// shortened by up to a quarter at random, but no sooner than a
    /// `Retry-After`. `None` for permanent errors (their backoff stands).
    fn demand_delay(&mut self, error: &TokenError) -> Option<Duration> {
        if !error.is_transient() {
            return None;
        }
        let policy = self.config.backoff_policy();
        let delay = policy.demand_retry.mul_f64(1.0 - 0.25 * self.rng.f64());
        Some(match error.retry_after() {
            Some(asked) => delay.max(asked.min(policy.max_retry_after)),
            None => delay,
        })
    }

    /// How long a token fetched because of a 401 is protected from being
    /// invalidated by another 401.
    fn unauthorized_delay(&self) -> Duration {
        let base = self.config.refresh_policy().unauthorized_backoff;
        let doublings = self.unauthorized_streak.saturating_sub(1).min(16);
        base.saturating_mul(1 << doublings).min(self.config.backoff_policy().max.max(base))
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
mod tests {

    /// The wall time the tests' answers arrive at (2027-01-15).
    fn test_wall() -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
    }

    use super::*;
    use crate::config::{BackoffPolicy, ClientAuth, RefreshPolicy, SourceConfigBuilder};

    /// A copy of a fetch request, to show it wrapped in an `Output`.
    fn sim_fetch_copy(fetch: &FetchRequest) -> FetchRequest {
        let mut request = http::Request::new(fetch.request.body().clone());
        *request.uri_mut() = fetch.request.uri().clone();
        *request.headers_mut() = fetch.request.headers().clone();
        FetchRequest { id: fetch.id, grant: fetch.grant, reason: fetch.reason, request }
    }
    use crate::secret::ExposeSecret;

    const SECS: fn(u64) -> Duration = Duration::from_secs;

    struct Sim {
        lc: Lifecycle,
        t0: Instant,
        now: Instant,
    }

    fn builder() -> SourceConfigBuilder {
        SourceConfig::builder("https://auth.example.com/token", "client").client_secret("secret")
    }

    impl Sim {
        fn new(builder: SourceConfigBuilder) -> Self {
            let t0 = Instant::now();
            Self { lc: Lifecycle::new(builder.build().unwrap(), 42), t0, now: t0 }
        }
        fn at(&mut self, secs: f64) -> Instant {
            self.now = self.t0 + Duration::from_secs_f64(secs);
            self.now
        }
        fn outputs(&mut self) -> Vec<Output> {
            std::iter::from_fn(|| self.lc.poll_output()).collect()
        }
        fn want(&mut self) -> Want {
            self.lc.handle_token_wanted(self.now)
        }
        /// Drains outputs and returns the single fetch among them.
        fn take_fetch(&mut self) -> FetchRequest {
            only_fetch(self.outputs())
        }
        fn respond(&mut self, id: FetchId, status: u16, body: &str) -> Vec<Output> {
            let mut response = Response::new(body.as_bytes().to_vec());
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            response.headers_mut().insert("content-type", "application/json".parse().unwrap());
            self.lc.handle_fetch_response(self.now, test_wall(), id, &response);
            self.outputs()
        }
        fn respond_token(&mut self, id: FetchId, value: &str, expires_in: u64) -> Arc<AccessToken> {
            let outputs = self.respond(id, 200, &format!(r#"{{"access_token":"{value}","expires_in":{expires_in}}}"#));
            match outputs.as_slice() {
                [Output::TokenReady(token)] => token.clone(),
                other => panic!("expected TokenReady, got {other:?}"),
            }
        }
        fn timeout(&mut self) -> Vec<Output> {
            self.lc.handle_timeout(self.now);
            self.outputs()
        }
        fn secs(&self, instant: Instant) -> f64 {
            instant.duration_since(self.t0).as_secs_f64()
        }
    }

    /// The single fetch among `outputs`.
    fn only_fetch(outputs: Vec<Output>) -> FetchRequest {
        let mut fetches: Vec<FetchRequest> = outputs
            .into_iter()
            .filter_map(|o| match o {
                Output::Fetch(f) => Some(f),
                _ => None,
            })
            .collect();
        assert_eq!(fetches.len(), 1, "expected exactly one fetch");
        fetches.remove(0)
    }

    fn ready(want: Want) -> Arc<AccessToken> {
        match want {
            Want::Ready(token) => token,
            other => panic!("expected a token, got {other:?}"),
        }
    }

    #[test]
    fn cold_start_is_single_flight() {
        let mut sim = Sim::new(builder());
        for _ in 0..100 {
            assert!(matches!(sim.want(), Want::Wait));
        }
        let fetch = sim.take_fetch();
        assert_eq!(fetch.reason, FetchReason::NoToken);
        assert_eq!(fetch.grant, GrantKind::ClientCredentials);
        assert!(sim.lc.has_waiters());
        sim.at(0.2);
        assert!(matches!(sim.want(), Want::Wait));
        assert!(sim.outputs().is_empty(), "no second fetch while one is in flight");
        let token = sim.respond_token(fetch.id, "tok-1", 3600);
        assert!(!sim.lc.has_waiters());
        assert_eq!(token.value().expose_secret(), "tok-1");
        assert_eq!(token.header_value(), "Bearer tok-1");
        assert_eq!(ready(sim.want()).generation(), token.generation());
        assert_eq!(sim.lc.stats().fetches, 1);
        assert_eq!(sim.lc.stats().waits, 101);
    }

    #[test]
    fn expiry_counts_from_when_the_fetch_was_sent() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        sim.at(5.0);
        let token = sim.respond_token(fetch.id, "t", 60);
        assert_eq!(sim.secs(token.issued_at()), 0.0);
        assert_eq!(sim.secs(token.expires_at()), 60.0);
        // margin = min(10 s, 60 s / 10) = 6 s
        assert_eq!(sim.secs(token.usable_until()), 54.0);
        assert!(token.is_usable(sim.at(53.9)));
        assert!(!token.is_usable(sim.at(54.0)));
    }

    #[test]
    fn renewal_windows_scale_with_the_lifetime() {
        for (lifetime, min_ahead, max_ahead) in
            [(10u64, 0.9, 1.35), (60, 5.4, 8.1), (3600, 60.0, 90.0), (86_400, 60.0, 90.0)]
        {
            for seed in 0..20 {
                let mut lc = Lifecycle::new(builder().build().unwrap(), seed);
                let t0 = Instant::now();
                lc.handle_token_wanted(t0);
                let Some(Output::Fetch(fetch)) = lc.poll_output() else { panic!() };
                let body = format!(r#"{{"access_token":"t","expires_in":{lifetime}}}"#);
                lc.handle_fetch_response(t0, test_wall(), fetch.id, &Response::new(body.into_bytes()));
                let token = lc.current_token(t0).unwrap().clone();
                let ahead = token.usable_until().duration_since(token.renew_at()).as_secs_f64();
                assert!(
                    ahead >= min_ahead - 1e-6 && ahead <= max_ahead + 1e-6,
                    "{lifetime}s token renewed {ahead}s ahead"
                );
                let margin = token.expires_at().duration_since(token.usable_until()).as_secs_f64();
                assert!((margin - (lifetime as f64 / 10.0).min(10.0)).abs() < 1e-6);
                assert_eq!(lc.poll_timeout(), Some(token.renew_at()));
            }
        }
    }

    #[test]
    fn jitter_is_seeded() {
        let renew_at = |seed| {
            let mut lc = Lifecycle::new(builder().build().unwrap(), seed);
            let t0 = Instant::now();
            lc.handle_token_wanted(t0);
            let Some(Output::Fetch(fetch)) = lc.poll_output() else { panic!() };
            lc.handle_fetch_response(
                t0,
                test_wall(),
                fetch.id,
                &Response::new(br#"{"access_token":"t","expires_in":3600}"#.to_vec()),
            );
            lc.current_token(t0).unwrap().usable_until() - lc.current_token(t0).unwrap().renew_at()
        };
        assert_eq!(renew_at(1), renew_at(1));
        let spread: std::collections::HashSet<_> = (0..10).map(renew_at).collect();
        assert!(spread.len() > 5, "different seeds spread renewal points");
    }

    #[test]
    fn background_renewal_serves_the_old_token_meanwhile() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        let old = sim.respond_token(fetch.id, "old", 3600);
        let renew_at = sim.lc.poll_timeout().unwrap();
        sim.now = renew_at - Duration::from_millis(1);
        assert!(sim.timeout().is_empty(), "nothing before the renewal point");
        sim.now = renew_at;
        let renewal = only_fetch(sim.timeout());
        assert_eq!(renewal.reason, FetchReason::Renewal);
        // During the renewal callers get the old token at once.
        for _ in 0..10 {
            assert_eq!(ready(sim.want()).generation(), old.generation());
        }
        assert!(sim.outputs().is_empty(), "no second fetch");
        assert_eq!(sim.lc.poll_timeout(), Some(old.usable_until()));
        let new = sim.respond_token(renewal.id, "new", 3600);
        assert!(new.generation() > old.generation());
        assert_eq!(ready(sim.want()).value().expose_secret(), "new");
        assert_eq!(sim.lc.stats().waits, 1, "only the very first caller waited");
    }

    #[test]
    fn without_background_renewal_the_next_caller_starts_it() {
        let mut sim =
            Sim::new(builder().refresh_policy(RefreshPolicy { background: false, ..RefreshPolicy::default() }));
        sim.want();
        let fetch = sim.take_fetch();
        let token = sim.respond_token(fetch.id, "t", 3600);
        assert_eq!(sim.lc.poll_timeout(), Some(token.usable_until()), "no renewal timer");
        sim.now = token.renew_at();
        assert!(sim.timeout().is_empty());
        assert_eq!(ready(sim.want()).generation(), token.generation());
        assert_eq!(sim.take_fetch().reason, FetchReason::Renewal);
    }

    #[test]
    fn missing_expires_in_uses_the_default_lifetime() {
        let mut sim = Sim::new(builder().default_lifetime(SECS(600)));
        sim.want();
        let fetch = sim.take_fetch();
        let outputs = sim.respond(fetch.id, 200, r#"{"access_token":"t","expires_in":null}"#);
        let Some(Output::TokenReady(token)) = outputs.into_iter().next() else { panic!() };
        assert_eq!(token.lifetime(), SECS(600));
        assert!(!token.lifetime_from_provider());
    }

    #[test]
    fn refresh_token_renewal_and_fallback() {
        let mut sim = Sim::new(builder().scope("offline_access"));
        sim.want();
        let first = sim.take_fetch();
        sim.respond(first.id, 200, r#"{"access_token":"a1","expires_in":3600,"refresh_token":"r1"}"#);
        assert_eq!(sim.lc.refresh_token().unwrap().expose_secret(), "r1");

        // Renewal uses the refresh token; a response without one keeps it.
        sim.now = sim.lc.poll_timeout().unwrap();
        let renewal = only_fetch(sim.timeout());
        assert_eq!(renewal.grant, GrantKind::RefreshToken);
        assert!(std::str::from_utf8(renewal.request.body()).unwrap().contains("refresh_token=r1"));
        sim.respond(renewal.id, 200, r#"{"access_token":"a2","expires_in":3600}"#);
        assert_eq!(sim.lc.refresh_token().unwrap().expose_secret(), "r1");

        // invalid_grant: the refresh token is dropped and client credentials used at once.
        sim.now = sim.lc.poll_timeout().unwrap();
        let renewal = only_fetch(sim.timeout());
        assert_eq!(renewal.grant, GrantKind::RefreshToken);
        let outputs = sim.respond(renewal.id, 400, r#"{"error":"invalid_grant","error_description":"expired"}"#);
        let fallback = only_fetch(outputs);
        assert_eq!(fallback.grant, GrantKind::ClientCredentials);
        assert!(sim.lc.refresh_token().is_none());
        assert!(sim.lc.backoff().is_none(), "a fallback is not a failure");
        sim.respond_token(fallback.id, "a3", 3600);
        assert_eq!(sim.lc.stats().refresh_fallbacks, 1);
        assert_eq!(sim.lc.stats().failures, 0);
    }

    fn sign_in_builder() -> SourceConfigBuilder {
        SourceConfig::builder("https://auth.example.com/token", "native-app")
            .grant(SourceGrant::SignIn)
            .sign_in_hint("run `tool login`")
    }

    /// A token endpoint answer with `body`.
    fn answer(body: &str) -> Response<Vec<u8>> {
        let mut response = Response::new(body.as_bytes().to_vec());
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        response
    }

    fn sign_in_required(outputs: &[Output]) -> &TokenError {
        match outputs.iter().find(|o| matches!(o, Output::Failed(_))) {
            Some(Output::Failed(error @ TokenError::SignInRequired { .. })) => error,
            _ => panic!("expected SignInRequired, got {outputs:?}"),
        }
    }

    #[test]
    fn a_sign_in_source_without_tokens_says_sign_in_and_sends_nothing() {
        let mut sim = Sim::new(sign_in_builder());
        assert_eq!(sim.lc.config().client_auth(), ClientAuth::None, "no secret: a public client");
        let Want::Failed(error) = sim.want() else { panic!("a caller must be refused") };
        assert!(matches!(&error, TokenError::SignInRequired { reason: SignInReason::NotSignedIn, .. }));
        let text = error.to_string();
        assert!(text.contains("sign-in required") && text.contains("run `tool login`"), "{text}");
        assert!(!error.is_transient());
        assert_eq!(error.kind(), "sign_in_required");
        assert!(!sim.outputs().iter().any(|o| matches!(o, Output::Fetch(_))));
        // Long after, still nothing is sent.
        sim.at(3600.0);
        assert!(matches!(sim.want(), Want::Failed(TokenError::SignInRequired { .. })));
        assert!(!sim.outputs().iter().any(|o| matches!(o, Output::Fetch(_))));
        assert_eq!(sim.lc.stats().fetches, 0);
    }

    #[test]
    fn a_sign_in_source_renews_with_rotating_refresh_tokens_and_never_falls_back() {
        let mut sim = Sim::new(sign_in_builder());
        let wall = UNIX_EPOCH + SECS(1_800_000_000);
        let signed = answer(r#"{"access_token":"u1","expires_in":600,"refresh_token":"r1"}"#);
        let token = sim.lc.handle_sign_in(sim.now, wall, sim.now, &signed).unwrap();
        assert!(matches!(sim.outputs().as_slice(), [Output::TokenReady(_)]));
        assert_eq!(ready(sim.want()).generation(), token.generation());

        // Renewal: the refresh grant with r1, public client (client_id in the body).
        sim.now = sim.lc.poll_timeout().unwrap();
        let renewal = only_fetch(sim.timeout());
        assert_eq!(renewal.grant, GrantKind::RefreshToken);
        let body = std::str::from_utf8(renewal.request.body()).unwrap().to_owned();
        assert_eq!(body, "grant_type=refresh_token&client_id=native-app&refresh_token=r1");
        // Rotation: r2 replaces r1 at once.
        sim.respond(renewal.id, 200, r#"{"access_token":"u2","expires_in":600,"refresh_token":"r2"}"#);
        assert_eq!(sim.lc.refresh_token().unwrap().expose_secret(), "r2");
        sim.now = sim.lc.poll_timeout().unwrap();
        let renewal = only_fetch(sim.timeout());
        assert!(std::str::from_utf8(renewal.request.body()).unwrap().ends_with("refresh_token=r2"));

        // invalid_grant: sign-in required, with the provider's words; no client credentials.
        let outputs = sim.respond(renewal.id, 400, r#"{"error":"invalid_grant","error_description":"session ended"}"#);
        assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))), "{outputs:?}");
        let error = sign_in_required(&outputs).clone();
        let TokenError::SignInRequired { reason: SignInReason::RefreshRejected(rejected), .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(rejected.code, ErrorCode::InvalidGrant);
        assert!(error.to_string().contains("session ended"), "{error}");
        assert!(sim.lc.refresh_token().is_none());
        assert_eq!(sim.lc.stats().refresh_fallbacks, 0);
        // The access token is still served until it stops being usable; then callers are refused.
        assert!(matches!(sim.want(), Want::Ready(_)));
        let usable_until = sim.lc.current_token(sim.now).unwrap().usable_until();
        sim.now = usable_until + SECS(5);
        let Want::Failed(later) = sim.want() else { panic!("expected a refusal") };
        assert!(matches!(later, TokenError::SignInRequired { reason: SignInReason::RefreshRejected(_), .. }));
        sim.now += SECS(3600);
        assert!(matches!(sim.want(), Want::Failed(TokenError::SignInRequired { .. })));
        assert!(!sim.outputs().iter().any(|o| matches!(o, Output::Fetch(_))));
        assert_eq!(sim.lc.stats().fetches, 2);

        // A new sign-in ends it.
        let again = answer(r#"{"access_token":"u9","expires_in":600,"refresh_token":"r9"}"#);
        sim.lc.handle_sign_in(sim.now, wall, sim.now, &again).unwrap();
        assert_eq!(ready(sim.want()).value().expose_secret(), "u9");
    }

    #[test]
    fn a_sign_in_without_a_refresh_token_forgets_the_previous_users() {
        let mut sim = Sim::new(sign_in_builder());
        let wall = UNIX_EPOCH + SECS(1_800_000_000);
        let first = answer(r#"{"access_token":"alice","expires_in":600,"refresh_token":"alice-rt"}"#);
        sim.lc.handle_sign_in(sim.now, wall, sim.now, &first).unwrap();
        let second = answer(r#"{"access_token":"bob","expires_in":600}"#);
        sim.lc.handle_sign_in(sim.now, wall, sim.now, &second).unwrap();
        assert!(sim.lc.refresh_token().is_none(), "alice's refresh token must not renew bob's session");
        sim.now = sim.lc.poll_timeout().unwrap();
        let outputs = sim.timeout();
        assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))));
        assert!(matches!(
            sign_in_required(&outputs),
            TokenError::SignInRequired { reason: SignInReason::NoRefreshToken, .. }
        ));
        // A bad answer changes nothing.
        let error = sim.lc.handle_sign_in(sim.now, wall, sim.now, &answer(r#"{"error":"invalid_grant"}"#)).unwrap_err();
        assert_eq!(error.code(), Some(&ErrorCode::InvalidGrant));
    }

    #[test]
    fn sign_in_tokens_have_a_cache_key_of_their_own() {
        let app = builder().build().unwrap();
        let user = builder().grant(SourceGrant::SignIn).build().unwrap();
        assert_ne!(app.cache_key(), user.cache_key());
        assert!(user.cache_key().canonical().contains("grant_type=sign_in"));
        assert!(app.cache_key().canonical().contains("grant_type=client_credentials"));
        // With a secret, a sign-in source authenticates like any confidential client.
        assert_eq!(user.client_auth(), ClientAuth::Basic);
    }

    /// Runs a lifecycle's store operations on `store` (`ok`) or fails them,
    /// returning the other outputs.
    fn run_store(
        lc: &mut Lifecycle,
        store: &crate::store::MemoryStore,
        now: Instant,
        wall: SystemTime,
        ok: bool,
    ) -> Vec<Output> {
        let key = lc.config().cache_key().clone();
        let mut other = Vec::new();
        while let Some(output) = lc.poll_output() {
            match output {
                Output::Store(request) if ok => {
                    let answer = store.apply(&key, wall, &request.op);
                    lc.handle_store(now, wall, request.id, Ok(answer));
                }
                Output::Store(request) => lc.handle_store(now, wall, request.id, Err(StoreError::new("down"))),
                output => other.push(output),
            }
        }
        other
    }

    #[test]
    fn a_planted_record_with_a_huge_generation_is_ignored_and_sharing_goes_on() {
        let store = crate::store::MemoryStore::new();
        let config = Arc::new(builder().build().unwrap());
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + SECS(1_800_000_000);
        // Someone who can write the store plants a record with generation u64::MAX.
        let planted = crate::store::Record::from_parts(
            config.cache_key(),
            Some(crate::secret::AccessTokenValue::new("planted")),
            wall,
            wall + SECS(3600),
            true,
            None,
            None,
            false,
            0,
        );
        let write = StoreOp::Write { envelope: crate::store::Envelope::seal(&planted, u64::MAX), release: None };
        store.apply(config.cache_key(), wall, &write);
        let mut lc = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
        assert!(matches!(lc.handle_token_wanted(t0), Want::Wait));
        // Not adopted: this replica fetches, and its write does not overflow.
        let fetch = only_fetch(run_store(&mut lc, &store, t0, wall, true));
        let mut response = Response::new(br#"{"access_token":"fresh","expires_in":3600}"#.to_vec());
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        lc.handle_fetch_response(t0, test_wall(), fetch.id, &response);
        let outputs = run_store(&mut lc, &store, t0, wall, true);
        let token = outputs.iter().find_map(|o| match o {
            Output::TokenReady(token) => Some(token.value().expose_secret().to_owned()),
            _ => None,
        });
        assert_eq!(token.as_deref(), Some("fresh"));
        assert!(lc.stats().store_errors >= 1, "the planted record is counted");
        // A generation just under the bound is still a replica's (clocks disagree).
        let near = crate::store::generation_bound(wall);
        let skewed = StoreOp::Write { envelope: crate::store::Envelope::seal(&planted, near), release: None };
        let other = crate::store::MemoryStore::new();
        other.apply(config.cache_key(), wall, &skewed);
        let mut peer = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
        assert!(matches!(peer.handle_token_wanted(t0), Want::Wait));
        assert!(run_store(&mut peer, &other, t0, wall, true).iter().any(|o| matches!(o, Output::TokenReady(_))));
    }

    #[test]
    fn a_users_refresh_token_is_spent_only_under_the_lease() {
        let store = crate::store::MemoryStore::new();
        let config = Arc::new(sign_in_builder().build().unwrap());
        let t0 = Instant::now();
        let wall0 = UNIX_EPOCH + SECS(1_800_000_000);
        let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
        let mut b = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
        // a signs in; the tokens land in the store with a generation above any renewal's.
        a.handle_sign_in(t0, wall0, t0, &answer(r#"{"access_token":"u1","expires_in":600,"refresh_token":"r1"}"#))
            .unwrap();
        run_store(&mut a, &store, t0, wall0, true);
        // b adopts them, refresh token included.
        assert!(matches!(b.handle_token_wanted(t0), Want::Wait));
        assert!(run_store(&mut b, &store, t0, wall0, true).iter().any(|o| matches!(o, Output::TokenReady(_))));
        assert_eq!(b.refresh_token().unwrap().expose_secret(), "r1");

        // Both reach the renewal point together. a takes the lease and refreshes.
        let now = a.poll_timeout().unwrap().max(b.poll_timeout().unwrap());
        let wall = wall0 + (now - t0);
        a.handle_timeout(now);
        let fetch_a = only_fetch(run_store(&mut a, &store, now, wall, true));
        // b finds the lease taken: it waits, however long a takes, and never spends r1.
        b.handle_timeout(now);
        let mut later = now;
        for _ in 0..200 {
            assert!(!run_store(&mut b, &store, later, wall0 + (later - t0), true)
                .iter()
                .any(|o| matches!(o, Output::Fetch(_))));
            later = b.poll_timeout().unwrap();
            b.handle_timeout(later);
            if later > now + SECS(30) {
                break;
            }
        }
        // a gets r2 and writes it; b adopts it.
        a.handle_fetch_response(
            later,
            test_wall(),
            fetch_a.id,
            &answer(r#"{"access_token":"u2","expires_in":600,"refresh_token":"r2"}"#),
        );
        run_store(&mut a, &store, later, wall0 + (later - t0), true);
        let next = b.poll_timeout().unwrap();
        b.handle_timeout(next);
        assert!(run_store(&mut b, &store, next, wall0 + (next - t0), true)
            .iter()
            .any(|o| matches!(o, Output::TokenReady(t) if t.value().expose_secret() == "u2")));
        assert_eq!(b.refresh_token().unwrap().expose_secret(), "r2");
        assert_eq!(b.stats().fetches, 0);

        // With the store down, b does not spend r2 without the lease: callers get StoreUnavailable.
        let far = next + SECS(3600);
        let wall = wall0 + (far - t0);
        assert!(matches!(b.handle_token_wanted(far), Want::Wait));
        let mut outputs = run_store(&mut b, &store, far, wall, false);
        let mut at = far;
        while !outputs.iter().any(|o| matches!(o, Output::Failed(_))) {
            assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))), "spent without the lease");
            at = b.poll_timeout().expect("the store is tried again");
            b.handle_timeout(at);
            outputs = run_store(&mut b, &store, at, wall0 + (at - t0), false);
        }
        assert!(at - far >= StoreConfig::default().peer_wait, "tried until the patience ran out");
        let Some(Output::Failed(error)) = outputs.iter().find(|o| matches!(o, Output::Failed(_))) else { panic!() };
        assert!(matches!(error, TokenError::StoreUnavailable { .. }) && error.is_transient(), "{error:?}");
        assert!(error.to_string().contains("renewal lease"), "{error}");
        assert_eq!(b.stats().fetches, 0);
    }

    #[test]
    fn a_rejected_refresh_token_is_not_taken_from_the_store_again() {
        let store = crate::store::MemoryStore::new();
        let config = Arc::new(sign_in_builder().build().unwrap());
        let t0 = Instant::now();
        let wall0 = UNIX_EPOCH + SECS(1_800_000_000);
        let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
        a.handle_sign_in(t0, wall0, t0, &answer(r#"{"access_token":"u1","expires_in":600,"refresh_token":"r1"}"#))
            .unwrap();
        run_store(&mut a, &store, t0, wall0, true);
        let now = t0 + SECS(700);
        let wall = wall0 + SECS(700);
        assert!(matches!(a.handle_token_wanted(now), Want::Wait));
        let fetch = only_fetch(run_store(&mut a, &store, now, wall, true));
        a.handle_fetch_response(now, test_wall(), fetch.id, &answer(r#"{"error":"invalid_grant"}"#));
        sign_in_required(&run_store(&mut a, &store, now, wall, true));
        // Every later caller reads the store again, finds r1 there, and does not spend it.
        for step in 1..20u64 {
            let now = now + SECS(step * 5);
            let _ = a.handle_token_wanted(now);
            let outputs = run_store(&mut a, &store, now, wall + SECS(step * 5), true);
            assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))), "{outputs:?}");
        }
        assert_eq!(a.stats().fetches, 1);
    }

    #[test]
    fn unauthorized_invalidates_the_current_generation_once() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        let first = sim.respond_token(fetch.id, "t1", 3600);
        sim.at(100.0);
        assert_eq!(sim.lc.handle_unauthorized(sim.now, first.generation()), Unauthorized::Invalidated);
        let outputs = sim.outputs();
        assert!(matches!(outputs[0], Output::TokenWithdrawn { reason: WithdrawReason::Rejected, .. }));
        let refetch = only_fetch(outputs);
        assert_eq!(refetch.reason, FetchReason::Unauthorized);
        // The rest of the burst: same generation, nothing more happens.
        for _ in 0..99 {
            assert_eq!(sim.lc.handle_unauthorized(sim.now, first.generation()), Unauthorized::AlreadyReplaced);
        }
        assert!(sim.outputs().is_empty());
        assert!(matches!(sim.want(), Want::Wait), "the rejected token is never handed out again");
        let second = sim.respond_token(refetch.id, "t2", 3600);
        // A late 401 for the old generation does not discard the new token.
        assert_eq!(sim.lc.handle_unauthorized(sim.now, first.generation()), Unauthorized::AlreadyReplaced);
        assert_eq!(ready(sim.want()).generation(), second.generation());
        assert_eq!(sim.lc.stats().fetches, 2);
        assert_eq!(sim.lc.stats().invalidations, 1);
    }

    #[test]
    fn a_rejected_fresh_token_does_not_start_a_fetch_loop() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        let t1 = sim.respond_token(fetch.id, "t1", 3600);
        sim.at(10.0);
        assert_eq!(sim.lc.handle_unauthorized(sim.now, t1.generation()), Unauthorized::Invalidated);
        let refetch = sim.take_fetch();
        let t2 = sim.respond_token(refetch.id, "t2", 3600);
        // t2 is rejected right away: the API rejects fresh tokens.
        let outcome = sim.lc.handle_unauthorized(sim.now, t2.generation());
        let Unauthorized::Suppressed { until } = outcome else { panic!("{outcome:?}") };
        assert!(!outcome.should_replay());
        assert_eq!(sim.secs(until), 20.0);
        assert!(sim.outputs().is_empty());
        assert_eq!(ready(sim.want()).generation(), t2.generation());
        // After the guard, one more try; the guard then doubles.
        sim.at(20.0);
        assert_eq!(sim.lc.handle_unauthorized(sim.now, t2.generation()), Unauthorized::Invalidated);
        let refetch = sim.take_fetch();
        let t3 = sim.respond_token(refetch.id, "t3", 3600);
        let Unauthorized::Suppressed { until } = sim.lc.handle_unauthorized(sim.now, t3.generation()) else { panic!() };
        assert_eq!(sim.secs(until), 40.0);
        assert_eq!(sim.lc.stats().fetches, 3);
    }

    #[test]
    fn a_renewed_token_the_api_accepted_is_renewed_again_on_a_401_however_soon() {
        // A provider revokes tokens in the middle of their life, twice in
        // a row: the token fetched for the first 401 was accepted, so the
        // second 401 is a revocation too, not a token the API never takes.
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        let t1 = sim.respond_token(fetch.id, "t1", 3600);
        sim.at(10.0);
        assert_eq!(sim.lc.handle_unauthorized(sim.now, t1.generation()), Unauthorized::Invalidated);
        let refetch = sim.take_fetch();
        let t2 = sim.respond_token(refetch.id, "t2", 3600);
        sim.lc.handle_accepted(t1.generation()); // an old token's answer settles nothing
        sim.lc.handle_accepted(t2.generation());
        sim.at(11.0);
        assert_eq!(sim.lc.handle_unauthorized(sim.now, t2.generation()), Unauthorized::Invalidated);
        let refetch = sim.take_fetch();
        assert_eq!(refetch.reason, FetchReason::Unauthorized);
        let t3 = sim.respond_token(refetch.id, "t3", 3600);
        // t3 is refused before any acceptance: now the guard holds.
        let outcome = sim.lc.handle_unauthorized(sim.now, t3.generation());
        let Unauthorized::Suppressed { until } = outcome else { panic!("{outcome:?}") };
        assert_eq!(sim.secs(until), 21.0, "the streak restarted with the accepted token: the base delay");
        assert_eq!(sim.lc.stats().fetches, 3);
        assert_eq!(sim.lc.stats().suppressed, 1);
    }

    #[test]
    fn transient_failure_keeps_serving_the_valid_token_then_surfaces_at_expiry() {
        let backoff = BackoffPolicy { jitter: 0.0, ..BackoffPolicy::default() };
        let mut sim = Sim::new(builder().backoff_policy(backoff));
        sim.want();
        let fetch = sim.take_fetch();
        let token = sim.respond_token(fetch.id, "t", 3600);
        sim.now = token.renew_at();
        let renewal = only_fetch(sim.timeout());
        let outputs = sim.respond(renewal.id, 503, "<h1>unavailable</h1>");
        assert!(matches!(&outputs[..], [Output::Failed(e)] if e.is_transient()));
        let (until, _) = sim.lc.backoff().unwrap();
        assert_eq!(until - sim.now, SECS(1));
        assert_eq!(ready(sim.want()).generation(), token.generation(), "still-valid token served");
        assert!(sim.outputs().is_empty(), "no fetch before the backoff ends");
        assert_eq!(sim.lc.poll_timeout(), Some(until));
        sim.now = until;
        let retry = only_fetch(sim.timeout());
        sim.respond(retry.id, 500, "oops");
        assert_eq!(sim.lc.backoff().unwrap().0 - sim.now, SECS(2), "exponential");
        // The outage goes on: the timer retries at each backoff end while the
        // old token is still served, until the token is truly expired.
        let mut retries = 0;
        loop {
            sim.now = sim.lc.poll_timeout().unwrap();
            let outputs = sim.timeout();
            if outputs.iter().any(|o| matches!(o, Output::TokenWithdrawn { reason: WithdrawReason::Expired, .. })) {
                break;
            }
            let retry = only_fetch(outputs);
            assert_eq!(ready(sim.want()).generation(), token.generation());
            sim.respond(retry.id, 500, "oops");
            retries += 1;
        }
        assert_eq!(sim.now, token.usable_until());
        assert!(retries >= 4, "{retries} retries in the renewal window");
        // No token now, and the last failure is older than the demand delay:
        // the first caller starts a retry and waits on it.
        assert!(matches!(sim.want(), Want::Wait));
        let retry = sim.take_fetch();
        sim.respond(retry.id, 500, "oops");
        // Callers now get the error at once...
        match sim.want() {
            Want::Failed(TokenError::Status { status: 500, .. }) => {}
            other => panic!("{other:?}"),
        }
        // ...and their demand brings the next try to within 2 s, though the
        // backoff is much longer by now.
        let (until, _) = sim.lc.backoff().unwrap();
        let demand_at = sim.lc.poll_timeout().unwrap();
        assert!(demand_at - sim.now <= SECS(2) && demand_at - sim.now >= Duration::from_millis(1500));
        assert!(until > demand_at);
        sim.now = demand_at;
        let fetch = only_fetch(sim.timeout());
        assert_eq!(fetch.reason, FetchReason::NoToken);
        sim.respond_token(fetch.id, "healed", 3600);
        assert_eq!(ready(sim.want()).value().expose_secret(), "healed");
    }

    #[test]
    fn callers_get_a_token_within_two_seconds_of_healing_after_a_long_outage() {
        let mut sim = Sim::new(builder());
        let healed_at = 30.0 * 60.0;
        let mut fetches = 0;
        let mut first_token_at = None;
        // A caller every 100 ms for 35 minutes; the endpoint fails for 30.
        let mut t = 0.0;
        while t < 35.0 * 60.0 {
            sim.at(t);
            let mut outputs = sim.timeout();
            if let Want::Ready(_) = sim.want() {
                first_token_at.get_or_insert(t);
                break;
            }
            outputs.extend(sim.outputs());
            for output in outputs {
                if let Output::Fetch(fetch) = output {
                    fetches += 1;
                    if t < healed_at {
                        sim.respond(fetch.id, 503, "down");
                    } else {
                        sim.respond_token(fetch.id, "healed", 3600);
                    }
                }
            }
            t += 0.1;
        }
        let first = first_token_at.expect("a token after the outage");
        assert!(first >= healed_at && first <= healed_at + 2.05, "token at {first}s, healed at {healed_at}s");
        // At most one try every 1.5 s while callers kept asking.
        assert!(fetches <= (healed_at / 1.5) as usize + 2, "{fetches} fetches");
        assert!(fetches >= (healed_at / 2.0) as usize - 2, "{fetches} fetches");
    }

    #[test]
    fn without_demand_the_backoff_grows_and_permanent_errors_keep_theirs() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        sim.respond(fetch.id, 503, "down");
        // Nobody asks: the timer follows the backoff only (no token, no deadline).
        assert_eq!(sim.lc.poll_timeout(), None);
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        sim.respond(fetch.id, 401, r#"{"error":"invalid_client"}"#);
        assert!(matches!(sim.want(), Want::Failed(_)));
        assert_eq!(sim.lc.poll_timeout(), None, "a permanent error is not retried on demand");
        sim.at(30.0);
        assert!(matches!(sim.want(), Want::Failed(_)), "still within the permanent delay");
    }

    #[test]
    fn retry_after_is_honoured() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        let mut response = Response::new(b"slow down".to_vec());
        *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
        response.headers_mut().insert("retry-after", "30".parse().unwrap());
        sim.lc.handle_fetch_response(sim.now, test_wall(), fetch.id, &response);
        assert!(matches!(&sim.outputs()[..], [Output::Failed(e)] if e.retry_after() == Some(SECS(30))));
        assert_eq!(sim.lc.backoff().unwrap().0 - sim.now, SECS(30));
        sim.at(29.0);
        assert!(matches!(sim.want(), Want::Failed(_)));
        assert!(sim.outputs().is_empty());
        sim.at(30.0);
        assert!(matches!(sim.want(), Want::Wait));
        sim.take_fetch();
    }

    #[test]
    fn retry_after_as_an_http_date_is_read_against_the_wall_time_given() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        let mut response = Response::new(b"down for maintenance".to_vec());
        *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        let date = httpdate::fmt_http_date(test_wall() + SECS(45));
        response.headers_mut().insert("retry-after", date.parse().unwrap());
        sim.lc.handle_fetch_response(sim.now, test_wall(), fetch.id, &response);
        assert!(matches!(&sim.outputs()[..], [Output::Failed(e)] if e.retry_after() == Some(SECS(45))));
        assert_eq!(sim.lc.backoff().unwrap().0 - sim.now, SECS(45));
    }

    #[test]
    fn permanent_errors_reach_waiters_at_once_and_back_off_long() {
        let mut sim = Sim::new(builder());
        sim.want();
        sim.want();
        let fetch = sim.take_fetch();
        let outputs = sim.respond(fetch.id, 401, r#"{"error":"invalid_client","error_description":"bad secret"}"#);
        let [Output::Failed(error)] = &outputs[..] else { panic!("{outputs:?}") };
        assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
        assert!(!sim.lc.has_waiters());
        assert!(sim.lc.backoff().unwrap().0 - sim.now >= SECS(60));
        match sim.want() {
            Want::Failed(e) => assert_eq!(&e, error),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_token_that_expires_in_flight_is_an_error_not_a_loop() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        sim.at(20.0);
        let outputs = sim.respond(fetch.id, 200, r#"{"access_token":"t","expires_in":10}"#);
        assert!(matches!(&outputs[..], [Output::Failed(TokenError::ExpiredOnArrival { .. })]));
        assert!(sim.lc.current_token(sim.now).is_none());
        assert!(sim.lc.backoff().is_some());
    }

    #[test]
    fn answers_to_other_fetches_are_ignored() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        let bogus = FetchId(fetch.id.get() + 7);
        assert!(sim.respond(bogus, 200, r#"{"access_token":"x"}"#).is_empty());
        sim.lc.handle_fetch_failed(sim.now, bogus, TokenError::transport("reset"));
        assert!(sim.outputs().is_empty());
        assert_eq!(sim.lc.fetch_in_flight(), Some(fetch.id));
        sim.lc.handle_fetch_failed(sim.now, fetch.id, TokenError::transport("connection refused"));
        assert!(matches!(&sim.outputs()[..], [Output::Failed(TokenError::Transport { .. })]));
    }

    #[test]
    fn discard_forgets_both_tokens() {
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        sim.respond(fetch.id, 200, r#"{"access_token":"a","refresh_token":"r","expires_in":3600}"#);
        sim.lc.handle_discard(sim.now);
        assert!(matches!(&sim.outputs()[..], [Output::TokenWithdrawn { reason: WithdrawReason::Discarded, .. }]));
        assert!(sim.lc.refresh_token().is_none());
        assert!(sim.lc.poll_timeout().is_none());
        assert!(matches!(sim.want(), Want::Wait));
        assert_eq!(sim.take_fetch().grant, GrantKind::ClientCredentials);
    }

    #[test]
    fn provider_text_never_echoes_the_tokens_we_hold() {
        let mut sim = Sim::new(builder().scope("offline_access"));
        sim.want();
        let fetch = sim.take_fetch();
        sim.respond(
            fetch.id,
            200,
            r#"{"access_token":"access-AAAA","refresh_token":"refresh-BBBB","expires_in":3600}"#,
        );
        // The access token is rejected (withdrawn) before the renewal fails.
        let generation = sim.lc.current_token(sim.now).unwrap().generation();
        assert_eq!(sim.lc.handle_unauthorized(sim.now, generation), Unauthorized::Invalidated);
        let renewal = sim.take_fetch();
        let outputs = sim.respond(renewal.id, 502, "<p>upstream failed for refresh-BBBB and access-AAAA</p>");
        let [Output::Failed(error)] = &outputs[..] else { panic!("{outputs:?}") };
        let text = error.to_string();
        assert!(!text.contains("refresh-BBBB") && !text.contains("access-AAAA"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn restored_lifetimes_are_clamped_like_fetched_ones() {
        let mut sim = Sim::new(builder());
        let forever = StoredToken::new(Some(AccessTokenValue::new("saved")), Duration::MAX, None, None);
        sim.lc.handle_restore(sim.now, forever);
        let [Output::TokenReady(token)] = &sim.outputs()[..] else { panic!() };
        assert_eq!(token.lifetime(), MAX_LIFETIME);
    }

    #[test]
    fn revoking_forgets_both_tokens_and_asks_for_both_revocations() {
        let mut sim = Sim::new(builder().revocation_url("https://auth.example.com/revoke"));
        sim.want();
        let fetch = sim.take_fetch();
        sim.respond(fetch.id, 200, r#"{"access_token":"at-1","refresh_token":"rt-1","expires_in":3600}"#);
        let requests = sim.lc.handle_revoke(sim.now).unwrap();
        let kinds: Vec<_> = requests.iter().map(|r| r.kind()).collect();
        assert_eq!(kinds, [crate::request::TokenKind::RefreshToken, crate::request::TokenKind::AccessToken]);
        assert!(sim.lc.refresh_token().is_none() && sim.lc.current_token(sim.now).is_none());
        assert!(matches!(sim.outputs()[..], [Output::TokenWithdrawn { reason: WithdrawReason::Discarded, .. }]));
        // Without a revocation URL nothing is forgotten.
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        sim.respond_token(fetch.id, "kept", 3600);
        assert_eq!(sim.lc.handle_revoke(sim.now).unwrap_err(), ConfigError::NoRevocationUrl);
        assert!(sim.lc.current_token(sim.now).is_some());
    }

    #[test]
    fn backoff_arithmetic_saturates_at_the_widest_policy() {
        let widest = BackoffPolicy {
            initial: Duration::from_secs(3600),
            max: Duration::from_secs(86_400),
            multiplier: 10.0,
            jitter: 0.0,
            ..BackoffPolicy::default()
        };
        let mut sim = Sim::new(builder().backoff_policy(widest));
        for _ in 0..80 {
            sim.now += Duration::from_secs(86_400);
            sim.timeout();
            sim.want();
            if let Some(fetch) = sim.outputs().into_iter().find_map(|o| match o {
                Output::Fetch(f) => Some(f),
                _ => None,
            }) {
                sim.respond(fetch.id, 500, "down");
            }
        }
        assert!(sim.lc.stats().failures >= 40);
        assert_eq!(sim.lc.backoff().unwrap().0 - sim.now, Duration::from_secs(86_400));
    }

    #[test]
    fn restore_and_snapshot_round_trip() {
        let mut sim = Sim::new(builder());
        let stored = StoredToken::new(
            Some(AccessTokenValue::new("saved")),
            SECS(1800),
            Some(RefreshToken::new("r")),
            Some("s".into()),
        );
        sim.lc.handle_restore(sim.now, stored);
        let outputs = sim.outputs();
        let [Output::TokenReady(token)] = &outputs[..] else { panic!("{outputs:?}") };
        assert_eq!(token.value().expose_secret(), "saved");
        assert_eq!(token.expires_at() - sim.now, SECS(1800));
        assert_eq!(ready(sim.want()).generation(), token.generation());
        assert!(sim.outputs().is_empty(), "no fetch: the restored token is used");
        sim.at(600.0);
        let snapshot = sim.lc.snapshot(sim.now).unwrap();
        assert_eq!(snapshot.expires_in, SECS(1200));
        assert_eq!(snapshot.refresh_token.unwrap().expose_secret(), "r");
        assert_eq!(snapshot.scope.as_deref(), Some("s"));
        // An expired saved token is not used; its refresh token is.
        let mut sim = Sim::new(builder());
        sim.lc.handle_restore(
            sim.now,
            StoredToken::new(Some(AccessTokenValue::new("old")), Duration::ZERO, Some(RefreshToken::new("r2")), None),
        );
        assert!(sim.outputs().is_empty());
        assert!(matches!(sim.want(), Want::Wait));
        assert_eq!(sim.take_fetch().grant, GrantKind::RefreshToken);
    }

    #[test]
    fn a_spent_budget_serves_the_token_until_unusable_then_says_when() {
        let refresh = RefreshPolicy { jitter: 0.0, ..RefreshPolicy::default() };
        let mut sim = Sim::new(builder().max_fetches_per_day(2).refresh_policy(refresh));
        sim.want();
        let fetch = sim.take_fetch();
        // A refused request is given back: it does not count.
        sim.respond(fetch.id, 503, "down");
        sim.now = sim.lc.backoff().unwrap().0;
        let first_at = sim.now;
        assert!(matches!(sim.want(), Want::Wait));
        let first = sim.take_fetch();
        let token = sim.respond_token(first.id, "t1", 3600);
        sim.now = token.renew_at();
        let second = only_fetch(sim.timeout());
        let token = sim.respond_token(second.id, "t2", 3600);
        sim.now = token.renew_at();
        let outputs = sim.timeout();
        assert!(
            matches!(&outputs[..], [Output::Failed(TokenError::BudgetSpent { limit: 2, shared: false, .. })]),
            "{outputs:?}"
        );
        assert_eq!(ready(sim.want()).generation(), token.generation(), "the current token is still served");
        assert!(sim.outputs().is_empty());
        sim.now = token.usable_until();
        sim.timeout();
        let allowed_at = sim.now + SECS(1);
        let error = match sim.want() {
            Want::Failed(error) => error,
            other => panic!("{other:?}"),
        };
        // The window started with the first counted fetch (the refused one was given back).
        let expected = (first_at + FETCH_BUDGET_WINDOW).duration_since(sim.now);
        assert_eq!(error.retry_after(), Some(expected));
        let text = error.to_string();
        assert!(
            text.contains("token budget is spent: 2 token requests in the last 24 hours by this process"),
            "{text}"
        );
        assert!(text.contains("the next is allowed in 22h"), "{text}");
        assert!(allowed_at < first_at + FETCH_BUDGET_WINDOW);
        assert_eq!(sim.lc.stats().budget_refusals, 1);
        assert_eq!(sim.lc.stats().budget_refunds, 1);
        // When the first fetch leaves the window, the next caller fetches.
        sim.now = first_at + FETCH_BUDGET_WINDOW;
        assert!(matches!(sim.want(), Want::Wait));
        let third = sim.take_fetch();
        sim.respond_token(third.id, "t3", 3600);
    }

    #[test]
    fn a_budget_in_the_store_is_shared_by_every_source() {
        let store = crate::store::MemoryStore::new();
        let config = Arc::new(builder().max_fetches_per_day(1).build().unwrap());
        let t0 = Instant::now();
        let wall0 = UNIX_EPOCH + SECS(1_800_000_000);
        let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
        let mut b = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
        // Runs store operations until the source asks for something else.
        let run = |lc: &mut Lifecycle, now: Instant| -> Vec<Output> {
            let mut other = Vec::new();
            while let Some(output) = lc.poll_output() {
                match output {
                    Output::Store(request) => {
                        let wall = wall0 + (now - t0);
                        let answer = store.apply(config.cache_key(), wall, &request.op);
                        lc.handle_store(now, wall, request.id, Ok(answer));
                    }
                    output => other.push(output),
                }
            }
            other
        };
        assert!(matches!(a.handle_token_wanted(t0), Want::Wait));
        let fetch = only_fetch(run(&mut a, t0));
        // Another cache key's worth of traffic does not matter; the same key's does.
        let mut response = Response::new(br#"{"access_token":"shared","expires_in":60}"#.to_vec());
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        a.handle_fetch_response(t0, test_wall(), fetch.id, &response);
        run(&mut a, t0);
        // b adopts a's token: no fetch, nothing spent.
        assert!(matches!(b.handle_token_wanted(t0), Want::Wait));
        assert!(run(&mut b, t0).iter().any(|o| matches!(o, Output::TokenReady(_))));
        // Both tokens expire; the fleet's one fetch of the day is spent.
        let later = t0 + SECS(120);
        assert!(matches!(b.handle_token_wanted(later), Want::Wait));
        let outputs = run(&mut b, later);
        let Some(Output::Failed(TokenError::BudgetSpent { shared: true, retry_at: Some(at), retry_in, .. })) =
            outputs.iter().find(|o| matches!(o, Output::Failed(_)))
        else {
            panic!("{outputs:?}")
        };
        assert_eq!(*at, wall0 + FETCH_BUDGET_WINDOW, "when a's fetch leaves the window");
        assert_eq!(*retry_in, FETCH_BUDGET_WINDOW - SECS(120));
        assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))));
        assert!(matches!(b.handle_token_wanted(later), Want::Failed(TokenError::BudgetSpent { .. })));
        // The lease was given back: a can try too, and is refused the same way.
        assert!(matches!(a.handle_token_wanted(later), Want::Wait));
        assert!(run(&mut a, later).iter().any(|o| matches!(o, Output::Failed(TokenError::BudgetSpent { .. }))));
        assert_eq!(a.stats().fetches + b.stats().fetches, 1);
    }

    #[test]
    fn a_store_outage_is_reported_once_and_its_end_once() {
        let config = Arc::new(builder().build().unwrap());
        let t0 = Instant::now();
        let wall = UNIX_EPOCH + SECS(1_800_000_000);
        let mut lc = Lifecycle::with_store(Arc::clone(&config), 7, StoreConfig::default());
        let health = std::cell::RefCell::new(Vec::new());
        let answer = |lc: &mut Lifecycle, now: Instant, ok: bool| {
            let mut fetch = None;
            while let Some(output) = lc.poll_output() {
                match output {
                    Output::Store(request) => {
                        let result = if ok { Ok(StoreAnswer::Envelope(None)) } else { Err(StoreError::new("down")) };
                        lc.handle_store(now, wall, request.id, result);
                    }
                    Output::StoreHealth { available, error } => health.borrow_mut().push((available, error.is_some())),
                    Output::Fetch(f) => fetch = Some(f.id),
                    _ => {}
                }
            }
            fetch
        };
        // Three acquisitions while the store fails: each fetches locally.
        for round in 0..3u64 {
            let now = t0 + SECS(round * 4000);
            lc.handle_token_wanted(now);
            let id = answer(&mut lc, now, false).expect("a local fetch");
            let mut response = Response::new(br#"{"access_token":"t","expires_in":3600}"#.to_vec());
            response.headers_mut().insert("content-type", "application/json".parse().unwrap());
            lc.handle_fetch_response(now, test_wall(), id, &response);
            answer(&mut lc, now, false);
        }
        assert!(lc.stats().store_errors >= 6);
        assert_eq!(*health.borrow(), vec![(false, true)], "said once");
        let now = t0 + SECS(12_000 + 4000);
        lc.handle_token_wanted(now);
        answer(&mut lc, now, true);
        assert_eq!(*health.borrow(), vec![(false, true), (true, false)], "and its end once");
    }

    #[test]
    fn a_budget_of_zero_or_too_many_is_refused() {
        for limit in [0, 100_001] {
            let error = builder().max_fetches_per_day(limit).build().unwrap_err();
            assert!(
                error.to_string().contains("max_fetches_per_day") && error.to_string().contains("1 to 100000"),
                "{error}"
            );
        }
        assert!(builder().max_fetches_per_day(100_000).build().is_ok());
    }

    #[test]
    fn debug_shows_no_secret() {
        for auth in [ClientAuth::Basic, ClientAuth::Post, ClientAuth::Json] {
            let mut sim = Sim::new(builder().client_secret("client-secret-789").client_auth(auth));
            sim.want();
            let fetch = sim.take_fetch();
            let shown = format!("{fetch:?} {:?}", Output::Fetch(sim_fetch_copy(&fetch)));
            crate::request::tests::assert_no_secret(&shown, &["client-secret-789"]);
            assert!(shown.contains("ClientCredentials") && shown.contains("/token"), "{shown}");
            let refresh = sim.respond(fetch.id, 200, r#"{"access_token":"a","refresh_token":"refresh-token-321"}"#);
            assert_eq!(refresh.len(), 1);
            sim.now = sim.lc.poll_timeout().unwrap();
            let renewal = only_fetch(sim.timeout());
            assert_eq!(renewal.grant, GrantKind::RefreshToken);
            crate::request::tests::assert_no_secret(
                &format!("{renewal:?}"),
                &["client-secret-789", "refresh-token-321"],
            );
        }
        let mut sim = Sim::new(builder());
        sim.want();
        let fetch = sim.take_fetch();
        let token = sim.respond_token(fetch.id, "visible-token-value", 3600);
        let shown = format!("{:?} {:?}", sim.lc, token);
        assert!(!shown.contains("visible-token-value"), "{shown}");
    }
}
