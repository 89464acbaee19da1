//! The words errors share: which endpoint, a duration for people, the
//! delay a provider asked for, and what an HTTP status suggests.

use std::fmt;
use std::time::Duration;

/// Which endpoint an error came from, for its wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// The token endpoint (fetching a token).
    Token,
    /// The RFC 7009 revocation endpoint.
    Revocation,
}

impl Endpoint {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Token => "token endpoint",
            Self::Revocation => "revocation endpoint",
        }
    }

    pub(super) fn url(self) -> &'static str {
        match self {
            Self::Token => "token URL",
            Self::Revocation => "revocation URL",
        }
    }
}

/// A duration as hours, minutes and seconds (`3h 12m 5s`).
pub(super) struct HumanDuration(pub(super) Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
        match (h, m) {
            (0, 0) => write!(f, "{s}s"),
            (0, _) => write!(f, "{m}m {s}s"),
            _ => write!(f, "{h}h {m}m {s}s"),
        }
    }
}

pub(super) fn retry_after_note(f: &mut fmt::Formatter<'_>, retry_after: Option<Duration>) -> fmt::Result {
    match retry_after {
        Some(delay) => write!(f, " (Retry-After: {} s)", delay.as_secs()),
        None => Ok(()),
    }
}

pub(super) fn status_hint(status: u16, endpoint: Endpoint) -> String {
    match status {
        401 | 403 => "check the client id, secret and client authentication method".to_owned(),
        404 | 405 => format!("check the {}", endpoint.url()),
        408 | 429 => "the provider asked to slow down; retry after the delay it gave".to_owned(),
        500..=599 => "the provider failed; retrying later may succeed".to_owned(),
        _ => format!("check the {} and the request parameters", endpoint.url()),
    }
}

/// Whether an HTTP status from the token endpoint is worth retrying.
pub(crate) fn status_is_transient(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}
