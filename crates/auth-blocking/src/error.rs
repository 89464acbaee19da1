//! Errors of the blocking adapter.

use auth_core::TokenError;

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

/// Why a request could not be sent with its credentials: the same error
/// as every driver's ([`SourceError`](auth_core::error::SourceError)), with
/// this driver's own failures in [`Error::Driver`].
pub type Error = auth_core::error::SourceError<BlockingFailure>;

/// The failures only the blocking driver has.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BlockingFailure {
    /// The API request failed below HTTP.
    #[error("the API request failed: {0}; check the network path to the API")]
    Transport(TransportError),
}

impl auth_core::error::DriverFailure for BlockingFailure {
    const SOURCE: &'static str = "token source";
    const WORKER: &'static str = "thread";
    const STOPPED: &'static str = "; create a new one";

    fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
        }
    }
}

impl From<TransportError> for Error {
    fn from(error: TransportError) -> Self {
        Self::Driver(BlockingFailure::Transport(error))
    }
}

#[cfg(test)]
mod tests {
    use auth_core::{ApplyError, ConfigError};

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
