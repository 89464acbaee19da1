//! What goes into a lifecycle and what comes out: fetches to send, tokens
//! and errors for callers, the answers to a 401, and the tokens a driver
//! saves and restores.

#[cfg(doc)]
use super::Lifecycle;
#[cfg(doc)]
use crate::config::SourceGrant;
#[cfg(doc)]
use crate::store::StoreConfig;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::TokenError;
use crate::publish::token::{AccessToken, Generation};
use crate::secret::{AccessTokenValue, RefreshToken};
use crate::store::{StoreError, StoreRequest};

/// Identifies one token fetch, so that a late answer to an abandoned fetch
/// cannot be mistaken for the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FetchId(pub(super) u64);

impl FetchId {
    /// The number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The grant a fetch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantKind {
    /// `client_credentials`.
    ClientCredentials,
    /// `refresh_token`.
    RefreshToken,
    /// The RFC 7523 JWT bearer grant (a [`SourceGrant::JwtBearer`] source).
    JwtBearer,
    /// The RFC 8693 token exchange (a [`SourceGrant::TokenExchange`] source).
    TokenExchange,
}

/// Why a fetch was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchReason {
    /// No usable token existed and a caller wanted one.
    NoToken,
    /// The token reached its renewal point; it is still served meanwhile.
    Renewal,
    /// The API answered 401 to the current token.
    Unauthorized,
}

/// A token request to send. Send it, then report the outcome with
/// [`Lifecycle::handle_fetch_response`] or [`Lifecycle::handle_fetch_failed`]
/// with the same `id`.
///
/// Its `Debug` shows the id, grant, reason, method, URI and header names;
/// never the body or a header value.
#[non_exhaustive]
pub struct FetchRequest {
    /// The fetch's id.
    pub id: FetchId,
    /// Its grant.
    pub grant: GrantKind,
    /// Why it was started.
    pub reason: FetchReason,
    /// The request. Its body may hold the client secret or refresh token:
    /// do not log it.
    pub request: http::Request<Vec<u8>>,
}

impl std::fmt::Debug for FetchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("FetchRequest");
        out.field("id", &self.id).field("grant", &self.grant).field("reason", &self.reason);
        crate::wire::request::describe_request(&mut out, &self.request);
        out.finish_non_exhaustive()
    }
}

/// What the machine asks the driver to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Output {
    /// Send this token request.
    Fetch(FetchRequest),
    /// A new token: publish it for readers and hand it to every waiter.
    TokenReady(Arc<AccessToken>),
    /// A fetch failed and will be retried after a backoff: hand the error to
    /// every waiter. A still-valid token, if any, stays published.
    Failed(TokenError),
    /// Carry out this operation on the shared token store (only with a
    /// [`StoreConfig`]) and answer with [`Lifecycle::handle_store`].
    Store(StoreRequest),
    /// This token must no longer be sent: unpublish it.
    TokenWithdrawn {
        /// The token's generation.
        generation: Generation,
        /// Why.
        reason: WithdrawReason,
    },
    /// The shared store stopped answering (the first failure after a
    /// success, with its error) or answers again: log it. Emitted once per
    /// change, so that an outage is said once, not per operation.
    StoreHealth {
        /// Whether the store answers now.
        available: bool,
        /// The failure that made it unavailable.
        error: Option<StoreError>,
    },
}

/// Why a token was withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithdrawReason {
    /// It reached `usable_until` (expiry minus the safety margin).
    Expired,
    /// The API answered 401 to it.
    Rejected,
    /// The driver discarded it ([`Lifecycle::handle_discard`]).
    Discarded,
    /// The API wants scopes it was not asked with, which the source now
    /// asks for ([`Lifecycle::handle_step_up`]).
    StepUp,
}

/// The answer to [`Lifecycle::handle_token_wanted`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Want {
    /// Use this token now.
    Ready(Arc<AccessToken>),
    /// A fetch is in flight: wait for the next [`Output::TokenReady`] or
    /// [`Output::Failed`].
    Wait,
    /// No usable token, and the machine is backing off after this error:
    /// fail the call now.
    Failed(TokenError),
}

/// The answer to [`Lifecycle::handle_unauthorized`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unauthorized {
    /// It was the current token: it is withdrawn and a new one is being
    /// fetched. Replay the request (once) with the next token.
    Invalidated,
    /// That token was already replaced or withdrawn. Replay the request
    /// (once) with the current token.
    AlreadyReplaced,
    /// That token was itself fetched because of a 401 and the API refused
    /// it before accepting any request with it: the API rejects new tokens
    /// (wrong audience, scope or API key?). No fetch before `until`; do not
    /// replay, return the 401 marked [`RejectedAfterRenewal`].
    Suppressed {
        /// When a 401 may invalidate this token again.
        until: Instant,
    },
}

/// The mark on a 401 that a renewed token did not cure: drivers put it in
/// the response's extensions (`response.extensions().get::<RejectedAfterRenewal>()`)
/// when a token fetched because of a 401 is refused before the API accepted
/// any request with it: the replay of a request with the token fetched for
/// its own 401 is answered 401 ([`Verdict::RejectedAfterRenewal`]), or the
/// lifecycle held a renewal back ([`Unauthorized::Suppressed`]). The
/// provider issues tokens this API does not accept, and fetching more will
/// not help. A 401 to a token the API had accepted is a revocation and is
/// not marked. Its `Display` says what to check.
///
/// [`Verdict::RejectedAfterRenewal`]: crate::publish::replay::Verdict::RejectedAfterRenewal
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RejectedAfterRenewal;

impl RejectedAfterRenewal {
    /// What the mark means and what to check, for logs and error output.
    pub const HINT: &'static str = "the API rejected (401) a new token, fetched because of a 401, before \
         accepting any request with it: \
         the provider issues tokens this API does not accept; check the audience, scope and resource \
         the token is requested with, the API key, and that the token URL and the API are the same \
         environment (sandbox or production)";
}

impl std::fmt::Display for RejectedAfterRenewal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::HINT)
    }
}

impl Unauthorized {
    /// Whether the request that got the 401 should be replayed.
    pub fn should_replay(self) -> bool {
        !matches!(self, Self::Suppressed { .. })
    }
}

/// A token saved outside the machine, to restore with
/// [`Lifecycle::handle_restore`] or as taken by [`Lifecycle::snapshot`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoredToken {
    /// The access token, if one is worth keeping.
    pub access_token: Option<AccessTokenValue>,
    /// Its remaining lifetime.
    pub expires_in: Duration,
    /// The refresh token, if any.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope, if known.
    pub scope: Option<String>,
}

impl StoredToken {
    /// A saved token: the access token (if any) with its remaining
    /// lifetime, the refresh token and scope (if any).
    pub fn new(
        access_token: Option<AccessTokenValue>,
        expires_in: Duration,
        refresh_token: Option<RefreshToken>,
        scope: Option<String>,
    ) -> Self {
        Self { access_token, expires_in, refresh_token, scope }
    }
}
