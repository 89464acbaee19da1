//! Errors of the async driver and the layer.

use std::time::Duration;

/// A boxed error, as tower services use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request could not be given its credentials.
///
/// Returned (boxed) by the [`Auth`](crate::Auth) service and by
/// [`TokenSource::token`](crate::TokenSource::token). Never holds a secret:
/// the provider's `error` and `error_description` are kept, the client
/// secret and tokens are not. The same error as every driver's
/// ([`SourceError`](auth_core::error::SourceError)), with this driver's own
/// failures in [`AuthError::Driver`].
pub type AuthError = auth_core::error::SourceError<TowerFailure>;

/// The failures only the async driver has.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TowerFailure {
    /// A token source was created outside a tokio runtime.
    #[error("a TokenSource must be created inside a tokio runtime (it spawns its worker task there)")]
    NoRuntime,
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

impl auth_core::error::DriverFailure for TowerFailure {
    const SOURCE: &'static str = "TokenSource";
    const WORKER: &'static str = "worker";
    const STOPPED: &'static str = ": the tokio runtime it was created in has shut down; \
         create a new TokenSource in a runtime that outlives its use";

    fn is_transient(&self) -> bool {
        matches!(self, Self::NotDriven { .. })
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use auth_core::{ApplyError, ConfigError, TokenError};

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
            Box::new(SignInError::from(auth_core::sign_in::authorize::CallbackError::StateMismatch)),
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
