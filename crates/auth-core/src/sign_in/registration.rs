//! Dynamic client registration (RFC 7591), sans-IO: the request a client
//! without an id sends to the authorization server's
//! `registration_endpoint`, and what to accept from the answer.
//!
//! Three kinds of client register:
//! - a **public** client (a CLI or a desktop app signing a user in with a
//!   loopback redirect): `token_endpoint_auth_method` `none`, the
//!   authorization code and refresh token grants;
//! - a **confidential** client with a shared secret
//!   (`client_secret_basic`), for a service;
//! - a confidential client with a **key** (`private_key_jwt`): its public
//!   key goes in the registration (`jwks`), the private key never leaves.
//!
//! The answer's secrets (the client secret, the registration access
//! token that reads or updates the registration, RFC 7592) are secret
//! types: redacted in `Debug`, zeroized on drop. A refusal that echoes
//! the initial access token does not show it
//! ([`parse_registration_redacting`]).
//!
//! ```
//! use auth_core::sign_in::registration::{parse_registration, registration_request, ClientMetadata};
//! use auth_core::secret::ExposeSecret;
//!
//! let metadata = ClientMetadata::public_client("my-cli", "http://127.0.0.1:8765/callback");
//! let request = registration_request("https://id.example.com/register", &metadata, None)?;
//! assert_eq!(request.method(), http::Method::POST);
//!
//! let answer = br#"{"client_id":"c-123","token_endpoint_auth_method":"none",
//!   "registration_access_token":"rat-1","registration_client_uri":"https://id.example.com/register/c-123"}"#;
//! let registration = parse_registration(http::StatusCode::CREATED, answer)?;
//! assert_eq!(registration.client_id(), "c-123");
//! assert!(registration.client_secret().is_none());
//! assert_eq!(registration.registration_access_token().unwrap().expose_secret(), "rat-1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use http::{header, Method, Request, StatusCode};
use serde_json::{json, Map, Value};

use crate::config::validate_endpoint;
use crate::error::ConfigError;
use crate::keys::SigningKey;
pub use crate::secret::RegistrationAccessToken;
use crate::secret::{ClientSecret, ExposeSecret};

/// The largest registration answer read.
pub const MAX_ANSWER_LEN: usize = 64 * 1024;

/// How the registered client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RegisteredAuth {
    /// `none`: a public client (PKCE protects its code exchange).
    None,
    /// `client_secret_basic`: the secret the server issues, in HTTP Basic.
    ClientSecretBasic,
    /// `private_key_jwt`: assertions signed with the client's key.
    PrivateKeyJwt,
}

impl RegisteredAuth {
    /// The RFC 7591 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretBasic => "client_secret_basic",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// The client metadata sent (RFC 7591 §2).
#[derive(Debug, Clone)]
pub struct ClientMetadata {
    client_name: String,
    redirect_uris: Vec<String>,
    grant_types: Vec<&'static str>,
    auth: RegisteredAuth,
    scope: Option<String>,
    jwks: Option<Value>,
}

impl ClientMetadata {
    /// A public client signing users in with the authorization code flow
    /// at `redirect_uri` (a loopback URL for a CLI), with refresh tokens.
    pub fn public_client(name: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            client_name: name.into(),
            redirect_uris: vec![redirect_uri.into()],
            grant_types: vec!["authorization_code", "refresh_token"],
            auth: RegisteredAuth::None,
            scope: None,
            jwks: None,
        }
    }

    /// A service with a client secret the server issues
    /// (`client_secret_basic`), using the client credentials grant.
    pub fn service(name: impl Into<String>) -> Self {
        Self {
            client_name: name.into(),
            redirect_uris: Vec::new(),
            grant_types: vec!["client_credentials"],
            auth: RegisteredAuth::ClientSecretBasic,
            scope: None,
            jwks: None,
        }
    }

    /// A service that authenticates with `key` (`private_key_jwt`): its
    /// public key is registered (`jwks`, with its `kid` and `alg`).
    /// Fails for a key with no public half (`HS256`).
    pub fn service_with_key(name: impl Into<String>, key: &SigningKey) -> Result<Self, ConfigError> {
        let mut jwk: Map<String, Value> = key.public_jwk().ok_or(ConfigError::InvalidKeySetup {
            reason: "an HS256 key has no public key to register; use an RSA, EC or Ed25519 key",
        })?;
        jwk.insert("use".to_owned(), json!("sig"));
        jwk.insert("alg".to_owned(), json!(key.algorithm().as_str()));
        if let Some(kid) = key.key_id() {
            jwk.insert("kid".to_owned(), json!(kid));
        }
        Ok(Self { auth: RegisteredAuth::PrivateKeyJwt, jwks: Some(json!({ "keys": [jwk] })), ..Self::service(name) })
    }

    /// The scopes the client will ask for (space-separated).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// How it authenticates.
    pub fn auth(&self) -> RegisteredAuth {
        self.auth
    }

    /// The JSON document.
    fn document(&self) -> Value {
        let mut document = json!({
            "client_name": self.client_name,
            "grant_types": self.grant_types,
            "token_endpoint_auth_method": self.auth.as_str(),
        });
        if !self.redirect_uris.is_empty() {
            document["redirect_uris"] = json!(self.redirect_uris);
            document["response_types"] = json!(["code"]);
        }
        if let Some(scope) = &self.scope {
            document["scope"] = json!(scope);
        }
        if let Some(jwks) = &self.jwks {
            document["jwks"] = jwks.clone();
        }
        document
    }
}

/// The registration request (RFC 7591 §3.1): a JSON POST to `endpoint`
/// (https, or http to a loopback host), with the initial access token the
/// server may require (`Authorization: Bearer`).
pub fn registration_request(
    endpoint: &str,
    metadata: &ClientMetadata,
    initial_access_token: Option<&str>,
) -> Result<Request<Vec<u8>>, ConfigError> {
    let uri = validate_endpoint(endpoint, false)?;
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json");
    if let Some(token) = initial_access_token {
        let value = crate::text::sensitive_value(format!("Bearer {token}").as_bytes())
            .ok_or(ConfigError::InvalidCredentialValue { what: "initial access token" })?;
        request = request.header(header::AUTHORIZATION, value);
    }
    request
        .body(metadata.document().to_string().into_bytes())
        .map_err(|_| ConfigError::InvalidUrl { url: endpoint.to_owned(), reason: "it cannot make a request" })
}

/// Why a registration failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The server refused (RFC 7591 §3.2.2).
    #[error("the authorization server refused to register the client: {code}{}; {hint}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// `invalid_redirect_uri`, `invalid_client_metadata`, ... (`other`
        /// for a code outside RFC 7591).
        code: String,
        /// The server's words (an excerpt, sanitized).
        description: Option<String>,
        /// What to do.
        hint: &'static str,
    },
    /// Not an answer RFC 7591 §3.2.1 describes.
    #[error("the authorization server's registration answer (HTTP {status}) is unusable: {reason}")]
    Malformed {
        /// Its status.
        status: u16,
        /// What was wrong.
        reason: &'static str,
    },
}

/// A client registered by the server (RFC 7591 §3.2.1).
#[derive(Clone)]
pub struct Registration {
    client_id: String,
    client_secret: Option<ClientSecret>,
    client_secret_expires_at: Option<u64>,
    registration_access_token: Option<RegistrationAccessToken>,
    registration_client_uri: Option<String>,
    auth: Option<String>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_secret_expires_at", &self.client_secret_expires_at)
            .field("registration_access_token", &self.registration_access_token)
            .field("registration_client_uri", &self.registration_client_uri)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The client id issued.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client secret issued, for a confidential client with a secret.
    pub fn client_secret(&self) -> Option<&ClientSecret> {
        self.client_secret.as_ref()
    }

    /// When the secret expires (Unix seconds); `None`: never (0 in the answer).
    pub fn client_secret_expires_at(&self) -> Option<u64> {
        self.client_secret_expires_at
    }

    /// The registration access token (RFC 7592), if issued.
    pub fn registration_access_token(&self) -> Option<&RegistrationAccessToken> {
        self.registration_access_token.as_ref()
    }

    /// Where the registration can be read or updated (RFC 7592).
    pub fn registration_client_uri(&self) -> Option<&str> {
        self.registration_client_uri.as_deref()
    }

    /// The `token_endpoint_auth_method` the server registered, if it said.
    pub fn auth_method(&self) -> Option<&str> {
        self.auth.as_deref()
    }

    /// How the registered client authenticates at the token endpoint:
    /// the method the server registered (`client_secret_basic` when it
    /// did not say, RFC 7591 §2), `None` for one this library does not
    /// know.
    pub fn client_auth(&self) -> Option<crate::ClientAuth> {
        let name = self.auth.as_deref().unwrap_or("client_secret_basic");
        // Basic with the RFC 6749 encoding; a JSON body is not an RFC 7591 method.
        crate::ClientAuth::ALL
            .into_iter()
            .filter(|method| !matches!(method, crate::ClientAuth::BasicRaw | crate::ClientAuth::Json))
            .find(|method| method.registered_name() == name)
    }

    /// The registration as JSON, as the server answered it (`client_id`,
    /// `client_secret`, ...), to keep: it holds secrets, so keep it where
    /// tokens are kept. [`parse_registration`] reads it back.
    pub fn to_json(&self) -> String {
        let mut document = json!({ "client_id": self.client_id });
        if let Some(secret) = &self.client_secret {
            document["client_secret"] = json!(secret.expose_secret());
        }
        if let Some(at) = self.client_secret_expires_at {
            document["client_secret_expires_at"] = json!(at);
        }
        if let Some(token) = &self.registration_access_token {
            document["registration_access_token"] = json!(token.expose_secret());
        }
        if let Some(uri) = &self.registration_client_uri {
            document["registration_client_uri"] = json!(uri);
        }
        if let Some(auth) = &self.auth {
            document["token_endpoint_auth_method"] = json!(auth);
        }
        document.to_string()
    }
}

/// Reads the server's answer to a registration request.
pub fn parse_registration(status: StatusCode, body: &[u8]) -> Result<Registration, RegistrationError> {
    parse_registration_redacting(status, body, &[])
}

/// [`parse_registration`] for a request that carried `secrets` (the
/// initial access token): a refusal that echoes one, in any encoding,
/// shows `[redacted]` in its place.
pub fn parse_registration_redacting(
    status: StatusCode,
    body: &[u8],
    secrets: &[&str],
) -> Result<Registration, RegistrationError> {
    let code = status.as_u16();
    let malformed = |reason| RegistrationError::Malformed { status: code, reason };
    if body.len() > MAX_ANSWER_LEN {
        return Err(malformed("it is larger than 64 KiB"));
    }
    let json: Value = serde_json::from_slice(body).map_err(|_| malformed("it is not JSON"))?;
    let object = json.as_object().ok_or_else(|| malformed("it is not a JSON object"))?;
    let text = |name: &str| object.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    if !status.is_success() {
        let Some(error) = text("error") else { return Err(malformed("an error status without an error code")) };
        let (code, hint) = match error {
            "invalid_redirect_uri" => {
                ("invalid_redirect_uri", "the server does not take this redirect URI (a loopback one?)")
            }
            "invalid_client_metadata" => {
                ("invalid_client_metadata", "the server refuses a setting of the client; register it by hand")
            }
            "invalid_software_statement" | "unapproved_software_statement" => {
                ("invalid_software_statement", "the server wants a software statement this client does not have")
            }
            _ if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN => {
                ("other", "the server wants an initial access token to register clients; ask its administrator")
            }
            _ => ("other", "register the client by hand and give its client id"),
        };
        let mut redactor = crate::redact::Redactor::new();
        for secret in secrets {
            redactor.add(secret);
        }
        let redactor = redactor.build();
        let description = text("error_description").map(|d| crate::text::sanitize_excerpt(&redactor.redact(d), 200));
        return Err(RegistrationError::Refused { code: code.to_owned(), description, hint });
    }
    let client_id = text("client_id").ok_or_else(|| malformed("it has no client_id"))?;
    if client_id.len() > 256 || client_id.chars().any(|c| c.is_control() || crate::text::is_deceptive(c)) {
        return Err(malformed("a client_id that cannot be used safely"));
    }
    let expires = match object.get("client_secret_expires_at") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| malformed("client_secret_expires_at is not a number"))?),
    };
    let registration_client_uri = match text("registration_client_uri") {
        Some(uri) => Some(
            validate_endpoint(uri, false)
                .map_err(|_| malformed("a registration_client_uri that is not https"))?
                .to_string(),
        ),
        None => None,
    };
    Ok(Registration {
        client_id: client_id.to_owned(),
        client_secret: text("client_secret").map(ClientSecret::new),
        client_secret_expires_at: expires.filter(|at| *at != 0),
        registration_access_token: text("registration_access_token").map(RegistrationAccessToken::new),
        registration_client_uri,
        auth: text("token_endpoint_auth_method").map(str::to_owned),
    })
}

#[cfg(test)]
mod tests;
