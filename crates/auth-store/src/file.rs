//! A token store in a directory: for processes on one host (CLI runs,
//! workers, several services sharing one client).
//!
//! Per cache key (named by its fingerprint, which holds no secret):
//!
//! - `<key>.record`: the envelope, JSON, mode 0600, replaced atomically (a
//!   temporary file with a random name created exclusively, then renamed);
//! - `<key>.lease`: an advisory exclusive lock (`flock`) held while the
//!   lease holder fetches. The operating system releases it when the
//!   holder's process dies, so a crashed fetch never blocks the others;
//! - `<key>.budget`: with a fetch budget, the requests counted in the
//!   last 24 hours (times and names, no secret), 0600, replaced atomically;
//! - `<key>.mutex`: a lock held for the few microseconds of a
//!   compare-and-set, compare-and-delete or budget count.
//!
//! The directory must be private: it is created 0700 when missing, and an
//! existing one is refused when it is a symbolic link, belongs to another
//! user or is writable by group or others. Record files are read only when
//! they are regular files of at most [`MAX_RECORD_BYTES`], never through a
//! symbolic link and never blocking (a FIFO planted there does not hang).

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use auth_core::store::{unix_ms, BudgetLog, Envelope, LeaseOwner, StoreAnswer, StoreError, StoreOp};
use auth_core::CacheKey;
use zeroize::Zeroizing;

/// The largest record file read; a larger one is ignored.
pub const MAX_RECORD_BYTES: u64 = 256 * 1024;

/// The largest budget file read: room for the most entries a budget may
/// hold (`BudgetLog::MAX_ENTRIES`, about 60 bytes each).
const MAX_BUDGET_BYTES: u64 = 8 * 1024 * 1024;

const FORMAT: u64 = 1;

/// A token store in a private directory; see the [module docs](self).
/// Clones share the leases they hold.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    /// The lease locks this store holds, by cache key and owner.
    leases: Arc<Mutex<HashMap<(String, LeaseOwner), File>>>,
}

impl FileStore {
    /// Opens (creating it 0700 when missing) the directory `dir`, refusing
    /// one that another user could write to.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        private_dir(&dir).map_err(StoreError::new)?;
        Ok(Self { dir, leases: Arc::new(Mutex::new(HashMap::new())) })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &CacheKey, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", key.fingerprint()))
    }

    /// Carries out `op` on the record of `key`, `now` being the wall time.
    pub fn execute_at(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        match op {
            StoreOp::Read => Ok(StoreAnswer::Envelope(self.read(key, now)?)),
            StoreOp::AcquireLease { owner, .. } => self.acquire(key, *owner).map(StoreAnswer::Lease),
            StoreOp::Write { envelope, release } => {
                let written = self.locked(key, |store| {
                    let newer = store.stored(key)?.is_none_or(|e| e.generation < envelope.generation);
                    if newer {
                        store.write(key, envelope)?;
                    }
                    Ok(newer)
                })?;
                if let Some(owner) = release {
                    self.release(key, *owner);
                }
                Ok(StoreAnswer::Written(written))
            }
            StoreOp::CompareAndSet { envelope, expected } => {
                let written = self.locked(key, |store| {
                    let same = store.read(key, now)?.map_or(0, |e| e.generation) == *expected;
                    if same {
                        store.write(key, envelope)?;
                    }
                    Ok(same)
                })?;
                Ok(StoreAnswer::Written(written))
            }
            StoreOp::Invalidate { fingerprint } => {
                self.locked(key, |store| {
                    let path = store.path(key, "record");
                    if store.stored(key)?.is_some_and(|e| &e.fingerprint == fingerprint) {
                        std::fs::remove_file(&path).map_err(|e| io_error("delete the record", &e))?;
                    }
                    Ok(())
                })?;
                Ok(StoreAnswer::Done)
            }
            StoreOp::ReleaseLease { owner } => {
                self.release(key, *owner);
                Ok(StoreAnswer::Done)
            }
            StoreOp::SpendBudget { limit, window, at_unix_ms, slot } => self.locked(key, |store| {
                let mut log = store.budget(key)?;
                let answer = log.spend(*limit, *window, *at_unix_ms, slot);
                store.replace(key, "budget", &log.encode())?;
                Ok(StoreAnswer::Budget(answer))
            }),
            StoreOp::RefundBudget { slot } => self.locked(key, |store| {
                let mut log = store.budget(key)?;
                log.refund(slot);
                store.replace(key, "budget", &log.encode())?;
                Ok(StoreAnswer::Done)
            }),
            _ => Err(StoreError::new("an operation this file store does not know")),
        }
    }

    /// The stored envelope if it is readable and its token not expired at
    /// `now`.
    fn read(&self, key: &CacheKey, now: SystemTime) -> Result<Option<Envelope>, StoreError> {
        Ok(self.stored(key)?.filter(|envelope| envelope.expires_at_unix_ms > unix_ms(now)))
    }

    /// The stored envelope if it is readable, expired or not.
    fn stored(&self, key: &CacheKey) -> Result<Option<Envelope>, StoreError> {
        let Some(text) = read_regular(&self.path(key, "record"))? else { return Ok(None) };
        let envelope = parse_envelope(&text);
        if envelope.is_none() {
            tracing::debug!(target: "auth_store", "ignoring an unreadable record file");
        }
        Ok(envelope)
    }

    /// The budget log (empty when missing or unreadable).
    fn budget(&self, key: &CacheKey) -> Result<BudgetLog, StoreError> {
        let text = read_regular_capped(&self.path(key, "budget"), MAX_BUDGET_BYTES)?;
        Ok(text.map_or_else(BudgetLog::default, |text| BudgetLog::decode(&text)))
    }

    fn write(&self, key: &CacheKey, envelope: &Envelope) -> Result<(), StoreError> {
        let payload =
            std::str::from_utf8(&envelope.payload).map_err(|_| StoreError::new("a payload that is not text"))?;
        let body = Zeroizing::new(
            serde_json::json!({
                "format": FORMAT,
                "generation": envelope.generation,
                "fingerprint": envelope.fingerprint,
                "expires_at_ms": envelope.expires_at_unix_ms,
                "payload": payload,
            })
            .to_string(),
        );
        self.replace(key, "record", &body)
    }

    /// Replaces `<key>.<suffix>` with `body` atomically: a temporary file
    /// (0600, random name, created exclusively) renamed over it.
    fn replace(&self, key: &CacheKey, suffix: &str, body: &str) -> Result<(), StoreError> {
        let mut file = tempfile::Builder::new()
            .prefix(".auth-store-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(|e| io_error("create a temporary file", &e))?;
        file.write_all(body.as_bytes()).map_err(|e| io_error(&format!("write the {suffix} file"), &e))?;
        file.as_file().sync_all().map_err(|e| io_error(&format!("write the {suffix} file"), &e))?;
        file.persist(self.path(key, suffix)).map_err(|e| io_error(&format!("replace the {suffix} file"), &e.error))?;
        Ok(())
    }

    /// Runs `f` holding the key's mutex lock.
    fn locked<T>(&self, key: &CacheKey, f: impl FnOnce(&Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let lock = open_lock(&self.path(key, "mutex"))?;
        lock.lock().map_err(|e| io_error("lock the record", &e))?;
        let outcome = f(self);
        let _ = lock.unlock();
        outcome
    }

    fn acquire(&self, key: &CacheKey, owner: LeaseOwner) -> Result<bool, StoreError> {
        let mut leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let slot = (key.fingerprint().to_owned(), owner);
        if leases.contains_key(&slot) {
            return Ok(true);
        }
        let lock = open_lock(&self.path(key, "lease"))?;
        match lock.try_lock() {
            Ok(()) => {
                leases.insert(slot, lock);
                Ok(true)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(io_error("lock the lease", &e)),
        }
    }

    fn release(&self, key: &CacheKey, owner: LeaseOwner) {
        let mut leases = self.leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lock) = leases.remove(&(key.fingerprint().to_owned(), owner)) {
            let _ = lock.unlock();
        }
    }
}

fn io_error(what: &str, error: &std::io::Error) -> StoreError {
    StoreError::new(format!("could not {what}: {error}"))
}

fn parse_envelope(text: &str) -> Option<Envelope> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value["format"].as_u64()? != FORMAT {
        return None;
    }
    Some(Envelope {
        generation: value["generation"].as_u64()?,
        fingerprint: value["fingerprint"].as_str()?.to_owned(),
        expires_at_unix_ms: value["expires_at_ms"].as_u64()?,
        payload: Zeroizing::new(value["payload"].as_str()?.as_bytes().to_vec()),
    })
}

/// Opens (creating, 0600) a lock file, never through a symbolic link.
fn open_lock(path: &Path) -> Result<File, StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path).map_err(|e| io_error("open a lock file", &e))
}

/// The text of `path` if it is a regular file of at most
/// [`MAX_RECORD_BYTES`] (`None` when missing or not such a file): never
/// through a symbolic link, and never blocking on a FIFO.
pub fn read_regular(path: &Path) -> Result<Option<Zeroizing<String>>, StoreError> {
    read_regular_capped(path, MAX_RECORD_BYTES)
}

/// [`read_regular`] with a cap of `cap` bytes.
fn read_regular_capped(path: &Path, cap: u64) -> Result<Option<Zeroizing<String>>, StoreError> {
    let file = match open_no_follow(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(_) => return Ok(None),
    };
    let meta = file.metadata().map_err(|e| io_error("inspect a record", &e))?;
    if !meta.is_file() || meta.len() > cap {
        tracing::debug!(target: "auth_store", "ignoring a record that is not a small regular file");
        return Ok(None);
    }
    let mut text = Zeroizing::new(String::new());
    if file.take(cap).read_to_string(&mut text).is_err() {
        return Ok(None);
    }
    Ok(Some(text))
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    std::fs::OpenOptions::new().read(true).custom_flags(flags.bits() as i32).open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(std::io::Error::other("a symbolic link"));
    }
    File::open(path)
}

/// Creates `dir` (0700) when missing; refuses one that is a symbolic link,
/// not a directory, owned by another user or writable by group or others.
/// The error says why and what to do.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(dir).map_err(|e| format!("cannot create {shown}: {e}"))
        }
        Err(e) => Err(format!("cannot inspect {shown}: {e}")),
        Ok(meta) if meta.file_type().is_symlink() => Err(format!("{shown} is a symbolic link; use a real directory")),
        Ok(meta) if !meta.is_dir() => Err(format!("{shown} is not a directory")),
        Ok(meta) => {
            check_private(&meta).map_err(|why| format!("{shown} {why}; use a directory only you can write (chmod 700)"))
        }
    }
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

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(feature = "tower")]
#[async_trait::async_trait]
impl auth_core::store::TokenStore for FileStore {
    async fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        // File IO and the short record lock block: off the async threads.
        let (store, key, op) = (self.clone(), key.clone(), op.clone());
        tokio::task::spawn_blocking(move || store.execute_at(&key, now, &op))
            .await
            .unwrap_or_else(|e| Err(StoreError::new(format!("the file store task failed: {e}"))))
    }
}

#[cfg(feature = "blocking")]
impl auth_core::store::BlockingTokenStore for FileStore {
    fn execute(&self, key: &CacheKey, now: SystemTime, op: &StoreOp) -> Result<StoreAnswer, StoreError> {
        self.execute_at(key, now, op)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use auth_core::store::Record;
    use auth_core::SourceConfig;

    use super::*;

    fn key(url: &str) -> CacheKey {
        SourceConfig::builder(url, "id").client_secret("s").build().unwrap().cache_key().clone()
    }

    fn envelope(key: &CacheKey, token: &str, generation: u64, now: SystemTime) -> Envelope {
        Envelope::seal(&Record::new(key, token, now + Duration::from_secs(3600)), generation)
    }

    #[test]
    fn the_protocol_on_files() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (FileStore::open(dir.path().join("s")).unwrap(), FileStore::open(dir.path().join("s")).unwrap());
        let key = key("https://a.example/token");
        let now = SystemTime::now();
        let lease = |store: &FileStore, owner| match store.execute_at(
            &key,
            now,
            &StoreOp::AcquireLease { owner, ttl: Duration::from_secs(40) },
        ) {
            Ok(StoreAnswer::Lease(won)) => won,
            other => panic!("{other:?}"),
        };
        let (owner_a, owner_b) = (LeaseOwner::new(1), LeaseOwner::new(2));
        assert!(lease(&a, owner_a));
        assert!(!lease(&b, owner_b), "one lease across two stores (two processes)");
        let write = |store: &FileStore, generation, token, release| {
            store.execute_at(&key, now, &StoreOp::Write { envelope: envelope(&key, token, generation, now), release })
        };
        assert!(matches!(write(&a, 2, "t2", Some(owner_a)).unwrap(), StoreAnswer::Written(true)));
        assert!(lease(&b, owner_b), "the write released a's lease");
        assert!(matches!(write(&b, 1, "t1", None).unwrap(), StoreAnswer::Written(false)), "older never overwrites");
        let read = |store: &FileStore, at| match store.execute_at(&key, at, &StoreOp::Read).unwrap() {
            StoreAnswer::Envelope(e) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(read(&b, now).unwrap().open(&key).unwrap().access_token_value(), Some("t2"));
        assert!(read(&b, now + Duration::from_secs(3601)).is_none(), "expired with its token");
        let invalidate = |fingerprint: &str| {
            a.execute_at(&key, now, &StoreOp::Invalidate { fingerprint: fingerprint.to_owned() }).unwrap();
        };
        invalidate("not-the-stored-one");
        assert!(read(&a, now).is_some());
        invalidate(&read(&a, now).unwrap().fingerprint);
        assert!(read(&a, now).is_none());
        b.execute_at(&key, now, &StoreOp::ReleaseLease { owner: owner_b }).unwrap();
        assert!(lease(&a, owner_a));
        // Files are private and hold no client secret.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert!(matches!(write(&a, 5, "t5", None).unwrap(), StoreAnswer::Written(true)));
            for entry in std::fs::read_dir(a.dir()).unwrap() {
                let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600);
            }
            assert_eq!(std::fs::metadata(a.dir()).unwrap().permissions().mode() & 0o777, 0o700);
        }
    }

    #[test]
    fn a_dead_holder_releases_its_lease() {
        let dir = tempfile::tempdir().unwrap();
        let key = key("https://a.example/token");
        let ttl = Duration::from_secs(40);
        let holder = FileStore::open(dir.path()).unwrap();
        let other = FileStore::open(dir.path()).unwrap();
        let (owner_holder, owner_other) = (LeaseOwner::new(1), LeaseOwner::new(2));
        assert!(matches!(
            holder.execute_at(&key, SystemTime::now(), &StoreOp::AcquireLease { owner: owner_holder, ttl }),
            Ok(StoreAnswer::Lease(true))
        ));
        assert!(matches!(
            other.execute_at(&key, SystemTime::now(), &StoreOp::AcquireLease { owner: owner_other, ttl }),
            Ok(StoreAnswer::Lease(false))
        ));
        drop(holder); // its process ends: the lock file descriptor closes
        assert!(matches!(
            other.execute_at(&key, SystemTime::now(), &StoreOp::AcquireLease { owner: owner_other, ttl }),
            Ok(StoreAnswer::Lease(true))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn unsafe_directories_and_planted_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let error = FileStore::open(&shared).unwrap_err();
        assert!(error.message.contains("writable by group or others"), "{error}");
        let link = dir.path().join("link");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&shared, &link).unwrap();
        assert!(FileStore::open(&link).unwrap_err().message.contains("symbolic link"));
        // A FIFO or a link at the record path is not read (and does not hang).
        let store = FileStore::open(&shared).unwrap();
        let key = key("https://a.example/token");
        let record = store.path(&key, "record");
        assert!(std::process::Command::new("mkfifo").arg(&record).status().unwrap().success());
        assert!(matches!(store.execute_at(&key, SystemTime::now(), &StoreOp::Read), Ok(StoreAnswer::Envelope(None))));
        std::fs::remove_file(&record).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, &record).unwrap();
        assert!(matches!(store.execute_at(&key, SystemTime::now(), &StoreOp::Read), Ok(StoreAnswer::Envelope(None))));
        let now = SystemTime::now();
        let write = StoreOp::Write { envelope: envelope(&key, "t", 1, now), release: None };
        assert!(matches!(store.execute_at(&key, now, &write), Ok(StoreAnswer::Written(true))));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched", "never written through a link");
    }
}
