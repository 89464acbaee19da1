//! `RedisStore`: the store for the async token source.

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

    settings_methods!();

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
        let timeout = self.settings.answer_timeout();
        let Settings { client, connect_timeout, .. } = self.settings.clone();
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
        let confirmation = self.settings.confirmation(key, op);
        let Prepared { command, reply } = prepare(&self.settings.prefix, key, op)?;
        let connection = self.connection().await?;
        let answered = answer(reply, self.query(&connection, &command).await?)?;
        let Some(confirmation) = confirmation.filter(|c| c.needed(&answered)) else {
            return Ok(answered);
        };
        let acknowledged = match connection.clone() {
            Connection::Cluster(mut cluster) => cluster
                .route_command(confirmation.wait(), confirmation.routing.clone())
                .await
                .map_err(|e| redis_error(&e))?,
            _ => self.query(&connection, &confirmation.wait()).await?,
        };
        let (release, settled) = confirmation.settle(answered, acknowledged);
        if let Some(owner) = release {
            let release = prepare(&self.settings.prefix, key, &StoreOp::ReleaseLease { owner })?;
            self.query(&connection, &release.command).await?;
        }
        settled
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

    fn longest_answer(&self) -> Option<Duration> {
        self.settings.longest_answer()
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
