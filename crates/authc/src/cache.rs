//! The on-disk token cache: one file per cache key, mode 0600 in a 0700
//! directory, holding the access and refresh tokens but never the client
//! secret. A corrupt or unreadable file is ignored and replaced.
//!
//! The directory may be shared (`AUTHC_CACHE_DIR=/tmp/...`): it is used only
//! when it is owned by the user and writable by nobody else, files are
//! read only when they are regular files (never through a symbolic link,
//! never a FIFO, at most [`MAX_FILE_BYTES`]), and written through a
//! temporary file with an unpredictable name created exclusively, then
//! renamed into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::secret::{AccessTokenValue, ExposeSecret, RefreshToken};
use auth_core::{CacheKey, StoredToken};
use zeroize::Zeroizing;

const VERSION: u64 = 1;

/// The largest cache file read; a larger one is ignored.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

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

    /// The cache, if its directory is safe to use (created, private, when
    /// missing). Otherwise says why on stderr, once, and gives `None`: the
    /// command runs without a cache.
    pub fn open() -> Option<Self> {
        let cache = Self::locate()?;
        match cache.check() {
            Ok(()) => Some(cache),
            Err(reason) => {
                eprintln!("authc: not using the token cache: {reason}");
                None
            }
        }
    }

    /// Creates the directory (0700) when missing, and refuses one that
    /// another user could write to or that is a symbolic link.
    fn check(&self) -> Result<(), String> {
        let dir = self.dir.display();
        match std::fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return create_private_dir(&self.dir).map_err(|e| format!("cannot create {dir}: {e}"));
            }
            Err(e) => return Err(format!("cannot inspect {dir}: {e}")),
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!("{dir} is a symbolic link; point AUTHC_CACHE_DIR at a real directory"))
            }
            Ok(meta) if !meta.is_dir() => return Err(format!("{dir} is not a directory")),
            Ok(meta) => check_private(&meta).map_err(|why| {
                format!("{dir} {why}; point AUTHC_CACHE_DIR at a directory only you can write (chmod 700)")
            })?,
        }
        Ok(())
    }

    fn path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(format!("{}.json", key.fingerprint()))
    }

    /// The saved tokens for `key`, if any and readable.
    pub fn load(&self, key: &CacheKey) -> Option<StoredToken> {
        let path = self.path(key);
        let text = read_regular(&path)?;
        match parse(&text, key) {
            Some(stored) => Some(stored),
            None => {
                tracing::debug!(target: "authc", path = %path.display(), "ignoring an unreadable token cache file");
                None
            }
        }
    }

    /// Saves the tokens for `key`: written to a new temporary file with an
    /// unpredictable name, then renamed over the old one.
    pub fn save(&self, key: &CacheKey, stored: &StoredToken) -> std::io::Result<()> {
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
        // tempfile: O_EXCL, mode 0600, a random name nobody can plant a link at.
        let mut file = tempfile::Builder::new().prefix(".authc-").suffix(".tmp").tempfile_in(&self.dir)?;
        file.write_all(body.as_bytes())?;
        file.as_file().sync_all()?;
        file.persist(self.path(key)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Forgets the tokens for `key`.
    pub fn remove(&self, key: &CacheKey) {
        let _ = std::fs::remove_file(self.path(key));
    }
}

/// The text of `path` if it is a regular file of at most
/// [`MAX_FILE_BYTES`]: never through a symbolic link, and never blocking
/// on a FIFO or a device.
fn read_regular(path: &Path) -> Option<Zeroizing<String>> {
    let file = open_no_follow(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        tracing::debug!(target: "authc", path = %path.display(), "ignoring a token cache entry that is not a small regular file");
        return None;
    }
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_FILE_BYTES).read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    std::fs::OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(std::io::Error::other("a symbolic link"));
    }
    std::fs::File::open(path)
}

#[cfg(unix)]
fn check_private(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!("belongs to another user (uid {}, you are {me})", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("is writable by group or others (mode {:o})", meta.mode() & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_meta: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

fn parse(text: &str, key: &CacheKey) -> Option<StoredToken> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value["version"].as_u64()? != VERSION || value["cache_key"].as_str()? != key.canonical() {
        return None;
    }
    // Checked: a planted `u64::MAX` is an unreadable file, not a panic. A
    // far future is clamped by the token source like any lifetime.
    let expires_at = UNIX_EPOCH.checked_add(Duration::from_secs(value["expires_at"].as_u64()?))?;
    let remaining = expires_at.duration_since(SystemTime::now()).unwrap_or_default();
    let access = value["access_token"].as_str().filter(|t| !t.is_empty()).map(AccessTokenValue::from);
    let refresh = value["refresh_token"].as_str().filter(|t| !t.is_empty()).map(RefreshToken::from);
    if access.is_none() && refresh.is_none() {
        return None;
    }
    Some(StoredToken::new(access, remaining, refresh, value["scope"].as_str().map(str::to_owned)))
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
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
        cache.check().unwrap();
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

    fn saved(cache: &DiskCache, key: &CacheKey) {
        let stored = StoredToken::new(Some(AccessTokenValue::new("at")), Duration::from_secs(600), None, None);
        cache.save(key, &stored).unwrap();
    }

    #[test]
    fn absurd_expiry_is_no_panic_and_far_futures_are_only_clamped_later() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache { dir: dir.path().to_owned() };
        let key = key("https://a.example/token");
        let file = |expires_at: u64| {
            serde_json::json!({"version": 1, "cache_key": key.canonical(), "access_token": "at", "expires_at": expires_at})
                .to_string()
        };
        std::fs::write(cache.path(&key), file(u64::MAX)).unwrap();
        assert!(cache.load(&key).is_none(), "an expiry past what a SystemTime holds is unreadable, not a panic");
        std::fs::write(cache.path(&key), file(u64::MAX / 1_000_000_000)).unwrap();
        // Accepted here; handle_restore clamps it to the longest lifetime.
        let loaded = cache.load(&key).unwrap();
        assert!(loaded.expires_in > auth_core::response::MAX_LIFETIME);
    }

    #[cfg(unix)]
    #[test]
    fn fifos_symlinks_and_huge_files_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache { dir: dir.path().to_owned() };
        let key = key("https://a.example/token");
        let path = cache.path(&key);
        // A FIFO with no writer: a blocking open would wait forever.
        let status = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success());
        assert!(cache.load(&key).is_none());
        std::fs::remove_file(&path).unwrap();
        // A symbolic link to a valid file is not followed.
        let elsewhere = dir.path().join("planted.json");
        saved(&cache, &key);
        std::fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(cache.load(&key).is_none());
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(cache.load(&key).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn writes_never_go_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache { dir: dir.path().to_owned() };
        let key = key("https://a.example/token");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        // The old predictable names, and the cache path itself, as links.
        for name in [format!("{}.tmp{}", key.fingerprint(), std::process::id()), format!("{}.json", key.fingerprint())]
        {
            std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        }
        saved(&cache, &key);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        let meta = std::fs::symlink_metadata(cache.path(&key)).unwrap();
        assert!(meta.is_file(), "the link at the cache path was replaced by a file");
        assert!(cache.load(&key).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let reason = DiskCache { dir: shared.clone() }.check().unwrap_err();
        assert!(reason.contains("writable by group or others") && reason.contains("AUTHC_CACHE_DIR"), "{reason}");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(DiskCache { dir: shared.clone() }.check().is_ok());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&shared, &link).unwrap();
        assert!(DiskCache { dir: link }.check().unwrap_err().contains("symbolic link"));
        let fresh = dir.path().join("new").join("authc");
        DiskCache { dir: fresh.clone() }.check().unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
