//! The `reqwest-middleware` middleware.

use std::sync::Arc;

use auth_core::credentials::query_with_param;
use auth_core::secret::ExposeSecret;
use auth_core::{AccessToken, Credentials};
use auth_tower::{AuthError, TokenSource};
use http::{Extensions, StatusCode};
use reqwest::{Request, Response, ResponseBuilderExt as _};
use reqwest_middleware::{Middleware, Next};

/// Puts credentials on every request of a `reqwest_middleware` client, and
/// replays a request once after a 401 with a renewed token.
///
/// - Credentials go only to the origins they are limited to
///   ([`Credentials`]' origin filter); other requests pass untouched.
/// - On a 401 to a request that carried a token, the token is invalidated
///   (once, however many requests are rejected) and, when
///   `Request::try_clone` succeeds, the request is replayed once with the
///   new token. Streaming bodies cannot be cloned: such a request gets its
///   401 back, and the next request uses the new token.
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
        // Copied before the first send, without credentials; `None` for streams.
        let replay = request.try_clone();
        self.apply(&mut request, Some(&token)).map_err(middleware_error)?;
        let response = next.clone().run(request, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut replay) = replay else {
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
