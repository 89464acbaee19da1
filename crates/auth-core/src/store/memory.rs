//! The reference backend: a store in this process's memory.

use std::fmt;
use std::time::SystemTime;

use super::*;

/// A store in this process's memory, shared by every token source given
/// a clone of it: sources with the same cache key share one token (and one
/// fetch). It carries out the protocol exactly as a remote backend must,
/// so it is also the reference for backends and the fleet simulations.
///
/// Lease and envelope expiry are checked against the wall time passed in.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: std::sync::Arc<std::sync::Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    envelopes: std::collections::HashMap<String, Envelope>,
    leases: std::collections::HashMap<String, (LeaseOwner, SystemTime)>,
    budgets: std::collections::HashMap<String, BudgetLog>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Carries out `op` for `key` at wall time `now`.
    pub fn apply(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> StoreAnswer {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = key.fingerprint().to_owned();
        let now_ms = unix_ms(now);
        match op {
            StoreOp::Read => {
                let live = inner.envelopes.get(&key).filter(|e| e.expires_at_unix_ms > now_ms).cloned();
                StoreAnswer::Envelope(live)
            }
            StoreOp::AcquireLease { owner, ttl } => {
                let free = inner.leases.get(&key).is_none_or(|(holder, until)| holder == owner || *until <= now);
                if free {
                    inner.leases.insert(key, (*owner, now.checked_add(*ttl).unwrap_or(now)));
                }
                StoreAnswer::Lease(free)
            }
            StoreOp::Write { envelope, release } => {
                let newer = inner.envelopes.get(&key).is_none_or(|stored| stored.generation < envelope.generation);
                if newer {
                    inner.envelopes.insert(key.clone(), envelope.clone());
                }
                if let Some(owner) = release {
                    if inner.leases.get(&key).is_some_and(|(holder, _)| holder == owner) {
                        inner.leases.remove(&key);
                    }
                }
                StoreAnswer::Written(newer)
            }
            StoreOp::CompareAndSet { envelope, expected } => {
                let stored =
                    inner.envelopes.get(&key).filter(|e| e.expires_at_unix_ms > now_ms).map_or(0, |e| e.generation);
                let written = stored == *expected;
                if written {
                    inner.envelopes.insert(key, envelope.clone());
                }
                StoreAnswer::Written(written)
            }
            StoreOp::Invalidate { fingerprint } => {
                if inner.envelopes.get(&key).is_some_and(|stored| &stored.fingerprint == fingerprint) {
                    inner.envelopes.remove(&key);
                }
                StoreAnswer::Done
            }
            StoreOp::ReleaseLease { owner } => {
                if inner.leases.get(&key).is_some_and(|(holder, _)| holder == owner) {
                    inner.leases.remove(&key);
                }
                StoreAnswer::Done
            }
            StoreOp::SpendBudget { limit, window, at_unix_ms, slot } => {
                StoreAnswer::Budget(inner.budgets.entry(key).or_default().spend(*limit, *window, *at_unix_ms, slot))
            }
            StoreOp::RefundBudget { slot } => {
                if let Some(log) = inner.budgets.get_mut(&key) {
                    log.refund(slot);
                }
                StoreAnswer::Done
            }
        }
    }
}
