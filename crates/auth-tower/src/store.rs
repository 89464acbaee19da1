//! Sharing tokens through a store: every [`TokenSource`](crate::TokenSource)
//! with the same cache key and the same store makes one fetch per token
//! lifetime between them (see `auth_core::store` for the protocol).
//!
//! A backend implements [`TokenStore`]: it carries out one
//! [`StoreOp`](auth_core::store::StoreOp) on the record of one cache key. Before each operation the
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

pub use auth_core::store::TokenStore;
