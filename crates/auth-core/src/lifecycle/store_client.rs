//! A lifecycle's client of the shared store (see [`crate::store`]): its
//! half of the protocol's state, and the requests it makes. What a token
//! read from the store means for the lifecycle is decided there.

use std::time::{Instant, SystemTime};

use super::outputs::FetchReason;
use crate::config::FETCH_BUDGET_WINDOW;
use crate::store::{unix_ms, Envelope, LeaseOwner, Record, StoreConfig, StoreOp, StoreOpId, StoreRequest};

/// A lifecycle's client of the shared store: the state of the protocol on
/// this side (the lease, the operation awaited, the newest generation,
/// the tokens never to adopt again) and the requests it makes.
pub(super) struct StoreClient {
    pub(super) config: StoreConfig,
    pub(super) owner: LeaseOwner,
    pub(super) next_op: u64,
    /// The store operation the acquisition waits on.
    pub(super) awaiting: Option<(StoreOpId, Awaiting)>,
    /// A token is being obtained through the store (no fetch yet).
    pub(super) acquiring: Option<Acquiring>,
    pub(super) lease_held: bool,
    /// The newest generation seen in the store.
    pub(super) generation: u64,
    /// The fingerprint of the token a 401 rejected: never adopted again.
    pub(super) rejected: Option<String>,
    /// The fingerprint of the refresh token the provider rejected: never
    /// taken from the store again (it would be spent again and again).
    pub(super) dead_refresh: Option<String>,
    /// An instant and the wall time at that instant, from the latest store
    /// answer: converts between the store's Unix times and `Instant`s.
    pub(super) anchor: Option<(Instant, SystemTime)>,
    /// The last operation failed.
    pub(super) failing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Awaiting {
    Read,
    Lease,
    /// A budget slot, by id.
    Budget(u64),
}

pub(super) struct Acquiring {
    pub(super) reason: FetchReason,
    /// A peer holds the lease: wait for its token until then.
    pub(super) peer_wait_until: Option<Instant>,
    /// Read the store again at this instant.
    pub(super) next_read: Option<Instant>,
}

impl StoreClient {
    pub(super) fn new(config: StoreConfig, owner: LeaseOwner) -> Self {
        Self {
            config,
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
        }
    }

    /// Reads the envelope (the read a wait was for is no longer due).
    pub(super) fn read(&mut self) -> StoreRequest {
        if let Some(acquiring) = self.acquiring.as_mut() {
            acquiring.next_read = None;
        }
        let request = self.request(StoreOp::Read);
        self.awaiting = Some((request.id, Awaiting::Read));
        request
    }

    /// Takes the renewal lease.
    pub(super) fn acquire_lease(&mut self) -> StoreRequest {
        let request = self.request(StoreOp::AcquireLease { owner: self.owner, ttl: self.config.lease_ttl });
        self.awaiting = Some((request.id, Awaiting::Lease));
        request
    }

    /// Gives the lease back, when held.
    pub(super) fn release_lease(&mut self) -> Option<StoreRequest> {
        std::mem::take(&mut self.lease_held).then(|| self.request(StoreOp::ReleaseLease { owner: self.owner }))
    }

    /// Deletes the token of `fingerprint` (a 401 rejected it), and never
    /// adopts it again.
    pub(super) fn invalidate(&mut self, fingerprint: String) -> StoreRequest {
        self.rejected = Some(fingerprint.clone());
        self.request(StoreOp::Invalidate { fingerprint })
    }

    /// Writes the record `record` makes of a token fetched at `sent_at`
    /// and expiring at `expires_at` (both as wall times), one generation
    /// above the newest seen, releasing the lease with the write. Without
    /// a wall time yet (no store answer so far) nothing is shared: only the
    /// lease is released.
    pub(super) fn write(
        &mut self,
        sent_at: Instant,
        expires_at: Instant,
        record: impl FnOnce(SystemTime, SystemTime) -> Record,
    ) -> Option<StoreRequest> {
        let (Some(issued), Some(expires)) = (self.wall(sent_at), self.wall(expires_at)) else {
            return self.release_lease();
        };
        let Some(generation) = self.generation.checked_add(1) else {
            // Unreachable (adopted generations are bounded): never wraps.
            return self.release_lease();
        };
        let release = std::mem::take(&mut self.lease_held).then_some(self.owner);
        self.generation = generation;
        let envelope = Envelope::seal(&record(issued, expires), generation);
        Some(self.request(StoreOp::Write { envelope, release }))
    }

    /// Counts a token request under slot `id` in the fleet's budget of
    /// `limit` (the acquisition for `reason` waits on the answer); `None`
    /// without a wall time yet (no store answer so far).
    pub(super) fn spend_budget(
        &mut self,
        now: Instant,
        limit: u32,
        id: u64,
        reason: FetchReason,
    ) -> Option<StoreRequest> {
        let at = self.wall(now)?;
        let op = StoreOp::SpendBudget {
            limit,
            window: FETCH_BUDGET_WINDOW,
            at_unix_ms: unix_ms(at),
            slot: self.slot_name(id),
        };
        self.acquiring.get_or_insert(Acquiring { reason, peer_wait_until: None, next_read: None }).reason = reason;
        let request = self.request(op);
        self.awaiting = Some((request.id, Awaiting::Budget(id)));
        Some(request)
    }

    /// Gives back the budget slot `id`.
    pub(super) fn refund_budget(&mut self, id: u64) -> StoreRequest {
        self.request(StoreOp::RefundBudget { slot: self.slot_name(id) })
    }

    /// While a peer fetches: when to read again, and how long to wait for
    /// it at most (the peer wait, or half of what is left of a usable
    /// token, whichever ends first).
    pub(super) fn poll_later(&mut self, now: Instant, usable_until: Option<Instant>) {
        let (wait, poll) = (self.config.peer_wait, self.config.poll_interval);
        let Some(acquiring) = self.acquiring.as_mut() else { return };
        let mut until = now + wait;
        if let Some(usable_until) = usable_until {
            until = until.min(now + usable_until.saturating_duration_since(now) / 2);
        }
        let until = *acquiring.peer_wait_until.get_or_insert(until);
        acquiring.next_read = Some((now + poll).min(until.max(now)));
    }

    pub(super) fn next_read(&self) -> Option<Instant> {
        self.acquiring.as_ref().and_then(|a| a.next_read).filter(|_| self.awaiting.is_none())
    }

    pub(super) fn request(&mut self, op: StoreOp) -> StoreRequest {
        self.next_op += 1;
        StoreRequest { id: StoreOpId(self.next_op), op }
    }

    /// The name of budget slot `id` in the store: unique per source.
    pub(super) fn slot_name(&self, id: u64) -> String {
        format!("{}-{id}", self.owner.as_hex())
    }

    pub(super) fn wall(&self, at: Instant) -> Option<SystemTime> {
        let (instant, wall) = self.anchor?;
        if at >= instant {
            wall.checked_add(at - instant)
        } else {
            wall.checked_sub(instant - at)
        }
    }
}
