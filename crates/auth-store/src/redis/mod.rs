//! A token store in Redis: for a fleet of replicas on many hosts.
//!
//! One server (`redis://`, `rediss://`), a Redis Cluster by its seed
//! nodes (`redis+cluster://host:port,host:port/`, `rediss+cluster://...`:
//! redis-rs's cluster client, which follows the slots and their moves), or
//! the primary that Redis Sentinel names
//! (`redis+sentinel://[user:password@]host:port,host:port/service[/db]`,
//! the user and password the primary's: the Sentinels are asked at every
//! connection, and a connection that fails is dropped, so that the store
//! follows a failover).
//! Per cache key (named by its fingerprint, which holds no secret, in
//! braces: a hash tag, so that a cache key's keys are in one cluster slot
//! and a script may take several), under a prefix (`auth-store:` by
//! default, without braces of its own):
//!
//! - `<prefix>{<key>}:record`: a hash with `generation`, `fingerprint`,
//!   `expires_at_ms` and `payload`; it expires with its token
//!   (`PEXPIREAT`). A write replaces it only when its generation is higher
//!   (a Lua script, atomic), a compare-and-set (the claim on a refresh
//!   token) only when the stored generation is the one its writer read;
//!   an invalidation deletes it only when it still holds the rejected
//!   token's fingerprint.
//! - `<prefix>{<key>}:lease`: the renewal lease, `SET lease owner NX PX ttl`,
//!   released by a compare-and-delete script; a holder that dies blocks the
//!   others at most for the ttl.
//! - `<prefix>{<key>}:budget`: with a fetch budget, a sorted set of the
//!   token requests counted in the window (scored by time); a script
//!   forgets the old ones, counts and adds atomically; it expires a
//!   window after its newest entry.
//!
//! `RedisStore` (features `redis` and `tower`) uses redis-rs's tokio
//! connection manager, which reconnects by itself; it connects on first
//! use, so a Redis that is down at start-up is a store error like any
//! other: the token source fetches on its own meanwhile. Connecting (with
//! TLS, redis-rs also loads the system's root certificates each time) is
//! the store's `connect`, which the token source waits for apart from the
//! operation (`store_connect_timeout`, 1 s): a slow handshake is not a
//! slow answer, and a fleet that starts at once still shares one fetch.
//! `BlockingRedisStore` (features `redis` and `blocking`) uses the
//! synchronous client, with no async runtime.

use std::time::Duration;

use auth_core::store::{BudgetAnswer, Envelope, StoreAnswer, StoreError, StoreOp};
use auth_core::CacheKey;
use zeroize::Zeroizing;

/// The default prefix of the keys.
pub const DEFAULT_PREFIX: &str = "auth-store:";

/// Replaces the record when none is stored or the stored generation is
/// lower, sets its expiry, then releases the lease if the owner given
/// still holds it. Returns 1 when written.
const WRITE: &str = r"
local stored = redis.call('HGET', KEYS[1], 'generation')
local written = 0
if (not stored) or tonumber(stored) < tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'fingerprint', ARGV[2], 'expires_at_ms', ARGV[3], 'payload', ARGV[4])
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
  written = 1
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[2]) == ARGV[5] then
  redis.call('DEL', KEYS[2])
end
return written
";

/// Replaces the record only when the stored generation is the one given
/// (0: none stored), and sets its expiry. Returns 1 when written.
const COMPARE_AND_SET: &str = r"
local stored = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if stored ~= tonumber(ARGV[5]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'generation', ARGV[1], 'fingerprint', ARGV[2], 'expires_at_ms', ARGV[3], 'payload', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
";

/// Deletes the record when it holds the fingerprint given.
const INVALIDATE: &str = r"
if redis.call('HGET', KEYS[1], 'fingerprint') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Deletes the lease when the owner given holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Forgets the requests older than the window, then counts this one if
/// fewer than the limit remain. Returns minus the requests counted in
/// the window (this one included) when counted, otherwise when the oldest
/// leaves the window (Unix ms).
const SPEND: &str = r"
local limit, window, at = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', at - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], at, ARGV[4])
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], tonumber(newest[2]) + window)
  return -redis.call('ZCARD', KEYS[1])
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tonumber(oldest[2]) + window
";

/// The keys of one cache key share a hash tag (`{fingerprint}`), so that in
/// a Redis Cluster they are in one slot and a script may take several.
fn keys(prefix: &str, key: &CacheKey) -> (String, String) {
    let base = format!("{prefix}{{{}}}", key.fingerprint());
    (format!("{base}:record"), format!("{base}:lease"))
}

fn budget_key(prefix: &str, key: &CacheKey) -> String {
    format!("{prefix}{{{}}}:budget", key.fingerprint())
}

/// A prefix with a brace would put its own hash tag before the key's.
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    match prefix.contains(['{', '}']) {
        true => Err(StoreError::new(
            "the Redis key prefix holds `{` or `}`; remove them (the keys of a cache key share a {hash tag} of their own)",
        )),
        false => Ok(()),
    }
}

fn redis_error(error: &redis::RedisError) -> StoreError {
    // Redis errors carry no secret of ours (keys are fingerprints); the
    // URL with its password is never part of them.
    let timeout = error.is_timeout();
    StoreError { message: format!("redis: {}", error.kind_text()), timeout }
}

trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for redis::RedisError {
    fn kind_text(&self) -> String {
        // An IO error's cause (refused, reset, a certificate not trusted)
        // says what to fix; it quotes nothing stored.
        let cause = match self.kind() {
            redis::ErrorKind::Io => std::error::Error::source(self).map(|e| format!(": {e}")),
            _ => None,
        };
        let detail = self.detail().map(|d| format!(": {d}")).or(cause).unwrap_or_default();
        format!("{:?}{detail}", self.kind()).chars().take(300).collect()
    }
}

/// The fields read back from the record hash.
type Fields = (Option<u64>, Option<String>, Option<u64>, Option<Vec<u8>>);

fn envelope(fields: Fields) -> Option<Envelope> {
    let (generation, fingerprint, expires_at_unix_ms, payload) = fields;
    Some(Envelope {
        generation: generation?,
        fingerprint: fingerprint?,
        expires_at_unix_ms: expires_at_unix_ms?,
        payload: Zeroizing::new(payload?),
    })
}

/// One store operation as one Redis command (scripts as `EVAL`), and what
/// its reply means.
struct Prepared {
    command: redis::Cmd,
    reply: Reply,
}

#[derive(Clone, Copy)]
enum Reply {
    Envelope,
    Lease,
    Written,
    Done,
    Budget,
}

fn prepare(prefix: &str, key: &CacheKey, op: &StoreOp) -> Result<Prepared, StoreError> {
    check_prefix(prefix)?;
    let (record, lease) = keys(prefix, key);
    let eval = |script: &str, keys: &[&str]| {
        let mut command = redis::cmd("EVAL");
        command.arg(script).arg(keys.len()).arg(keys);
        command
    };
    let (command, reply) = match op {
        StoreOp::Read => {
            let mut command = redis::cmd("HMGET");
            command.arg(&record).arg(&["generation", "fingerprint", "expires_at_ms", "payload"]);
            (command, Reply::Envelope)
        }
        StoreOp::AcquireLease { owner, ttl } => {
            let mut command = redis::cmd("SET");
            let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            command.arg(&lease).arg(owner.as_hex()).arg("NX").arg("PX").arg(ttl_ms);
            (command, Reply::Lease)
        }
        StoreOp::Write { envelope, release } => {
            let mut command = eval(WRITE, &[&record, &lease]);
            command
                .arg(envelope.generation)
                .arg(&envelope.fingerprint)
                .arg(envelope.expires_at_unix_ms)
                .arg(envelope.payload.as_slice())
                .arg(release.map(|o| o.as_hex()).unwrap_or_default());
            (command, Reply::Written)
        }
        StoreOp::CompareAndSet { envelope, expected } => {
            let mut command = eval(COMPARE_AND_SET, &[&record]);
            command
                .arg(envelope.generation)
                .arg(&envelope.fingerprint)
                .arg(envelope.expires_at_unix_ms)
                .arg(envelope.payload.as_slice())
                .arg(*expected);
            (command, Reply::Written)
        }
        StoreOp::Invalidate { fingerprint } => {
            let mut command = eval(INVALIDATE, &[&record]);
            command.arg(fingerprint);
            (command, Reply::Done)
        }
        StoreOp::ReleaseLease { owner } => {
            let mut command = eval(RELEASE, &[&lease]);
            command.arg(owner.as_hex());
            (command, Reply::Done)
        }
        StoreOp::SpendBudget { limit, window, at_unix_ms, slot } => {
            let budget = budget_key(prefix, key);
            let mut command = eval(SPEND, &[&budget]);
            let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
            command.arg(*limit).arg(window_ms).arg(*at_unix_ms).arg(slot);
            (command, Reply::Budget)
        }
        StoreOp::RefundBudget { slot } => {
            let mut command = redis::cmd("ZREM");
            command.arg(budget_key(prefix, key)).arg(slot);
            (command, Reply::Done)
        }
        _ => return Err(StoreError::new("an operation this Redis store does not know")),
    };
    Ok(Prepared { command, reply })
}

/// What a command's reply means for the token source.
fn answer(reply: Reply, value: redis::Value) -> Result<StoreAnswer, StoreError> {
    // Not the reply itself: it may hold the payload (tokens).
    let convert = |_: redis::ParsingError| StoreError::new("redis: a reply of an unexpected shape");
    Ok(match reply {
        Reply::Envelope => StoreAnswer::Envelope(envelope(redis::from_redis_value(value).map_err(convert)?)),
        Reply::Lease => StoreAnswer::Lease(!matches!(value, redis::Value::Nil)),
        Reply::Written => StoreAnswer::Written(redis::from_redis_value::<i64>(value).map_err(convert)? == 1),
        Reply::Done => StoreAnswer::Done,
        Reply::Budget => StoreAnswer::Budget(match redis::from_redis_value::<i64>(value).map_err(convert)? {
            counted if counted < 0 => {
                BudgetAnswer::Granted { spent: u32::try_from(counted.unsigned_abs()).unwrap_or(u32::MAX) }
            }
            next => BudgetAnswer::Spent { next_at_unix_ms: u64::try_from(next).unwrap_or(0) },
        }),
    })
}

/// The settings both stores take, as methods of a store whose field
/// `settings` holds them.
macro_rules! settings_methods {
    () => {
        /// The key prefix (default `auth-store:`; no `{` or `}`: the keys
        /// of a cache key carry a hash tag of their own).
        pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
            self.settings.prefix = prefix.into();
            self
        }

        /// How long each answer may take (default 250 ms, the token
        /// source's default store timeout).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.settings.timeout = timeout;
            self
        }

        /// How long one connection attempt may take, the TLS handshake
        /// included (default [`DEFAULT_CONNECT_TIMEOUT`]).
        ///
        /// [`DEFAULT_CONNECT_TIMEOUT`]: super::DEFAULT_CONNECT_TIMEOUT
        pub fn connect_timeout(mut self, timeout: Duration) -> Self {
            self.settings.connect_timeout = timeout;
            self
        }

        /// A lease, a claim on a refresh token or a record counts as
        /// written only once `replicas` replicas have it (`WAIT`, up to
        /// `within`; each answer may then take `within` longer than the
        /// store's timeout, and a token source waits for an operation as
        /// long as three such answers, whatever its own store timeout):
        /// otherwise
        /// the operation fails (a lease is given back first; a claim that
        /// is not confirmed is not acted on: its refresh token is not
        /// spent). With it, a refresh token is never spent twice
        /// across a failover to a replica that confirmed; see
        /// docs/security.md. For one primary with replicas (behind
        /// Sentinel, or each primary of a cluster), `replicas` being every
        /// replica that may be promoted.
        pub fn confirm_writes(mut self, replicas: u32, within: Duration) -> Self {
            self.settings.confirm = Some((replicas, within));
            self
        }
    };
}

mod servers;

pub use servers::DEFAULT_CONNECT_TIMEOUT;
#[cfg(test)]
use servers::{client, cluster_seeds, sentinel};
use servers::{cluster_client, Client, Settings};

#[cfg(test)]
mod tests;

#[cfg(feature = "tower")]
pub use self::asynchronous::RedisStore;

#[cfg(feature = "tower")]
mod asynchronous;

#[cfg(feature = "blocking")]
pub use self::synchronous::BlockingRedisStore;

#[cfg(feature = "blocking")]
mod synchronous;
