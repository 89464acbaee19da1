//! `auth-core`: everything the library knows about API credentials and
//! OAuth 2.0 client credentials tokens, with no IO and no clock.
//!
//! It holds the [secret types](secret), the [configuration](config) of a
//! token source, the encoding of [token requests](wire::request), the parsing of
//! [token responses](wire::response), the application of [credentials] to
//! `http` requests, and the token [lifecycle]: a state machine that decides
//! when to fetch, which token to use, and how to react to failures and
//! 401s. Drivers (`auth-tower`, `auth-blocking`) own the sockets, the
//! clock and the waiting callers; they feed this crate events and carry out
//! what it asks.
//!
//! # Example: one run of the loop, by hand
//!
//! ```
//! use std::time::{Duration, Instant};
//! use auth_core::{Credentials, Lifecycle, Output, SourceConfig, Want};
//!
//! let config = SourceConfig::builder("https://auth.example.com/oauth/token", "my-client")
//!     .client_secret("s3cr3t")
//!     .scope("orders:read")
//!     .build()?;
//! let credentials = Credentials::builder()
//!     .bearer_from_source()
//!     .api_key_header("X-API-Key", "key-123")
//!     .api_origin("https://api.example.com")
//!     .build()?;
//! let mut lifecycle = Lifecycle::new(config, 7);
//! let start = Instant::now();
//!
//! // A caller wants a token: none yet, so the machine asks for a fetch.
//! assert!(matches!(lifecycle.handle_token_wanted(start), Want::Wait));
//! let Some(Output::Fetch(fetch)) = lifecycle.poll_output() else { unreachable!() };
//! assert_eq!(fetch.request.uri(), "https://auth.example.com/oauth/token");
//!
//! // The driver sends it; the provider answers.
//! let answer = http::Response::builder()
//!     .header("content-type", "application/json")
//!     .body(br#"{"access_token":"eyJ.abc.def","token_type":"bearer","expires_in":3600}"#.to_vec())?;
//! lifecycle.handle_fetch_response(start + Duration::from_millis(80), std::time::UNIX_EPOCH, fetch.id, &answer);
//! let Some(Output::TokenReady(token)) = lifecycle.poll_output() else { unreachable!() };
//!
//! // The token goes on API requests with the API key.
//! let mut request = http::Request::get("https://api.example.com/orders").body(())?;
//! credentials.apply(&mut request, Some(&token))?;
//! assert_eq!(request.headers()["authorization"], "Bearer eyJ.abc.def");
//! assert_eq!(request.headers()["x-api-key"], "key-123");
//!
//! // The next wake-up is the renewal point, a minute or so before expiry.
//! let renew = lifecycle.poll_timeout().unwrap();
//! assert!(renew > start + Duration::from_secs(3400) && renew < start + Duration::from_secs(3600));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The run loop
//!
//! After every input (`handle_*`), drain [`Lifecycle::poll_output`] until
//! it returns `None`, carrying out each [`Output`]. Then sleep until
//! [`Lifecycle::poll_timeout`] (or the next input) and call
//! [`Lifecycle::handle_timeout`]. The machine never reads a clock, never
//! blocks and never panics on what a server sends.

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::panic))]

pub mod assertion;
pub mod config;
pub mod credentials;
pub mod dpop;
pub mod driver;
pub mod error;
pub mod exchange;
pub mod keys;
pub mod lifecycle;
pub mod mtls;
pub mod publish;
pub mod redact;
pub mod resource;
pub mod secret;
pub mod setup;
pub mod sign_in;
pub mod store;
pub mod telemetry;
mod text;
pub mod wire;
mod withheld;

pub use config::{
    BackoffPolicy, CacheKey, ClientAuth, RefreshPolicy, SourceConfig, SourceConfigBuilder, SourceGrant,
    FETCH_BUDGET_WINDOW,
};
pub use credentials::{Applied, Credentials, CredentialsBuilder, Origin};
pub use error::{ApplyError, ConfigError, Endpoint, ErrorCode, ProviderError, SignInReason, TokenError};
pub use lifecycle::{
    FetchId, FetchReason, FetchRequest, GrantKind, Lifecycle, Output, RejectedAfterRenewal, Stats, StoredToken,
    Unauthorized, Want, WithdrawReason,
};
pub use publish::token::{AccessToken, Generation};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
