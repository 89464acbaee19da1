//! Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0),
//! sans-IO: where to fetch it for an issuer, and what to accept from it.
//!
//! The document's `issuer` must equal the configured issuer exactly (a
//! document for another server is refused: a mix-up attack), and every
//! endpoint obeys the same rules as a configured token URL (https, or http
//! to a loopback host).
//!
//! ```
//! use auth_core::sign_in::discovery::{discovery_urls, parse_metadata};
//! use auth_core::ClientAuth;
//!
//! let urls = discovery_urls("https://id.example.com/tenant-1")?;
//! assert_eq!(urls[0], "https://id.example.com/.well-known/oauth-authorization-server/tenant-1");
//! assert_eq!(urls[1], "https://id.example.com/tenant-1/.well-known/openid-configuration");
//!
//! let document = br#"{"issuer":"https://id.example.com/tenant-1",
//!   "token_endpoint":"https://id.example.com/tenant-1/token",
//!   "authorization_endpoint":"https://id.example.com/tenant-1/authorize",
//!   "token_endpoint_auth_methods_supported":["client_secret_post"]}"#;
//! let metadata = parse_metadata("https://id.example.com/tenant-1", document, false)?;
//! assert_eq!(metadata.token_endpoint(), "https://id.example.com/tenant-1/token");
//! assert_eq!(metadata.client_auth(true), ClientAuth::Post);
//! assert_eq!(metadata.client_auth(false), ClientAuth::None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use http::Uri;
use serde_json::Value;

use crate::config::{validate_endpoint, ClientAuth};
use crate::error::ConfigError;

/// The well-known URLs of `issuer`'s metadata: RFC 8414 first, then OpenID
/// Connect Discovery. Try them in order; the first that answers 200 with
/// a valid document wins.
pub fn discovery_urls(issuer: &str) -> Result<[String; 2], DiscoveryError> {
    let uri = validate_issuer(issuer)?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let scheme = uri.scheme_str().unwrap_or("https");
    let path = uri.path().trim_end_matches('/');
    Ok([
        format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}"),
        format!("{scheme}://{authority}{path}/.well-known/openid-configuration"),
    ])
}

/// Checks an issuer identifier (RFC 8414 §2): an https URL (http to a
/// loopback host) with no query or fragment.
fn validate_issuer(issuer: &str) -> Result<Uri, DiscoveryError> {
    let uri = validate_endpoint(issuer, false).map_err(DiscoveryError::Config)?;
    if uri.query().is_some() || issuer.contains('#') {
        return Err(DiscoveryError::Config(ConfigError::InvalidUrl {
            url: issuer.to_owned(),
            reason: "an issuer has no query or fragment (RFC 8414 §2)",
        }));
    }
    Ok(uri)
}

/// What a discovery document says, checked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerMetadata {
    issuer: String,
    token_endpoint: Uri,
    authorization_endpoint: Option<Uri>,
    device_authorization_endpoint: Option<Uri>,
    revocation_endpoint: Option<Uri>,
    auth_methods: Vec<String>,
    iss_parameter_supported: bool,
    /// RFC 8705 §5 `mtls_endpoint_aliases`: token, revocation, device.
    mtls: [Option<Uri>; 3],
    /// RFC 7591 `registration_endpoint`.
    registration_endpoint: Option<Uri>,
    /// RFC 9126 `pushed_authorization_request_endpoint`.
    par_endpoint: Option<Uri>,
    /// RFC 9126 `require_pushed_authorization_requests`.
    requires_par: bool,
}

impl ServerMetadata {
    /// The issuer (equal to the configured one).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The token endpoint.
    pub fn token_endpoint(&self) -> &Uri {
        &self.token_endpoint
    }
    /// The authorization endpoint, if the server has one.
    pub fn authorization_endpoint(&self) -> Option<&Uri> {
        self.authorization_endpoint.as_ref()
    }
    /// The RFC 8628 device authorization endpoint, if any.
    pub fn device_authorization_endpoint(&self) -> Option<&Uri> {
        self.device_authorization_endpoint.as_ref()
    }
    /// The RFC 7009 revocation endpoint, if any.
    pub fn revocation_endpoint(&self) -> Option<&Uri> {
        self.revocation_endpoint.as_ref()
    }
    /// The RFC 7591 registration endpoint, if the server registers clients.
    pub fn registration_endpoint(&self) -> Option<&Uri> {
        self.registration_endpoint.as_ref()
    }
    /// The RFC 9126 pushed authorization request endpoint, if any.
    pub fn par_endpoint(&self) -> Option<&Uri> {
        self.par_endpoint.as_ref()
    }
    /// Whether the server takes authorization requests only pushed (RFC
    /// 9126 `require_pushed_authorization_requests`).
    pub fn requires_par(&self) -> bool {
        self.requires_par
    }
    /// The client authentication methods the token endpoint supports
    /// (`client_secret_basic` when the document does not say).
    pub fn token_endpoint_auth_methods(&self) -> &[String] {
        &self.auth_methods
    }
    /// The token endpoint for a client that uses `mutual_tls` (it presents
    /// a client certificate: [`SourceConfig::mutual_tls`](crate::SourceConfig::mutual_tls)):
    /// the RFC 8705 §5 `mtls_endpoint_aliases` one when the document names
    /// one, the plain one otherwise.
    pub fn token_endpoint_for(&self, mutual_tls: bool) -> &Uri {
        self.mtls[0].as_ref().filter(|_| mutual_tls).unwrap_or(&self.token_endpoint)
    }
    /// The revocation endpoint (its mTLS alias for a `mutual_tls` client).
    pub fn revocation_endpoint_for(&self, mutual_tls: bool) -> Option<&Uri> {
        self.mtls[1].as_ref().filter(|_| mutual_tls).or(self.revocation_endpoint.as_ref())
    }
    /// The device authorization endpoint (its mTLS alias for a `mutual_tls` client).
    pub fn device_authorization_endpoint_for(&self, mutual_tls: bool) -> Option<&Uri> {
        self.mtls[2].as_ref().filter(|_| mutual_tls).or(self.device_authorization_endpoint.as_ref())
    }
    /// Whether the callback always carries RFC 9207 `iss`.
    pub fn iss_parameter_supported(&self) -> bool {
        self.iss_parameter_supported
    }

    /// The client authentication to use: none for a client without a
    /// secret; otherwise HTTP Basic if the server supports it, else the
    /// form body if it does, else Basic (RFC 8414's default).
    pub fn client_auth(&self, has_secret: bool) -> ClientAuth {
        self.client_auth_for(has_secret, false, false)
    }

    /// Like [`ServerMetadata::client_auth`] for a client that may hold a
    /// private key or a TLS client certificate: with a key,
    /// `private_key_jwt` (the key was given for a reason); without a key or
    /// secret but with a certificate, `tls_client_auth`, or
    /// `self_signed_tls_client_auth` when the server lists only that one.
    pub fn client_auth_for(&self, has_secret: bool, has_key: bool, has_certificate: bool) -> ClientAuth {
        let supports = |method: &str| self.auth_methods.iter().any(|m| m == method);
        if has_key {
            return ClientAuth::PrivateKeyJwt;
        }
        if has_certificate && !has_secret {
            return match (supports("tls_client_auth"), supports("self_signed_tls_client_auth")) {
                (false, true) => ClientAuth::SelfSignedTlsClientAuth,
                _ => ClientAuth::TlsClientAuth,
            };
        }
        match (has_secret, supports("client_secret_basic"), supports("client_secret_post")) {
            (false, _, _) => ClientAuth::None,
            (true, true, _) | (true, false, false) => ClientAuth::Basic,
            (true, false, true) => ClientAuth::Post,
        }
    }
}

/// Why a discovery document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The issuer, or an endpoint in the document, breaks the URL rules.
    #[error("{0}")]
    Config(ConfigError),
    /// The document names another issuer.
    #[error("the discovery document is for issuer `{got}`, not `{expected}`: refused (another server's metadata); check the issuer URL, exactly as the provider documents it (trailing slash included)")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's issuer (sanitised).
        got: String,
    },
    /// The document is not usable metadata.
    #[error("the discovery document is unusable: {reason}; check the issuer URL")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The server lists PKCE methods without `S256`.
    #[error("the server does not support PKCE S256 (code_challenge_methods_supported lacks it); this library never uses plain")]
    NoS256,
}

/// Reads a discovery document fetched for `issuer`. `allow_insecure_http`
/// admits plain http endpoints on hosts that are not loopback (tests only).
pub fn parse_metadata(issuer: &str, body: &[u8], allow_insecure_http: bool) -> Result<ServerMetadata, DiscoveryError> {
    validate_issuer(issuer)?;
    let json: Value =
        serde_json::from_slice(body).map_err(|_| DiscoveryError::Malformed { reason: "it is not JSON" })?;
    let object = json.as_object().ok_or(DiscoveryError::Malformed { reason: "it is not a JSON object" })?;
    let got =
        object.get("issuer").and_then(Value::as_str).ok_or(DiscoveryError::Malformed { reason: "it has no issuer" })?;
    if got != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_owned(),
            got: crate::text::sanitize_excerpt(got, 200),
        });
    }
    let endpoint = |name: &str| -> Result<Option<Uri>, DiscoveryError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(url)) => {
                validate_endpoint(url, allow_insecure_http).map(Some).map_err(DiscoveryError::Config)
            }
            Some(_) => Err(DiscoveryError::Malformed { reason: "an endpoint that is not a string" }),
        }
    };
    let list = |name: &str| -> Vec<String> {
        object
            .get(name)
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let token_endpoint =
        endpoint("token_endpoint")?.ok_or(DiscoveryError::Malformed { reason: "it has no token_endpoint" })?;
    let challenge_methods = list("code_challenge_methods_supported");
    if !challenge_methods.is_empty() && !challenge_methods.iter().any(|m| m == "S256") {
        return Err(DiscoveryError::NoS256);
    }
    let mut auth_methods = list("token_endpoint_auth_methods_supported");
    if auth_methods.is_empty() {
        auth_methods.push("client_secret_basic".to_owned());
    }
    let aliases = match object.get("mtls_endpoint_aliases") {
        None | Some(Value::Null) => None,
        Some(Value::Object(aliases)) => Some(aliases),
        Some(_) => return Err(DiscoveryError::Malformed { reason: "mtls_endpoint_aliases is not an object" }),
    };
    let alias = |name: &str| -> Result<Option<Uri>, DiscoveryError> {
        match aliases.and_then(|a| a.get(name)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(url)) => {
                validate_endpoint(url, allow_insecure_http).map(Some).map_err(DiscoveryError::Config)
            }
            Some(_) => Err(DiscoveryError::Malformed { reason: "an mTLS endpoint alias that is not a string" }),
        }
    };
    let mtls = [alias("token_endpoint")?, alias("revocation_endpoint")?, alias("device_authorization_endpoint")?];
    let par_endpoint = endpoint("pushed_authorization_request_endpoint")?;
    let requires_par = object.get("require_pushed_authorization_requests").and_then(Value::as_bool).unwrap_or(false);
    if requires_par && par_endpoint.is_none() {
        return Err(DiscoveryError::Malformed {
            reason: "it requires pushed authorization requests but names no pushed_authorization_request_endpoint",
        });
    }
    Ok(ServerMetadata {
        registration_endpoint: endpoint("registration_endpoint")?,
        par_endpoint,
        requires_par,
        mtls,
        issuer: issuer.to_owned(),
        token_endpoint,
        authorization_endpoint: endpoint("authorization_endpoint")?,
        device_authorization_endpoint: endpoint("device_authorization_endpoint")?,
        revocation_endpoint: endpoint("revocation_endpoint")?,
        auth_methods,
        iss_parameter_supported: object
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://id.example.com";

    fn doc(extra: &str) -> String {
        format!(r#"{{"issuer":"{ISSUER}","token_endpoint":"{ISSUER}/token"{extra}}}"#)
    }

    #[test]
    fn urls_for_issuers_with_and_without_a_path() {
        assert_eq!(
            discovery_urls("https://id.example.com/").unwrap(),
            [
                "https://id.example.com/.well-known/oauth-authorization-server",
                "https://id.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            discovery_urls("http://127.0.0.1:8080").unwrap()[0],
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert!(discovery_urls("http://id.example.com").is_err());
        assert!(discovery_urls("https://id.example.com/?tenant=1").is_err());
    }

    #[test]
    fn registration_and_pushed_authorization_endpoints_are_read() {
        let server = parse_metadata(
            ISSUER,
            doc(r#","registration_endpoint":"https://id.example.com/register","pushed_authorization_request_endpoint":"https://id.example.com/par","require_pushed_authorization_requests":true"#).as_bytes(),
            false,
        )
        .unwrap();
        assert_eq!(server.registration_endpoint().unwrap(), "https://id.example.com/register");
        assert_eq!(server.par_endpoint().unwrap(), "https://id.example.com/par");
        assert!(server.requires_par());
        let plain = parse_metadata(ISSUER, doc("").as_bytes(), false).unwrap();
        assert!(plain.registration_endpoint().is_none() && plain.par_endpoint().is_none() && !plain.requires_par());
        let without = doc(r#","require_pushed_authorization_requests":true"#);
        assert!(parse_metadata(ISSUER, without.as_bytes(), false).is_err(), "required but nowhere to push");
        let insecure = doc(r#","registration_endpoint":"http://id.example.com/register""#);
        assert!(parse_metadata(ISSUER, insecure.as_bytes(), false).is_err());
    }

    #[test]
    fn the_issuer_must_match_exactly() {
        let err =
            parse_metadata(ISSUER, doc("").replace(ISSUER, "https://evil.example").as_bytes(), false).unwrap_err();
        assert!(matches!(&err, DiscoveryError::IssuerMismatch { got, .. } if got == "https://evil.example"));
        let slash = parse_metadata("https://id.example.com/", doc("").as_bytes(), false).unwrap_err();
        assert!(matches!(slash, DiscoveryError::IssuerMismatch { .. }), "a trailing slash is another issuer");
        assert!(parse_metadata(ISSUER, doc("").as_bytes(), false).is_ok());
    }

    #[test]
    fn endpoints_follow_the_https_rules_and_methods_are_read() {
        let insecure = doc(r#","authorization_endpoint":"http://id.example.com/authorize""#);
        assert!(matches!(
            parse_metadata(ISSUER, insecure.as_bytes(), false),
            Err(DiscoveryError::Config(ConfigError::InsecureUrl { .. }))
        ));
        assert!(parse_metadata(ISSUER, insecure.as_bytes(), true).is_ok());
        let full = doc(concat!(
            r#","authorization_endpoint":"https://id.example.com/authorize","device_authorization_endpoint":"https://id.example.com/device","#,
            r#""revocation_endpoint":"https://id.example.com/revoke","code_challenge_methods_supported":["plain","S256"],"#,
            r#""authorization_response_iss_parameter_supported":true,"token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post"]"#
        ));
        let metadata = parse_metadata(ISSUER, full.as_bytes(), false).unwrap();
        assert_eq!(metadata.device_authorization_endpoint().unwrap(), "https://id.example.com/device");
        assert_eq!(metadata.revocation_endpoint().unwrap(), "https://id.example.com/revoke");
        assert!(metadata.iss_parameter_supported());
        assert_eq!(metadata.client_auth(true), ClientAuth::Basic);
        let plain_only = doc(r#","code_challenge_methods_supported":["plain"]"#);
        assert_eq!(parse_metadata(ISSUER, plain_only.as_bytes(), false).unwrap_err(), DiscoveryError::NoS256);
        for bad in [
            "[]",
            "not json",
            r#"{"issuer":"https://id.example.com"}"#,
            r#"{"token_endpoint":"https://id.example.com/t"}"#,
        ] {
            assert!(
                matches!(parse_metadata(ISSUER, bad.as_bytes(), false), Err(DiscoveryError::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn mtls_aliases_serve_mutual_tls_clients_only() {
        let text = doc(&format!(
            r#","revocation_endpoint":"{ISSUER}/revoke","mtls_endpoint_aliases":{{"token_endpoint":"https://mtls.id.example.com/token","revocation_endpoint":"https://mtls.id.example.com/revoke"}}"#
        ));
        let metadata = parse_metadata(ISSUER, text.as_bytes(), false).unwrap();
        assert_eq!(metadata.token_endpoint_for(true), "https://mtls.id.example.com/token");
        assert_eq!(metadata.token_endpoint_for(false), "https://id.example.com/token");
        assert_eq!(metadata.revocation_endpoint_for(true).unwrap(), "https://mtls.id.example.com/revoke");
        assert_eq!(metadata.revocation_endpoint_for(false).unwrap(), "https://id.example.com/revoke");
        assert!(metadata.device_authorization_endpoint_for(true).is_none());
        // Aliases obey the endpoint rules; a malformed one is refused.
        let plain = doc(r#","mtls_endpoint_aliases":{"token_endpoint":"http://mtls.id.example.com/token"}"#);
        assert!(parse_metadata(ISSUER, plain.as_bytes(), false).is_err());
        let wrong = doc(r#","mtls_endpoint_aliases":["x"]"#);
        assert!(matches!(parse_metadata(ISSUER, wrong.as_bytes(), false), Err(DiscoveryError::Malformed { .. })));
        // A client with a private key authenticates with it.
        assert_eq!(metadata.client_auth_for(false, true, true), ClientAuth::PrivateKeyJwt);
        assert_eq!(metadata.client_auth_for(true, false, false), ClientAuth::Basic);
        // A certificate alone: tls_client_auth, unless only the self-signed one is offered.
        assert_eq!(metadata.client_auth_for(false, false, true), ClientAuth::TlsClientAuth);
        assert_eq!(metadata.client_auth_for(true, false, true), ClientAuth::Basic);
        let self_signed = doc(r#","token_endpoint_auth_methods_supported":["self_signed_tls_client_auth"]"#);
        let metadata = parse_metadata(ISSUER, self_signed.as_bytes(), false).unwrap();
        assert_eq!(metadata.client_auth_for(false, false, true), ClientAuth::SelfSignedTlsClientAuth);
    }
}
