//! What names a token source's tokens: equal keys share tokens (in a
//! process, and through a store), different keys never do.

use std::fmt;

/// Identifies the tokens a configuration obtains: two configurations share
/// a key exactly when their tokens are interchangeable.
///
/// It is derived from the token URL, the client id, the grant (client
/// credentials or a user's sign-in), the scopes
/// (as a set), the audience, the resources and the extra parameters. It
/// holds no secret: changing a client secret does not change which tokens
/// the client gets. [`CacheKey::fingerprint`] is a SHA-256 of the canonical
/// form, stable across versions of this crate and across runs, and safe to
/// use as a file name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    canonical: String,
    fingerprint: String,
}

impl CacheKey {
    /// The key of a canonical form (see [`SourceConfigBuilder`]'s
    /// `cache_key`): its fingerprint computed here.
    ///
    /// [`SourceConfigBuilder`]: super::SourceConfigBuilder
    pub(crate) fn from_canonical(canonical: String) -> Self {
        let digest = crate::text::sha256(canonical.as_bytes());
        let fingerprint = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Self { canonical, fingerprint }
    }

    /// The canonical, human-readable form (one `name=value` per line,
    /// values form-urlencoded). Holds no secret.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// A SHA-256 of the canonical form, as 64 lowercase hex digits.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.fingerprint[..16])
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint[..16])
    }
}
