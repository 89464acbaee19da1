//! The shared token store protocol: what a [`Lifecycle`](crate::Lifecycle)
//! configured with a [`StoreConfig`] asks of a store that every process and
//! replica with the same cache key shares, and the record it keeps there.
//!
//! The rules live here and in the lifecycle; a backend (a file, Redis, a
//! database) only carries out five operations on one cache key:
//!
//! | operation | what the backend does |
//! |---|---|
//! | [`StoreOp::Read`] | return the stored [`Envelope`], if any |
//! | [`StoreOp::AcquireLease`] | take the renewal lease if nobody holds it (`SET lease owner NX PX ttl`) |
//! | [`StoreOp::Write`] | store the envelope **only if** none is stored or the stored one has a lower generation; release the lease it names if it still holds it |
//! | [`StoreOp::Invalidate`] | delete the stored envelope **only if** its fingerprint is the one given |
//! | [`StoreOp::ReleaseLease`] | delete the lease **only if** the owner is the one given |
//!
//! ([`BudgetLog`] is the budget's rule, for backends that keep the log as
//! a value.)
//!
//! Every answer comes back with [`Lifecycle::handle_store`](crate::Lifecycle::handle_store).
//! | [`StoreOp::SpendBudget`] | with a fetch budget: count one token request if fewer than the limit were counted in the window, else say when the oldest leaves it |
//! | [`StoreOp::RefundBudget`] | give back a counted request the provider refused |
//!
//! A failed or timed-out operation is reported as an error; the lifecycle
//! then fetches on its own (single flight within the process) and callers
//! never see a store error.
//!
//! ```
//! use std::time::{Duration, SystemTime, UNIX_EPOCH};
//! use auth_core::store::{Envelope, Record};
//! use auth_core::SourceConfig;
//!
//! let config = SourceConfig::builder("https://auth.example.com/token", "id").client_secret("s").build()?;
//! let record = Record::new(config.cache_key(), "at-1", UNIX_EPOCH + Duration::from_secs(1_900_000_000));
//! let envelope = Envelope::seal(&record, 7);
//! assert_eq!(envelope.generation, 7);
//! let opened = envelope.open(config.cache_key()).unwrap();
//! assert_eq!(opened.access_token_value(), Some("at-1"));
//! # Ok::<(), auth_core::ConfigError>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::config::CacheKey;
use crate::secret::{AccessTokenValue, ExposeSecret, RefreshToken};

/// The version of the record format.
pub const RECORD_VERSION: u64 = 1;

/// How long a record that holds a refresh token is kept after its access
/// token expired: 180 days. Refresh tokens outlive access tokens (days to
/// months, often sliding with each use); a record dropped with its access
/// token would lose a user's sign-in. Each renewal writes the record again,
/// so only a sign-in left unused this long is forgotten.
pub const REFRESH_TOKEN_RETENTION: Duration = Duration::from_secs(180 * 24 * 3600);

/// How the lifecycle uses a shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// How long the renewal lease lasts: longer than the fetch timeout, so
    /// that a live holder keeps it for the whole fetch; a holder that dies
    /// blocks the others at most this long. Default 40 s.
    pub lease_ttl: Duration,
    /// While a peer holds the lease, how often the store is read again for
    /// the token it fetches. Default 200 ms.
    pub poll_interval: Duration,
    /// How long to wait for a peer's fetch before fetching locally.
    /// Default 10 s.
    pub peer_wait: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            lease_ttl: Duration::from_secs(40),
            poll_interval: Duration::from_millis(200),
            peer_wait: Duration::from_secs(10),
        }
    }
}

/// Default of [`StoreTimeouts::operation`]: 250 ms.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(250);

/// Default of [`StoreTimeouts::connect`]: 1 s.
pub const DEFAULT_STORE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a token source's driver waits for its store. Past either wait
/// the operation counts as failed and the source fetches on its own, so a
/// slow store never holds a request up for longer.
///
/// Getting ready (connecting: a TCP and TLS handshake, loading the
/// system's root certificates) has a wait of its own: it is not a slow
/// answer, and charged to the first operation it would make every process
/// of a fleet that starts at once fetch on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreTimeouts {
    /// How long an operation waits for the backend to get ready. Default
    /// [`DEFAULT_STORE_CONNECT_TIMEOUT`].
    pub connect: Duration,
    /// How long an operation waits for its answer once the backend is
    /// ready. Default [`DEFAULT_STORE_TIMEOUT`].
    pub operation: Duration,
}

impl StoreTimeouts {
    /// The longest one operation can keep a caller waiting.
    pub fn longest_wait(&self) -> Duration {
        self.connect.saturating_add(self.operation)
    }
}

impl Default for StoreTimeouts {
    fn default() -> Self {
        Self { connect: DEFAULT_STORE_CONNECT_TIMEOUT, operation: DEFAULT_STORE_TIMEOUT }
    }
}

/// Identifies one store operation, so that a late answer cannot be
/// mistaken for the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StoreOpId(pub(crate) u64);

impl StoreOpId {
    /// The number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Who holds a lease: random per token source.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseOwner(pub(crate) u128);

impl LeaseOwner {
    /// An owner with this value (a lifecycle draws a random one; backends'
    /// tests make their own).
    pub fn new(value: u128) -> Self {
        Self(value)
    }

    /// The value to store as the lease's owner (32 hex digits).
    pub fn as_hex(&self) -> String {
        format!("{:032x}", self.0)
    }
}

impl fmt::Debug for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseOwner({})", &self.as_hex()[..8])
    }
}

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
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("fingerprint", &self.fingerprint())
            .field("expires_at", &self.expires_at)
            .field("has_refresh_token", &self.refresh_token.is_some())
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
        }
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
        })
    }
}

pub use crate::text::{fingerprint, unix_ms};

/// How far above the wall clock's milliseconds a stored generation may be
/// (replicas' clocks disagree; a sign-in sets the generation to its own
/// clock's milliseconds): a day.
pub const GENERATION_MARGIN_MS: u64 = 24 * 60 * 60 * 1000;

/// The highest generation a record read at `wall` may carry: the wall
/// clock's milliseconds plus [`GENERATION_MARGIN_MS`]. A record above it
/// was planted or corrupted, and is ignored.
pub fn generation_bound(wall: SystemTime) -> u64 {
    unix_ms(wall).saturating_add(GENERATION_MARGIN_MS)
}

/// One operation for the backend; see the [module docs](self).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreOp {
    /// Read the envelope. Answer [`StoreAnswer::Envelope`].
    Read,
    /// Take the lease for `ttl` as `owner` if nobody holds it. Answer
    /// [`StoreAnswer::Lease`].
    AcquireLease {
        /// Who takes it.
        owner: LeaseOwner,
        /// How long it lasts.
        ttl: Duration,
    },
    /// Store the envelope if none is stored or the stored one's generation
    /// is lower; then release the lease if `release` still holds it.
    /// Answer [`StoreAnswer::Written`] (`false`: a newer one was there).
    Write {
        /// What to store.
        envelope: Envelope,
        /// The lease to release after the write.
        release: Option<LeaseOwner>,
    },
    /// Delete the envelope if its fingerprint is `fingerprint`. Answer
    /// [`StoreAnswer::Done`].
    Invalidate {
        /// The rejected token's fingerprint.
        fingerprint: String,
    },
    /// Delete the lease if `owner` holds it. Answer [`StoreAnswer::Done`].
    ReleaseLease {
        /// Who held it.
        owner: LeaseOwner,
    },
    /// Count one token request at `at_unix_ms` under the name `slot`,
    /// unless `limit` requests are already counted in the `window` before
    /// it (forget the older ones). Answer [`StoreAnswer::Budget`]. The
    /// count should expire `window` after its last entry.
    SpendBudget {
        /// The budget.
        limit: u32,
        /// Its window (24 hours).
        window: Duration,
        /// When the request is made, Unix milliseconds.
        at_unix_ms: u64,
        /// A name unique to this request, to give it back by.
        slot: String,
    },
    /// Forget the request counted as `slot` (the provider refused it, so no
    /// token was issued). Answer [`StoreAnswer::Done`].
    RefundBudget {
        /// The name given to [`StoreOp::SpendBudget`].
        slot: String,
    },
}

impl StoreOp {
    /// A short name of the operation, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::AcquireLease { .. } => "acquire_lease",
            Self::Write { .. } => "write",
            Self::Invalidate { .. } => "invalidate",
            Self::ReleaseLease { .. } => "release_lease",
            Self::SpendBudget { .. } => "spend_budget",
            Self::RefundBudget { .. } => "refund_budget",
        }
    }
}

/// The answer to [`StoreOp::SpendBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetAnswer {
    /// The request was counted: fetch.
    Granted,
    /// The budget is spent: the next request fits at this time (Unix
    /// milliseconds), when the oldest counted one leaves the window.
    Spent {
        /// When the next request is allowed.
        next_at_unix_ms: u64,
    },
}

/// The requests counted against a fetch budget, oldest first: the rule of
/// [`StoreOp::SpendBudget`] for backends that keep the log as one value
/// (in memory, in a file). Encoded as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetLog {
    entries: Vec<(u64, String)>,
}

impl BudgetLog {
    /// The most entries a log keeps: the largest budget.
    pub const MAX_ENTRIES: usize = crate::config::MAX_FETCHES_PER_DAY as usize;

    /// Carries out [`StoreOp::SpendBudget`].
    pub fn spend(&mut self, limit: u32, window: Duration, at_unix_ms: u64, slot: &str) -> BudgetAnswer {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let start = at_unix_ms.saturating_sub(window_ms);
        self.entries.retain(|(at, _)| *at > start);
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(Self::MAX_ENTRIES);
        if self.entries.len() < limit {
            self.entries.push((at_unix_ms, slot.to_owned()));
            self.entries.sort_by_key(|(at, _)| *at);
            return BudgetAnswer::Granted;
        }
        let oldest = self.entries.first().map_or(at_unix_ms, |(at, _)| *at);
        BudgetAnswer::Spent { next_at_unix_ms: oldest.saturating_add(window_ms) }
    }

    /// Carries out [`StoreOp::RefundBudget`].
    pub fn refund(&mut self, slot: &str) {
        self.entries.retain(|(_, name)| name != slot);
    }

    /// When the newest entry leaves a `window`, in Unix milliseconds: the
    /// log may be deleted then.
    pub fn expires_at_unix_ms(&self, window: Duration) -> Option<u64> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.entries.last().map(|(at, _)| at.saturating_add(window_ms))
    }

    /// The log as JSON.
    pub fn encode(&self) -> String {
        serde_json::json!({ "version": 1, "entries": self.entries }).to_string()
    }

    /// Reads a log; anything unreadable is an empty log (the budget starts
    /// over rather than blocking every fetch).
    pub fn decode(text: &str) -> Self {
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let entries = value["entries"].as_array().map_or_else(Vec::new, |entries| {
            entries
                .iter()
                .filter_map(|entry| Some((entry[0].as_u64()?, entry[1].as_str()?.to_owned())))
                .take(Self::MAX_ENTRIES)
                .collect()
        });
        let mut log = Self { entries };
        log.entries.sort_by_key(|(at, _)| *at);
        log
    }
}

/// An operation to carry out, with its id; answer it with
/// [`Lifecycle::handle_store`](crate::Lifecycle::handle_store).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreRequest {
    /// The operation's id.
    pub id: StoreOpId,
    /// What to do.
    pub op: StoreOp,
}

/// A backend's answer to a [`StoreOp`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreAnswer {
    /// The stored envelope, if any.
    Envelope(Option<Envelope>),
    /// Whether the lease was taken (`false`: a peer holds it).
    Lease(bool),
    /// Whether the write happened (`false`: a newer generation was stored).
    Written(bool),
    /// Done (invalidation, release, refund).
    Done,
    /// The answer to [`StoreOp::SpendBudget`].
    Budget(BudgetAnswer),
}

/// A store operation that failed or timed out. The lifecycle falls back to
/// its own fetch; the message is for logs (it must hold no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token store: {message}")]
pub struct StoreError {
    /// What failed.
    pub message: String,
    /// Whether it was a timeout.
    pub timeout: bool,
}

impl StoreError {
    /// A failure.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), timeout: false }
    }

    /// A timeout after `after`.
    pub fn timeout(after: Duration) -> Self {
        Self { message: format!("no answer within {after:?}"), timeout: true }
    }

    /// The store did not get ready (connect) within `after`.
    pub fn connect_timeout(after: Duration) -> Self {
        Self { message: format!("not connected within {after:?}"), timeout: true }
    }
}

/// A store in this process's memory, shared by every token source given
/// a clone of it: sources with the same cache key share one token (and one
/// fetch). It carries out the protocol exactly as a remote backend must,
/// so it is also the reference for backends and the fleet simulations.
///
/// Lease and envelope expiry are checked against the wall time passed in.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: std::sync::Arc<std::sync::Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    envelopes: std::collections::HashMap<String, Envelope>,
    leases: std::collections::HashMap<String, (LeaseOwner, SystemTime)>,
    budgets: std::collections::HashMap<String, BudgetLog>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Carries out `op` for `key` at wall time `now`.
    pub fn apply(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> StoreAnswer {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = key.fingerprint().to_owned();
        let now_ms = unix_ms(now);
        match op {
            StoreOp::Read => {
                let live = inner.envelopes.get(&key).filter(|e| e.expires_at_unix_ms > now_ms).cloned();
                StoreAnswer::Envelope(live)
            }
            StoreOp::AcquireLease { owner, ttl } => {
                let free = inner.leases.get(&key).is_none_or(|(holder, until)| holder == owner || *until <= now);
                if free {
                    inner.leases.insert(key, (*owner, now.checked_add(*ttl).unwrap_or(now)));
                }
                StoreAnswer::Lease(free)
            }
            StoreOp::Write { envelope, release } => {
                let newer = inner.envelopes.get(&key).is_none_or(|stored| stored.generation < envelope.generation);
                if newer {
                    inner.envelopes.insert(key.clone(), envelope.clone());
                }
                if let Some(owner) = release {
                    if inner.leases.get(&key).is_some_and(|(holder, _)| holder == owner) {
                        inner.leases.remove(&key);
                    }
                }
                StoreAnswer::Written(newer)
            }
            StoreOp::Invalidate { fingerprint } => {
                if inner.envelopes.get(&key).is_some_and(|stored| &stored.fingerprint == fingerprint) {
                    inner.envelopes.remove(&key);
                }
                StoreAnswer::Done
            }
            StoreOp::ReleaseLease { owner } => {
                if inner.leases.get(&key).is_some_and(|(holder, _)| holder == owner) {
                    inner.leases.remove(&key);
                }
                StoreAnswer::Done
            }
            StoreOp::SpendBudget { limit, window, at_unix_ms, slot } => {
                StoreAnswer::Budget(inner.budgets.entry(key).or_default().spend(*limit, *window, *at_unix_ms, slot))
            }
            StoreOp::RefundBudget { slot } => {
                if let Some(log) = inner.budgets.get_mut(&key) {
                    log.refund(slot);
                }
                StoreAnswer::Done
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceConfig;

    fn key(url: &str) -> CacheKey {
        SourceConfig::builder(url, "id").client_secret("the-client-secret").build().unwrap().cache_key().clone()
    }

    #[test]
    fn records_round_trip_and_never_hold_the_client_secret() {
        let key = key("https://a.example/token");
        let at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
        let record = Record::from_parts(
            &key,
            Some(AccessTokenValue::new("at-1")),
            at - Duration::from_secs(3600),
            at,
            true,
            Some("read".into()),
            Some(RefreshToken::new("rt-1")),
            true,
            2,
        );
        let envelope = Envelope::seal(&record, 3);
        // Kept past the access token's expiry for its refresh token; without one, dropped with it.
        assert_eq!(envelope.expires_at_unix_ms, 1_900_000_000_123 + REFRESH_TOKEN_RETENTION.as_millis() as u64);
        let alone = Record::new(&key, "at-2", at);
        assert_eq!(Envelope::seal(&alone, 4).expires_at_unix_ms, 1_900_000_000_123);
        let text = String::from_utf8(envelope.payload.to_vec()).unwrap();
        assert!(!text.contains("the-client-secret"));
        let opened = envelope.open(&key).unwrap();
        assert_eq!(opened.access_token_value(), Some("at-1"));
        assert_eq!(opened.refresh_token().unwrap().expose_secret(), "rt-1");
        assert_eq!(opened.expires_at(), at);
        assert!(opened.after_401() && opened.unauthorized_streak() == 2);
        assert_eq!(opened.scope(), Some("read"));
        assert!(!format!("{envelope:?} {opened:?}").contains("at-1"));
    }

    #[test]
    fn the_memory_store_keeps_the_protocol() {
        let store = MemoryStore::new();
        let key = key("https://a.example/token");
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (a, b) = (LeaseOwner(1), LeaseOwner(2));
        let ttl = Duration::from_secs(40);
        let lease = |owner, at| store.apply(&key, at, &StoreOp::AcquireLease { owner, ttl });
        assert!(matches!(lease(a, t0), StoreAnswer::Lease(true)));
        assert!(matches!(lease(b, t0), StoreAnswer::Lease(false)), "held by a");
        assert!(matches!(lease(b, t0 + ttl), StoreAnswer::Lease(true)), "a's lease expired");
        let record = |token: &str| Record::new(&key, token, t0 + Duration::from_secs(3600));
        let write = |generation, token: &str, release| {
            store.apply(&key, t0, &StoreOp::Write { envelope: Envelope::seal(&record(token), generation), release })
        };
        assert!(matches!(write(2, "t2", Some(b)), StoreAnswer::Written(true)));
        assert!(matches!(lease(a, t0 + ttl), StoreAnswer::Lease(true)), "the write released b's lease");
        assert!(matches!(write(1, "t1", None), StoreAnswer::Written(false)), "an older generation never overwrites");
        let read = || match store.apply(&key, t0, &StoreOp::Read) {
            StoreAnswer::Envelope(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(read().unwrap().open(&key).unwrap().access_token_value(), Some("t2"));
        store.apply(&key, t0, &StoreOp::Invalidate { fingerprint: fingerprint("t1") });
        assert!(read().is_some(), "only the rejected token is deleted");
        store.apply(&key, t0, &StoreOp::Invalidate { fingerprint: fingerprint("t2") });
        assert!(read().is_none());
        assert!(matches!(write(3, "t3", None), StoreAnswer::Written(true)));
        let later = t0 + Duration::from_secs(3601);
        assert!(
            matches!(store.apply(&key, later, &StoreOp::Read), StoreAnswer::Envelope(None)),
            "expired with the token"
        );
    }

    #[test]
    fn the_budget_log_counts_a_rolling_window_and_gives_back() {
        let day = Duration::from_secs(24 * 3600);
        let mut log = BudgetLog::default();
        let t0 = 1_800_000_000_000;
        assert_eq!(log.spend(2, day, t0, "a"), BudgetAnswer::Granted);
        assert_eq!(log.spend(2, day, t0 + 1000, "b"), BudgetAnswer::Granted);
        assert_eq!(log.spend(2, day, t0 + 2000, "c"), BudgetAnswer::Spent { next_at_unix_ms: t0 + 86_400_000 });
        log.refund("a");
        assert_eq!(log.spend(2, day, t0 + 3000, "d"), BudgetAnswer::Granted, "a was given back");
        assert_eq!(log.spend(2, day, t0 + 4000, "e"), BudgetAnswer::Spent { next_at_unix_ms: t0 + 1000 + 86_400_000 });
        assert_eq!(log.spend(2, day, t0 + 1000 + 86_400_000, "f"), BudgetAnswer::Granted, "b left the window");
        let round = BudgetLog::decode(&log.encode());
        assert_eq!(round, log);
        assert_eq!(round.expires_at_unix_ms(day), Some(t0 + 1000 + 2 * 86_400_000));
        for junk in ["", "{", r#"{"entries":[[1,"a"],["x",2],null]}"#] {
            assert!(BudgetLog::decode(junk).entries.len() <= 1);
        }
    }

    #[test]
    fn a_record_for_another_key_or_a_tampered_one_is_refused() {
        let key = key("https://a.example/token");
        let record = Record::new(&key, "at-1", UNIX_EPOCH + Duration::from_secs(2_000_000_000));
        let envelope = Envelope::seal(&record, 1);
        assert_eq!(envelope.open(&self::key("https://b.example/token")).unwrap_err(), RecordError::OtherKey);
        let mut tampered = envelope.clone();
        tampered.fingerprint = fingerprint("another token");
        assert_eq!(tampered.open(&key).unwrap_err(), RecordError::Inconsistent);
        for junk in [&b""[..], b"{", b"[]", br#"{"version":2}"#, br#"{"version":1,"cache_key":"x"}"#] {
            assert!(Record::decode(junk, &key).is_err());
        }
        let huge = format!(
            r#"{{"version":1,"cache_key":{},"access_token":"t","issued_at_ms":18446744073709551615,"expires_at_ms":18446744073709551615}}"#,
            serde_json::to_string(key.canonical()).unwrap()
        );
        assert!(Record::decode(huge.as_bytes(), &key).is_ok_and(|r| r.expires_at() > UNIX_EPOCH));
    }
}
