//! Which users' sign-ins the token store holds for one token URL and
//! client id, so that `authc logout` finds them whatever `--scope` it is
//! given.
//!
//! A sign-in's tokens are stored under their cache key, which holds the
//! scopes, audience and resources they were asked for: a logout with other
//! scopes than the login's would look under another key, find nothing, and
//! leave the tokens usable. So `authc login` also notes the sign-in's
//! [`Scoping`] in an index kept in the same store, under a key of its own
//! (the token URL, the client id and a marker; no scope). The index holds
//! no secret: the options a login was given, never a token.

use std::time::SystemTime;

use auth_core::store::{unix_ms, Envelope, StoreAnswer, StoreOp, REFRESH_TOKEN_RETENTION};
use auth_core::{CacheKey, SourceConfig, SourceGrant};
use zeroize::Zeroizing;

use crate::failure::Failure;
use crate::settings::{Scoping, Settings};
use crate::store::Store;

/// The index's fingerprint (an envelope's compare-and-delete token).
const FINGERPRINT: &str = "authc-sign-in-index-v1";

/// At most this many sign-ins are noted per client (the oldest go).
const MAX_ENTRIES: usize = 32;

/// The sign-ins noted for one token URL and client id.
pub struct SignIns {
    key: CacheKey,
    generation: u64,
    pub noted: Vec<Scoping>,
}

impl SignIns {
    /// The index of the client `settings` name, as `store` holds it (empty
    /// when it holds none, or one this version cannot read).
    pub async fn read(settings: &Settings, store: &Store) -> Result<Self, Failure> {
        let key = index_key(settings)?;
        let (generation, noted) = match store.execute(&key, SystemTime::now(), &StoreOp::Read).await {
            Ok(StoreAnswer::Envelope(Some(envelope))) => {
                let noted = serde_json::from_slice::<Vec<Scoping>>(&envelope.payload).unwrap_or_default();
                (envelope.generation, noted)
            }
            _ => (0, Vec::new()),
        };
        Ok(Self { key, generation, noted })
    }

    /// Notes `scoping` (once), as the newest.
    pub fn note(&mut self, scoping: &Scoping) {
        self.noted.retain(|noted| noted != scoping);
        self.noted.push(scoping.clone());
        let excess = self.noted.len().saturating_sub(MAX_ENTRIES);
        self.noted.drain(..excess);
    }

    /// Forgets `scoping`.
    pub fn forget(&mut self, scoping: &Scoping) {
        self.noted.retain(|noted| noted != scoping);
    }

    /// Writes the index back (deletes it when empty).
    pub async fn save(&self, store: &Store) -> Result<(), auth_core::store::StoreError> {
        if self.noted.is_empty() {
            let op = StoreOp::Invalidate { fingerprint: FINGERPRINT.to_owned() };
            return store.execute(&self.key, SystemTime::now(), &op).await.map(drop);
        }
        let now = SystemTime::now();
        let payload = serde_json::to_vec(&self.noted).unwrap_or_default();
        let envelope = Envelope {
            // Above the one read and any written before this moment.
            generation: self.generation.saturating_add(1).max(unix_ms(now)),
            fingerprint: FINGERPRINT.to_owned(),
            expires_at_unix_ms: unix_ms(now + REFRESH_TOKEN_RETENTION),
            payload: Zeroizing::new(payload),
        };
        store.execute(&self.key, now, &StoreOp::Write { envelope, release: None }).await.map(drop)
    }
}

/// The index's key: the token URL, the client id and a marker that no
/// token source's key has.
fn index_key(settings: &Settings) -> Result<CacheKey, Failure> {
    let (Some(token_url), Some(client_id)) = (&settings.token_url, &settings.client_id) else {
        return Err(Failure::usage("a sign-in needs --token-url (or --issuer) and --client-id"));
    };
    let config = SourceConfig::builder(token_url, client_id)
        .grant(SourceGrant::SignIn)
        .allow_insecure_http(settings.allow_insecure_http)
        .param("authc-index", "sign-ins")
        .build()?;
    Ok(config.cache_key().clone())
}
