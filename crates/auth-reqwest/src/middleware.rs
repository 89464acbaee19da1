//! The `reqwest-middleware` middleware.

use std::sync::Arc;

use auth_core::credentials::query_with_param;
use auth_core::secret::ExposeSecret;
use auth_core::{AccessToken, Credentials};
use auth_tower::{AuthError, TokenSource};
use std::time::Duration;

use http::{Extensions, StatusCode, Version};
use reqwest::{Request, Response, ResponseBuilderExt as _};
use reqwest_middleware::{Middleware, Next};

/// Puts credentials on every request of a `reqwest_middleware` client, and
/// replays a request once after a 401 with a renewed token.
///
/// - Credentials go only to the origins they are limited to
///   ([`Credentials`]' origin filter); other requests pass untouched.
/// - On a 401 to a request that carried a token, the token is invalidated
///   (once, however many requests are rejected) and the request is
///   replayed once with the new token. Streaming bodies cannot be copied:
///   such a request gets its 401 back, and the next request uses the new
///   token. The copy costs nothing for a request without body or headers:
///   its URL is taken back from the 401 itself, so a 401 that came after a
///   redirect (a URL other than the one sent) is returned, not replayed;
///   the next request carries the new token.
/// - Pair it with [`same_origin_redirects`](crate::same_origin_redirects)
///   on the client, so that redirects never carry credentials elsewhere.
/// - An API key in a query parameter is on the URL that is sent. In what
///   the middleware returns it is `[redacted]`: the URL of an error, and
///   `Response::url()` (so `error_for_status()` and logs of the final URL
///   do not show it). Prefer a header key where the provider allows one:
///   proxies and server logs see query strings.
#[derive(Debug, Clone)]
pub struct AuthMiddleware {
    source: Option<TokenSource>,
    credentials: Arc<Credentials>,
}

impl AuthMiddleware {
    /// Credentials that include a bearer token from `source`.
    pub fn new(source: TokenSource, credentials: Credentials) -> Self {
        Self { source: Some(source), credentials: Arc::new(credentials) }
    }

    /// Static credentials only (API keys, Basic, a static bearer). Fails if
    /// the credentials need a token source.
    pub fn without_source(credentials: Credentials) -> Result<Self, AuthError> {
        if credentials.needs_token() {
            return Err(AuthError::Apply(auth_core::ApplyError::MissingToken));
        }
        Ok(Self { source: None, credentials: Arc::new(credentials) })
    }

    /// The token source, if any.
    pub fn token_source(&self) -> Option<&TokenSource> {
        self.source.as_ref()
    }

    fn applies_to(&self, request: &Request) -> bool {
        let url = request.url();
        self.credentials.applies_to_origin(url.scheme(), url.host_str().unwrap_or(""), url.port())
    }

    fn apply(&self, request: &mut Request, token: Option<&AccessToken>) -> Result<(), AuthError> {
        self.credentials.apply_headers(request.headers_mut(), token)?;
        for (name, key) in self.credentials.query_params() {
            let query = query_with_param(request.url().query().unwrap_or(""), name, key.expose_secret());
            request.url_mut().set_query(Some(&query));
        }
        Ok(())
    }
}

/// What a replay after a 401 needs, copied before the send: only what the
/// response cannot give back, and nothing that allocates for a request
/// without headers or body. The URL is not copied: a 401 that was not
/// redirected comes with the URL it was sent to (`Response::url`), and a
/// print of the sent URL tells whether it was redirected.
enum Copy {
    /// The parts of a request without a body.
    Parts { method: http::Method, headers: Option<http::HeaderMap>, timeout: Option<Duration>, version: Version },
    /// A request with an in-memory body: copied whole (`Request::try_clone`).
    Whole(Request),
}

impl Copy {
    /// `None` when the request cannot be sent again (a streaming body).
    fn before_send(request: &Request) -> Option<Self> {
        if request.body().is_some() {
            return request.try_clone().map(Self::Whole);
        }
        let headers = (!request.headers().is_empty()).then(|| request.headers().clone());
        let (method, timeout, version) = (request.method().clone(), request.timeout().copied(), request.version());
        Some(Self::Parts { method, headers, timeout, version })
    }

    /// The request to replay after `response` (a 401): `None` when the
    /// response came from a redirect (not the URL that was sent), which
    /// is not replayed.
    fn into_request(self, response: &Response, sent: UrlPrint) -> Option<Request> {
        match self {
            Self::Whole(request) => Some(request),
            Self::Parts { method, headers, timeout, version } => {
                if UrlPrint::of(response.url()) != sent {
                    return None;
                }
                let mut request = Request::new(method, response.url().clone());
                if let Some(headers) = headers {
                    *request.headers_mut() = headers;
                }
                *request.timeout_mut() = timeout;
                *request.version_mut() = version;
                Some(request)
            }
        }
    }
}

/// A print of a URL (length and a 64-bit hash), to tell whether a response
/// came from the URL that was sent without keeping a copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UrlPrint(usize, u64);

impl UrlPrint {
    fn of(url: &reqwest::Url) -> Self {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        Self(url.as_str().len(), BuildHasherDefault::<DefaultHasher>::default().hash_one(url.as_str()))
    }
}

fn middleware_error(error: AuthError) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(error)
}

#[async_trait::async_trait]
impl Middleware for AuthMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let outcome = self.send(request, extensions, next).await;
        if !self.credentials.has_query_params() {
            return outcome;
        }
        match outcome {
            Ok(response) => Ok(self.redact_response_url(response)),
            Err(reqwest_middleware::Error::Reqwest(mut error)) => {
                if let Some(url) = error.url_mut() {
                    self.redact_url(url);
                }
                Err(reqwest_middleware::Error::Reqwest(error))
            }
            Err(other) => Err(other),
        }
    }
}

impl AuthMiddleware {
    /// Replaces the value of our query keys in `url`.
    fn redact_url(&self, url: &mut reqwest::Url) {
        if let Some(redacted) = url.query().and_then(|query| self.credentials.redact_query(query)) {
            url.set_query(Some(&redacted));
        }
    }

    /// The response with our query keys redacted from `Response::url()`.
    fn redact_response_url(&self, response: Response) -> Response {
        let mut url = response.url().clone();
        if url.query().and_then(|query| self.credentials.redact_query(query)).is_none() {
            return response;
        }
        self.redact_url(&mut url);
        let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
        let mut carrier = http::Response::builder().url(url).body(()).unwrap_or_default();
        parts.extensions.extend(std::mem::take(carrier.extensions_mut()));
        Response::from(http::Response::from_parts(parts, body))
    }

    async fn send(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if !self.applies_to(&request) {
            return next.run(request, extensions).await;
        }
        let source = match &self.source {
            Some(source) if self.credentials.needs_token() => source,
            _ => {
                self.apply(&mut request, None).map_err(middleware_error)?;
                return next.run(request, extensions).await;
            }
        };
        let token = source.token().await.map_err(middleware_error)?;
        let copy = Copy::before_send(&request);
        self.apply(&mut request, Some(&token)).map_err(middleware_error)?;
        let sent_url = UrlPrint::of(request.url());
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut replay) = copy.and_then(|copy| copy.into_request(&response, sent_url)) else {
            source.invalidate(token.generation());
            return Ok(response);
        };
        let renewed = match source.reject(token.generation()).await {
            Ok(Some(renewed)) => renewed,
            // The loop guard held the token, or no new token could be had: the caller gets the 401.
            Ok(None) | Err(_) => return Ok(response),
        };
        self.apply(&mut replay, Some(&renewed)).map_err(middleware_error)?;
        let replayed = next.run(replay, extensions).await?;
        if replayed.status() == StatusCode::UNAUTHORIZED {
            // Never replayed twice; the lifecycle decides whether this token is dropped.
            source.invalidate(renewed.generation());
        }
        Ok(replayed)
    }
}
