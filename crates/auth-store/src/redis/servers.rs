//! Where the store's Redis is (one server, a Redis Cluster by its seed
//! nodes, or the primary Redis Sentinel names), read from its URL without
//! connecting, and the settings both stores share.

use std::time::Duration;

use auth_core::store::{LeaseOwner, StoreAnswer, StoreError, StoreOp};
use auth_core::CacheKey;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};

use super::DEFAULT_PREFIX;

/// Where the store's Redis is: one server, or a cluster known by its seed
/// nodes (the cluster client is made when connecting, with the timeouts
/// set then).
#[derive(Clone)]
pub(super) enum Client {
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
pub(super) struct Sentinel {
    /// The Sentinels, as `redis://host:port` URLs.
    pub(super) sentinels: Vec<String>,
    /// The monitored primary's name.
    pub(super) service: String,
    /// How to talk to the primary: user, password, database.
    pub(super) node: redis::RedisConnectionInfo,
}

impl Sentinel {
    /// The Sentinels' answer: a client of the current primary.
    pub(super) fn client(&self) -> redis::RedisResult<redis::sentinel::SentinelClient> {
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
pub(super) fn sentinel(url: &str) -> Option<Result<Sentinel, StoreError>> {
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
pub(super) fn cluster_seeds(url: &str) -> Option<Vec<String>> {
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
pub(super) fn client(url: &str, root_pem: Option<&[u8]>, tls_feature: Option<&str>) -> Result<Client, StoreError> {
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
pub(super) fn cluster_client(
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
pub(super) fn single(
    url: &str,
    root_pem: Option<&[u8]>,
    tls_feature: Option<&str>,
) -> Result<redis::Client, StoreError> {
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
pub(super) fn tls_client(url: &str, root_pem: Option<&[u8]>) -> redis::RedisResult<redis::Client> {
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
pub(super) struct Settings {
    pub(super) client: Client,
    pub(super) prefix: String,
    /// How long each answer may take.
    pub(super) timeout: Duration,
    /// How long one connection attempt may take.
    pub(super) connect_timeout: Duration,
    /// Leases confirmed on this many replicas within this time, if set.
    pub(super) confirm: Option<(u32, Duration)>,
}

impl Settings {
    /// Settings for `url` (see [`client`]), with the default prefix, a
    /// 250 ms answer timeout (the token sources' default store timeout)
    /// and [`DEFAULT_CONNECT_TIMEOUT`].
    pub(super) fn open(url: &str, root_pem: Option<&[u8]>, tls_feature: Option<&str>) -> Result<Self, StoreError> {
        Ok(Self {
            client: client(url, root_pem, tls_feature)?,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: auth_core::store::DEFAULT_STORE_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            confirm: None,
        })
    }

    /// With writes confirmed on replicas, how long an operation may take:
    /// the operation, the `WAIT` and a lease given back, each within
    /// [`Settings::answer_timeout`].
    pub(super) fn longest_answer(&self) -> Option<Duration> {
        self.confirm.map(|_| self.answer_timeout().saturating_mul(3))
    }

    /// How long one answer may take: the timeout, and with writes
    /// confirmed on replicas as long again as a `WAIT` may last.
    pub(super) fn answer_timeout(&self) -> Duration {
        self.timeout.saturating_add(self.confirm.map_or(Duration::ZERO, |(_, within)| within))
    }

    /// The confirmation `op` on the record of `key` needs when it writes
    /// (a lease won, a record written), with writes confirmed on replicas.
    pub(super) fn confirmation(&self, key: &CacheKey, op: &StoreOp) -> Option<Confirmation> {
        let (replicas, within) = self.confirm?;
        let lease = match op {
            StoreOp::AcquireLease { owner, .. } => Some(*owner),
            StoreOp::Write { .. } | StoreOp::CompareAndSet { .. } => None,
            _ => return None,
        };
        // On a cluster, the `WAIT` goes to the primary that took the write:
        // the one of the key's slot (the cache key's keys share it).
        let (record, _) = super::keys(&self.prefix, key);
        let route = Route::with_key(record.as_bytes(), SlotAddr::Master);
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
        Some(Confirmation { replicas, within, lease, routing })
    }
}

/// What an operation that wrote must see confirmed before it counts.
#[derive(Debug, Clone)]
pub(super) struct Confirmation {
    pub(super) replicas: u32,
    pub(super) within: Duration,
    /// The lease it took, to release when not confirmed.
    pub(super) lease: Option<LeaseOwner>,
    /// Where a cluster sends the `WAIT`.
    pub(super) routing: RoutingInfo,
}

impl Confirmation {
    /// Whether `answered` wrote something to confirm.
    pub(super) fn needed(&self, answered: &StoreAnswer) -> bool {
        matches!(answered, StoreAnswer::Lease(true) | StoreAnswer::Written(true))
    }

    /// The `WAIT` to send.
    pub(super) fn wait(&self) -> redis::Cmd {
        wait_command(self.replicas, self.within)
    }

    /// The answer once `acknowledged` came back from the `WAIT`, and the
    /// lease to release first when it was not confirmed: an error either
    /// way (not "a peer holds the lease": nobody does, and a token source
    /// told so would wait for a peer's token that never comes).
    pub(super) fn settle(
        &self,
        answered: StoreAnswer,
        acknowledged: redis::Value,
    ) -> (Option<LeaseOwner>, Result<StoreAnswer, StoreError>) {
        if confirmed(acknowledged, self.replicas) {
            return (None, Ok(answered));
        }
        let what = if self.lease.is_some() { "the lease was taken, and given back" } else { "written" };
        let error = StoreError::new(format!(
            "redis: {what}, but not confirmed by {} replica(s) within {:?}: a failover could lose it",
            self.replicas, self.within
        ));
        (self.lease, Err(error))
    }
}

/// `WAIT replicas within`: how many replicas have every write so far.
fn wait_command(replicas: u32, within: Duration) -> redis::Cmd {
    let mut command = redis::cmd("WAIT");
    command.arg(replicas).arg(u64::try_from(within.as_millis()).unwrap_or(u64::MAX).max(1));
    command
}

/// Whether `acknowledged` replicas (`WAIT`'s answer) are enough.
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
