//! What discovery from an API's URL found, and the client registered
//! there, kept in the token store beside the tokens (sans-IO: the record,
//! its key and its envelope; a driver reads and writes it).
//!
//! Discovery from a URL alone takes four requests (the API's 401, its
//! metadata, the authorization server's metadata, a registration): a
//! later run, or another process sharing the store, finds the answer here
//! instead, and above all does not register a second client. One record
//! per API origin, under a key of its own that no token's key can equal.
//!
//! The record holds the registration's secrets (a client secret, the
//! registration access token): it is written only where tokens are, with
//! the same protections (an owner-only file, or an encrypted store), and
//! its payload is wiped from memory when dropped.
//!
//! ```
//! use auth_core::resource::discovered::Discovered;
//! use auth_core::resource::metadata::{parse_resource_metadata, Expected};
//! use auth_core::sign_in::discovery::parse_metadata;
//! use auth_core::sign_in::registration::parse_registration;
//! use std::time::{Duration, SystemTime};
//!
//! let resource = parse_resource_metadata(
//!     br#"{"resource":"https://api.example.com/v1","authorization_servers":["https://api.example.com"]}"#,
//!     Expected::Identifier("https://api.example.com/v1"),
//! )?;
//! let server = parse_metadata(
//!     "https://api.example.com",
//!     br#"{"issuer":"https://api.example.com","token_endpoint":"https://api.example.com/token",
//!         "authorization_endpoint":"https://api.example.com/authorize"}"#,
//!     false,
//! )?;
//! let client = parse_registration(http::StatusCode::CREATED, br#"{"client_id":"c-123"}"#)?;
//! let mut found = Discovered::new(&resource, &server).registered(client);
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let envelope = found.seal(now);
//! let again = Discovered::from_envelope(&envelope).expect("read back");
//! assert_eq!(again.client_id(), Some("c-123"));
//! assert!(again.covers("https://api.example.com/v1/orders?page=2"));
//! assert_eq!(Discovered::key("https://api.example.com/v1/orders")?, Discovered::key("https://api.example.com/")?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::SystemTime;

use http::StatusCode;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::metadata::{covers, origin_of, ResourceError, ResourceMetadata};
use crate::config::{validate_endpoint, CacheKey};
use crate::sign_in::discovery::ServerMetadata;
use crate::sign_in::registration::{parse_registration, Registration};
use crate::store::{unix_ms, Envelope, REFRESH_TOKEN_RETENTION};

/// The envelope's fingerprint: marks a discovery record (never a token's).
pub const FINGERPRINT: &str = "discovered-resource-v1";

/// An API, its authorization server's endpoints and the client registered
/// there (see the [module docs](self)).
#[derive(Clone)]
pub struct Discovered {
    resource: String,
    issuer: String,
    token_endpoint: String,
    authorization_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    par_endpoint: Option<String>,
    requires_par: bool,
    registration_endpoint: Option<String>,
    iss_parameter_supported: bool,
    scopes_supported: Vec<String>,
    registration: Option<Registration>,
    /// The generation of the envelope it was read from or last sealed in
    /// (0: never): the next is above it.
    generation: u64,
}

impl fmt::Debug for Discovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovered")
            .field("resource", &self.resource)
            .field("issuer", &self.issuer)
            .field("token_endpoint", &self.token_endpoint)
            .field("registration", &self.registration)
            .finish_non_exhaustive()
    }
}

impl Discovered {
    /// What the API's metadata and its authorization server's say (the
    /// server the one chosen by [`ResourceMetadata::authorization_server`]).
    pub fn new(resource: &ResourceMetadata, server: &ServerMetadata) -> Self {
        let text = |uri: &http::Uri| uri.to_string();
        Self {
            resource: resource.resource().to_owned(),
            issuer: server.issuer().to_owned(),
            token_endpoint: text(server.token_endpoint()),
            authorization_endpoint: server.authorization_endpoint().map(text),
            revocation_endpoint: server.revocation_endpoint().map(text),
            par_endpoint: server.par_endpoint().map(text),
            requires_par: server.requires_par(),
            registration_endpoint: server.registration_endpoint().map(text),
            iss_parameter_supported: server.iss_parameter_supported(),
            scopes_supported: resource.scopes_supported().to_vec(),
            registration: None,
            generation: 0,
        }
    }

    /// With the client the server registered.
    #[must_use]
    pub fn registered(mut self, registration: Registration) -> Self {
        self.registration = Some(registration);
        self
    }

    /// The key of the record for the API at `url` (any URL on its origin).
    pub fn key(url: &str) -> Result<CacheKey, ResourceError> {
        let uri = validate_endpoint(url, false)?;
        Ok(CacheKey::from_canonical(format!("kind=discovered-resource\norigin={}", origin_of(&uri))))
    }

    /// This record's key: that of its resource's origin.
    pub fn own_key(&self) -> Result<CacheKey, ResourceError> {
        Self::key(&self.resource)
    }

    /// The RFC 8707 resource of every token request for the API.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The API's origin (`scheme://host[:port]`): where its credentials
    /// may go.
    pub fn origin(&self) -> String {
        origin_of(&self.resource.parse().unwrap_or_default())
    }

    /// Whether `url` is the resource or under it (same origin, path prefix).
    pub fn covers(&self, url: &str) -> bool {
        covers(&self.resource, url)
    }

    /// The authorization server's issuer identifier.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Its token endpoint.
    pub fn token_endpoint(&self) -> &str {
        &self.token_endpoint
    }

    /// Its authorization endpoint, for a user's sign-in.
    pub fn authorization_endpoint(&self) -> Option<&str> {
        self.authorization_endpoint.as_deref()
    }

    /// Its revocation endpoint.
    pub fn revocation_endpoint(&self) -> Option<&str> {
        self.revocation_endpoint.as_deref()
    }

    /// Its pushed authorization request endpoint (RFC 9126).
    pub fn par_endpoint(&self) -> Option<&str> {
        self.par_endpoint.as_deref()
    }

    /// Whether it takes authorization requests only pushed (RFC 9126).
    pub fn requires_par(&self) -> bool {
        self.requires_par
    }

    /// Its client registration endpoint (RFC 7591).
    pub fn registration_endpoint(&self) -> Option<&str> {
        self.registration_endpoint.as_deref()
    }

    /// Whether it always sends `iss` with the authorization response.
    pub fn iss_parameter_supported(&self) -> bool {
        self.iss_parameter_supported
    }

    /// The scopes the API's metadata lists.
    pub fn scopes_supported(&self) -> &[String] {
        &self.scopes_supported
    }

    /// The client registered, if any.
    pub fn registration(&self) -> Option<&Registration> {
        self.registration.as_ref()
    }

    /// The registered client's id.
    pub fn client_id(&self) -> Option<&str> {
        self.registration.as_ref().map(Registration::client_id)
    }

    /// The record as the store keeps it: kept for [`REFRESH_TOKEN_RETENTION`]
    /// (a user's sign-in outlives it only by signing in again), or until
    /// the client secret expires when the server said it does. Its
    /// generation is above the one this record was read from or last
    /// sealed in, so that a second write in the same millisecond (the
    /// registration after the discovery) is not refused by the store.
    pub fn seal(&mut self, now: SystemTime) -> Envelope {
        self.generation = unix_ms(now).max(self.generation.saturating_add(1));
        let mut document = json!({
            "v": 1,
            "resource": self.resource,
            "issuer": self.issuer,
            "token_endpoint": self.token_endpoint,
            "authorization_endpoint": self.authorization_endpoint,
            "revocation_endpoint": self.revocation_endpoint,
            "par_endpoint": self.par_endpoint,
            "requires_par": self.requires_par,
            "registration_endpoint": self.registration_endpoint,
            "iss_parameter_supported": self.iss_parameter_supported,
            "scopes_supported": self.scopes_supported,
        });
        let registration = self.registration.as_ref().map(|r| Zeroizing::new(r.to_json()));
        if let Some(registration) = &registration {
            document["registration"] = Value::String(registration.as_str().to_owned());
        }
        let payload = Zeroizing::new(serde_json::to_vec(&document).unwrap_or_default());
        if let Some(Value::String(text)) = document.get_mut("registration") {
            zeroize::Zeroize::zeroize(text);
        }
        let retained = unix_ms(now + REFRESH_TOKEN_RETENTION);
        let secret_expiry =
            self.registration.as_ref().and_then(Registration::client_secret_expires_at).map(|s| s.saturating_mul(1000));
        Envelope {
            generation: self.generation,
            fingerprint: FINGERPRINT.to_owned(),
            expires_at_unix_ms: secret_expiry.map_or(retained, |at| at.min(retained)),
            payload,
        }
    }

    /// Reads a record back; `None` for an envelope that is not one, or one
    /// this version cannot read or whose URLs break the endpoint rules (it
    /// is then discovered again).
    pub fn from_envelope(envelope: &Envelope) -> Option<Self> {
        if envelope.fingerprint != FINGERPRINT {
            return None;
        }
        let json: Value = serde_json::from_slice(&envelope.payload).ok()?;
        if json.get("v")?.as_u64()? != 1 {
            return None;
        }
        let text = |name: &str| json.get(name).and_then(Value::as_str).map(str::to_owned);
        let url = |name: &str| match text(name) {
            Some(url) => validate_endpoint(&url, false).ok().map(|_| Some(url)),
            None => Some(None),
        };
        let registration = match json.get("registration").and_then(Value::as_str) {
            Some(document) => Some(parse_registration(StatusCode::CREATED, document.as_bytes()).ok()?),
            None => None,
        };
        let resource = text("resource")?;
        validate_endpoint(&resource, false).ok()?;
        let issuer = text("issuer")?;
        let token_endpoint = url("token_endpoint")??;
        let scopes = json.get("scopes_supported").and_then(Value::as_array);
        Some(Self {
            resource,
            issuer,
            token_endpoint,
            authorization_endpoint: url("authorization_endpoint")?,
            revocation_endpoint: url("revocation_endpoint")?,
            par_endpoint: url("par_endpoint")?,
            requires_par: json.get("requires_par").and_then(Value::as_bool).unwrap_or(false),
            registration_endpoint: url("registration_endpoint")?,
            iss_parameter_supported: json.get("iss_parameter_supported").and_then(Value::as_bool).unwrap_or(false),
            scopes_supported: scopes
                .map(|list| list.iter().filter_map(Value::as_str).take(64).map(str::to_owned).collect())
                .unwrap_or_default(),
            registration,
            generation: envelope.generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resource::metadata::{parse_resource_metadata, Expected};
    use crate::sign_in::discovery::parse_metadata;

    fn found(registration: &str) -> Discovered {
        let resource = parse_resource_metadata(
            br#"{"resource":"https://api.example.com/v1","authorization_servers":["https://id.example.com"],
                "scopes_supported":["read","write"]}"#,
            Expected::Identifier("https://api.example.com/v1"),
        )
        .unwrap();
        let server = parse_metadata(
            "https://id.example.com",
            br#"{"issuer":"https://id.example.com","token_endpoint":"https://id.example.com/token",
                "authorization_endpoint":"https://id.example.com/authorize",
                "pushed_authorization_request_endpoint":"https://id.example.com/par",
                "require_pushed_authorization_requests":true,
                "registration_endpoint":"https://id.example.com/register"}"#,
            false,
        )
        .unwrap();
        Discovered::new(&resource, &server)
            .registered(parse_registration(StatusCode::CREATED, registration.as_bytes()).unwrap())
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn a_record_reads_back_whole_and_shows_no_secret() {
        let mut found = found(
            r#"{"client_id":"c-1","client_secret":"s3cr3t-Qx","registration_access_token":"rat-9Zk",
                "client_secret_expires_at":1800003600}"#,
        );
        let envelope = found.seal(now());
        assert_eq!(envelope.fingerprint, FINGERPRINT);
        assert_eq!(envelope.expires_at_unix_ms, 1_800_003_600_000, "the secret's expiry, before the retention");
        let mut again = Discovered::from_envelope(&envelope).unwrap();
        let resealed = again.seal(now());
        assert_eq!(resealed.payload, envelope.payload);
        assert_eq!(resealed.generation, envelope.generation + 1, "above the one read, in the same millisecond");
        assert_eq!(again.client_id(), Some("c-1"));
        assert_eq!(again.par_endpoint(), Some("https://id.example.com/par"));
        assert!(again.requires_par());
        assert_eq!(again.registration_endpoint(), Some("https://id.example.com/register"));
        assert_eq!(again.scopes_supported(), ["read", "write"]);
        let shown = format!("{again:?}");
        assert!(!shown.contains("s3cr3t-Qx") && !shown.contains("rat-9Zk"), "{shown}");
        assert!(!format!("{envelope:?}").contains("s3cr3t-Qx"));
        // Without an expiring secret: the retention.
        let mut public = found_public();
        assert_eq!(public.seal(now()).expires_at_unix_ms, unix_ms(now() + REFRESH_TOKEN_RETENTION));
    }

    fn found_public() -> Discovered {
        found(r#"{"client_id":"c-2"}"#)
    }

    #[test]
    fn one_key_per_origin_that_no_token_shares() {
        let key = Discovered::key("https://api.example.com/v1/x").unwrap();
        assert_eq!(key, found_public().own_key().unwrap());
        assert_eq!(found_public().origin(), "https://api.example.com", "where its credentials may go");
        assert_ne!(key, Discovered::key("https://api.example.com:8443/v1").unwrap());
        assert!(key.canonical().starts_with("kind=discovered-resource\n"));
        assert!(Discovered::key("http://api.example.com/").is_err(), "https only, as every endpoint");
    }

    #[test]
    fn what_is_not_a_record_is_discovered_again() {
        let mut envelope = found_public().seal(now());
        envelope.fingerprint = "0123".into();
        assert!(Discovered::from_envelope(&envelope).is_none(), "a token's record");
        let mut tampered = found_public().seal(now());
        let text = String::from_utf8(tampered.payload.to_vec()).unwrap();
        tampered.payload = Zeroizing::new(text.replace("https://id.example.com/token", "http://evil.example/t").into());
        assert!(Discovered::from_envelope(&tampered).is_none(), "an endpoint that breaks the rules");
        tampered.payload = Zeroizing::new(b"{\"v\":2}".to_vec());
        assert!(Discovered::from_envelope(&tampered).is_none(), "another version");
        tampered.payload = Zeroizing::new(b"\xff".to_vec());
        assert!(Discovered::from_envelope(&tampered).is_none());
    }
}
