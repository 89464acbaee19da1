//! The shared token store protocol: what a [`Lifecycle`](crate::Lifecycle)
//! configured with a [`StoreConfig`] asks of a store that every process and
//! replica with the same cache key shares, and the record it keeps there.
//!
//! The rules live here and in the lifecycle; a backend (a file, Redis, a
//! database) only carries out these operations on one cache key:
//!
//! | operation | what the backend does |
//! |---|---|
//! | [`StoreOp::Read`] | return the stored [`Envelope`], if any |
//! | [`StoreOp::AcquireLease`] | take the renewal lease if nobody holds it (`SET lease owner NX PX ttl`) |
//! | [`StoreOp::Write`] | store the envelope **only if** none is stored or the stored one has a lower generation; release the lease it names if it still holds it |
//! | [`StoreOp::CompareAndSet`] | store the envelope **only if** the stored one's generation is the one given (0: none stored) |
//! | [`StoreOp::Invalidate`] | delete the stored envelope **only if** its fingerprint is the one given |
//! | [`StoreOp::ReleaseLease`] | delete the lease **only if** the owner is the one given |
//! | [`StoreOp::SpendBudget`] | with a fetch budget: count one token request if fewer than the limit were counted in the window, else say when the oldest leaves it |
//! | [`StoreOp::RefundBudget`] | give back a counted request the provider refused |
//!
//! ([`BudgetLog`] is the budget's rule, for backends that keep the log as
//! a value.) Every answer comes back with
//! [`Lifecycle::handle_store`](crate::Lifecycle::handle_store).
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
use std::time::{Duration, SystemTime};

use crate::config::CacheKey;

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

    /// These timeouts for a backend whose operations may take up to
    /// `longest` when it works ([`TokenStore::longest_answer`]): the
    /// operation timeout is at least that.
    pub fn allowing(self, longest: Option<Duration>) -> Self {
        Self { operation: self.operation.max(longest.unwrap_or_default()), ..self }
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

    /// The owner [`LeaseOwner::as_hex`] wrote; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<Self> {
        (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u128::from_str_radix(hex, 16).ok().map(Self))
            .flatten()
    }

    /// The first 8 hex digits, to name the owner in logs and errors.
    pub fn short(&self) -> String {
        self.as_hex()[..8].to_owned()
    }
}

impl fmt::Debug for LeaseOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeaseOwner({})", self.short())
    }
}

mod backend;
mod budget;
mod memory;
mod record;

pub use crate::text::{fingerprint, unix_ms};
pub use backend::{BlockingTokenStore, TokenStore};
pub use budget::{BudgetAnswer, BudgetLog};
pub use memory::MemoryStore;
pub use record::{Envelope, Record, RecordError};

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
    /// Store the envelope only if the stored one's generation is
    /// `expected` (`0`: only if none is stored, or it expired). Answer
    /// [`StoreAnswer::Written`]. The claim on a shared refresh token is
    /// one: it must be written over the very record its writer read, or
    /// not at all. A backend that replicates (Redis with replicas) must
    /// answer it, like a write, only once it would survive a failover
    /// when asked to confirm writes.
    CompareAndSet {
        /// What to store.
        envelope: Envelope,
        /// The generation stored now, as its writer read it.
        expected: u64,
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
            Self::CompareAndSet { .. } => "compare_and_set",
            Self::Invalidate { .. } => "invalidate",
            Self::ReleaseLease { .. } => "release_lease",
            Self::SpendBudget { .. } => "spend_budget",
            Self::RefundBudget { .. } => "refund_budget",
        }
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

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::config::SourceConfig;
    use crate::secret::{AccessTokenValue, ExposeSecret, RefreshToken};

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
    fn a_backend_that_waits_for_replicas_is_waited_for() {
        let configured = StoreTimeouts { connect: Duration::from_secs(1), operation: Duration::from_millis(250) };
        assert_eq!(configured.allowing(None), configured);
        assert_eq!(configured.allowing(Some(Duration::from_millis(100))), configured);
        let longer = configured.allowing(Some(Duration::from_millis(1250)));
        assert_eq!((longer.operation, longer.connect), (Duration::from_millis(1250), Duration::from_secs(1)));
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
