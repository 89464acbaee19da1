//! What names a token source's tokens: equal keys share tokens (in a
//! process, and through a store), different keys never do.

use std::fmt;

use http::Uri;

use super::SourceConfigBuilder;

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

impl SourceConfigBuilder {
    /// The cache key of the configuration being built, at `token_url`.
    pub(super) fn cache_key(&self, token_url: &Uri) -> CacheKey {
        let b = self;
        fn field(out: &mut String, name: &str, value: &str) {
            out.push_str(name);
            out.push('=');
            out.extend(form_urlencoded::byte_serialize(value.as_bytes()));
            out.push('\n');
        }
        let mut canonical = String::from("auth-core cache key v1\n");
        field(&mut canonical, "token_url", &token_url.to_string());
        field(&mut canonical, "client_id", &b.client_id);
        // Unchanged for client credentials, so that existing keys stay valid.
        field(&mut canonical, "grant_type", b.grant.as_str());
        if let Some(bearer) = &b.jwt_bearer {
            field(&mut canonical, "assertion", &bearer.identity());
        }
        if let Some(exchange) = &b.token_exchange {
            field(&mut canonical, "exchange", &exchange.identity());
        }
        if let Some(dpop) = &b.dpop {
            // DPoP-bound tokens are usable only with their key.
            field(&mut canonical, "dpop_jkt", dpop.thumbprint());
        }
        if let Some(certificate) = &b.client_certificate {
            // Certificate-bound tokens are usable only with their certificate.
            field(&mut canonical, "x5t_s256", certificate.thumbprint());
        }
        let mut scopes = b.scopes.clone();
        scopes.sort();
        field(&mut canonical, "scope", &scopes.join(" "));
        field(&mut canonical, "audience", b.audience.as_deref().unwrap_or(""));
        let mut resources = b.resources.clone();
        resources.sort();
        resources.dedup();
        for resource in &resources {
            field(&mut canonical, "resource", resource);
        }
        let mut params = b.params.clone();
        params.sort();
        for (name, value) in &params {
            field(
                &mut canonical,
                &format!("param.{}", form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()),
                value,
            );
        }
        CacheKey::from_canonical(canonical)
    }
}
