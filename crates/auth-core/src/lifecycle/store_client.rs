//! A lifecycle's client of the shared store (see [`crate::store`]): its
//! half of the protocol's state, and the requests it makes. What a token
//! read from the store means for the lifecycle is decided there.

use std::time::{Instant, SystemTime};

use super::outputs::FetchReason;
use super::Slot;
use crate::config::FETCH_BUDGET_WINDOW;
use crate::store::{unix_ms, Envelope, LeaseOwner, Record, StoreConfig, StoreOp, StoreOpId, StoreRequest};

/// How many rejected tokens' fingerprints a source keeps.
const REJECTED_KEPT: usize = 8;
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
    /// The generation of this source's own sign-in record: a record below
    /// it predates the sign-in and is never used.
    pub(super) floor: u64,
    /// The generation the latest read found (0: none), or this source's
    /// claim wrote: a claim is written only over it.
    pub(super) read_generation: u64,
    /// The fingerprints of the latest tokens a 401 rejected (at most
    /// [`REJECTED_KEPT`], newest last): never adopted again. More than one:
    /// a deletion that failed (the store was down) leaves a rejected token
    /// in the store while the next one is rejected too.
    pub(super) rejected: std::collections::VecDeque<String>,
    /// The fingerprint of the refresh token the provider rejected: never
    /// taken from the store again (it would be spent again and again).
    pub(super) dead_refresh: Option<String>,
    /// An instant and the wall time at that instant, from the latest store
    /// answer: converts between the store's Unix times and `Instant`s.
    pub(super) anchor: Option<(Instant, SystemTime)>,
    /// The last operation failed.
    pub(super) failing: bool,
    /// The fingerprint of the refresh token this source claimed in the
    /// store (the claim was written): only it may spend that token.
    pub(super) claimed: Option<String>,
    /// The newest record says another source claimed the refresh token of
    /// this fingerprint: it is not spent here.
    pub(super) claimed_elsewhere: Option<(String, LeaseOwner)>,
    /// The write of tokens bought with a claimed refresh token, until the
    /// store confirms it (peers wait for it).
    pub(super) publishing: Option<Publishing>,
}

/// Tokens bought with a claimed refresh token, being written: peers wait
/// for this very record, so a write the store could not confirm is tried
/// again: the record is read, and replaced (compare-and-set) only while it
/// is this source's claim or one of its own writes of these tokens.
pub(super) struct Publishing {
    pub(super) record: Record,
    /// The fingerprint of the refresh token spent for these tokens: the
    /// claim on it is this source's to replace (a later claim is not).
    pub(super) spent: String,
    /// The operation awaited, if one is under way.
    pub(super) op: Option<(StoreOpId, PublishStep)>,
    /// When to read the record again (after a failure).
    pub(super) retry_at: Option<Instant>,
    pub(super) attempts: u32,
}

/// The operation a [`Publishing`] awaits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PublishStep {
    /// The first write (releasing the lease), or a replacement.
    Write,
    /// The read before a replacement.
    Read,
}

/// How many operations a write of tokens bought with a claimed refresh
/// token may take: with the poll interval doubling after each failure,
/// about 50 s at the defaults, longer than a Sentinel failover.
pub(super) const PUBLISH_ATTEMPTS: u32 = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Awaiting {
    Read,
    Lease,
    /// A budget slot, by id.
    Budget(u64),
    /// The claim on the refresh token, written before it is spent; the
    /// budget slot the fetch was counted in, if any.
    Claim(Option<Slot>),
}

pub(super) struct Acquiring {
    pub(super) reason: FetchReason,
    /// A peer holds the lease: wait for its token until then.
    pub(super) peer_wait_until: Option<Instant>,
    /// Read the store again at this instant.
    pub(super) next_read: Option<Instant>,
}

impl Acquiring {
    pub(super) fn new(reason: FetchReason) -> Self {
        Self { reason, peer_wait_until: None, next_read: None }
    }
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
            floor: 0,
            read_generation: 0,
            rejected: std::collections::VecDeque::new(),
            dead_refresh: None,
            anchor: None,
            failing: false,
            claimed: None,
            claimed_elsewhere: None,
            publishing: None,
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
        if !self.rejects(&fingerprint) {
            if self.rejected.len() == REJECTED_KEPT {
                self.rejected.pop_front();
            }
            self.rejected.push_back(fingerprint.clone());
        }
        self.request(StoreOp::Invalidate { fingerprint })
    }

    /// Whether a 401 rejected the token of `fingerprint`.
    pub(super) fn rejects(&self, fingerprint: &str) -> bool {
        self.rejected.iter().any(|rejected| rejected == fingerprint)
    }

    /// Writes `record` one generation above the newest seen, releasing
    /// the lease with the write.
    pub(super) fn write(&mut self, record: Record) -> Option<StoreRequest> {
        let Some(envelope) = self.seal(record) else {
            return self.release_lease();
        };
        let release = std::mem::take(&mut self.lease_held).then_some(self.owner);
        Some(self.request(StoreOp::Write { envelope, release }))
    }

    /// Seals `record` one generation above the newest seen (`None` in the
    /// unreachable case of a generation that would wrap: adopted
    /// generations are bounded).
    pub(super) fn seal(&mut self, record: Record) -> Option<Envelope> {
        let generation = self.generation.checked_add(1)?;
        self.generation = generation;
        Some(Envelope::seal(&record, generation))
    }

    /// Writes `envelope` over the record of the generation read last,
    /// keeping the lease, and awaits the answer as `what`.
    pub(super) fn write_over_read(&mut self, envelope: Envelope, what: Awaiting) -> StoreRequest {
        let request = self.request(StoreOp::CompareAndSet { envelope, expected: self.read_generation });
        self.awaiting = Some((request.id, what));
        request
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
        self.acquiring.get_or_insert(Acquiring::new(reason)).reason = reason;
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

    /// When a failed write of claimed tokens is due again.
    pub(super) fn next_publish(&self) -> Option<Instant> {
        self.publishing.as_ref().and_then(|p| p.retry_at)
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
