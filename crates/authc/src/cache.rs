//! The on-disk token cache: one file per cache key, mode 0600 in a 0700
//! directory, holding the access and refresh tokens but never the client
//! secret. A corrupt or unreadable file is ignored and replaced.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::secret::{AccessTokenValue, ExposeSecret, RefreshToken};
use auth_core::{CacheKey, StoredToken};
use zeroize::Zeroizing;

const VERSION: u64 = 1;

#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    /// `$AUTHC_CACHE_DIR`, else the user's cache directory + `authc`.
    pub fn locate() -> Option<Self> {
        let dir = std::env::var_os("AUTHC_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("authc")))?;
        Some(Self { dir })
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.fingerprint()))
    }

    /// The saved tokens for `key`, if any and readable.
    pub fn load(&self, key: &CacheKey) -> Option<StoredToken> {
        let path = self.path(key);
        let text = Zeroizing::new(std::fs::read_to_string(&path).ok()?);
        match parse(&text, key) {
            Some(stored) => Some(stored),
            None => {
                tracing::debug!(target: "authc", path = %path.display(), "ignoring an unreadable token cache file");
                None
            }
        }
    }

    /// Saves the tokens for `key` (atomically: a temporary file renamed).
    pub fn save(&self, key: &CacheKey, stored: &StoredToken) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let expires_at = SystemTime::now().checked_add(stored.expires_in).unwrap_or(UNIX_EPOCH);
        let expires_at = expires_at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let body = Zeroizing::new(
            serde_json::json!({
                "version": VERSION,
                "cache_key": key.canonical(),
                "access_token": stored.access_token.as_ref().map(|t| t.expose_secret()),
                "token_type": "Bearer",
                "expires_at": expires_at,
                "refresh_token": stored.refresh_token.as_ref().map(|t| t.expose_secret()),
                "scope": stored.scope,
            })
            .to_string(),
        );
        let path = self.path(key);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        write_private(&temporary, body.as_bytes())?;
        std::fs::rename(&temporary, &path)
    }

    /// Forgets the tokens for `key`.
    pub fn remove(&self, key: &CacheKey) {
        let _ = std::fs::remove_file(self.path(key));
    }
}

fn parse(text: &str, key: &CacheKey) -> Option<StoredToken> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value["version"].as_u64()? != VERSION || value["cache_key"].as_str()? != key.canonical() {
        return None;
    }
    let expires_at = UNIX_EPOCH + Duration::from_secs(value["expires_at"].as_u64()?);
    let remaining = expires_at.duration_since(SystemTime::now()).unwrap_or_default();
    let access = value["access_token"].as_str().filter(|t| !t.is_empty()).map(AccessTokenValue::from);
    let refresh = value["refresh_token"].as_str().filter(|t| !t.is_empty()).map(RefreshToken::from);
    if access.is_none() && refresh.is_none() {
        return None;
    }
    Some(StoredToken::new(access, remaining, refresh, value["scope"].as_str().map(str::to_owned)))
}

#[cfg(unix)]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::SourceConfig;

    fn key(url: &str) -> CacheKey {
        SourceConfig::builder(url, "id").client_secret("client-secret-value").build().unwrap().cache_key().clone()
    }

    #[test]
    fn round_trip_private_and_without_the_client_secret() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache { dir: dir.path().join("authc") };
        let key = key("https://a.example/token");
        let stored = StoredToken::new(
            Some(AccessTokenValue::new("at")),
            Duration::from_secs(600),
            Some(RefreshToken::new("rt")),
            None,
        );
        cache.save(&key, &stored).unwrap();
        let loaded = cache.load(&key).unwrap();
        assert_eq!(loaded.access_token.unwrap().expose_secret(), "at");
        assert!(loaded.expires_in > Duration::from_secs(590));
        let text = std::fs::read_to_string(cache.path(&key)).unwrap();
        assert!(!text.contains("client-secret-value"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(cache.path(&key)).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&cache.dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        // Another configuration never reads it.
        assert!(cache.load(&super::tests::key("https://b.example/token")).is_none());
        cache.remove(&key);
        assert!(cache.load(&key).is_none());
    }

    #[test]
    fn corrupt_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache { dir: dir.path().to_owned() };
        let key = key("https://a.example/token");
        for junk in ["", "{", "[]", r#"{"version":1}"#, "\u{0}\u{ff}"] {
            std::fs::write(cache.path(&key), junk).unwrap();
            assert!(cache.load(&key).is_none(), "{junk:?}");
        }
    }
}
