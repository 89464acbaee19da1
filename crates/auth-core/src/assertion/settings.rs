//! What a JWT assertion is configured with: who it is addressed to, and
//! the JWT bearer grant's assertion (signed here, or supplied). A leaf of
//! the configuration: making and signing assertions is the parent
//! module's.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::keys::SigningKey;

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The `grant_type` of the RFC 7523 §2.1 JWT bearer grant.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long a client assertion is valid: long enough for a slow network
/// and a little clock skew, short enough that a captured one is soon
/// useless.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// Who an assertion is addressed to (its `aud` claim). Servers disagree:
/// RFC 7523 and its update name the authorization server's issuer
/// identifier, OpenID Connect and many servers the token endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The issuer when one is configured
    /// ([`SourceConfigBuilder::issuer`](crate::config::SourceConfigBuilder::issuer)),
    /// the token endpoint URL otherwise. The default.
    #[default]
    IssuerOrTokenUrl,
    /// The issuer identifier (which must then be configured).
    Issuer,
    /// The token endpoint URL.
    TokenUrl,
    /// This exact value.
    Value(String),
}

impl AssertionAudience {
    /// Parses the configuration file form: `issuer`, `token-url`, or any
    /// other text as the value itself.
    pub fn parse(text: &str) -> Self {
        match text {
            "issuer" => Self::Issuer,
            "token-url" => Self::TokenUrl,
            other => Self::Value(other.to_owned()),
        }
    }

    /// The `aud` value for a configuration with this token URL and issuer;
    /// `None` when the issuer is asked for and none is known.
    pub(crate) fn resolve(&self, token_url: &http::Uri, issuer: Option<&str>) -> Option<String> {
        match self {
            Self::IssuerOrTokenUrl => Some(issuer.map_or_else(|| token_url.to_string(), str::to_owned)),
            Self::Issuer => issuer.map(str::to_owned),
            Self::TokenUrl => Some(token_url.to_string()),
            Self::Value(value) => Some(value.clone()),
        }
    }
}

/// Makes the assertion of a JWT bearer grant when it is sent: for JWTs
/// minted elsewhere (a workload identity file, a secrets service). Called
/// with the wall time of the attempt; the error text is shown to callers,
/// so it must not hold a secret.
pub type AssertionFn = dyn Fn(SystemTime) -> Result<String, String> + Send + Sync;

/// The assertion of the RFC 7523 §2.1 JWT bearer grant: signed here with a
/// key, or supplied by a function.
#[derive(Clone)]
pub struct JwtBearer {
    pub(super) kind: BearerKind,
}

#[derive(Clone)]
pub(super) enum BearerKind {
    Signed {
        key: SigningKey,
        issuer: String,
        subject: String,
        audience: AssertionAudience,
        lifetime: Duration,
        claims: Map<String, Value>,
    },
    Supplied {
        identity: String,
        make: Arc<AssertionFn>,
    },
}

impl JwtBearer {
    /// Assertions signed with `key`, issued by `issuer` (often the client
    /// id, or a service account's email) about `subject` (the user or
    /// service the token is for), addressed as the default
    /// [`AssertionAudience`] says and valid for [`ASSERTION_LIFETIME`].
    pub fn signed(key: SigningKey, issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            kind: BearerKind::Signed {
                key,
                issuer: issuer.into(),
                subject: subject.into(),
                audience: AssertionAudience::default(),
                lifetime: ASSERTION_LIFETIME,
                claims: Map::new(),
            },
        }
    }

    /// Assertions made by `make` at each send. `identity` names whose
    /// assertions they are (a subject, a file path): it goes in the cache
    /// key, so that tokens for two identities are never shared.
    pub fn from_fn(
        identity: impl Into<String>,
        make: impl Fn(SystemTime) -> Result<String, String> + Send + Sync + 'static,
    ) -> Self {
        Self { kind: BearerKind::Supplied { identity: identity.into(), make: Arc::new(make) } }
    }

    /// The `aud` of signed assertions.
    pub fn audience(mut self, audience: AssertionAudience) -> Self {
        if let BearerKind::Signed { audience: current, .. } = &mut self.kind {
            *current = audience;
        }
        self
    }

    /// The lifetime of signed assertions (at most an hour).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        if let BearerKind::Signed { lifetime: current, .. } = &mut self.kind {
            *current = lifetime.min(Duration::from_secs(3600));
        }
        self
    }

    /// Adds a claim to signed assertions (Google's `scope`, say). The
    /// registered claims (`iss`, `sub`, `aud`, `jti`, `iat`, `nbf`, `exp`)
    /// are the library's and cannot be replaced.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        if let BearerKind::Signed { claims, .. } = &mut self.kind {
            let name = name.into();
            if !REGISTERED.contains(&name.as_str()) {
                claims.insert(name, value.into());
            }
        }
        self
    }

    /// What goes in the cache key: who the assertions speak for.
    pub(crate) fn identity(&self) -> String {
        match &self.kind {
            BearerKind::Signed { issuer, subject, .. } => format!("iss={issuer} sub={subject}"),
            BearerKind::Supplied { identity, .. } => format!("supplied={identity}"),
        }
    }

    pub(crate) fn signed_audience(&self) -> Option<&AssertionAudience> {
        match &self.kind {
            BearerKind::Signed { audience, .. } => Some(audience),
            BearerKind::Supplied { .. } => None,
        }
    }
}

impl fmt::Debug for JwtBearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BearerKind::Signed { key, issuer, subject, audience, lifetime, .. } => f
                .debug_struct("JwtBearer")
                .field("key", key)
                .field("issuer", issuer)
                .field("subject", subject)
                .field("audience", audience)
                .field("lifetime", lifetime)
                .finish_non_exhaustive(),
            BearerKind::Supplied { identity, .. } => {
                f.debug_struct("JwtBearer").field("supplied_for", identity).finish_non_exhaustive()
            }
        }
    }
}

pub(super) const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "jti", "iat", "nbf", "exp"];
