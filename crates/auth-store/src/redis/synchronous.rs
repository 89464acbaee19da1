//! `BlockingRedisStore`: the store for the blocking token source.

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

    settings_methods!();

    /// Connects into `slot` unless it holds a connection.
    fn connect_into(&self, slot: &mut Option<Connection>) -> Result<(), StoreError> {
        let timeout = &self.settings.answer_timeout();
        let Settings { client, connect_timeout, .. } = &self.settings;
        if slot.is_some() {
            return Ok(());
        }
        let connection = match client {
            Client::Single(client) => {
                let connection = client.get_connection_with_timeout(*connect_timeout).map_err(|e| redis_error(&e))?;
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
                let connection = primary.get_connection_with_timeout(*connect_timeout).map_err(|e| redis_error(&e))?;
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

    fn longest_answer(&self) -> Option<Duration> {
        self.settings.longest_answer()
    }

    fn execute(&self, key: &CacheKey, _now: std::time::SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        let confirmation = self.settings.confirmation(key, op);
        let mut slot = self.connection.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.connect_into(&mut slot)?;
        let Prepared { command, reply } = prepare(&self.settings.prefix, key, op)?;
        let answered = answer(reply, query(&mut slot, &command)?)?;
        let Some(confirmation) = confirmation.filter(|c| c.needed(&answered)) else {
            return Ok(answered);
        };
        let acknowledged = match slot.as_mut() {
            Some(Connection::Cluster(cluster)) => {
                let routed = cluster.route_command(&confirmation.wait(), confirmation.routing.clone());
                routed.map_err(|e| {
                    *slot = None;
                    redis_error(&e)
                })?
            }
            _ => query(&mut slot, &confirmation.wait())?,
        };
        let (release, settled) = confirmation.settle(answered, acknowledged);
        if let Some(owner) = release {
            let release = prepare(&self.settings.prefix, key, &StoreOp::ReleaseLease { owner })?;
            query(&mut slot, &release.command)?;
        }
        settled
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
