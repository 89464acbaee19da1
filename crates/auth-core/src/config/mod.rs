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

use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use crate::assertion::settings::{AssertionAudience, JwtBearer};
use crate::dpop::Dpop;
use crate::error::ConfigError;
use crate::exchange::{SuppliedToken, TokenExchange};
use crate::keys::{Algorithm, SigningKey};
use crate::mtls::ClientCertificate;
use crate::secret::{ClientSecret, ExposeSecret};

mod cache_key;
mod client_auth;
mod endpoint;
mod exchange;
mod policy;
mod step_up;

pub use cache_key::CacheKey;
pub use client_auth::{ClientAuth, SourceGrant};
pub use endpoint::{is_loopback_host, validate_endpoint};
use policy::validate_policies;
pub use policy::{
    BackoffPolicy, RefreshPolicy, FETCH_BUDGET_WINDOW, MAX_BODY_BYTES_LIMIT, MAX_FETCHES_PER_DAY, MAX_LIFETIME,
};

/// What a sign-in source tells its callers to do when the user must sign
/// in again, unless [`SourceConfigBuilder::sign_in_hint`] says otherwise.
pub const DEFAULT_SIGN_IN_HINT: &str =
    "sign the user in again (authorization code or device flow) and install the new tokens";

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
    /// The scopes a step-up may add ([`SourceConfigBuilder::step_up_scopes`]).
    step_up_scopes: Vec<String>,
    /// The client assertion supplied from outside, instead of one signed here.
    client_assertion: Option<SuppliedToken>,
    token_exchange: Option<TokenExchange>,
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
            step_up_scopes: Vec::new(),
            client_assertion: None,
            token_exchange: None,
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
    step_up_scopes: Vec<String>,
    client_assertion: Option<SuppliedToken>,
    token_exchange: Option<TokenExchange>,
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
            self.signing_key.is_some() || self.client_assertion.is_some(),
            self.client_certificate.is_some(),
        ));
        if client_auth.needs_secret() && self.client_secret.is_none() {
            return Err(ConfigError::MissingClientSecret { method: client_auth.as_str() });
        }
        if client_auth.uses_tls_certificate() && self.client_certificate.is_none() {
            return Err(ConfigError::MissingClientCertificate { method: client_auth.as_str() });
        }
        let assertion_key = match client_auth {
            // The assertion comes from outside: nothing to sign.
            ClientAuth::PrivateKeyJwt if self.client_assertion.is_some() => None,
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
        if (self.grant == SourceGrant::TokenExchange) != self.token_exchange.is_some() {
            return Err(ConfigError::InvalidKeySetup {
                reason: "the token exchange grant needs what to exchange: set token_exchange(..)",
            });
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
        if !self.step_up_scopes.is_empty() && self.grant == SourceGrant::SignIn {
            return Err(ConfigError::InvalidKeySetup {
                reason: "step_up_scopes(..) is for a client's own grant; a user's source asks the user (see StepUp)",
            });
        }
        if self.max_fetches_per_day.is_some_and(|n| n == 0 || n > MAX_FETCHES_PER_DAY) {
            return Err(ConfigError::InvalidPolicy { name: "max_fetches_per_day", reason: "1 to 100000" });
        }
        let cache_key = self.cache_key(&token_url);
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
            step_up_scopes: self.step_up_scopes,
            client_assertion: self.client_assertion,
            token_exchange: self.token_exchange,
            cache_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::policy::{ONE_DAY, ONE_HOUR};
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
