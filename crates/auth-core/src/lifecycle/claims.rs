//! The fence around a refresh token that processes share through the
//! store: it is spent by one of them only, the one whose claim the store
//! took. A claim is a write of the record with the refresh token marked as
//! claimed by this source, compare-and-set on the generation read (a peer
//! that read the same record and claims too is refused), and confirmed on
//! replicas where the backend is asked to (so that a failover does not
//! lose it). A peer that finds the refresh token claimed never spends it:
//! it waits for the claimant's new tokens, and past its patience tells
//! callers so ([`TokenError::RefreshClaimed`]). The claimant writes the
//! new tokens until the store takes them ([`Publishing`]), and a rejected
//! refresh token is written as rejected, so that peers stop waiting.
//!
//! The lease only keeps the fleet to one fetch; the claim is what keeps a
//! rotating refresh token from being spent twice, also when the lease is
//! lost (a failover, a holder paused past it).

use std::time::Instant;

use super::observations::Observation;
use super::outputs::{FetchReason, GrantKind, Output};
use super::store_client::{Acquiring, Awaiting, PublishStep, Publishing, PUBLISH_ATTEMPTS};
use super::{Lifecycle, Slot};
use crate::config::SourceGrant;
use crate::error::{SignInReason, TokenError};
use crate::secret::{ExposeSecret, RefreshToken};
use crate::store::{fingerprint, Envelope, LeaseOwner, Record, StoreAnswer, StoreError, StoreOp};
use crate::wire::request::{token_request, Grant};

/// What may be done with the refresh token that is due to be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fence {
    /// Spend it: no store is shared, or this source's claim was written.
    Open,
    /// Claim it in the store first.
    Claim,
    /// A peer claimed it: wait for its tokens.
    Held(LeaseOwner),
    /// The store never answered: no claim can be written.
    Unclaimable,
}

impl Lifecycle {
    /// What may be done with the refresh token held now.
    pub(super) fn fence(&self) -> Fence {
        let (Some(store), Some(refresh)) = (self.store.as_ref(), self.refresh_token.as_ref()) else {
            return Fence::Open;
        };
        let held = fingerprint(refresh.expose_secret());
        if store.claimed.as_deref() == Some(held.as_str()) {
            return Fence::Open;
        }
        match &store.claimed_elsewhere {
            Some((claimed, owner)) if *claimed == held => Fence::Held(*owner),
            _ if store.anchor.is_none() => Fence::Unclaimable,
            _ => Fence::Claim,
        }
    }

    /// Sends the token request for `reason` (counted in `slot`): with the
    /// refresh token when the configuration spends it and the fence allows
    /// it (claiming it first, or waiting for the peer that did), otherwise
    /// with the source's own grant.
    pub(super) fn send_fetch(&mut self, now: Instant, reason: FetchReason, slot: Option<Slot>) {
        let acquiring = self.store.as_mut().and_then(|s| s.acquiring.take());
        let sign_in = self.config.grant() == SourceGrant::SignIn;
        let use_refresh = self.config.refresh_policy().use_refresh_token || sign_in;
        if use_refresh && self.refresh_token.is_some() {
            match self.fence() {
                Fence::Open => {
                    if let Some(refresh) = self.refresh_token.as_ref() {
                        let request = token_request(&self.config, Grant::RefreshToken(refresh));
                        self.send(now, reason, slot, GrantKind::RefreshToken, request);
                    }
                    return;
                }
                Fence::Claim => return self.claim(now, reason, slot, acquiring),
                Fence::Held(owner) if sign_in => return self.await_claimant(now, reason, slot, acquiring, owner),
                Fence::Unclaimable if sign_in => {
                    self.give_back(slot);
                    let message = "it has not answered yet".to_owned();
                    return self.back_off(now, TokenError::StoreUnavailable { message });
                }
                // A refresh token is this source's shortcut: its own grant still works.
                Fence::Held(_) | Fence::Unclaimable => {}
            }
        }
        self.send_own_grant(now, reason, slot);
    }

    /// Sends the request of the source's own grant (client credentials, a
    /// JWT bearer assertion); a user's source has none and says so.
    fn send_own_grant(&mut self, now: Instant, reason: FetchReason, slot: Option<Slot>) {
        let (grant, request) = match self.config.grant() {
            SourceGrant::SignIn => {
                // The refresh token can go between the budget's count and here (a discard).
                self.give_back(slot);
                return self.refuse_without_refresh_token(now);
            }
            SourceGrant::JwtBearer => (GrantKind::JwtBearer, token_request(&self.config, Grant::JwtBearer)),
            SourceGrant::TokenExchange => (GrantKind::TokenExchange, token_request(&self.config, Grant::TokenExchange)),
            _ => (GrantKind::ClientCredentials, token_request(&self.config, Grant::ClientCredentials)),
        };
        self.send(now, reason, slot, grant, request);
    }

    /// Writes the claim on the refresh token; the answer decides
    /// ([`Lifecycle::claim_answered`]).
    fn claim(&mut self, now: Instant, reason: FetchReason, slot: Option<Slot>, acquiring: Option<Acquiring>) {
        let record = self.claim_record(now);
        let Some(store) = self.store.as_mut() else { return };
        let acquiring = store.acquiring.insert(acquiring.unwrap_or(Acquiring::new(reason)));
        acquiring.reason = reason;
        // A new claim: an earlier write of this source's is not repaired over it.
        store.publishing = None;
        let owner = store.owner;
        let Some(envelope) = record.and_then(|record| store.seal(record.claimed_by(owner))) else {
            // No wall time (checked by the fence) or a wrapped generation: unreachable.
            store.acquiring = None;
            self.give_back(slot);
            let message = "no claim could be written".to_owned();
            return self.back_off(now, TokenError::StoreUnavailable { message });
        };
        let request = store.write_over_read(envelope, Awaiting::Claim(slot));
        self.stats.refresh_claims += 1;
        self.outputs.push_back(Output::Store(request));
    }

    /// The record that claims the refresh token: the current access token
    /// (peers may still use it), the refresh token.
    fn claim_record(&self, now: Instant) -> Option<Record> {
        let store = self.store.as_ref()?;
        let token = self.current.as_ref().map(|c| &c.token).filter(|t| t.is_usable(now));
        let (issued, expires) = match token {
            Some(token) => (store.wall(token.issued_at)?, store.wall(token.expires_at)?),
            None => (store.wall(now)?, store.wall(now)?),
        };
        Some(self.record(token.map(|t| &**t), issued, expires, self.refresh_token.clone()))
    }

    /// The store answered the claim written for a fetch counted in `slot`.
    pub(super) fn claim_answered(
        &mut self,
        now: Instant,
        reason: FetchReason,
        slot: Option<Slot>,
        answer: Result<StoreAnswer, StoreError>,
        patience_over: bool,
    ) {
        match answer {
            Ok(StoreAnswer::Written(true)) => {
                let claimed = self.refresh_token.as_ref().map(|r| fingerprint(r.expose_secret()));
                if let Some(store) = self.store.as_mut() {
                    store.claimed = claimed;
                    store.read_generation = store.generation;
                }
                self.send_fetch(now, reason, slot);
            }
            Ok(StoreAnswer::Written(false)) => {
                // Another record than the one read: a peer's tokens, or its claim. Read it.
                self.give_back(slot);
                self.read_store();
            }
            answer if self.config.grant() == SourceGrant::SignIn => {
                // Not claimed (or not confirmed on the replicas): not spent.
                self.give_back(slot);
                match (patience_over, answer) {
                    (false, _) => self.poll_store_later(now),
                    (true, answer) => {
                        let message = match answer {
                            Err(error) => error.to_string(),
                            Ok(_) => "it answered the claim with the wrong kind of answer".to_owned(),
                        };
                        self.back_off(now, TokenError::StoreUnavailable { message });
                    }
                }
            }
            _ => {
                if let Some(store) = self.store.as_mut() {
                    store.acquiring = None;
                }
                self.send_own_grant(now, reason, slot);
            }
        }
    }

    /// A peer claimed the refresh token: wait for its tokens (reading the
    /// store), and past the patience tell callers why there is none.
    pub(super) fn await_claimant(
        &mut self,
        now: Instant,
        reason: FetchReason,
        slot: Option<Slot>,
        acquiring: Option<Acquiring>,
        owner: LeaseOwner,
    ) {
        self.give_back(slot);
        self.stats.claim_waits += 1;
        self.observed(Observation::ClaimWait);
        self.release_lease();
        let patience_over = acquiring.as_ref().and_then(|a| a.peer_wait_until).is_some_and(|until| now >= until);
        if let Some(store) = self.store.as_mut() {
            store.acquiring.insert(acquiring.unwrap_or(Acquiring::new(reason))).reason = reason;
        }
        match patience_over {
            true => self.back_off(now, TokenError::RefreshClaimed { by: owner.short() }),
            false => self.poll_store_later(now),
        }
    }

    /// Gives back the budget slot of a fetch that is not sent.
    fn give_back(&mut self, slot: Option<Slot>) {
        if let Some(slot) = slot {
            self.refund(slot);
        }
    }

    /// The claimed refresh token `dead` was rejected: the record says so,
    /// so that peers waiting for the claimant's tokens stop waiting.
    pub(super) fn publish_rejection(&mut self, now: Instant, dead: RefreshToken) {
        let Some(store) = self.store.as_ref() else { return };
        if store.claimed.as_deref() != Some(fingerprint(dead.expose_secret()).as_str()) {
            return;
        }
        let Some(wall) = store.wall(now) else { return };
        let record = self.record(None, wall, wall, Some(dead)).refresh_rejected();
        let Some(store) = self.store.as_mut() else { return };
        if let Some(request) = store.write(record) {
            self.outputs.push_back(Output::Store(request));
        }
    }

    /// What a newer record says about its refresh token: claimed by a peer
    /// (not spent here until it writes), or rejected (dead here too).
    pub(super) fn learn_claim(&mut self, record: &Record) {
        let Some(store) = self.store.as_mut() else { return };
        let refresh = record.refresh_token().map(|r| fingerprint(r.expose_secret()));
        let claimant = record.claimant().filter(|owner| *owner != store.owner);
        store.claimed_elsewhere = refresh.clone().zip(claimant);
        let Some(dead) = refresh.filter(|_| record.is_refresh_rejected()) else { return };
        if self.refresh_token.as_ref().is_some_and(|r| fingerprint(r.expose_secret()) == dead) {
            self.refresh_token = None;
            self.signed_out = Some(SignInReason::RefreshRejectedElsewhere);
        }
        store.dead_refresh = Some(dead);
    }

    /// Writes `record` (releasing the lease). When it holds tokens bought
    /// with the claimed refresh token of fingerprint `spent`, it is written
    /// until the store takes it: peers wait for it.
    pub(super) fn publish(&mut self, record: Record, spent: Option<String>) {
        let Some(store) = self.store.as_mut() else { return };
        store.publishing = None;
        let Some(request) = store.write(record.clone()) else { return };
        if let Some(spent) = spent {
            let op = Some((request.id, PublishStep::Write));
            store.publishing = Some(Publishing { record, spent, op, retry_at: None, attempts: 1 });
        }
        self.outputs.push_back(Output::Store(request));
    }

    /// The fingerprint of the refresh token held now, if this source
    /// claimed it (it is being spent under the claim).
    pub(super) fn claimed_refresh(&self) -> Option<String> {
        let claimed = self.store.as_ref()?.claimed.as_deref()?;
        let held = fingerprint(self.refresh_token.as_ref()?.expose_secret());
        (held == claimed).then_some(held)
    }

    /// A token request spent the claimed refresh token `spent` and the
    /// provider rotated it, but no token came of it (it arrived expired,
    /// say): the new refresh token is written, so that peers waiting on
    /// the claim go on with it.
    pub(super) fn publish_rotated(&mut self, now: Instant, spent: String) {
        let Some(refresh) = self.refresh_token.clone() else { return };
        if fingerprint(refresh.expose_secret()) == spent {
            return;
        }
        let Some(wall) = self.store.as_ref().and_then(|store| store.wall(now)) else { return };
        let record = self.record(None, wall, wall, Some(refresh));
        self.publish(record, Some(spent));
    }

    /// The store answered an operation of the write of tokens bought with
    /// a claimed refresh token: done once a write was taken (or another
    /// source's record replaced the claim); otherwise the record is read
    /// (later, after a failure) and replaced while it is still this
    /// source's own.
    pub(super) fn publish_answered(&mut self, now: Instant, answer: Result<StoreAnswer, StoreError>) {
        let key = self.config.cache_key().clone();
        let Some(store) = self.store.as_mut() else { return };
        let (poll, owner) = (store.config.poll_interval, store.owner);
        let Some(mut publishing) = store.publishing.take() else { return };
        let Some((_, step)) = publishing.op.take() else { return };
        let mine = |envelope: &Envelope| {
            envelope.open(&key).is_ok_and(|record| match record.claimant() {
                // The claim these tokens were bought under (not a later one).
                Some(claimant) => {
                    claimant == owner
                        && record.refresh_token().is_some_and(|r| fingerprint(r.expose_secret()) == publishing.spent)
                }
                None => {
                    envelope.fingerprint == publishing.record.fingerprint()
                        && !record.is_refresh_rejected()
                        && record.refresh_token().map(|r| fingerprint(r.expose_secret()))
                            == publishing.record.refresh_token().map(|r| fingerprint(r.expose_secret()))
                }
            })
        };
        let next = match (step, answer) {
            (PublishStep::Write, Ok(StoreAnswer::Written(true))) => None,
            (PublishStep::Read, Ok(StoreAnswer::Envelope(Some(envelope)))) if mine(&envelope) => {
                Some((Some(envelope.generation), now))
            }
            // Replaced by another source's record (or deleted): nothing to repair.
            (PublishStep::Read, Ok(_)) => None,
            // The first write found a newer record: another source's.
            (PublishStep::Write, Ok(StoreAnswer::Written(false))) if publishing.attempts == 1 => None,
            // Not taken as sent (another record than the one read), or not
            // confirmed: read what is there.
            (PublishStep::Write, Ok(_)) => Some((None, now)),
            (_, Err(_)) => {
                let delay = poll.saturating_mul(1 << publishing.attempts.saturating_sub(1).min(16));
                Some((None, now + delay))
            }
        };
        let Some((replace, at)) = next.filter(|_| publishing.attempts < PUBLISH_ATTEMPTS) else { return };
        publishing.attempts += 1;
        let request = match replace {
            Some(expected) => {
                let Some(envelope) = store.seal(publishing.record.clone()) else { return };
                let request = store.request(StoreOp::CompareAndSet { envelope, expected });
                publishing.op = Some((request.id, PublishStep::Write));
                Some(request)
            }
            None if at <= now => {
                let request = store.request(StoreOp::Read);
                publishing.op = Some((request.id, PublishStep::Read));
                Some(request)
            }
            None => {
                publishing.retry_at = Some(at);
                None
            }
        };
        store.publishing = Some(publishing);
        if let Some(request) = request {
            self.outputs.push_back(Output::Store(request));
        }
    }

    /// Reads the record again when a failed write of claimed tokens is due
    /// to be repaired.
    pub(super) fn republish(&mut self, now: Instant) {
        let Some(store) = self.store.as_mut() else { return };
        let Some(publishing) = store.publishing.as_mut().filter(|p| p.retry_at.is_some_and(|at| now >= at)) else {
            return;
        };
        publishing.retry_at = None;
        let request = store.request(StoreOp::Read);
        if let Some(publishing) = store.publishing.as_mut() {
            publishing.op = Some((request.id, PublishStep::Read));
        }
        self.outputs.push_back(Output::Store(request));
    }
}
