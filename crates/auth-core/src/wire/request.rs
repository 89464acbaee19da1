//! Token endpoint requests: the client credentials and refresh token grants
//! (RFC 6749 §4.4, §6) and token revocation (RFC 7009), as plain
//! `http::Request<Vec<u8>>` values for any transport to send.
//!
//! Every request carries `Accept: application/json` (some providers answer
//! form-encoded otherwise) and authenticates the client as the
//! configuration says ([`ClientAuth`]).
//!
//! ```
//! use auth_core::config::{ClientAuth, SourceConfig};
//! use auth_core::wire::request::{token_request, Grant};
//!
//! let config = SourceConfig::builder("https://auth.example.com/token", "my app")
//!     .client_secret("p@ss word")
//!     .scope("read")
//!     .build()?;
//! let request = token_request(&config, Grant::ClientCredentials);
//! assert_eq!(request.method(), "POST");
//! // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
//! let basic = request.headers()["authorization"].to_str().unwrap();
//! assert_eq!(basic, "Basic bXklMjBhcHA6cCU0MHNzJTIwd29yZA==");
//! assert_eq!(request.body(), b"grant_type=client_credentials&scope=read");
//! # Ok::<(), auth_core::error::ConfigError>(())
//! ```

use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Uri};
use percent_encoding::percent_encode;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::config::{ClientAuth, SourceConfig};
use crate::error::ConfigError;
use crate::secret::{AccessTokenValue, AuthorizationCode, CodeVerifier, DeviceCode, ExposeSecret, RefreshToken};
use crate::text::NOT_UNRESERVED;

/// The `grant_type` of the RFC 8628 device code grant.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The grant a token request uses.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Grant<'a> {
    /// `grant_type=client_credentials` with the configured scope, audience,
    /// resources and extra parameters.
    ClientCredentials,
    /// `grant_type=refresh_token` with this refresh token. The scope is not
    /// sent again (RFC 6749 §6: the original scope is kept).
    RefreshToken(&'a RefreshToken),
    /// `grant_type=authorization_code` (RFC 6749 §4.1.3) with the PKCE
    /// verifier (RFC 7636 §4.5); see [`crate::sign_in::authorize`].
    AuthorizationCode {
        /// The code from the callback.
        code: &'a AuthorizationCode,
        /// The redirect URI the authorization request named.
        redirect_uri: &'a str,
        /// The PKCE verifier.
        code_verifier: &'a CodeVerifier,
    },
    /// The RFC 8628 device code grant; see [`crate::sign_in::device`].
    DeviceCode(&'a DeviceCode),
    /// The RFC 7523 §2.1 JWT bearer grant with the configured scope,
    /// audience, resources and extra parameters; the `assertion` is made
    /// when the request is sent ([`ready_to_send`]).
    JwtBearer,
    /// The RFC 8693 token exchange of the configuration
    /// ([`SourceConfig::token_exchange`]) with its scope, audience, resources
    /// and extra parameters; the subject and actor tokens are read when the
    /// request is sent ([`ready_to_send`]).
    TokenExchange,
}

impl Grant<'_> {
    /// The `grant_type` value.
    pub fn grant_type(&self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken(_) => "refresh_token",
            Self::AuthorizationCode { .. } => "authorization_code",
            Self::DeviceCode(_) => DEVICE_CODE_GRANT,
            Self::JwtBearer => crate::assertion::JWT_BEARER_GRANT,
            Self::TokenExchange => crate::exchange::TOKEN_EXCHANGE_GRANT,
        }
    }
}

/// The cap on a response body that the core will read, put by the core in
/// the extensions of every request it builds: a transport that reads whole
/// bodies (auth-blocking's ureq transport) reads at most this many bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxBodyBytes(pub usize);

/// An RFC 7009 revocation request, with what is needed to read its answer
/// (the token it revokes, to redact from any provider text).
///
/// Its `Debug` shows the method, URI, kind and header names; never the
/// body (which holds the token and possibly the client secret) or a header
/// value.
pub struct RevocationRequest {
    /// The request to send. Its body holds the token being revoked (and
    /// the client secret with `post` and `json`): never log it.
    pub request: Request<Vec<u8>>,
    kind: TokenKind,
    /// The token it revokes, and any other token to redact from the answer.
    secrets: Vec<Zeroizing<String>>,
}

/// Which kind of token a revocation request revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// An access token.
    AccessToken,
    /// A refresh token.
    RefreshToken,
}

impl RevocationRequest {
    /// Which token it revokes.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// Takes the request out to send it (leaving an empty one); the
    /// revocation request keeps what [`RevocationRequest::parse_response`]
    /// needs.
    pub fn take_request(&mut self) -> Request<Vec<u8>> {
        std::mem::take(&mut self.request)
    }

    /// Reads the endpoint's answer (see
    /// [`parse_revocation_response`](crate::wire::response::parse_revocation_response)),
    /// with the revoked token redacted from any provider text. Word the
    /// error with [`TokenError::about`](crate::error::TokenError::about) and
    /// [`Endpoint::Revocation`](crate::error::Endpoint::Revocation).
    pub fn parse_response(
        &self,
        config: &SourceConfig,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<(), crate::error::TokenError> {
        let secrets: Vec<&str> = self.secrets.iter().map(|s| s.as_str()).collect();
        crate::wire::response::parse_revocation_response(config, &secrets, status, headers, body)
    }

    /// Also redacts `secret` (another token the caller holds) from the answer.
    pub fn redact_also(&mut self, secret: &str) {
        if !self.secrets.iter().any(|s| s.as_str() == secret) {
            self.secrets.push(Zeroizing::new(secret.to_owned()));
        }
    }
}

impl std::fmt::Debug for RevocationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("RevocationRequest");
        out.field("kind", &self.kind);
        describe_request(&mut out, &self.request);
        out.finish_non_exhaustive()
    }
}

/// Adds a request's method, URI and header names (never a value, never
/// the body) to a `Debug` output.
pub(crate) fn describe_request(out: &mut std::fmt::DebugStruct<'_, '_>, request: &Request<Vec<u8>>) {
    struct Names<'a>(&'a http::HeaderMap);
    impl std::fmt::Debug for Names<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_list().entries(self.0.keys().map(http::HeaderName::as_str)).finish()
        }
    }
    out.field("method", request.method())
        .field("uri", request.uri())
        .field("headers", &Names(request.headers()))
        .field("body_bytes", &request.body().len());
}

/// A token to revoke, with the RFC 7009 `token_type_hint` it implies.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Revocable<'a> {
    /// An access token (`token_type_hint=access_token`).
    AccessToken(&'a AccessTokenValue),
    /// A refresh token (`token_type_hint=refresh_token`).
    RefreshToken(&'a RefreshToken),
}

/// Builds the token request for `grant`.
pub fn token_request(config: &SourceConfig, grant: Grant<'_>) -> Request<Vec<u8>> {
    let mut params: Vec<(&str, &str)> = vec![("grant_type", grant.grant_type())];
    let scope = config.scope_param();
    match grant {
        Grant::ClientCredentials | Grant::JwtBearer | Grant::TokenExchange => {
            if let (Grant::TokenExchange, Some(exchange)) = (&grant, config.token_exchange()) {
                params.extend(exchange.fixed_params());
            }
            if let Some(scope) = scope.as_deref() {
                params.push(("scope", scope));
            }
            if let Some(audience) = config.audience() {
                params.push(("audience", audience));
            }
            params.extend(config.resources().iter().map(|r| ("resource", r.as_str())));
            params.extend(config.params().iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        // RFC 8707 §2.2: the resource again, so that the renewed token is for it too.
        Grant::RefreshToken(token) => {
            params.push(("refresh_token", token.expose_secret()));
            params.extend(config.resources().iter().map(|r| ("resource", r.as_str())));
        }
        Grant::AuthorizationCode { code, redirect_uri, code_verifier } => {
            params.push(("code", code.expose_secret()));
            params.push(("redirect_uri", redirect_uri));
            params.push(("code_verifier", code_verifier.expose_secret()));
            params.extend(config.resources().iter().map(|r| ("resource", r.as_str())));
            params.extend(config.params().iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        Grant::DeviceCode(code) => {
            params.push(("device_code", code.expose_secret()));
            params.extend(config.resources().iter().map(|r| ("resource", r.as_str())));
            params.extend(config.params().iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
    }
    let mut request = build(config, config.token_url(), &params);
    if matches!(grant, Grant::JwtBearer | Grant::TokenExchange) {
        // The grant's assertion or tokens join the client's (if any).
        request.extensions_mut().remove::<crate::assertion::Pending>();
        if let Some(pending) = crate::assertion::Pending::for_request(config, true, true) {
            request.extensions_mut().insert(pending);
        }
    }
    request
}

/// The request to send for `built` (a request from this module,
/// [`crate::sign_in::authorize`] or [`crate::sign_in::device`], or a
/// [`FetchRequest`](crate::FetchRequest)'s) at wall time `wall`: with a
/// fresh client assertion (`private_key_jwt`, `client_secret_jwt`) and JWT
/// bearer assertion when the configuration uses them, the same request
/// otherwise. Drivers call it for every attempt, retries included, so that
/// no assertion is sent twice; a failure means nothing may be sent.
pub fn ready_to_send(
    built: &Request<Vec<u8>>,
    wall: std::time::SystemTime,
) -> Result<Request<Vec<u8>>, crate::error::TokenError> {
    crate::assertion::prepare(built, wall).map(|(request, _)| request)
}

/// One token endpoint request across its attempts, for drivers: each
/// attempt is made ready to send at its own time (fresh assertions and
/// DPoP proof), and an answer that asks for a DPoP nonce
/// (`400 use_dpop_nonce` with a new `DPoP-Nonce`) is tried once more.
///
/// ```
/// # use std::time::SystemTime;
/// # use auth_core::wire::request::{token_request, Grant, TokenCall};
/// # let config = auth_core::SourceConfig::builder("https://a.example/token", "c")
/// #     .client_secret("s").build()?;
/// # let send = |request: http::Request<Vec<u8>>| http::Response::new(Vec::<u8>::new());
/// let mut call = TokenCall::new(token_request(&config, Grant::ClientCredentials));
/// let response = loop {
///     let response = send(call.attempt(SystemTime::now())?);
///     if !call.retry(&response) {
///         break response;
///     }
/// };
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TokenCall {
    built: Request<Vec<u8>>,
    sent: Option<crate::assertion::SentProof>,
    retried: bool,
}

impl std::fmt::Debug for TokenCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = f.debug_struct("TokenCall");
        describe_request(&mut out, &self.built);
        out.field("retried", &self.retried).finish_non_exhaustive()
    }
}

impl TokenCall {
    /// A call of `built` (a request from this module, [`crate::sign_in::authorize`],
    /// [`crate::sign_in::device`], or a [`FetchRequest`](crate::FetchRequest)'s).
    pub fn new(built: Request<Vec<u8>>) -> Self {
        Self { built, sent: None, retried: false }
    }

    /// The request to send now, at wall time `wall`; a failure means
    /// nothing may be sent.
    pub fn attempt(&mut self, wall: std::time::SystemTime) -> Result<Request<Vec<u8>>, crate::error::TokenError> {
        let (request, sent) = crate::assertion::prepare(&self.built, wall)?;
        self.sent = sent;
        Ok(request)
    }

    /// Reads the answer to the last attempt: whether to make another (at
    /// most once, for a DPoP nonce). Remembers any `DPoP-Nonce` it carries.
    pub fn retry<B: AsRef<[u8]>>(&mut self, response: &http::Response<B>) -> bool {
        let Some((dpop, proof)) = &self.sent else { return false };
        let again = dpop.token_endpoint_retry(
            self.built.uri(),
            proof,
            response.status(),
            response.headers(),
            response.body().as_ref(),
        );
        let retry = again && !self.retried;
        self.retried |= retry;
        retry
    }
}

/// Builds an RFC 7009 revocation request for `token`, authenticated like
/// the token requests. Fails only when no revocation URL is configured.
pub fn revocation_request(config: &SourceConfig, token: Revocable<'_>) -> Result<RevocationRequest, ConfigError> {
    let url = config.revocation_url().ok_or(ConfigError::NoRevocationUrl)?;
    let (value, hint, kind) = match token {
        Revocable::AccessToken(t) => (t.expose_secret(), "access_token", TokenKind::AccessToken),
        Revocable::RefreshToken(t) => (t.expose_secret(), "refresh_token", TokenKind::RefreshToken),
    };
    let request = build(config, url, &[("token", value), ("token_type_hint", hint)]);
    Ok(RevocationRequest { request, kind, secrets: vec![Zeroizing::new(value.to_owned())] })
}

pub(crate) fn build(config: &SourceConfig, url: &Uri, params: &[(&str, &str)]) -> Request<Vec<u8>> {
    let secret = config.client_secret().map(|s| s.expose_secret());
    let mut authorization = None;
    let mut form: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 2);
    let json = config.client_auth() == ClientAuth::Json;
    match config.client_auth() {
        ClientAuth::Basic => {
            let id = percent_encode(config.client_id().as_bytes(), NOT_UNRESERVED).to_string();
            let secret = percent_encode(secret.unwrap_or("").as_bytes(), NOT_UNRESERVED).to_string();
            authorization = Some(basic_header(&id, &secret));
        }
        ClientAuth::BasicRaw => authorization = Some(basic_header(config.client_id(), secret.unwrap_or(""))),
        ClientAuth::Post | ClientAuth::Json => {
            form.push(("client_id", config.client_id()));
            form.push(("client_secret", secret.unwrap_or("")));
        }
        ClientAuth::None
        | ClientAuth::PrivateKeyJwt
        | ClientAuth::ClientSecretJwt
        | ClientAuth::TlsClientAuth
        | ClientAuth::SelfSignedTlsClientAuth => form.push(("client_id", config.client_id())),
    }
    // grant_type (or token) first, then the client fields, then the rest:
    // the order providers show in their documentation.
    let (first, rest) = params.split_first().map_or((None, params), |(f, r)| (Some(*f), r));
    let ordered: Vec<(&str, &str)> = first.into_iter().chain(form).chain(rest.iter().copied()).collect();
    let (content_type, body) = if json {
        ("application/json", json_body(&ordered))
    } else {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        serializer.extend_pairs(ordered.iter());
        ("application/x-www-form-urlencoded", serializer.finish().into_bytes())
    };
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = url.clone();
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = authorization {
        headers.insert(AUTHORIZATION, value);
    }
    request.extensions_mut().insert(MaxBodyBytes(config.max_body_bytes()));
    if let Some(pending) = crate::assertion::Pending::for_request(config, false, url == config.token_url()) {
        request.extensions_mut().insert(pending);
    }
    request
}

/// A JSON object of the parameters; a parameter given several times
/// (`resource`) becomes an array.
fn json_body(params: &[(&str, &str)]) -> Vec<u8> {
    let mut object = Map::new();
    for (name, value) in params {
        let value = Value::String((*value).to_owned());
        match object.get_mut(*name) {
            None => {
                object.insert((*name).to_owned(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    Value::Object(object).to_string().into_bytes()
}

fn basic_header(user: &str, password: &str) -> HeaderValue {
    let plain = Zeroizing::new(format!("{user}:{password}"));
    let value = Zeroizing::new(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(plain.as_bytes())));
    // Safe: `Basic ` followed by base64 output is always visible ASCII.
    crate::text::sensitive_value(value.as_bytes()).expect("base64 is a valid header value")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::SourceConfigBuilder;

    fn builder(auth: ClientAuth) -> SourceConfigBuilder {
        SourceConfig::builder("https://auth.example.com/oauth/token", "client-1")
            .client_secret("secret")
            .client_auth(auth)
    }

    fn body(request: &Request<Vec<u8>>) -> &str {
        std::str::from_utf8(request.body()).unwrap()
    }

    fn decode_basic(request: &Request<Vec<u8>>) -> String {
        let value = request.headers()[AUTHORIZATION].to_str().unwrap();
        let encoded = value.strip_prefix("Basic ").unwrap();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap()).unwrap()
    }

    #[test]
    fn basic_encodes_every_byte_outside_unreserved() {
        let config = SourceConfig::builder("https://a.example/token", "id with space+plus:colon")
            .client_secret("s+e:c%r/e&t= ü~._-")
            .build()
            .unwrap();
        let request = token_request(&config, Grant::ClientCredentials);
        assert_eq!(decode_basic(&request), "id%20with%20space%2Bplus%3Acolon:s%2Be%3Ac%25r%2Fe%26t%3D%20%C3%BC~._-");
        assert!(request.headers()[AUTHORIZATION].is_sensitive());
        assert_eq!(body(&request), "grant_type=client_credentials");
    }

    #[test]
    fn basic_raw_sends_values_unencoded() {
        let config = builder(ClientAuth::BasicRaw).client_secret("s+e:c%r/e&t= ü").build().unwrap();
        assert_eq!(decode_basic(&token_request(&config, Grant::ClientCredentials)), "client-1:s+e:c%r/e&t= ü");
        let err = SourceConfig::builder("https://a.example/t", "a:b")
            .client_secret("s")
            .client_auth(ClientAuth::BasicRaw)
            .build();
        assert!(err.is_err());
    }

    #[test]
    fn post_puts_credentials_in_the_form_body() {
        let config = builder(ClientAuth::Post)
            .client_secret("s+e c&r=t/ü")
            .scope("read write")
            .resource("https://r1.example")
            .resource("https://r2.example")
            .audience("aud")
            .param("tenant", "a&b")
            .build()
            .unwrap();
        let request = token_request(&config, Grant::ClientCredentials);
        assert!(request.headers().get(AUTHORIZATION).is_none());
        assert_eq!(request.headers()[CONTENT_TYPE], "application/x-www-form-urlencoded");
        assert_eq!(request.headers()[ACCEPT], "application/json");
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri(), "https://auth.example.com/oauth/token");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(request.body()).into_owned().collect();
        let expected = [
            ("grant_type", "client_credentials"),
            ("client_id", "client-1"),
            ("client_secret", "s+e c&r=t/ü"),
            ("scope", "read write"),
            ("audience", "aud"),
            ("resource", "https://r1.example"),
            ("resource", "https://r2.example"),
            ("tenant", "a&b"),
        ];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
        assert!(body(&request)
            .starts_with("grant_type=client_credentials&client_id=client-1&client_secret=s%2Be+c%26r%3Dt%2F%C3%BC"));
        // RFC 8707 §2.2: a refresh names the resources again; the extra
        // parameters and the scope stay with the first grant.
        let refresh = RefreshToken::new("rt-1");
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(token_request(&config, Grant::RefreshToken(&refresh)).body()).into_owned().collect();
        let resources: Vec<&str> = pairs.iter().filter(|(k, _)| k == "resource").map(|(_, v)| v.as_str()).collect();
        assert_eq!(resources, ["https://r1.example", "https://r2.example"]);
        assert!(!pairs.iter().any(|(k, _)| k == "tenant" || k == "scope"), "{pairs:?}");
    }

    #[test]
    fn json_body_holds_grant_client_and_parameters() {
        let config = builder(ClientAuth::Json)
            .audience("https://api.example.com")
            .scope("a b")
            .resource("r1")
            .resource("r2")
            .build()
            .unwrap();
        let request = token_request(&config, Grant::ClientCredentials);
        assert_eq!(request.headers()[CONTENT_TYPE], "application/json");
        let value: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "grant_type": "client_credentials",
                "client_id": "client-1",
                "client_secret": "secret",
                "audience": "https://api.example.com",
                "scope": "a b",
                "resource": ["r1", "r2"],
            })
        );
    }

    #[test]
    fn public_client_sends_only_its_id() {
        let config =
            SourceConfig::builder("https://a.example/t", "public").client_auth(ClientAuth::None).build().unwrap();
        let request = token_request(&config, Grant::ClientCredentials);
        assert!(request.headers().get(AUTHORIZATION).is_none());
        assert_eq!(body(&request), "grant_type=client_credentials&client_id=public");
    }

    #[test]
    fn refresh_grant_sends_the_refresh_token_and_no_scope() {
        let config = builder(ClientAuth::Basic).scope("offline_access").build().unwrap();
        let refresh = RefreshToken::new("rt/with+chars");
        let request = token_request(&config, Grant::RefreshToken(&refresh));
        assert_eq!(body(&request), "grant_type=refresh_token&refresh_token=rt%2Fwith%2Bchars");
        assert_eq!(decode_basic(&request), "client-1:secret");
        let config = builder(ClientAuth::Post).build().unwrap();
        let request = token_request(&config, Grant::RefreshToken(&refresh));
        assert_eq!(
            body(&request),
            "grant_type=refresh_token&client_id=client-1&client_secret=secret&refresh_token=rt%2Fwith%2Bchars"
        );
    }

    #[test]
    fn revocation_sends_token_and_hint() {
        let config =
            builder(ClientAuth::Basic).revocation_url("https://auth.example.com/oauth/revoke").build().unwrap();
        let access = AccessTokenValue::new("at-123");
        let revocation = revocation_request(&config, Revocable::AccessToken(&access)).unwrap();
        assert_eq!(revocation.kind(), TokenKind::AccessToken);
        let request = &revocation.request;
        assert_eq!(request.uri(), "https://auth.example.com/oauth/revoke");
        assert_eq!(body(request), "token=at-123&token_type_hint=access_token");
        assert_eq!(decode_basic(request), "client-1:secret");
        let refresh = RefreshToken::new("rt-9");
        let request = revocation_request(&config, Revocable::RefreshToken(&refresh)).unwrap().request;
        assert_eq!(body(&request), "token=rt-9&token_type_hint=refresh_token");
        let json = builder(ClientAuth::Json).revocation_url("https://auth.example.com/oauth/revoke").build().unwrap();
        let request = revocation_request(&json, Revocable::RefreshToken(&refresh)).unwrap().request;
        let value: Value = serde_json::from_slice(request.body()).unwrap();
        assert_eq!(value["token"], "rt-9");
        assert_eq!(value["client_id"], "client-1");
        let none = builder(ClientAuth::Basic).build().unwrap();
        assert_eq!(
            revocation_request(&none, Revocable::RefreshToken(&refresh)).unwrap_err(),
            ConfigError::NoRevocationUrl
        );
    }

    #[test]
    fn revocation_errors_never_quote_the_revoked_token() {
        let config = builder(ClientAuth::Post).revocation_url("https://auth.example.com/oauth/revoke").build().unwrap();
        let refresh = RefreshToken::new("RT-8f2a9c1d77e3b4");
        let revocation = revocation_request(&config, Revocable::RefreshToken(&refresh)).unwrap();
        let body = br#"{"error":"invalid_request","error_description":"token RT-8f2a9c1d77e3b4 is not known"}"#;
        let error = revocation
            .parse_response(&config, http::StatusCode::BAD_REQUEST, &http::HeaderMap::new(), body)
            .unwrap_err();
        let text = error.about(crate::error::Endpoint::Revocation).to_string();
        assert!(!text.contains("8f2a9c1d") && text.contains("[redacted]"), "{text}");
        assert!(text.starts_with("revocation endpoint refused"), "{text}");
    }

    #[test]
    fn debug_of_requests_shows_no_body_and_no_credential() {
        let config = builder(ClientAuth::Post)
            .client_secret("the-client-secret-123")
            .revocation_url("https://auth.example.com/oauth/revoke")
            .build()
            .unwrap();
        let refresh = RefreshToken::new("the-refresh-token-456");
        let basic = builder(ClientAuth::Basic)
            .client_secret("the-client-secret-123")
            .revocation_url("https://auth.example.com/oauth/revoke")
            .build()
            .unwrap();
        for config in [&config, &basic] {
            let revocation = revocation_request(config, Revocable::RefreshToken(&refresh)).unwrap();
            let shown = format!("{revocation:?}");
            assert_no_secret(&shown, &["the-client-secret-123", "the-refresh-token-456"]);
            assert!(shown.contains("RefreshToken") && shown.contains("/oauth/revoke"), "{shown}");
        }
    }

    /// Looks for the secrets in every form the Debug output could hold
    /// them: as text, and in the byte lists and base64 that a derived
    /// `Debug` of a body or header would print.
    pub(crate) fn assert_no_secret(shown: &str, secrets: &[&str]) {
        let numbers: Vec<u8> =
            shown.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u8>().ok()).collect();
        let decoded = String::from_utf8_lossy(&numbers);
        let base64_runs: String = shown
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
            .filter_map(|run| base64::engine::general_purpose::STANDARD.decode(run).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect();
        for secret in secrets {
            for haystack in [shown, &decoded, &base64_runs] {
                assert!(!haystack.contains(secret), "{secret} in {haystack}");
            }
        }
    }
}
