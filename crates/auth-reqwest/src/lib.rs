//! `auth-reqwest`: the library in a reqwest program.
//!
//! - [`AuthClient`]: from "token URL, client id, secret, scope, API key
//!   header" to a ready client in a few lines;
//! - [`AuthMiddleware`]: a `reqwest_middleware::Middleware` for clients you
//!   build yourself, with [`same_origin_redirects`] so that redirects never
//!   carry credentials to another origin;
//! - [`ReqwestTransport`]: the token endpoint transport for an
//!   [`auth_tower::TokenSource`] (no redirects, a timeout, JSON).
//!
//! It is the only dependency a reqwest program needs: the configuration
//! types of `auth-core` ([`SourceConfig`], [`Credentials`], [`ClientAuth`],
//! [`ReplayCopies`], [`StoreConfig`], ...), the [`TokenSource`], the
//! sign-in steps of a web app ([`AuthorizationRequest`], [`CodeVerifier`],
//! [`exchange_code`]), and [`reqwest`] and [`reqwest_middleware`]
//! themselves are re-exported. The default `json` feature gives
//! `.json(..)` on requests.
//!
//! # Example
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let mut provider = mockito::Server::new_async().await;
//! # provider.mock("POST", "/oauth2/token").with_body(r#"{"access_token":"at-1","expires_in":3600}"#).create_async().await;
//! # let mut api_server = mockito::Server::new_async().await;
//! # api_server.mock("GET", "/v1/orders").match_header("authorization", "Bearer at-1")
//! #     .match_header("x-api-key", "key-1").with_body("[]").create_async().await;
//! # let (token_url, api) = (format!("{}/oauth2/token", provider.url()), api_server.url());
//! use auth_reqwest::AuthClient;
//!
//! let client = AuthClient::builder()
//!     .client_credentials(token_url, "client-id")   // https://... in production
//!     .client_secret("client-secret")
//!     .scope("orders:read")
//!     .api_key_header("X-API-Key", "key-1")
//!     .api_origin(&api)
//!     .build()?;
//! let orders = client.get(format!("{api}/v1/orders")).send().await?;
//! assert_eq!(orders.status(), 200);
//! assert_eq!(orders.text().await?, "[]");
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod answer;
pub mod capped;
mod client;
mod copy;
pub mod discovery;
mod middleware;
mod redirect;
mod resource;
#[cfg(feature = "loopback")]
mod sign_in;
mod transport;

/// The loopback redirect's options for [`ForResource::sign_in`] (port,
/// path, how long to wait for the user).
#[cfg(feature = "loopback")]
pub use auth_tower::sign_in::LoopbackOptions;
pub use client::{AuthClient, AuthClientBuilder};
pub use middleware::AuthMiddleware;
pub use redirect::{same_origin_redirects, MAX_REDIRECTS};
pub use resource::{ForResource, ForResourceError};
#[cfg(feature = "loopback")]
pub use sign_in::push_authorization;
#[cfg(any(feature = "rustls", feature = "native-tls"))]
pub use transport::client_identity;
pub use transport::{with_tls, ReqwestTransport, DEFAULT_TIMEOUT};

// What users of this crate name, so that it is their only dependency here:
// the core's configuration types, the token source, and reqwest itself at
// the versions this crate is built with.
pub use auth_core;
pub use auth_core::publish::replay::ReplayCopies;
pub use auth_core::secret::CodeVerifier;
pub use auth_core::sign_in::authorize::AuthorizationRequest;
pub use auth_core::sign_in::registration::ClientMetadata;
pub use auth_core::store::{MemoryStore, StoreConfig};
pub use auth_core::{
    BackoffPolicy, ClientAuth, ConfigError, Credentials, ProviderError, RefreshPolicy, SourceConfig,
    SourceConfigBuilder, SourceGrant, TokenError,
};
pub use auth_tower::sign_in::exchange_code;
pub use auth_tower::{AuthError, Revoked, Stats, TokenSource, TokenSourceBuilder, TokenStore};
pub use reqwest;
pub use reqwest_middleware;
