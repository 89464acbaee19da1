//! Why a client could not be set up from an API's URL alone (the
//! metadata, the authorization server's document, the registration), in
//! words that say what to do: one type for every driver that discovers.

use super::metadata::ResourceError;
use crate::sign_in::discovery::DiscoveryError;
use crate::sign_in::registration::RegistrationError;

/// What went wrong setting a client up from an API's URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FromUrlError {
    /// The API's metadata was refused (wrong `resource`, another origin,
    /// too large, malformed).
    #[error(transparent)]
    Resource(#[from] ResourceError),
    /// The authorization server's metadata was refused.
    #[error(transparent)]
    Server(#[from] DiscoveryError),
    /// The authorization server refused to register the client, or answered
    /// something unusable.
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    /// A document could not be fetched: the network failed or the server
    /// answered an error status.
    #[error("{what} at {url} could not be fetched: {reason}; check the URL and the network path")]
    Unreachable {
        /// Which document (`the API's metadata`, ...).
        what: &'static str,
        /// Its URL.
        url: String,
        /// What happened (a status, a transport error without URL).
        reason: String,
    },
    /// The authorization server names no authorization endpoint: no user
    /// can sign in there through a browser.
    #[error("{issuer} names no authorization_endpoint: a user cannot sign in there through a browser")]
    NoAuthorizationEndpoint {
        /// The authorization server.
        issuer: String,
    },
    /// No client id was given, none was registered before, and the client
    /// may not register (or the server takes no registrations).
    #[error(
        "no client for {issuer}: give a client id, or let the client register itself ({})",
        if *.can_register { "it takes registrations: ask for one" } else { "it names no registration endpoint, so register one by hand" }
    )]
    NoClient {
        /// The authorization server.
        issuer: String,
        /// Whether its metadata names a registration endpoint.
        can_register: bool,
    },
}
