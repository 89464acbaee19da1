//! What the lifecycle decided and what came of it, for operators: each
//! token request and its outcome, each token that became current, the
//! budget's refusals, 401s, leases and waits for peers. Observed here,
//! once, for every driver; a driver turns them into metrics (and counts
//! what only it sees: callers' waits, replays, store operations' times).
//!
//! Off by default ([`Lifecycle::observe`]): a lifecycle nobody observes
//! keeps nothing. None of them is made on the path of a request that has
//! a settled token, and none holds a secret.

use std::time::{Duration, Instant};

use super::outputs::{FetchReason, GrantKind};
use super::Lifecycle;
use crate::error::TokenError;

/// One thing the lifecycle decided or saw, for operators (metrics): each
/// token request and its outcome, each token that became current, the
/// budget's refusals, 401s, leases and waits for peers. Made only while
/// the lifecycle is observed ([`Lifecycle::observe`]), never on the path
/// of a request that has a settled token, and none holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observation {
    /// A token request ended: its answer arrived or it failed below HTTP.
    TokenRequest {
        /// Why it was sent.
        reason: FetchReason,
        /// Its grant.
        grant: GrantKind,
        /// What came of it.
        outcome: RequestOutcome,
        /// From the request being handed to the driver to its end.
        took: Duration,
    },
    /// A token became current.
    TokenInstalled {
        /// Where it came from.
        origin: TokenOrigin,
        /// How long it was granted for (from when it was requested).
        lifetime: Duration,
        /// What was left of the usable life of the token it replaced
        /// (`None`: there was none, or it had been withdrawn).
        replaced_left: Option<Duration>,
    },
    /// No token request was sent: the fetch budget is spent.
    BudgetRefused {
        /// Counted in the shared store (otherwise by this process).
        shared: bool,
    },
    /// A token request was counted against the fetch budget, or refused
    /// because it is spent (`spent` is then the limit).
    Budget {
        /// The requests counted in the window: the fleet's when `shared`
        /// (the store counted it), this process's otherwise.
        spent: u32,
        /// The budget: requests allowed in the window.
        limit: u32,
        /// Counted in the shared store.
        shared: bool,
    },
    /// The API answered 401 to a token of this source.
    Unauthorized {
        /// What the lifecycle made of it.
        outcome: UnauthorizedOutcome,
    },
    /// A renewal lease was asked of the shared store.
    Lease {
        /// Whether this source took it (`false`: a peer holds it).
        won: bool,
    },
    /// A wait for a peer's token ran out: this source fetches on its own.
    PeerWaitExpired,
    /// The refresh token due to be spent was claimed by a peer: its new
    /// tokens are awaited instead.
    ClaimWait,
}

/// What came of a token request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestOutcome {
    /// A token was issued.
    Granted,
    /// The provider refused with an RFC 6749 error code.
    Refused {
        /// The code (`invalid_client`, `invalid_grant`, ...); `other` for a
        /// code outside RFC 6749 and its extensions (provider text is
        /// neither bounded nor trusted: it makes no metric attribute).
        code: &'static str,
    },
    /// Anything else: a status without an OAuth error, a transport
    /// failure, an unusable answer.
    Failed {
        /// [`TokenError::kind`].
        kind: &'static str,
        /// Whether retrying later may help.
        transient: bool,
    },
}

impl RequestOutcome {
    /// The outcome `error` is.
    pub fn of(error: &TokenError) -> Self {
        match (error, error.code()) {
            (TokenError::Provider(_), Some(code)) => Self::Refused { code: code.known().unwrap_or("other") },
            _ => Self::Failed { kind: error.kind(), transient: error.is_transient() },
        }
    }

    /// A short name: `ok`, `refused`, `transient` or `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Granted => "ok",
            Self::Refused { .. } => "refused",
            Self::Failed { transient: true, .. } => "transient",
            Self::Failed { .. } => "failed",
        }
    }
}

/// Where a current token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenOrigin {
    /// This source's token request.
    Fetched,
    /// A peer's, taken from the shared store.
    Adopted,
    /// A user's sign-in.
    SignedIn,
    /// A token saved earlier.
    Restored,
}

/// What a 401 led to ([`Unauthorized`](super::Unauthorized) without its
/// instant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnauthorizedOutcome {
    /// The current token was withdrawn and a new one is on its way.
    Invalidated,
    /// That token had been replaced already.
    AlreadyReplaced,
    /// The fetch-loop guard kept the token: no new one yet.
    Suppressed,
}

impl Lifecycle {
    /// Turns observations on or off (off by default; turning them off
    /// forgets those not yet taken). Take them with
    /// [`Lifecycle::poll_observation`] after each input, as outputs.
    pub fn observe(&mut self, on: bool) {
        self.observing = on;
        if !on {
            self.observations.clear();
        }
    }

    /// The next observation, while observing.
    pub fn poll_observation(&mut self) -> Option<Observation> {
        self.observations.pop_front()
    }

    /// Notes `observation` when observing.
    pub(super) fn observed(&mut self, observation: Observation) {
        if self.observing {
            self.observations.push_back(observation);
        }
    }

    /// What is left of the current token's usable life at `now`.
    pub(super) fn current_left(&self, now: Instant) -> Option<Duration> {
        self.current.as_ref().map(|c| c.token.usable_until.saturating_duration_since(now))
    }
}
