//! Obtaining a token: starting a fetch under the fetch budget, installing
//! what the provider answers, and failing and backing off when it cannot.

use super::backoff::Backoff;
use super::claims::Fence;
use super::observations::Observation;
use super::outputs::{FetchId, FetchReason, FetchRequest, GrantKind, Output};
use super::store_client::Acquiring;
use super::timing::Timing;
use super::{Current, InFlight, Lifecycle, Slot};
use crate::config::SourceGrant;
use crate::error::{ErrorCode, SignInReason, TokenError};
use crate::publish::token::{AccessToken, Generation};
use crate::secret::ExposeSecret;
use crate::wire::response::{parse_token_response_redacting, retry_after, TokenResponse};
use http::Response;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

impl Lifecycle {
    /// Obtains a new token: through the store when one is configured,
    /// otherwise by fetching at once.
    pub(super) fn start_fetch(&mut self, now: Instant, reason: FetchReason) {
        if self.store.is_some() {
            self.demand = false;
            if let Some(store) = self.store.as_mut() {
                store.acquiring = Some(Acquiring::new(reason));
            }
            self.read_store();
        } else {
            self.fetch_now(now, reason, false);
        }
    }

    /// Sends the token request if the fetch budget allows it: counted in
    /// the store when one is configured and `store_ok` (it answered the
    /// acquisition so far), otherwise here.
    pub(super) fn fetch_now(&mut self, now: Instant, reason: FetchReason, store_ok: bool) {
        // Checked before the budget counts a request that is never sent.
        if self.config.grant() == SourceGrant::SignIn {
            match self.fence() {
                _ if self.refresh_token.is_none() => return self.refuse_without_refresh_token(now),
                Fence::Held(owner) => {
                    let acquiring = self.store.as_mut().and_then(|s| s.acquiring.take());
                    return self.await_claimant(now, reason, None, acquiring, owner);
                }
                _ => {}
            }
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
        let spent = self.budget.count(now, id);
        self.observed(Observation::Budget { spent, limit, shared: false });
        self.send_fetch(now, reason, Some(Slot { id, shared: false }));
    }

    /// The fetch budget is spent until `next` (no sooner than a second
    /// from now): no fetch until then; the current token is served while
    /// it is usable, and callers without one get the error.
    pub(super) fn budget_spent(&mut self, now: Instant, next: Option<Instant>, at: Option<SystemTime>, shared: bool) {
        self.release_lease();
        if let Some(store) = self.store.as_mut() {
            store.acquiring = None;
        }
        let until = next.unwrap_or(now).max(now + Duration::from_secs(1));
        let limit = self.config.max_fetches_per_day().unwrap_or(0);
        let error = TokenError::BudgetSpent { limit, shared, retry_in: until - now, retry_at: at };
        self.stats.budget_refusals += 1;
        self.observed(Observation::BudgetRefused { shared });
        self.observed(Observation::Budget { spent: limit, limit, shared });
        self.backoff = Some(Backoff { until, error: error.clone(), demand_at: None });
        self.waiting = false;
        self.outputs.push_back(Output::Failed(error));
    }

    /// Gives back the budget slot of a fetch the provider refused.
    pub(super) fn refund(&mut self, slot: Slot) {
        self.budget.refund(slot.id);
        self.stats.budget_refunds += 1;
        if let Some(store) = self.store.as_mut().filter(|_| slot.shared) {
            let request = store.refund_budget(slot.id);
            self.outputs.push_back(Output::Store(request));
        }
    }

    /// Sends `request`, of `grant`, for `reason`.
    pub(super) fn send(
        &mut self,
        now: Instant,
        reason: FetchReason,
        slot: Option<Slot>,
        grant: GrantKind,
        request: http::Request<Vec<u8>>,
    ) {
        if let Some(store) = self.store.as_mut() {
            store.acquiring = None;
        }
        self.demand = false;
        self.next_fetch_id += 1;
        let id = FetchId(self.next_fetch_id);
        self.fetch = Some(InFlight { id, sent_at: now, grant, reason, slot, scopes_added: self.scopes_added });
        self.stats.fetches += 1;
        self.outputs.push_back(Output::Fetch(FetchRequest { id, grant, reason, request }));
    }

    /// `response`, checked as the answer to a token exchange when `fetch`
    /// was one: its `issued_token_type` must be the one asked for.
    pub(super) fn exchanged(&self, fetch: &InFlight, response: TokenResponse) -> Result<TokenResponse, TokenError> {
        if let (GrantKind::TokenExchange, Some(exchange)) = (fetch.grant, self.config.token_exchange()) {
            exchange.check_issued(response.issued_token_type.as_deref())?;
        }
        Ok(response)
    }

    /// Turns a parsed response into the current token.
    pub(super) fn install(
        &mut self,
        now: Instant,
        fetch: &InFlight,
        response: TokenResponse,
    ) -> Result<Arc<AccessToken>, TokenError> {
        // A new token: the record restored earlier is not ours to delete.
        self.restored_unused = None;
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
        self.current = Some(Current {
            token: Arc::clone(&token),
            reason: fetch.reason,
            received_at: now,
            accepted: false,
            scopes_added: fetch.scopes_added,
        });
        self.last_issued = Some(Arc::clone(&token));
        Ok(token)
    }

    /// The tokens this machine holds, to redact from provider text (the
    /// parser adds the client secret).
    pub(super) fn held_secrets(&self) -> Vec<&str> {
        let refresh = self.refresh_token.as_ref().map(|t| t.expose_secret());
        let current = self.current.as_ref().map(|c| c.token.value().expose_secret());
        let access = self.last_issued.as_ref().map(|t| t.value().expose_secret());
        refresh.into_iter().chain(current).chain(access).collect()
    }

    /// Parses a token endpoint answer, redacting every token held; an
    /// error's `Retry-After` in either form, against the wall time.
    pub(super) fn parse<B: AsRef<[u8]>>(
        &self,
        wall: SystemTime,
        response: &Response<B>,
    ) -> Result<TokenResponse, TokenError> {
        let secrets = self.held_secrets();
        let (status, headers, body) = (response.status(), response.headers(), response.body().as_ref());
        parse_token_response_redacting(&self.config, &secrets, status, headers, body).map_err(|mut error| {
            error.fill_retry_after(retry_after(headers, wall));
            error
        })
    }

    pub(super) fn fail(&mut self, now: Instant, fetch: InFlight, mut error: TokenError) {
        if let Some(slot) = fetch.slot.filter(|_| nothing_issued(&error)) {
            self.refund(slot);
        }
        if fetch.grant == GrantKind::RefreshToken && error.code() == Some(&ErrorCode::InvalidGrant) {
            // The refresh token is dead: never spent again, even if the store still holds it.
            if let (Some(dead), Some(store)) = (self.refresh_token.take(), self.store.as_mut()) {
                store.dead_refresh = Some(crate::store::fingerprint(dead.expose_secret()));
                self.publish_rejection(now, dead);
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
    pub(super) fn back_off(&mut self, now: Instant, error: TokenError) {
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

    /// A sign-in source has no refresh token: no request; callers are told
    /// to sign the user in again, with why.
    pub(super) fn refuse_without_refresh_token(&mut self, now: Instant) {
        let reason = self.signed_out.clone().unwrap_or(if self.last_issued.is_some() {
            SignInReason::NoRefreshToken
        } else {
            SignInReason::NotSignedIn
        });
        let error = self.sign_in_required(reason);
        self.back_off(now, error);
    }

    /// The error that tells callers to sign the user in again.
    pub(super) fn sign_in_required(&self, reason: SignInReason) -> TokenError {
        TokenError::SignInRequired { reason, hint: self.config.sign_in_hint().to_owned() }
    }
}

impl Lifecycle {
    /// A new token is current (fetched, adopted or signed in): the failures
    /// and backoff are over, and waiters get it.
    pub(super) fn delivered(&mut self, token: Arc<AccessToken>) {
        self.consecutive_failures = 0;
        self.backoff = None;
        self.demand = false;
        self.waiting = false;
        self.stats.tokens += 1;
        self.outputs.push_back(Output::TokenReady(token));
    }

    /// Whether a refused caller is owed a retry at the backoff's `demand_at`.
    pub(super) fn demand_retry_pending(&self) -> bool {
        self.demand && self.current.is_none() && !self.busy()
    }

    /// How long a token fetched because of a 401 is protected from being
    /// invalidated by another 401.
    pub(super) fn unauthorized_delay(&self) -> Duration {
        super::backoff::unauthorized_delay(
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
