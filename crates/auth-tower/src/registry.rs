//! Process-wide registries of live objects by number, so that a response
//! future can name a token source or a layer's credentials in one word
//! instead of holding a reference count on every request. Weak handles: a
//! registry never keeps anything alive. Touched when an object is created
//! or dropped, and on a 401; never per request.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Live `T`s by number.
pub(crate) struct Registry<T> {
    entries: Mutex<BTreeMap<NonZeroU64, Weak<T>>>,
    next: AtomicU64,
}

impl<T> Registry<T> {
    pub(crate) const fn new() -> Self {
        Self { entries: Mutex::new(BTreeMap::new()), next: AtomicU64::new(1) }
    }

    /// A number never handed out before in this process.
    pub(crate) fn next_id(&self) -> NonZeroU64 {
        NonZeroU64::new(self.next.fetch_add(1, Ordering::Relaxed)).unwrap_or(NonZeroU64::MIN)
    }

    pub(crate) fn register(&self, id: NonZeroU64, object: &Arc<T>) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).insert(id, Arc::downgrade(object));
    }

    pub(crate) fn unregister(&self, id: NonZeroU64) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    /// The object numbered `id`, if it is still alive.
    pub(crate) fn get(&self, id: NonZeroU64) -> Option<Arc<T>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).get(&id)?.upgrade()
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, id: NonZeroU64) -> bool {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&id)
    }
}
