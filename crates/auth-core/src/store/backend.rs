//! What a store backend implements: one trait for async token sources
//! (auth-tower, auth-reqwest) and one for blocking ones (auth-blocking).
//! Both live here, beside the protocol they carry out, so that a backend
//! (auth-store's files and Redis, or one of a user's own) depends on this
//! crate alone. They describe IO without doing any: the drivers run them.

use std::time::SystemTime;

use super::{MemoryStore, StoreAnswer, StoreError, StoreOp};
use crate::config::CacheKey;

/// A shared token store backend, for async token sources.
///
/// `execute` carries out one operation on the record of `key` exactly as
/// the [table](super) says (compare-and-set on the generation,
/// compare-and-delete on the fingerprint and the lease owner). It must not
/// hold a secret in its errors. Operations that this version of the
/// backend does not know (the enum grows) should answer an error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token store for async token sources (auth-tower, auth-reqwest)",
    note = "auth-store's `FileStore` and `RedisStore` are one with auth-store's `tower` feature: \
            auth-store = {{ ..., features = [\"tower\"] }} (`redis` too for Redis)",
    note = "an `Encrypted<S>` is one when `S` is",
    note = "a blocking store (`BlockingTokenStore`) is for auth-blocking's sources"
)]
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Gets ready for operations: a backend that connects does it here,
    /// so that the time it takes is not charged to an operation. The token
    /// source calls it before every operation, waiting at most
    /// `store_connect_timeout`; it must return at once when ready. An
    /// attempt that outlives the wait should go on in the background (the
    /// next call joins it) rather than start over. The default does
    /// nothing.
    async fn connect(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// How long an operation may take when the backend waits on purpose
    /// (for replicas to confirm a write): the token source then waits at
    /// least this long for an answer, whatever its store timeout, since an
    /// operation it gave up on midway could leave a lease taken and never
    /// given back. `None` (the default): no such wait.
    fn longest_answer(&self) -> Option<std::time::Duration> {
        None
    }

    /// Carries out `op` on the record of `key`. `now` is the wall time the
    /// driver read for it: a backend that keeps expiry itself (files,
    /// memory) checks leases and records against it; one with a clock of
    /// its own (Redis) may ignore it.
    async fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError>;
}

#[async_trait::async_trait]
impl<T: TokenStore + ?Sized> TokenStore for std::sync::Arc<T> {
    async fn connect(&self) -> Result<(), StoreError> {
        (**self).connect().await
    }

    fn longest_answer(&self) -> Option<std::time::Duration> {
        (**self).longest_answer()
    }

    async fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        (**self).execute(key, now, op).await
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryStore {
    async fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        Ok(self.apply(key, now, op))
    }
}

/// A shared token store backend, for blocking token sources.
///
/// `execute` carries out one operation on the record of `key` exactly as
/// the [table](super) says. Operations this version of the backend does
/// not know should answer an error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token store for blocking token sources (auth-blocking)",
    note = "auth-store's `FileStore` and `BlockingRedisStore` are one with auth-store's `blocking` feature: \
            auth-store = {{ ..., features = [\"blocking\"] }} (`redis` too for Redis)",
    note = "an `Encrypted<S>` is one when `S` is",
    note = "an async store (`TokenStore`) is for auth-tower's and auth-reqwest's sources"
)]
pub trait BlockingTokenStore: Send + Sync + 'static {
    /// Gets ready for operations: a backend that connects does it here,
    /// so that the time it takes is not charged to an operation. The token
    /// source calls it (on its store thread) before every operation,
    /// waiting at most `store_connect_timeout`; it must return at once
    /// when ready. The default does nothing.
    fn connect(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// How long an operation may take when the backend waits on purpose
    /// (for replicas to confirm a write): the token source then waits at
    /// least this long for an answer, whatever its store timeout, since an
    /// operation it gave up on midway could leave a lease taken and never
    /// given back. `None` (the default): no such wait.
    fn longest_answer(&self) -> Option<std::time::Duration> {
        None
    }

    /// Carries out `op` on the record of `key`, at the wall time `now`
    /// (see [`TokenStore::execute`]).
    fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError>;
}

impl BlockingTokenStore for MemoryStore {
    fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        Ok(self.apply(key, now, op))
    }
}
