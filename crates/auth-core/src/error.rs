//! Typed errors. Every variant says what went wrong and what to check, and
//! none of them ever holds a secret.

use std::fmt;
use std::time::Duration;

/// A configuration that cannot be used. Returned by the builders'
/// `build()`; fix the configuration and build again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The token (or revocation) URL could not be parsed, has no host, or
    /// uses a scheme other than `http`/`https`.
    #[error("URL `{url}` is not usable: {reason}; give the full https:// address of the endpoint")]
    InvalidUrl {
        /// The URL as given (user info, if any, is removed).
        url: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Plain `http` to a host that is not loopback. Credentials would cross
    /// the network in clear.
    #[error(
        "URL `{url}` uses plain http to a host that is not loopback; use https, \
         or call allow_insecure_http(true) for a test environment you control"
    )]
    InsecureUrl {
        /// The URL as given.
        url: String,
    },
    /// The client id is empty.
    #[error("the client id is empty; set the id the provider issued for this client")]
    EmptyClientId,
    /// The chosen client authentication method sends a secret, but none was set.
    #[error(
        "client authentication `{method}` needs a client secret; set client_secret(..), \
         or use ClientAuth::None for a public client"
    )]
    MissingClientSecret {
        /// The method that needs a secret.
        method: &'static str,
    },
    /// The client secret is set but empty (often an environment variable
    /// that is set to nothing).
    #[error(
        "the client secret is empty; set the secret the provider issued for this client \
         (check the variable or file it comes from), or use ClientAuth::None for a public client"
    )]
    EmptyClientSecret,
    /// A secret was to come from an environment variable that is unset,
    /// empty, or not valid UTF-8.
    #[error("the environment variable `{variable}` that should hold the {what} {problem}; set it to the value the provider issued")]
    SecretFromEnv {
        /// The variable's name (never its value).
        variable: String,
        /// Which secret (`client secret`, `API key`, ...).
        what: &'static str,
        /// `is not set`, `is empty` or `is not valid UTF-8`.
        problem: &'static str,
    },
    /// An extra token request parameter collides with one the library sets.
    #[error("parameter `{name}` is set by the library; {reason}")]
    ReservedParameter {
        /// The parameter name.
        name: String,
        /// Which setter to use instead.
        reason: &'static str,
    },
    /// A policy value is out of range.
    #[error("policy value `{name}` is out of range: {reason}")]
    InvalidPolicy {
        /// The field.
        name: &'static str,
        /// The accepted range.
        reason: &'static str,
    },
    /// A header name for an API key is not a valid HTTP header name.
    #[error("`{name}` is not a valid HTTP header name; use letters, digits and `-` (e.g. X-API-Key)")]
    InvalidHeaderName {
        /// The name as given.
        name: String,
    },
    /// A credential value cannot be sent in an HTTP header (control bytes,
    /// CR or LF, non-ASCII).
    #[error("the {what} contains characters that cannot be sent in an HTTP header (control bytes, CR, LF or non-ASCII); check how it was read (a trailing newline?)")]
    InvalidCredentialValue {
        /// Which credential (never its value).
        what: &'static str,
    },
    /// An origin for the origin filter could not be parsed.
    #[error(
        "origin `{origin}` is not valid: {reason}; write it as scheme://host[:port], e.g. https://api.example.com"
    )]
    InvalidOrigin {
        /// The origin as given.
        origin: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Credentials were built without an origin to send them to.
    #[error(
        "the credentials have no origin: add api_origin(\"https://api.example.com\") with the origin of the API \
         they are for (or any_origin() to send them to every host the client \
         calls, redirects included)"
    )]
    NoOrigin,
    /// Both `any_origin()` and `api_origin(..)` were given.
    #[error("any_origin() and api_origin(..) exclude each other; keep the allowed origins")]
    AnyOriginWithOrigins,
    /// Two credentials would write the same header or query parameter.
    #[error("two credentials both set `{target}`; keep one (Bearer, Basic and an `Authorization` API key are mutually exclusive)")]
    ConflictingCredentials {
        /// The header or query parameter both would set.
        target: String,
    },
    /// A required part of the configuration is missing.
    #[error("the configuration is incomplete: {what}")]
    Incomplete {
        /// What is missing and how to provide it.
        what: &'static str,
    },
    /// No revocation URL was configured, but a revocation request was asked for.
    #[error("no revocation URL is configured; set revocation_url(..) to the provider's RFC 7009 endpoint")]
    NoRevocationUrl,
    /// The operating system gave no random bytes (for a PKCE verifier, a
    /// `state` or a `nonce`).
    #[error("the operating system's random number generator failed ({reason}); a sign-in cannot start without it")]
    NoRandomness {
        /// What the operating system said.
        reason: String,
    },
    /// `private_key_jwt` was chosen and no signing key was set.
    #[error("client authentication `private-key-jwt` needs the client's private key; set signing_key(..) (a PEM or JWK file)")]
    MissingSigningKey,
    /// The TLS library cannot use the client certificate or the roots.
    #[error(
        "the TLS settings cannot be used ({reason}); check that the client key belongs to the certificate and is \
         RSA, ECDSA P-256/P-384 or Ed25519, and that the root certificates are valid"
    )]
    Tls {
        /// The TLS library's words.
        reason: String,
    },
    /// A TLS client certificate method was chosen and no certificate was set.
    #[error("client authentication `{method}` needs the client certificate and its key; set client_certificate(..) (PEM files)")]
    MissingClientCertificate {
        /// The method's name.
        method: &'static str,
    },
    /// An assertion is to be addressed to the issuer, and none is known.
    #[error("{what} is the issuer, but no issuer is configured; set issuer(..) (or use discovery), or choose the token URL as the audience")]
    MissingIssuer {
        /// Which assertion.
        what: &'static str,
    },
    /// Keys or assertions set up in a way that cannot work.
    #[error("{reason}")]
    InvalidKeySetup {
        /// What is wrong and what to do.
        reason: &'static str,
    },
    /// A key file could not be read.
    #[error("cannot read the key file `{path}`: {reason}; check the path and that this user may read it")]
    KeyFile {
        /// The file.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// A key could not be read.
    #[error("{what}: {error}")]
    Key {
        /// Which key (`the private key file key.pem`, ...), never its content.
        what: String,
        /// What is wrong with it.
        error: crate::keys::KeyError,
    },
}

/// `error` and its chain of sources on one line, cut to 300 characters.
fn describe_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    if message.len() > 300 {
        let cut = (0..=300).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
        message.truncate(cut);
        message.push('…');
    }
    message
}

impl ConfigError {
    /// The TLS library refused the client certificate or the roots, as
    /// `error` and its causes say (for drivers: the error must hold no key).
    pub fn tls(error: &(dyn std::error::Error + 'static)) -> Self {
        Self::Tls { reason: describe_chain(error) }
    }
}

/// An RFC 6749 §5.2 error code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`: the request is malformed.
    InvalidRequest,
    /// `invalid_client`: client authentication failed.
    InvalidClient,
    /// `invalid_grant`: the grant (e.g. the refresh token) is invalid,
    /// expired or revoked.
    InvalidGrant,
    /// `unauthorized_client`: the client may not use this grant type.
    UnauthorizedClient,
    /// `unsupported_grant_type`: the server does not support the grant type.
    UnsupportedGrantType,
    /// `invalid_scope`: the requested scope is invalid or exceeds what was granted.
    InvalidScope,
    /// `invalid_target` (RFC 8707): the `resource` is invalid or unknown.
    InvalidTarget,
    /// `temporarily_unavailable`: the server is overloaded or in maintenance.
    TemporarilyUnavailable,
    /// `server_error`: the server met an unexpected condition.
    ServerError,
    /// Any other code, as sent (truncated and sanitised).
    Other(String),
}

impl ErrorCode {
    /// Parses a code as sent by the provider.
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            "server_error" => Self::ServerError,
            other => Self::Other(crate::text::sanitize_excerpt(other, 64)),
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::Other(code) => code,
        }
    }

    /// What the user should check when the provider answers with this code.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::InvalidRequest => "the provider found the token request malformed; check the scope, audience, resource and extra parameters, and the client authentication method it expects",
            Self::InvalidClient => "check the client id and secret, and the client authentication method the provider expects (basic, basic-raw, post, json)",
            Self::InvalidGrant => "the grant or refresh token was rejected (expired, revoked or issued to another client)",
            Self::UnauthorizedClient => "this client may not use this grant type; check the client's settings at the provider",
            Self::UnsupportedGrantType => "the endpoint does not support this grant type; check the token URL",
            Self::InvalidScope => "check the requested scopes against those granted to this client",
            Self::InvalidTarget => "check the resource and audience values against what the provider knows",
            Self::TemporarilyUnavailable | Self::ServerError => "the provider reports a temporary failure; retrying later may succeed",
            Self::Other(_) => "see the provider's error description and documentation",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An RFC 6749 §5.2 error response from the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// The HTTP status of the response (a `200` carrying an `error` field is
    /// an error too).
    pub status: u16,
    /// The `error` code.
    pub code: ErrorCode,
    /// The provider's `error_description`, sanitised and with any secret of
    /// ours redacted.
    pub description: Option<String>,
    /// The provider's `error_uri`.
    pub uri: Option<String>,
    /// The `Retry-After` delay, when the response carried one in seconds.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// The error with every run of a secret in `redactor` removed from its
    /// text.
    fn redacted(mut self, redactor: &crate::redact::Redactor) -> Self {
        let clean = |text: String| redactor.redact(&text);
        if let ErrorCode::Other(code) = self.code {
            self.code = ErrorCode::Other(clean(code));
        }
        self.description = self.description.map(clean);
        self.uri = self.uri.map(clean);
        self
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, endpoint: Endpoint) -> fmt::Result {
        write!(f, "{} refused the request: {} (HTTP {})", endpoint.name(), self.code, self.status)?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        if let Some(uri) = &self.uri {
            write!(f, " (see {uri})")?;
        }
        retry_after_note(f, self.retry_after)?;
        let hint = match (endpoint, &self.code) {
            (Endpoint::Revocation, ErrorCode::InvalidRequest | ErrorCode::UnsupportedGrantType) => {
                "check the revocation URL and the client authentication method the provider expects"
            }
            _ => self.code.hint(),
        };
        write!(f, "; {hint}")
    }
}

/// The provider's words and what to check, as the token endpoint's
/// refusal (the same text as [`TokenError::Provider`]).
impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, Endpoint::Token)
    }
}

impl std::error::Error for ProviderError {}

/// Why a token could not be obtained.
///
/// The error is `Clone` so that one failed fetch can be handed to every
/// caller that waited on it. [`TokenError::is_transient`] tells whether
/// retrying later may help; the `Display` text ends with what to check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The provider answered with an OAuth 2.0 error (RFC 6749 §5.2).
    Provider(ProviderError),
    /// The endpoint answered with an error status and a body that is not an
    /// OAuth error (an HTML error page from a proxy, say).
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body, sanitised: tags and control bytes removed,
        /// at most 200 characters, secrets redacted.
        excerpt: String,
        /// The `Retry-After` delay, when given in seconds.
        retry_after: Option<Duration>,
    },
    /// The response body exceeded the configured size cap.
    BodyTooLarge {
        /// The HTTP status.
        status: u16,
        /// The cap, in bytes.
        limit: usize,
    },
    /// A success status with a body that is not a token response.
    Malformed {
        /// The HTTP status.
        status: u16,
        /// What was wrong (never the body itself, which may hold a token).
        reason: &'static str,
    },
    /// The access token is empty or cannot be sent in a header.
    InvalidAccessToken {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The token type is not one this library can send.
    UnsupportedTokenType {
        /// The `token_type` as sent (sanitised).
        token_type: String,
    },
    /// The token would have expired (or reached the safety margin) before it
    /// arrived: the endpoint is too slow for the token's lifetime.
    ExpiredOnArrival {
        /// The lifetime the provider gave.
        lifetime: Duration,
        /// How long the fetch took.
        elapsed: Duration,
    },
    /// The token endpoint could not be reached or the exchange failed below
    /// HTTP (DNS, connect, TLS, timeout, reset). Reported by the driver.
    Transport {
        /// What failed, with no URL query, header or body in it.
        message: String,
        /// Whether it was a timeout.
        timeout: bool,
    },
    /// The fetch budget ([`SourceConfigBuilder::max_fetches_per_day`](crate::SourceConfigBuilder::max_fetches_per_day))
    /// is spent and the current token (if any) is no longer usable. No
    /// request was sent.
    BudgetSpent {
        /// The budget: token requests per 24 hours.
        limit: u32,
        /// Whether it was counted in the shared store, for the whole fleet
        /// (otherwise by this process alone).
        shared: bool,
        /// How long until the next fetch is allowed, as of when the error
        /// was handed out.
        retry_in: Duration,
        /// When the next fetch is allowed, in wall time, when known (a
        /// shared store says it).
        retry_at: Option<std::time::SystemTime>,
    },
    /// A user's token source ([`SourceGrant::SignIn`](crate::config::SourceGrant::SignIn))
    /// has no usable token and cannot get one without the user: sign in
    /// again. No client credentials token is ever requested in the user's
    /// place.
    SignInRequired {
        /// Why.
        reason: SignInReason,
        /// What to do (the configuration's
        /// [`sign_in_hint`](crate::config::SourceConfig::sign_in_hint)).
        hint: String,
    },
    /// The shared token store did not answer while a user's refresh token
    /// was due to be spent: it is spent only under the store's renewal
    /// lease, so that two processes never spend the same one (a provider
    /// that rotates refresh tokens takes a second use for theft and may end
    /// the user's session). Retried by the source.
    StoreUnavailable {
        /// What the store said (no secret in it).
        message: String,
    },
    /// The provider issued a token of the other kind: a Bearer token where
    /// DPoP was asked for (the client is not set up for DPoP there, or the
    /// server ignored the proof), or a DPoP-bound token to a client without
    /// a DPoP key.
    TokenTypeMismatch {
        /// `DPoP` or `Bearer`.
        expected: &'static str,
        /// What the provider said.
        received: String,
    },
    /// A signed assertion (a client assertion, a JWT bearer grant's
    /// assertion) or a proof could not be made when the request was due:
    /// the assertion function failed, or signing did. Nothing was sent.
    /// Retried by the source.
    Assertion {
        /// What failed (no secret in it).
        message: String,
    },
}

/// Why a user must sign in again ([`TokenError::SignInRequired`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignInReason {
    /// No tokens: the user never signed in here (or signed out).
    NotSignedIn,
    /// The access token expired and the provider issued no refresh token.
    NoRefreshToken,
    /// The provider rejected the refresh token (`invalid_grant`: expired,
    /// revoked, or already used); the provider's words.
    RefreshRejected(Box<ProviderError>),
}

/// Which endpoint an error came from, for its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// The token endpoint (fetching a token).
    Token,
    /// The RFC 7009 revocation endpoint.
    Revocation,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Self::Token => "token endpoint",
            Self::Revocation => "revocation endpoint",
        }
    }

    fn url(self) -> &'static str {
        match self {
            Self::Token => "token URL",
            Self::Revocation => "revocation URL",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, Endpoint::Token)
    }
}

impl std::error::Error for TokenError {}

/// [`TokenError::about`]: the error worded for one endpoint.
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    error: &'a TokenError,
    endpoint: Endpoint,
}

impl fmt::Display for About<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.write(f, self.endpoint)
    }
}

/// A duration as hours, minutes and seconds (`3h 12m 5s`).
struct HumanDuration(Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        match (h, m) {
            (0, 0) => write!(f, "{s}s"),
            (0, _) => write!(f, "{m}m {s}s"),
            _ => write!(f, "{h}h {m}m {s}s"),
        }
    }
}

fn retry_after_note(f: &mut fmt::Formatter<'_>, retry_after: Option<Duration>) -> fmt::Result {
    match retry_after {
        Some(delay) => write!(f, " (Retry-After: {} s)", delay.as_secs()),
        None => Ok(()),
    }
}

fn status_hint(status: u16, endpoint: Endpoint) -> String {
    match status {
        401 | 403 => "check the client id, secret and client authentication method".to_owned(),
        404 | 405 => format!("check the {}", endpoint.url()),
        408 | 429 => "the provider asked to slow down; retry after the delay it gave".to_owned(),
        500..=599 => "the provider failed; retrying later may succeed".to_owned(),
        _ => format!("check the {} and the request parameters", endpoint.url()),
    }
}

/// Whether an HTTP status from the token endpoint is worth retrying.
pub(crate) fn status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

impl TokenError {
    /// A transport failure, for drivers. `message` must not contain a URL
    /// query, a header or a body.
    pub fn transport(message: impl Into<String>) -> Self {
        Self::Transport { message: message.into(), timeout: false }
    }

    /// A transport failure described by `error` and its chain of sources,
    /// on one line, cut to 300 characters, for drivers. The error must not
    /// show a URL query, a header or a body (strip URLs first).
    pub fn from_error(error: &(dyn std::error::Error + 'static), timeout: bool) -> Self {
        Self::Transport { message: describe_chain(error), timeout }
    }

    /// A timeout of the token request, for drivers.
    pub fn timeout(after: Duration) -> Self {
        Self::Transport { message: format!("no answer within {after:?}"), timeout: true }
    }

    /// Whether retrying later may succeed: network failures, timeouts,
    /// 408, 429 and 5xx answers, `temporarily_unavailable` and
    /// `server_error`. Bad credentials, bad scopes and protocol mismatches
    /// are permanent: retrying will not help until the configuration or the
    /// provider's settings change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Provider(e) => {
                matches!(e.code, ErrorCode::TemporarilyUnavailable | ErrorCode::ServerError)
                    || (matches!(e.code, ErrorCode::Other(_)) && status_is_transient(e.status))
            }
            Self::Status { status, .. } | Self::BodyTooLarge { status, .. } => status_is_transient(*status),
            Self::Transport { .. } | Self::ExpiredOnArrival { .. } | Self::BudgetSpent { .. } => true,
            Self::StoreUnavailable { .. } | Self::Assertion { .. } => true,
            Self::Malformed { .. }
            | Self::InvalidAccessToken { .. }
            | Self::UnsupportedTokenType { .. }
            | Self::TokenTypeMismatch { .. }
            | Self::SignInRequired { .. } => false,
        }
    }

    /// What a long-lived token source adds to this error for its callers:
    /// it retries transient failures by itself (see
    /// [`BackoffPolicy::demand_retry`](crate::BackoffPolicy::demand_retry)),
    /// so a later call may succeed. Empty for permanent errors, and not for
    /// one-shot programs, which retry nothing.
    pub fn source_retry_note(&self) -> &'static str {
        if self.is_transient() && !matches!(self, Self::BudgetSpent { .. } | Self::StoreUnavailable { .. }) {
            "; the token source retries by itself (sooner while callers wait)"
        } else {
            ""
        }
    }

    /// Sets the delay the provider asked for, on an error that carries
    /// one and has none yet (`Retry-After` as an HTTP-date, which the
    /// parser, without the wall time, leaves out).
    pub(crate) fn fill_retry_after(&mut self, delay: Option<Duration>) {
        if let Self::Provider(ProviderError { retry_after, .. }) | Self::Status { retry_after, .. } = self {
            if retry_after.is_none() {
                *retry_after = delay;
            }
        }
    }

    /// The delay the provider asked for with `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Provider(e) => e.retry_after,
            Self::Status { retry_after, .. } => *retry_after,
            Self::BudgetSpent { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }

    /// The RFC 6749 error, when the provider sent one.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            Self::Provider(e) => Some(e),
            _ => None,
        }
    }

    /// The RFC 6749 error code, when the provider sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.provider_error().map(|e| &e.code)
    }

    /// The error with every run of a secret in `redactor` removed from
    /// the text it holds (provider text and transport messages).
    pub fn redacted(self, redactor: &crate::redact::Redactor) -> Self {
        if redactor.is_empty() {
            return self;
        }
        let clean = |text: String| redactor.redact(&text);
        match self {
            Self::Provider(e) => Self::Provider(e.redacted(redactor)),
            Self::Status { status, excerpt, retry_after } => {
                Self::Status { status, excerpt: clean(excerpt), retry_after }
            }
            Self::UnsupportedTokenType { token_type } => Self::UnsupportedTokenType { token_type: clean(token_type) },
            Self::SignInRequired { reason: SignInReason::RefreshRejected(e), hint } => {
                Self::SignInRequired { reason: SignInReason::RefreshRejected(Box::new(e.redacted(redactor))), hint }
            }
            Self::Transport { message, timeout } => Self::Transport { message: clean(message), timeout },
            Self::Assertion { message } => Self::Assertion { message: clean(message) },
            other => other,
        }
    }

    /// The error worded for `endpoint` (the `Display` of a `TokenError`
    /// speaks of the token endpoint).
    pub fn about(&self, endpoint: Endpoint) -> About<'_> {
        About { error: self, endpoint }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, endpoint: Endpoint) -> fmt::Result {
        let name = endpoint.name();
        match self {
            Self::Provider(e) => e.write(f, endpoint),
            Self::Status { status, excerpt, retry_after } => {
                write!(f, "{name} answered HTTP {status} without an OAuth error body: \"{excerpt}\"")?;
                retry_after_note(f, *retry_after)?;
                write!(f, "; {}", status_hint(*status, endpoint))
            }
            Self::BodyTooLarge { status, limit } => write!(
                f,
                "{name} answered HTTP {status} with a body over the {limit}-byte cap; check the {} points at an OAuth endpoint",
                endpoint.url()
            ),
            Self::Malformed { status, reason } => write!(
                f,
                "{name} answered HTTP {status} with {reason}; check the {} points at an OAuth 2.0 {name}",
                endpoint.url()
            ),
            Self::InvalidAccessToken { reason } => write!(
                f,
                "the provider issued an access token that {reason}; it is not used. Report this to the provider"
            ),
            Self::UnsupportedTokenType { token_type } => write!(
                f,
                "the provider issued a `{token_type}` token; only Bearer tokens can be sent. Check the client's token type setting at the provider"
            ),
            Self::ExpiredOnArrival { lifetime, elapsed } => write!(
                f,
                "the token expired before it arrived (lifetime {lifetime:?}, fetch took {elapsed:?}); check the network path to the {name}"
            ),
            Self::Transport { message, timeout: true } => write!(
                f,
                "{name} timed out: {message}; check the network path to it and the {}, or raise the timeout",
                endpoint.url()
            ),
            Self::Transport { message, timeout: false } => {
                write!(f, "{name} unreachable: {message}; check the network path and the {}", endpoint.url())
            }
            Self::BudgetSpent { limit, shared, retry_in, retry_at } => {
                let counted = if *shared { " by every process sharing the token store" } else { " by this process" };
                write!(
                    f,
                    "the token budget is spent: {limit} token requests in the last 24 hours{counted} \
                     (max_fetches_per_day); the next is allowed in {}",
                    HumanDuration(*retry_in)
                )?;
                if let Some(at) = retry_at {
                    write!(f, " ({})", httpdate::fmt_http_date(*at))?;
                }
                write!(f, ". No request was sent; raise the budget if the provider allows more tokens per day")
            }
            Self::SignInRequired { reason, hint } => {
                f.write_str("sign-in required: ")?;
                match reason {
                    SignInReason::NotSignedIn => f.write_str("no user is signed in (no tokens)")?,
                    SignInReason::NoRefreshToken => {
                        f.write_str("the user's access token expired and the provider issued no refresh token")?
                    }
                    SignInReason::RefreshRejected(e) => {
                        write!(f, "the provider rejected the refresh token ({}", e.code)?;
                        if let Some(description) = &e.description {
                            write!(f, ": {description}")?;
                        }
                        f.write_str("); it expired, was revoked or was already used")?
                    }
                }
                write!(f, "; {hint}. No client credentials token is requested in the user's place")
            }
            Self::StoreUnavailable { message } => write!(
                f,
                "the token store failed ({message}) when the user's refresh token was due: it is spent only \
                 under the store's renewal lease, so that two processes never spend the same one; \
                 the source retries by itself; check the store"
            ),
            Self::Assertion { message } => {
                write!(f, "{message}; nothing was sent to the {name}. Check the key or the assertion's source")
            }
            Self::TokenTypeMismatch { expected: "DPoP", received } => write!(
                f,
                "the provider issued a token of type `{received}` where a DPoP-bound one was asked for: the client \
                 may not be set up for DPoP at the provider; enable DPoP for it there, or turn DPoP off here"
            ),
            Self::TokenTypeMismatch { received, .. } => write!(
                f,
                "the provider issued a `{received}` token, which only a client with a DPoP key can use; \
                 turn DPoP on for this client (dpop(..), authc --dpop)"
            ),
        }
    }

    /// A short, stable name of the error kind, for metrics and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Provider(_) => "provider",
            Self::Status { .. } => "status",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::Malformed { .. } => "malformed",
            Self::BudgetSpent { .. } => "budget_spent",
            Self::InvalidAccessToken { .. } => "invalid_access_token",
            Self::UnsupportedTokenType { .. } => "unsupported_token_type",
            Self::ExpiredOnArrival { .. } => "expired_on_arrival",
            Self::Transport { timeout: true, .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::SignInRequired { .. } => "sign_in_required",
            Self::StoreUnavailable { .. } => "store_unavailable",
            Self::Assertion { .. } => "assertion",
            Self::TokenTypeMismatch { .. } => "token_type_mismatch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(code: &str, status: u16) -> TokenError {
        TokenError::Provider(ProviderError {
            status,
            code: ErrorCode::parse(code),
            description: Some("Client authentication failed".into()),
            uri: None,
            retry_after: None,
        })
    }

    #[test]
    fn a_provider_error_displays_alone_as_it_does_inside_a_token_error() {
        let error = provider("invalid_client", 401);
        let alone = error.provider_error().unwrap().to_string();
        assert_eq!(alone, error.to_string());
        assert!(alone.contains("invalid_client (HTTP 401): Client authentication failed; check"), "{alone}");
        let boxed: Box<dyn std::error::Error> = Box::new(error.provider_error().unwrap().clone());
        assert_eq!(boxed.to_string(), alone);
        // Every public error of this crate is a std error with a Display.
        fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
        is_error::<ConfigError>();
        is_error::<ProviderError>();
        is_error::<TokenError>();
        is_error::<ApplyError>();
        is_error::<crate::store::StoreError>();
        is_error::<crate::store::RecordError>();
    }

    #[test]
    fn codes_round_trip() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_target",
            "temporarily_unavailable",
            "server_error",
            "access_denied",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
        }
        assert_eq!(ErrorCode::parse("access_denied"), ErrorCode::Other("access_denied".into()));
    }

    #[test]
    fn classification() {
        assert!(!provider("invalid_client", 401).is_transient());
        assert!(!provider("invalid_scope", 400).is_transient());
        assert!(!provider("invalid_request", 503).is_transient());
        assert!(provider("temporarily_unavailable", 400).is_transient());
        assert!(provider("something_new", 503).is_transient());
        assert!(!provider("something_new", 400).is_transient());
        for status in [408, 429, 500, 502, 503, 504] {
            let e = TokenError::Status { status, excerpt: String::new(), retry_after: None };
            assert!(e.is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404] {
            let e = TokenError::Status { status, excerpt: String::new(), retry_after: None };
            assert!(!e.is_transient(), "{status}");
        }
        assert!(TokenError::transport("connection refused").is_transient());
        assert!(TokenError::timeout(Duration::from_secs(30)).is_transient());
        assert_eq!(TokenError::timeout(Duration::from_secs(30)).kind(), "timeout");
        assert!(!TokenError::Malformed { status: 200, reason: "x" }.is_transient());
    }

    #[test]
    fn transport_errors_carry_their_causes_on_one_capped_line() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let outer = std::io::Error::other(inner);
        let error = TokenError::from_error(&outer, false);
        assert_eq!(error, TokenError::Transport { message: "connection refused".into(), timeout: false });
        let long = std::io::Error::other("é".repeat(400));
        let TokenError::Transport { message, .. } = TokenError::from_error(&long, true) else { panic!() };
        assert!(message.len() <= 304 && message.ends_with('…'), "{message}");
    }

    #[test]
    fn messages_say_what_to_check() {
        let text = provider("invalid_client", 401).to_string();
        assert!(text.contains("invalid_client"), "{text}");
        assert!(text.contains("HTTP 401"), "{text}");
        assert!(text.contains("Client authentication failed"), "{text}");
        assert!(text.contains("check the client id and secret"), "{text}");
        let text = TokenError::Status { status: 502, excerpt: "Bad Gateway".into(), retry_after: None }.to_string();
        assert!(text.contains("HTTP 502") && text.contains("Bad Gateway") && text.contains("retrying later"), "{text}");
        assert!(!text.contains("will be retried"), "no promise of a retry nobody makes: {text}");
        let text =
            TokenError::Status { status: 429, excerpt: String::new(), retry_after: Some(Duration::from_secs(30)) }
                .to_string();
        assert!(text.contains("Retry-After: 30 s"), "{text}");
        let revoke = provider("invalid_request", 400);
        let text = revoke.about(Endpoint::Revocation).to_string();
        assert!(text.starts_with("revocation endpoint refused the request"), "{text}");
        assert!(TokenError::Status { status: 503, excerpt: String::new(), retry_after: None }
            .source_retry_note()
            .contains("retries by itself"));
        assert_eq!(provider("invalid_client", 401).source_retry_note(), "", "a permanent error is not retried");
        let text = TokenError::Transport { message: "no answer within 5s".into(), timeout: true }.to_string();
        assert!(text.contains("timed out") && !text.contains("unreachable"), "{text}");
    }
}

/// Credentials could not be put on a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The credential set holds an OAuth bearer token, but no token was
    /// passed to `apply`. A driver bug: obtain a token from the token source
    /// first.
    #[error("these credentials need an OAuth access token but none was given; obtain one from the token source before applying them")]
    MissingToken,
    /// The request URI could not take the API key query parameter.
    #[error("the request URI cannot carry the API key query parameter; check that it is a valid absolute URI")]
    InvalidUri,
    /// The token is DPoP-bound and no proof was made for the request: a
    /// driver bug (use the `*_at` methods, which make one).
    #[error("the access token is DPoP-bound and needs a DPoP proof on every request; apply it with apply_at (or apply_headers_at), which makes one")]
    ProofNeeded,
    /// The DPoP proof could not be made (no randomness, a clock before 1970).
    #[error("{reason}")]
    Proof {
        /// What failed.
        reason: String,
    },
}
