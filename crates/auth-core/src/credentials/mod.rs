//! Credentials on outgoing API requests: an OAuth bearer token from a token
//! source, API keys in a header or query parameter, static HTTP Basic, a
//! static bearer token, in any combination, limited to the origins they
//! belong to.
//!
//! ```
//! use auth_core::credentials::{Applied, Credentials};
//!
//! // A provider that wants a subscription key header and a legacy Basic login.
//! let credentials = Credentials::builder()
//!     .api_key_header("cdpapi-Subscription-Key", "key-123")
//!     .basic("token-id", "token-secret")
//!     .api_origin("https://api.example.com")
//!     .build()?;
//!
//! let mut request = http::Request::get("https://api.example.com/v1/items").body(()).unwrap();
//! assert_eq!(credentials.apply(&mut request, None), Ok(Applied::Attached));
//! assert_eq!(request.headers()["cdpapi-subscription-key"], "key-123");
//! assert!(request.headers()["cdpapi-subscription-key"].is_sensitive());
//! assert!(request.headers()["authorization"].to_str().unwrap().starts_with("Basic "));
//!
//! // Another host never sees them.
//! let mut elsewhere = http::Request::get("https://evil.example.net/").body(()).unwrap();
//! assert_eq!(credentials.apply(&mut elsewhere, None), Ok(Applied::SkippedOrigin));
//! assert!(elsewhere.headers().is_empty());
//! # Ok::<(), auth_core::error::ConfigError>(())
//! ```

use base64::Engine as _;
use http::header::AUTHORIZATION;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Request, Uri};
use percent_encoding::utf8_percent_encode;
use zeroize::Zeroizing;

use crate::dpop::Proof;
use crate::error::{ApplyError, ConfigError};
use crate::publish::token::AccessToken;
use crate::secret::{AccessTokenValue, ApiKey, ExposeSecret, Password};
use crate::text::sensitive_value;

mod origin;

use origin::any_matches;
pub use origin::Origin;

#[derive(Clone)]
enum Part {
    Bearer,
    StaticAuthorization(HeaderValue),
    Header(HeaderName, HeaderValue),
    Query(String, ApiKey),
}

/// What [`Credentials::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// Every credential was put on the request.
    Attached,
    /// The request goes to an origin the credentials are not allowed on: it
    /// was left untouched.
    SkippedOrigin,
}

/// A composed, validated set of credentials. Cheap to apply: header values
/// are built once, at [`CredentialsBuilder::build`], and cloned onto each
/// request (a reference count, no copy).
#[derive(Clone)]
pub struct Credentials {
    parts: Vec<Part>,
    origins: Vec<Origin>,
    /// Whether a part goes into the query (known once, checked per request).
    has_query: bool,
    /// Requests sent without these credentials (shared by clones).
    withheld: std::sync::Arc<crate::withheld::Withheld>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .parts
            .iter()
            .map(|p| match p {
                Part::Bearer => "Bearer(token source)".to_owned(),
                Part::StaticAuthorization(_) => "Authorization([redacted])".to_owned(),
                Part::Header(name, _) => format!("Header({name}: [redacted])"),
                Part::Query(name, _) => format!("Query({name}=[redacted])"),
            })
            .collect();
        f.debug_struct("Credentials").field("parts", &parts).field("origins", &self.origins).finish()
    }
}

impl Credentials {
    /// Starts an empty set.
    pub fn builder() -> CredentialsBuilder {
        CredentialsBuilder::default()
    }

    /// Only an OAuth bearer token from a token source, sent to `origin`
    /// (`https://api.example.com`) only.
    pub fn bearer(origin: &str) -> Result<Self, ConfigError> {
        Self::builder().bearer_from_source().api_origin(origin).build()
    }

    /// Whether [`Credentials::apply`] needs an access token.
    #[inline]
    pub fn needs_token(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Bearer))
    }

    /// A request to `origin` (`scheme://host[:port]`, see
    /// [`Credentials::origin_of`]) goes out without these credentials, as
    /// the origin filter says: counts it ([`Credentials::withheld_requests`])
    /// and, the first time for that origin, returns what to say at warn
    /// level (the origin, the allowed ones, what to change; never a
    /// credential). Drivers call it on every request they pass untouched.
    #[cold]
    pub fn note_withheld(&self, origin: &str) -> Option<String> {
        let allowed: Vec<&str> = self.origins.iter().map(|o| o.serialized.as_str()).collect();
        self.withheld.note(origin, &allowed)
    }

    /// How many requests went out without these credentials (or a clone of
    /// them) because of their origin.
    pub fn withheld_requests(&self) -> u64 {
        self.withheld.count()
    }

    /// `scheme://host[:port]` of `uri`, as [`Credentials::note_withheld`]
    /// wants it: never its user info (`a relative URI` for one without an
    /// authority).
    pub fn origin_of(uri: &Uri) -> String {
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => match authority.port_u16() {
                Some(port) => format!("{scheme}://{}:{port}", authority.host()),
                None => format!("{scheme}://{}", authority.host()),
            },
            _ => "a relative URI".to_owned(),
        }
    }

    /// Whether the credentials may be sent to `uri`. Built with
    /// [`CredentialsBuilder::any_origin`], every URI qualifies.
    #[inline(always)]
    pub fn applies_to(&self, uri: &Uri) -> bool {
        match self.origins.as_slice() {
            [] => true,
            [origin] => origin.matches(uri),
            origins => any_matches(origins, uri),
        }
    }

    /// Puts every credential on `request`, replacing headers of the same
    /// name. `token` is required when [`Credentials::needs_token`]; the
    /// caller is responsible for passing a usable one.
    ///
    /// Requests to an origin outside the filter are left untouched.
    pub fn apply<B>(&self, request: &mut Request<B>, token: Option<&AccessToken>) -> Result<Applied, ApplyError> {
        if !self.applies_to(request.uri()) {
            return Ok(Applied::SkippedOrigin);
        }
        self.apply_allowed(request, token)?;
        Ok(Applied::Attached)
    }

    /// Like [`Credentials::apply`] without the origin check, for callers
    /// that checked [`Credentials::applies_to`] already (a driver decides on
    /// the origin before it waits for a token).
    #[inline]
    pub fn apply_allowed<B>(&self, request: &mut Request<B>, token: Option<&AccessToken>) -> Result<(), ApplyError> {
        self.apply_headers(request.headers_mut(), token)?;
        if self.has_query {
            self.apply_query(request)?;
        }
        Ok(())
    }

    fn apply_query<B>(&self, request: &mut Request<B>) -> Result<(), ApplyError> {
        for (name, key) in self.query_params() {
            let uri = with_query_param(request.uri(), name, key.expose_secret())?;
            *request.uri_mut() = uri;
        }
        Ok(())
    }

    /// Whether the credentials may be sent to this origin (for clients whose
    /// URL type is not `http::Uri`). `port` is the explicit port, if any.
    pub fn applies_to_origin(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        self.origins.is_empty() || self.origins.iter().any(|o| o.matches_parts(scheme, host, port))
    }

    /// [`Credentials::applies_to_origin`] for a URL type that keeps its
    /// serialization (such as `url::Url`): `url` as written first (one
    /// byte comparison, see [`Origin::starts`]), and only when that is not
    /// conclusive the scheme, host and explicit port `parts` gives.
    #[inline]
    pub fn applies_to_url<'u>(&self, url: &'u str, parts: impl FnOnce() -> (&'u str, &'u str, Option<u16>)) -> bool {
        if self.origins.is_empty() || self.origins.iter().any(|o| o.starts(url)) {
            return true;
        }
        let (scheme, host, port) = parts();
        self.applies_to_origin(scheme, host, port)
    }

    /// [`Credentials::apply`] for a token that may be DPoP-bound: with a
    /// fresh DPoP proof for the request at wall time `wall` when it is.
    /// Returns the proof sent, to judge the answer by
    /// ([`replay::judge`](crate::publish::replay::judge)).
    pub fn apply_at<B>(
        &self,
        request: &mut Request<B>,
        token: Option<&AccessToken>,
        wall: std::time::SystemTime,
    ) -> Result<(Applied, Option<Proof>), ApplyError> {
        if !self.applies_to(request.uri()) {
            return Ok((Applied::SkippedOrigin, None));
        }
        Ok((Applied::Attached, self.apply_allowed_at(request, token, wall)?))
    }

    /// [`Credentials::apply_at`] without the origin check.
    pub fn apply_allowed_at<B>(
        &self,
        request: &mut Request<B>,
        token: Option<&AccessToken>,
        wall: std::time::SystemTime,
    ) -> Result<Option<Proof>, ApplyError> {
        let proof = self.proof(request.method(), request.uri(), token, wall)?;
        self.put_headers(request.headers_mut(), token, proof.as_ref())?;
        if self.has_query {
            self.apply_query(request)?;
        }
        Ok(proof)
    }

    /// [`Credentials::apply_headers`] for a token that may be DPoP-bound,
    /// for a `method` request to `uri` at wall time `wall`; returns the
    /// proof sent.
    pub fn apply_headers_at(
        &self,
        headers: &mut http::HeaderMap,
        method: &http::Method,
        uri: &Uri,
        token: Option<&AccessToken>,
        wall: std::time::SystemTime,
    ) -> Result<Option<Proof>, ApplyError> {
        let proof = self.proof(method, uri, token, wall)?;
        self.put_headers(headers, token, proof.as_ref())?;
        Ok(proof)
    }

    /// A proof for the request when the token is DPoP-bound and goes on it.
    fn proof(
        &self,
        method: &http::Method,
        uri: &Uri,
        token: Option<&AccessToken>,
        wall: std::time::SystemTime,
    ) -> Result<Option<Proof>, ApplyError> {
        match token.and_then(|t| t.dpop().map(|dpop| (t, dpop))) {
            Some((token, dpop)) if self.needs_token() => dpop
                .proof(method, uri, Some(token.value()), wall)
                .map(Some)
                .map_err(|error| ApplyError::Proof { reason: error.to_string() }),
            _ => Ok(None),
        }
    }

    /// Puts the header credentials into `headers`, replacing headers of the
    /// same name. Does not check the origin and does not set query
    /// parameters (see [`Credentials::query_params`]): for adapters whose
    /// request type is not `http::Request`. A DPoP-bound token is refused
    /// here: it needs a proof ([`Credentials::apply_headers_at`]).
    #[inline]
    pub fn apply_headers(&self, headers: &mut http::HeaderMap, token: Option<&AccessToken>) -> Result<(), ApplyError> {
        self.put_headers(headers, token, None)
    }

    fn put_headers(
        &self,
        headers: &mut http::HeaderMap,
        token: Option<&AccessToken>,
        proof: Option<&Proof>,
    ) -> Result<(), ApplyError> {
        for part in &self.parts {
            match part {
                Part::Bearer => {
                    let token = token.ok_or(ApplyError::MissingToken)?;
                    if token.dpop().is_some() {
                        let proof = proof.ok_or(ApplyError::ProofNeeded)?;
                        headers.insert(crate::dpop::DPOP_HEADER, proof.value().clone());
                    }
                    headers.insert(AUTHORIZATION, token.header_value().clone());
                }
                Part::StaticAuthorization(value) => {
                    headers.insert(AUTHORIZATION, value.clone());
                }
                Part::Header(name, value) => {
                    headers.insert(name.clone(), value.clone());
                }
                Part::Query(..) => {}
            }
        }
        Ok(())
    }

    /// `query` (without `?`) with the value of every parameter these
    /// credentials put in a query replaced by `[redacted]`; `None` when
    /// none of them is there. For URLs that are shown (errors, logs,
    /// `Response::url()`): the key must not travel with them.
    pub fn redact_query(&self, query: &str) -> Option<String> {
        let mut found = false;
        let redacted: Vec<String> = query
            .split('&')
            .map(|segment| {
                let key = segment.split_once('=').map_or(segment, |(k, _)| k);
                let decoded = form_urlencoded::parse(key.as_bytes()).next().map(|(k, _)| k);
                if decoded.is_some_and(|name| self.query_params().any(|(ours, _)| ours == name)) {
                    found = true;
                    format!("{key}=[redacted]")
                } else {
                    segment.to_owned()
                }
            })
            .collect();
        found.then(|| redacted.join("&"))
    }

    /// Whether some credential goes into the query string.
    #[inline]
    pub fn has_query_params(&self) -> bool {
        self.has_query
    }

    /// The API keys that go into query parameters, by parameter name.
    #[inline]
    pub fn query_params(&self) -> impl Iterator<Item = (&str, &ApiKey)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Query(name, key) => Some((name.as_str(), key)),
            _ => None,
        })
    }
}

/// Builder of [`Credentials`]. Nothing is validated until `build`.
#[derive(Default)]
#[must_use = "call build() to get Credentials"]
pub struct CredentialsBuilder {
    bearer: bool,
    static_bearer: Option<AccessTokenValue>,
    basic: Option<(String, Password)>,
    headers: Vec<(String, ApiKey)>,
    queries: Vec<(String, ApiKey)>,
    origins: Vec<String>,
    any_origin: bool,
}

impl CredentialsBuilder {
    /// `Authorization: Bearer <token>` with the token source's current token.
    pub fn bearer_from_source(mut self) -> Self {
        self.bearer = true;
        self
    }

    /// `Authorization: Bearer <token>` with a token the user already holds
    /// (a JWT, a personal access token).
    pub fn static_bearer(mut self, token: impl Into<AccessTokenValue>) -> Self {
        self.static_bearer = Some(token.into());
        self
    }

    /// `Authorization: Basic ...` with static credentials (RFC 7617; the
    /// user and password are sent as UTF-8, unencoded).
    pub fn basic(mut self, user: impl Into<String>, password: impl Into<Password>) -> Self {
        self.basic = Some((user.into(), password.into()));
        self
    }

    /// An API key in the named header (`X-API-Key`, `cdpapi-Subscription-Key`).
    pub fn api_key_header(mut self, name: impl Into<String>, key: impl Into<ApiKey>) -> Self {
        self.headers.push((name.into(), key.into()));
        self
    }

    /// An API key in the named query parameter. The key then appears in
    /// the request URI: make sure nothing logs full URIs.
    pub fn api_key_query(mut self, name: impl Into<String>, key: impl Into<ApiKey>) -> Self {
        self.queries.push((name.into(), key.into()));
        self
    }

    /// Limits the credentials to an origin (`https://api.example.com`,
    /// `http://127.0.0.1:8080`: scheme, host and port, no path); may be
    /// called several times. Required (or [`any_origin`](Self::any_origin)):
    /// requests to other origins, redirects included, go out without the
    /// credentials.
    pub fn api_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// The former name of [`api_origin`](Self::api_origin), the one name
    /// the client builders, `Credentials` and authc's profiles now share.
    #[deprecated(since = "0.1.0", note = "renamed `api_origin`, as in the client builders and authc's profiles")]
    pub fn allow_origin(self, origin: impl Into<String>) -> Self {
        self.api_origin(origin)
    }

    /// Sends the credentials to every origin the client calls, instead of
    /// the origins given with [`api_origin`](Self::api_origin). Unsafe
    /// outside a client that only ever calls one API: a redirect or a URL
    /// built from user input would carry the credentials to another host.
    pub fn any_origin(mut self) -> Self {
        self.any_origin = true;
        self
    }

    /// Validates and builds the set.
    pub fn build(self) -> Result<Credentials, ConfigError> {
        let mut parts = Vec::new();
        let mut authorization_set = false;
        fn claim_authorization(already_set: &mut bool) -> Result<(), ConfigError> {
            if std::mem::replace(already_set, true) {
                Err(ConfigError::ConflictingCredentials { target: "authorization".to_owned() })
            } else {
                Ok(())
            }
        }
        if self.bearer {
            claim_authorization(&mut authorization_set)?;
            parts.push(Part::Bearer);
        }
        if let Some(token) = self.static_bearer {
            claim_authorization(&mut authorization_set)?;
            let value = Zeroizing::new(format!("Bearer {}", token.expose_secret()));
            let value = sensitive_value(value.as_bytes())
                .ok_or(ConfigError::InvalidCredentialValue { what: "static bearer token" })?;
            parts.push(Part::StaticAuthorization(value));
        }
        if let Some((user, password)) = self.basic {
            claim_authorization(&mut authorization_set)?;
            if user.contains(':') {
                return Err(ConfigError::InvalidCredentialValue { what: "Basic user name (it cannot hold `:`)" });
            }
            let plain = Zeroizing::new(format!("{user}:{}", password.expose_secret()));
            if plain.bytes().any(|b| b < 0x20 || b == 0x7f) {
                return Err(ConfigError::InvalidCredentialValue { what: "Basic user name or password" });
            }
            let value =
                Zeroizing::new(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(plain.as_bytes())));
            // Safe: `Basic ` and base64 output are visible ASCII.
            parts.push(Part::StaticAuthorization(
                sensitive_value(value.as_bytes()).expect("base64 is a valid header value"),
            ));
        }
        for (name, key) in self.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| ConfigError::InvalidHeaderName { name: name.clone() })?;
            if header == AUTHORIZATION {
                claim_authorization(&mut authorization_set)?;
            }
            if parts.iter().any(|p| matches!(p, Part::Header(existing, _) if existing == header)) {
                return Err(ConfigError::ConflictingCredentials { target: header.as_str().to_owned() });
            }
            if key.is_empty() {
                return Err(ConfigError::InvalidCredentialValue { what: "API key (it is empty)" });
            }
            let value = sensitive_value(key.expose_secret().as_bytes())
                .ok_or(ConfigError::InvalidCredentialValue { what: "API key" })?;
            parts.push(Part::Header(header, value));
        }
        for (name, key) in self.queries {
            if name.is_empty() {
                return Err(ConfigError::InvalidCredentialValue { what: "API key query parameter name (empty)" });
            }
            if parts.iter().any(|p| matches!(p, Part::Query(existing, _) if *existing == name)) {
                return Err(ConfigError::ConflictingCredentials { target: format!("?{name}") });
            }
            parts.push(Part::Query(name, key));
        }
        let origins: Vec<Origin> = self.origins.iter().map(|o| Origin::parse(o)).collect::<Result<_, _>>()?;
        match (origins.is_empty(), self.any_origin) {
            (true, false) if !parts.is_empty() => return Err(ConfigError::NoOrigin),
            (false, true) => return Err(ConfigError::AnyOriginWithOrigins),
            _ => {}
        }
        let has_query = parts.iter().any(|p| matches!(p, Part::Query(..)));
        Ok(Credentials { parts, origins, has_query, withheld: Default::default() })
    }
}

/// `uri` with the query parameter `name` set to `value`: other parameters
/// are kept byte for byte, an existing `name` is replaced.
fn with_query_param(uri: &Uri, name: &str, value: &str) -> Result<Uri, ApplyError> {
    let path_and_query = uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let out = format!("{path}?{}", query_with_param(query, name, value));
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(out).map_err(|_| ApplyError::InvalidUri)?);
    Uri::from_parts(parts).map_err(|_| ApplyError::InvalidUri)
}

/// A query string (without `?`) with the parameter `name` set to `value`:
/// other parameters are kept byte for byte, an existing `name` is replaced,
/// and `name` and `value` are percent-encoded (space as `%20`).
pub fn query_with_param(query: &str, name: &str, value: &str) -> String {
    use crate::text::NOT_UNRESERVED;
    let mut out = String::with_capacity(query.len() + name.len() + value.len() + 8);
    for segment in query.split('&').filter(|s| !s.is_empty()) {
        let key = segment.split_once('=').map_or(segment, |(k, _)| k);
        let decoded = form_urlencoded::parse(key.as_bytes()).next().map(|(k, _)| k);
        if decoded.as_deref() != Some(name) {
            out.push_str(segment);
            out.push('&');
        }
    }
    out.extend(utf8_percent_encode(name, NOT_UNRESERVED));
    out.push('=');
    out.extend(utf8_percent_encode(value, NOT_UNRESERVED));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    #[test]
    fn api_key_header_and_bearer_together() {
        let credentials = Credentials::builder()
            .bearer_from_source()
            .api_key_header("cdpapi-Subscription-Key", "sub-key")
            .api_origin("https://api.example.com")
            .build()
            .unwrap();
        assert!(credentials.needs_token());
        let token = AccessToken::for_tests("tok-1");
        let mut request = get("https://api.example.com/a");
        request.headers_mut().insert(AUTHORIZATION, HeaderValue::from_static("Bearer stale"));
        assert_eq!(credentials.apply(&mut request, Some(&token)), Ok(Applied::Attached));
        assert_eq!(request.headers()[AUTHORIZATION], "Bearer tok-1");
        assert_eq!(request.headers()["cdpapi-subscription-key"], "sub-key");
        assert!(request.headers().values().all(HeaderValue::is_sensitive));
        assert_eq!(request.headers().len(), 2);
        let mut without = get("https://api.example.com/a");
        assert_eq!(credentials.apply(&mut without, None), Err(ApplyError::MissingToken));
    }

    #[test]
    fn static_bearer_and_x_api_key() {
        let credentials = Credentials::builder()
            .static_bearer("eyJhbGciOi.eyJzdWIi.sig")
            .api_key_header("X-API-Key", "k")
            .api_origin("https://api.example.com")
            .build()
            .unwrap();
        assert!(!credentials.needs_token());
        let mut request = get("https://api.example.com/");
        credentials.apply(&mut request, None).unwrap();
        assert_eq!(request.headers()[AUTHORIZATION], "Bearer eyJhbGciOi.eyJzdWIi.sig");
        assert_eq!(request.headers()["x-api-key"], "k");
    }

    #[test]
    fn basic_is_rfc7617() {
        let credentials = Credentials::builder()
            .basic("token-id", "p:ss wörd")
            .api_origin("https://api.example.com")
            .build()
            .unwrap();
        let mut request = get("https://api.example.com/");
        credentials.apply(&mut request, None).unwrap();
        let value = request.headers()[AUTHORIZATION].to_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(value.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "token-id:p:ss wörd");
        assert!(Credentials::builder().basic("a:b", "c").any_origin().build().is_err());
    }

    #[test]
    fn query_api_key_keeps_other_parameters_and_replaces_its_own() {
        let credentials = Credentials::builder().api_key_query("api_key", "k y+/&").any_origin().build().unwrap();
        let mut request = get("https://api.example.com/v1/search?q=a%20b&api_key=old&x=1");
        credentials.apply(&mut request, None).unwrap();
        assert_eq!(request.uri(), "https://api.example.com/v1/search?q=a%20b&x=1&api_key=k%20y%2B%2F%26");
        let mut bare = get("https://api.example.com");
        credentials.apply(&mut bare, None).unwrap();
        assert_eq!(bare.uri(), "https://api.example.com/?api_key=k%20y%2B%2F%26");
    }

    #[test]
    fn query_keys_are_redacted_from_shown_urls() {
        let credentials = Credentials::builder().api_key_query("api key", "k-123").any_origin().build().unwrap();
        assert!(credentials.has_query_params());
        assert_eq!(
            credentials.redact_query("q=1&api%20key=k-123&x=2").as_deref(),
            Some("q=1&api%20key=[redacted]&x=2")
        );
        assert_eq!(credentials.redact_query("api+key=k-123").as_deref(), Some("api+key=[redacted]"));
        assert_eq!(credentials.redact_query("q=1"), None);
    }

    #[test]
    fn conflicts_and_bad_values_are_refused() {
        let conflict =
            |b: CredentialsBuilder| matches!(b.any_origin().build(), Err(ConfigError::ConflictingCredentials { .. }));
        assert!(conflict(Credentials::builder().bearer_from_source().basic("u", "p")));
        assert!(conflict(Credentials::builder().bearer_from_source().static_bearer("t")));
        assert!(conflict(Credentials::builder().bearer_from_source().api_key_header("Authorization", "k")));
        assert!(conflict(Credentials::builder().api_key_header("X-API-Key", "a").api_key_header("x-api-key", "b")));
        assert!(conflict(Credentials::builder().api_key_query("k", "a").api_key_query("k", "b")));
        assert!(matches!(
            Credentials::builder().api_key_header("bad name", "k").any_origin().build(),
            Err(ConfigError::InvalidHeaderName { .. })
        ));
        for bad in ["key\n", "key\r\nX-Evil: 1", "k\u{7f}", "ключ", ""] {
            let err = Credentials::builder().api_key_header("X-API-Key", bad).any_origin().build().unwrap_err();
            assert!(matches!(err, ConfigError::InvalidCredentialValue { .. }), "{bad:?}");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "the value must not be echoed");
            }
        }
    }

    #[test]
    fn origin_filter() {
        let credentials = Credentials::builder()
            .api_key_header("X-API-Key", "k")
            .api_origin("https://API.example.com")
            .api_origin("http://127.0.0.1:8080")
            .build()
            .unwrap();
        for ok in ["https://api.example.com/x", "https://api.EXAMPLE.com:443/y", "http://127.0.0.1:8080/"] {
            assert!(credentials.applies_to(&ok.parse().unwrap()), "{ok}");
        }
        for skip in [
            "http://api.example.com/x",
            "https://api.example.com:8443/x",
            "https://api.example.com.evil.net/",
            "https://evil.net/?https://api.example.com",
            "http://127.0.0.1:8081/",
            "/relative",
        ] {
            let mut request = get(skip);
            assert_eq!(credentials.apply(&mut request, None), Ok(Applied::SkippedOrigin), "{skip}");
            assert!(request.headers().is_empty());
        }
        // A URL as written: the normalized form at once, the rest by parts.
        let url_cases = [
            ("https://api.example.com/x", ("https", "api.example.com", None), true),
            ("https://api.example.com", ("https", "api.example.com", None), true),
            ("https://API.example.com:443/y", ("https", "api.example.com", Some(443)), true),
            ("http://127.0.0.1:8080?q", ("http", "127.0.0.1", Some(8080)), true),
            ("https://api.example.com.evil.net/", ("https", "api.example.com.evil.net", None), false),
            ("https://api.example.com@evil.net/", ("https", "evil.net", None), false),
            ("https://api.example.com:8443/", ("https", "api.example.com", Some(8443)), false),
        ];
        for (url, parts, applies) in url_cases {
            assert_eq!(credentials.applies_to_url(url, || parts), applies, "{url}");
        }
        let no_parts = || -> (&str, &str, Option<u16>) { panic!("the URL as written was conclusive") };
        assert!(credentials.applies_to_url("https://api.example.com/x", no_parts));
        assert!(credentials.applies_to_url("http://127.0.0.1:8080/", no_parts));
        assert!(matches!(Origin::parse("ftp://x"), Err(ConfigError::InvalidOrigin { .. })));
        assert!(matches!(Origin::parse("nohost"), Err(ConfigError::InvalidOrigin { .. })));
        // Every origin only when asked for.
        let any = Credentials::builder().bearer_from_source().any_origin().build().unwrap();
        assert!(any.applies_to(&"https://any.example/".parse().unwrap()));
        let bearer = Credentials::bearer("https://api.example.com").unwrap();
        assert!(!bearer.applies_to(&"https://any.example/".parse().unwrap()));
    }

    #[test]
    fn credentials_without_an_origin_are_refused() {
        let builders = [
            Credentials::builder().bearer_from_source(),
            Credentials::builder().api_key_header("X-API-Key", "k"),
            Credentials::builder().api_key_query("key", "k"),
            Credentials::builder().basic("u", "p"),
            Credentials::builder().static_bearer("t"),
        ];
        for builder in builders {
            let err = builder.build().unwrap_err();
            assert_eq!(err, ConfigError::NoOrigin);
            assert!(err.to_string().contains("api_origin"), "{err}");
        }
        let both = Credentials::builder().bearer_from_source().api_origin("https://a.example").any_origin().build();
        assert_eq!(both.unwrap_err(), ConfigError::AnyOriginWithOrigins);
        // Nothing to send: nothing to limit.
        assert!(Credentials::builder().build().is_ok());
    }

    #[test]
    fn a_withheld_request_is_said_once_per_origin_without_user_info() {
        let credentials = Credentials::builder()
            .api_key_header("X-API-Key", "k-secret")
            .api_origin("http://localhost:8080")
            .build()
            .unwrap();
        let uri: Uri = "http://user:pw@127.0.0.1:8080/v1?api_key=x".parse().unwrap();
        assert!(!credentials.applies_to(&uri));
        let origin = Credentials::origin_of(&uri);
        assert_eq!(origin, "http://127.0.0.1:8080");
        let said = credentials.clone().note_withheld(&origin).expect("said the first time");
        assert!(said.contains("http://localhost:8080") && !said.contains("pw") && !said.contains("k-secret"), "{said}");
        assert!(credentials.note_withheld(&origin).is_none(), "clones share what was said");
        assert_eq!(credentials.withheld_requests(), 2);
    }

    #[test]
    fn origins_have_no_path() {
        for bad in ["https://api.example.com/v1", "https://api.example.com/?x=1", "https://api.example.com#f"] {
            let err = Origin::parse(bad).unwrap_err();
            assert!(err.to_string().contains("no path"), "{bad}: {err}");
        }
        for ok in ["https://api.example.com", "https://api.example.com/", "http://127.0.0.1:8080"] {
            assert!(Origin::parse(ok).is_ok(), "{ok}");
        }
        // Refused, and the password is not quoted back.
        let userinfo = Origin::parse("https://bob:hunter2@api.example.com").unwrap_err().to_string();
        assert!(userinfo.contains("user info") && userinfo.contains("https://api.example.com"), "{userinfo}");
        assert!(!userinfo.contains("hunter2") && !userinfo.contains("bob"), "{userinfo}");
    }

    #[test]
    fn parts_api_for_other_request_types() {
        let credentials = Credentials::builder()
            .bearer_from_source()
            .api_key_header("X-API-Key", "k")
            .api_key_query("key", "q")
            .api_origin("https://api.example.com")
            .build()
            .unwrap();
        assert!(credentials.applies_to_origin("https", "API.example.com", None));
        assert!(credentials.applies_to_origin("https", "api.example.com", Some(443)));
        assert!(!credentials.applies_to_origin("https", "api.example.com", Some(8443)));
        assert!(!credentials.applies_to_origin("http", "api.example.com", None));
        let mut headers = http::HeaderMap::new();
        let token = AccessToken::for_tests("t");
        credentials.apply_headers(&mut headers, Some(&token)).unwrap();
        assert_eq!(headers[AUTHORIZATION], "Bearer t");
        assert_eq!(headers["x-api-key"], "k");
        assert_eq!(headers.len(), 2, "query keys are not headers");
        let params: Vec<_> = credentials.query_params().map(|(name, key)| (name, key.expose_secret())).collect();
        assert_eq!(params, [("key", "q")]);
    }

    #[test]
    fn debug_never_shows_values() {
        let credentials = Credentials::builder()
            .api_key_header("X-API-Key", "key-abc-123")
            .basic("u", "pw-xyz-789")
            .api_key_query("k", "q-secret-456")
            .api_origin("https://api.example.com")
            .build()
            .unwrap();
        let shown = format!("{credentials:?}");
        for secret in ["key-abc-123", "pw-xyz-789", "q-secret-456"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("X-API-Key") || shown.contains("x-api-key"), "{shown}");
    }
}
