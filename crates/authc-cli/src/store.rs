//! The token store authc keeps tokens in: which one the settings name, and
//! the tokens it holds for a configuration.

use std::path::PathBuf;
use std::sync::Arc;

use auth_core::store::{StoreAnswer, StoreOp};
use auth_core::{SourceConfig, StoredToken};
use auth_store::{Encrypted, FileStore, RedisStore};
use auth_tower::TokenStore;

use crate::failure::{notice, Failure};

/// The token store authc uses.
pub(crate) type Store = Arc<dyn TokenStore>;

/// The token store, unless `--store none`; an unusable one (an unsafe
/// directory, a bad URL or key) is said on stderr and not used.
pub(crate) fn token_store(choice: Option<&StoreChoice>) -> Result<Option<Store>, Failure> {
    let Some(choice) = choice else { return Ok(None) };
    let store: Result<Store, auth_core::store::StoreError> = match choice {
        StoreChoice::File(dir) => FileStore::open(dir).map(|s| Arc::new(s) as Store),
        StoreChoice::Redis(url) => {
            let confirm = confirmation()?;
            let redis = match std::env::var_os("AUTHC_STORE_CA_FILE") {
                None => RedisStore::new(url),
                Some(ca_file) => {
                    let pem = auth_core::setup::read_file_bytes(std::path::Path::new(&ca_file)).map_err(|e| {
                        Failure::usage(format!(
                            "cannot read AUTHC_STORE_CA_FILE {}: {e}",
                            std::path::Path::new(&ca_file).display()
                        ))
                    })?;
                    RedisStore::with_root_certificate(url, &pem)
                }
            };
            redis.map(|redis| match confirm {
                Some((replicas, within)) => Arc::new(redis.confirm_writes(replicas, within)) as Store,
                None => Arc::new(redis) as Store,
            })
        }
    };
    let store = match store {
        Ok(store) => store,
        Err(error) => {
            notice(&format!("not using the token cache: {}", error.message));
            return Ok(None);
        }
    };
    let Some(key_file) = std::env::var_os("AUTHC_STORE_KEY_FILE") else { return Ok(Some(store)) };
    let key = auth_core::setup::read_file_bytes(std::path::Path::new(&key_file)).map_err(|e| {
        Failure::usage(format!("cannot read AUTHC_STORE_KEY_FILE {}: {e}", std::path::Path::new(&key_file).display()))
    })?;
    let encrypted = Encrypted::from_key_bytes(store, &key)
        .map_err(|e| Failure::usage(format!("AUTHC_STORE_KEY_FILE: {}", e.message)))?;
    Ok(Some(Arc::new(encrypted)))
}

/// AUTHC_STORE_CONFIRM=REPLICAS or REPLICAS:MILLISECONDS: writes to Redis count once
/// that many replicas have them (within 500 ms unless said).
fn confirmation() -> Result<Option<(u32, std::time::Duration)>, Failure> {
    let Some(value) = std::env::var_os("AUTHC_STORE_CONFIRM") else { return Ok(None) };
    let value = value.to_string_lossy();
    let (replicas, within) = value.split_once(':').map_or((&*value, None), |(r, w)| (r, Some(w)));
    let bad = || Failure::usage(format!("AUTHC_STORE_CONFIRM={value}: expected REPLICAS[:MILLISECONDS], e.g. 1:500"));
    let replicas: u32 = replicas.trim().parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
    let within: u64 = match within {
        Some(ms) => ms.trim().parse().ok().filter(|ms| (1..=60_000).contains(ms)).ok_or_else(bad)?,
        None => 500,
    };
    Ok(Some((replicas, std::time::Duration::from_millis(within))))
}

/// The tokens the store holds for `config`, if any (without fetching).
pub(crate) async fn stored_tokens(store: &Store, config: &SourceConfig) -> Option<StoredToken> {
    let now = std::time::SystemTime::now();
    let key = config.cache_key();
    let Ok(StoreAnswer::Envelope(Some(envelope))) = store.execute(key, now, &StoreOp::Read).await else { return None };
    let record = envelope.open(key).ok()?;
    let remaining = record.expires_at().duration_since(now).unwrap_or_default();
    Some(StoredToken::new(
        record.access_token().cloned(),
        remaining,
        record.refresh_token().cloned(),
        record.scope().map(str::to_owned),
    ))
}

/// Where tokens are shared between runs.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// A directory (the cache directory by default).
    File(PathBuf),
    /// A Redis URL (it may hold a password: never shown).
    Redis(String),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(dir) => f.debug_tuple("File").field(dir).finish(),
            Self::Redis(_) => f.write_str("Redis([redacted])"),
        }
    }
}

/// Parses `--store`: `file`, `file:DIR`, `redis://...`, `rediss://...`,
/// `redis+cluster://...`, `rediss+cluster://...`, `redis+sentinel://...` or `none`.
pub(crate) fn store_choice(spec: &str) -> Result<Option<StoreChoice>, Failure> {
    let default_dir = || {
        std::env::var_os("AUTHC_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("authc")))
            .ok_or_else(|| Failure::usage("no cache directory is known: set AUTHC_CACHE_DIR or pass --store file:DIR"))
    };
    match spec {
        "none" => Ok(None),
        "file" => Ok(Some(StoreChoice::File(default_dir()?))),
        redis if ["redis://", "rediss://", "redis+cluster://", "rediss+cluster://", "redis+sentinel://"].iter().any(|s| redis.starts_with(s)) => {
            Ok(Some(StoreChoice::Redis(redis.to_owned())))
        }
        other => match other.strip_prefix("file:") {
            Some(dir) if !dir.is_empty() => Ok(Some(StoreChoice::File(PathBuf::from(dir)))),
            // Not quoted: a mistyped Redis URL may hold a password.
            _ => Err(Failure::usage("--store is not understood; use file, file:DIR, redis://HOST:PORT/DB, redis+cluster://HOST:PORT,HOST:PORT/ or none")),
        },
    }
}
