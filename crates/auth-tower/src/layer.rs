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

use auth_core::{Credentials, Generation};
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
        Auth {
            inner,
            source: self.source.clone(),
            credentials: Arc::clone(&self.credentials),
            needs_token: self.credentials.needs_token(),
            replay: self.replay,
        }
    }
}

/// The service [`AuthLayer`] builds around an inner client service.
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    source: Option<TokenSource>,
    credentials: Arc<Credentials>,
    needs_token: bool,
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
            Some(source) if self.needs_token => source,
            _ => {
                return match self.credentials.apply_allowed(&mut request, None) {
                    Ok(()) => ResponseFuture::sending(inner.call(request), None),
                    Err(error) => ResponseFuture::failed(AuthError::Apply(error)),
                };
            }
        };
        let Some(token) = source.load_usable(now()) else {
            let pending = Pending {
                request,
                service: inner,
                source: source.clone(),
                credentials: Arc::clone(&self.credentials),
                replay: self.replay,
            };
            return ResponseFuture { state: State::Token { token: source.want(), pending: Some(Box::new(pending)) } };
        };
        let copy = self.replay.then(|| Copy::of(&request, &inner, &self.credentials)).flatten();
        let replay = Replay { copy, source: source.clone(), generation: token.generation() };
        match self.credentials.apply_allowed(&mut request, Some(&token)) {
            Ok(()) => ResponseFuture::sending(inner.call(request), Some(replay)),
            Err(error) => ResponseFuture::failed(AuthError::Apply(error)),
        }
    }
}

/// A request waiting for the first (or next) token: the cold path, boxed so
/// that the hot path's future stays small.
struct Pending<S, B> {
    request: Request<B>,
    service: S,
    source: TokenSource,
    credentials: Arc<Credentials>,
    replay: bool,
}

/// The copy of a request to replay after a 401, made before it was sent,
/// with a spare inner service and the credentials to apply again.
struct Copy<S, B> {
    request: Request<B>,
    service: S,
    credentials: Arc<Credentials>,
}

impl<S: Clone, B: ReplayBody> Copy<S, B> {
    /// `None` when the body cannot be copied (a stream).
    fn of(request: &Request<B>, service: &S, credentials: &Arc<Credentials>) -> Option<Box<Self>> {
        let request = try_clone_request(request)?;
        Some(Box::new(Self { request, service: service.clone(), credentials: Arc::clone(credentials) }))
    }
}

/// What a request that carried a token keeps for a 401: the source (to
/// invalidate the token) and, when replay is on and the body could be
/// copied, the copy.
struct Replay<S, B> {
    copy: Option<Box<Copy<S, B>>>,
    source: TokenSource,
    generation: Generation,
}

/// After a 401: the copy to replay and the original answer, returned if no
/// replay happens.
struct Rejected<S, B, R> {
    copy: Box<Copy<S, B>>,
    source: TokenSource,
    response: R,
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
            pending: Option<Box<Pending<S, B>>>,
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
            rejected: Option<Box<Rejected<S, B, S::Response>>>,
        },
        /// Waiting for the spare inner service to be ready for the replay.
        ReplayReady {
            copy: Option<Box<Copy<S, B>>>,
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
            error: Option<Box<AuthError>>,
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
        Self { state: State::Failed { error: Some(Box::new(error)) } }
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
                StateProj::Token { token, pending } => {
                    let token = match ready!(token.poll(cx)) {
                        Ok(Some(token)) => token,
                        Ok(None) => return Poll::Ready(Err(AuthError::Stopped.into())),
                        Err(error) => return Poll::Ready(Err(error.into())),
                    };
                    let Some(pending) = pending.take() else {
                        return Poll::Ready(Err(AuthError::Stopped.into()));
                    };
                    let Pending { mut request, mut service, source, credentials, replay } = *pending;
                    let copy = replay.then(|| Copy::of(&request, &service, &credentials)).flatten();
                    if let Err(error) = credentials.apply_allowed(&mut request, Some(&token)) {
                        return Poll::Ready(Err(AuthError::Apply(error).into()));
                    }
                    let future = service.call(request);
                    let replay = Some(Replay { copy, source, generation: token.generation() });
                    this.state.set(State::Sending { future, replay });
                }
                StateProj::Sending { future, replay } => {
                    let response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if response.status() != StatusCode::UNAUTHORIZED {
                        return Poll::Ready(Ok(response));
                    }
                    let Some(Replay { copy, source, generation }) = replay.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    let Some(copy) = copy else {
                        // Not replayable: still invalidate, so the next request works.
                        source.invalidate(generation);
                        return Poll::Ready(Ok(response));
                    };
                    let token = source.unauthorized(generation);
                    this.state
                        .set(State::Renewing { token, rejected: Some(Box::new(Rejected { copy, source, response })) });
                }
                StateProj::Renewing { token, rejected } => {
                    let outcome = ready!(token.poll(cx));
                    let Some(rejected) = rejected.take() else {
                        return Poll::Ready(Err(AuthError::Stopped.into()));
                    };
                    let Rejected { mut copy, source, response } = *rejected;
                    let Ok(Some(token)) = outcome else {
                        // Suppressed by the loop guard, or no new token: the caller gets the 401.
                        return Poll::Ready(Ok(response));
                    };
                    if let Err(error) = copy.credentials.apply_allowed(&mut copy.request, Some(&token)) {
                        return Poll::Ready(Err(AuthError::Apply(error).into()));
                    }
                    this.state.set(State::ReplayReady { copy: Some(copy), source, generation: token.generation() });
                }
                StateProj::ReplayReady { copy, source, generation } => {
                    let Some(ready_copy) = copy.as_mut() else {
                        return Poll::Ready(Err(AuthError::Stopped.into()));
                    };
                    ready!(ready_copy.service.poll_ready(cx)).map_err(Into::into)?;
                    let Some(copy) = copy.take() else {
                        return Poll::Ready(Err(AuthError::Stopped.into()));
                    };
                    let Copy { request, mut service, .. } = *copy;
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
                    let error = error.take().map_or(AuthError::Stopped, |e| *e);
                    return Poll::Ready(Err(error.into()));
                }
            }
        }
    }
}
