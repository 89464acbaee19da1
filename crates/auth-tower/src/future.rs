//! The response future of [`Auth`](crate::Auth): it sends a request,
//! judges the answer with [`auth_core::publish::replay`], and carries out the
//! verdict (accept the token, drop it, send the copy again with a new
//! token or a DPoP nonce).
//!
//! Two shapes, so that the common requests cost no allocation:
//! - *in flight*: the inner future and two words: the token's source and
//!   generation, or the request's copy (the default; none for a streaming
//!   body, with [`NoReplay`], with [`ReplayCopies::AtRisk`] and a settled
//!   token, or without a token), whose parts sit in a box its thread
//!   recycles ([`crate::copy`]); an answer other than 401 drops the copy;
//! - *cold*: everything else (waiting for the first token, DPoP, a 401
//!   and what follows), boxed.
//!
//! [`NoReplay`]: crate::NoReplay
//! [`ReplayCopies::AtRisk`]: auth_core::publish::replay::ReplayCopies::AtRisk

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use auth_core::publish::replay::{self, Attempt, Sent, Verdict};
use auth_core::resource::step_up;
use auth_core::{AccessToken, Generation};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use crate::body::ReplayBody;
use crate::bound::Bound;
use crate::copy::{Copy, Resend};
use crate::error::{AuthError, BoxError};
use crate::handoff::TokenFuture;
use crate::mode::{Mode, ReplayOn401};
use crate::source::SourceId;

/// A request waiting for the first (or next) token.
pub(crate) struct Pending<S, B> {
    pub(crate) request: Request<B>,
    pub(crate) service: S,
    pub(crate) bound: Arc<Bound>,
}

/// What the answer to a request sent on the cold path is judged by.
struct Judged<S, B, R: Mode> {
    attempt: Attempt,
    /// The token sent: its source and generation, whether it was at risk.
    source: SourceId,
    generation: Generation,
    at_risk: bool,
    /// The copy to send again, if one was kept.
    copy: Option<R::Kept<Copy<S, B>>>,
    /// The DPoP proof sent, with its token and URI.
    proved: Option<Box<Proved>>,
}

impl<S, B, R: Mode> Judged<S, B, R> {
    /// A first send with the token of `generation` from `source` (whose
    /// risk is `at_risk`), and its copy if one was kept.
    fn first(source: SourceId, generation: Generation, at_risk: bool, copy: Option<R::Kept<Copy<S, B>>>) -> Self {
        Self { attempt: Attempt::default(), source, generation, at_risk, copy, proved: None }
    }
}

/// The copy `R` keeps of `request` for a 401, sent with the token of
/// `generation` (whose risk is `at_risk`): when `R` replays, `bound`'s
/// copy rule keeps one for that risk, and the body can be copied.
#[inline(always)]
pub(crate) fn kept_copy<S: Clone, B: ReplayBody, R: Mode>(
    request: &Request<B>,
    service: &S,
    bound: &Arc<Bound>,
    generation: Generation,
    at_risk: bool,
) -> Option<R::Kept<Copy<S, B>>> {
    if R::REPLAYS && bound.copies.keep(at_risk) {
        Copy::of(request, service, bound, generation, at_risk).and_then(R::keep)
    } else {
        None
    }
}

/// A DPoP proof as sent, with the token it was made for and the URI (for
/// the nonce the answer may carry).
struct Proved {
    token: Arc<AccessToken>,
    uri: http::Uri,
    proof: auth_core::dpop::Proof,
}

/// After a 401 whose verdict is a renewal: the copy to send with the new
/// token, the sends so far, and the answer, returned if no new token comes.
struct Rejected<S, B, Res> {
    copy: Copy<S, B>,
    attempt: Attempt,
    response: Res,
}

pin_project! {
    /// The response future of [`Auth`](crate::Auth).
    pub struct ResponseFuture<S, B, R = ReplayOn401>
    where
        S: Service<Request<B>>,
        R: Mode,
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
        R: Mode,
    {
        /// In flight, with the token it carried (if any) or its copy: an
        /// answer other than 401 accepts the token, a 401 moves on to the
        /// cold state. The inner future and two words, no tag of its own
        /// (with a body and a service that take no room).
        Flight {
            #[pin]
            future: S::Future,
            kept: Kept<S, B, R>,
        },
        /// Every other state, boxed so that the hot ones stay small.
        Cold {
            state: Pin<Box<State<S, B, R>>>,
        },
    }
}

/// What a request in flight keeps for its answer.
enum Kept<S, B, R: Mode> {
    /// No copy: the token it carried, if any.
    Token { source: SourceId, generation: Option<Generation> },
    /// Its copy (which knows its token).
    Copy(R::Kept<Copy<S, B>>),
}

impl<S, B, R: Mode> Kept<S, B, R> {
    /// The generation of the token the request carried, if any.
    fn generation(&self) -> Option<Generation> {
        match self {
            Self::Token { generation, .. } => *generation,
            Self::Copy(copy) => R::get(copy).parts().map(|parts| parts.generation),
        }
    }

    /// The source whose token the request carried (`NONE` for none).
    fn source_id(&self) -> SourceId {
        match self {
            Self::Token { source, .. } => *source,
            Self::Copy(copy) => R::get(copy).parts().map_or(SourceId::NONE, |parts| parts.bound.source_id()),
        }
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B, R>
    where
        S: Service<Request<B>>,
        R: Mode,
    {
        /// No usable token yet: waiting on the shared fetch.
        Token {
            #[pin]
            token: TokenFuture,
            pending: Option<Pending<S, B>>,
        },
        /// The request (or a copy of it) is in flight.
        Sending {
            #[pin]
            future: S::Future,
            judged: Option<Judged<S, B, R>>,
        },
        /// The API answered 401: waiting for the token to send again with.
        Renewing {
            #[pin]
            token: TokenFuture,
            rejected: Option<Rejected<S, B, S::Response>>,
        },
        /// Waiting for the copy's service to be ready.
        Ready {
            resend: Option<(Resend<S, B>, Attempt)>,
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
    R: Mode,
{
    /// A request in flight without a token.
    #[inline(always)]
    pub(crate) fn without_token(future: S::Future) -> Self {
        Self { kind: Kind::Flight { future, kept: Kept::Token { source: SourceId::NONE, generation: None } } }
    }

    /// A request in flight with the token of `generation` from `bound`'s
    /// source, and its copy if one was kept.
    #[inline(always)]
    pub(crate) fn sending(
        future: S::Future,
        copy: Option<R::Kept<Copy<S, B>>>,
        bound: &Bound,
        generation: Generation,
    ) -> Self {
        let kept = match copy {
            Some(copy) => Kept::Copy(copy),
            None => Kept::Token { source: bound.source_id(), generation: Some(generation) },
        };
        Self { kind: Kind::Flight { future, kept } }
    }

    /// A request in flight without a copy, sent with a token of `bound`'s
    /// source that the API has not accepted yet: its answer is judged on
    /// the cold path, which reports the acceptance.
    #[cold]
    pub(crate) fn reporting(future: S::Future, bound: &Bound, generation: Generation) -> Self {
        let judged = Judged::first(bound.source_id(), generation, true, None);
        Self::cold(State::Sending { future, judged: Some(judged) })
    }

    fn cold(state: State<S, B, R>) -> Self {
        Self { kind: Kind::Cold { state: Box::pin(state) } }
    }

    /// Waits for a token, then sends.
    pub(crate) fn pending(pending: Pending<S, B>) -> Self {
        let Some(source) = &pending.bound.source else {
            return Self::failed(AuthError::Apply(auth_core::ApplyError::MissingToken));
        };
        Self::cold(State::Token { token: source.want(), pending: Some(pending) })
    }

    pub(crate) fn failed(error: AuthError) -> Self {
        Self::cold(State::Failed { error: Some(error) })
    }
}

impl<S, B, R> ResponseFuture<S, B, R>
where
    S: Service<Request<B>> + Clone,
    B: ReplayBody,
    R: Mode,
{
    /// Sends `request` with a DPoP-bound token and a fresh proof (signing
    /// costs more than the rest: the cold path).
    #[cold]
    pub(crate) fn with_proof(
        service: &mut S,
        request: Request<B>,
        copy: Option<R::Kept<Copy<S, B>>>,
        token: Arc<AccessToken>,
        bound: &Bound,
        at_risk: bool,
    ) -> Self {
        let judged = Judged::first(bound.source_id(), token.generation(), at_risk, copy);
        Self::cold(State::send(service, request, judged, &token, bound))
    }
}

impl<S, B, R> State<S, B, R>
where
    S: Service<Request<B>>,
    R: Mode,
{
    /// Puts the credentials (with `token`) on `request` and sends it; the
    /// answer is judged by `judged`.
    fn send(
        service: &mut S,
        mut request: Request<B>,
        mut judged: Judged<S, B, R>,
        token: &Arc<AccessToken>,
        bound: &Bound,
    ) -> Self {
        let uri = token.dpop().map(|_| request.uri().clone());
        match bound.credentials.apply_allowed_at(&mut request, Some(token), SystemTime::now()) {
            Ok(proof) => {
                if let (Some(proof), Some(uri)) = (proof, uri) {
                    judged.proved = Some(Box::new(Proved { token: Arc::clone(token), uri, proof }));
                }
                Self::Sending { future: service.call(request), judged: Some(judged) }
            }
            Err(error) => Self::Failed { error: Some(AuthError::Apply(error)) },
        }
    }
}

impl<S, B, ResB, R> Future for ResponseFuture<S, B, R>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    R: Mode,
{
    type Output = Result<Response<ResB>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        match kind.as_mut().project() {
            KindProj::Flight { future, kept } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                let copy = match kept {
                    Kept::Copy(copy) => Some(R::get(copy)),
                    Kept::Token { .. } => None,
                };
                let sent = Sent { attempt: Attempt::default(), copy: copy.is_some(), proof: None, accepted: false };
                match replay::judge(&sent, response.status(), response.headers()) {
                    Verdict::Accepted => {
                        if let Some(copy) = copy {
                            accept(copy);
                        }
                        // Only a 403 asks for more here (a 401 is never accepted).
                        if response.status() == http::StatusCode::FORBIDDEN {
                            return Poll::Ready(Ok(mark_step_up(response, kept.source_id(), kept.generation())));
                        }
                        Poll::Ready(Ok(response))
                    }
                    Verdict::GiveBack => Poll::Ready(Ok(response)),
                    verdict @ (Verdict::Invalidate
                    | Verdict::Renew
                    | Verdict::RetryWithNonce
                    | Verdict::RejectedAfterRenewal
                    | Verdict::StepUp) => {
                        let taken = std::mem::replace(kept, Kept::Token { source: SourceId::NONE, generation: None });
                        let Some(judged) = Judged::of_kept(taken) else {
                            return Poll::Ready(Ok(response));
                        };
                        match carry_out(judged, verdict, response) {
                            Next::Done(response) => Poll::Ready(Ok(response)),
                            Next::State(state) => {
                                kind.set(Kind::Cold { state: Box::pin(state) });
                                match kind.project() {
                                    KindProj::Cold { state } => drive(state.as_mut(), cx),
                                    KindProj::Flight { .. } => Poll::Ready(Err(AuthError::Stopped.into())),
                                }
                            }
                        }
                    }
                }
            }
            KindProj::Cold { state } => drive(state.as_mut(), cx),
        }
    }
}

/// An answer other than 401 to a request that kept a copy: its token is
/// accepted (news to its slot only while it is at risk).
#[inline(always)]
fn accept<S, B>(copy: &Copy<S, B>) {
    if let Some(parts) = copy.parts().filter(|parts| parts.at_risk) {
        if let Some(source) = &parts.bound.source {
            source.accept(parts.generation);
        }
    }
}

impl<S, B, R: Mode> Judged<S, B, R> {
    /// What a request in flight kept, to judge its 401 by; `None` when it
    /// carried no token.
    #[cold]
    fn of_kept(kept: Kept<S, B, R>) -> Option<Self> {
        let (source, generation, at_risk, copy) = match kept {
            Kept::Token { source, generation } => (source, generation?, false, None),
            Kept::Copy(copy) => {
                let parts = R::get(&copy).parts()?;
                (parts.bound.source_id(), parts.generation, parts.at_risk, Some(copy))
            }
        };
        Some(Self::first(source, generation, at_risk, copy))
    }
}

/// After a 401 to a request that kept no copy: the token it carried, if
/// any, is dropped, so that the next request gets a new one.
#[cold]
fn invalidate(source: SourceId, generation: Option<Generation>) {
    if let (Some(generation), Some(source)) = (generation, source.source()) {
        source.invalidate(generation);
    }
}

/// What follows an answer: the response to return, or the next state.
/// Consumed at once (moved into the boxed state), never kept.
#[allow(clippy::large_enum_variant)]
enum Next<S, B, R, Res>
where
    S: Service<Request<B>>,
    R: Mode,
{
    Done(Res),
    State(State<S, B, R>),
}

/// Carries out `verdict` on `response`, the answer to a request sent as
/// `judged` says.
#[cold]
fn carry_out<S, B, R, ResB>(
    judged: Judged<S, B, R>,
    verdict: Verdict,
    response: Response<ResB>,
) -> Next<S, B, R, Response<ResB>>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    R: Mode,
{
    let Judged { attempt, source, generation, at_risk, copy, proved } = judged;
    let copy = copy.map(R::take);
    match (verdict, copy) {
        (Verdict::Accepted, _) => {
            // Every send after the first carries a token at risk.
            if at_risk {
                if let Some(source) = source.source() {
                    source.accept(generation);
                }
            }
            Next::Done(marked(response, source, Some(generation)))
        }
        (Verdict::GiveBack, _) => Next::Done(response),
        (Verdict::StepUp, _) => Next::Done(marked(response, source, Some(generation))),
        (Verdict::RejectedAfterRenewal, _) => {
            invalidate(source, Some(generation));
            Next::Done(rejected_after_renewal(response))
        }
        (Verdict::Renew, Some(copy)) => match copy.parts() {
            Some(parts) => {
                let token = parts.bound.unauthorized(generation);
                let attempt = attempt.after(Verdict::Renew);
                Next::State(State::Renewing { token, rejected: Some(Rejected { copy, attempt, response }) })
            }
            None => Next::Done(response),
        },
        (Verdict::RetryWithNonce, Some(copy)) => match proved.and_then(|proved| copy.into_resend(proved.token)) {
            // The same token, a new proof (the nonce is cached now).
            Some(resend) => {
                Next::State(State::Ready { resend: Some((resend, attempt.after(Verdict::RetryWithNonce))) })
            }
            None => Next::Done(response),
        },
        // A 401 not sent again (no copy at hand).
        (Verdict::Invalidate | Verdict::Renew | Verdict::RetryWithNonce, _) => {
            invalidate(source, Some(generation));
            Next::Done(response)
        }
    }
}

/// An answer marked with the step-up it asks of `source`'s tokens, if any
/// (a 401 or 403 naming more scopes or a stronger sign-in): one
/// comparison for every other answer.
#[inline(always)]
fn marked<ResB>(response: Response<ResB>, source: SourceId, generation: Option<Generation>) -> Response<ResB> {
    let status = response.status();
    if status == http::StatusCode::FORBIDDEN || status == http::StatusCode::UNAUTHORIZED {
        return mark_step_up(response, source, generation);
    }
    response
}

#[cold]
fn mark_step_up<ResB>(
    mut response: Response<ResB>,
    source: SourceId,
    generation: Option<Generation>,
) -> Response<ResB> {
    let (Some(source), Some(generation)) = (source.source(), generation) else { return response };
    let asked = step_up::step_up(response.status(), response.headers(), source.config().scopes());
    if let Some(asked) = asked {
        source.step_up(&asked, generation);
        response.extensions_mut().insert(asked);
    }
    response
}

/// A 401 that a renewed token did not cure, marked for the caller.
#[cold]
fn rejected_after_renewal<ResB>(mut response: Response<ResB>) -> Response<ResB> {
    // The source's worker logs it (once per token, at warn).
    response.extensions_mut().insert(auth_core::RejectedAfterRenewal);
    response
}

/// Every state but the hot ones.
#[cold]
fn drive<S, B, ResB, R>(
    mut state: Pin<&mut State<S, B, R>>,
    cx: &mut Context<'_>,
) -> Poll<Result<Response<ResB>, BoxError>>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
    R: Mode,
{
    loop {
        match state.as_mut().project() {
            StateProj::Token { token, pending } => {
                let token = match ready!(token.poll(cx)) {
                    Ok(Some(token)) => token,
                    Ok(None) => return Poll::Ready(Err(AuthError::Stopped.into())),
                    Err(error) => return Poll::Ready(Err(error.into())),
                };
                let Some(Pending { request, mut service, bound }) = pending.take() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                let at_risk = bound.source.as_ref().is_none_or(|source| source.at_risk(&token));
                let copy = kept_copy::<S, B, R>(&request, &service, &bound, token.generation(), at_risk);
                let judged = Judged::first(bound.source_id(), token.generation(), at_risk, copy);
                let next = State::send(&mut service, request, judged, &token, &bound);
                state.set(next);
            }
            StateProj::Sending { future, judged } => {
                let response = ready!(future.poll(cx)).map_err(Into::into)?;
                let Some(judged) = judged.take() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                let proof = judged.proved.as_deref().map(|proved| &proved.proof);
                if let Some(proved) = &judged.proved {
                    if let Some(dpop) = proved.token.dpop() {
                        dpop.observe(&proved.uri, response.headers());
                    }
                }
                let accepted = judged.attempt.renewed()
                    && judged.source.source().is_some_and(|source| source.accepted(judged.generation));
                let sent = Sent { attempt: judged.attempt, copy: judged.copy.is_some(), proof, accepted };
                let verdict = replay::judge(&sent, response.status(), response.headers());
                if let Some(source) = judged.source.source().filter(|_| judged.attempt.counted(verdict)) {
                    source.judged(judged.attempt, verdict);
                }
                match carry_out(judged, verdict, response) {
                    Next::Done(response) => return Poll::Ready(Ok(response)),
                    Next::State(next) => state.set(next),
                }
            }
            StateProj::Renewing { token, rejected } => {
                let outcome = ready!(token.poll(cx));
                let Some(Rejected { copy, attempt, response }) = rejected.take() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                let token = match outcome {
                    Ok(Some(token)) => token,
                    // The loop guard held the renewal back: a new token was refused already.
                    Ok(None) => return Poll::Ready(Ok(rejected_after_renewal(response))),
                    // No new token could be had: the caller gets the 401.
                    Err(_) => return Poll::Ready(Ok(response)),
                };
                match copy.into_resend(token) {
                    Some(resend) => state.set(State::Ready { resend: Some((resend, attempt)) }),
                    None => return Poll::Ready(Ok(response)),
                }
            }
            StateProj::Ready { resend } => {
                let Some((ready_resend, _)) = resend.as_mut() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                ready!(ready_resend.service.poll_ready(cx)).map_err(Into::into)?;
                let Some((Resend { request, mut service, bound, token }, attempt)) = resend.take() else {
                    return Poll::Ready(Err(AuthError::Stopped.into()));
                };
                // A further copy only when a verdict may still use it.
                let copy = if attempt.may_send_again() {
                    Copy::of(&request, &service, &bound, token.generation(), true).and_then(R::keep)
                } else {
                    None
                };
                // A new token, or one retried with a nonce, is news to its
                // slot until the API accepts it: at risk.
                let judged = Judged { attempt, ..Judged::first(bound.source_id(), token.generation(), true, copy) };
                let next = State::send(&mut service, request, judged, &token, &bound);
                state.set(next);
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
    use crate::mode::NoReplay;

    type Inner = tower::util::BoxCloneSyncService<Request<String>, Response<String>, BoxError>;

    #[test]
    fn a_request_in_flight_is_the_inner_future_and_two_words() {
        let inner = size_of::<<Inner as Service<Request<String>>>::Future>();
        assert_eq!(size_of::<ResponseFuture<Inner, String, NoReplay>>(), inner + 16, "the inner future and two words");
        // With a copy: its body and service inline, its parts boxed.
        let copy = size_of::<Copy<Inner, String>>();
        assert_eq!(copy, 8 + size_of::<String>() + size_of::<Inner>());
        assert_eq!(size_of::<ResponseFuture<Inner, String>>(), inner + copy.max(16));
        // A body and a service that take no room (the benchmark's): no tag either.
        #[derive(Clone)]
        struct Answers;
        impl Service<Request<()>> for Answers {
            type Response = Response<()>;
            type Error = BoxError;
            type Future = std::future::Ready<Result<Response<()>, BoxError>>;
            fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: Request<()>) -> Self::Future {
                std::future::ready(Ok(Response::new(())))
            }
        }
        let inner = size_of::<<Answers as Service<Request<()>>>::Future>();
        assert_eq!(size_of::<Copy<Answers, ()>>(), 8, "the boxed parts");
        assert_eq!(size_of::<ResponseFuture<Answers, ()>>(), inner + 16);
    }
}
