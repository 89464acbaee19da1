//! Sharing tokens through a store, for synchronous programs: every
//! [`BlockingTokenSource`](crate::BlockingTokenSource) with the same cache
//! key and the same store makes one fetch per token lifetime between them
//! (see `auth_core::store` for the protocol).
//!
//! Operations run on a thread of their own; the token source waits for the
//! store to get ready ([`BlockingTokenStore::connect`], at most
//! `store_connect_timeout`, 1 s by default), then for the answer (at most
//! `store_timeout`, 250 ms by default). While an operation that timed out
//! is still running, the next ones fail at once: a hung store costs a
//! request nothing beyond one timeout, and the source fetches on its own
//! meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::SystemTime;

use auth_core::store::{StoreAnswer, StoreError, StoreRequest, StoreTimeouts};
use auth_core::CacheKey;

pub use auth_core::store::BlockingTokenStore;

/// What the store thread tells the waiting caller: the store is ready,
/// then the answer (or the answer alone when getting ready failed).
enum Progress {
    Ready,
    Answer(Result<StoreAnswer, StoreError>),
}

/// An operation, where its progress goes, and the span it was asked in.
type Job = (StoreRequest, mpsc::SyncSender<Progress>, tracing::Span);

/// Runs store operations on a thread of their own, one at a time, and waits
/// for the store to get ready and then for the answer, each at most its
/// timeout.
pub(crate) struct StoreRunner {
    jobs: mpsc::Sender<Job>,
    busy: Arc<AtomicBool>,
    timeouts: StoreTimeouts,
}

impl StoreRunner {
    pub(crate) fn start(
        store: Arc<dyn BlockingTokenStore>,
        key: CacheKey,
        timeouts: StoreTimeouts,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let busy = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&busy);
        // The thread traces to the subscriber the source was built under,
        // each operation in the span it was asked in.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::Builder::new().name("auth-token-store".to_owned()).spawn(move || {
            let _default = tracing::dispatcher::set_default(&dispatch);
            for (request, progress, span) in queue {
                let _in = span.enter();
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    store.connect()?;
                    let _ = progress.send(Progress::Ready);
                    store.execute(&key, SystemTime::now(), &request.op)
                }))
                .unwrap_or_else(|_| Err(StoreError::new("the store backend panicked")));
                running.store(false, Ordering::Release);
                let _ = progress.send(Progress::Answer(outcome));
            }
        })?;
        Ok(Self { jobs, busy, timeouts })
    }

    /// Carries out `request`, waiting at most the timeouts.
    pub(crate) fn run(&self, request: StoreRequest) -> Result<StoreAnswer, StoreError> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(StoreError::new("the previous operation has not finished (the store is slow or hung)"));
        }
        let (progress, told) = mpsc::sync_channel(2);
        if self.jobs.send((request, progress, tracing::Span::current())).is_err() {
            return Err(StoreError::new("the store thread has stopped"));
        }
        let stopped = || StoreError::new("the store thread has stopped");
        match told.recv_timeout(self.timeouts.connect) {
            Ok(Progress::Ready) => {}
            Ok(Progress::Answer(outcome)) => return outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => return Err(StoreError::connect_timeout(self.timeouts.connect)),
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(stopped()),
        }
        match told.recv_timeout(self.timeouts.operation) {
            Ok(Progress::Answer(outcome)) => outcome,
            Ok(Progress::Ready) => Err(stopped()),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StoreError::timeout(self.timeouts.operation)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(stopped()),
        }
    }
}
