//! Sharing tokens through a store, for synchronous programs: every
//! [`BlockingTokenSource`](crate::BlockingTokenSource) with the same cache
//! key and the same store makes one fetch per token lifetime between them
//! (see `auth_core::store` for the protocol).
//!
//! Operations run on a thread of their own; the token source waits for
//! each at most `store_timeout` (250 ms by default). While an operation
//! that timed out is still running, the next ones fail at once: a hung
//! store costs a request nothing beyond one timeout, and the source fetches
//! on its own meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use auth_core::store::{MemoryStore, StoreAnswer, StoreError, StoreOp, StoreRequest};
use auth_core::CacheKey;

/// A shared token store backend, for the blocking token source.
///
/// `execute` carries out one operation on the record of `key` exactly as
/// the table in `auth_core::store` says. Operations this version of the
/// backend does not know should answer an error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token store for auth-blocking",
    note = "auth-store's `FileStore` and `RedisStore` are one with auth-store's `blocking` feature: \
            auth-store = {{ ..., features = [\"blocking\"] }} (`redis` too for Redis)",
    note = "an `Encrypted<S>` is one when `S` is"
)]
pub trait BlockingTokenStore: Send + Sync + 'static {
    /// Carries out `op` on the record of `key`.
    fn execute(&self, key: &CacheKey, op: &StoreOp) -> Result<StoreAnswer, StoreError>;
}

impl BlockingTokenStore for MemoryStore {
    fn execute(&self, key: &CacheKey, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        Ok(self.apply(key, SystemTime::now(), op))
    }
}

type Job = (StoreRequest, mpsc::SyncSender<Result<StoreAnswer, StoreError>>);

/// Runs store operations on a thread of its own, one at a time, and waits
/// for each at most the timeout.
pub(crate) struct StoreRunner {
    jobs: mpsc::Sender<Job>,
    busy: Arc<AtomicBool>,
    timeout: Duration,
}

impl StoreRunner {
    pub(crate) fn start(store: Arc<dyn BlockingTokenStore>, key: CacheKey, timeout: Duration) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let busy = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&busy);
        std::thread::Builder::new().name("auth-token-store".to_owned()).spawn(move || {
            for (request, answer) in queue {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.execute(&key, &request.op)))
                        .unwrap_or_else(|_| Err(StoreError::new("the store backend panicked")));
                running.store(false, Ordering::Release);
                let _ = answer.send(outcome);
            }
        })?;
        Ok(Self { jobs, busy, timeout })
    }

    /// Carries out `request`, waiting at most the timeout.
    pub(crate) fn run(&self, request: StoreRequest) -> Result<StoreAnswer, StoreError> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(StoreError::new("the previous operation has not finished (the store is slow or hung)"));
        }
        let (answer, answered) = mpsc::sync_channel(1);
        if self.jobs.send((request, answer)).is_err() {
            return Err(StoreError::new("the store thread has stopped"));
        }
        match answered.recv_timeout(self.timeout) {
            Ok(outcome) => outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StoreError::timeout(self.timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::new("the store thread has stopped")),
        }
    }
}
