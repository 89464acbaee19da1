//! Why a token could not be obtained (or revoked), worded for the endpoint
//! that refused it.

use std::fmt;
use std::time::Duration;

use super::config::describe_chain;
use super::provider::{ErrorCode, ProviderError};
use super::wording::{retry_after_note, status_hint, status_is_transient, Endpoint, HumanDuration};

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
    /// Another process sharing the token store claimed the refresh token
    /// to renew the tokens, and has not written the new ones yet: a
    /// refresh token is spent by whoever claimed it alone (with rotation, a
    /// second use looks like theft to the provider, which may end the
    /// user's session). Retried by the source; the new tokens are taken
    /// from the store once the claimant writes them.
    RefreshClaimed {
        /// The claimant's lease owner, first 8 hex digits (it names the
        /// process in its own logs).
        by: String,
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
    /// A token supplied from outside (a subject or actor token of a token
    /// exchange, a client assertion read from a file or a variable) could
    /// not be used when the request was due: unreadable, empty, not a JWT
    /// where one is needed, or expired. Nothing was sent. Retried by the
    /// source (whatever writes it may renew it).
    Supplied {
        /// Which token and where it comes from (`the subject token (file
        /// /var/run/secrets/token)`), never its value.
        what: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A token exchange (RFC 8693) answer whose `issued_token_type` is not
    /// the one asked for, or missing. Nothing was installed.
    IssuedTokenType {
        /// The type asked for (`requested_token_type`, or an access token).
        expected: String,
        /// What the server said (sanitized), or `(none)`.
        received: String,
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
    /// Another process sharing the token store spent the refresh token and
    /// the provider rejected it (`invalid_grant`).
    RefreshRejectedElsewhere,
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
            Self::StoreUnavailable { .. } | Self::RefreshClaimed { .. } | Self::Assertion { .. } => true,
            Self::Supplied { .. } => true,
            Self::IssuedTokenType { .. } => false,
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
            Self::IssuedTokenType { expected, received } => {
                Self::IssuedTokenType { expected, received: clean(received) }
            }
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
                    SignInReason::RefreshRejectedElsewhere => f.write_str(
                        "the provider rejected the refresh token when another process sharing the token store spent it",
                    )?,
                }
                write!(f, "; {hint}. No client credentials token is requested in the user's place")
            }
            Self::StoreUnavailable { message } => write!(
                f,
                "the token store failed ({message}) when the refresh token was due: it is spent only \
                 once this process has claimed it in the store, so that two processes never spend the same one; \
                 the source retries by itself; check the store"
            ),
            Self::RefreshClaimed { by } => write!(
                f,
                "another process sharing the token store (lease owner {by}) is renewing with the user's refresh \
                 token and has not written the new tokens yet; it is not spent here too, since a second use can \
                 end the user's session. The new tokens are taken from the store once that process writes them; \
                 if this persists, it stopped mid-renewal: sign in again"
            ),
            Self::Assertion { message } => {
                write!(f, "{message}; nothing was sent to the {name}. Check the key or the assertion's source")
            }
            Self::Supplied { what, reason } => write!(
                f,
                "{what} could not be used: {reason}; nothing was sent to the {name}. Check that whatever provides \
                 it (the platform that writes the file, the variable's owner) still renews it"
            ),
            Self::IssuedTokenType { expected, received } => write!(
                f,
                "the {name} issued a token of type `{received}` where `{expected}` was asked for (RFC 8693 \
                 issued_token_type); it was not used. Check requested_token_type and the exchange policy at the \
                 provider"
            ),
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
            Self::RefreshClaimed { .. } => "refresh_claimed",
            Self::Assertion { .. } => "assertion",
            Self::Supplied { .. } => "supplied_token",
            Self::IssuedTokenType { .. } => "issued_token_type",
            Self::TokenTypeMismatch { .. } => "token_type_mismatch",
        }
    }
}
