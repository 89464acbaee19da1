//! `auth-tower`: the async driver of the `auth-core` token lifecycle, and a
//! tower [`Layer`](tower::Layer) that puts credentials on every request of
//! any tower client stack (hyper-util, tonic channels, axum-based proxies,
//! reqwest through its tower service).
//!
//! - [`TokenSource`]: one per token configuration, shared by cheap clones.
//!   Reads of a valid token are lock-free; a cold start causes exactly one
//!   token request however many callers wait; renewal runs in the
//!   background before expiry; a 401 invalidates the token once.
//! - [`AuthLayer`] / [`Auth`]: applies Bearer, API key (header or query),
//!   Basic, or any combination, only on the allowed origins, and replays a
//!   request once after a 401 when its body can be copied ([`ReplayBody`]).
//! - [`redirect`]: where to put tower-http's `FollowRedirect` so that no
//!   credential follows a redirect to another origin, and
//!   [`same_origin_redirects`](redirect::same_origin_redirects) for the
//!   order that needs it.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use auth_core::{Credentials, SourceConfig};
//! use auth_tower::{AuthLayer, TokenSource};
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! // The token endpoint transport: any tower service taking
//! // `http::Request<Vec<u8>>`. Here a stand-in that issues one token.
//! let token_endpoint = service_fn(|_request: http::Request<Vec<u8>>| async {
//!     let body = r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600}"#;
//!     Ok::<_, std::convert::Infallible>(http::Response::new(body.to_owned()))
//! });
//! let config = SourceConfig::builder("https://login.example.com/oauth2/token", "client-id")
//!     .client_secret("client-secret")
//!     .build()?;
//! let source = TokenSource::new(config, token_endpoint)?;
//!
//! let credentials = Credentials::builder()
//!     .bearer_from_source()
//!     .api_key_header("cdpapi-Subscription-Key", "subscription-key")
//!     .api_origin("https://api.example.com")
//!     .build()?;
//! // The API client: here a stand-in that echoes what it received.
//! let api = AuthLayer::new(source.clone(), credentials).layer(service_fn(|request: http::Request<String>| async move {
//!     let auth = request.headers()["authorization"].to_str().unwrap().to_owned();
//!     let key = request.headers()["cdpapi-subscription-key"].to_str().unwrap().to_owned();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(format!("{auth} {key}")))
//! }));
//!
//! let orders = || http::Request::get("https://api.example.com/v1/orders").body(String::new());
//! let response = api.clone().oneshot(orders()?).await?;
//! assert_eq!(response.body(), "Bearer at-1 subscription-key");
//! let response = api.oneshot(orders()?).await?;
//! assert_eq!(response.body(), "Bearer at-1 subscription-key");
//! assert_eq!(source.stats().fetches, 1, "one token for both calls");
//! # Ok(()) }
//! ```

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod body;
mod bound;
mod chain;
mod copy;
pub mod error;
mod future;
mod handoff;
pub mod layer;
mod mode;
pub mod redirect;
mod registry;
pub mod sign_in;
pub mod source;
pub mod store;
mod transport;
mod worker;

pub use body::{ReplayBody, ReplayableBody};
pub use error::{AuthError, BoxError, TowerFailure};
pub use layer::{Auth, AuthLayer, NoReplay, ReplayOn401, ResponseFuture};
pub use source::{Revoked, Stats, TokenReader, TokenSource, TokenSourceBuilder, DEFAULT_FETCH_TIMEOUT, WAIT_GRACE};
pub use store::TokenStore;

// The core's configuration types, so that this crate is its users' only
// dependency here (`auth_core` for the rest).
pub use auth_core;
pub use auth_core::{
    BackoffPolicy, ClientAuth, ConfigError, Credentials, ProviderError, RefreshPolicy, SourceConfig,
    SourceConfigBuilder, TokenError,
};
