//! The tower middleware: `AuthLayer` puts the composed credentials on every
//! request of any tower client stack, and replays a request once after a
//! 401 with a renewed token.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use auth_core::Credentials;
//! use auth_tower::AuthLayer;
//! use tower::{service_fn, Layer, ServiceExt};
//!
//! // An API key only: no token source needed.
//! let layer = AuthLayer::without_source(
//!     Credentials::builder().api_key_header("X-API-Key", "key-123").api_origin("https://api.example.com").build()?,
//! )?;
//! let api = layer.layer(service_fn(|request: http::Request<String>| async move {
//!     let key = request.headers()["x-api-key"].clone();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(key.to_str().unwrap().to_owned()))
//! }));
//! let response = api.oneshot(http::Request::get("https://api.example.com/v1").body(String::new())?).await?;
//! assert_eq!(response.body(), "key-123");
//! # Ok(()) }
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use auth_core::publish::replay::ReplayCopies;
use auth_core::Credentials;
use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::ReplayBody;
pub(crate) use crate::bound::Bound;
use crate::error::{AuthError, BoxError};
pub use crate::future::ResponseFuture;
use crate::future::{kept_copy, Pending};
pub(crate) use crate::mode::Mode;
pub use crate::mode::{NoReplay, ReplayOn401};
use crate::source::{TokenReader, TokenSource};

/// Puts credentials on requests; see the [module docs](self).
///
/// Configuration only: cloning it is cheap and every service it wraps
/// shares the same token source. `R` says what a 401 does:
/// [`ReplayOn401`] (the default) or [`NoReplay`].
#[derive(Debug, Clone)]
pub struct AuthLayer<R = ReplayOn401> {
    bound: Arc<Bound>,
    mode: PhantomData<R>,
}

impl AuthLayer {
    fn with(credentials: Credentials, source: Option<TokenSource>) -> Self {
        let bound = Bound { credentials, source, copies: ReplayCopies::default() };
        Self { bound: Arc::new(bound), mode: PhantomData }
    }

    /// Credentials that include a bearer token from `source` (and possibly
    /// API keys, limited to origins, ...).
    pub fn new(source: TokenSource, credentials: Credentials) -> Self {
        let source = credentials.needs_token().then_some(source);
        Self::with(credentials, source)
    }

    /// Only `Authorization: Bearer` from `source`, on requests to `origin`
    /// (`https://api.example.com`).
    pub fn bearer(source: TokenSource, origin: &str) -> Result<Self, AuthError> {
        Ok(Self::new(source, Credentials::bearer(origin)?))
    }

    /// Static credentials (API keys, Basic, a static bearer): no token
    /// source. Fails if the credentials need one.
    pub fn without_source(credentials: Credentials) -> Result<Self, AuthError> {
        if credentials.needs_token() {
            return Err(AuthError::Apply(auth_core::ApplyError::MissingToken));
        }
        Ok(Self::with(credentials, None))
    }

    /// Which requests keep a copy of themselves to send again after a
    /// 401: every request whose body can be copied ([`ReplayCopies::Always`],
    /// the default), or only those whose token is at risk
    /// ([`ReplayCopies::AtRisk`]: a settled token's 401 reaches the
    /// caller).
    pub fn replay_copies(self, copies: ReplayCopies) -> Self {
        let Bound { credentials, source, .. } = Arc::unwrap_or_clone(self.bound);
        Self { bound: Arc::new(Bound { credentials, source, copies }), mode: PhantomData }
    }

    #[cfg(test)]
    pub(crate) fn bound(&self) -> Arc<Bound> {
        Arc::clone(&self.bound)
    }

    /// Does not replay requests after a 401 ([`NoReplay`]): no copy of
    /// each request is made before it is sent, and the response future
    /// stays small. The token is invalidated on a 401 either way.
    pub fn without_replay(self) -> AuthLayer<NoReplay> {
        AuthLayer { bound: self.bound, mode: PhantomData }
    }
}

impl<S, R> Layer<S> for AuthLayer<R> {
    type Service = Auth<S, R>;

    fn layer(&self, inner: S) -> Auth<S, R> {
        Auth {
            inner,
            reader: self.bound.source.as_ref().map(TokenSource::reader),
            bound: Arc::clone(&self.bound),
            mode: PhantomData,
        }
    }
}

/// The service [`AuthLayer`] builds around an inner client service.
#[derive(Debug, Clone)]
pub struct Auth<S, R = ReplayOn401> {
    inner: S,
    bound: Arc<Bound>,
    /// This service's own reader of the published token, when the
    /// credentials carry one.
    reader: Option<TokenReader>,
    mode: PhantomData<R>,
}

impl<S, R> Auth<S, R> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
    /// The token source, if the credentials use one.
    pub fn token_source(&self) -> Option<&TokenSource> {
        self.bound.source.as_ref()
    }
}

impl<S, B, ResB, R> Service<Request<B>> for Auth<S, R>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    R: Mode,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let bound = &self.bound;
        let credentials = &bound.credentials;
        let Some(reader) = &mut self.reader else {
            // No token: only static credentials, if the origin qualifies.
            if !credentials.applies_to(request.uri()) {
                withheld(credentials, request.uri());
                return ResponseFuture::without_token(self.inner.call(request));
            }
            return match credentials.apply_allowed(&mut request, None) {
                Err(error) => ResponseFuture::failed(AuthError::Apply(error)),
                Ok(()) => ResponseFuture::without_token(self.inner.call(request)),
            };
        };
        if !credentials.applies_to(request.uri()) {
            withheld(credentials, request.uri());
            return ResponseFuture::without_token(self.inner.call(request));
        }
        let Some(token) = reader.load() else {
            // The ready service waits with the request; `self` keeps a fresh clone.
            let clone = self.inner.clone();
            let service = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture::pending(Pending { request, service, bound: Arc::clone(bound) });
        };
        // A copy, when kept, gets a clone of the service (made ready again
        // before it sends); the ready one sends now.
        let at_risk = token.at_risk();
        let copy = kept_copy::<S, B, R>(&request, &self.inner, bound, token.generation(), at_risk);
        if token.dpop().is_some() {
            return ResponseFuture::with_proof(&mut self.inner, request, copy, token.to_arc(), bound, at_risk);
        }
        // Without a copy (a streaming body, `NoReplay`, `AtRisk` and a
        // settled token), a token the API has not accepted yet still
        // needs its first acceptance reported: the loop guard asks for it.
        let report = copy.is_none()
            && at_risk
            && bound.source.as_ref().is_some_and(|source| !source.accepted(token.generation()));
        match credentials.apply_allowed(&mut request, Some(&token)) {
            Ok(()) if report => ResponseFuture::reporting(self.inner.call(request), bound, token.generation()),
            Ok(()) => ResponseFuture::sending(self.inner.call(request), copy, bound, token.generation()),
            Err(error) => ResponseFuture::failed(AuthError::Apply(error)),
        }
    }
}

/// A request that goes out without credentials (its origin is not one
/// they are limited to): counted, and said once per origin.
#[cold]
fn withheld(credentials: &Credentials, uri: &http::Uri) {
    if let Some(message) = credentials.note_withheld(&Credentials::origin_of(uri)) {
        tracing::warn!(target: "auth_tower", "{message}");
    }
}
