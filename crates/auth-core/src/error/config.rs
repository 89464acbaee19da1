//! What is wrong with a configuration, found before anything is sent.

/// A configuration that cannot be used. Returned by the builders'
/// `build()`; fix the configuration and build again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The token (or revocation) URL could not be parsed, has no host, or
    /// uses a scheme other than `http`/`https`.
    #[error("URL `{url}` is not usable: {reason}; give the full https:// address of the endpoint")]
    InvalidUrl {
        /// The URL as given (user info, if any, is removed).
        url: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Plain `http` to a host that is not loopback. Credentials would cross
    /// the network in clear.
    #[error(
        "URL `{url}` uses plain http to a host that is not loopback; use https, \
         or call allow_insecure_http(true) for a test environment you control"
    )]
    InsecureUrl {
        /// The URL as given.
        url: String,
    },
    /// The client id is empty.
    #[error("the client id is empty; set the id the provider issued for this client")]
    EmptyClientId,
    /// The chosen client authentication method sends a secret, but none was set.
    #[error(
        "client authentication `{method}` needs a client secret; set client_secret(..), \
         or use ClientAuth::None for a public client"
    )]
    MissingClientSecret {
        /// The method that needs a secret.
        method: &'static str,
    },
    /// The client secret is set but empty (often an environment variable
    /// that is set to nothing).
    #[error(
        "the client secret is empty; set the secret the provider issued for this client \
         (check the variable or file it comes from), or use ClientAuth::None for a public client"
    )]
    EmptyClientSecret,
    /// A secret was to come from an environment variable that is unset,
    /// empty, or not valid UTF-8.
    #[error("the environment variable `{variable}` that should hold the {what} {problem}; set it to the value the provider issued")]
    SecretFromEnv {
        /// The variable's name (never its value).
        variable: String,
        /// Which secret (`client secret`, `API key`, ...).
        what: &'static str,
        /// `is not set`, `is empty` or `is not valid UTF-8`.
        problem: &'static str,
    },
    /// An extra token request parameter collides with one the library sets.
    #[error("parameter `{name}` is set by the library; {reason}")]
    ReservedParameter {
        /// The parameter name.
        name: String,
        /// Which setter to use instead.
        reason: &'static str,
    },
    /// A policy value is out of range.
    #[error("policy value `{name}` is out of range: {reason}")]
    InvalidPolicy {
        /// The field.
        name: &'static str,
        /// The accepted range.
        reason: &'static str,
    },
    /// A header name for an API key is not a valid HTTP header name.
    #[error("`{name}` is not a valid HTTP header name; use letters, digits and `-` (e.g. X-API-Key)")]
    InvalidHeaderName {
        /// The name as given.
        name: String,
    },
    /// A credential value cannot be sent in an HTTP header (control bytes,
    /// CR or LF, non-ASCII).
    #[error("the {what} contains characters that cannot be sent in an HTTP header (control bytes, CR, LF or non-ASCII); check how it was read (a trailing newline?)")]
    InvalidCredentialValue {
        /// Which credential (never its value).
        what: &'static str,
    },
    /// An origin for the origin filter could not be parsed.
    #[error(
        "origin `{origin}` is not valid: {reason}; write it as scheme://host[:port], e.g. https://api.example.com"
    )]
    InvalidOrigin {
        /// The origin as given.
        origin: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Credentials were built without an origin to send them to.
    #[error(
        "the credentials have no origin: add api_origin(\"https://api.example.com\") with the origin of the API \
         they are for (or any_origin() to send them to every host the client \
         calls, redirects included)"
    )]
    NoOrigin,
    /// Both `any_origin()` and `api_origin(..)` were given.
    #[error("any_origin() and api_origin(..) exclude each other; keep the allowed origins")]
    AnyOriginWithOrigins,
    /// Two credentials would write the same header or query parameter.
    #[error("two credentials both set `{target}`; keep one (Bearer, Basic and an `Authorization` API key are mutually exclusive)")]
    ConflictingCredentials {
        /// The header or query parameter both would set.
        target: String,
    },
    /// A required part of the configuration is missing.
    #[error("the configuration is incomplete: {what}")]
    Incomplete {
        /// What is missing and how to provide it.
        what: &'static str,
    },
    /// No revocation URL was configured, but a revocation request was asked for.
    #[error("no revocation URL is configured; set revocation_url(..) to the provider's RFC 7009 endpoint")]
    NoRevocationUrl,
    /// The operating system gave no random bytes (for a PKCE verifier, a
    /// `state` or a `nonce`).
    #[error("the operating system's random number generator failed ({reason}); a sign-in cannot start without it")]
    NoRandomness {
        /// What the operating system said.
        reason: String,
    },
    /// `private_key_jwt` was chosen and no signing key was set.
    #[error("client authentication `private-key-jwt` needs the client's private key; set signing_key(..) (a PEM or JWK file)")]
    MissingSigningKey,
    /// The TLS library cannot use the client certificate or the roots.
    #[error(
        "the TLS settings cannot be used ({reason}); check that the client key belongs to the certificate and is \
         RSA, ECDSA P-256/P-384 or Ed25519, and that the root certificates are valid"
    )]
    Tls {
        /// The TLS library's words.
        reason: String,
    },
    /// A TLS client certificate method was chosen and no certificate was set.
    #[error("client authentication `{method}` needs the client certificate and its key; set client_certificate(..) (PEM files)")]
    MissingClientCertificate {
        /// The method's name.
        method: &'static str,
    },
    /// An assertion is to be addressed to the issuer, and none is known.
    #[error("{what} is the issuer, but no issuer is configured; set issuer(..) (or use discovery), or choose the token URL as the audience")]
    MissingIssuer {
        /// Which assertion.
        what: &'static str,
    },
    /// Keys or assertions set up in a way that cannot work.
    #[error("{reason}")]
    InvalidKeySetup {
        /// What is wrong and what to do.
        reason: &'static str,
    },
    /// A key file could not be read.
    #[error("cannot read the key file `{path}`: {reason}; check the path and that this user may read it")]
    KeyFile {
        /// The file.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// A key could not be read.
    #[error("{what}: {error}")]
    Key {
        /// Which key (`the private key file key.pem`, ...), never its content.
        what: String,
        /// What is wrong with it.
        error: crate::keys::KeyError,
    },
}

/// `error` and its chain of sources on one line, cut to 300 characters.
pub(super) fn describe_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    if message.len() > 300 {
        let cut = (0..=300).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
        message.truncate(cut);
        message.push('…');
    }
    message
}

impl ConfigError {
    /// The TLS library refused the client certificate or the roots, as
    /// `error` and its causes say (for drivers: the error must hold no key).
    pub fn tls(error: &(dyn std::error::Error + 'static)) -> Self {
        Self::Tls { reason: describe_chain(error) }
    }
}
