//! A source whose tokens are made from another's (a chained token
//! exchange: the inner source's token is the subject): when the inner
//! token changes, this source renews.

use std::time::Instant;

use super::outputs::FetchReason;
use super::Lifecycle;
use crate::config::SourceGrant;

impl Lifecycle {
    /// The token this source's tokens are made from changed (the inner
    /// source of a chained exchange renewed): a renewal starts now unless
    /// one is under way or a backoff holds, and the current token stays in
    /// use until the new one arrives. A refresh token from the exchange of
    /// the old subject is dropped: the new subject is exchanged. Without a
    /// current token, nothing: the next want fetches with the new subject.
    pub fn handle_upstream_changed(&mut self, now: Instant) {
        self.advance(now);
        // A user's tokens are the user's: no other source's token makes them.
        if self.current.is_none() || self.config.grant() == SourceGrant::SignIn {
            return;
        }
        self.refresh_token = None;
        if !self.busy() && self.backoff.is_none() {
            self.start_fetch(now, FetchReason::Renewal);
        }
    }
}
