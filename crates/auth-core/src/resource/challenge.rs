//! What an API's `WWW-Authenticate` header asks of a client using Bearer
//! (RFC 6750 §3) or DPoP (RFC 9449 §7.1) tokens: the error, the scopes
//! it wants (§3.1 `insufficient_scope`), the authentication level (RFC
//! 9470 `acr_values`, `max_age`), where its protected resource metadata
//! is (RFC 9728 §5.1 `resource_metadata`), and the DPoP algorithms it
//! takes.
//!
//! The header's grammar (RFC 9110 §11.6.1) is read by the `http-auth`
//! crate, whole: a header with a syntax error anywhere gives no challenge
//! at all, so that nothing is taken from a challenge that was not read to
//! its end. Challenges of other schemes are read and skipped.
//!
//! ```
//! use auth_core::resource::challenge::{parse, Scheme};
//!
//! let header = concat!(
//!     r#"Basic realm="api", Bearer error="insufficient_scope", scope="read write", "#,
//!     r#"resource_metadata="https://api.example.com/.well-known/oauth-protected-resource""#,
//! );
//! let challenges = parse(header)?;
//! assert_eq!(challenges.len(), 1);
//! let bearer = &challenges[0];
//! assert_eq!(bearer.scheme(), Scheme::Bearer);
//! assert_eq!(bearer.error(), Some("insufficient_scope"));
//! assert_eq!(bearer.scopes().collect::<Vec<_>>(), ["read", "write"]);
//! assert_eq!(
//!     bearer.resource_metadata(),
//!     Some("https://api.example.com/.well-known/oauth-protected-resource")
//! );
//! # Ok::<(), auth_core::resource::challenge::ChallengeError>(())
//! ```

use http::header::WWW_AUTHENTICATE;
use http::HeaderMap;

/// The most `WWW-Authenticate` text read from one response (all its
/// fields together); a longer header is refused.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// The most characters kept of a parameter's value; a longer one is
/// refused.
const MAX_VALUE_LEN: usize = 2048;

/// A token scheme this library sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449).
    Dpop,
}

impl Scheme {
    fn named(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("Bearer") {
            Some(Self::Bearer)
        } else if name.eq_ignore_ascii_case("DPoP") {
            Some(Self::Dpop)
        } else {
            None
        }
    }
}

/// One Bearer or DPoP challenge, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    scheme: Scheme,
    realm: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    scope: Option<String>,
    resource_metadata: Option<String>,
    acr_values: Option<String>,
    max_age: Option<u64>,
    algs: Option<String>,
}

impl Challenge {
    /// Its scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `realm`.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// `error` (`invalid_token`, `insufficient_scope`, `invalid_request`,
    /// `use_dpop_nonce`, `insufficient_user_authentication`, ...).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// `error_description`: the API's own words (untrusted text; shown
    /// only through the library's redaction).
    pub fn error_description(&self) -> Option<&str> {
        self.error_description.as_deref()
    }

    /// The scopes of `scope` (RFC 6750 §3): with `insufficient_scope`, the
    /// scopes the request needs.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }

    /// `resource_metadata` (RFC 9728 §5.1): the URL of the API's protected
    /// resource metadata, as sent (checked when it is fetched).
    pub fn resource_metadata(&self) -> Option<&str> {
        self.resource_metadata.as_deref()
    }

    /// `acr_values` (RFC 9470 §3): the authentication context classes the
    /// API wants, space-separated, in order of preference.
    pub fn acr_values(&self) -> impl Iterator<Item = &str> {
        self.acr_values.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }

    /// `max_age` (RFC 9470 §3): how many seconds ago the user may have
    /// last authenticated at most.
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// `algs` (RFC 9449 §7.1): the DPoP proof algorithms the API takes.
    pub fn algs(&self) -> impl Iterator<Item = &str> {
        self.algs.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty())
    }
}

/// Why a `WWW-Authenticate` header was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// Longer than [`MAX_HEADER_LEN`], or a parameter value longer than
    /// 2,048 characters.
    #[error("the API's WWW-Authenticate header is too long to be read ({len} bytes or more)")]
    TooLong {
        /// Its length, or the parameter's.
        len: usize,
    },
    /// Not ASCII text, or not the grammar of RFC 9110 §11.6.1.
    #[error("the API's WWW-Authenticate header is malformed ({reason}); it was ignored")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// A parameter appears twice in one challenge, or has a value its
    /// specification does not allow.
    #[error("the API's {scheme} challenge has an unusable `{param}` parameter ({reason}); it was ignored")]
    Parameter {
        /// `Bearer` or `DPoP`.
        scheme: &'static str,
        /// The parameter (a name of a specification, never the API's text).
        param: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
}

/// The Bearer and DPoP challenges of every `WWW-Authenticate` field of
/// `headers`, in order. A field that cannot be read fails the whole.
pub fn from_headers(headers: &HeaderMap) -> Result<Vec<Challenge>, ChallengeError> {
    let mut total = 0;
    let mut challenges = Vec::new();
    for value in headers.get_all(WWW_AUTHENTICATE) {
        total += value.len();
        if total > MAX_HEADER_LEN {
            return Err(ChallengeError::TooLong { len: total });
        }
        let text = value.to_str().map_err(|_| ChallengeError::Malformed { reason: "not ASCII text" })?;
        challenges.extend(parse(text)?);
    }
    Ok(challenges)
}

/// The Bearer and DPoP challenges of one `WWW-Authenticate` value, in
/// order; a syntax error anywhere fails the whole value.
pub fn parse(header: &str) -> Result<Vec<Challenge>, ChallengeError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(ChallengeError::TooLong { len: header.len() });
    }
    let parsed =
        http_auth::parse_challenges(header).map_err(|_| ChallengeError::Malformed { reason: "not RFC 9110 syntax" })?;
    let mut challenges = Vec::new();
    for raw in parsed {
        let Some(scheme) = Scheme::named(raw.scheme) else { continue };
        challenges.push(read(scheme, &raw.params)?);
    }
    Ok(challenges)
}

/// The parameters of one challenge, each at most once.
fn read(scheme: Scheme, params: &[(&str, http_auth::ParamValue<'_>)]) -> Result<Challenge, ChallengeError> {
    let name = match scheme {
        Scheme::Bearer => "Bearer",
        Scheme::Dpop => "DPoP",
    };
    let mut challenge = Challenge {
        scheme,
        realm: None,
        error: None,
        error_description: None,
        scope: None,
        resource_metadata: None,
        acr_values: None,
        max_age: None,
        algs: None,
    };
    let mut max_age = None;
    for (key, value) in params {
        if value.unescaped_len() > MAX_VALUE_LEN {
            return Err(ChallengeError::TooLong { len: value.unescaped_len() });
        }
        let value = value.to_unescaped();
        let (param, slot) = match key.to_ascii_lowercase().as_str() {
            "realm" => ("realm", &mut challenge.realm),
            "error" => ("error", &mut challenge.error),
            "error_description" => ("error_description", &mut challenge.error_description),
            "scope" => ("scope", &mut challenge.scope),
            "resource_metadata" => ("resource_metadata", &mut challenge.resource_metadata),
            "acr_values" => ("acr_values", &mut challenge.acr_values),
            "max_age" => ("max_age", &mut max_age),
            "algs" => ("algs", &mut challenge.algs),
            // RFC 9110 §11.2: parameters a client does not know are ignored.
            _ => continue,
        };
        let bad = |reason| ChallengeError::Parameter { scheme: name, param, reason };
        if slot.is_some() {
            return Err(bad("given twice"));
        }
        let allowed = match param {
            // RFC 6749 §3.3 scope-tokens, space-separated.
            "scope" => value.bytes().all(|b| b == b' ' || ((0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')),
            // Names of authentication context classes and algorithms, space-separated.
            "acr_values" | "algs" => value.bytes().all(|b| b == b' ' || (0x21..=0x7e).contains(&b)),
            // RFC 6750 §3: error codes are NQSCHAR without spaces.
            "error" => !value.is_empty() && value.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            // RFC 6750 §3: NQSCHAR and spaces.
            "error_description" | "realm" => value.bytes().all(|b| b == b' ' || (0x20..=0x7e).contains(&b)),
            _ => true,
        };
        if !allowed {
            return Err(bad("characters its specification does not allow"));
        }
        *slot = Some(value);
    }
    if let Some(age) = max_age {
        let digits = !age.is_empty() && age.len() <= 19 && age.bytes().all(|b| b.is_ascii_digit());
        let age = digits.then(|| age.parse().ok()).flatten();
        challenge.max_age = Some(age.ok_or(ChallengeError::Parameter {
            scheme: name,
            param: "max_age",
            reason: "not a number of seconds",
        })?);
    }
    Ok(challenge)
}

#[cfg(test)]
mod tests;
