//! Sharing tokens through a store: every [`TokenSource`](crate::TokenSource)
//! with the same cache key and the same store makes one fetch per token
//! lifetime between them (see `auth_core::store` for the protocol).
//!
//! A backend implements [`TokenStore`]: it carries out one
//! [`StoreOp`] on the record of one cache key. Before each operation the
//! token source lets the backend get ready ([`TokenStore::connect`],
//! `store_connect_timeout`, 1 s by default), then runs the operation with
//! a timeout (`store_timeout`, 250 ms by default): connecting (a TLS
//! handshake, loading the system's root certificates) is not a slow
//! answer. A store that fails, hangs or holds garbage never fails a
//! request: the source then fetches on its own. The hot path (a cached
//! token) never touches the store.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use auth_core::store::{MemoryStore, StoreConfig};
//! use auth_core::SourceConfig;
//! use auth_tower::TokenSource;
//! use tower::service_fn;
//!
//! let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//! let counter = fetches.clone();
//! let endpoint = service_fn(move |_request: http::Request<Vec<u8>>| {
//!     counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
//!     async { Ok::<_, std::convert::Infallible>(http::Response::new(r#"{"access_token":"shared","expires_in":3600}"#.to_owned())) }
//! });
//! let config = SourceConfig::builder("https://login.example.com/oauth2/token", "client-id").client_secret("s").build()?;
//! let store = MemoryStore::new();
//! let a = TokenSource::builder(config.clone(), endpoint.clone()).store(store.clone(), StoreConfig::default()).build()?;
//! let b = TokenSource::builder(config, endpoint).store(store, StoreConfig::default()).build()?;
//! a.token().await?;
//! b.token().await?;
//! assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1, "b adopted a's token");
//! # Ok(()) }
//! ```

use std::time::SystemTime;

use auth_core::store::{MemoryStore, StoreAnswer, StoreError, StoreOp};
use auth_core::CacheKey;

/// A shared token store backend, for the async token source.
///
/// `execute` carries out one operation on the record of `key` exactly as
/// the table in `auth_core::store` says (compare-and-set on the generation,
/// compare-and-delete on the fingerprint and the lease owner). It must not
/// hold a secret in its errors. Operations that this version of the
/// backend does not know (the enum grows) should answer an error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a token store for auth-tower (or auth-reqwest)",
    note = "auth-store's `FileStore` and `RedisStore` are one with auth-store's `tower` feature: \
            auth-store = {{ ..., features = [\"tower\"] }} (`redis` too for Redis)",
    note = "an `Encrypted<S>` is one when `S` is"
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

    /// Carries out `op` on the record of `key`.
    async fn execute(&self, key: &CacheKey, op: &StoreOp) -> Result<StoreAnswer, StoreError>;
}

#[async_trait::async_trait]
impl<T: TokenStore + ?Sized> TokenStore for std::sync::Arc<T> {
    async fn connect(&self) -> Result<(), StoreError> {
        (**self).connect().await
    }

    async fn execute(&self, key: &CacheKey, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        (**self).execute(key, op).await
    }
}

#[async_trait::async_trait]
impl TokenStore for MemoryStore {
    async fn execute(&self, key: &CacheKey, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        Ok(self.apply(key, SystemTime::now(), op))
    }
}
