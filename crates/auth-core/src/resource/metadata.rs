//! OAuth 2.0 protected resource metadata (RFC 9728), sans-IO: where an
//! API's metadata is, what to accept from it, and which authorization
//! server to sign in at.
//!
//! An API names its metadata in its 401's challenge (`resource_metadata`,
//! [`super::challenge`]) or serves it at the well-known URL of its
//! resource identifier ([`metadata_url`]). Either way the document is
//! checked before anything in it is used:
//!
//! - it is JSON of at most [`MAX_METADATA_LEN`] bytes;
//! - its `resource` is the API's: identical to the identifier the
//!   well-known URL was made from, or, for metadata named by a challenge,
//!   to the URL requested or a path prefix of it on the same origin
//!   (RFC 9728 §3.3, with the prefix rule of draft-ietf-oauth-rfc9728bis);
//! - its authorization servers are issuer identifiers (https, or http to
//!   a loopback host only), and one is used only if it is on the API's
//!   origin or on an origin the user allowed ([`Origins`]);
//! - the metadata URL a challenge names is fetched only if it is on the
//!   API's origin or an allowed one: an API cannot send the client to an
//!   arbitrary host.
//!
//! ```
//! use auth_core::resource::metadata::{metadata_url, parse_resource_metadata, Expected, Origins};
//!
//! let url = metadata_url("https://api.example.com/v1")?;
//! assert_eq!(url, "https://api.example.com/.well-known/oauth-protected-resource/v1");
//! let document = br#"{"resource":"https://api.example.com/v1",
//!   "authorization_servers":["https://api.example.com/auth"],
//!   "scopes_supported":["read","write"]}"#;
//! let metadata = parse_resource_metadata(document, Expected::Identifier("https://api.example.com/v1"))?;
//! let issuer = metadata.authorization_server(&Origins::default())?;
//! assert_eq!(issuer, "https://api.example.com/auth");
//! # Ok::<(), auth_core::resource::metadata::ResourceError>(())
//! ```

use http::Uri;
use serde_json::Value;

use crate::config::validate_endpoint;
use crate::error::ConfigError;

/// The path suffix of the well-known URL (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The largest metadata document read; a longer one is refused.
pub const MAX_METADATA_LEN: usize = 64 * 1024;

/// The most entries taken from each list of a document.
const MAX_LIST: usize = 64;

/// Why protected resource metadata was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceError {
    /// A URL (the resource, the metadata's, an authorization server's)
    /// breaks the rules for endpoints.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A resource identifier with a query or fragment (RFC 9728 §1.2).
    #[error("`{url}` cannot identify a protected resource: it has a query or fragment (RFC 9728 §1.2)")]
    NotAnIdentifier {
        /// The URL, without its query and fragment.
        url: String,
    },
    /// Longer than [`MAX_METADATA_LEN`].
    #[error("the API's protected resource metadata is larger than {max} bytes; refused")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// Not the JSON object RFC 9728 §2 describes.
    #[error("the API's protected resource metadata is malformed ({reason}); refused")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// Its `resource` is not the API's (RFC 9728 §3.3): the document
    /// describes another resource, or an attacker's.
    #[error(
        "the protected resource metadata describes `{got}`, not `{expected}` (RFC 9728 §3.3): it was refused; \
         check the API's URL"
    )]
    ResourceMismatch {
        /// The resource the client asked about.
        expected: String,
        /// What the document says (an excerpt).
        got: String,
    },
    /// No authorization server is named.
    #[error("the API's protected resource metadata names no authorization server; configure one by hand")]
    NoAuthorizationServer,
    /// The authorization servers, or the metadata URL a challenge named,
    /// are on origins the user did not allow.
    #[error(
        "the API at {resource} sends the client to {origin}, another origin; refused. If you trust it, allow \
         that origin explicitly (Origins::allow(\"{origin}\"))"
    )]
    OriginNotAllowed {
        /// The API's origin.
        resource: String,
        /// The origin it names.
        origin: String,
    },
}

/// The origins, besides the API's own, that discovery may contact: its
/// metadata's and its authorization servers'. None by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    allowed: Vec<String>,
}

impl Origins {
    /// Allows `origin` (`https://id.example.com`, or any URL on it).
    pub fn allow(mut self, origin: &str) -> Result<Self, ResourceError> {
        let uri = validate_endpoint(origin, false)?;
        self.allowed.push(origin_of(&uri));
        Ok(self)
    }

    /// Whether `uri` may be contacted for the API at `resource`.
    fn admit(&self, resource: &Uri, uri: &Uri) -> Result<(), ResourceError> {
        let origin = origin_of(uri);
        if origin == origin_of(resource) || self.allowed.contains(&origin) {
            Ok(())
        } else {
            Err(ResourceError::OriginNotAllowed { resource: origin_of(resource), origin })
        }
    }
}

/// `scheme://host[:port]`, lowercase.
pub(crate) fn origin_of(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let authority = uri.authority().map_or(String::new(), |a| a.as_str().to_ascii_lowercase());
    format!("{scheme}://{authority}")
}

/// Checks a resource identifier (RFC 9728 §1.2): an https URL (http to a
/// loopback host) without query or fragment.
pub fn validate_resource(resource: &str) -> Result<Uri, ResourceError> {
    let uri = validate_endpoint(resource, false)?;
    if uri.query().is_some() || resource.contains('#') {
        let url = resource.split(['?', '#']).next().unwrap_or_default().to_owned();
        return Err(ResourceError::NotAnIdentifier { url });
    }
    Ok(uri)
}

/// The well-known URL of `resource`'s metadata (RFC 9728 §3.1): the
/// suffix between its host and its path.
pub fn metadata_url(resource: &str) -> Result<String, ResourceError> {
    let uri = validate_resource(resource)?;
    let path = uri.path().trim_end_matches('/');
    Ok(format!("{}{WELL_KNOWN}{path}", origin_of(&uri)))
}

/// The metadata URL a challenge named for a request to `requested`,
/// checked: an https URL (http to a loopback host) on the API's origin or
/// an allowed one.
pub fn challenge_metadata_url(requested: &str, named: &str, origins: &Origins) -> Result<Uri, ResourceError> {
    let resource = validate_endpoint(requested, false)?;
    let uri = validate_endpoint(named, false)?;
    origins.admit(&resource, &uri)?;
    Ok(uri)
}

/// What the metadata is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected<'a> {
    /// The resource identifier its well-known URL was made from: `resource`
    /// must be identical.
    Identifier(&'a str),
    /// The URL requested when the API's challenge named the metadata:
    /// `resource` must be it, or a path prefix of it on its origin.
    Requested(&'a str),
}

/// What protected resource metadata says, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes_supported: Vec<String>,
    bearer_methods_supported: Vec<String>,
    dpop_algs: Vec<String>,
    dpop_bound_tokens_required: bool,
    resource_name: Option<String>,
}

impl ResourceMetadata {
    /// `resource`: the API's resource identifier, the RFC 8707 `resource`
    /// of every token request for it.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// `authorization_servers`: their issuer identifiers, as listed.
    pub fn authorization_servers(&self) -> &[String] {
        &self.authorization_servers
    }

    /// The authorization server to use: the first listed on the API's
    /// origin or an allowed one.
    pub fn authorization_server(&self, origins: &Origins) -> Result<&str, ResourceError> {
        let resource = validate_endpoint(&self.resource, false)?;
        let mut refused = None;
        for issuer in &self.authorization_servers {
            let uri = validate_endpoint(issuer, false)?;
            match origins.admit(&resource, &uri) {
                Ok(()) => return Ok(issuer),
                Err(error) => refused = refused.or(Some(error)),
            }
        }
        Err(refused.unwrap_or(ResourceError::NoAuthorizationServer))
    }

    /// `scopes_supported`.
    pub fn scopes_supported(&self) -> &[String] {
        &self.scopes_supported
    }

    /// `bearer_methods_supported` (`header`, `body`, `query`).
    pub fn bearer_methods_supported(&self) -> &[String] {
        &self.bearer_methods_supported
    }

    /// `dpop_signing_alg_values_supported`.
    pub fn dpop_algs(&self) -> &[String] {
        &self.dpop_algs
    }

    /// `dpop_bound_access_tokens_required`.
    pub fn dpop_bound_tokens_required(&self) -> bool {
        self.dpop_bound_tokens_required
    }

    /// `resource_name`, for people.
    pub fn resource_name(&self) -> Option<&str> {
        self.resource_name.as_deref()
    }
}

/// Reads and checks a metadata document (see the [module docs](self)).
pub fn parse_resource_metadata(body: &[u8], expected: Expected<'_>) -> Result<ResourceMetadata, ResourceError> {
    if body.len() > MAX_METADATA_LEN {
        return Err(ResourceError::TooLarge { max: MAX_METADATA_LEN });
    }
    let json: Value =
        serde_json::from_slice(body).map_err(|_| ResourceError::Malformed { reason: "it is not JSON" })?;
    let object = json.as_object().ok_or(ResourceError::Malformed { reason: "it is not a JSON object" })?;
    let resource = object
        .get("resource")
        .and_then(Value::as_str)
        .ok_or(ResourceError::Malformed { reason: "it has no resource" })?;
    let (expected_url, matches) = match expected {
        Expected::Identifier(identifier) => (identifier, resource == identifier),
        Expected::Requested(requested) => (requested, covers(resource, requested)),
    };
    if !matches {
        return Err(ResourceError::ResourceMismatch {
            expected: expected_url.split(['?', '#']).next().unwrap_or_default().to_owned(),
            got: crate::text::sanitize_excerpt(resource, 200),
        });
    }
    validate_resource(resource)?;
    let list = |name: &'static str| -> Result<Vec<String>, ResourceError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.len() <= MAX_LIST => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_owned).ok_or(ResourceError::Malformed { reason: "a list of non-strings" })
                })
                .collect(),
            Some(Value::Array(_)) => Err(ResourceError::Malformed { reason: "a list longer than 64 entries" }),
            Some(_) => Err(ResourceError::Malformed { reason: "a list that is not an array" }),
        }
    };
    let authorization_servers = list("authorization_servers")?;
    for issuer in &authorization_servers {
        validate_endpoint(issuer, false)?;
        if issuer.contains(['?', '#']) {
            return Err(ResourceError::Malformed { reason: "an authorization server with a query or fragment" });
        }
    }
    let dpop_bound_tokens_required = match object.get("dpop_bound_access_tokens_required") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(required)) => *required,
        Some(_) => {
            return Err(ResourceError::Malformed { reason: "dpop_bound_access_tokens_required is not a boolean" })
        }
    };
    Ok(ResourceMetadata {
        resource: resource.to_owned(),
        authorization_servers,
        scopes_supported: list("scopes_supported")?,
        bearer_methods_supported: list("bearer_methods_supported")?,
        dpop_algs: list("dpop_signing_alg_values_supported")?,
        dpop_bound_tokens_required,
        resource_name: object
            .get("resource_name")
            .and_then(Value::as_str)
            .map(|name| crate::text::sanitize_excerpt(name, 200)),
    })
}

/// Whether the resource identifier `resource` covers the URL `requested`:
/// identical (without the request's query), or the same origin with a
/// path that is a prefix of the request's at a `/`.
pub(crate) fn covers(resource: &str, requested: &str) -> bool {
    let requested = requested.split(['?', '#']).next().unwrap_or_default();
    if resource == requested {
        return true;
    }
    let (Ok(resource), Ok(requested)) = (resource.parse::<Uri>(), requested.parse::<Uri>()) else { return false };
    if origin_of(&resource) != origin_of(&requested) {
        return false;
    }
    let prefix = resource.path().trim_end_matches('/');
    requested.path().strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests;
