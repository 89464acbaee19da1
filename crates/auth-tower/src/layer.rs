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
//!     Credentials::builder().api_key_header("X-API-Key", "key-123").build()?,
//! )?;
//! let api = layer.layer(service_fn(|request: http::Request<String>| async move {
//!     let key = request.headers()["x-api-key"].clone();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(key.to_str().unwrap().to_owned()))
//! }));
//! let response = api.oneshot(http::Request::new(String::new())).await?;
//! assert_eq!(response.body(), "key-123");
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use auth_core::{AccessToken, Credentials, Generation};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::body::{try_clone_request, ReplayBody};
use crate::error::{AuthError, BoxError};
use crate::source::{now, TokenFuture, TokenSource};

/// Puts credentials on requests; see the [module docs](self).
///
/// Configuration only: cloning it is cheap and every service it wraps
/// shares the same token source.
#[derive(Debug, Clone)]
pub struct AuthLayer {
    source: Option<TokenSource>,
    credentials: Arc<Credentials>,
    replay: bool,
}

impl AuthLayer {
    /// Credentials that include a bearer token from `source` (and possibly
    /// API keys, limited to origins, ...).
    pub fn new(source: TokenSource, credentials: Credentials) -> Self {
        Self { source: Some(source), credentials: Arc::new(credentials), replay: true }
    }

    /// Only `Authorization: Bearer` from `source`, on every origin.
    pub fn bearer(source: TokenSource) -> Self {
        Self::new(source, Credentials::bearer())
    }

    /// Static credentials (API keys, Basic, a static bearer): no token
    /// source. Fails if the credentials need one.
    pub fn without_source(credentials: Credentials) -> Result<Self, AuthError> {
        if credentials.needs_token() {
            return Err(AuthError::Apply(auth_core::ApplyError::MissingToken));
        }
        Ok(Self { source: None, credentials: Arc::new(credentials), replay: false })
    }

    /// Whether to replay a request once after a 401 with a renewed token
    /// (default `true`). Replaying needs a copy of each request made before
    /// it is sent; turn it off to skip that copy when the API never answers
    /// 401 to a token it issued. The token is invalidated on 401 either way.
    pub fn replay_on_401(mut self, replay: bool) -> Self {
        self.replay = replay;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Auth<S> {
        Auth { inner, source: self.source.clone(), credentials: Arc::clone(&self.credentials), replay: self.replay }
    }
}

/// The service [`AuthLayer`] builds around an inner client service.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    source: Option<TokenSource>,
    credentials: Arc<Credentials>,
    replay: bool,
}

impl<S> Auth<S> {
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
        self.source.as_ref()
    }
}

impl<S, B, ResB> Service<Request<B>> for Auth<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The ready service goes into the future; `self` keeps a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if !self.credentials.applies_to(request.uri()) {
            return ResponseFuture::sending(inner.call(request), None);
        }
        let source = match &self.source {
            Some(source) if self.credentials.needs_token() => source,
            _ => {
                return match self.credentials.apply(&mut request, None) {
                    Ok(_) => ResponseFuture::sending(inner.call(request), None),
                    Err(error) => ResponseFuture::failed(AuthError::Apply(error)),
                };
            }
        };
        match source.load_usable(now()) {
            Some(token) => {
                let token: &AccessToken = &token;
                let context = replay_context(self.replay, &request, source, &self.credentials, &inner);
                let generation = token.generation();
                match self.credentials.apply(&mut request, Some(token)) {
                    Ok(_) => ResponseFuture::sending(inner.call(request), Some(context.with(generation))),
                    Err(error) => ResponseFuture::failed(AuthError::Apply(error)),
                }
            }
            None => ResponseFuture {
                state: State::Token {
                    token: source.want(),
                    request: Some(request),
                    service: Some(inner),
                    source: source.clone(),
                    credentials: Arc::clone(&self.credentials),
                    replay: self.replay,
                },
            },
        }
    }
}

/// What a request that carries a token keeps for a 401: always the source
/// (to invalidate the token), and a copy of the request with a spare inner
/// service when replay is on and the body can be copied.
fn replay_context<S: Clone, B: ReplayBody>(
    enabled: bool,
    request: &Request<B>,
    source: &TokenSource,
    credentials: &Arc<Credentials>,
    service: &S,
) -> Replay<S, B> {
    let copy = if enabled { try_clone_request(request) } else { None };
    let (service, credentials) = match copy {
        Some(_) => (Some(service.clone()), Some(Arc::clone(credentials))),
        None => (None, None),
    };
    Replay { request: copy, service, source: source.clone(), credentials, generation: None }
}

/// What a request that carried a token needs after a 401.
struct Replay<S, B> {
    /// The copy to replay, when the body could be copied.
    request: Option<Request<B>>,
    /// A clone of the inner service to replay with.
    service: Option<S>,
    source: TokenSource,
    credentials: Option<Arc<Credentials>>,
    generation: Option<Generation>,
}

impl<S, B> Replay<S, B> {
    fn with(mut self, generation: Generation) -> Self {
        self.generation = Some(generation);
        self
    }
}

pin_project! {
    /// The response future of [`Auth`].
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        /// No usable token yet: waiting on the shared fetch.
        Token {
            #[pin]
            token: TokenFuture,
            request: Option<Request<B>>,
            service: Option<S>,
            source: TokenSource,
            credentials: Arc<Credentials>,
            replay: bool,
        },
        /// The request is in flight.
        Sending {
            #[pin]
            future: S::Future,
            replay: Option<Replay<S, B>>,
        },
        /// The API answered 401: waiting for the token to replay with.
        Renewing {
            #[pin]
            token: TokenFuture,
            replay: Option<Replay<S, B>>,
            response: Option<S::Response>,
        },
        /// Waiting for the spare inner service to be ready for the replay.
        ReplayReady {
            service: S,
            request: Option<Request<B>>,
            source: TokenSource,
            generation: Generation,
        },
        /// The replay is in flight.
        Replaying {
            #[pin]
            future: S::Future,
            source: TokenSource,
            generation: Generation,
        },
        /// The request failed before it was sent.
        Failed {
            error: Option<AuthError>,
        },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn sending(future: S::Future, replay: Option<Replay<S, B>>) -> Self {
        Self { state: State::Sending { future, replay } }
    }

    fn failed(error: AuthError) -> Self {
        Self { state: State::Failed { error: Some(error) } }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Token { token, request, service, source, credentials, replay } => {
                    let token = match ready!(token.poll(cx)) {
                        Ok(Some(token)) => token,
                        Ok(None) => return Poll::Ready(Err(AuthError::Stopped.into())),
                        Err(error) => return Poll::Ready(Err(error.into())),
                    };
                    let (Some(mut request), Some(mut service)) = (request.take(), service.take()) else {
                        return Poll::Ready(Err(AuthError::Stopped.into()));
                    };
                    let context = replay_context(*replay, &request, source, credentials, &service);
                    if let Err(error) = credentials.apply(&mut request, Some(&token)) {
                        return Poll::Ready(Err(AuthError::Apply(error).into()));
                    }
                    let future = service.call(request);
                    let replay = Some(context.with(token.generation()));
                    this.state.set(State::Sending { future, replay });
                }
                StateProj::Sending { future, replay } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    let Some(context) = replay.take().filter(|_| response.status() == StatusCode::UNAUTHORIZED) else {
                        return Poll::Ready(Ok(response));
                    };
                    let Some(generation) = context.generation else {
                        return Poll::Ready(Ok(response));
                    };
                    if context.request.is_none() || context.service.is_none() {
                        // Not replayable: still invalidate, so the next request works.
                        context.source.invalidate(generation);
                        return Poll::Ready(Ok(response));
                    }
                    let token = context.source.unauthorized(generation);
                    this.state.set(State::Renewing { token, replay: Some(context), response: Some(response) });
                }
                StateProj::Renewing { token, replay, response } => {
                    let outcome = ready!(token.poll(cx));
                    let context = replay.take();
                    let original = response.take();
                    let (Ok(Some(token)), Some(context)) = (outcome, context) else {
                        // Suppressed by the loop guard, or no new token: the caller gets the 401.
                        return match original {
                            Some(original) => Poll::Ready(Ok(original)),
                            None => Poll::Ready(Err(AuthError::Stopped.into())),
                        };
                    };
                    let (Some(mut request), Some(service), Some(credentials)) =
                        (context.request, context.service, context.credentials)
                    else {
                        return Poll::Ready(Err(AuthError::Stopped.into()));
                    };
                    if let Err(error) = credentials.apply(&mut request, Some(&token)) {
                        return Poll::Ready(Err(AuthError::Apply(error).into()));
                    }
                    this.state.set(State::ReplayReady {
                        service,
                        request: Some(request),
                        source: context.source,
                        generation: token.generation(),
                    });
                }
                StateProj::ReplayReady { service, request, source, generation } => {
                    ready!(service.poll_ready(cx)).map_err(Into::into)?;
                    let Some(request) = request.take() else {
                        return Poll::Ready(Err(AuthError::Stopped.into()));
                    };
                    let future = service.call(request);
                    let (source, generation) = (source.clone(), *generation);
                    this.state.set(State::Replaying { future, source, generation });
                }
                StateProj::Replaying { future, source, generation } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if response.status() == StatusCode::UNAUTHORIZED {
                        // Never replayed twice; the lifecycle decides whether this token is dropped.
                        source.invalidate(*generation);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Failed { error } => {
                    let error = error.take().unwrap_or(AuthError::Stopped);
                    return Poll::Ready(Err(error.into()));
                }
            }
        }
    }
}
