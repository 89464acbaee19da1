//! `auth-blocking`: the token lifecycle for synchronous programs, with no
//! async runtime in sight.
//!
//! - [`BlockingTokenSource`]: `Send + Sync`, shared by every thread. Reads
//!   of a valid token are lock-free; on a cold start all threads wait on one
//!   fetch; renewal runs on a background thread ahead of expiry, so no
//!   caller waits while a valid token exists; the thread ends with the
//!   last handle.
//! - [`BlockingTransport`]: one method, implemented by closures (tests
//!   script endpoints with them) and by [`UreqTransport`] (default feature
//!   `ureq`).
//! - [`AuthorizedClient`]: sends API requests with the credentials and the
//!   single 401 replay.
//!
//! # Example
//!
//! ```
//! use auth_blocking::{AuthorizedClient, BlockingTokenSource, TransportError};
//! use auth_core::{Credentials, SourceConfig};
//!
//! // Stand-ins for the token endpoint and the API (a real program passes
//! // `UreqTransport::for_tokens()` and `UreqTransport::for_api()`).
//! let token_endpoint = |_request: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
//!     Ok(http::Response::new(br#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600}"#.to_vec()))
//! };
//! let api = |request: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
//!     let auth = request.headers()["authorization"].to_str().unwrap().to_owned();
//!     Ok(http::Response::new(auth.into_bytes()))
//! };
//!
//! let config = SourceConfig::builder("https://login.example.com/oauth2/token", "client-id")
//!     .client_secret("client-secret")
//!     .build()?;
//! let source = BlockingTokenSource::new(config, token_endpoint)?;
//! let client = AuthorizedClient::new(source.clone(), Credentials::bearer("https://api.example.com")?, api);
//!
//! let response = client.send(http::Request::get("https://api.example.com/v1/items").body(Vec::new())?)?;
//! assert_eq!(response.body(), b"Bearer at-1");
//! assert_eq!(source.stats().fetches, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod error;
mod source;
pub mod store;
mod transport;

pub use client::AuthorizedClient;
#[cfg(feature = "ureq")]
pub use client::AuthorizedClientBuilder;
pub use error::{BlockingFailure, Error, TransportError};
pub use source::{
    BlockingSourceBuilder, BlockingTokenSource, Revoked, Stats, DEFAULT_STORE_CONNECT_TIMEOUT, DEFAULT_STORE_TIMEOUT,
};
pub use store::BlockingTokenStore;
pub use transport::BlockingTransport;

// The core's configuration types, so that this crate is its users' only
// dependency here (`auth_core` for the rest).
pub use auth_core;
pub use auth_core::publish::replay::ReplayCopies;
pub use auth_core::store::{MemoryStore, StoreConfig};
pub use auth_core::{
    BackoffPolicy, ClientAuth, ConfigError, Credentials, ProviderError, RefreshPolicy, SourceConfig,
    SourceConfigBuilder, SourceGrant, TokenError,
};
#[cfg(feature = "ureq")]
pub use transport::UreqTransport;
