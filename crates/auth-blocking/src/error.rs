//! Errors of the blocking adapter.

use auth_core::{ApplyError, ConfigError, ProviderError, TokenError};

/// A transport failure below HTTP (connect, TLS, timeout, reset, a body
/// over its size cap), described without URL query, header or body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    message: String,
    timeout: bool,
}

impl TransportError {
    /// A failure.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), timeout: false }
    }

    /// A timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self { message: message.into(), timeout: true }
    }

    /// Whether it was a timeout.
    pub fn is_timeout(&self) -> bool {
        self.timeout
    }

    pub(crate) fn into_token_error(self) -> TokenError {
        TokenError::Transport { message: self.message, timeout: self.timeout }
    }
}

/// Why a request could not be sent with its credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No token could be obtained from the token endpoint.
    #[error("could not obtain an access token: {0}")]
    Token(#[from] TokenError),
    /// The credentials could not be applied to the request.
    #[error("could not apply credentials: {0}")]
    Apply(#[from] ApplyError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The API request failed below HTTP.
    #[error("the API request failed: {0}; check the network path to the API")]
    Transport(#[from] TransportError),
    /// The token source's thread is gone (it panicked).
    #[error("the token source has stopped; create a new one")]
    Stopped,
}

impl Error {
    /// The provider's RFC 6749 error, when the token endpoint sent one.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            Self::Token(e) => e.provider_error(),
            _ => None,
        }
    }

    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Token(e) => e.is_transient(),
            Self::Transport(_) | Self::Stopped => true,
            Self::Apply(_) | Self::Config(_) => false,
        }
    }
}
