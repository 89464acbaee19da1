//! `auth-testkit`: an embedded local OAuth 2.0 provider and protected API,
//! bound to `127.0.0.1` on a free port, for tests, examples and the demo.
//!
//! - `POST /oauth/token`: the client credentials and refresh token grants,
//!   with client authentication by HTTP Basic (RFC 6749 §2.3.1 encoded, or
//!   raw), form body (`post`), JSON body, or none (public clients);
//!   refresh tokens when the scope includes `offline_access`;
//! - `POST /oauth/revoke`: RFC 7009 revocation;
//! - sign-in for user-facing apps: `GET /oauth/authorize` (the
//!   authorization code flow with PKCE `S256` required; it approves a
//!   configurable test user at once, or denies) and the code exchange;
//!   `POST /oauth/device` and the RFC 8628 device code grant, with
//!   [`Provider::approve_device`] / [`Provider::deny_device`] standing in for
//!   the user; refresh-token rotation ([`ProviderConfig::rotate_refresh_tokens`]);
//!   discovery documents at `/.well-known/oauth-authorization-server` and
//!   `/.well-known/openid-configuration`;
//! - `/api/...`: a protected API that wants a valid Bearer token (401 for a
//!   missing, expired or revoked one) and, when configured, an API key in a
//!   header or query parameter (403 when wrong);
//! - `/legacy/...`: an API behind static HTTP Basic credentials;
//! - fault switches: fail the next N token requests (500, 503, or 429 with
//!   `Retry-After`), add latency to token requests, revoke every token.
//!
//! The server runs on a thread of its own (with its own small runtime), so
//! it serves synchronous and async tests alike; it stops when the
//! [`Provider`] is dropped.
//!
//! # Settings
//!
//! Everything is set on [`ProviderConfig`] before [`Provider::start`]
//! (defaults in brackets); the [`Provider`] then changes some while it runs.
//!
//! | to shape | [`ProviderConfig`] |
//! |---|---|
//! | clients | [`client`](ProviderConfig::client) (id, secret), [`public_client`](ProviderConfig::public_client), [`key_client`](ProviderConfig::key_client) (`private_key_jwt`), [`tls_client`](ProviderConfig::tls_client) and [`self_signed_tls_client`](ProviderConfig::self_signed_tls_client) (mutual TLS) |
//! | tokens | [`token_lifetime`](ProviderConfig::token_lifetime) \[1 h\], [`refresh_tokens`](ProviderConfig::refresh_tokens) \[for `offline_access`\], [`rotate_refresh_tokens`](ProviderConfig::rotate_refresh_tokens) \[off\], [`one_active_token`](ProviderConfig::one_active_token) \[off\] |
//! | the API | [`api_requires_token`](ProviderConfig::api_requires_token) \[on; off: an API-key-only API\], [`api_key`](ProviderConfig::api_key) (header, query parameter), [`basic_login`](ProviderConfig::basic_login) (`/legacy`), [`protected_resource`](ProviderConfig::protected_resource) \[off; on: RFC 9728 metadata, tokens for its `resource` only\], [`api_scopes`](ProviderConfig::api_scopes) \[none; reads and writes, 403 `insufficient_scope`\], [`api_acr`](ProviderConfig::api_acr) \[none; 401 `insufficient_user_authentication`\] |
//! | registration | [`dynamic_registration`](ProviderConfig::dynamic_registration) \[off\], [`initial_access_token`](ProviderConfig::initial_access_token) \[none\], [`pushed_authorization`](ProviderConfig::pushed_authorization) \[off; on: offered or required\] |
//! | sign-in | [`user`](ProviderConfig::user) \[`alice`\], [`deny_sign_in`](ProviderConfig::deny_sign_in), [`send_iss`](ProviderConfig::send_iss) \[on\], [`issuer`](ProviderConfig::issuer) (a mismatch), [`device_codes`](ProviderConfig::device_codes) \[10 min, 5 s\] |
//! | assertions | [`assertion_audience`](ProviderConfig::assertion_audience), [`jwt_bearer_issuer`](ProviderConfig::jwt_bearer_issuer) |
//! | DPoP, mTLS | [`require_dpop`](ProviderConfig::require_dpop), [`dpop_nonces`](ProviderConfig::dpop_nonces), [`api_dpop_nonce`](ProviderConfig::api_dpop_nonce) \[all off\], [`mtls`](ProviderConfig::mtls) \[off\] |
//!
//! While it runs: [`fail_next_token_requests`](Provider::fail_next_token_requests),
//! [`set_latency`](Provider::set_latency), [`set_token_lifetime`](Provider::set_token_lifetime),
//! [`revoke_all`](Provider::revoke_all), [`revoke_access_tokens`](Provider::revoke_access_tokens),
//! [`rotate_dpop_nonce`](Provider::rotate_dpop_nonce), [`issue_token`](Provider::issue_token),
//! the device flow's [`approve_device`](Provider::approve_device) and its kin,
//! and a scripted [`browser`](Provider::browser) that plays the user of a
//! sign-in; what it saw: [`stats`](Provider::stats),
//! [`token_requests`](Provider::token_requests) and
//! [`api_requests`](Provider::api_requests) (which credentials came, never
//! their values).
//!
//! # In your own tests
//!
//! Code that calls an API through this library (or any OAuth 2.0 client)
//! can be tested against the provider instead of a real one: point the
//! client's token URL at [`Provider::token_url`] and its API at
//! [`Provider::api_url`], then make the provider misbehave and read what it
//! received.
//!
//! | to test | do |
//! |---|---|
//! | the happy path | [`ProviderConfig::client`] (and [`api_key`](ProviderConfig::api_key)), call your code, check [`stats`](Provider::stats)`().token_requests` |
//! | an outage, a rate limit | [`fail_next_token_requests`](Provider::fail_next_token_requests)`(n, `[`Fault`]`::..)`, [`set_latency`](Provider::set_latency) |
//! | a revoked or expired token (the 401 path) | [`revoke_access_tokens`](Provider::revoke_access_tokens), [`set_token_lifetime`](Provider::set_token_lifetime), then [`api_requests`](Provider::api_requests) (statuses `200, 401, 200`) |
//! | refresh tokens that rotate | [`rotate_refresh_tokens`](ProviderConfig::rotate_refresh_tokens)`(true)`, [`token_requests`](Provider::token_requests) (grant types) |
//! | a user's sign-in, no browser | [`browser`](Provider::browser)`().open(url)` from the callback that would open the system browser |
//! | a device sign-in | [`pending_user_codes`](Provider::pending_user_codes), [`approve_device`](Provider::approve_device) / [`deny_device`](Provider::deny_device) |
//! | DPoP | [`require_dpop`](ProviderConfig::require_dpop), [`dpop_nonces`](ProviderConfig::dpop_nonces), [`rotate_dpop_nonce`](Provider::rotate_dpop_nonce) |
//! | a token shared by processes | [`redis::RedisServer::start`] (a real `redis-server` on a free port; `None` without one) |
//!
//! The items at the crate root are the surface for users' tests and follow
//! semantic versioning with the other crates; the modules [`jose`] and
//! [`spans`] serve this repository's own tests and may change in any
//! release. The provider is for tests: it keeps everything in memory,
//! trusts every loopback caller, and logs refusals in detail.
//!
//! ```
//! use auth_testkit::{Provider, ProviderConfig};
//!
//! let provider = Provider::start(ProviderConfig::new().client("app", "secret")).unwrap();
//! assert!(provider.token_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(provider.stats().token_requests, 0);
//! ```

#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod redis;

mod api;
mod authorize;
mod browser;
mod client_auth;
mod config;
mod device;
mod discovery;
mod exchange;
pub mod jose;
mod provider;
mod random;
mod records;
mod registration;
mod revocation;
mod routes;
pub mod spans;
mod state;
mod tls;
mod token;
mod wire;

pub use tls::{self_signed_certificate, CertificatePem};

pub use browser::{Browser, BrowserError, Page};
pub use config::{AssertionAudience, ProviderConfig};
pub use provider::Provider;
pub use random::random_token;
pub use records::{ApiRequest, Fault, ProviderStats, TokenRequest};
