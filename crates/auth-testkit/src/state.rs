//! What the provider keeps while it runs: clients' tokens, codes, device grants, faults.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::{AssertionAudience, ProviderConfig};
use crate::records::{ApiRequest, Fault, ProviderStats, TokenRequest};

/// What happened to a device code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceState {
    Pending,
    Approved,
    Denied,
}

#[derive(Debug)]
pub(crate) struct DeviceGrant {
    pub(crate) client_id: String,
    pub(crate) user_code: String,
    pub(crate) scope: Option<String>,
    pub(crate) expires_at: Instant,
    pub(crate) state: DeviceState,
    /// Polls to answer `slow_down` before anything else.
    pub(crate) slow_downs: u32,
}

#[derive(Debug)]
pub(crate) struct PendingCode {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: String,
    pub(crate) scope: Option<String>,
    pub(crate) user: String,
    /// The authentication context class the sign-in asked for (`acr_values`).
    pub(crate) acr: Option<String>,
    pub(crate) expires_at: Instant,
}

#[derive(Debug)]
pub(crate) struct Issued {
    pub(crate) client_id: String,
    /// The user a sign-in issued it for (none: the client's own token).
    pub(crate) user: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) expires_at: Option<Instant>,
    pub(crate) refresh: bool,
    pub(crate) revoked: bool,
    /// The thumbprint of the DPoP key a token is bound to.
    pub(crate) jkt: Option<String>,
    /// The thumbprint of the client certificate a token is bound to.
    pub(crate) x5t: Option<String>,
    /// The resource it was requested for (RFC 8707).
    pub(crate) resource: Option<String>,
    /// The authentication context class of the user's sign-in.
    pub(crate) acr: Option<String>,
}

impl Issued {
    /// An access token the API takes now: not a refresh token, not revoked, not expired.
    pub(crate) fn is_live_access_token(&self) -> bool {
        !self.refresh && !self.revoked && self.expires_at.is_some_and(|at| Instant::now() < at)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) remaining: u32,
    pub(crate) fault: Option<Fault>,
    pub(crate) latency: Duration,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ProviderConfig,
    pub(crate) tokens: HashMap<String, Issued>,
    pub(crate) codes: HashMap<String, PendingCode>,
    pub(crate) devices: HashMap<String, DeviceGrant>,
    pub(crate) url: String,
    pub(crate) faults: Faults,
    pub(crate) requests: Vec<TokenRequest>,
    pub(crate) api_requests: Vec<ApiRequest>,
    pub(crate) stats: ProviderStats,
    /// `jti`s of the assertions accepted so far, by issuer.
    pub(crate) seen_assertions: HashSet<String>,
    /// Why the last assertion was refused.
    pub(crate) last_refusal: Option<String>,
    /// The DPoP nonce proofs must carry (when nonces are on).
    pub(crate) dpop_nonce: String,
    /// The API's own nonce (with `api_dpop_nonce`).
    pub(crate) api_nonce: String,
    /// The mutual TLS listener's `https://127.0.0.1:<port>`, when on.
    pub(crate) mtls_url: Option<String>,
    /// Client certificates the CA issued: thumbprint → subject.
    pub(crate) issued_certificates: HashMap<String, String>,
    /// Pushed authorization requests: `request_uri` → (client, the
    /// request's query, when it expires).
    pub(crate) pushed: HashMap<String, (String, String, Instant)>,
}

pub(crate) type Shared = Arc<Mutex<Inner>>;

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    // A panic in a handler cannot leave the maps half-updated in a way that
    // matters to a test provider: keep serving.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which server of the provider answers, for its DPoP nonce.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Server {
    Token,
    Api,
}

impl Inner {
    /// The nonce `server`'s proofs must carry (when nonces are on).
    pub(crate) fn nonce_of(&self, server: Server) -> &str {
        match server {
            Server::Api if self.config.api_dpop_nonce => &self.api_nonce,
            _ => &self.dpop_nonce,
        }
    }
}

/// Every this many tokens kept, expired access tokens are let go.
const PRUNE_EVERY: usize = 10_000;

impl Inner {
    /// Keeps an issued token. Expired access tokens are let go from time
    /// to time (the API answers an unknown token as it answers an expired
    /// one), so that a long-running `authc serve` holds only what is live,
    /// and refresh tokens (a rotated one is kept, revoked, to detect reuse).
    pub(crate) fn keep_token(&mut self, value: String, issued: Issued) {
        if self.tokens.len() % PRUNE_EVERY == PRUNE_EVERY - 1 {
            let now = Instant::now();
            self.tokens.retain(|_, issued| issued.refresh || issued.expires_at.is_none_or(|at| at > now));
        }
        self.tokens.insert(value, issued);
    }

    pub(crate) fn issuer(&self) -> String {
        self.config.issuer.clone().unwrap_or_else(|| self.url.clone())
    }

    /// The `aud` values assertions may name.
    pub(crate) fn assertion_audiences(&self) -> Vec<String> {
        // The token endpoint, or its mutual TLS alias.
        let mut token_urls = vec![format!("{}/oauth/token", self.url)];
        token_urls.extend(self.mtls_url.as_ref().map(|url| format!("{url}/oauth/token")));
        match self.config.assertion_audience {
            AssertionAudience::IssuerOrTokenUrl => [vec![self.issuer()], token_urls].concat(),
            AssertionAudience::Issuer => vec![self.issuer()],
            AssertionAudience::TokenUrl => token_urls,
        }
    }
}
