//! A provider's OAuth 2.0 error (RFC 6749 §5.2): its code, its words and what to check.

use std::fmt;
use std::time::Duration;

use super::wording::{retry_after_note, Endpoint};

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
    /// The code's name when it is one of those above (not [`ErrorCode::Other`]).
    pub fn known(&self) -> Option<&'static str> {
        Some(match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::Other(_) => return None,
        })
    }

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
            Self::Other(code) => code,
            known => known.known().unwrap_or_default(),
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
    pub(super) fn redacted(mut self, redactor: &crate::redact::Redactor) -> Self {
        let clean = |text: String| redactor.redact(&text);
        if let ErrorCode::Other(code) = self.code {
            self.code = ErrorCode::Other(clean(code));
        }
        self.description = self.description.map(clean);
        self.uri = self.uri.map(clean);
        self
    }

    pub(super) fn write(&self, f: &mut fmt::Formatter<'_>, endpoint: Endpoint) -> fmt::Result {
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
/// refusal (the same text as [`TokenError::Provider`](super::TokenError::Provider)).
impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, Endpoint::Token)
    }
}

impl std::error::Error for ProviderError {}
