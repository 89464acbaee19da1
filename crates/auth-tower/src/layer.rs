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
//!     Credentials::builder().api_key_header("X-API-Key", "key-123").allow_origin("https://api.example.com").build()?,
//! )?;
//! let api = layer.layer(service_fn(|request: http::Request<String>| async move {
//!     let key = request.headers()["x-api-key"].clone();
//!     Ok::<_, std::convert::Infallible>(http::Response::new(key.to_str().unwrap().to_owned()))
//! }));
//! let response = api.oneshot(http::Request::get("https://api.example.com/v1").body(String::new())?).await?;
//! assert_eq!(response.body(), "key-123");
//! # Ok(()) }
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use auth_core::dpop::ApiAnswer;
use auth_core::slot::ReplayCopies;
use auth_core::{Credentials, Generation};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::body::ReplayBody;
use crate::error::{AuthError, BoxError};
use crate::source::{SourceId, TokenFuture, TokenReader, TokenSource};

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

/// The default 401 handling: a request whose token is at risk keeps a copy
/// of itself (when its body can be copied, [`ReplayBody`]) made before it
/// is sent, and after a 401 the copy is sent once more with a renewed
/// token.
///
/// A token is at risk while it is new (the API has not yet accepted it),
/// past its renewal point, of an assumed lifetime or DPoP-bound (see
/// [`auth_core::slot`]); [`AuthLayer::replay_copies`] with
/// [`ReplayCopies::Always`] copies every request instead. A request with a
/// settled token keeps no copy: a 401 to it (a revocation in the middle of
/// the token's life) goes back to the caller, the token is dropped, and
/// the next request carries a new one. A request that keeps a copy boxes
/// its response future's state, copy included; a request without a copy
/// allocates nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOn401;

/// No replay: no copy is made, and a 401 goes back to the caller. The
/// token is still invalidated, so the next request carries a new one.
/// For APIs that never reject a token they issued before its expiry.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplay;

mod sealed {
    /// Where a response future keeps its replay copy: in its boxed state,
    /// or nowhere.
    pub trait Mode {
        /// Whether a copy is made at all.
        const REPLAYS: bool;
        /// A kept `T`: `T` itself, or an empty type.
        type Kept<T>;
        /// Keeps `t`, when this mode keeps anything.
        fn keep<T>(t: T) -> Option<Self::Kept<T>>;
        /// The kept `T`.
        fn take<T>(kept: Self::Kept<T>) -> T;
        /// The kept `T`, borrowed.
        fn get<T>(kept: &Self::Kept<T>) -> &T;
    }

    /// Has no value: what [`super::NoReplay`] keeps.
    pub enum Nothing {}
}

impl sealed::Mode for ReplayOn401 {
    const REPLAYS: bool = true;
    type Kept<T> = T;

    #[inline]
    fn keep<T>(t: T) -> Option<T> {
        Some(t)
    }

    fn take<T>(kept: T) -> T {
        kept
    }

    fn get<T>(kept: &T) -> &T {
        kept
    }
}

impl sealed::Mode for NoReplay {
    const REPLAYS: bool = false;
    type Kept<T> = sealed::Nothing;

    #[inline(always)]
    fn keep<T>(_t: T) -> Option<sealed::Nothing> {
        None
    }

    fn take<T>(kept: sealed::Nothing) -> T {
        match kept {}
    }

    fn get<T>(kept: &sealed::Nothing) -> &T {
        match *kept {}
    }
}

/// The credentials, with the token source when they carry its token.
#[derive(Debug, Clone)]
struct Bound {
    credentials: Credentials,
    source: Option<TokenSource>,
    /// Which requests keep a copy for a 401.
    copies: ReplayCopies,
}

impl Bound {
    #[inline]
    fn source_id(&self) -> SourceId {
        self.source.as_ref().map_or(SourceId::NONE, TokenSource::id)
    }

    /// Reports a 401 and waits for the token to replay with.
    fn unauthorized(&self, generation: Generation) -> TokenFuture {
        match &self.source {
            Some(source) => source.unauthorized(generation),
            None => TokenFuture::stopped(),
        }
    }
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

    /// Which requests keep a copy of themselves for a 401 replay: those
    /// whose token is at risk ([`ReplayCopies::AtRisk`], the default), or
    /// every request whose body can be copied ([`ReplayCopies::Always`]),
    /// for APIs that revoke tokens in the middle of their life.
    pub fn replay_copies(self, copies: ReplayCopies) -> Self {
        let Bound { credentials, source, .. } = Arc::unwrap_or_clone(self.bound);
        Self { bound: Arc::new(Bound { credentials, source, copies }), mode: PhantomData }
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
    R: sealed::Mode,
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
            let applied = credentials.applies_to(request.uri()).then(|| credentials.apply_allowed(&mut request, None));
            return match applied {
                Some(Err(error)) => ResponseFuture::failed(AuthError::Apply(error)),
                _ => ResponseFuture::sending(self.inner.call(request), Replay::without_token()),
            };
        };
        if !credentials.applies_to(request.uri()) {
            return ResponseFuture::sending(self.inner.call(request), Replay::without_token());
        }
        let Some(token) = reader.load() else {
            // The ready service waits with the request; `self` keeps a fresh clone.
            let clone = self.inner.clone();
            let inner = std::mem::replace(&mut self.inner, clone);
            return ResponseFuture::pending(request, inner, bound);
        };
        // A copy, when kept, gets a clone of the service (made ready again
        // before it sends); the ready one sends now.
        let keep = bound.copies.keep(token.at_risk());
        let replay = Replay::new(&request, &self.inner, bound, token.generation(), keep);
        if token.dpop().is_some() {
            let state = State::with_proof(&mut self.inner, request, replay, token.to_arc(), credentials);
            return ResponseFuture::cold(state);
        }
        match credentials.apply_allowed(&mut request, Some(&token)) {
            Ok(()) => ResponseFuture::sending(self.inner.call(request), replay),
            Err(error) => ResponseFuture::failed(AuthError::Apply(error)),
        }
    }
}

/// A request waiting for the first (or next) token (the cold path, in the
/// response future's boxed state).
struct Pending<S, B> {
    request: Request<B>,
    service: S,
    bound: Arc<Bound>,
}

/// What a request keeps for a 401. Without a copy (a settled token, or
/// [`NoReplay`]): two words and no reference count, and no shared memory
/// written; the response future is then the inner one and these two words
/// ([`Kind::Judging`]). A copy lives in the boxed state of the response
/// future: only requests whose token is at risk pay for it.
enum Replay<S, B, R: sealed::Mode> {
    /// The token it carried, if any, to invalidate on a 401: replay is
    /// off, the body streams, or this is the replay.
    Invalidate { source: SourceId, generation: Option<Generation> },
    /// A copy of the request to replay after a 401.
    Copied(R::Kept<Copy<S, B>>),
    /// A request with a DPoP-bound token: what its answer is judged by.
    Proved(Box<Proved<S, B, R>>),
}

/// A request sent with a DPoP-bound token: the proof it carried (its nonce
/// decides whether a `use_dpop_nonce` answer is retried), the token, and
/// the replay it would have without DPoP.
struct Proved<S, B, R: sealed::Mode> {
    token: Arc<auth_core::AccessToken>,
    uri: http::Uri,
    proof: auth_core::dpop::Proof,
    replay: Replay<S, B, R>,
}

/// The copy of a request to replay after a 401, made before it was sent
/// (so before credentials were put on it), with a spare inner service and
/// the token it was sent with.
struct Copy<S, B> {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    /// Headers and extensions, when the request had any: most requests of
    /// a tower client carry none at this point, and then nothing is cloned.
    rest: Option<(http::HeaderMap, http::Extensions)>,
    body: B,
    service: S,
    /// The credentials (a request in flight keeps them, whether or not
    /// the service that sent it is still there: `oneshot` drops it).
    bound: Arc<Bound>,
    generation: Generation,
}

impl<S, B> Copy<S, B> {
    /// A copy of `request` (with `body`, its body's copy).
    #[inline(always)]
    fn of(request: &Request<B>, body: B, service: S, bound: &Arc<Bound>, generation: Generation) -> Self {
        let rest = (!request.headers().is_empty() || !request.extensions().is_empty())
            .then(|| (request.headers().clone(), request.extensions().clone()));
        Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            rest,
            body,
            service,
            bound: Arc::clone(bound),
            generation,
        }
    }

    /// The copy as a request to send again.
    fn into_resend(self) -> Resend<S, B> {
        let mut request = Request::new(self.body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = self.version;
        if let Some((headers, extensions)) = self.rest {
            *request.headers_mut() = headers;
            *request.extensions_mut() = extensions;
        }
        Resend { request, service: self.service, bound: self.bound, generation: self.generation, dpop: None }
    }
}

/// A replay on its way: the copy rebuilt as a request, with the service
/// it goes to and the token it carries.
struct Resend<S, B> {
    request: Request<B>,
    service: S,
    bound: Arc<Bound>,
    generation: Generation,
    /// The DPoP key of a DPoP-bound token, to keep the answer's nonce.
    dpop: Option<Arc<auth_core::dpop::Dpop>>,
}

impl<S: Clone, B: ReplayBody, R: sealed::Mode> Replay<S, B, R> {
    /// A copy of `request` when `R` replays, `keep` says so (the token is
    /// at risk, or every request is copied) and its body can be copied.
    #[inline(always)]
    fn new(request: &Request<B>, service: &S, bound: &Arc<Bound>, generation: Generation, keep: bool) -> Self {
        if R::REPLAYS && keep {
            if let Some(body) = request.body().try_clone_body() {
                if let Some(copy) = R::keep(Copy::of(request, body, service.clone(), bound, generation)) {
                    return Self::Copied(copy);
                }
            }
        }
        Self::Invalidate { source: bound.source_id(), generation: Some(generation) }
    }
}

impl<S, B, R: sealed::Mode> Replay<S, B, R> {
    /// For a request sent without a token: nothing to do on a 401.
    fn without_token() -> Self {
        Self::Invalidate { source: SourceId::NONE, generation: None }
    }

    /// Takes the replay out of a state being left (a 401 came back).
    fn take(&mut self) -> Self {
        std::mem::replace(self, Self::without_token())
    }
}

/// After a 401: the copy to replay and the original answer, returned if no
/// replay happens.
struct Rejected<S, B, Res> {
    copy: Copy<S, B>,
    response: Res,
}

pin_project! {
    /// The response future of [`Auth`].
    pub struct ResponseFuture<S, B, R = ReplayOn401>
    where
        S: Service<Request<B>>,
        R: sealed::Mode,
    {
        #[pin]
        kind: Kind<S, B, R>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, B, R>
    where
        S: Service<Request<B>>,
        R: sealed::Mode,
    {
        /// The hot path: the request is in flight without a copy, and its
        /// answer is only judged (a 401 invalidates the token it carried,
        /// if any). The inner future and two words, no tag of its own.
        Judging {
            #[pin]
            future: S::Future,
            source: SourceId,
            generation: Option<Generation>,
        },
        /// Every other state (waiting for a token, a copy kept, a replay,
        /// DPoP, a failure), boxed so that the hot one stays small.
        Cold {
            state: Pin<Box<State<S, B, R>>>,
        },
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, R>
    where
        S: Service<Request<B>>,
        R: sealed::Mode,
    {
        /// No usable token yet: waiting on the shared fetch.
        Token {
            #[pin]
            token: TokenFuture,
            pending: Option<Pending<S, B>>,
        },
        /// The request (or its replay) is in flight.
        Sending {
            #[pin]
            future: S::Future,
            replay: Replay<S, B, R>,
        },
        /// The API answered 401: waiting for the token to replay with.
        Renewing {
            #[pin]
            token: TokenFuture,
            rejected: Option<Rejected<S, B, S::Response>>,
        },
        /// Waiting for the spare inner service to be ready for the replay.
        ReplayReady {
            copy: Option<Resend<S, B>>,
        },
        /// The replay is in flight, with the renewed token of `generation`.
        Replaying {
            #[pin]
            future: S::Future,
            source: SourceId,
            generation: Generation,
            // The DPoP key and the URI, to keep the answer's nonce.
            nonces: Option<(Arc<auth_core::dpop::Dpop>, http::Uri)>,
        },
        /// The request failed before it was sent.
        Failed {
            error: Option<AuthError>,
        },
    }
}

impl<S, B, R> ResponseFuture<S, B, R>
where
    S: Service<Request<B>>,
    R: sealed::Mode,
{
    /// A request in flight: judged only when it keeps no copy.
    #[inline(always)]
    fn sending(future: S::Future, replay: Replay<S, B, R>) -> Self {
        match replay {
            Replay::Invalidate { source, generation } => Self { kind: Kind::Judging { future, source, generation } },
            replay => Self::cold(State::Sending { future, replay }),
        }
    }

    fn cold(state: State<S, B, R>) -> Self {
        Self { kind: Kind::Cold { state: Box::pin(state) } }
    }

    /// Waits for a token, then sends (the cold path).
    fn pending(request: Request<B>, service: S, bound: &Arc<Bound>) -> Self {
        let Some(source) = &bound.source else {
            return Self::failed(AuthError::Apply(auth_core::ApplyError::MissingToken));
        };
        let token = source.want();
        let pending = Pending { request, service, bound: Arc::clone(bound) };
        Self::cold(State::Token { token, pending: Some(pending) })
    }

    fn failed(error: AuthError) -> Self {
        Self::cold(State::Failed { error: Some(error) })
    }
}

impl<S, B, R> State<S, B, R>
where
    S: Service<Request<B>>,
    R: sealed::Mode,
{
    /// Sends `request` with a DPoP-bound token and a fresh proof (the
    /// cold path of DPoP: signing costs more than the rest).
    #[cold]
    fn with_proof(
        service: &mut S,
        mut request: Request<B>,
        replay: Replay<S, B, R>,
        token: Arc<auth_core::AccessToken>,
        credentials: &Credentials,
    ) -> Self {
        let uri = request.uri().clone();
        match credentials.apply_allowed_at(&mut request, Some(&token), std::time::SystemTime::now()) {
            Ok(Some(proof)) => {
                let replay = Replay::Proved(Box::new(Proved { token, uri, proof, replay }));
                Self::Sending { future: service.call(request), replay }
            }
            Ok(None) => Self::Sending { future: service.call(request), replay },
            Err(error) => Self::Failed { error: Some(AuthError::Apply(error)) },
        }
    }
}

/// An answer other than 401 to a request that kept a copy: its token is
/// accepted, and while it is fresh its requests need no copy.
#[cold]
fn accepted<S, B, R: sealed::Mode>(replay: &Replay<S, B, R>) {
    if let Replay::Copied(copy) = replay {
        let copy = R::get(copy);
        if let Some(source) = &copy.bound.source {
            source.accepted(copy.generation);
        }
    }
}

/// Keeps the `DPoP-Nonce` of an answer to a DPoP request.
#[cold]
fn keep_nonce<S, B, R: sealed::Mode, ResB>(replay: &Replay<S, B, R>, response: &Response<ResB>) {
    if let Replay::Proved(proved) = replay {
        if let Some(dpop) = proved.token.dpop() {
            dpop.observe(&proved.uri, response.headers());
        }
    }
}

impl<S, B, ResB, R> Future for ResponseFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    R: sealed::Mode,
{
    type Output = Result<Response<ResB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            // The hot path, kept small enough to inline.
            KindProj::Judging { future, source, generation } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                if response.status() == StatusCode::UNAUTHORIZED {
                    invalidate(*source, *generation);
                }
                Poll::Ready(Ok(response))
            }
            KindProj::Cold { state } => drive(state.as_mut(), cx),
        }
    }
}

/// After a 401 to a request that kept no copy (or to a replay): the token
/// it carried, if any, is invalidated, so that the next request works.
#[cold]
fn invalidate(source: SourceId, generation: Option<Generation>) {
    if let (Some(generation), Some(source)) = (generation, source.source()) {
        source.invalidate(generation);
    }
}

/// After a 401 to a request in flight: moves on to renewing the token (and
/// `None`) when the request is replayed, or gives the response back.
#[cold]
fn unauthorized<S, B, R, ResB>(mut state: Pin<&mut State<S, B, R>>, response: Response<ResB>) -> Option<Response<ResB>>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    R: sealed::Mode,
{
    let StateProj::Sending { replay, .. } = state.as_mut().project() else {
        return Some(response);
    };
    let replay = match replay.take() {
        Replay::Proved(proved) => {
            let Proved { token, uri, proof, replay } = *proved;
            let answer = token.dpop().map(|dpop| dpop.api_answer(&uri, &proof, response.status(), response.headers()));
            match (answer, replay) {
                // The server wants a nonce: the same token, a new proof, once.
                (Some(ApiAnswer::RetryWithNonce), Replay::Copied(copy)) => {
                    let mut resend = R::take(copy).into_resend();
                    let wall = std::time::SystemTime::now();
                    if resend.bound.credentials.apply_allowed_at(&mut resend.request, Some(&token), wall).is_err() {
                        return Some(response);
                    }
                    resend.dpop = token.dpop().cloned();
                    state.set(State::ReplayReady { copy: Some(resend) });
                    return None;
                }
                // A nonce demand not retried: the token is fine, keep it.
                (Some(ApiAnswer::RetryWithNonce | ApiAnswer::NonceRefused), _) => return Some(response),
                (_, other) => other,
            }
        }
        other => other,
    };
    match replay {
        Replay::Proved(_) => Some(response),
        Replay::Copied(copy) => {
            let copy = R::take(copy);
            let token = copy.bound.unauthorized(copy.generation);
            let rejected = Some(Rejected { copy, response });
            state.set(State::Renewing { token, rejected });
            None
        }
        Replay::Invalidate { source, generation } => {
            invalidate(source, generation);
            Some(response)
        }
    }
}

/// A 401 that a renewed token did not cure, marked for the caller.
#[cold]
fn rejected_after_renewal<ResB>(mut response: Response<ResB>) -> Response<ResB> {
    // The source's worker logs it (once per token, at warn).
    response.extensions_mut().insert(auth_core::RejectedAfterRenewal);
    response
}

/// Every state but the hot one.
#[cold]
fn drive<S, B, ResB, R>(
    mut state: Pin<&mut State<S, B, R>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<ResB>, BoxError>>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    R: sealed::Mode,
{
    loop {
        match state.as_mut().project() {
            StateProj::Token { token, pending } => {
                let token = match ready!(token.poll(cx)) {
                    Ok(Some(token)) => token,
                    Ok(None) => return Poll::Ready(Err(AuthError::Stopped.into())),
                    Err(error) => return Poll::Ready(Err(error.into())),
                };
                let Some(pending) = pending.take() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                let Pending { mut request, mut service, bound } = pending;
                let keep = bound.copies.keep(bound.source.as_ref().is_none_or(|source| source.at_risk(&token)));
                let replay = Replay::new(&request, &service, &bound, token.generation(), keep);
                if token.dpop().is_some() {
                    state.set(State::with_proof(&mut service, request, replay, token, &bound.credentials));
                    continue;
                }
                if let Err(error) = bound.credentials.apply_allowed(&mut request, Some(&token)) {
                    return Poll::Ready(Err(AuthError::Apply(error).into()));
                }
                let future = service.call(request);
                state.set(State::Sending { future, replay });
            }
            StateProj::Sending { future, replay } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                keep_nonce(replay, &response);
                if response.status() != StatusCode::UNAUTHORIZED {
                    accepted(replay);
                    return Poll::Ready(Ok(response));
                }
                if let Some(response) = unauthorized(state.as_mut(), response) {
                    return Poll::Ready(Ok(response));
                }
            }
            StateProj::Renewing { token, rejected } => {
                let outcome = ready!(token.poll(cx));
                let Some(rejected) = rejected.take() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                let Rejected { copy, response } = rejected;
                let token = match outcome {
                    Ok(Some(token)) => token,
                    // The loop guard held the renewal back: a fresh token was rejected already.
                    Ok(None) => return Poll::Ready(Ok(rejected_after_renewal(response))),
                    // No new token could be had: the caller gets the 401.
                    Err(_) => return Poll::Ready(Ok(response)),
                };
                let mut resend = copy.into_resend();
                let wall = std::time::SystemTime::now();
                if let Err(error) = resend.bound.credentials.apply_allowed_at(&mut resend.request, Some(&token), wall) {
                    return Poll::Ready(Err(AuthError::Apply(error).into()));
                }
                resend.dpop = token.dpop().cloned();
                resend.generation = token.generation();
                state.set(State::ReplayReady { copy: Some(resend) });
            }
            StateProj::ReplayReady { copy } => {
                let Some(ready_copy) = copy.as_mut() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                ready!(ready_copy.service.poll_ready(cx)).map_err(Into::into)?;
                let Some(copy) = copy.take() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                let Resend { request, mut service, bound, generation, dpop } = copy;
                let nonces = dpop.map(|dpop| (dpop, request.uri().clone()));
                let future = service.call(request);
                state.set(State::Replaying { future, source: bound.source_id(), generation, nonces });
            }
            StateProj::Replaying { future, source, generation, nonces } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                if let Some(nonces) = nonces {
                    nonces.0.observe(&nonces.1, response.headers());
                }
                if response.status() != StatusCode::UNAUTHORIZED {
                    // The renewed token is accepted.
                    if let Some(source) = source.source() {
                        source.accepted(*generation);
                    }
                    return Poll::Ready(Ok(response));
                }
                if auth_core::dpop::is_nonce_demand(response.status(), response.headers()) {
                    // A second nonce demand says nothing against the token.
                    return Poll::Ready(Ok(response));
                }
                // Never replayed twice: invalidate (the lifecycle decides whether
                // this token is dropped) and mark the answer.
                if let Some(source) = source.source() {
                    source.invalidate(*generation);
                }
                return Poll::Ready(Ok(rejected_after_renewal(response)));
            }
            StateProj::Failed { error } => {
                let error = error.take().unwrap_or(AuthError::Stopped);
                return Poll::Ready(Err(error.into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    type Inner = tower::util::BoxCloneSyncService<Request<String>, Response<String>, BoxError>;

    /// The generation of a token a lifecycle issued.
    fn a_generation() -> Generation {
        let config = auth_core::SourceConfig::builder("https://a.example/token", "id").client_secret("s").build();
        let mut lifecycle = auth_core::Lifecycle::new(config.unwrap(), 1);
        let now = std::time::Instant::now();
        lifecycle.handle_token_wanted(now);
        let Some(auth_core::Output::Fetch(fetch)) = lifecycle.poll_output() else { panic!("a fetch") };
        let response = http::Response::new(br#"{"access_token":"t","expires_in":60}"#.to_vec());
        lifecycle.handle_fetch_response(now, fetch.id, &response);
        lifecycle.current_token(now).expect("a token").generation()
    }

    #[test]
    fn a_replay_is_the_request_as_it_was_before_the_credentials() {
        let mut request = http::Request::post("https://api.example.com/x?y=1")
            .header("x-trace", "1")
            .version(http::Version::HTTP_2)
            .body(String::from("payload"))
            .unwrap();
        request.extensions_mut().insert(7u32);
        let credentials = Credentials::builder().api_key_header("X-API-Key", "k").any_origin().build().unwrap();
        let bound = Arc::clone(&AuthLayer::without_source(credentials).unwrap().bound);
        let generation = a_generation();
        let copy = Copy::of(&request, request.body().clone(), (), &bound, generation);
        request.headers_mut().insert("x-added-after", http::HeaderValue::from_static("1"));
        let resend = copy.into_resend();
        let replay = resend.request;
        assert_eq!(replay.method(), "POST");
        assert_eq!(replay.uri(), "https://api.example.com/x?y=1");
        assert_eq!(replay.version(), http::Version::HTTP_2);
        assert_eq!(replay.headers().len(), 1, "the headers it had, not those added after the copy");
        assert_eq!(replay.headers()["x-trace"], "1");
        assert_eq!(replay.extensions().get::<u32>(), Some(&7));
        assert_eq!(replay.body(), "payload");
        assert_eq!(resend.generation, generation);
        let bare = Copy::of(&http::Request::new(()), (), (), &bound, generation).into_resend().request;
        assert!(bare.headers().is_empty() && bare.extensions().is_empty());
    }

    #[test]
    fn a_request_without_a_copy_keeps_two_words_for_a_401() {
        assert_eq!(size_of::<Replay<Inner, String, NoReplay>>(), 16, "a source number and a generation");
        let inner = size_of::<<Inner as Service<Request<String>>>::Future>();
        for future in [size_of::<ResponseFuture<Inner, String, NoReplay>>(), size_of::<ResponseFuture<Inner, String>>()]
        {
            assert_eq!(future, inner + 16, "the inner future and the two words, no tag");
        }
        // An inner future that holds a whole response (a service that answers at once).
        type Answers =
            tower::util::ServiceFn<fn(Request<String>) -> std::future::Ready<Result<Response<String>, BoxError>>>;
        let inner = size_of::<<Answers as Service<Request<String>>>::Future>();
        assert_eq!(size_of::<ResponseFuture<Answers, String>>(), inner + 16);
    }
}
