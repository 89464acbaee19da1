//! Why credentials could not be put on a request.

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
