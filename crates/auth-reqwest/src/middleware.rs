//! The `reqwest-middleware` middleware.

use std::cell::RefCell;
use std::sync::Arc;

use auth_core::credentials::query_with_param;
use auth_core::publish::replay::{self, Attempt, ReplayCopies, Sent, Verdict};
use auth_core::secret::ExposeSecret;
use auth_core::{AccessToken, Credentials, Generation};
use auth_tower::{AuthError, TokenReader, TokenSource};
use thread_local::ThreadLocal;

use http::{Extensions, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::answer::{self, rejected_after_renewal};
use crate::copy::ReplayCopy;

/// Puts credentials on every request of a `reqwest_middleware` client, and
/// replays a request once after a 401 with a renewed token.
///
/// - Credentials go only to the origins they are limited to
///   ([`Credentials`]' origin filter); other requests pass untouched.
/// - On a 401 to a request that carried a token, the token is invalidated
///   (once, however many requests are rejected) and the request is sent
///   again with the new token, from a copy made before the send, as
///   providers tell their clients to do; a DPoP nonce demand is sent
///   again once with the nonce. The rules are [`auth_core::publish::replay`]'s: at
///   most three sends, never in a loop. Every request is copied by
///   default; with [`AuthMiddleware::replay_copies`] and
///   [`ReplayCopies::AtRisk`] only those whose token is at risk (a settled
///   token revoked in the middle of its life then gives its 401 to the
///   caller, and the next request carries the new token). A request with
///   a body is copied whole (`Request::try_clone`; a streaming body cannot
///   be, and is never sent again); one without keeps its method, headers,
///   timeout and version, and takes its URL back from the 401 itself (so
///   a 401 that came after a redirect, from a URL other than the one sent,
///   is returned, not replayed).
/// - Pair it with [`same_origin_redirects`](crate::same_origin_redirects)
///   on the client, so that redirects never carry credentials elsewhere.
/// - An API key in a query parameter is on the URL that is sent. In what
///   the middleware returns it is `[redacted]`: the URL of an error, and
///   `Response::url()` (so `error_for_status()` and logs of the final URL
///   do not show it). Prefer a header key where the provider allows one:
///   proxies and server logs see query strings.
#[derive(Debug, Clone)]
pub struct AuthMiddleware {
    source: Option<Arc<Source>>,
    credentials: Arc<Credentials>,
    copies: ReplayCopies,
}

/// The token source, and one reader of its token per thread that sends
/// through the middleware: a cached token is read with no shared write
/// and no reference count (the middleware itself is shared by every
/// thread of the client).
struct Source {
    source: TokenSource,
    readers: ThreadLocal<RefCell<TokenReader>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Source {
    /// Calls `f` with this thread's read of the cached token, `None` when
    /// none may be sent now. The read is this thread's reader's, or (if
    /// that reader is in use further up the stack) the source's own.
    #[inline(always)]
    fn with_cached<R>(&self, f: impl FnOnce(Option<Cached<'_>>) -> R) -> R {
        let reader = self.readers.get_or(|| RefCell::new(self.source.reader()));
        match reader.try_borrow_mut() {
            Ok(mut reader) => match reader.load() {
                Some(read) => f(Some(Cached { token: read.as_arc(), at_risk: read.at_risk() })),
                None => f(None),
            },
            Err(_) => match self.source.cached() {
                Some(token) => self.with_arc(&token, |token| f(Some(token))),
                None => f(None),
            },
        }
    }

    /// Calls `f` with `token`, a token from the source.
    fn with_arc<R>(&self, token: &Arc<AccessToken>, f: impl FnOnce(Cached<'_>) -> R) -> R {
        f(Cached { token, at_risk: self.source.at_risk(token) })
    }
}

/// A token read for a request.
struct Cached<'a> {
    token: &'a Arc<AccessToken>,
    /// Whether a request sent with it keeps a copy for a 401.
    at_risk: bool,
}

impl AuthMiddleware {
    /// Credentials that include a bearer token from `source`.
    pub fn new(source: TokenSource, credentials: Credentials) -> Self {
        let source = Source { source, readers: ThreadLocal::new() };
        Self { source: Some(Arc::new(source)), credentials: Arc::new(credentials), copies: ReplayCopies::default() }
    }

    /// Which requests keep a copy of themselves to send again after a
    /// 401: all that can be copied ([`ReplayCopies::Always`], the
    /// default), or only those whose token is at risk
    /// ([`ReplayCopies::AtRisk`]: a settled token's 401 reaches the
    /// caller).
    pub fn replay_copies(mut self, copies: ReplayCopies) -> Self {
        self.copies = copies;
        self
    }

    /// Static credentials only (API keys, Basic, a static bearer). Fails if
    /// the credentials need a token source.
    pub fn without_source(credentials: Credentials) -> Result<Self, AuthError> {
        if credentials.needs_token() {
            return Err(AuthError::Apply(auth_core::ApplyError::MissingToken));
        }
        Ok(Self { source: None, credentials: Arc::new(credentials), copies: ReplayCopies::default() })
    }

    /// The token source, if any.
    pub fn token_source(&self) -> Option<&TokenSource> {
        self.source.as_deref().map(|source| &source.source)
    }

    /// A request that goes out without credentials (its origin is not one
    /// they are limited to): counted, and said once per origin.
    #[cold]
    fn withheld(&self, request: &Request) {
        if let Some(message) = self.credentials.note_withheld(&request.url().origin().ascii_serialization()) {
            tracing::warn!(target: "auth_tower", "{message}");
        }
    }

    #[inline]
    fn applies_to(&self, request: &Request) -> bool {
        let url = request.url();
        self.credentials.applies_to_url(url.as_str(), || (url.scheme(), url.host_str().unwrap_or(""), url.port()))
    }

    /// Puts the credentials on `request`; with a DPoP-bound token, a fresh
    /// proof too, which is returned with the URI it was made for.
    #[inline]
    fn apply(&self, request: &mut Request, token: Option<&AccessToken>) -> Result<Option<Proved>, AuthError> {
        let sent = match token.filter(|token| token.dpop().is_some()) {
            Some(token) => self.apply_with_proof(request, token)?,
            None => {
                self.credentials.apply_headers(request.headers_mut(), token)?;
                None
            }
        };
        if !self.credentials.has_query_params() {
            return Ok(sent);
        }
        for (name, key) in self.credentials.query_params() {
            let query = query_with_param(request.url().query().unwrap_or(""), name, key.expose_secret());
            request.url_mut().set_query(Some(&query));
        }
        Ok(sent)
    }

    #[cold]
    fn apply_with_proof(&self, request: &mut Request, token: &AccessToken) -> Result<Option<Proved>, AuthError> {
        let uri = http::Uri::try_from(request.url().as_str()).map_err(|_| auth_core::ApplyError::InvalidUri)?;
        let method = request.method().clone();
        let wall = std::time::SystemTime::now();
        let proof = self.credentials.apply_headers_at(request.headers_mut(), &method, &uri, Some(token), wall)?;
        Ok(proof.map(|proof| Box::new((uri, proof))))
    }
}

fn middleware_error(error: AuthError) -> reqwest_middleware::Error {
    reqwest_middleware::Error::middleware(error)
}

// Written out rather than with `#[async_trait]`: what can be decided before
// the send is decided here, synchronously, and the boxed future holds only
// what the answer needs (a request that passes untouched is the next
// middleware's own future), so that it stays small and within the
// allocator's small-block cache.
impl Middleware for AuthMiddleware {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        request: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = reqwest_middleware::Result<Response>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        self.prepare(request, extensions, next)
    }
}

impl AuthMiddleware {
    /// `outcome`, the answer to a request sent with the token of
    /// `generation` (if any), as the caller gets it ([`answer::finish`]).
    #[inline(always)]
    fn finish(
        &self,
        outcome: reqwest_middleware::Result<Response>,
        generation: Option<Generation>,
    ) -> reqwest_middleware::Result<Response> {
        let source = self.source.as_ref().zip(generation).map(|(source, generation)| (&source.source, generation));
        answer::finish(&self.credentials, source, outcome)
    }

    /// Decides everything that comes before the send, and returns the
    /// future that sends and judges the answer.
    #[inline(always)]
    fn prepare<'a>(&'a self, mut request: Request, extensions: &'a mut Extensions, next: Next<'a>) -> Sending<'a> {
        if !self.applies_to(&request) {
            self.withheld(&request);
            return next.run(request, extensions);
        }
        let source = match self.source.as_deref() {
            Some(source) if self.credentials.needs_token() => source,
            _ => {
                if let Err(error) = self.apply(&mut request, None) {
                    return Box::pin(std::future::ready(Err(middleware_error(error))));
                }
                if !self.credentials.has_query_params() {
                    return next.run(request, extensions);
                }
                return Box::pin(async move { self.finish(next.run(request, extensions).await, None) });
            }
        };
        // A cached token without an await; the first callers wait for one.
        // The request is borrowed, not moved, while the token is read.
        match source.with_cached(|cached| cached.map(|token| self.decide(token, &mut request))) {
            Some(decided) => self.send_decided(&source.source, decided, request, extensions, next),
            None => Box::pin(async move {
                let token = source.source.token().await.map_err(middleware_error)?;
                let decided = source.with_arc(&token, |token| self.decide(token, &mut request));
                self.send_decided(&source.source, decided, request, extensions, next).await
            }),
        }
    }

    /// The copy for a 401 (every request that can be copied, or with
    /// [`ReplayCopies::AtRisk`] only those whose token is at risk), and
    /// the credentials on `request`.
    #[inline(always)]
    fn decide(&self, token: Cached<'_>, request: &mut Request) -> Result<Decided, AuthError> {
        let Cached { token, at_risk } = token;
        let mut copy = if self.copies.keep(at_risk) { ReplayCopy::before_send(request) } else { None };
        let proof = self.apply(request, Some(token))?;
        if let Some(copy) = &mut copy {
            copy.sent_to(request.url());
        }
        let dpop = proof.map(|proof| (Arc::clone(token), proof));
        Ok(Decided { generation: token.generation(), at_risk, dpop, copy })
    }

    /// The send of a request with its credentials on, or the error that
    /// kept them off.
    #[inline(always)]
    fn send_decided<'a>(
        &'a self,
        source: &'a TokenSource,
        decided: Result<Decided, AuthError>,
        request: Request,
        extensions: &'a mut Extensions,
        next: Next<'a>,
    ) -> Sending<'a> {
        match decided {
            // Nothing to send again (a streaming body, or a settled token
            // with `AtRisk`): the request goes to the next middleware now,
            // and only the answer is judged.
            Ok(Decided { generation, at_risk, dpop: None, copy: None }) => {
                Box::pin(self.judge_only(source, generation, at_risk, next.run(request, extensions)))
            }
            Ok(decided) => Box::pin(self.send(source, decided, request, extensions, next)),
            Err(error) => Box::pin(std::future::ready(Err(middleware_error(error)))),
        }
    }

    /// The answer to a request that kept no copy, sent with the token of
    /// `generation`: returned as it came, after a 401 with the token
    /// dropped (the next request carries a new one). The future holds the
    /// next middleware's and a few words, not the request.
    #[allow(clippy::manual_async_fn)]
    #[inline(always)]
    fn judge_only<'a>(
        &'a self,
        source: &'a TokenSource,
        generation: Generation,
        at_risk: bool,
        sending: Sending<'a>,
    ) -> impl std::future::Future<Output = reqwest_middleware::Result<Response>> + Send + 'a {
        async move {
            let outcome = sending.await;
            if let Ok(response) = &outcome {
                let sent = Sent { attempt: Attempt::default(), copy: false, proof: None, accepted: false };
                let verdict = replay::judge(&sent, response.status(), response.headers());
                if let Ended::Marked = self.settle(source, generation, at_risk, verdict) {
                    // Unreachable for a first send; kept whole for the rule's sake.
                    return self.finish(outcome.map(rejected_after_renewal), Some(generation));
                }
            }
            self.finish(outcome, Some(generation))
        }
    }

    /// Carries out a verdict that ends the request, for the token of
    /// `generation` (`at_risk`: whether an acceptance is news to the
    /// slot); tells whether the answer must be marked.
    #[inline(always)]
    fn settle(&self, source: &TokenSource, generation: Generation, at_risk: bool, verdict: Verdict) -> Ended {
        match verdict {
            Verdict::Accepted => {
                if at_risk {
                    source.accept(generation);
                }
                Ended::AsItCame
            }
            Verdict::GiveBack | Verdict::StepUp => Ended::AsItCame,
            // A verdict that sends again, where no copy was at hand: as a 401 without one.
            Verdict::Invalidate | Verdict::Renew | Verdict::RetryWithNonce => {
                source.invalidate(generation);
                Ended::AsItCame
            }
            Verdict::RejectedAfterRenewal => {
                source.invalidate(generation);
                Ended::Marked
            }
        }
    }

    /// Sends `request` (its credentials on) and judges the answer.
    ///
    /// An `async` block rather than an `async fn`: the block keeps its
    /// captures in place, where an `async fn` would hold its arguments
    /// twice (once as given, once moved into its body) and double the
    /// size of the future.
    #[allow(clippy::manual_async_fn)]
    #[inline(always)]
    fn send<'a>(
        &'a self,
        source: &'a TokenSource,
        decided: Decided,
        request: Request,
        extensions: &'a mut Extensions,
        next: Next<'a>,
    ) -> impl std::future::Future<Output = reqwest_middleware::Result<Response>> + Send + 'a {
        async move {
            let outcome = next.clone().run(request, extensions).await;
            let generation = Some(decided.generation);
            if self.accepted_at_once(source, &decided, &outcome) {
                return self.finish(outcome, generation);
            }
            // Out of the match before the await: the answer is not held across it.
            let rare = match self.after_send(source, decided, outcome, extensions, next) {
                AfterSend::Done(outcome) => return self.finish(outcome, generation),
                AfterSend::Rare(rare) => rare,
            };
            // A replay's answer came with another token: its step-up is the source's to see.
            self.finish(rare.await, generation)
        }
    }

    /// Whether `outcome`, the answer to a request sent with a bearer token
    /// as `decided` says, is [`Verdict::Accepted`] (then carried out: the
    /// common case, judged without moving the answer). A DPoP request's
    /// answer is judged by [`AuthMiddleware::after_send`], which keeps its
    /// nonce first.
    #[inline(always)]
    fn accepted_at_once(
        &self,
        source: &TokenSource,
        decided: &Decided,
        outcome: &reqwest_middleware::Result<Response>,
    ) -> bool {
        let (Ok(response), None) = (outcome, &decided.dpop) else {
            return false;
        };
        let sent = Sent { attempt: Attempt::default(), copy: decided.copy.is_some(), proof: None, accepted: false };
        match replay::judge(&sent, response.status(), response.headers()) {
            Verdict::Accepted => {
                self.settle(source, decided.generation, decided.at_risk, Verdict::Accepted);
                true
            }
            Verdict::GiveBack
            | Verdict::Invalidate
            | Verdict::Renew
            | Verdict::RetryWithNonce
            | Verdict::RejectedAfterRenewal
            | Verdict::StepUp => false,
        }
    }

    /// Judges `outcome`, the answer to a request sent as `decided` says:
    /// returned, or sent again (boxed, so that no answer is held across an
    /// await of the common path's future).
    #[inline(always)]
    fn after_send<'a>(
        &'a self,
        source: &'a TokenSource,
        decided: Decided,
        outcome: reqwest_middleware::Result<Response>,
        extensions: &'a mut Extensions,
        next: Next<'a>,
    ) -> AfterSend<'a> {
        let Decided { generation, at_risk, dpop, copy } = decided;
        let response = match outcome {
            Ok(response) => response,
            Err(error) => return AfterSend::Done(Err(error)),
        };
        if let Some((token, sent)) = &dpop {
            if let Some(key) = token.dpop() {
                key.observe(&sent.0, response.headers());
            }
        }
        let replay = self.replay_of(copy, &response);
        let sent = Sent {
            attempt: Attempt::default(),
            copy: replay.is_some(),
            proof: dpop.as_ref().map(|(_, sent)| &sent.1),
            accepted: false,
        };
        let verdict = replay::judge(&sent, response.status(), response.headers());
        source.judged(sent.attempt, verdict);
        match (verdict, replay) {
            (Verdict::Renew | Verdict::RetryWithNonce, Some(replay)) => {
                let token = dpop.map(|(token, _)| token);
                let again = Again { generation, token, verdict, replay, response };
                AfterSend::Rare(Box::pin(self.send_again(source, again, extensions, next)))
            }
            (verdict, _) => match self.settle(source, generation, at_risk, verdict) {
                Ended::AsItCame => AfterSend::Done(Ok(response)),
                Ended::Marked => AfterSend::Done(Ok(rejected_after_renewal(response))),
            },
        }
    }

    /// The request to send again after `response`, from the copy made
    /// before the send: `None` for an answer other than 401, a stream, a
    /// redirect, or an origin the credentials may not go to.
    fn replay_of(&self, copy: Option<ReplayCopy>, response: &Response) -> Option<Request> {
        if response.status() != StatusCode::UNAUTHORIZED {
            return None;
        }
        copy.and_then(|copy| copy.into_request(response)).filter(|replay| self.applies_to(replay))
    }

    /// Sends a request again as `again.verdict` says (with a renewed
    /// token, or with a DPoP nonce), as often as [`auth_core::publish::replay`]
    /// allows, and returns the last answer.
    async fn send_again(
        &self,
        source: &TokenSource,
        again: Again,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Again { mut generation, mut token, mut verdict, mut replay, mut response } = again;
        let mut attempt = Attempt::default();
        loop {
            if verdict == Verdict::Renew {
                token = match source.reject(generation).await {
                    Ok(Some(renewed)) => Some(renewed),
                    // The loop guard held the renewal back: a new token was refused already.
                    Ok(None) => return Ok(rejected_after_renewal(response)),
                    // No new token could be had: the caller gets the 401.
                    Err(_) => return Ok(response),
                };
            }
            // A nonce retry keeps the DPoP-bound token it was sent with.
            let Some(current) = token.clone() else {
                return Ok(response);
            };
            generation = current.generation();
            attempt = attempt.after(verdict);
            drop(response);
            let mut copy = if attempt.may_send_again() { ReplayCopy::before_send(&replay) } else { None };
            let proved = self.apply(&mut replay, Some(&current)).map_err(middleware_error)?;
            if let Some(copy) = &mut copy {
                copy.sent_to(replay.url());
            }
            let answer = next.clone().run(replay, extensions).await?;
            if let (Some(sent), Some(dpop)) = (&proved, current.dpop()) {
                dpop.observe(&sent.0, answer.headers());
            }
            let next_replay = self.replay_of(copy, &answer);
            let accepted = attempt.renewed() && source.accepted(generation);
            let sent =
                Sent { attempt, copy: next_replay.is_some(), proof: proved.as_ref().map(|sent| &sent.1), accepted };
            verdict = replay::judge(&sent, answer.status(), answer.headers());
            source.judged(attempt, verdict);
            match (verdict, next_replay) {
                (Verdict::Renew | Verdict::RetryWithNonce, Some(again)) => {
                    replay = again;
                    response = answer;
                }
                (verdict, _) => {
                    return Ok(match self.settle(source, generation, true, verdict) {
                        Ended::AsItCame => answer,
                        Ended::Marked => rejected_after_renewal(answer),
                    })
                }
            }
        }
    }
}

/// What comes after the answer to a request.
enum AfterSend<'a> {
    /// The outcome, to return.
    Done(reqwest_middleware::Result<Response>),
    /// A replay, to await.
    Rare(Sending<'a>),
}

/// How an answer that ends a request goes back.
enum Ended {
    /// As it came.
    AsItCame,
    /// Marked [`auth_core::RejectedAfterRenewal`].
    Marked,
}

/// A request to send again: the token it was sent with (its generation,
/// and the token itself when DPoP-bound), the verdict, the request and the
/// answer it got (returned if it is not sent again after all).
struct Again {
    generation: Generation,
    token: Option<Arc<AccessToken>>,
    verdict: Verdict,
    replay: Request,
    response: Response,
}

/// A DPoP proof as sent, with the URI it was made for (boxed: the
/// common path carries only a null pointer).
type Proved = Box<(http::Uri, auth_core::dpop::Proof)>;

/// The future of a request through the middleware.
type Sending<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = reqwest_middleware::Result<Response>> + Send + 'a>>;

/// What was decided before a request was sent.
struct Decided {
    /// The generation of the token sent.
    generation: Generation,
    /// Whether the token was at risk (an answer other than 401 accepts it).
    at_risk: bool,
    /// A DPoP-bound token and the proof sent with it.
    dpop: Option<(Arc<AccessToken>, Proved)>,
    /// The copy for a replay, if one was kept.
    copy: Option<ReplayCopy>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<'a, F>(
        _: fn(&'a AuthMiddleware, &'a TokenSource, Decided, Request, &'a mut Extensions, Next<'a>) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    fn judge_only_size<'a, F>(_: fn(&'a AuthMiddleware, &'a TokenSource, Generation, bool, Sending<'a>) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn the_futures_are_small() {
        // A request that kept no copy (a settled token): the future holds
        // the next middleware's and a few words, not the request.
        let size = judge_only_size(AuthMiddleware::judge_only);
        assert!(size <= 64, "judge_only future: {size} bytes");
        // A request that kept a copy. glibc serves blocks up to 1,032
        // bytes from its per-thread cache; a larger box takes the slow
        // path of `malloc` on every request.
        let size = future_size(AuthMiddleware::send);
        assert!(size <= 1032, "send future: {size} bytes");
    }
}
