//! `auth-store`: shared token store backends for the token sources of
//! `auth-tower` and `auth-blocking`, so that every process and replica
//! configured with the same cache key makes one fetch per token lifetime
//! between them (the protocol is `auth_core::store`).
//!
//! - [`FileStore`] (feature `file`, default): one directory, one record per
//!   cache key, leases by advisory file locks: processes on one host.
//! - `RedisStore` / `BlockingRedisStore` (feature `redis`): Redis, for a
//!   fleet of replicas on many hosts; `rediss://` (TLS, rustls) with the
//!   features `tls` (blocking) and `tower-tls` (async).
//! - `Encrypted` (feature `encryption`): any backend, its records sealed
//!   with AES-256-GCM under a key of yours.
//! - Features `tower` and `blocking` implement `auth_core::store::TokenStore`
//!   (the async token sources of auth-tower and auth-reqwest, on tokio) and
//!   `auth_core::store::BlockingTokenStore` (auth-blocking) for each
//!   backend. The traits are auth-core's: this crate depends on no driver.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use auth_core::store::{Envelope, Record, StoreAnswer, StoreOp};
//! use auth_core::SourceConfig;
//! use auth_store::FileStore;
//!
//! let dir = tempfile::tempdir()?;
//! let store = FileStore::open(dir.path().join("tokens"))?;
//! let config = SourceConfig::builder("https://auth.example.com/token", "id").client_secret("s").build()?;
//! let key = config.cache_key();
//! let now = SystemTime::now();
//! let record = Record::new(key, "at-1", now + Duration::from_secs(3600));
//! let write = StoreOp::Write { envelope: Envelope::seal(&record, 1), release: None };
//! assert!(matches!(store.execute_at(key, now, &write)?, StoreAnswer::Written(true)));
//! let StoreAnswer::Envelope(Some(envelope)) = store.execute_at(key, now, &StoreOp::Read)? else { panic!() };
//! assert_eq!(envelope.open(key)?.access_token_value(), Some("at-1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "file")]
pub mod file;

#[cfg(feature = "file")]
pub use file::FileStore;

// Encryption wraps a store a driver uses: with `tower` or `blocking`.
#[cfg(all(feature = "encryption", any(feature = "tower", feature = "blocking")))]
pub mod encrypted;

#[cfg(all(feature = "encryption", any(feature = "tower", feature = "blocking")))]
pub use encrypted::Encrypted;

// Redis needs a driver to serve: `tower` (async) or `blocking`; `redis`
// alone builds nothing more.
#[cfg(all(feature = "redis", any(feature = "tower", feature = "blocking")))]
pub mod redis;

#[cfg(all(feature = "redis", feature = "tower"))]
pub use self::redis::RedisStore;

#[cfg(all(feature = "redis", feature = "blocking"))]
pub use self::redis::BlockingRedisStore;
