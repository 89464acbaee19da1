//! Errors of the blocking adapter.

use auth_core::{ApplyError, ConfigError, Endpoint, ProviderError, TokenError};

/// A transport failure below HTTP (connect, TLS, timeout, reset, a body
/// over its size cap), described without URL query, header or body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    message: String,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Other,
    Timeout,
    BodyTooLarge { status: u16, limit: usize },
}

impl TransportError {
    /// A failure.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), kind: Kind::Other }
    }

    /// A timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self { message: message.into(), kind: Kind::Timeout }
    }

    /// A response whose body is over the `limit` the reader was given.
    pub fn body_too_large(status: u16, limit: usize) -> Self {
        Self {
            message: format!("HTTP {status} with a body over the {limit}-byte cap"),
            kind: Kind::BodyTooLarge { status, limit },
        }
    }

    /// Whether it was a timeout.
    pub fn is_timeout(&self) -> bool {
        self.kind == Kind::Timeout
    }

    /// Whether the response body was over the cap.
    pub fn is_body_too_large(&self) -> bool {
        matches!(self.kind, Kind::BodyTooLarge { .. })
    }

    pub(crate) fn into_token_error(self) -> TokenError {
        match self.kind {
            Kind::BodyTooLarge { status, limit } => TokenError::BodyTooLarge { status, limit },
            Kind::Timeout => TokenError::Transport { message: self.message, timeout: true },
            Kind::Other => TokenError::Transport { message: self.message, timeout: false },
        }
    }
}

/// Why a request could not be sent with its credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No token could be obtained from the token endpoint. The token
    /// source retries transient failures by itself (sooner while callers
    /// wait); a later call may succeed.
    #[error("could not obtain an access token: {}{}", .0, .0.source_retry_note())]
    Token(TokenError),
    /// The token could not be revoked at the RFC 7009 endpoint. The tokens
    /// were forgotten all the same.
    #[error("could not revoke the token: {}", .0.about(Endpoint::Revocation))]
    Revocation(TokenError),
    /// The credentials could not be applied to the request.
    #[error("could not apply credentials: {0}")]
    Apply(ApplyError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(ConfigError),
    /// The API request failed below HTTP.
    #[error("the API request failed: {0}; check the network path to the API")]
    Transport(TransportError),
    /// The token source's thread is gone.
    #[error("the token source has stopped; create a new one")]
    Stopped,
    /// The token source's thread stopped on an internal error (a bug).
    #[error("the token source's thread failed ({0}); this is a bug, please report it; create a new token source")]
    WorkerFailed(String),
}

// Each wrapped error's message is part of this one's (with what failed
// around it), so it is not also given as the `source()`: a printed cause
// chain would show it twice.
impl From<TokenError> for Error {
    fn from(error: TokenError) -> Self {
        Self::Token(error)
    }
}

impl From<ApplyError> for Error {
    fn from(error: ApplyError) -> Self {
        Self::Apply(error)
    }
}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

impl From<TransportError> for Error {
    fn from(error: TransportError) -> Self {
        Self::Transport(error)
    }
}

impl Error {
    /// The provider's RFC 6749 error, when the token endpoint sent one.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            Self::Token(e) | Self::Revocation(e) => e.provider_error(),
            _ => None,
        }
    }

    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Token(e) | Self::Revocation(e) => e.is_transient(),
            Self::Transport(_) => true,
            Self::Stopped | Self::WorkerFailed(_) | Self::Apply(_) | Self::Config(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_cause_chain_says_each_message_once() {
        for error in [
            Error::from(TokenError::transport("connection refused")),
            Error::from(ApplyError::MissingToken),
            Error::from(ConfigError::NoRevocationUrl),
        ] {
            let mut messages = vec![error.to_string()];
            let mut next = std::error::Error::source(&error);
            while let Some(cause) = next {
                messages.push(cause.to_string());
                next = cause.source();
            }
            for pair in messages.windows(2) {
                assert!(!pair[0].contains(&pair[1]), "said twice: {messages:?}");
            }
        }
    }
}
