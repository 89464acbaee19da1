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
//! | the API | [`api_requires_token`](ProviderConfig::api_requires_token) \[on; off: an API-key-only API\], [`api_key`](ProviderConfig::api_key) (header, query parameter), [`basic_login`](ProviderConfig::basic_login) (`/legacy`) |
//! | sign-in | [`user`](ProviderConfig::user) \[`alice`\], [`deny_sign_in`](ProviderConfig::deny_sign_in), [`send_iss`](ProviderConfig::send_iss) \[on\], [`issuer`](ProviderConfig::issuer) (a mismatch), [`device_codes`](ProviderConfig::device_codes) \[10 min, 5 s\] |
//! | assertions | [`assertion_audience`](ProviderConfig::assertion_audience), [`jwt_bearer_issuer`](ProviderConfig::jwt_bearer_issuer) |
//! | DPoP, mTLS | [`require_dpop`](ProviderConfig::require_dpop), [`dpop_nonces`](ProviderConfig::dpop_nonces), [`api_dpop_nonce`](ProviderConfig::api_dpop_nonce) \[all off\], [`mtls`](ProviderConfig::mtls) \[off\] |
//!
//! While it runs: [`fail_next_token_requests`](Provider::fail_next_token_requests),
//! [`set_latency`](Provider::set_latency), [`set_token_lifetime`](Provider::set_token_lifetime),
//! [`revoke_all`](Provider::revoke_all), [`revoke_access_tokens`](Provider::revoke_access_tokens),
//! [`rotate_dpop_nonce`](Provider::rotate_dpop_nonce), [`issue_token`](Provider::issue_token),
//! the device flow's [`approve_device`](Provider::approve_device) and its kin; what it saw:
//! [`stats`](Provider::stats) and [`token_requests`](Provider::token_requests).
//!
//! ```
//! use auth_testkit::{Provider, ProviderConfig};
//!
//! let provider = Provider::start(ProviderConfig::new().client("app", "secret")).unwrap();
//! assert!(provider.token_url().starts_with("http://127.0.0.1:"));
//! assert_eq!(provider.stats().token_requests, 0);
//! ```

#![deny(missing_docs)]

pub mod redis;

mod jose;
mod tls;

pub use tls::{self_signed_certificate, CertificatePem};

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use axum::Router;
use base64::Engine as _;

/// What the provider accepts and issues.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    clients: Vec<(String, Option<String>)>,
    token_lifetime: Duration,
    refresh_tokens: bool,
    api_key: Option<(String, Option<String>, String)>,
    api_requires_token: bool,
    basic_login: Option<(String, String)>,
    user: String,
    deny_sign_in: bool,
    rotate_refresh_tokens: bool,
    send_iss: bool,
    issuer: Option<String>,
    device_code_lifetime: Duration,
    device_interval: u64,
    /// `private_key_jwt` clients and their public keys.
    key_clients: Vec<(String, jose::TrustedKey)>,
    assertion_audience: AssertionAudience,
    /// Issuers trusted for the JWT bearer grant.
    bearer_issuers: Vec<(String, jose::TrustedKey)>,
    /// DPoP proofs must carry the server's nonce.
    dpop_nonces: bool,
    /// The API keeps a DPoP nonce of its own (the token endpoint another).
    api_dpop_nonce: bool,
    /// A new access token revokes the client's earlier ones.
    one_active_token: bool,
    /// Token requests without a DPoP proof are refused.
    require_dpop: bool,
    /// A second listener, HTTPS, that asks for client certificates.
    mtls: bool,
    /// `tls_client_auth` clients and the subject of their certificate.
    tls_clients: Vec<(String, String)>,
    /// `self_signed_tls_client_auth` clients and their certificate's thumbprint.
    self_signed_clients: Vec<(String, String)>,
}

/// Which `aud` the provider accepts in assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The issuer or the token endpoint URL (the default).
    #[default]
    IssuerOrTokenUrl,
    /// The issuer only (RFC 7523bis).
    Issuer,
    /// The token endpoint URL only.
    TokenUrl,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderConfig {
    /// No clients yet, 1-hour tokens, refresh tokens for `offline_access`,
    /// no API key, no Basic login.
    pub fn new() -> Self {
        Self {
            clients: Vec::new(),
            token_lifetime: Duration::from_secs(3600),
            refresh_tokens: true,
            api_key: None,
            api_requires_token: true,
            basic_login: None,
            user: "alice".to_owned(),
            deny_sign_in: false,
            rotate_refresh_tokens: false,
            send_iss: true,
            issuer: None,
            device_code_lifetime: Duration::from_secs(600),
            device_interval: 5,
            key_clients: Vec::new(),
            assertion_audience: AssertionAudience::default(),
            bearer_issuers: Vec::new(),
            dpop_nonces: false,
            api_dpop_nonce: false,
            one_active_token: false,
            require_dpop: false,
            mtls: false,
            tls_clients: Vec::new(),
            self_signed_clients: Vec::new(),
        }
    }

    /// Also serves everything on a mutual TLS listener (RFC 8705):
    /// HTTPS with a certificate from the provider's own CA
    /// ([`Provider::ca_certificate`]), asking every client for a
    /// certificate. The discovery document names its endpoints in
    /// `mtls_endpoint_aliases`. A token obtained there with a client
    /// certificate is bound to it (`x5t#S256`): the API accepts it only
    /// over a connection made with the same certificate. Default `false`.
    pub fn mtls(mut self, on: bool) -> Self {
        self.mtls = on;
        self
    }

    /// A `tls_client_auth` client (RFC 8705 §2.1): it authenticates with a
    /// certificate the provider's CA issued for `subject`
    /// ([`Provider::issue_client_certificate`]). Needs [`ProviderConfig::mtls`].
    pub fn tls_client(mut self, id: impl Into<String>, subject: impl Into<String>) -> Self {
        self.tls_clients.push((id.into(), subject.into()));
        self
    }

    /// A `self_signed_tls_client_auth` client (RFC 8705 §2.2) registered
    /// with its certificate (PEM, see [`self_signed_certificate`]). Needs
    /// [`ProviderConfig::mtls`].
    pub fn self_signed_tls_client(mut self, id: impl Into<String>, certificate_pem: &str) -> Self {
        let thumbprint = tls::thumbprint_of_pem(certificate_pem).expect("a PEM certificate");
        self.self_signed_clients.push((id.into(), thumbprint));
        self
    }

    /// Whether DPoP proofs (at the token endpoint and the API) must carry
    /// the provider's current nonce (RFC 9449 §8, §9): a proof without it
    /// is answered `use_dpop_nonce` with a `DPoP-Nonce` header. Default
    /// `false`. Every answer carries the nonce when this is on.
    pub fn dpop_nonces(mut self, required: bool) -> Self {
        self.dpop_nonces = required;
        self
    }

    /// With [`ProviderConfig::dpop_nonces`]: whether the protected API
    /// demands a nonce of its own, distinct from the token endpoint's
    /// (RFC 9449 §9: each server chooses its nonces, on one origin too).
    /// Each answers with its own nonce, so a client that just fetched a
    /// token holds the token endpoint's nonce and meets a `use_dpop_nonce`
    /// at the API. Default `false` (one nonce for both).
    pub fn api_dpop_nonce(mut self, separate: bool) -> Self {
        self.api_dpop_nonce = separate;
        self
    }

    /// Whether each client has one active access token at a time: a new
    /// one revokes the client's earlier ones (as providers with a
    /// one-active-token policy do). Default `false`.
    pub fn one_active_token(mut self, on: bool) -> Self {
        self.one_active_token = on;
        self
    }

    /// Whether token requests must carry a DPoP proof (default `false`: a
    /// request with a proof gets a DPoP-bound token, one without a Bearer
    /// token).
    pub fn require_dpop(mut self, required: bool) -> Self {
        self.require_dpop = required;
        self
    }

    /// Registers a `private_key_jwt` client with its public key: a PEM
    /// `PUBLIC KEY` (RSA, P-256, Ed25519) or a public JWK.
    ///
    /// # Panics
    ///
    /// If the key cannot be read.
    #[allow(clippy::panic)]
    pub fn key_client(mut self, id: impl Into<String>, public_key: &str) -> Self {
        let key = jose::TrustedKey::parse(public_key).unwrap_or_else(|e| panic!("key_client: {e}"));
        self.key_clients.push((id.into(), key));
        self
    }

    /// Which `aud` client and JWT bearer assertions may name.
    pub fn assertion_audience(mut self, accepted: AssertionAudience) -> Self {
        self.assertion_audience = accepted;
        self
    }

    /// Trusts `issuer`'s assertions for the JWT bearer grant (RFC 7523
    /// §2.1), signed with this public key (PEM or JWK); a token is issued
    /// for the assertion's `sub`.
    ///
    /// # Panics
    ///
    /// If the key cannot be read.
    #[allow(clippy::panic)]
    pub fn jwt_bearer_issuer(mut self, issuer: impl Into<String>, public_key: &str) -> Self {
        let key = jose::TrustedKey::parse(public_key).unwrap_or_else(|e| panic!("jwt_bearer_issuer: {e}"));
        self.bearer_issuers.push((issuer.into(), key));
        self
    }

    /// The user the authorization endpoint signs in (and approves for) at
    /// once. Default `alice`.
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user = name.into();
        self
    }

    /// Whether the authorization endpoint answers `access_denied` instead
    /// of approving (the user said no). Default `false`.
    pub fn deny_sign_in(mut self, deny: bool) -> Self {
        self.deny_sign_in = deny;
        self
    }

    /// Whether a refresh grant issues a new refresh token and retires the
    /// one presented (a second use is `invalid_grant`). Default `false`.
    pub fn rotate_refresh_tokens(mut self, rotate: bool) -> Self {
        self.rotate_refresh_tokens = rotate;
        self
    }

    /// Whether the authorization endpoint's redirect carries RFC 9207
    /// `iss`. Default `true`.
    pub fn send_iss(mut self, send: bool) -> Self {
        self.send_iss = send;
        self
    }

    /// The issuer the discovery documents (and `iss`) name instead of the
    /// provider's URL: to test a mismatch.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// How long device codes last (default 10 minutes) and the polling
    /// interval the device endpoint asks for, in seconds (default 5).
    pub fn device_codes(mut self, lifetime: Duration, interval_secs: u64) -> Self {
        self.device_code_lifetime = lifetime;
        self.device_interval = interval_secs;
        self
    }

    /// Whether `/api/...` wants a Bearer token (default `true`). With
    /// `false` and an API key configured, it is a plain API-key API.
    pub fn api_requires_token(mut self, required: bool) -> Self {
        self.api_requires_token = required;
        self
    }

    /// Registers a confidential client.
    pub fn client(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.clients.push((id.into(), Some(secret.into())));
        self
    }

    /// Registers a public client (no secret).
    pub fn public_client(mut self, id: impl Into<String>) -> Self {
        self.clients.push((id.into(), None));
        self
    }

    /// The `expires_in` of issued access tokens.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Whether to issue refresh tokens when the scope holds `offline_access`.
    pub fn refresh_tokens(mut self, issue: bool) -> Self {
        self.refresh_tokens = issue;
        self
    }

    /// The API wants this key in the header `header` (and, if `query` is
    /// given, accepts it in that query parameter instead).
    pub fn api_key(mut self, header: impl Into<String>, query: Option<&str>, key: impl Into<String>) -> Self {
        self.api_key = Some((header.into().to_ascii_lowercase(), query.map(str::to_owned), key.into()));
        self
    }

    /// `/legacy/...` wants these HTTP Basic credentials.
    pub fn basic_login(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_login = Some((user.into(), password.into()));
        self
    }
}

/// A fault for the next token requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// `500` with an HTML error page.
    ServerError,
    /// `503` with an HTML error page.
    Unavailable,
    /// `429` with `Retry-After: <seconds>`.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after: u64,
    },
}

/// One token endpoint request, as the provider understood it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: String,
    /// How the client authenticated: `basic`, `basic-raw`, `post`, `json`,
    /// `none`, `private-key-jwt`, `client-secret-jwt`, `tls-client-auth`,
    /// `self-signed-tls-client-auth`, or `unknown`.
    pub client_auth: String,
    /// The `x5t#S256` thumbprint of the client certificate the request
    /// came with (over the mutual TLS listener).
    pub client_certificate: Option<String>,
    /// The client id, when one was found.
    pub client_id: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `audience`.
    pub audience: Option<String>,
    /// Every `resource`.
    pub resources: Vec<String>,
    /// Every other parameter (the client secret and assertions excluded).
    pub params: Vec<(String, String)>,
    /// The `jti` of the client assertion and of the JWT bearer grant's
    /// assertion, when sent.
    pub assertion_ids: Vec<String>,
    /// Why the request was refused, when it was (the provider's log).
    pub refusal: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// Counters of what the provider served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderStats {
    /// Requests to the token endpoint (faults included).
    pub token_requests: u64,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Calls to the protected API.
    pub api_calls: u64,
    /// API calls answered 401.
    pub api_unauthorized: u64,
    /// Revocation requests.
    pub revocations: u64,
    /// Authorization requests (`GET /oauth/authorize`).
    pub authorizations: u64,
    /// Answers that asked for a DPoP nonce (`use_dpop_nonce`), at the
    /// token endpoint and the API.
    pub dpop_nonce_challenges: u64,
    /// DPoP proofs refused for another reason (bad, replayed, missing).
    pub dpop_proofs_refused: u64,
    /// Certificate-bound tokens refused at the API because the connection
    /// did not show their certificate.
    pub certificate_binding_refused: u64,
}

/// What happened to a device code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceState {
    Pending,
    Approved,
    Denied,
}

#[derive(Debug)]
struct DeviceGrant {
    client_id: String,
    user_code: String,
    scope: Option<String>,
    expires_at: Instant,
    state: DeviceState,
    /// Polls to answer `slow_down` before anything else.
    slow_downs: u32,
}

#[derive(Debug)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: Option<String>,
    user: String,
    expires_at: Instant,
}

#[derive(Debug)]
struct Issued {
    client_id: String,
    /// The user a sign-in issued it for (none: the client's own token).
    user: Option<String>,
    scope: Option<String>,
    expires_at: Option<Instant>,
    refresh: bool,
    revoked: bool,
    /// The thumbprint of the DPoP key a token is bound to.
    jkt: Option<String>,
    /// The thumbprint of the client certificate a token is bound to.
    x5t: Option<String>,
}

#[derive(Debug, Default)]
struct Faults {
    remaining: u32,
    fault: Option<Fault>,
    latency: Duration,
}

#[derive(Debug)]
struct Inner {
    config: ProviderConfig,
    tokens: HashMap<String, Issued>,
    codes: HashMap<String, PendingCode>,
    devices: HashMap<String, DeviceGrant>,
    url: String,
    faults: Faults,
    requests: Vec<TokenRequest>,
    stats: ProviderStats,
    /// `jti`s of the assertions accepted so far, by issuer.
    seen_assertions: HashSet<String>,
    /// Why the last assertion was refused.
    last_refusal: Option<String>,
    /// The DPoP nonce proofs must carry (when nonces are on).
    dpop_nonce: String,
    /// The API's own nonce (with `api_dpop_nonce`).
    api_nonce: String,
    /// The mutual TLS listener's `https://127.0.0.1:<port>`, when on.
    mtls_url: Option<String>,
    /// Client certificates the CA issued: thumbprint → subject.
    issued_certificates: HashMap<String, String>,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    // A panic in a handler cannot leave the maps half-updated in a way that
    // matters to a test provider: keep serving.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running provider. Dropping it stops the server.
pub struct Provider {
    url: String,
    mtls: Option<(String, Arc<tls::Authority>)>,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Provider {
    /// Starts the provider on `127.0.0.1` on a free port.
    pub fn start(config: ProviderConfig) -> std::io::Result<Self> {
        Self::start_on_port(config, 0)
    }

    /// Starts the provider on `127.0.0.1:port` (`0`: a free port). Fails
    /// when the port is taken.
    pub fn start_on_port(config: ProviderConfig, port: u16) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let mtls = if config.mtls {
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            listener.set_nonblocking(true)?;
            let url = format!("https://{}", listener.local_addr()?);
            let authority = tls::Authority::new();
            let server = authority.server_config()?;
            Some((listener, url, Arc::new(authority), server))
        } else {
            None
        };
        let shared: Shared = Arc::new(Mutex::new(Inner {
            config,
            tokens: HashMap::new(),
            codes: HashMap::new(),
            devices: HashMap::new(),
            url: url.clone(),
            faults: Faults::default(),
            requests: Vec::new(),
            stats: ProviderStats::default(),
            seen_assertions: HashSet::new(),
            last_refusal: None,
            dpop_nonce: random_token("nonce-"),
            api_nonce: random_token("api-nonce-"),
            mtls_url: mtls.as_ref().map(|(_, url, _, _)| url.clone()),
            issued_certificates: HashMap::new(),
        }));
        let app = Router::new().fallback(route).with_state(Arc::clone(&shared));
        let (mtls_serve, mtls) = match mtls {
            Some((listener, url, authority, server)) => {
                (Some((listener, server, app.clone(), url.clone())), Some((url, authority)))
            }
            None => (None, None),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("auth-testkit".to_owned()).spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let mtls = async move {
                    match mtls_serve {
                        Some((listener, server, app, url)) => match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => tls::serve(listener, server, app, url).await,
                            Err(_) => std::future::pending().await,
                        },
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = mtls => {}
                    _ = stopped => {}
                }
            });
        })?;
        Ok(Self { url, mtls, shared, stop: Some(stop), thread: Some(thread) })
    }

    /// The mutual TLS listener's `https://127.0.0.1:<port>`, when
    /// [`ProviderConfig::mtls`] is on: the same endpoints and API as
    /// [`Provider::url`] (`/oauth/token`, `/api/...`).
    pub fn mtls_url(&self) -> Option<&str> {
        self.mtls.as_ref().map(|(url, _)| url.as_str())
    }

    /// The CA certificate (PEM) that signed the mutual TLS listener's
    /// certificate and the client certificates it issues: the root a
    /// client must trust. `None` without [`ProviderConfig::mtls`].
    pub fn ca_certificate(&self) -> Option<String> {
        self.mtls.as_ref().map(|(_, authority)| authority.ca_pem())
    }

    /// A client certificate and key the provider's CA issues for
    /// `subject`, for a [`ProviderConfig::tls_client`] registered with that
    /// subject.
    ///
    /// # Panics
    /// Without [`ProviderConfig::mtls`] (a mistake in the test's set-up).
    pub fn issue_client_certificate(&self, subject: &str) -> CertificatePem {
        let (_, authority) = self.mtls.as_ref().expect("issue_client_certificate needs ProviderConfig::mtls(true)");
        let issued = authority.issue(subject, false);
        let thumbprint = tls::thumbprint_of_pem(&issued.certificate).expect("an issued certificate");
        lock(&self.shared).issued_certificates.insert(thumbprint, subject.to_owned());
        issued
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.url)
    }
    /// The RFC 7009 revocation endpoint.
    pub fn revocation_url(&self) -> String {
        format!("{}/oauth/revoke", self.url)
    }
    /// The authorization endpoint (authorization code flow).
    pub fn authorization_url(&self) -> String {
        format!("{}/oauth/authorize", self.url)
    }
    /// The RFC 8628 device authorization endpoint.
    pub fn device_url(&self) -> String {
        format!("{}/oauth/device", self.url)
    }
    /// The issuer its discovery documents name (its URL unless configured).
    pub fn issuer(&self) -> String {
        lock(&self.shared).issuer()
    }

    /// The user codes of device sign-ins waiting for the user.
    pub fn pending_user_codes(&self) -> Vec<String> {
        let inner = lock(&self.shared);
        inner.devices.values().filter(|d| d.state == DeviceState::Pending).map(|d| d.user_code.clone()).collect()
    }

    /// The user approves the device sign-in with `user_code` (as the
    /// configured test user). `false` when no such sign-in waits.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.settle_device(user_code, DeviceState::Approved)
    }

    /// The user declines the device sign-in with `user_code`.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.settle_device(user_code, DeviceState::Denied)
    }

    fn settle_device(&self, user_code: &str, state: DeviceState) -> bool {
        let mut inner = lock(&self.shared);
        match inner.devices.values_mut().find(|d| d.user_code == user_code && d.state == DeviceState::Pending) {
            Some(device) => {
                device.state = state;
                true
            }
            None => false,
        }
    }

    /// The next `count` polls of each device sign-in are answered
    /// `slow_down`.
    pub fn slow_down_device_polls(&self, count: u32) {
        for device in lock(&self.shared).devices.values_mut() {
            device.slow_downs = count;
        }
    }

    /// Every device code expires now (polls get `expired_token`).
    pub fn expire_device_codes(&self) {
        let now = Instant::now();
        for device in lock(&self.shared).devices.values_mut() {
            device.expires_at = now;
        }
    }

    /// A URL of the protected API (`path` without the `/api` prefix).
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/api/{}", self.url, path.trim_start_matches('/'))
    }
    /// A URL of the Basic-protected legacy API.
    pub fn legacy_url(&self, path: &str) -> String {
        format!("{}/legacy/{}", self.url, path.trim_start_matches('/'))
    }

    /// Answers the next `count` token requests with `fault`.
    pub fn fail_next_token_requests(&self, count: u32, fault: Fault) {
        let mut inner = lock(&self.shared);
        inner.faults.remaining = count;
        inner.faults.fault = Some(fault);
    }

    /// Delays every token response by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared).faults.latency = latency;
    }

    /// Revokes every token issued so far, refresh tokens included (the API
    /// answers 401 to them; a refresh is refused with `invalid_grant`).
    pub fn revoke_all(&self) {
        for issued in lock(&self.shared).tokens.values_mut() {
            issued.revoked = true;
        }
    }

    /// Revokes every access token issued so far and no refresh token (as
    /// a provider does when it rotates its signing keys): the API answers
    /// 401, and a refresh gets a new access token.
    pub fn revoke_access_tokens(&self) {
        for issued in lock(&self.shared).tokens.values_mut().filter(|issued| !issued.refresh) {
            issued.revoked = true;
        }
    }

    /// Starts demanding a new DPoP nonce (as a server does every so often).
    pub fn rotate_dpop_nonce(&self) -> String {
        let nonce = random_token("nonce-");
        lock(&self.shared).dpop_nonce = nonce.clone();
        nonce
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.shared).config.token_lifetime = lifetime;
    }

    /// An access token the protected API accepts, issued outside the
    /// token endpoint: a token the user already holds (a JWT handed over by
    /// another system, say), for `client_id`, valid for `lifetime`. Not
    /// counted as a token request.
    pub fn issue_token(&self, client_id: &str, lifetime: Duration) -> String {
        let value = random_token("at_");
        let issued = Issued {
            client_id: client_id.to_owned(),
            user: None,
            scope: None,
            expires_at: Some(Instant::now() + lifetime),
            refresh: false,
            revoked: false,
            jkt: None,
            x5t: None,
        };
        lock(&self.shared).tokens.insert(value.clone(), issued);
        value
    }

    /// Every token request so far.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        lock(&self.shared).requests.clone()
    }

    /// Counters.
    pub fn stats(&self) -> ProviderStats {
        lock(&self.shared).stats
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn route(State(shared): State<Shared>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 1024 * 1024).await else {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let via = match parts.extensions.get::<tls::Connection>() {
        Some(connection) => connection.clone(),
        None => tls::Connection { base_url: lock(&shared).url.clone(), client_certificate: None },
    };
    match (parts.method.clone(), path.as_str()) {
        (Method::POST, "/oauth/token") => {
            let latency = lock(&shared).faults.latency;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            with_dpop_nonce(&shared, Server::Token, token(&shared, &via, &parts.headers, &body))
        }
        (Method::POST, "/oauth/revoke") => revoke(&shared, &via, &parts.headers, &body),
        (Method::GET, "/oauth/authorize") => authorize(&shared, &query),
        (Method::POST, "/oauth/device") => device_authorization(&shared, &via, &parts.headers, &body),
        (Method::GET, "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration") => {
            discovery(&shared)
        }
        (_, p) if p.starts_with("/api/") => {
            let answer = api(&shared, &via, &parts.method, p, &query, &parts.headers, body.len());
            with_dpop_nonce(&shared, Server::Api, answer)
        }
        (_, p) if p.starts_with("/legacy/") => legacy(&shared, &parts.headers),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Which server of the provider answers, for its DPoP nonce.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Token,
    Api,
}

impl Inner {
    /// The nonce `server`'s proofs must carry (when nonces are on).
    fn nonce_of(&self, server: Server) -> &str {
        match server {
            Server::Api if self.config.api_dpop_nonce => &self.api_nonce,
            _ => &self.dpop_nonce,
        }
    }
}

/// Adds `server`'s current DPoP nonce to an answer, when nonces are on.
fn with_dpop_nonce(shared: &Shared, server: Server, mut response: Response<Body>) -> Response<Body> {
    let inner = lock(shared);
    if inner.config.dpop_nonces {
        if let Ok(value) = HeaderValue::from_str(inner.nonce_of(server)) {
            response.headers_mut().insert("dpop-nonce", value);
        }
    }
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    json(status, serde_json::json!({ "error": code, "error_description": description }))
}

/// The request's parameters, from a form or JSON body.
fn params(headers: &HeaderMap, body: &[u8]) -> (Vec<(String, String)>, bool) {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let mut out = Vec::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
            for (key, value) in map {
                match value {
                    serde_json::Value::String(s) => out.push((key, s)),
                    serde_json::Value::Array(items) => {
                        out.extend(items.into_iter().filter_map(|i| i.as_str().map(|s| (key.clone(), s.to_owned()))))
                    }
                    other => out.push((key, other.to_string())),
                }
            }
        }
        (out, true)
    } else {
        (form_urlencoded::parse(body).into_owned().collect(), false)
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The `invalid_client` answer for a client that tried `method`.
fn refusal(method: &str) -> Response<Body> {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    if method.starts_with("basic") {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"token\""));
    }
    response
}

/// Authenticates the client: `(method, client id)`, or the method it tried.
fn authenticate(
    inner: &mut Inner,
    via: &tls::Connection,
    headers: &HeaderMap,
    params: &[(String, String)],
    is_json: bool,
) -> Result<(String, String), String> {
    if let Some(assertion) = param(params, "client_assertion") {
        return authenticate_assertion(inner, params, assertion);
    }
    if let Some(result) = authenticate_certificate(inner, via, headers, params) {
        return result;
    }
    let known = |id: &str, secret: Option<&str>| {
        inner.config.clients.iter().any(|(cid, csecret)| cid == id && csecret.as_deref() == secret)
    };
    let refuse = |method: &str| Err(method.to_owned());
    if let Some(basic) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    {
        let Some(decoded) =
            base64::engine::general_purpose::STANDARD.decode(basic).ok().and_then(|b| String::from_utf8(b).ok())
        else {
            return refuse("basic");
        };
        let Some((id, secret)) = decoded.split_once(':') else {
            return refuse("basic");
        };
        let unescape = |s: &str| {
            form_urlencoded::parse(format!("v={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        let (Some(id_decoded), Some(secret_decoded)) = (unescape(id), unescape(secret)) else {
            return refuse("basic");
        };
        // RFC 6749 §2.3.1 leaves only unreserved characters and escapes; any
        // other byte means the client sent the values raw (RFC 2617 style).
        let encoded = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b));
        if encoded(id) && encoded(secret) && known(&id_decoded, Some(&secret_decoded)) {
            return Ok(("basic".to_owned(), id_decoded));
        }
        if known(id, Some(secret)) {
            return Ok(("basic-raw".to_owned(), id.to_owned()));
        }
        return refuse("basic");
    }
    let method = if is_json { "json" } else { "post" };
    match (param(params, "client_id"), param(params, "client_secret")) {
        (Some(id), Some(secret)) if known(id, Some(secret)) => Ok((method.to_owned(), id.to_owned())),
        (Some(id), None) if known(id, None) => Ok(("none".to_owned(), id.to_owned())),
        (Some(_), Some(_)) => refuse(method),
        _ => refuse("unknown"),
    }
}

/// `tls_client_auth` and `self_signed_tls_client_auth`: `None` when the
/// client id is not one of their clients.
fn authenticate_certificate(
    inner: &mut Inner,
    via: &tls::Connection,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Option<Result<(String, String), String>> {
    if headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let id = param(params, "client_id")?;
    let config = &inner.config;
    let (method, accepted) = if let Some((_, subject)) = config.tls_clients.iter().find(|(cid, _)| cid == id) {
        let issued = via.client_certificate.as_ref().and_then(|t| inner.issued_certificates.get(t));
        ("tls-client-auth", issued == Some(subject))
    } else if let Some((_, registered)) = config.self_signed_clients.iter().find(|(cid, _)| cid == id) {
        ("self-signed-tls-client-auth", via.client_certificate.as_ref() == Some(registered))
    } else {
        return None;
    };
    if accepted {
        return Some(Ok((method.to_owned(), id.to_owned())));
    }
    inner.last_refusal = Some(match &via.client_certificate {
        None => "no client certificate in the TLS handshake".to_owned(),
        Some(_) => format!("the client certificate is not the one registered for `{id}`"),
    });
    Some(Err(method.to_owned()))
}

/// `private_key_jwt` and `client_secret_jwt`.
fn authenticate_assertion(
    inner: &mut Inner,
    params: &[(String, String)],
    assertion: &str,
) -> Result<(String, String), String> {
    let refused = |inner: &mut Inner, method: &str, why: String| {
        inner.last_refusal = Some(why);
        Err(method.to_owned())
    };
    if param(params, "client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return refused(inner, "unknown", "client_assertion_type is not jwt-bearer".to_owned());
    }
    let Some(client_id) = jose::unverified_claim(assertion, "iss") else {
        return refused(inner, "unknown", "the assertion has no iss".to_owned());
    };
    if param(params, "client_id").is_some_and(|id| id != client_id) {
        return refused(inner, "unknown", "client_id is not the assertion's iss".to_owned());
    }
    let key = inner.config.key_clients.iter().find(|(id, _)| *id == client_id).map(|(_, key)| key.clone());
    let (method, key) = match key {
        Some(key) => ("private-key-jwt", key),
        None => match inner.config.clients.iter().find(|(id, _)| *id == client_id) {
            Some((_, Some(secret))) => ("client-secret-jwt", jose::TrustedKey::hmac(secret)),
            _ => return refused(inner, "unknown", format!("no client `{client_id}` with a key or secret")),
        },
    };
    let audiences = inner.assertion_audiences();
    let expect = jose::Expect { audiences: &audiences, issuer: None, subject_is_issuer: true, max_lifetime: 300 };
    match jose::verify(assertion, &key, &expect, &mut inner.seen_assertions) {
        Ok(_) => Ok((method.to_owned(), client_id)),
        Err(why) => refused(inner, method, why),
    }
}

/// A random credential (`prefix` and 32 letters and digits), as the
/// provider issues its tokens: for test clients' secrets and API keys.
pub fn random_token(prefix: &str) -> String {
    let mut rng = fastrand::Rng::new();
    let body: String = std::iter::repeat_with(|| rng.alphanumeric()).take(32).collect();
    format!("{prefix}{body}")
}

fn token(shared: &Shared, via: &tls::Connection, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.token_requests += 1;
    let (params, is_json) = params(headers, body);
    let mut record = TokenRequest {
        grant_type: param(&params, "grant_type").unwrap_or("").to_owned(),
        client_auth: "unknown".to_owned(),
        client_certificate: via.client_certificate.clone(),
        client_id: param(&params, "client_id").map(str::to_owned),
        scope: param(&params, "scope").map(str::to_owned),
        audience: param(&params, "audience").map(str::to_owned),
        resources: params.iter().filter(|(k, _)| k == "resource").map(|(_, v)| v.clone()).collect(),
        params: params
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "client_secret"
                        | "refresh_token"
                        | "code"
                        | "code_verifier"
                        | "device_code"
                        | "client_assertion"
                        | "assertion"
                )
            })
            .cloned()
            .collect(),
        assertion_ids: ["client_assertion", "assertion"]
            .iter()
            .filter_map(|name| param(&params, name).and_then(|jwt| jose::unverified_claim(jwt, "jti")))
            .collect(),
        refusal: None,
        status: 200,
    };
    inner.last_refusal = None;
    let response = if inner.faults.remaining > 0 {
        inner.faults.remaining -= 1;
        match inner.faults.fault {
            Some(Fault::TooManyRequests { retry_after }) => {
                let mut response = oauth_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", "slow down");
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
            Some(Fault::Unavailable) => html(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"),
            _ => html(StatusCode::INTERNAL_SERVER_ERROR, "500 Internal Server Error"),
        }
    } else {
        match authenticate(&mut inner, via, headers, &params, is_json) {
            Err(method) => {
                let response = refusal(&method);
                record.client_auth = method;
                response
            }
            Ok((method, client_id)) => {
                record.client_auth = method;
                record.client_id = Some(client_id.clone());
                let token_url = format!("{}/oauth/token", via.base_url);
                match token_endpoint_proof(&mut inner, headers, &token_url) {
                    Ok(jkt) => issue(&mut inner, &client_id, &params, jkt, via.client_certificate.clone()),
                    Err(refusal) => *refusal,
                }
            }
        }
    };
    record.status = response.status().as_u16();
    record.refusal = inner.last_refusal.take();
    inner.requests.push(record);
    response
}

fn html(status: StatusCode, title: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(format!(
        "<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// Checks the DPoP proof of a token request: the key to bind the token to
/// (none without a proof), or the answer that refuses it.
fn token_endpoint_proof(
    inner: &mut Inner,
    headers: &HeaderMap,
    token_url: &str,
) -> Result<Option<String>, Box<Response<Body>>> {
    let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
        if inner.config.require_dpop {
            inner.stats.dpop_proofs_refused += 1;
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "A DPoP proof is required",
            )));
        }
        return Ok(None);
    };
    let nonce = inner.config.dpop_nonces.then(|| inner.dpop_nonce.clone());
    let check = jose::ProofCheck { method: "POST", htu: token_url, access_token: None, nonce: nonce.as_deref() };
    match jose::verify_proof(proof, &check, &mut inner.seen_assertions) {
        Ok(jkt) => Ok(Some(jkt)),
        Err(jose::ProofError::UseNonce) => {
            inner.stats.dpop_nonce_challenges += 1;
            Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof",
            )))
        }
        Err(jose::ProofError::Invalid(why)) => {
            inner.stats.dpop_proofs_refused += 1;
            inner.last_refusal = Some(why);
            Err(Box::new(oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", "The DPoP proof was refused")))
        }
    }
}

/// Issues tokens bound to the DPoP key `jkt` and the client certificate
/// `x5t` (RFC 8705 §3), when given.
fn issue(
    inner: &mut Inner,
    client_id: &str,
    params: &[(String, String)],
    jkt: Option<String>,
    x5t: Option<String>,
) -> Response<Body> {
    let lifetime = inner.config.token_lifetime;
    let mut scope = param(params, "scope").map(str::to_owned);
    let mut user: Option<String> = None;
    // Whether the answer carries a (new) refresh token: for `offline_access`
    // with client credentials, always with a user's sign-in, and with a
    // refresh grant when tokens rotate.
    let new_refresh_token = match param(params, "grant_type") {
        Some("client_credentials") => {
            let offline = scope.as_deref().is_some_and(|s| s.split(' ').any(|w| w == "offline_access"));
            offline && inner.config.refresh_tokens
        }
        Some("refresh_token") => {
            let presented = param(params, "refresh_token").unwrap_or("");
            let rotate = inner.config.rotate_refresh_tokens;
            match inner.tokens.get_mut(presented) {
                Some(issued) if issued.jkt.is_some() && issued.jkt != jkt => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The refresh token is bound to another DPoP key",
                    );
                }
                Some(issued) if issued.refresh && !issued.revoked && issued.client_id == client_id => {
                    scope = issued.scope.clone();
                    user = issued.user.clone();
                    // Rotation: this refresh token is spent.
                    issued.revoked |= rotate;
                    rotate
                }
                _ => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The refresh token is invalid, expired or revoked",
                    )
                }
            }
        }
        Some("authorization_code") => match redeem_code(inner, client_id, params) {
            Ok((granted, signed_in)) => {
                scope = granted;
                user = Some(signed_in);
                inner.config.refresh_tokens
            }
            Err((code, description)) => return oauth_error(StatusCode::BAD_REQUEST, code, description),
        },
        Some("urn:ietf:params:oauth:grant-type:device_code") => match poll_device(inner, client_id, params) {
            Ok(granted) => {
                scope = granted;
                user = Some(inner.config.user.clone());
                inner.config.refresh_tokens
            }
            Err((code, description)) => return oauth_error(StatusCode::BAD_REQUEST, code, description),
        },
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => match bearer_subject(inner, params) {
            Ok(subject) => {
                user = Some(subject);
                false
            }
            Err(why) => {
                inner.last_refusal = Some(why);
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The assertion was refused");
            }
        },
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only client_credentials, refresh_token, authorization_code, device_code and jwt-bearer",
            )
        }
    };
    let mut refresh = None;
    if new_refresh_token {
        let value = random_token("rt_");
        let issued = Issued {
            client_id: client_id.to_owned(),
            user: user.clone(),
            scope: scope.clone(),
            expires_at: None,
            refresh: true,
            revoked: false,
            jkt: jkt.clone(),
            x5t: x5t.clone(),
        };
        inner.tokens.insert(value.clone(), issued);
        refresh = Some(value);
    }
    let access = random_token("at_");
    if inner.config.one_active_token {
        for issued in inner.tokens.values_mut().filter(|issued| issued.client_id == client_id && !issued.refresh) {
            issued.revoked = true;
        }
    }
    inner.tokens.insert(
        access.clone(),
        Issued {
            client_id: client_id.to_owned(),
            user: user.clone(),
            scope: scope.clone(),
            expires_at: Some(Instant::now() + lifetime),
            refresh: false,
            revoked: false,
            jkt: jkt.clone(),
            x5t,
        },
    );
    inner.stats.tokens_issued += 1;
    let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
    let mut body =
        serde_json::json!({ "access_token": access, "token_type": token_type, "expires_in": lifetime.as_secs() });
    if let Some(scope) = scope {
        body["scope"] = serde_json::Value::String(scope);
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = serde_json::Value::String(refresh);
    }
    json(StatusCode::OK, body)
}

impl Inner {
    fn issuer(&self) -> String {
        self.config.issuer.clone().unwrap_or_else(|| self.url.clone())
    }

    /// The `aud` values assertions may name.
    fn assertion_audiences(&self) -> Vec<String> {
        // The token endpoint, or its mutual TLS alias.
        let mut token_urls = vec![format!("{}/oauth/token", self.url)];
        token_urls.extend(self.mtls_url.as_ref().map(|url| format!("{url}/oauth/token")));
        match self.config.assertion_audience {
            AssertionAudience::IssuerOrTokenUrl => [vec![self.issuer()], token_urls].concat(),
            AssertionAudience::Issuer => vec![self.issuer()],
            AssertionAudience::TokenUrl => token_urls,
        }
    }
}

/// Verifies a JWT bearer grant's assertion: the subject it speaks for.
fn bearer_subject(inner: &mut Inner, params: &[(String, String)]) -> Result<String, String> {
    let assertion = param(params, "assertion").ok_or("no assertion")?;
    let issuer = jose::unverified_claim(assertion, "iss").ok_or("the assertion has no iss")?;
    let key = inner
        .config
        .bearer_issuers
        .iter()
        .find(|(trusted, _)| *trusted == issuer)
        .map(|(_, key)| key.clone())
        .ok_or_else(|| format!("issuer `{issuer}` is not trusted"))?;
    let audiences = inner.assertion_audiences();
    let expect =
        jose::Expect { audiences: &audiences, issuer: Some(&issuer), subject_is_issuer: false, max_lifetime: 3600 };
    let claims = jose::verify(assertion, &key, &expect, &mut inner.seen_assertions)?;
    claims.get("sub").and_then(|s| s.as_str()).map(str::to_owned).ok_or_else(|| "no sub".to_owned())
}

/// A parameter of the authorization request's query.
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// `redirect_uri` with `params` added to its query.
fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> Response<Body> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params.iter());
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", query.finish());
    let mut response = text(StatusCode::FOUND, "");
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `GET /oauth/authorize`: checks the request, then signs the test user in
/// and redirects back with a code (or `access_denied`).
fn authorize(shared: &Shared, query: &str) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.authorizations += 1;
    let get = |name| query_param(query, name);
    let client_id = get("client_id").unwrap_or_default();
    if !inner.config.clients.iter().any(|(id, _)| *id == client_id) {
        // Never redirect for an unknown client (RFC 6749 §4.1.2.1).
        return text(StatusCode::BAD_REQUEST, "unknown client_id");
    }
    let Some(redirect_uri) =
        get("redirect_uri").filter(|r| r.starts_with("http://127.0.0.1:") || r.starts_with("https://"))
    else {
        return text(StatusCode::BAD_REQUEST, "missing or unregistered redirect_uri");
    };
    let state = get("state").unwrap_or_default();
    let issuer = inner.issuer();
    let send_iss = inner.config.send_iss;
    let answer = |params: Vec<(&str, &str)>| {
        let mut all: Vec<(&str, &str)> = params.clone();
        if !state.is_empty() {
            all.push(("state", state.as_str()));
        }
        if send_iss {
            all.push(("iss", issuer.as_str()));
        }
        redirect(&redirect_uri, &all)
    };
    if get("response_type").as_deref() != Some("code") {
        return answer(vec![("error", "unsupported_response_type")]);
    }
    let Some(challenge) = get("code_challenge").filter(|c| c.len() >= 43) else {
        return answer(vec![("error", "invalid_request"), ("error_description", "PKCE code_challenge required")]);
    };
    if get("code_challenge_method").as_deref() != Some("S256") {
        return answer(vec![("error", "invalid_request"), ("error_description", "code_challenge_method must be S256")]);
    }
    if inner.config.deny_sign_in {
        return answer(vec![("error", "access_denied"), ("error_description", "The user denied the request")]);
    }
    let code = random_token("code_");
    let pending = PendingCode {
        client_id,
        redirect_uri: redirect_uri.clone(),
        challenge,
        scope: get("scope"),
        user: inner.config.user.clone(),
        expires_at: Instant::now() + Duration::from_secs(60),
    };
    inner.codes.insert(code.clone(), pending);
    answer(vec![("code", &code)])
}

/// An OAuth error code and description, answered with 400.
type Refused = (&'static str, &'static str);

/// The authorization code grant: the code once, for the client and
/// redirect URI it was issued to, with the PKCE verifier that matches.
fn redeem_code(
    inner: &mut Inner,
    client_id: &str,
    params: &[(String, String)],
) -> Result<(Option<String>, String), Refused> {
    use sha2::Digest as _;
    let invalid = |description| ("invalid_grant", description);
    // A code is used once, whatever the outcome.
    let pending =
        inner.codes.remove(param(params, "code").unwrap_or("")).ok_or_else(|| invalid("Unknown or used code"))?;
    if pending.client_id != client_id || Instant::now() >= pending.expires_at {
        return Err(invalid("The code was issued to another client or expired"));
    }
    if param(params, "redirect_uri") != Some(pending.redirect_uri.as_str()) {
        return Err(invalid("redirect_uri does not match the authorization request"));
    }
    let verifier = param(params, "code_verifier").unwrap_or("");
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if verifier.is_empty() || challenge != pending.challenge {
        return Err(invalid("PKCE verification failed"));
    }
    Ok((pending.scope, pending.user))
}

/// `POST /oauth/device`: a device code for the (public or authenticated) client.
fn device_authorization(shared: &Shared, via: &tls::Connection, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let mut inner = lock(shared);
    let (params, is_json) = params(headers, body);
    let client_id = match authenticate(&mut inner, via, headers, &params, is_json) {
        Ok((_, client_id)) => client_id,
        Err(method) => return refusal(&method),
    };
    let device_code = random_token("dc_");
    let letters: String = {
        let mut rng = fastrand::Rng::new();
        std::iter::repeat_with(|| rng.uppercase()).take(8).collect()
    };
    let user_code = format!("{}-{}", &letters[..4], &letters[4..]);
    let (lifetime, interval) = (inner.config.device_code_lifetime, inner.config.device_interval);
    let grant = DeviceGrant {
        client_id,
        user_code: user_code.clone(),
        scope: param(&params, "scope").map(str::to_owned),
        expires_at: Instant::now() + lifetime,
        state: DeviceState::Pending,
        slow_downs: 0,
    };
    inner.devices.insert(device_code.clone(), grant);
    let verification = format!("{}/device", inner.url);
    json(
        StatusCode::OK,
        serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "verification_uri_complete": format!("{verification}?user_code={user_code}"),
            "expires_in": lifetime.as_secs(),
            "interval": interval,
        }),
    )
}

/// The device code grant: pending until the test approves, then the tokens.
fn poll_device(inner: &mut Inner, client_id: &str, params: &[(String, String)]) -> Result<Option<String>, Refused> {
    let error = |code, description| (code, description);
    let presented = param(params, "device_code").unwrap_or("");
    let Some(device) = inner.devices.get_mut(presented).filter(|d| d.client_id == client_id) else {
        return Err(error("invalid_grant", "Unknown device code"));
    };
    if Instant::now() >= device.expires_at {
        return Err(error("expired_token", "The device code expired"));
    }
    if device.slow_downs > 0 {
        device.slow_downs -= 1;
        return Err(error("slow_down", "Polling too fast"));
    }
    match device.state {
        DeviceState::Pending => Err(error("authorization_pending", "The user has not approved yet")),
        DeviceState::Denied => Err(error("access_denied", "The user declined")),
        DeviceState::Approved => {
            let scope = device.scope.clone();
            inner.devices.remove(presented);
            Ok(scope)
        }
    }
}

/// The discovery document (RFC 8414 and OpenID Connect alike).
fn discovery(shared: &Shared) -> Response<Body> {
    let inner = lock(shared);
    let url = &inner.url;
    let mut document = serde_json::json!({
            "issuer": inner.issuer(),
            "authorization_endpoint": format!("{url}/oauth/authorize"),
            "token_endpoint": format!("{url}/oauth/token"),
            "device_authorization_endpoint": format!("{url}/oauth/device"),
            "revocation_endpoint": format!("{url}/oauth/revoke"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA", "HS256"],
            "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
            "authorization_response_iss_parameter_supported": inner.config.send_iss,
    });
    if let Some(mtls) = &inner.mtls_url {
        document["mtls_endpoint_aliases"] = serde_json::json!({
            "token_endpoint": format!("{mtls}/oauth/token"),
            "revocation_endpoint": format!("{mtls}/oauth/revoke"),
            "device_authorization_endpoint": format!("{mtls}/oauth/device"),
        });
        document["tls_client_certificate_bound_access_tokens"] = serde_json::Value::Bool(true);
        if let Some(methods) = document["token_endpoint_auth_methods_supported"].as_array_mut() {
            methods.extend(["tls_client_auth", "self_signed_tls_client_auth"].map(serde_json::Value::from));
        }
    }
    json(StatusCode::OK, document)
}

fn revoke(shared: &Shared, via: &tls::Connection, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.revocations += 1;
    let (params, is_json) = params(headers, body);
    if let Err(method) = authenticate(&mut inner, via, headers, &params, is_json) {
        return refusal(&method);
    }
    if let Some(issued) = param(&params, "token").and_then(|t| inner.tokens.get_mut(t)) {
        issued.revoked = true;
    }
    // RFC 7009 §2.2: unknown tokens are not an error.
    text(StatusCode::OK, "")
}

fn api(
    shared: &Shared,
    via: &tls::Connection,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body_len: usize,
) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.api_calls += 1;
    if let Some((header_name, query_name, key)) = &inner.config.api_key {
        let in_header = headers.get(header_name.as_str()).and_then(|v| v.to_str().ok()) == Some(key.as_str());
        let in_query = query_name
            .as_deref()
            .is_some_and(|name| form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == name && v == key.as_str()));
        if !in_header && !in_query {
            return oauth_error(StatusCode::FORBIDDEN, "invalid_api_key", "A valid API key is required");
        }
    }
    if !inner.config.api_requires_token {
        let body = serde_json::json!({ "ok": true, "method": method.as_str(), "path": path, "body_bytes": body_len });
        return json(StatusCode::OK, body);
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, presented) = authorization.split_once(' ').unwrap_or(("", ""));
    let valid = inner
        .tokens
        .get(presented)
        .filter(|issued| !issued.refresh && !issued.revoked && issued.expires_at.is_some_and(|at| Instant::now() < at))
        .map(|issued| (issued.jkt.clone(), issued.x5t.clone()));
    // A certificate-bound token needs a connection made with its certificate.
    if let Some((_, Some(x5t))) = &valid {
        if via.client_certificate.as_ref() != Some(x5t) {
            inner.stats.certificate_binding_refused += 1;
            inner.stats.api_unauthorized += 1;
            let mut response = oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The certificate-bound token was not sent over a connection with its client certificate",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            return response;
        }
    }
    let valid = valid.map(|(jkt, _)| jkt);
    // A DPoP-bound token needs the DPoP scheme and a proof of its key.
    let refusal = match (&valid, scheme.to_ascii_lowercase().as_str()) {
        (Some(Some(jkt)), "dpop") => {
            let htu = format!("{}{path}", via.base_url);
            api_proof(&mut inner, headers, method, &htu, presented, jkt).err().map(|refusal| *refusal)
        }
        (Some(Some(_)), _) => {
            Some(dpop_challenge(&mut inner, "invalid_token", "The DPoP-bound token was not sent with the DPoP scheme"))
        }
        (Some(None), "bearer") => None,
        _ => Some(bearer_refusal(&mut inner)),
    };
    let valid = if refusal.is_none() { inner.tokens.get(presented) } else { None };
    if let Some(refusal) = refusal {
        return refusal;
    }
    match valid {
        Some(issued) => {
            let body = serde_json::json!({
                "ok": true,
                "method": method.as_str(),
                "path": path,
                "client_id": issued.client_id,
                "user": issued.user,
                "scope": issued.scope,
                "body_bytes": body_len,
            });
            json(StatusCode::OK, body)
        }
        None => bearer_refusal(&mut inner),
    }
}

/// The 401 for a missing, unknown, expired or revoked token.
fn bearer_refusal(inner: &mut Inner) -> Response<Body> {
    inner.stats.api_unauthorized += 1;
    let mut response =
        oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "The access token is missing, expired or revoked");
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    response
}

/// A 401 with a `WWW-Authenticate: DPoP` challenge.
fn dpop_challenge(inner: &mut Inner, error: &str, description: &str) -> Response<Body> {
    inner.stats.api_unauthorized += 1;
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, error, description);
    let challenge =
        format!("DPoP error=\"{error}\", error_description=\"{description}\", algs=\"ES256 RS256 PS256 EdDSA\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Checks the DPoP proof of an API request made with the token bound to `jkt`.
fn api_proof(
    inner: &mut Inner,
    headers: &HeaderMap,
    method: &Method,
    htu: &str,
    token: &str,
    jkt: &str,
) -> Result<(), Box<Response<Body>>> {
    let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
        inner.stats.dpop_proofs_refused += 1;
        return Err(Box::new(dpop_challenge(
            inner,
            "invalid_dpop_proof",
            "A DPoP proof is required with a DPoP-bound token",
        )));
    };
    let nonce = inner.config.dpop_nonces.then(|| inner.nonce_of(Server::Api).to_owned());
    let check = jose::ProofCheck { method: method.as_str(), htu, access_token: Some(token), nonce: nonce.as_deref() };
    match jose::verify_proof(proof, &check, &mut inner.seen_assertions) {
        Ok(proved) if proved == jkt => Ok(()),
        Ok(_) => {
            inner.stats.dpop_proofs_refused += 1;
            Err(Box::new(dpop_challenge(inner, "invalid_token", "The token is bound to another key")))
        }
        Err(jose::ProofError::UseNonce) => {
            inner.stats.dpop_nonce_challenges += 1;
            Err(Box::new(dpop_challenge(inner, "use_dpop_nonce", "Resource server requires nonce in DPoP proof")))
        }
        Err(jose::ProofError::Invalid(why)) => {
            inner.stats.dpop_proofs_refused += 1;
            inner.last_refusal = Some(why);
            Err(Box::new(dpop_challenge(inner, "invalid_dpop_proof", "The DPoP proof was refused")))
        }
    }
}

fn legacy(shared: &Shared, headers: &HeaderMap) -> Response<Body> {
    let inner = lock(shared);
    let Some((user, password)) = &inner.config.basic_login else {
        return text(StatusCode::NOT_FOUND, "no legacy API configured");
    };
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str()) {
        json(StatusCode::OK, serde_json::json!({ "ok": true, "user": user }))
    } else {
        let mut response = text(StatusCode::UNAUTHORIZED, "Basic credentials required");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"legacy\""));
        response
    }
}
