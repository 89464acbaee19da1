//! This lifecycle's side of sharing tokens through the store: what each
//! store answer means (adopt a peer's token, take the lease and fetch, wait
//! for a peer, fall back to a local fetch), and the reads, leases, writes
//! and invalidations it asks for.

use super::observations::{Observation, TokenOrigin};
use super::outputs::{FetchId, FetchReason, GrantKind, Output};
use super::store_client::Awaiting;
use super::{InFlight, Lifecycle, Slot};
use crate::config::SourceGrant;
use crate::error::TokenError;
use crate::publish::token::{AccessToken, Generation};
use crate::secret::{ExposeSecret, RefreshToken};
use crate::store::{BudgetAnswer, Envelope, Record, StoreAnswer, StoreError, StoreOpId};
use crate::wire::response::{TokenResponse, MAX_LIFETIME};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

impl Lifecycle {
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
        let published = store.publishing.as_ref().and_then(|p| p.op).is_some_and(|(op, _)| op == id);
        let awaited = store.awaiting.take_if(|(awaited, _)| *awaited == id).map(|(_, what)| what);
        if store.failing != answer.is_err() {
            store.failing = answer.is_err();
            let error = answer.as_ref().err().cloned();
            self.outputs.push_back(Output::StoreHealth { available: error.is_none(), error });
        }
        if answer.is_err() {
            self.stats.store_errors += 1;
        }
        if published {
            self.publish_answered(now, answer);
            return self.advance(now);
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
            (Awaiting::Claim(slot), answer) => self.claim_answered(now, reason, slot, answer, patience_over),
            (Awaiting::Budget(slot), Ok(StoreAnswer::Budget(BudgetAnswer::Granted { spent }))) => {
                self.budget.count(now, slot);
                self.observed(Observation::Budget {
                    spent,
                    limit: self.config.max_fetches_per_day().unwrap_or(spent),
                    shared: true,
                });
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
                if let Some(store) = self.store.as_mut() {
                    store.read_generation = envelope.as_ref().map_or(0, |e| e.generation);
                }
                if envelope.is_some_and(|envelope| self.adopt(now, wall, &envelope)) {
                    // The previous holder wrote its token just before we won the lease.
                    self.release_lease();
                    return;
                }
                if leased {
                    self.fetch_now(now, reason, true);
                } else if patience_over && !strict {
                    self.stats.peer_waits_expired += 1;
                    self.observed(Observation::PeerWaitExpired);
                    self.fetch_now(now, reason, true);
                } else {
                    self.acquire_lease();
                }
            }
            (Awaiting::Lease, Ok(StoreAnswer::Lease(true))) => {
                self.stats.leases_won += 1;
                self.observed(Observation::Lease { won: true });
                if let Some(store) = self.store.as_mut() {
                    store.lease_held = true;
                }
                // Reading and leasing are two steps: a peer may have written
                // its token and released the lease between them. Read again.
                self.read_store();
            }
            (Awaiting::Lease, Ok(StoreAnswer::Lease(false))) => {
                self.stats.leases_lost += 1;
                self.observed(Observation::Lease { won: false });
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
    pub(super) fn poll_store_later(&mut self, now: Instant) {
        let usable_until = self.current.as_ref().map(|c| c.token.usable_until);
        if let Some(store) = self.store.as_mut() {
            store.poll_later(now, usable_until);
        }
    }

    /// Asks the store for the envelope.
    pub(super) fn read_store(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        let request = store.read();
        self.stats.store_reads += 1;
        self.outputs.push_back(Output::Store(request));
    }

    pub(super) fn acquire_lease(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        let request = store.acquire_lease();
        self.outputs.push_back(Output::Store(request));
    }

    pub(super) fn release_lease(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        if let Some(request) = store.release_lease() {
            self.outputs.push_back(Output::Store(request));
        }
    }

    /// The current token of `generation` was rejected: delete it from the
    /// store too, if the store still holds that very token.
    pub(super) fn invalidate_shared(&mut self, generation: Generation) {
        let Some(token) = self.last_issued.as_ref().filter(|t| t.generation == generation) else { return };
        self.invalidate_record(crate::store::fingerprint(token.value().expose_secret()));
    }

    /// Deletes the stored record if it holds the access token of
    /// `fingerprint`.
    pub(super) fn invalidate_record(&mut self, fingerprint: String) {
        let Some(store) = self.store.as_mut() else { return };
        let request = store.invalidate(fingerprint);
        self.outputs.push_back(Output::Store(request));
    }

    /// Writes a token this machine obtained (fetched at `sent_at`) to the
    /// store, releasing the lease with the write. Without a wall time yet
    /// (no store answer so far) nothing is shared: only the lease is
    /// released. `spent`: the claimed refresh token it was bought with,
    /// whose claim the write replaces (see [`Lifecycle::publish`]).
    pub(super) fn write_shared(&mut self, token: &Arc<AccessToken>, sent_at: Instant, spent: Option<String>) {
        let Some(store) = self.store.as_ref() else { return };
        let (Some(issued), Some(expires)) = (store.wall(sent_at), store.wall(token.expires_at)) else {
            return self.release_lease();
        };
        let record = self.record(Some(token), issued, expires, self.refresh_token.clone());
        self.publish(record, spent);
    }

    /// The record of `token` (issued and expiring at these wall times) and
    /// `refresh_token`, with the fetch-loop guard's state.
    pub(super) fn record(
        &self,
        token: Option<&AccessToken>,
        issued: SystemTime,
        expires: SystemTime,
        refresh_token: Option<RefreshToken>,
    ) -> Record {
        let after_401 = self.current.as_ref().is_some_and(|c| c.reason == FetchReason::Unauthorized);
        Record::from_parts(
            self.config.cache_key(),
            token.map(|t| t.value().clone()),
            issued,
            expires,
            token.is_none_or(|t| t.lifetime_from_provider()),
            // A source that added step-up scopes says what its token was
            // asked with when the provider did not say (RFC 6749 §5.1: the
            // scope requested), so that its peers can tell.
            token.and_then(|t| t.scope().map(str::to_owned)).or_else(|| self.asked_scope(token)),
            refresh_token,
            after_401,
            self.unauthorized_streak,
        )
    }

    /// Takes the token in `envelope` if it is good enough: for this cache
    /// key, not the one just rejected, and usable past this replica's own
    /// renewal point for it. Its refresh token is taken either way when
    /// the record is not older than this source's own sign-in.
    pub(super) fn adopt(&mut self, now: Instant, wall: SystemTime, envelope: &Envelope) -> bool {
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
        if envelope.generation > store.generation {
            // Tokens written after ours: ours need not be written again.
            store.publishing = None;
        }
        store.generation = store.generation.max(envelope.generation);
        if envelope.generation < store.floor {
            // Written before this source's own sign-in (whose write failed): another sign-in's tokens.
            return false;
        }
        let rejected = store.rejects(&envelope.fingerprint);
        // The record read is what the store holds now: what it says of its
        // refresh token (claimed, rejected) stands, and the token is taken
        // unless it is dead or this source's own claim (it then holds that
        // token or its successor). Whatever its generation: a claim that
        // failed still raised the generation this source writes next.
        self.learn_claim(&record);
        let Some(store) = self.store.as_ref() else { return false };
        let dead = store.dead_refresh.as_deref();
        let own_claim = record.claimant() == Some(store.owner);
        if let Some(refresh) = record
            .refresh_token()
            .filter(|r| Some(crate::store::fingerprint(r.expose_secret()).as_str()) != dead && !own_claim)
        {
            self.refresh_token = Some(refresh.clone());
            self.signed_out = None;
        }
        if rejected && record.access_token().is_some() {
            // The store still holds a token a 401 rejected (deleting it
            // failed, the store was down): delete it again, so that no
            // peer takes it either.
            let request = self.store.as_mut().map(|store| store.invalidate(envelope.fingerprint.clone()));
            self.outputs.extend(request.map(Output::Store));
        }
        let current = self.current.as_ref().map(|c| crate::store::fingerprint(c.token.value().expose_secret()));
        // A token asked without the scopes a step-up added is not taken:
        // the API refused one like it for them.
        let narrow = self.scopes_granted(record.scope()) < self.scopes_added;
        let (Some(access), false) =
            (record.access_token(), rejected || narrow || current.as_deref() == Some(&envelope.fingerprint))
        else {
            return false;
        };
        // The record's times, as instants on this machine's clock.
        let Ok(remaining) = record.expires_at().duration_since(wall) else { return false };
        let lifetime = record.expires_at().duration_since(record.issued_at()).unwrap_or(remaining);
        let sent_at = now.checked_add(remaining).and_then(|end| end.checked_sub(lifetime)).unwrap_or(now);
        let reason = if record.after_401() { FetchReason::Unauthorized } else { FetchReason::NoToken };
        let adopted = InFlight {
            id: FetchId(0),
            sent_at,
            grant: GrantKind::ClientCredentials,
            reason,
            slot: None,
            scopes_added: self.scopes_granted(record.scope()),
        };
        let response = TokenResponse {
            access_token: access.clone(),
            expires_in: Some(lifetime.min(MAX_LIFETIME)),
            refresh_token: None,
            scope: record.scope().map(str::to_owned),
            issued_token_type: None,
        };
        let replaced_left = self.current_left(now);
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
                let lifetime = token.lifetime();
                self.observed(Observation::TokenInstalled { origin: TokenOrigin::Adopted, lifetime, replaced_left });
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
}
