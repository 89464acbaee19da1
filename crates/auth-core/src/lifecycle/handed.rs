//! Tokens handed to a lifecycle rather than fetched by it: a token saved
//! earlier (restored), and the tokens of a user's sign-in; and the
//! snapshot a driver saves.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::Response;

use super::observations::{Observation, TokenOrigin};
use super::outputs::{FetchId, FetchReason, GrantKind, Output};
use super::{InFlight, Lifecycle, StoredToken};
use crate::error::TokenError;
use crate::publish::token::AccessToken;
use crate::secret::ExposeSecret as _;
use crate::store::unix_ms;
use crate::wire::response::{TokenResponse, MAX_LIFETIME};

impl Lifecycle {
    /// Starts from a token saved earlier (a disk cache, another process):
    /// the access token is installed if it is still usable, the refresh
    /// token kept for the next renewal. Ignored when a token is already
    /// current. Emits [`Output::TokenReady`] when the access token is used.
    pub fn handle_restore(&mut self, now: Instant, stored: StoredToken) {
        self.advance(now);
        if self.current.is_some() {
            return;
        }
        if stored.refresh_token.is_some() {
            self.refresh_token = stored.refresh_token;
            self.signed_out = None;
        }
        let Some(access_token) = stored.access_token else {
            return;
        };
        let fingerprint = crate::store::fingerprint(access_token.expose_secret());
        let restored = InFlight {
            id: FetchId(0),
            sent_at: now,
            grant: GrantKind::ClientCredentials,
            reason: FetchReason::NoToken,
            slot: None,
            scopes_added: 0,
        };
        let response = TokenResponse {
            access_token,
            // A saved lifetime is clamped like a fetched one.
            expires_in: Some(stored.expires_in.min(MAX_LIFETIME)),
            refresh_token: None,
            scope: stored.scope,
            issued_token_type: None,
        };
        match self.install(now, &restored, response) {
            Ok(token) => {
                let lifetime = token.lifetime();
                self.observed(Observation::TokenInstalled {
                    origin: TokenOrigin::Restored,
                    lifetime,
                    replaced_left: None,
                });
                self.outputs.push_back(Output::TokenReady(token));
            }
            Err(_) => self.restored_unused = Some(fingerprint),
        }
    }

    /// A sign-in obtained tokens: `response` is the token endpoint's answer
    /// to the authorization code exchange (or the device code poll) sent at
    /// `sent_at`; `wall` is the wall time at `now`. The tokens replace
    /// whatever the machine held (a refresh token of the previous user
    /// included) and go to the shared store, where they replace any older
    /// record; from then on the access token is renewed with the refresh
    /// token. Waiters get the token ([`Output::TokenReady`]).
    ///
    /// Meant for [`SourceGrant::SignIn`](crate::config::SourceGrant::SignIn) sources. A response that is not a
    /// usable token changes nothing and is returned as the error.
    pub fn handle_sign_in<B: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        wall: SystemTime,
        sent_at: Instant,
        response: &Response<B>,
    ) -> Result<Arc<AccessToken>, TokenError> {
        self.advance(now);
        let parsed = self.parse(wall, response)?;
        let signed_in = InFlight {
            id: FetchId(0),
            sent_at: sent_at.min(now),
            grant: GrantKind::ClientCredentials,
            reason: FetchReason::NoToken,
            slot: None,
            scopes_added: 0,
        };
        let replaced_left = self.current_left(now);
        let (refresh_before, signed_out_before) = (self.refresh_token.take(), self.signed_out.take());
        let token = match self.install(now, &signed_in, parsed) {
            Ok(token) => token,
            Err(error) => {
                (self.refresh_token, self.signed_out) = (refresh_before, signed_out_before);
                return Err(error);
            }
        };
        // A refresh in flight spends the previous user's token: its answer is ignored.
        self.fetch = None;
        self.release_lease();
        if let Some(store) = self.store.as_mut() {
            store.acquiring = None;
            store.awaiting = None;
            store.anchor = Some((now, wall));
            store.dead_refresh = None;
            store.claimed_elsewhere = None;
            // A sign-in replaces any record, however many renewals it saw.
            store.generation = store.generation.max(unix_ms(wall));
            store.floor = store.generation + 1;
        }
        self.write_shared(&token, signed_in.sent_at, None);
        let lifetime = token.lifetime();
        self.observed(Observation::TokenInstalled { origin: TokenOrigin::SignedIn, lifetime, replaced_left });
        self.delivered(Arc::clone(&token));
        Ok(token)
    }

    /// The current token and refresh token, to save (a disk cache). `None`
    /// when there is neither.
    pub fn snapshot(&self, now: Instant) -> Option<StoredToken> {
        let token = self.current_token(now);
        if token.is_none() && self.refresh_token.is_none() {
            return None;
        }
        Some(StoredToken {
            access_token: token.map(|t| t.value().clone()),
            expires_in: token.map_or(Duration::ZERO, |t| t.remaining(now)),
            refresh_token: self.refresh_token.clone(),
            scope: token.and_then(|t| t.scope().map(str::to_owned)),
        })
    }
}
