//! The error a driver's token source gives its callers: one type for every
//! driver, with the failures all of them share and a variant for the
//! driver's own ([`DriverFailure`]).

use std::fmt;

use super::{ApplyError, ConfigError, Endpoint, ErrorCode, ProviderError, TokenError};

/// The failures only one driver has (a runtime that is not there, a
/// transport below HTTP), and the words that driver's callers are told
/// when its source has stopped.
pub trait DriverFailure: fmt::Display + fmt::Debug + Clone + Send + Sync + 'static {
    /// The source's type, as the advice names it ("create a new …").
    const SOURCE: &'static str;
    /// What runs the source's lifecycle ("worker", "thread").
    const WORKER: &'static str;
    /// Why a stopped source stopped and what to do, after "the token
    /// source has stopped".
    const STOPPED: &'static str;

    /// Whether retrying later may help.
    fn is_transient(&self) -> bool;
}

/// Why a request could not be given its credentials, from a driver whose
/// own failures are `D`. Each driver names it: `auth_tower::AuthError`,
/// `auth_blocking::Error`. Never holds a secret: the provider's `error`
/// and `error_description` are kept, the client secret and tokens are not.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SourceError<D> {
    /// No token could be obtained from the token endpoint. The token
    /// source keeps retrying transient failures (with backoff, sooner while
    /// callers wait); a later call may succeed.
    Token(TokenError),
    /// The token could not be revoked at the RFC 7009 endpoint. The tokens
    /// were forgotten all the same.
    Revocation(TokenError),
    /// The credentials could not be applied to the request.
    Apply(ApplyError),
    /// The configuration is invalid.
    Config(ConfigError),
    /// The token source has stopped (its worker is gone); create a new one.
    Stopped,
    /// The token source's worker stopped on an internal error (a bug):
    /// what it said.
    WorkerFailed(String),
    /// A failure of the driver's own.
    Driver(D),
}

impl<D: DriverFailure> SourceError<D> {
    /// Why no answer will come from a worker that is gone: what it said if
    /// it failed, [`SourceError::Stopped`] otherwise.
    pub fn stopped(failure: Option<&str>) -> Self {
        match failure {
            Some(message) => Self::WorkerFailed(message.to_owned()),
            None => Self::Stopped,
        }
    }

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
            Self::Driver(failure) => failure.is_transient(),
            Self::Apply(_) | Self::Config(_) | Self::Stopped | Self::WorkerFailed(_) => false,
        }
    }
}

impl<D: DriverFailure> fmt::Display for SourceError<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Token(e) => write!(f, "could not obtain an access token: {e}{}", e.source_retry_note()),
            Self::Revocation(e) => write!(f, "could not revoke the token: {}", e.about(Endpoint::Revocation)),
            Self::Apply(e) => write!(f, "could not apply credentials: {e}"),
            Self::Config(e) => write!(f, "invalid configuration: {e}"),
            Self::Stopped => write!(f, "the token source has stopped{}", D::STOPPED),
            Self::WorkerFailed(message) => write!(
                f,
                "the token source's {} failed ({message}); this is a bug, please report it; create a new {}",
                D::WORKER,
                D::SOURCE
            ),
            Self::Driver(failure) => fmt::Display::fmt(failure, f),
        }
    }
}

// Each wrapped error's message is part of this one's (with what failed
// around it), so it is not also given as the `source()`: a printed cause
// chain would show it twice.
impl<D: DriverFailure> std::error::Error for SourceError<D> {}

impl<D> From<TokenError> for SourceError<D> {
    fn from(error: TokenError) -> Self {
        Self::Token(error)
    }
}

impl<D> From<ApplyError> for SourceError<D> {
    fn from(error: ApplyError) -> Self {
        Self::Apply(error)
    }
}

impl<D> From<ConfigError> for SourceError<D> {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct Gone;

    impl fmt::Display for Gone {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("the network is gone")
        }
    }

    impl DriverFailure for Gone {
        const SOURCE: &'static str = "TestSource";
        const WORKER: &'static str = "loop";
        const STOPPED: &'static str = "; start another";

        fn is_transient(&self) -> bool {
            true
        }
    }

    #[test]
    fn messages_classification_and_chains() {
        let token: SourceError<Gone> = TokenError::transport("connection refused").into();
        assert!(token.to_string().starts_with("could not obtain an access token: "), "{token}");
        assert!(token.is_transient());
        assert!(std::error::Error::source(&token).is_none(), "said once, not again as the source");
        let config: SourceError<Gone> = ConfigError::NoRevocationUrl.into();
        assert!(config.to_string().starts_with("invalid configuration: "), "{config}");
        assert!(!config.is_transient());
        let apply: SourceError<Gone> = ApplyError::MissingToken.into();
        assert!(apply.to_string().starts_with("could not apply credentials: "), "{apply}");
        let stopped = SourceError::<Gone>::stopped(None);
        assert_eq!(stopped.to_string(), "the token source has stopped; start another");
        let failed = SourceError::<Gone>::stopped(Some("index out of bounds"));
        assert_eq!(
            failed.to_string(),
            "the token source's loop failed (index out of bounds); this is a bug, please report it; create a new TestSource"
        );
        assert!(!failed.is_transient());
        let own = SourceError::Driver(Gone);
        assert_eq!(own.to_string(), "the network is gone");
        assert!(own.is_transient());
        assert!(own.provider_error().is_none() && own.code().is_none());
    }
}
