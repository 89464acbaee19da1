//! Errors of the async driver and the layer.

use auth_core::{ApplyError, ConfigError, ErrorCode, ProviderError, TokenError};

/// A boxed error, as tower services use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be given its credentials.
///
/// Returned (boxed) by the [`Auth`](crate::Auth) service and by
/// [`TokenSource::token`](crate::TokenSource::token). Never holds a secret:
/// the provider's `error` and `error_description` are kept, the client
/// secret and tokens are not.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token could be obtained from the token endpoint.
    #[error("could not obtain an access token: {0}")]
    Token(#[from] TokenError),
    /// The credentials could not be applied to the request.
    #[error("could not apply credentials: {0}")]
    Apply(#[from] ApplyError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A token source was created outside a tokio runtime.
    #[error("a TokenSource must be created inside a tokio runtime (it spawns its worker task there)")]
    NoRuntime,
    /// The token source's worker has stopped (its runtime shut down).
    #[error("the token source has stopped (its tokio runtime shut down); create a new one")]
    Stopped,
}

impl AuthError {
    /// The provider's RFC 6749 error, when the token endpoint sent one.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            Self::Token(e) => e.provider_error(),
            _ => None,
        }
    }

    /// The provider's RFC 6749 error code, when it sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.provider_error().map(|e| &e.code)
    }

    /// Whether retrying later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Token(e) => e.is_transient(),
            Self::Stopped => true,
            Self::Apply(_) | Self::Config(_) | Self::NoRuntime => false,
        }
    }
}
