//! A client's own grant asking for more scopes when an API wants them
//! ([`SourceConfigBuilder::step_up_scopes`](crate::SourceConfigBuilder::step_up_scopes)).
//!
//! The scopes added are asked for from the next token on, by every grant
//! of the source (its own, a refresh). The store key stays the
//! configuration's: peers that need no more use a token with more, and a
//! token asked with fewer (a peer's, one in flight when the scopes were
//! added) is dropped here once when the API refuses it for them. A token
//! asked with every scope added is never dropped for them: the server did
//! not grant them, and asking again would loop.

use std::sync::Arc;
use std::time::Instant;

use super::outputs::{FetchReason, WithdrawReason};
use super::Lifecycle;

impl Lifecycle {
    /// The API refused the current token with a 403 `insufficient_scope`
    /// naming `needed` (a driver reads them from the
    /// [`StepUp`](crate::resource::step_up::StepUp) it marks the answer
    /// with). When the configuration allows every scope named that it does
    /// not ask for yet, they are asked for from now on; a current token
    /// asked without them is dropped (here only, not from the store), so
    /// that the next want fetches one. Returns whether the next token is
    /// asked with more than the refused one: `false` for a user's source
    /// (the user must sign in for more), for a scope the configuration does
    /// not allow, and for a token asked with every scope already.
    pub fn handle_step_up(&mut self, now: Instant, needed: &[String]) -> bool {
        self.advance(now);
        if !self.config.allows_step_up(needed) {
            return false;
        }
        let new: Vec<String> = needed.iter().filter(|s| !self.config.scopes().contains(s)).cloned().collect();
        if !new.is_empty() {
            self.config = Arc::new(self.config.with_scopes_added(&new));
            self.scopes_added += new.len();
        }
        let stale = self.current.as_ref().is_some_and(|current| current.scopes_added < self.scopes_added);
        if stale {
            self.withdraw(WithdrawReason::StepUp);
            if self.fetch.is_none() && self.backoff.is_none() && !self.busy() {
                self.start_fetch(now, FetchReason::Renewal);
            }
        }
        stale || !new.is_empty()
    }

    /// The scope `token` was asked with, for its store record, when step-ups
    /// added scopes and it was asked with all of them; `None` otherwise.
    pub(super) fn asked_scope(&self, token: Option<&crate::publish::token::AccessToken>) -> Option<String> {
        let current = self.current.as_ref().filter(|c| token.is_some_and(|t| t.generation == c.token.generation))?;
        (self.scopes_added > 0 && current.scopes_added == self.scopes_added).then(|| self.config.scopes().join(" "))
    }

    /// How many of the scopes added a stored token's granted `scope` holds
    /// all of: every one, or none (unknown).
    pub(super) fn scopes_granted(&self, scope: Option<&str>) -> usize {
        let added = &self.config.scopes()[self.config.scopes().len() - self.scopes_added..];
        match scope {
            Some(granted) if added.iter().all(|s| granted.split(' ').any(|g| g == s)) => self.scopes_added,
            _ => 0,
        }
    }
}
