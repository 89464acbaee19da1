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
//!   (a Lua script, atomic); an invalidation deletes it only when it still
//!   holds the rejected token's fingerprint.
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

use auth_core::store::{BudgetAnswer, Envelope, LeaseOwner, StoreAnswer, StoreError, StoreOp};
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
/// fewer than the limit remain. Returns -1 when counted, otherwise when
/// the oldest leaves the window (Unix ms).
const SPEND: &str = r"
local limit, window, at = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', at - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], at, ARGV[4])
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', KEYS[1], tonumber(newest[2]) + window)
  return -1
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
            -1 => BudgetAnswer::Granted,
            next => BudgetAnswer::Spent { next_at_unix_ms: u64::try_from(next).unwrap_or(0) },
        }),
    })
}

/// Where the store's Redis is: one server, or a cluster known by its seed
/// nodes (the cluster client is made when connecting, with the timeouts
/// set then).
#[derive(Clone)]
enum Client {
    Single(redis::Client),
    Cluster {
        seeds: Vec<String>,
        root_pem: Option<Vec<u8>>,
    },
    /// The primary that the Sentinels name for `service`, asked again at
    /// every connection (after a failover, the new one).
    Sentinel(Sentinel),
}

/// A primary behind Redis Sentinel.
#[derive(Clone)]
struct Sentinel {
    /// The Sentinels, as `redis://host:port` URLs.
    sentinels: Vec<String>,
    /// The monitored primary's name.
    service: String,
    /// How to talk to the primary: user, password, database.
    node: redis::RedisConnectionInfo,
}

impl Sentinel {
    /// The Sentinels' answer: a client of the current primary.
    fn client(&self) -> redis::RedisResult<redis::sentinel::SentinelClient> {
        let node = redis::sentinel::SentinelNodeConnectionInfo::default().set_redis_connection_info(self.node.clone());
        redis::sentinel::SentinelClient::build(
            self.sentinels.clone(),
            self.service.clone(),
            Some(node),
            redis::sentinel::SentinelServerType::Master,
        )
    }
}

/// The parts of a `redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`
/// URL; `None` for another scheme, `Some(Err)` for a malformed one.
fn sentinel(url: &str) -> Option<Result<Sentinel, StoreError>> {
    let rest = url.strip_prefix("redis+sentinel://")?;
    let invalid = || {
        StoreError::new(
            "the Redis Sentinel URL is not valid; write redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]",
        )
    };
    let parse = || -> Result<Sentinel, StoreError> {
        let (authority, path) = rest.split_once('/').ok_or_else(invalid)?;
        let (user, hosts) = authority.rsplit_once('@').map_or(("", authority), |(user, hosts)| (user, hosts));
        let (service, db) = path.split_once('/').unwrap_or((path, "0"));
        let db = if db.is_empty() { "0" } else { db };
        if service.is_empty() || url.contains('#') {
            return Err(invalid());
        }
        let sentinels: Vec<String> =
            hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(|h| format!("redis://{h}")).collect();
        if sentinels.is_empty() || sentinels.iter().any(|s| redis::Client::open(s.as_str()).is_err()) {
            return Err(invalid());
        }
        // The primary's settings, read as redis-rs reads a URL's.
        let at = if user.is_empty() { "" } else { "@" };
        let node = redis::Client::open(format!("redis://{user}{at}127.0.0.1/{db}").as_str()).map_err(|_| invalid())?;
        let node = node.get_connection_info().redis_settings().clone();
        Ok(Sentinel { sentinels, service: service.to_owned(), node })
    };
    Some(parse())
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a URL: it may hold a password.
        match self {
            Self::Single(_) => f.write_str("Single"),
            Self::Cluster { seeds, .. } => write!(f, "Cluster({} seed nodes)", seeds.len()),
            Self::Sentinel(sentinel) => write!(f, "Sentinel({} sentinels)", sentinel.sentinels.len()),
        }
    }
}

/// The seed nodes of a `redis+cluster://` or `rediss+cluster://` URL, each
/// as a URL of its own with the URL's user info and path; `None` for
/// another scheme.
fn cluster_seeds(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = match (url.strip_prefix("redis+cluster://"), url.strip_prefix("rediss+cluster://")) {
        (Some(rest), _) => ("redis", rest),
        (None, Some(rest)) => ("rediss", rest),
        (None, None) => return None,
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hosts) = authority.rsplit_once('@').map_or(("", authority), |(user, hosts)| (user, hosts));
    let at = if user.is_empty() { "" } else { "@" };
    Some(
        hosts
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(|host| format!("{scheme}://{user}{at}{host}/{path}"))
            .collect(),
    )
}

/// A client for `url` without connecting: `redis://` (one server),
/// `redis+cluster://host:port,host:port/` (a Redis Cluster by its seed
/// nodes), or the same over TLS (`rediss://`, `rediss+cluster://`, the
/// server's certificate checked against the system's trusted roots, or
/// `root_pem` when given) if `tls_feature` is built in.
fn client(url: &str, root_pem: Option<&[u8]>, tls_feature: Option<&str>) -> Result<Client, StoreError> {
    if let Some(sentinel) = sentinel(url) {
        if root_pem.is_some() {
            return Err(StoreError::new(
                "a root certificate was given for a redis+sentinel:// URL (TLS is not supported there)",
            ));
        }
        return sentinel.map(Client::Sentinel);
    }
    let Some(seeds) = cluster_seeds(url) else {
        return single(url, root_pem, tls_feature).map(Client::Single);
    };
    if url.contains('#') {
        return Err(StoreError::new(
            "the Redis URL has a fragment (#...); remove it: certificate checks cannot be turned off",
        ));
    }
    let invalid = || {
        StoreError::new(
            "the Redis Cluster URL is not valid; write redis+cluster://[user:password@]host:port[,host:port...]/",
        )
    };
    if seeds.is_empty() {
        return Err(invalid());
    }
    // Each seed as a server URL of its own: the same checks, and TLS only
    // where it is built in.
    for seed in &seeds {
        single(seed, root_pem, tls_feature).map_err(|error| match seed.starts_with("rediss://") {
            true if error.message.contains("not built in") => error,
            _ => invalid(),
        })?;
    }
    redis::cluster::ClusterClient::new(seeds.clone()).map_err(|_| invalid())?;
    Ok(Client::Cluster { seeds, root_pem: root_pem.map(<[u8]>::to_vec) })
}

/// The cluster client of `seeds`, with the timeouts given.
fn cluster_client(
    seeds: &[String],
    root_pem: Option<&[u8]>,
    connect_timeout: Duration,
    timeout: Duration,
) -> redis::RedisResult<redis::cluster::ClusterClient> {
    let builder = redis::cluster::ClusterClient::builder(seeds.to_vec())
        .connection_timeout(connect_timeout)
        .response_timeout(timeout)
        .retries(1);
    #[cfg(feature = "tls")]
    let builder = match root_pem {
        Some(pem) => builder.certs(redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) }),
        None => builder,
    };
    #[cfg(not(feature = "tls"))]
    let _ = root_pem;
    builder.build()
}

/// A client for one server at `url` (see [`client`]).
fn single(url: &str, root_pem: Option<&[u8]>, tls_feature: Option<&str>) -> Result<redis::Client, StoreError> {
    // Never the URL in an error: it may hold a password.
    let invalid = || {
        StoreError::new(
            "the Redis URL is not valid; write redis[s]://[user:password@]host:port/db, \
             redis[s]+cluster://[user:password@]host:port[,host:port...]/ for a Redis Cluster, \
             or redis+sentinel://[user:password@]host:port[,host:port...]/service[/db] behind Sentinel",
        )
    };
    let tls = url.starts_with("rediss://");
    if !tls && !url.starts_with("redis://") {
        return Err(invalid());
    }
    if url.contains('#') {
        // redis-rs reads `#insecure` as "skip the certificate checks".
        return Err(StoreError::new(
            "the Redis URL has a fragment (#...); remove it: certificate checks cannot be turned off",
        ));
    }
    if !tls {
        if root_pem.is_some() {
            return Err(StoreError::new("a root certificate was given for a redis:// URL; use rediss://"));
        }
        return redis::Client::open(url).map_err(|_| invalid());
    }
    match tls_feature {
        #[cfg(feature = "tls")]
        None => tls_client(url, root_pem).map_err(|_| match root_pem {
            Some(_) => StoreError::new(
                "the Redis URL or the root certificate is not valid; write rediss://[user:password@]host:port/db and give a PEM certificate",
            ),
            None => invalid(),
        }),
        missing => Err(StoreError::new(format!(
            "rediss:// (Redis over TLS) is not built in: enable the auth-store feature `{}`",
            missing.unwrap_or("tls")
        ))),
    }
}

#[cfg(feature = "tls")]
fn tls_client(url: &str, root_pem: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
    // rustls needs a process-wide crypto provider when more than one is
    // compiled in: ring, unless the program installed one already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(pem) = root_pem {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let certificates: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem).collect();
        if certificates.map_or(true, |c| c.is_empty()) {
            return Err(redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no PEM certificate")));
        }
    }
    match root_pem {
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) },
        ),
        None => redis::Client::open(url),
    }
}

/// Default of how long one connection attempt may take: 5 s. A token
/// source waits for it at most its `store_connect_timeout`; the attempt
/// goes on meanwhile, and the next operation finds it done.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What both stores are configured with.
#[derive(Clone)]
struct Settings {
    client: Client,
    prefix: String,
    /// How long each answer may take.
    timeout: Duration,
    /// How long one connection attempt may take.
    connect_timeout: Duration,
    /// Leases confirmed on this many replicas within this time, if set.
    confirm: Option<(u32, Duration)>,
}

impl Settings {
    /// Settings for `url` (see [`client`]), with the default prefix, a
    /// 250 ms answer timeout (the token sources' default store timeout)
    /// and [`DEFAULT_CONNECT_TIMEOUT`].
    fn open(url: &str, root_pem: Option<&[u8]>, tls_feature: Option<&str>) -> Result<Self, StoreError> {
        Ok(Self {
            client: client(url, root_pem, tls_feature)?,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: auth_core::store::DEFAULT_STORE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            confirm: None,
        })
    }

    /// The confirmation asked of a lease just won, if any: `WAIT` for
    /// the replicas (not on a cluster, where the replicas of the key's
    /// primary cannot be asked from here yet).
    fn confirmation(
        &self,
        op: &StoreOp,
        answer: &StoreAnswer,
    ) -> Result<Option<(u32, Duration, LeaseOwner)>, StoreError> {
        let (Some((replicas, within)), StoreOp::AcquireLease { owner, .. }, StoreAnswer::Lease(true)) =
            (self.confirm, op, answer)
        else {
            return Ok(None);
        };
        if matches!(self.client, Client::Cluster { .. }) {
            return Err(StoreError::new(
                "confirming leases on replicas is not available on a Redis Cluster; remove confirm_leases",
            ));
        }
        Ok(Some((replicas, within, *owner)))
    }
}

/// `WAIT replicas within`: how many replicas have every write so far.
fn wait_command(replicas: u32, within: Duration) -> redis::Cmd {
    let mut command = redis::cmd("WAIT");
    command.arg(replicas).arg(u64::try_from(within.as_millis()).unwrap_or(u64::MAX).max(1));
    command
}

/// What a lease is when `acknowledged` replicas of the `replicas` asked
/// confirmed it: held, or (too few: a failover could lose it) not held;
/// the caller then releases it.
fn confirmed(acknowledged: redis::Value, replicas: u32) -> bool {
    redis::from_redis_value::<i64>(acknowledged).is_ok_and(|n| n >= i64::from(replicas))
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: it may hold a password.
        f.debug_struct("Settings")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_are_checked_without_echoing_them() {
        let bad = [
            "redis://user:pa55word@[::1",
            "http://user:pa55word@host",
            "rediss://user:pa55word@[::1",
            "rediss://user:pa55word@host:6380/0#insecure",
        ];
        for url in bad {
            let error = super::client(url, None, None).unwrap_err();
            assert!(!error.message.contains("pa55word"), "{error}");
        }
        let fragment = super::client("rediss://host:6380/0#insecure", None, None).unwrap_err();
        assert!(fragment.message.contains("certificate checks cannot be turned off"), "{fragment}");
        let missing = super::client("rediss://host:6380/0", None, Some("tower-tls")).unwrap_err();
        assert!(missing.message.contains("enable the auth-store feature `tower-tls`"), "{missing}");
        assert!(super::client("redis://127.0.0.1:6379/0", None, None).is_ok());
        // A cluster by its seed nodes, each a URL of its own.
        assert_eq!(
            super::cluster_seeds("redis+cluster://user:pa55word@10.0.0.1:7000,10.0.0.2:7001/"),
            Some(vec![
                "redis://user:pa55word@10.0.0.1:7000/".to_owned(),
                "redis://user:pa55word@10.0.0.2:7001/".to_owned()
            ])
        );
        assert_eq!(super::cluster_seeds("rediss+cluster://h:1"), Some(vec!["rediss://h:1/".to_owned()]));
        assert_eq!(super::cluster_seeds("redis://h:1/0"), None);
        assert!(matches!(
            super::client("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/", None, None),
            Ok(super::Client::Cluster { .. })
        ));
        for bad in ["redis+cluster://", "redis+cluster://user:pa55word@[::1,h:2/", "redis+cluster://h:1/#insecure"] {
            let error = super::client(bad, None, None).unwrap_err();
            assert!(!error.message.contains("pa55word"), "{error}");
        }
        let tls = super::client("rediss+cluster://h:1,h:2/", None, Some("tower-tls")).unwrap_err();
        assert!(tls.message.contains("enable the auth-store feature `tower-tls`"), "{tls}");
        assert!(super::check_prefix("auth:{x}:").is_err() && super::check_prefix("auth-store:").is_ok());
        // Behind Sentinel: the Sentinels, the service, the primary's user and database.
        let Some(Ok(sentinel)) =
            super::sentinel("redis+sentinel://app:pa55word@10.0.0.1:26379,10.0.0.2:26379/tokens/3")
        else {
            panic!("a Sentinel URL")
        };
        assert_eq!(sentinel.sentinels, ["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]);
        assert_eq!((sentinel.service.as_str(), sentinel.node.db()), ("tokens", 3));
        assert_eq!(sentinel.node.username(), Some("app"));
        assert!(matches!(super::sentinel("redis+sentinel://h:1/mymaster"), Some(Ok(_))));
        assert!(super::sentinel("redis://h:1/0").is_none());
        for bad in ["redis+sentinel://h:1", "redis+sentinel://h:1/", "redis+sentinel://user:pa55word@[::1/x"] {
            let error = super::client(bad, None, None).unwrap_err();
            assert!(error.message.contains("Sentinel URL") && !error.message.contains("pa55word"), "{error}");
        }
        assert!(
            format!("{:?}", super::client("redis+sentinel://u:pa55word@h:1/s", None, None).unwrap())
                == "Sentinel(1 sentinels)"
        );
        let root = super::client("redis://127.0.0.1:6379/0", Some(b"pem"), None).unwrap_err();
        assert!(root.message.contains("use rediss://"), "{root}");
        #[cfg(feature = "tls")]
        {
            assert!(super::client("rediss://host:6380/0", None, None).is_ok());
            let pem = super::client("rediss://user:pa55word@host:6380/0", Some(b"not a certificate"), None);
            assert!(pem.is_err_and(|e| !e.message.contains("pa55word")));
        }
    }
}

#[cfg(feature = "tower")]
pub use self::asynchronous::RedisStore;

#[cfg(feature = "tower")]
mod asynchronous {
    use redis::aio::{ConnectionManager, ConnectionManagerConfig};
    use redis::cluster_async::ClusterConnection;

    use super::*;

    /// A connection to one server (redis-rs's manager, which reconnects by
    /// itself) or to a cluster (which follows its slots).
    #[derive(Clone)]
    enum Connection {
        Single(ConnectionManager),
        Cluster(ClusterConnection),
        /// To the primary the Sentinels named: dropped after an error, so
        /// that the next operation asks them again (a failover).
        Sentinel(ConnectionManager),
    }

    type Slot = std::sync::Arc<tokio::sync::Mutex<Option<Connection>>>;

    /// A Redis token store for the async token source; see the
    /// [module docs](super). Clones share the connection.
    #[derive(Clone)]
    pub struct RedisStore {
        settings: Settings,
        connection: Slot,
    }

    impl std::fmt::Debug for RedisStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisStore").field("settings", &self.settings).finish_non_exhaustive()
        }
    }

    /// The feature that `rediss://` needs here, when it is not built in.
    const TLS_FEATURE: Option<&str> = if cfg!(feature = "tower-tls") { None } else { Some("tower-tls") };

    impl RedisStore {
        /// A store at `url`: `redis://[user:password@]host:port/db`, or
        /// `rediss://...` (TLS, feature `tower-tls`) with the server's
        /// certificate checked against the system's trusted roots.
        /// Connects on first use.
        pub fn new(url: &str) -> Result<Self, StoreError> {
            Ok(Self::with(Settings::open(url, None, TLS_FEATURE)?))
        }

        /// A store at a `rediss://` `url` whose server certificate is
        /// checked against `root_pem` (a PEM CA certificate: a private CA)
        /// instead of the system's roots.
        pub fn with_root_certificate(url: &str, root_pem: &[u8]) -> Result<Self, StoreError> {
            Ok(Self::with(Settings::open(url, Some(root_pem), TLS_FEATURE)?))
        }

        fn with(settings: Settings) -> Self {
            Self { settings, connection: Slot::default() }
        }

        /// The key prefix (default `auth-store:`).
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

        /// A renewal lease counts as won only once `replicas` replicas
        /// have it (`WAIT`, up to `within`, which must stay below the
        /// store timeout): a lease a failover could lose is released and
        /// reported as not won, so the source waits for a peer instead of
        /// spending a refresh token another replica may spend too. For one
        /// primary with replicas (behind Sentinel); not on a cluster.
        pub fn confirm_leases(mut self, replicas: u32, within: Duration) -> Self {
            self.settings.confirm = Some((replicas, within));
            self
        }

        /// Connects unless connected. The attempt runs in a task of its
        /// own: a caller that stops waiting does not cancel it, and the
        /// callers that come meanwhile wait for it rather than start
        /// another (a failed attempt is followed by a new one).
        async fn connection(&self) -> Result<Connection, StoreError> {
            if let Ok(slot) = self.connection.try_lock() {
                if let Some(connection) = slot.as_ref() {
                    return Ok(connection.clone());
                }
            }
            let Settings { client, timeout, connect_timeout, .. } = self.settings.clone();
            let slot = Slot::clone(&self.connection);
            let attempt = tokio::spawn(async move {
                let mut slot = slot.lock().await;
                if let Some(connection) = slot.as_ref() {
                    return Ok(connection.clone());
                }
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1);
                let connected = match client {
                    Client::Single(client) => {
                        ConnectionManager::new_with_config(client, config).await.map(Connection::Single)
                    }
                    Client::Cluster { seeds, root_pem } => {
                        match cluster_client(&seeds, root_pem.as_deref(), connect_timeout, timeout) {
                            Ok(client) => client.get_async_connection().await.map(Connection::Cluster),
                            Err(error) => Err(error),
                        }
                    }
                    Client::Sentinel(sentinel) => {
                        let primary = match sentinel.client() {
                            Ok(mut sentinels) => tokio::time::timeout(connect_timeout, sentinels.async_get_client())
                                .await
                                .unwrap_or_else(|_| {
                                    Err(redis::RedisError::from((
                                        redis::ErrorKind::Io,
                                        "the Sentinels did not answer in time",
                                    )))
                                }),
                            Err(error) => Err(error),
                        };
                        match primary {
                            Ok(primary) => {
                                ConnectionManager::new_with_config(primary, config).await.map(Connection::Sentinel)
                            }
                            Err(error) => Err(error),
                        }
                    }
                };
                let connection = connected.map_err(|e| redis_error(&e))?;
                *slot = Some(connection.clone());
                Ok(connection)
            });
            attempt.await.unwrap_or_else(|_| Err(StoreError::new("redis: the connection attempt stopped")))
        }

        /// Carries out `op` on the record of `key` (connecting first
        /// unless connected).
        pub async fn execute_async(&self, key: &CacheKey, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
            let Prepared { command, reply } = prepare(&self.settings.prefix, key, op)?;
            let connection = self.connection().await?;
            let answered = answer(reply, self.query(&connection, &command).await?)?;
            let Some((replicas, within, owner)) = self.settings.confirmation(op, &answered)? else {
                return Ok(answered);
            };
            if confirmed(self.query(&connection, &wait_command(replicas, within)).await?, replicas) {
                return Ok(answered);
            }
            let release = prepare(&self.settings.prefix, key, &StoreOp::ReleaseLease { owner })?;
            self.query(&connection, &release.command).await?;
            Ok(StoreAnswer::Lease(false))
        }

        /// `command`'s reply on `connection`.
        async fn query(&self, connection: &Connection, command: &redis::Cmd) -> Result<redis::Value, StoreError> {
            match connection.clone() {
                Connection::Single(mut manager) => command.query_async(&mut manager).await,
                Connection::Cluster(mut cluster) => command.query_async(&mut cluster).await,
                Connection::Sentinel(mut manager) => {
                    let answer = command.query_async(&mut manager).await;
                    if answer.is_err() {
                        // The primary may have moved: ask the Sentinels next time.
                        self.connection.lock().await.take();
                    }
                    answer
                }
            }
            .map_err(|e| redis_error(&e))
        }
    }

    #[async_trait::async_trait]
    impl auth_core::store::TokenStore for RedisStore {
        async fn connect(&self) -> Result<(), StoreError> {
            self.connection().await.map(drop)
        }

        async fn execute(
            &self,
            key: &CacheKey,
            _now: std::time::SystemTime,
            op: &StoreOp,
        ) -> Result<StoreAnswer, StoreError> {
            self.execute_async(key, op).await
        }
    }
}

#[cfg(feature = "blocking")]
pub use self::synchronous::BlockingRedisStore;

#[cfg(feature = "blocking")]
mod synchronous {
    use std::sync::Mutex;

    use super::*;

    /// A Redis token store for the blocking token source (no async
    /// runtime); see the [module docs](super).
    pub struct BlockingRedisStore {
        settings: Settings,
        connection: Mutex<Option<Connection>>,
    }

    /// A connection to one server or to a cluster.
    enum Connection {
        Single(redis::Connection),
        Cluster(Box<redis::cluster::ClusterConnection>),
    }

    impl std::fmt::Debug for BlockingRedisStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("BlockingRedisStore").field("settings", &self.settings).finish_non_exhaustive()
        }
    }

    /// The feature that `rediss://` needs here, when it is not built in.
    const TLS_FEATURE: Option<&str> = if cfg!(feature = "tls") { None } else { Some("tls") };

    impl BlockingRedisStore {
        /// A store at `url`: `redis://[user:password@]host:port/db`, or
        /// `rediss://...` (TLS, feature `tls`) with the server's certificate
        /// checked against the system's trusted roots. Connects on first
        /// use, and again after a failure.
        pub fn new(url: &str) -> Result<Self, StoreError> {
            Ok(Self::with(Settings::open(url, None, TLS_FEATURE)?))
        }

        /// A store at a `rediss://` `url` whose server certificate is
        /// checked against `root_pem` (a PEM CA certificate: a private CA)
        /// instead of the system's roots.
        pub fn with_root_certificate(url: &str, root_pem: &[u8]) -> Result<Self, StoreError> {
            Ok(Self::with(Settings::open(url, Some(root_pem), TLS_FEATURE)?))
        }

        fn with(settings: Settings) -> Self {
            Self { settings, connection: Mutex::new(None) }
        }

        /// The key prefix (default `auth-store:`).
        pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
            self.settings.prefix = prefix.into();
            self
        }

        /// How long each answer may take (default 250 ms).
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

        /// Leases confirmed on replicas before they count; see
        /// [`RedisStore::confirm_leases`](super::RedisStore::confirm_leases).
        pub fn confirm_leases(mut self, replicas: u32, within: Duration) -> Self {
            self.settings.confirm = Some((replicas, within));
            self
        }

        /// Connects into `slot` unless it holds a connection.
        fn connect_into(&self, slot: &mut Option<Connection>) -> Result<(), StoreError> {
            let Settings { client, timeout, connect_timeout, .. } = &self.settings;
            if slot.is_some() {
                return Ok(());
            }
            let connection = match client {
                Client::Single(client) => {
                    let connection =
                        client.get_connection_with_timeout(*connect_timeout).map_err(|e| redis_error(&e))?;
                    connection.set_read_timeout(Some(*timeout)).map_err(|e| redis_error(&e))?;
                    connection.set_write_timeout(Some(*timeout)).map_err(|e| redis_error(&e))?;
                    Connection::Single(connection)
                }
                Client::Cluster { seeds, root_pem } => {
                    let client = cluster_client(seeds, root_pem.as_deref(), *connect_timeout, *timeout)
                        .map_err(|e| redis_error(&e))?;
                    Connection::Cluster(Box::new(client.get_connection().map_err(|e| redis_error(&e))?))
                }
                Client::Sentinel(sentinel) => {
                    // The current primary, asked at every connection.
                    let primary = sentinel.client().and_then(|mut s| s.get_client()).map_err(|e| redis_error(&e))?;
                    let connection =
                        primary.get_connection_with_timeout(*connect_timeout).map_err(|e| redis_error(&e))?;
                    connection.set_read_timeout(Some(*timeout)).map_err(|e| redis_error(&e))?;
                    connection.set_write_timeout(Some(*timeout)).map_err(|e| redis_error(&e))?;
                    Connection::Single(connection)
                }
            };
            *slot = Some(connection);
            Ok(())
        }
    }

    impl auth_core::store::BlockingTokenStore for BlockingRedisStore {
        fn connect(&self) -> Result<(), StoreError> {
            self.connect_into(&mut self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
        }

        fn execute(
            &self,
            key: &CacheKey,
            _now: std::time::SystemTime,
            op: &StoreOp,
        ) -> Result<StoreAnswer, StoreError> {
            let mut slot = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.connect_into(&mut slot)?;
            let Prepared { command, reply } = prepare(&self.settings.prefix, key, op)?;
            let answered = answer(reply, query(&mut slot, &command)?)?;
            let Some((replicas, within, owner)) = self.settings.confirmation(op, &answered)? else {
                return Ok(answered);
            };
            if confirmed(query(&mut slot, &wait_command(replicas, within))?, replicas) {
                return Ok(answered);
            }
            let release = prepare(&self.settings.prefix, key, &StoreOp::ReleaseLease { owner })?;
            query(&mut slot, &release.command)?;
            Ok(StoreAnswer::Lease(false))
        }
    }

    /// `command`'s reply on the connection in `slot`, which is emptied
    /// after an error (reconnect next time).
    fn query(slot: &mut Option<Connection>, command: &redis::Cmd) -> Result<redis::Value, StoreError> {
        let queried = match slot.as_mut() {
            Some(Connection::Single(connection)) => command.query(connection),
            Some(Connection::Cluster(cluster)) => command.query(cluster.as_mut()),
            None => return Err(StoreError::new("redis: not connected")),
        };
        queried.map_err(|e| {
            *slot = None;
            redis_error(&e)
        })
    }
}
