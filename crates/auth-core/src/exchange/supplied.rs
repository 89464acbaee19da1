//! Tokens supplied from outside, read when a request is due: a file the
//! platform rotates (a Kubernetes projected service account token, a CI
//! job's OIDC token), an environment variable, or a function.
//!
//! A file is read again at every request, unless it has not changed (same
//! modification time and length) and the token it held has not expired:
//! then the token read before is used without parsing it again. A token
//! past its own `exp` is never sent: the request fails with an error that
//! names the file (or variable) and says it expired, and the source tries
//! again later (the platform may rotate it meanwhile). Errors never hold
//! the token.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use auth_core::exchange::SuppliedToken;
//!
//! let dir = std::env::temp_dir().join(format!("supplied-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("token");
//! std::fs::write(&path, "opaque-token-1\n")?;
//! let token = SuppliedToken::file(&path);
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! assert_eq!(token.read("the subject token", now, false)?.as_str(), "opaque-token-1");
//! // A JWT is wanted: an opaque token is refused, naming the file.
//! let error = token.read("the client assertion", now, true).unwrap_err().to_string();
//! assert!(error.contains("not a JWT") && error.contains("token") && !error.contains("opaque-token-1"));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::TokenError;

/// The largest token file read.
pub const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// A function that supplies a token at the wall time of a request; its
/// error text is shown to callers, so it must not hold a secret.
pub type SupplyFn = dyn Fn(SystemTime) -> Result<String, String> + Send + Sync;

/// A token supplied from outside (see the [module docs](self)). Cheap to
/// clone: clones share the file's cache.
#[derive(Clone)]
pub struct SuppliedToken {
    inner: Arc<Supply>,
}

struct Supply {
    kind: Kind,
    /// Where it comes from, for messages: `file /path`, `variable NAME`.
    place: String,
    cache: Mutex<Option<Cached>>,
}

enum Kind {
    File(PathBuf),
    Env(String),
    Fn(Box<SupplyFn>),
}

/// A file's token as read, with what says whether it changed since.
struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    value: Zeroizing<String>,
    expires: Option<u64>,
    /// It is a JWT.
    jwt: bool,
}

impl fmt::Debug for SuppliedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SuppliedToken").field(&self.inner.place).finish()
    }
}

impl SuppliedToken {
    /// The token in the file at `path`, read when a request is due (and
    /// read again only once it changed or its token expired).
    pub fn file(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_path_buf();
        Self::with(format!("file {}", path.display()), Kind::File(path))
    }

    /// The token in the environment variable `name`, read when a request
    /// is due.
    pub fn env(name: impl Into<String>) -> Self {
        let name = name.into();
        Self::with(format!("variable {name}"), Kind::Env(name))
    }

    /// The token `supply` returns when a request is due; `name` says where
    /// it comes from (it goes in messages and in the cache key, never the
    /// token).
    pub fn from_fn(
        name: impl Into<String>,
        supply: impl Fn(SystemTime) -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        Self::with(name.into(), Kind::Fn(Box::new(supply)))
    }

    fn with(place: String, kind: Kind) -> Self {
        Self { inner: Arc::new(Supply { kind, place, cache: Mutex::new(None) }) }
    }

    /// Where the token comes from (`file /var/run/secrets/token`,
    /// `variable CI_JOB_JWT`, a function's name): for messages and
    /// `authc config check`.
    pub fn place(&self) -> &str {
        &self.inner.place
    }

    /// The token for a request at `wall`, as `role` (`the subject token`)
    /// names it in errors; `jwt`: it must be a JWT. A JWT past its `exp`
    /// is refused.
    pub fn read(&self, role: &str, wall: SystemTime, jwt: bool) -> Result<Zeroizing<String>, TokenError> {
        let failed = |reason: String| TokenError::Supplied { what: format!("{role} ({})", self.inner.place), reason };
        let now = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (value, expires) = match &self.inner.kind {
            Kind::File(path) => return self.read_file(path, now, jwt).map_err(failed),
            Kind::Env(name) => {
                let value = Zeroizing::new(std::env::var(name).map_err(|e| {
                    failed(match e {
                        std::env::VarError::NotPresent => "the variable is not set".to_owned(),
                        std::env::VarError::NotUnicode(_) => "the variable is not valid UTF-8".to_owned(),
                    })
                })?);
                checked(value, jwt).map_err(failed)?
            }
            Kind::Fn(supply) => checked(Zeroizing::new(supply(wall).map_err(failed)?), jwt).map_err(failed)?,
        };
        unexpired(expires, now).map_err(failed)?;
        Ok(value)
    }

    fn read_file(&self, path: &Path, now: u64, jwt: bool) -> Result<Zeroizing<String>, String> {
        let unreadable = |e: std::io::Error| format!("it cannot be read ({e})");
        let meta = std::fs::metadata(path).map_err(unreadable)?;
        let (modified, len) = (meta.modified().ok(), meta.len());
        let mut cache = self.inner.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cached) = cache.as_ref() {
            let unchanged = cached.modified.is_some() && cached.modified == modified && cached.len == len;
            if unchanged && cached.expires.is_none_or(|exp| exp > now) && (cached.jwt || !jwt) {
                return Ok(cached.value.clone());
            }
        }
        if len > MAX_TOKEN_FILE {
            return Err(format!("it is larger than {} KiB", MAX_TOKEN_FILE / 1024));
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(unreadable)?);
        let text = std::str::from_utf8(&bytes).map_err(|_| "it is not UTF-8 text".to_owned())?;
        let (value, expires) = checked(Zeroizing::new(text.to_owned()), jwt)?;
        let is_jwt = jwt_expiry(&value).is_ok();
        *cache = Some(Cached { modified, len, value: value.clone(), expires, jwt: is_jwt });
        unexpired(expires, now)?;
        Ok(value)
    }

    /// What goes in a cache key: where the token comes from.
    pub(crate) fn identity(&self) -> &str {
        &self.inner.place
    }
}

/// `value` trimmed and checked: not empty, one printable word, a JWT
/// when `jwt`; with the `exp` of a JWT.
fn checked(value: Zeroizing<String>, jwt: bool) -> Result<(Zeroizing<String>, Option<u64>), String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("it is empty".to_owned());
    }
    if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("it holds spaces, control characters or non-ASCII bytes: not a token".to_owned());
    }
    let expires = match jwt_expiry(trimmed) {
        Ok(expires) => expires,
        Err(()) if jwt => return Err("it is not a JWT (three base64url parts, the second a JSON object)".to_owned()),
        Err(()) => None,
    };
    Ok((Zeroizing::new(trimmed.to_owned()), expires))
}

/// The `exp` of a JWT (`None` without one); `Err` when `token` is not a JWT.
fn jwt_expiry(token: &str) -> Result<Option<u64>, ()> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(());
    };
    let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(payload).map_err(|_| ())?);
    let claims: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| ())?;
    let claims = claims.as_object().ok_or(())?;
    Ok(claims.get("exp").and_then(|exp| exp.as_u64().or_else(|| exp.as_f64().map(|f| f as u64))))
}

/// Refuses a token whose `exp` is not after `now` (Unix seconds).
fn unexpired(expires: Option<u64>, now: u64) -> Result<(), String> {
    match expires {
        Some(exp) if exp <= now => Err(format!("it expired {} s ago (exp {exp})", now - exp)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
