//! The record a store keeps per cache key, and the envelope it travels
//! in: what a backend stores, and the checks before a token is taken
//! from it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use super::{fingerprint, unix_ms, LeaseOwner, RECORD_VERSION, REFRESH_TOKEN_RETENTION};
use crate::config::CacheKey;
use crate::secret::{AccessTokenValue, ExposeSecret, RefreshToken};

/// What a backend stores for a cache key. The generation, fingerprint and
/// expiry stay readable (the backend compares and expires on them); the
/// payload holds the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Grows by one with every token written: a write with a generation not
    /// above the stored one is refused.
    pub generation: u64,
    /// A SHA-256 of the access token (32 hex digits): compare-and-delete on
    /// a 401 removes only the token that was rejected.
    pub fingerprint: String,
    /// When the backend may drop the envelope, in Unix milliseconds: when
    /// the access token expires, or, when the record holds a refresh token,
    /// [`REFRESH_TOKEN_RETENTION`] later (the refresh token outlives the
    /// access token: a user's sign-in must survive an expired access token).
    pub expires_at_unix_ms: u64,
    /// The encoded [`Record`].
    pub payload: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("generation", &self.generation)
            .field("fingerprint", &self.fingerprint)
            .field("expires_at_unix_ms", &self.expires_at_unix_ms)
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

impl Envelope {
    /// Seals `record` as generation `generation`.
    pub fn seal(record: &Record, generation: u64) -> Self {
        Self {
            generation,
            fingerprint: record.fingerprint(),
            expires_at_unix_ms: unix_ms(match record.refresh_token() {
                Some(_) => record.expires_at.checked_add(REFRESH_TOKEN_RETENTION).unwrap_or(record.expires_at),
                None => record.expires_at,
            }),
            payload: record.encode(),
        }
    }

    /// Opens the record, checking that it belongs to `key` and that it is
    /// what the envelope says.
    pub fn open(&self, key: &CacheKey) -> Result<Record, RecordError> {
        let record = Record::decode(&self.payload, key)?;
        if record.fingerprint() != self.fingerprint {
            return Err(RecordError::Inconsistent);
        }
        Ok(record)
    }
}

/// Why a stored record was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not a record this version can read.
    #[error("the stored record is not readable (corrupt, or written by an incompatible version)")]
    Unreadable,
    /// A record for another configuration.
    #[error("the stored record belongs to another configuration (cache key)")]
    OtherKey,
    /// The envelope and the record disagree.
    #[error("the stored record does not match its envelope")]
    Inconsistent,
}

/// The tokens of one cache key as the store keeps them. Never the client
/// secret.
#[derive(Clone)]
pub struct Record {
    cache_key: String,
    access_token: Option<AccessTokenValue>,
    /// Absolute expiry, from when the fetch was sent.
    expires_at: SystemTime,
    /// When the fetch that obtained it was sent.
    issued_at: SystemTime,
    lifetime_from_provider: bool,
    scope: Option<String>,
    refresh_token: Option<RefreshToken>,
    /// It was fetched because of a 401, at `issued_at`: the fetch-loop
    /// guard's state, shared by the fleet.
    after_401: bool,
    unauthorized_streak: u32,
    /// The refresh token is being spent by this owner: nobody else spends
    /// it (the fence of a rotating refresh token; see
    /// [`crate::store`]).
    claimed_by: Option<LeaseOwner>,
    /// The provider rejected the refresh token (`invalid_grant`) when the
    /// claimant spent it: the user must sign in again.
    refresh_rejected: bool,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("fingerprint", &self.fingerprint())
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("claimed_by", &self.claimed_by)
            .field("refresh_rejected", &self.refresh_rejected)
            .finish_non_exhaustive()
    }
}

impl Record {
    /// A record of an access token for `key`, expiring at `expires_at`.
    pub fn new(key: &CacheKey, access_token: &str, expires_at: SystemTime) -> Self {
        Self {
            cache_key: key.canonical().to_owned(),
            access_token: Some(AccessTokenValue::new(access_token)),
            expires_at,
            issued_at: expires_at,
            lifetime_from_provider: true,
            scope: None,
            refresh_token: None,
            after_401: false,
            unauthorized_streak: 0,
            claimed_by: None,
            refresh_rejected: false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_parts(
        key: &CacheKey,
        access_token: Option<AccessTokenValue>,
        issued_at: SystemTime,
        expires_at: SystemTime,
        lifetime_from_provider: bool,
        scope: Option<String>,
        refresh_token: Option<RefreshToken>,
        after_401: bool,
        unauthorized_streak: u32,
    ) -> Self {
        Self {
            cache_key: key.canonical().to_owned(),
            access_token,
            expires_at,
            issued_at,
            lifetime_from_provider,
            scope,
            refresh_token,
            after_401,
            unauthorized_streak,
            claimed_by: None,
            refresh_rejected: false,
        }
    }

    /// The record says that `owner` is spending its refresh token: peers
    /// must not spend it, and wait for the tokens the owner writes next.
    pub fn claimed_by(mut self, owner: LeaseOwner) -> Self {
        self.claimed_by = Some(owner);
        self
    }

    /// The record says that the provider rejected its refresh token.
    pub(crate) fn refresh_rejected(mut self) -> Self {
        self.refresh_rejected = true;
        self
    }

    /// The access token's value, if the record holds one.
    pub fn access_token_value(&self) -> Option<&str> {
        self.access_token.as_ref().map(|t| t.expose_secret())
    }
    /// The access token, if the record holds one.
    pub fn access_token(&self) -> Option<&AccessTokenValue> {
        self.access_token.as_ref()
    }
    /// When the access token expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
    pub(crate) fn issued_at(&self) -> SystemTime {
        self.issued_at
    }
    /// Whether the lifetime came from the provider's `expires_in`.
    pub fn lifetime_from_provider(&self) -> bool {
        self.lifetime_from_provider
    }
    /// The granted scope, when known.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
    /// The refresh token, if the record holds one.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    pub(crate) fn after_401(&self) -> bool {
        self.after_401
    }
    pub(crate) fn unauthorized_streak(&self) -> u32 {
        self.unauthorized_streak
    }
    /// Who is spending the refresh token, when someone claimed it.
    pub fn claimant(&self) -> Option<LeaseOwner> {
        self.claimed_by
    }
    /// Whether the provider rejected the refresh token.
    pub fn is_refresh_rejected(&self) -> bool {
        self.refresh_rejected
    }

    /// A SHA-256 of the access token, 32 hex digits (empty without one).
    pub fn fingerprint(&self) -> String {
        self.access_token.as_ref().map_or_else(String::new, |t| fingerprint(t.expose_secret()))
    }

    /// The record as bytes (JSON, versioned).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let value = serde_json::json!({
            "version": RECORD_VERSION,
            "cache_key": self.cache_key,
            "access_token": self.access_token.as_ref().map(|t| t.expose_secret()),
            "issued_at_ms": unix_ms(self.issued_at),
            "expires_at_ms": unix_ms(self.expires_at),
            "lifetime_from_provider": self.lifetime_from_provider,
            "scope": self.scope,
            "refresh_token": self.refresh_token.as_ref().map(|t| t.expose_secret()),
            "after_401": self.after_401,
            "unauthorized_streak": self.unauthorized_streak,
            "refresh_claimed_by": self.claimed_by.map(|owner| owner.as_hex()),
            "refresh_rejected": self.refresh_rejected,
        });
        Zeroizing::new(value.to_string().into_bytes())
    }

    /// Reads a record, refusing one of another version or cache key.
    pub fn decode(bytes: &[u8], key: &CacheKey) -> Result<Self, RecordError> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| RecordError::Unreadable)?;
        if value["version"].as_u64() != Some(RECORD_VERSION) {
            return Err(RecordError::Unreadable);
        }
        if value["cache_key"].as_str() != Some(key.canonical()) {
            return Err(RecordError::OtherKey);
        }
        let time = |name: &str| -> Result<SystemTime, RecordError> {
            let ms = value[name].as_u64().ok_or(RecordError::Unreadable)?;
            UNIX_EPOCH.checked_add(Duration::from_millis(ms)).ok_or(RecordError::Unreadable)
        };
        let text = |name: &str| value[name].as_str().filter(|s| !s.is_empty());
        let access_token = text("access_token").map(AccessTokenValue::from);
        let refresh_token = text("refresh_token").map(RefreshToken::from);
        if access_token.is_none() && refresh_token.is_none() {
            return Err(RecordError::Unreadable);
        }
        Ok(Self {
            cache_key: key.canonical().to_owned(),
            access_token,
            expires_at: time("expires_at_ms")?,
            issued_at: time("issued_at_ms")?,
            lifetime_from_provider: value["lifetime_from_provider"].as_bool().unwrap_or(true),
            scope: text("scope").map(str::to_owned),
            refresh_token,
            after_401: value["after_401"].as_bool().unwrap_or(false),
            unauthorized_streak: value["unauthorized_streak"].as_u64().map_or(0, |n| n.min(64) as u32),
            claimed_by: match &value["refresh_claimed_by"] {
                serde_json::Value::Null => None,
                claimant => Some(claimant.as_str().and_then(LeaseOwner::from_hex).ok_or(RecordError::Unreadable)?),
            },
            refresh_rejected: value["refresh_rejected"].as_bool().unwrap_or(false),
        })
    }
}
