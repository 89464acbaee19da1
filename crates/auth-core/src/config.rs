//! Configuration of a client credentials token source: where the token
//! endpoint is, how the client authenticates, what it asks for, and the
//! policies that drive renewal and backoff.
//!
//! ```
//! use std::time::Duration;
//! use auth_core::config::{ClientAuth, SourceConfig};
//!
//! let sandbox = SourceConfig::builder("https://sandbox.example.com/oauth/token", "my-client")
//!     .client_secret("s3cr3t")
//!     .client_auth(ClientAuth::Post)
//!     .scope("read:orders write:orders")
//!     .audience("https://api.example.com")
//!     .default_lifetime(Duration::from_secs(600))
//!     .build()?;
//! let production = SourceConfig::builder("https://example.com/oauth/token", "my-client")
//!     .client_secret("s3cr3t")
//!     .client_auth(ClientAuth::Post)
//!     .scope("read:orders write:orders")
//!     .audience("https://api.example.com")
//!     .build()?;
//! // Sandbox and production tokens are never interchangeable.
//! assert_ne!(sandbox.cache_key(), production.cache_key());
//! # Ok::<(), auth_core::error::ConfigError>(())
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use sha2::{Digest, Sha256};

use crate::assertion::settings::{AssertionAudience, JwtBearer};
use crate::dpop::Dpop;
use crate::error::ConfigError;
use crate::keys::{Algorithm, SigningKey};
use crate::mtls::ClientCertificate;
use crate::secret::{ClientSecret, ExposeSecret};

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the id and secret each
    /// form-urlencoded first, as RFC 6749 §2.3.1 requires. Every byte outside
    /// the unreserved set is percent-encoded and a space becomes `%20`, the
    /// one encoding that both strict and lenient servers accept. The default.
    #[default]
    Basic,
    /// HTTP Basic without the §2.3.1 encoding (RFC 2617 style), for servers
    /// that reject encoded values. Only differs from [`ClientAuth::Basic`]
    /// when the id or secret holds a byte outside `A-Z a-z 0-9 - . _ ~`.
    BasicRaw,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
    /// A JSON body holding `grant_type`, `client_id`, `client_secret` and the
    /// request parameters (`audience`, `scope`, ...), as some providers
    /// document it.
    Json,
    /// No client authentication (a public client): only `client_id` is sent.
    None,
    /// `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): a JWT
    /// signed with the client's private key
    /// ([`SourceConfigBuilder::signing_key`]), made fresh for every request;
    /// no secret is sent. The default when a signing key is set.
    PrivateKeyJwt,
    /// `client_secret_jwt`: a JWT signed with HMAC-SHA256 keyed by the
    /// client secret, made fresh for every request; the secret itself is
    /// never sent.
    ClientSecretJwt,
    /// `tls_client_auth` (RFC 8705 §2.1): the client authenticates with a
    /// PKI-issued certificate in the TLS handshake
    /// ([`SourceConfigBuilder::client_certificate`]); only `client_id` is
    /// sent. The default when a certificate is set and no secret or key.
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): like
    /// [`ClientAuth::TlsClientAuth`] with a self-signed certificate
    /// registered with the provider.
    SelfSignedTlsClientAuth,
}

impl ClientAuth {
    /// The name used in configuration files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::BasicRaw => "basic-raw",
            Self::Post => "post",
            Self::Json => "json",
            Self::None => "none",
            Self::PrivateKeyJwt => "private-key-jwt",
            Self::ClientSecretJwt => "client-secret-jwt",
            Self::TlsClientAuth => "tls-client-auth",
            Self::SelfSignedTlsClientAuth => "self-signed-tls-client-auth",
        }
    }

    /// The RFC 8414 / IANA name (`client_secret_basic`, `private_key_jwt`...).
    pub fn registered_name(self) -> &'static str {
        match self {
            Self::Basic | Self::BasicRaw => "client_secret_basic",
            Self::Post | Self::Json => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client proves itself with a TLS client certificate
    /// (RFC 8705), which the transport must present.
    pub fn uses_tls_certificate(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }

    /// Parses the name used in configuration files (`basic`, `basic-raw`,
    /// `post`, `json`, `none`, `private-key-jwt`, `client-secret-jwt`,
    /// `tls-client-auth`, `self-signed-tls-client-auth`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "basic" => Self::Basic,
            "basic-raw" => Self::BasicRaw,
            "post" => Self::Post,
            "json" => Self::Json,
            "none" => Self::None,
            "private-key-jwt" => Self::PrivateKeyJwt,
            "client-secret-jwt" => Self::ClientSecretJwt,
            "tls-client-auth" => Self::TlsClientAuth,
            "self-signed-tls-client-auth" => Self::SelfSignedTlsClientAuth,
            _ => return None,
        })
    }

    /// The method a client uses when none is chosen: `private_key_jwt` with
    /// a signing key and no secret; `tls_client_auth` for client
    /// credentials with only a TLS client certificate; none (a public
    /// client) for a user's sign-in or a JWT bearer grant without a secret
    /// or key; HTTP Basic otherwise.
    pub fn default_for(grant: SourceGrant, has_secret: bool, has_key: bool, has_certificate: bool) -> Self {
        match (grant, has_secret, has_key) {
            (_, false, true) => Self::PrivateKeyJwt,
            (SourceGrant::ClientCredentials, false, false) if has_certificate => Self::TlsClientAuth,
            (SourceGrant::SignIn | SourceGrant::JwtBearer, false, false) => Self::None,
            _ => Self::Basic,
        }
    }

    /// Whether the method needs the client secret (`basic`, `basic-raw`,
    /// `post`, `json`, `client-secret-jwt`).
    pub fn needs_secret(self) -> bool {
        matches!(self, Self::Basic | Self::BasicRaw | Self::Post | Self::Json | Self::ClientSecretJwt)
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which grant a token source stands for: what it may send to obtain and
/// renew its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SourceGrant {
    /// The application's own identity: the client credentials grant (and
    /// the provider's refresh token, when it issues one, falling back to
    /// client credentials when that is rejected). The default.
    #[default]
    ClientCredentials,
    /// A user's tokens, obtained by a sign-in (authorization code or device
    /// authorization) and installed with
    /// [`Lifecycle::handle_sign_in`](crate::Lifecycle::handle_sign_in) or
    /// restored. The source renews them only with the user's refresh
    /// token and never asks for a client credentials token in the user's
    /// place: with no refresh token, or a rejected one, callers get
    /// [`TokenError::SignInRequired`](crate::TokenError::SignInRequired).
    /// A client without a secret (a native app, a CLI) is a public client
    /// ([`ClientAuth::None`]) unless another method is set.
    SignIn,
    /// The RFC 7523 §2.1 JWT bearer grant: the token is asked for with an
    /// assertion ([`SourceConfigBuilder::jwt_bearer`]), made fresh for every
    /// request; renewal sends a new one (or the provider's refresh token).
    JwtBearer,
}

impl SourceGrant {
    /// The name used in cache keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::SignIn => "sign_in",
            Self::JwtBearer => "jwt_bearer",
        }
    }
}

/// What a sign-in source tells its callers to do when the user must sign
/// in again, unless [`SourceConfigBuilder::sign_in_hint`] says otherwise.
pub const DEFAULT_SIGN_IN_HINT: &str =
    "sign the user in again (authorization code or device flow) and install the new tokens";

/// When a token is renewed and when it stops being sent.
///
/// For a token with lifetime `L` fetched at `sent`:
///
/// - `expires_at = sent + L`;
/// - the *safety margin* is `min(safety_margin, L / 10)`: inside it the token
///   is never sent, because it may expire in flight or on a server whose
///   clock runs ahead. It shrinks for short tokens so that a 10-second token
///   is still usable for 9 seconds;
/// - the token is *usable* until `expires_at - margin`; call that `U` after
///   `sent`;
/// - renewal starts `min(U * refresh_ahead_fraction, max_refresh_ahead)`
///   before the end of `U`, widened by a random share of up to `jitter` of
///   that window (so that replicas started together do not renew together),
///   and never before `U / 2`.
///
/// With the defaults a 1-hour token is renewed 60-90 s before it stops
/// being usable (one fetch per lifetime: at most 25 a day), a 24-hour
/// token likewise, and a 60-second token 5-8 s before. Until the renewal
/// completes, the old token keeps being served: no caller waits.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshPolicy {
    /// Share of the usable lifetime spent in the renewal window. Default
    /// `0.1`. Range `0.0..=0.5`.
    pub refresh_ahead_fraction: f64,
    /// Upper bound of the renewal window before jitter. At most 1 day.
    /// Default 60 s: long
    /// enough for a few retries with backoff, short enough that a 1-hour
    /// token costs one fetch per lifetime (MSAL uses 5 min, Google 3m45s,
    /// both at the price of extra fetches a day).
    pub max_refresh_ahead: Duration,
    /// Random widening of the renewal window, as a share of it. Default
    /// `0.5`. Range `0.0..=1.0`.
    pub jitter: f64,
    /// The hard margin before expiry inside which a token is not sent.
    /// Default 10 s (Go's oauth2 uses 10 s; Spring 60 s). At most 1 hour.
    pub safety_margin: Duration,
    /// Renew from a timer at the renewal point even when no caller asks.
    /// Default `true`: callers never wait after the first token. With
    /// `false` the renewal starts on the first request after the renewal
    /// point (that request still uses the old token).
    pub background: bool,
    /// Renew with the refresh token when the provider issued one, falling
    /// back to the client credentials grant on `invalid_grant`. Default
    /// `true`. A [`SourceGrant::SignIn`] source always renews with its
    /// refresh token (it has nothing else) and never falls back.
    pub use_refresh_token: bool,
    /// After a token fetched because of a 401 is itself answered 401, the
    /// next 401-triggered fetch waits this long, doubling each time up to
    /// [`BackoffPolicy::max`]. Default 10 s. It keeps an API that rejects
    /// every token (wrong audience, wrong API key) from causing a fetch loop.
    /// More than zero, at most 1 day.
    pub unauthorized_backoff: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            refresh_ahead_fraction: 0.1,
            max_refresh_ahead: Duration::from_secs(60),
            jitter: 0.5,
            safety_margin: Duration::from_secs(10),
            background: true,
            use_refresh_token: true,
            unauthorized_backoff: Duration::from_secs(10),
        }
    }
}

/// How failed token fetches are retried.
///
/// After the `n`th consecutive failure the next fetch waits
/// `min(initial * multiplier^(n-1), max)`, shortened by a random share of up
/// to `jitter`. A permanent error (bad credentials or scope) waits at least
/// `permanent_delay`; a `Retry-After` from the provider is honoured up to
/// `max_retry_after`. While waiting, callers are served the still-valid
/// token if one exists, and otherwise get the last error at once; after a
/// transient error, such a refused caller brings the next try forward to
/// [`demand_retry`](BackoffPolicy::demand_retry) after the failure, so that
/// callers get a token soon after the endpoint heals, however long the
/// outage was. Without callers the backoff grows up to `max`.
///
/// Every value is checked by [`SourceConfigBuilder::build`]; the bounds
/// are given with each field.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffPolicy {
    /// First delay. Default 1 s. Range: more than zero, at most 1 hour.
    pub initial: Duration,
    /// Growth factor. Default `2.0`. Range `1.0..=10.0`.
    pub multiplier: f64,
    /// Longest delay. Default 5 min. Range: at least `initial`, at most 1 day.
    pub max: Duration,
    /// Random shortening, as a share of the delay. Default `0.5` (delays
    /// fall between half and all of the computed value). Range `0.0..=1.0`.
    pub jitter: f64,
    /// Least delay after a permanent error. Default 60 s: a fixed
    /// configuration will not heal by itself, and hammering the endpoint
    /// with bad credentials can get a client locked out. At most 1 day.
    pub permanent_delay: Duration,
    /// Cap on an honoured `Retry-After`. Default 10 min. At most 1 day.
    pub max_retry_after: Duration,
    /// While no usable token exists and callers ask for one, a transient
    /// failure is retried this long after it happened (shortened by up to
    /// a quarter at random; a `Retry-After` is still honoured) rather than
    /// at the end of the backoff. Default 2 s. Range: 100 ms to 10 min.
    pub demand_retry: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.5,
            permanent_delay: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(600),
            demand_retry: Duration::from_secs(2),
        }
    }
}

/// The default lifetime assumed when a response has no usable `expires_in`:
/// one hour, the most common lifetime. A token that dies sooner is replaced
/// on its first 401.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The default cap on a token endpoint response body: 64 KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

/// Parameters the library sets itself, which `param(..)` refuses.
const RESERVED_PARAMS: &[(&str, &str)] = &[
    ("grant_type", "the grant is chosen by the lifecycle"),
    ("client_id", "set it with builder(token_url, client_id)"),
    ("client_secret", "use client_secret(..)"),
    ("scope", "use scope(..)"),
    ("audience", "use audience(..)"),
    ("resource", "use resource(..)"),
    ("refresh_token", "refresh tokens are handled by the lifecycle"),
    ("token", "revocation is built by revocation_request(..)"),
    ("token_type_hint", "revocation is built by revocation_request(..)"),
];

/// A validated configuration of one token source. Build it with
/// [`SourceConfig::builder`]; it is immutable afterwards.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    token_url: Uri,
    revocation_url: Option<Uri>,
    client_id: String,
    client_secret: Option<ClientSecret>,
    client_auth: ClientAuth,
    scopes: Vec<String>,
    audience: Option<String>,
    resources: Vec<String>,
    params: Vec<(String, String)>,
    default_lifetime: Duration,
    max_body_bytes: usize,
    refresh: RefreshPolicy,
    backoff: BackoffPolicy,
    max_fetches_per_day: Option<u32>,
    grant: SourceGrant,
    sign_in_hint: String,
    issuer: Option<String>,
    /// The client assertion key (`private_key_jwt`, or the client secret's
    /// HMAC key for `client_secret_jwt`) and the assertions' `aud`.
    assertion: Option<(SigningKey, String)>,
    jwt_bearer: Option<JwtBearer>,
    dpop: Option<Arc<Dpop>>,
    client_certificate: Option<ClientCertificate>,
    cache_key: CacheKey,
}

impl SourceConfig {
    /// Starts a configuration for the client credentials grant at `token_url`.
    pub fn builder(token_url: impl Into<String>, client_id: impl Into<String>) -> SourceConfigBuilder {
        SourceConfigBuilder {
            token_url: token_url.into(),
            revocation_url: None,
            client_id: client_id.into(),
            client_secret: None,
            client_auth: None,
            scopes: Vec::new(),
            audience: None,
            resources: Vec::new(),
            params: Vec::new(),
            default_lifetime: DEFAULT_LIFETIME,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            refresh: RefreshPolicy::default(),
            backoff: BackoffPolicy::default(),
            max_fetches_per_day: None,
            allow_insecure_http: false,
            grant: SourceGrant::default(),
            sign_in_hint: None,
            issuer: None,
            signing_key: None,
            assertion_audience: AssertionAudience::default(),
            jwt_bearer: None,
            dpop: None,
            client_certificate: None,
        }
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Uri {
        &self.token_url
    }
    /// The RFC 7009 revocation endpoint, if configured.
    pub fn revocation_url(&self) -> Option<&Uri> {
        self.revocation_url.as_ref()
    }
    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The client secret, if any.
    pub fn client_secret(&self) -> Option<&ClientSecret> {
        self.client_secret.as_ref()
    }
    /// The client authentication method.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }
    /// The requested scopes, in the order given, without duplicates.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
    /// The `scope` parameter value (scopes joined by spaces), if any.
    pub fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(" "))
    }
    /// The `audience` parameter.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }
    /// The RFC 8707 `resource` parameters.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }
    /// Extra token request parameters, in the order given.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }
    /// The lifetime assumed when a response has no usable `expires_in`.
    pub fn default_lifetime(&self) -> Duration {
        self.default_lifetime
    }
    /// The cap on a token endpoint response body.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
    /// The renewal policy.
    pub fn refresh_policy(&self) -> &RefreshPolicy {
        &self.refresh
    }
    /// The backoff policy.
    pub fn backoff_policy(&self) -> &BackoffPolicy {
        &self.backoff
    }

    /// The fetch budget: at most this many token requests in any
    /// [`FETCH_BUDGET_WINDOW`] (24 hours), counted in the shared store
    /// across the fleet when there is one. See
    /// [`SourceConfigBuilder::max_fetches_per_day`].
    pub fn max_fetches_per_day(&self) -> Option<u32> {
        self.max_fetches_per_day
    }
    /// The grant the source stands for.
    pub fn grant(&self) -> SourceGrant {
        self.grant
    }
    /// What [`TokenError::SignInRequired`](crate::TokenError::SignInRequired)
    /// tells the user to do (a sign-in source).
    pub fn sign_in_hint(&self) -> &str {
        &self.sign_in_hint
    }
    /// The issuer identifier, when configured.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The key that signs client assertions (`private_key_jwt`, or the
    /// HMAC key of `client_secret_jwt`), if the method uses one.
    pub fn assertion_key(&self) -> Option<&SigningKey> {
        self.assertion.as_ref().map(|(key, _)| key)
    }

    /// The `aud` of client assertions (empty when none are made).
    pub fn assertion_aud(&self) -> &str {
        self.assertion.as_ref().map_or("", |(_, aud)| aud.as_str())
    }

    /// The DPoP key, when tokens are DPoP-bound.
    pub fn dpop(&self) -> Option<&Arc<Dpop>> {
        self.dpop.as_ref()
    }

    /// The client certificate the token endpoint sees in the TLS handshake
    /// (RFC 8705), if any. The adapters' transports present it.
    pub fn client_certificate(&self) -> Option<&ClientCertificate> {
        self.client_certificate.as_ref()
    }

    /// Whether requests go over mutual TLS: a client certificate is set.
    /// Discovery then picks the `mtls_endpoint_aliases`.
    pub fn mutual_tls(&self) -> bool {
        self.client_certificate.is_some()
    }

    /// The JWT bearer grant's assertion, for a [`SourceGrant::JwtBearer`] source.
    pub fn jwt_bearer(&self) -> Option<&JwtBearer> {
        self.jwt_bearer.as_ref()
    }

    /// The cache key: identical for two configurations exactly when their
    /// tokens are interchangeable.
    pub fn cache_key(&self) -> &CacheKey {
        &self.cache_key
    }
}

/// Builder of a [`SourceConfig`]. Nothing is validated until
/// [`SourceConfigBuilder::build`].
#[derive(Debug, Clone)]
#[must_use = "call build() to get a SourceConfig"]
pub struct SourceConfigBuilder {
    token_url: String,
    revocation_url: Option<String>,
    client_id: String,
    client_secret: Option<ClientSecret>,
    /// `None`: the default for the grant and secret.
    client_auth: Option<ClientAuth>,
    scopes: Vec<String>,
    audience: Option<String>,
    resources: Vec<String>,
    params: Vec<(String, String)>,
    default_lifetime: Duration,
    max_body_bytes: usize,
    refresh: RefreshPolicy,
    backoff: BackoffPolicy,
    max_fetches_per_day: Option<u32>,
    allow_insecure_http: bool,
    grant: SourceGrant,
    sign_in_hint: Option<String>,
    issuer: Option<String>,
    signing_key: Option<SigningKey>,
    assertion_audience: AssertionAudience,
    jwt_bearer: Option<JwtBearer>,
    dpop: Option<Arc<Dpop>>,
    client_certificate: Option<ClientCertificate>,
}

impl SourceConfigBuilder {
    /// The authorization server's issuer identifier (RFC 8414), when known:
    /// the default `aud` of assertions. Discovery sets it.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The client's private key for `private_key_jwt`, which becomes the
    /// default client authentication method when no secret is set.
    pub fn signing_key(mut self, key: SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// The `aud` of client assertions (default: the issuer when set, the
    /// token endpoint URL otherwise).
    pub fn assertion_audience(mut self, audience: AssertionAudience) -> Self {
        self.assertion_audience = audience;
        self
    }

    /// Asks for tokens with the RFC 7523 §2.1 JWT bearer grant, with this
    /// assertion (the grant becomes [`SourceGrant::JwtBearer`]). The client
    /// authenticates as well when a secret or key is set; otherwise only
    /// its `client_id` is sent.
    pub fn jwt_bearer(mut self, assertion: JwtBearer) -> Self {
        self.jwt_bearer = Some(assertion);
        self.grant = SourceGrant::JwtBearer;
        self
    }

    /// Sender-constrained tokens with DPoP (RFC 9449): token requests carry
    /// proofs made with this key, the provider must answer `token_type`
    /// `DPoP`, and the tokens carry the key to make a proof for every API
    /// request. Tokens are bound to the key: the cache key names its
    /// thumbprint, so processes share tokens only when they share the key.
    pub fn dpop(mut self, dpop: Arc<Dpop>) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// Mutual TLS (RFC 8705): the client certificate and key the transport
    /// presents to the token endpoint, for `tls_client_auth` /
    /// `self_signed_tls_client_auth` (the default method when no secret or
    /// signing key is set) or for certificate-bound tokens with any method.
    /// The cache key names the certificate's thumbprint: tokens bound to one
    /// certificate are never used with another.
    pub fn client_certificate(mut self, certificate: ClientCertificate) -> Self {
        self.client_certificate = Some(certificate);
        self
    }

    /// The client secret. Required by every method but [`ClientAuth::None`].
    pub fn client_secret(mut self, secret: impl Into<ClientSecret>) -> Self {
        self.client_secret = Some(secret.into());
        self
    }
    /// How the client authenticates. Default [`ClientAuth::Basic`]; for a
    /// [`SourceGrant::SignIn`] source without a client secret,
    /// [`ClientAuth::None`] (a public client).
    pub fn client_auth(mut self, method: ClientAuth) -> Self {
        self.client_auth = Some(method);
        self
    }
    /// The grant the source stands for. Default
    /// [`SourceGrant::ClientCredentials`]; [`SourceGrant::SignIn`] for a
    /// user's tokens. Sign-in tokens have a cache key of their own: they
    /// are never taken for the application's tokens, nor the reverse.
    pub fn grant(mut self, grant: SourceGrant) -> Self {
        self.grant = grant;
        self
    }
    /// What a sign-in source tells its callers to do when the user must
    /// sign in again ("run `mytool login`", say). Default
    /// [`DEFAULT_SIGN_IN_HINT`].
    pub fn sign_in_hint(mut self, hint: impl Into<String>) -> Self {
        self.sign_in_hint = Some(hint.into());
        self
    }
    /// Adds scopes; a value holding spaces adds each of its words.
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        for word in scope.as_ref().split_whitespace() {
            if !self.scopes.iter().any(|s| s == word) {
                self.scopes.push(word.to_owned());
            }
        }
        self
    }
    /// The `audience` parameter (Auth0 and others).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
    /// Adds an RFC 8707 `resource` parameter; may be called several times.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }
    /// Adds an extra parameter to every token request.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }
    /// The RFC 7009 revocation endpoint.
    pub fn revocation_url(mut self, url: impl Into<String>) -> Self {
        self.revocation_url = Some(url.into());
        self
    }
    /// The lifetime assumed when a response has no usable `expires_in`
    /// (missing, null, zero, negative or not a number). Default
    /// [`DEFAULT_LIFETIME`].
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }
    /// The cap on a token endpoint response body. Default
    /// [`DEFAULT_MAX_BODY_BYTES`].
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }
    /// The renewal policy.
    pub fn refresh_policy(mut self, policy: RefreshPolicy) -> Self {
        self.refresh = policy;
        self
    }
    /// The backoff policy.
    pub fn backoff_policy(mut self, policy: BackoffPolicy) -> Self {
        self.backoff = policy;
        self
    }
    /// Caps token requests at `limit` in any 24 hours (a rolling window,
    /// so no calendar day in any time zone sees more), for providers that
    /// cap the tokens they issue per day. With a shared store the count is
    /// kept there, for every process and replica with this cache key;
    /// without one (or while the store fails) each process counts its own.
    ///
    /// When the budget is spent the current token is served until it is no
    /// longer usable; then callers get [`TokenError::BudgetSpent`](crate::TokenError::BudgetSpent),
    /// which says the budget and when the next fetch is allowed. A request
    /// the provider answered with an error (or that never reached it) is
    /// given back; one answered with a success status counts even when its
    /// body was unusable. Off by default; `limit` is 1 to 100,000.
    pub fn max_fetches_per_day(mut self, limit: u32) -> Self {
        self.max_fetches_per_day = Some(limit);
        self
    }
    /// Allows plain `http` endpoints on hosts that are not loopback. Only for
    /// test environments: the client secret would cross the network in clear.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Validates and freezes the configuration.
    pub fn build(self) -> Result<SourceConfig, ConfigError> {
        let token_url = validate_endpoint(&self.token_url, self.allow_insecure_http)?;
        let revocation_url =
            self.revocation_url.as_deref().map(|url| validate_endpoint(url, self.allow_insecure_http)).transpose()?;
        if self.client_id.is_empty() {
            return Err(ConfigError::EmptyClientId);
        }
        if self.client_secret.as_ref().is_some_and(|secret| secret.expose_secret().is_empty()) {
            return Err(ConfigError::EmptyClientSecret);
        }
        let client_auth = self.client_auth.unwrap_or(ClientAuth::default_for(
            self.grant,
            self.client_secret.is_some(),
            self.signing_key.is_some(),
            self.client_certificate.is_some(),
        ));
        if client_auth.needs_secret() && self.client_secret.is_none() {
            return Err(ConfigError::MissingClientSecret { method: client_auth.as_str() });
        }
        if client_auth.uses_tls_certificate() && self.client_certificate.is_none() {
            return Err(ConfigError::MissingClientCertificate { method: client_auth.as_str() });
        }
        let assertion_key = match client_auth {
            ClientAuth::PrivateKeyJwt => {
                let key = self.signing_key.clone().ok_or(ConfigError::MissingSigningKey)?;
                if key.algorithm() == Algorithm::Hs256 {
                    return Err(ConfigError::InvalidKeySetup {
                        reason: "private_key_jwt needs a private key; an HS256 key is client_secret_jwt",
                    });
                }
                Some(key)
            }
            ClientAuth::ClientSecretJwt => {
                self.client_secret.as_ref().map(|secret| SigningKey::hmac_sha256(secret.expose_secret().as_bytes()))
            }
            _ => None,
        };
        let assertion = match assertion_key {
            Some(key) => {
                let aud = self
                    .assertion_audience
                    .resolve(&token_url, self.issuer.as_deref())
                    .ok_or(ConfigError::MissingIssuer { what: "the client assertion's audience" })?;
                Some((key, aud))
            }
            None => None,
        };
        if let Some(bearer) = &self.jwt_bearer {
            if bearer.signed_audience().is_some_and(|aud| aud.resolve(&token_url, self.issuer.as_deref()).is_none()) {
                return Err(ConfigError::MissingIssuer { what: "the JWT bearer assertion's audience" });
            }
            if client_auth == ClientAuth::Json {
                return Err(ConfigError::InvalidKeySetup {
                    reason: "the JWT bearer grant is sent as a form; use another client authentication than json",
                });
            }
        }
        if self.grant == SourceGrant::JwtBearer && self.jwt_bearer.is_none() {
            return Err(ConfigError::InvalidKeySetup {
                reason: "the JWT bearer grant needs an assertion: set jwt_bearer(..)",
            });
        }
        if client_auth == ClientAuth::BasicRaw && self.client_id.contains(':') {
            // RFC 2617: the user id of Basic credentials cannot hold a colon.
            return Err(ConfigError::InvalidCredentialValue {
                what: "client id (a `:` cannot be sent with basic-raw; use basic)",
            });
        }
        for (name, _) in &self.params {
            if let Some((_, reason)) = RESERVED_PARAMS.iter().find(|(reserved, _)| reserved == name) {
                return Err(ConfigError::ReservedParameter { name: name.clone(), reason });
            }
        }
        validate_policies(&self.refresh, &self.backoff, self.default_lifetime, self.max_body_bytes)?;
        if self.max_fetches_per_day.is_some_and(|n| n == 0 || n > MAX_FETCHES_PER_DAY) {
            return Err(ConfigError::InvalidPolicy { name: "max_fetches_per_day", reason: "1 to 100000" });
        }
        let cache_key = CacheKey::derive(&token_url, &self);
        Ok(SourceConfig {
            token_url,
            revocation_url,
            client_id: self.client_id,
            client_secret: self.client_secret,
            client_auth,
            scopes: self.scopes,
            audience: self.audience,
            resources: self.resources,
            params: self.params,
            default_lifetime: self.default_lifetime,
            max_body_bytes: self.max_body_bytes,
            refresh: self.refresh,
            backoff: self.backoff,
            max_fetches_per_day: self.max_fetches_per_day,
            grant: self.grant,
            sign_in_hint: self.sign_in_hint.unwrap_or_else(|| DEFAULT_SIGN_IN_HINT.to_owned()),
            issuer: self.issuer,
            assertion,
            jwt_bearer: self.jwt_bearer,
            dpop: self.dpop,
            client_certificate: self.client_certificate,
            cache_key,
        })
    }
}

/// The window of [`SourceConfigBuilder::max_fetches_per_day`]: 24 hours.
pub const FETCH_BUDGET_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The largest fetch budget ([`SourceConfigBuilder::max_fetches_per_day`]).
pub const MAX_FETCHES_PER_DAY: u32 = 100_000;

/// Longest lifetime accepted from `expires_in`: 366 days. Larger values
/// are clamped, so that no arithmetic on an `Instant` can overflow.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// The longest delay or window a policy may name: longer ones are
/// mistakes, and would overflow `Instant` arithmetic on some platforms.
const ONE_DAY: Duration = Duration::from_secs(24 * 3600);
const ONE_HOUR: Duration = Duration::from_secs(3600);

/// The largest response body cap: bodies are read whole into memory.
pub const MAX_BODY_BYTES_LIMIT: usize = 16 * 1024 * 1024;

fn validate_policies(
    refresh: &RefreshPolicy,
    backoff: &BackoffPolicy,
    default_lifetime: Duration,
    max_body_bytes: usize,
) -> Result<(), ConfigError> {
    let checks: [(bool, &'static str, &'static str); 16] = [
        ((0.0..=0.5).contains(&refresh.refresh_ahead_fraction), "refresh_ahead_fraction", "0.0 to 0.5"),
        ((0.0..=1.0).contains(&refresh.jitter), "refresh jitter", "0.0 to 1.0"),
        (refresh.max_refresh_ahead <= ONE_DAY, "max_refresh_ahead", "at most 1 day"),
        (refresh.safety_margin <= ONE_HOUR, "safety_margin", "at most 1 hour"),
        (
            !refresh.unauthorized_backoff.is_zero() && refresh.unauthorized_backoff <= ONE_DAY,
            "unauthorized_backoff",
            "more than zero and at most 1 day",
        ),
        ((1.0..=10.0).contains(&backoff.multiplier), "backoff multiplier", "1.0 to 10.0"),
        ((0.0..=1.0).contains(&backoff.jitter), "backoff jitter", "0.0 to 1.0"),
        (
            !backoff.initial.is_zero() && backoff.initial <= ONE_HOUR,
            "backoff initial",
            "more than zero and at most 1 hour",
        ),
        (backoff.max >= backoff.initial, "backoff max", "at least the initial delay"),
        (backoff.max <= ONE_DAY, "backoff max", "at most 1 day"),
        (backoff.permanent_delay <= ONE_DAY, "backoff permanent_delay", "at most 1 day"),
        (backoff.max_retry_after <= ONE_DAY, "backoff max_retry_after", "at most 1 day"),
        (
            (Duration::from_millis(100)..=Duration::from_secs(600)).contains(&backoff.demand_retry),
            "backoff demand_retry",
            "100 ms to 10 minutes",
        ),
        (
            !default_lifetime.is_zero() && default_lifetime <= MAX_LIFETIME,
            "default_lifetime",
            "more than zero and at most 366 days",
        ),
        (max_body_bytes >= 1024, "max_body_bytes", "at least 1024"),
        (max_body_bytes <= MAX_BODY_BYTES_LIMIT, "max_body_bytes", "at most 16 MiB"),
    ];
    match checks.iter().find(|(ok, _, _)| !ok) {
        Some((_, name, reason)) => Err(ConfigError::InvalidPolicy { name, reason }),
        None => Ok(()),
    }
}

/// Parses and checks an endpoint URL by the rules every endpoint obeys:
/// absolute `https` (or `http` to a loopback host, or anywhere when
/// `allow_insecure_http`), with a host and without user info.
pub fn validate_endpoint(url: &str, allow_insecure_http: bool) -> Result<Uri, ConfigError> {
    let invalid = |reason| ConfigError::InvalidUrl { url: strip_userinfo(url), reason };
    let uri: Uri = url.parse().map_err(|_| invalid("it does not parse as a URL"))?;
    let authority = uri.authority().ok_or_else(|| invalid("it has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("it holds user info; pass credentials with client_secret(..), never in the URL"));
    }
    if authority.host().is_empty() {
        return Err(invalid("it has no host"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if allow_insecure_http || is_loopback_host(authority.host()) => Ok(uri),
        Some("http") => Err(ConfigError::InsecureUrl { url: url.to_owned() }),
        _ => Err(invalid("its scheme is not https")),
    }
}

fn strip_userinfo(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://{}", &url[..scheme_end], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// Whether `host` (as in a URL authority, IPv6 in brackets) is a loopback
/// host: `localhost`, `127.0.0.0/8`, `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

/// Identifies the tokens a configuration obtains: two configurations share
/// a key exactly when their tokens are interchangeable.
///
/// It is derived from the token URL, the client id, the grant (client
/// credentials or a user's sign-in), the scopes
/// (as a set), the audience, the resources and the extra parameters. It
/// holds no secret: changing a client secret does not change which tokens
/// the client gets. [`CacheKey::fingerprint`] is a SHA-256 of the canonical
/// form, stable across versions of this crate and across runs, and safe to
/// use as a file name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    canonical: String,
    fingerprint: String,
}

impl CacheKey {
    fn derive(token_url: &Uri, b: &SourceConfigBuilder) -> Self {
        fn field(out: &mut String, name: &str, value: &str) {
            out.push_str(name);
            out.push('=');
            out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
            out.push('\n');
        }
        let mut canonical = String::from("auth-core cache key v1\n");
        field(&mut canonical, "token_url", &token_url.to_string());
        field(&mut canonical, "client_id", &b.client_id);
        // Unchanged for client credentials, so that existing keys stay valid.
        field(&mut canonical, "grant_type", b.grant.as_str());
        if let Some(bearer) = &b.jwt_bearer {
            field(&mut canonical, "assertion", &bearer.identity());
        }
        if let Some(dpop) = &b.dpop {
            // DPoP-bound tokens are usable only with their key.
            field(&mut canonical, "dpop_jkt", dpop.thumbprint());
        }
        if let Some(certificate) = &b.client_certificate {
            // Certificate-bound tokens are usable only with their certificate.
            field(&mut canonical, "x5t_s256", certificate.thumbprint());
        }
        let mut scopes = b.scopes.clone();
        scopes.sort();
        field(&mut canonical, "scope", &scopes.join(" "));
        field(&mut canonical, "audience", b.audience.as_deref().unwrap_or(""));
        let mut resources = b.resources.clone();
        resources.sort();
        resources.dedup();
        for resource in &resources {
            field(&mut canonical, "resource", resource);
        }
        let mut params = b.params.clone();
        params.sort();
        for (name, value) in &params {
            field(
                &mut canonical,
                &format!("param.{}", form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()),
                value,
            );
        }
        let digest = Sha256::digest(canonical.as_bytes());
        let fingerprint = digest.iter().map(|b| format!("{b:02x}")).collect();
        Self { canonical, fingerprint }
    }

    /// The canonical, human-readable form (one `name=value` per line,
    /// values form-urlencoded). Holds no secret.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// A SHA-256 of the canonical form, as 64 lowercase hex digits.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.fingerprint[..16])
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SourceConfigBuilder {
        SourceConfig::builder("https://auth.example.com/oauth2/token", "client-1").client_secret("top-secret-value")
    }

    #[test]
    fn https_is_required_except_for_loopback_or_opt_in() {
        assert!(base().build().is_ok());
        for url in [
            "http://127.0.0.1:8080/token",
            "http://127.1.2.3/token",
            "http://localhost:1/token",
            "http://LOCALHOST/token",
            "http://[::1]:9000/token",
        ] {
            assert!(SourceConfig::builder(url, "c").client_secret("s").build().is_ok(), "{url}");
        }
        for url in ["http://auth.example.com/token", "http://10.0.0.1/token", "http://localhost.evil.com/token"] {
            let err = SourceConfig::builder(url, "c").client_secret("s").build().unwrap_err();
            assert!(matches!(err, ConfigError::InsecureUrl { .. }), "{url}: {err}");
            assert!(err.to_string().contains("allow_insecure_http"));
            assert!(SourceConfig::builder(url, "c").client_secret("s").allow_insecure_http(true).build().is_ok());
        }
    }

    #[test]
    fn bad_urls_are_rejected_with_a_reason() {
        for url in ["", "not a url", "/relative/token", "ftp://example.com/token", "https://user:pw@example.com/token"]
        {
            let err = SourceConfig::builder(url, "c").client_secret("s").build().unwrap_err();
            assert!(matches!(err, ConfigError::InvalidUrl { .. }), "{url}: {err:?}");
            assert!(!err.to_string().contains("pw@"), "user info must not be echoed: {err}");
        }
        let err = base().revocation_url("http://example.com/revoke").build().unwrap_err();
        assert!(matches!(err, ConfigError::InsecureUrl { .. }));
    }

    #[test]
    fn secret_is_required_unless_public_client() {
        let err = SourceConfig::builder("https://a.example/t", "c").build().unwrap_err();
        assert_eq!(err, ConfigError::MissingClientSecret { method: "basic" });
        assert!(SourceConfig::builder("https://a.example/t", "c").client_auth(ClientAuth::None).build().is_ok());
        assert_eq!(
            SourceConfig::builder("https://a.example/t", "").client_auth(ClientAuth::None).build().unwrap_err(),
            ConfigError::EmptyClientId
        );
    }

    #[test]
    fn an_empty_secret_is_a_build_error_that_says_where_to_look() {
        for method in [ClientAuth::Basic, ClientAuth::Post, ClientAuth::None] {
            let err = base().client_secret("").client_auth(method).build().unwrap_err();
            assert_eq!(err, ConfigError::EmptyClientSecret);
            assert!(err.to_string().contains("variable or file"), "{err}");
        }
    }

    #[test]
    fn reserved_parameters_are_refused() {
        let err = base().param("client_secret", "x").build().unwrap_err();
        assert!(matches!(err, ConfigError::ReservedParameter { .. }), "{err}");
        assert!(base().param("tenant", "acme").build().is_ok());
    }

    #[test]
    fn policies_are_range_checked() {
        let refresh = RefreshPolicy { jitter: 2.0, ..RefreshPolicy::default() };
        assert!(matches!(base().refresh_policy(refresh).build(), Err(ConfigError::InvalidPolicy { .. })));
        let backoff = BackoffPolicy { initial: Duration::ZERO, ..BackoffPolicy::default() };
        assert!(matches!(base().backoff_policy(backoff).build(), Err(ConfigError::InvalidPolicy { .. })));
        assert!(matches!(base().default_lifetime(Duration::ZERO).build(), Err(ConfigError::InvalidPolicy { .. })));
    }

    #[test]
    fn extreme_policies_are_refused_with_the_bound() {
        let backoffs = [
            BackoffPolicy { initial: Duration::MAX, ..BackoffPolicy::default() },
            BackoffPolicy { max: Duration::MAX, ..BackoffPolicy::default() },
            BackoffPolicy { permanent_delay: Duration::MAX, ..BackoffPolicy::default() },
            BackoffPolicy { max_retry_after: Duration::MAX, ..BackoffPolicy::default() },
            BackoffPolicy { demand_retry: Duration::ZERO, ..BackoffPolicy::default() },
            BackoffPolicy { multiplier: f64::NAN, ..BackoffPolicy::default() },
            BackoffPolicy { jitter: f64::INFINITY, ..BackoffPolicy::default() },
        ];
        for policy in backoffs {
            let err = base().backoff_policy(policy.clone()).build().unwrap_err();
            assert!(matches!(err, ConfigError::InvalidPolicy { .. }), "{policy:?}");
            assert!(err.to_string().contains("at most") || err.to_string().contains("to"), "{err}");
        }
        let refreshes = [
            RefreshPolicy { safety_margin: Duration::MAX, ..RefreshPolicy::default() },
            RefreshPolicy { max_refresh_ahead: Duration::MAX, ..RefreshPolicy::default() },
            RefreshPolicy { unauthorized_backoff: Duration::MAX, ..RefreshPolicy::default() },
            RefreshPolicy { refresh_ahead_fraction: f64::NAN, ..RefreshPolicy::default() },
        ];
        for policy in refreshes {
            let err = base().refresh_policy(policy.clone()).build().unwrap_err();
            assert!(matches!(err, ConfigError::InvalidPolicy { .. }), "{policy:?}");
        }
        assert!(base().max_body_bytes(usize::MAX).build().is_err());
        // The largest values allowed build.
        let widest = BackoffPolicy {
            initial: ONE_HOUR,
            max: ONE_DAY,
            permanent_delay: ONE_DAY,
            max_retry_after: ONE_DAY,
            multiplier: 10.0,
            ..BackoffPolicy::default()
        };
        assert!(base().backoff_policy(widest).build().is_ok());
    }

    #[test]
    fn scopes_split_and_deduplicate() {
        let config = base().scope("read write").scope("read").scope("  admin ").build().unwrap();
        assert_eq!(config.scopes(), ["read", "write", "admin"]);
        assert_eq!(config.scope_param().as_deref(), Some("read write admin"));
    }

    #[test]
    fn cache_key_covers_every_token_changing_field_and_no_secret() {
        let key = |b: SourceConfigBuilder| b.build().unwrap().cache_key().clone();
        let reference = key(base().scope("a b").resource("r1").param("x", "1"));
        // Same token: order of scopes, secret and auth method do not matter.
        assert_eq!(reference, key(base().scope("b a").resource("r1").param("x", "1")));
        assert_eq!(
            reference,
            key(base()
                .client_secret("other")
                .client_auth(ClientAuth::Post)
                .scope("a b")
                .resource("r1")
                .param("x", "1"))
        );
        // Anything that changes the token changes the key.
        let different = [
            key(SourceConfig::builder("https://sandbox.example.com/oauth2/token", "client-1")
                .client_secret("s")
                .scope("a b")
                .resource("r1")
                .param("x", "1")),
            key(SourceConfig::builder("https://auth.example.com/oauth2/token", "client-2")
                .client_secret("s")
                .scope("a b")
                .resource("r1")
                .param("x", "1")),
            key(base().scope("a").resource("r1").param("x", "1")),
            key(base().scope("a b").resource("r2").param("x", "1")),
            key(base().scope("a b").resource("r1").resource("r2").param("x", "1")),
            key(base().scope("a b").resource("r1").param("x", "2")),
            key(base().scope("a b").resource("r1").param("x", "1").audience("aud")),
        ];
        for other in &different {
            assert_ne!(&reference, other, "{}", other.canonical());
        }
        assert_eq!(reference.fingerprint().len(), 64);
        assert!(!reference.canonical().contains("top-secret-value"));
        assert!(!format!("{:?} {}", reference, reference).contains("top-secret"));
        // Stable across runs and versions: pinned.
        let pinned = key(SourceConfig::builder("https://auth.example.com/token", "c").client_auth(ClientAuth::None));
        assert_eq!(pinned.canonical(), "auth-core cache key v1\ntoken_url=https%3A%2F%2Fauth.example.com%2Ftoken\nclient_id=c\ngrant_type=client_credentials\nscope=\naudience=\n");
    }

    #[test]
    fn a_client_certificate_chooses_tls_client_auth_and_keys_its_tokens() {
        let fixture = |name: &str| {
            std::fs::read_to_string(format!("{}/testdata/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        };
        let certificate = ClientCertificate::from_pem(&fixture("cert.pem"), &fixture("ec-p256.pem"), None).unwrap();
        let builder = || SourceConfig::builder("https://auth.example.com/oauth2/token", "client-1");
        // A certificate and nothing else: tls_client_auth, mutual TLS.
        let config = builder().client_certificate(certificate.clone()).build().unwrap();
        assert_eq!(config.client_auth(), ClientAuth::TlsClientAuth);
        assert!(config.mutual_tls() && config.client_certificate().is_some());
        assert!(config.cache_key().canonical().contains(&format!("x5t_s256={}", certificate.thumbprint())));
        // With a secret, the secret authenticates; the tokens are still the certificate's.
        let with_secret = builder().client_secret("s").client_certificate(certificate.clone()).build().unwrap();
        assert_eq!(with_secret.client_auth(), ClientAuth::Basic);
        assert_eq!(with_secret.cache_key(), config.cache_key());
        let without = builder().client_secret("s").build().unwrap();
        assert!(!without.mutual_tls());
        assert_ne!(without.cache_key(), config.cache_key());
        // A certificate method without a certificate says what to set.
        for method in [ClientAuth::TlsClientAuth, ClientAuth::SelfSignedTlsClientAuth] {
            let error = builder().client_auth(method).build().unwrap_err();
            assert_eq!(error, ConfigError::MissingClientCertificate { method: method.as_str() });
            assert!(error.to_string().contains("client_certificate(..)"), "{error}");
        }
        assert!(!format!("{config:?}").contains("PRIVATE"));
    }

    #[test]
    fn debug_of_a_config_never_shows_the_secret() {
        let config = base().build().unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("top-secret-value"), "{shown}");
        assert_eq!(config.client_secret().unwrap().expose_secret(), "top-secret-value");
    }

    #[test]
    fn auth_method_names_round_trip() {
        for m in [ClientAuth::Basic, ClientAuth::BasicRaw, ClientAuth::Post, ClientAuth::Json, ClientAuth::None] {
            assert_eq!(ClientAuth::parse(m.as_str()), Some(m));
        }
        assert_eq!(ClientAuth::parse("digest"), None);
    }
}
