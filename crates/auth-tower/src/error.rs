//! Errors of the async driver and the layer.

use std::time::Duration;

use auth_core::{ApplyError, ConfigError, Endpoint, ErrorCode, ProviderError, TokenError};

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
    /// No token could be obtained from the token endpoint. The token
    /// source keeps retrying transient failures (with backoff, sooner while
    /// callers wait); a later call may succeed.
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
    /// A token source was created outside a tokio runtime.
    #[error("a TokenSource must be created inside a tokio runtime (it spawns its worker task there)")]
    NoRuntime,
    /// The token source's worker has stopped because the tokio runtime it
    /// ran on shut down.
    #[error("the token source has stopped: the tokio runtime it was created in has shut down; create a new TokenSource in a runtime that outlives its use")]
    Stopped,
    /// The token source's worker stopped on an internal error (a bug).
    #[error("the token source's worker failed ({0}); this is a bug, please report it; create a new TokenSource")]
    WorkerFailed(String),
    /// The token source did not answer in time, and its worker never took
    /// the request up: the runtime it was created in is not being driven.
    #[error(
        "the token source did not answer within {waited:?}: the tokio runtime it was created in is not running its tasks \
         (a current-thread runtime that is idle or blocked?); create the TokenSource in a runtime that keeps running \
         (a multi-thread runtime, or the one the callers use)"
    )]
    NotDriven {
        /// How long the caller waited.
        waited: Duration,
    },
}

// Each wrapped error's message is part of this one's (with what failed
// around it), so it is not also given as the `source()`: a printed cause
// chain would show it twice.
impl From<TokenError> for AuthError {
    fn from(error: TokenError) -> Self {
        Self::Token(error)
    }
}

impl From<ApplyError> for AuthError {
    fn from(error: ApplyError) -> Self {
        Self::Apply(error)
    }
}

impl From<ConfigError> for AuthError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

impl AuthError {
    /// The provider's RFC 6749 error, when the token endpoint sent one.
    pub fn provider_error(&self) -> Option<&ProviderError> {
        match self {
            Self::Token(e) | Self::Revocation(e) => e.provider_error(),
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
            Self::Token(e) | Self::Revocation(e) => e.is_transient(),
            Self::NotDriven { .. } => true,
            Self::Stopped | Self::WorkerFailed(_) => false,
            Self::Apply(_) | Self::Config(_) | Self::NoRuntime => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::sign_in::SignInError;

    /// The messages of `error` and its sources, outermost first.
    fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut messages = vec![error.to_string()];
        let mut next = error.source();
        while let Some(cause) = next {
            messages.push(cause.to_string());
            next = cause.source();
        }
        messages
    }

    #[test]
    fn a_printed_cause_chain_says_each_message_once() {
        let errors: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(AuthError::from(TokenError::transport("connection refused"))),
            Box::new(AuthError::from(ApplyError::MissingToken)),
            Box::new(AuthError::from(ConfigError::NoRevocationUrl)),
            Box::new(SignInError::from(AuthError::from(TokenError::transport("connection refused")))),
            Box::new(SignInError::from(auth_core::authorize::CallbackError::StateMismatch)),
        ];
        for error in &errors {
            let messages = chain(error.as_ref());
            for pair in messages.windows(2) {
                assert!(!pair[0].contains(&pair[1]), "said twice: {messages:?}");
            }
        }
        // The wrapper keeps what failed around the cause.
        let token = AuthError::from(TokenError::transport("connection refused"));
        assert!(token.to_string().starts_with("could not obtain an access token: "), "{token}");
        assert!(token.source().is_none());
    }
}
