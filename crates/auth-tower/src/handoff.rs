//! What a token source's handles and its worker share: the commands, the published slot and counters, and the future a waiting caller holds.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use auth_core::publish::slot::TokenSlot;
use auth_core::{AccessToken, Generation, StoredToken, TokenError};
use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::oneshot;

use crate::error::{AuthError, TowerFailure};

/// The current time, on tokio's clock (which tests can pause and advance).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub(crate) type Reply = Result<Option<Arc<AccessToken>>, AuthError>;

pub(crate) type FetchFuture = Pin<Box<dyn Future<Output = Result<Response<Bytes>, TokenError>> + Send>>;

pub(crate) type Fetcher = Arc<dyn Fn(Request<Vec<u8>>) -> FetchFuture + Send + Sync>;

pub(crate) enum Command {
    /// A caller needs a token; its span (the token request it waits for
    /// is linked to it).
    Want(oneshot::Sender<Reply>, tracing::Span),
    /// The API answered 401 to `generation`; the reply is the token to
    /// replay with, or `None` when the request must not be replayed (and
    /// the caller's span).
    Unauthorized(Generation, Option<(oneshot::Sender<Reply>, tracing::Span)>),
    /// A reader saw the renewal point pass.
    Nudge,
    /// Revoke the current tokens (RFC 7009) and forget them, in the
    /// revocation's span.
    Revoke(oneshot::Sender<Result<Revoked, AuthError>>, tracing::Span),
    /// Forget the current tokens, here and in the store.
    Discard,
    /// Report the tokens to save.
    Snapshot(oneshot::Sender<Option<StoredToken>>),
    /// Answer once no store operation is running.
    Flush(oneshot::Sender<()>),
    /// Send a token endpoint request (a sign-in's) through the transport,
    /// in the caller's span.
    Send(Request<Vec<u8>>, oneshot::Sender<Result<Response<Bytes>, TokenError>>, tracing::Span),
    /// The API refused a token for lacking these scopes.
    StepUp(Vec<String>),
    /// Install a sign-in's tokens: the answer to a request sent at the instant.
    SignIn(Response<Bytes>, Instant, oneshot::Sender<Result<Arc<AccessToken>, AuthError>>),
}

/// What [`TokenSource::revoke`](crate::TokenSource::revoke) revoked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revoked {
    /// An access token was revoked.
    pub access_token: bool,
    /// A refresh token was revoked.
    pub refresh_token: bool,
}

/// Counters shared by the handles and the worker.
pub(crate) type Counters = auth_core::driver::PublishedStats;

/// A snapshot of a token source's counters (the core's type).
pub use auth_core::Stats;

/// How much longer than the fetch timeout a caller waits for the worker
/// before it concludes that the worker's runtime is not being driven.
pub const WAIT_GRACE: Duration = Duration::from_secs(5);

/// What the worker publishes for the lock-free read path, and for callers
/// that wait.
pub(crate) struct Published {
    pub(crate) slot: Arc<TokenSlot>,
    pub(crate) counters: Counters,
    /// Commands the worker has taken up: a waiting caller that sees no
    /// change knows the worker's runtime is not running it.
    pub(crate) handled: AtomicU64,
    /// How long a caller waits for an answer: the fetch timeout and a grace.
    pub(crate) patience: Duration,
    /// Set when the worker stopped on a panic: what it said.
    pub(crate) failure: OnceLock<String>,
    /// The generation of the newest token, for sources made from this
    /// one's tokens (a chained exchange) to follow.
    pub(crate) newest: tokio::sync::watch::Sender<u64>,
}

impl Published {
    /// Why no answer will come from the worker.
    pub(crate) fn stopped(&self) -> AuthError {
        AuthError::stopped(self.failure.get().map(String::as_str))
    }
}

/// The answer of the worker to a caller that waits: at most the fetch
/// timeout and [`WAIT_GRACE`], then an error that says why no answer came.
#[must_use = "futures do nothing unless polled"]
pub(crate) struct TokenFuture(Answer);

pub(crate) enum Answer {
    Waiting(Box<Waiting>),
    Failed(Box<AuthError>),
    Done,
}

impl std::fmt::Debug for TokenFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFuture").finish_non_exhaustive()
    }
}

/// A caller's wait, boxed: waiting is the cold path.
pub(crate) struct Waiting {
    pub(crate) receiver: oneshot::Receiver<Reply>,
    pub(crate) published: Arc<Published>,
    /// `handled` when the command was sent.
    pub(crate) seen: u64,
    /// The answer is a token to replay a request with: counted.
    pub(crate) replay: bool,
    /// Started on the first pending poll, when the caller runs in tokio.
    pub(crate) deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TokenFuture {
    /// A future that answers `error` at once.
    pub(crate) fn failed(error: AuthError) -> Self {
        Self(Answer::Failed(Box::new(error)))
    }

    /// The answer to a command just sent: `seen` is `handled` when it was
    /// sent; `replay` counts a token answered as a replay.
    pub(crate) fn waiting(
        receiver: oneshot::Receiver<Reply>,
        published: Arc<Published>,
        seen: u64,
        replay: bool,
    ) -> Self {
        Self(Answer::Waiting(Box::new(Waiting { receiver, published, seen, replay, deadline: None })))
    }

    /// A future that answers [`AuthError::Stopped`] at once.
    pub(crate) fn stopped() -> Self {
        Self::failed(AuthError::Stopped)
    }
}

impl Waiting {
    /// The error for a caller whose patience ran out.
    pub(crate) fn expired(&self) -> AuthError {
        let waited = self.published.patience;
        if self.published.handled.load(Ordering::Acquire) == self.seen {
            AuthError::Driver(TowerFailure::NotDriven { waited })
        } else {
            AuthError::Token(TokenError::timeout(waited))
        }
    }
}

impl Future for TokenFuture {
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        let waiting = match &mut self.0 {
            Answer::Waiting(waiting) => waiting,
            Answer::Failed(_) | Answer::Done => {
                let Answer::Failed(error) = std::mem::replace(&mut self.0, Answer::Done) else {
                    return Poll::Ready(Err(AuthError::Stopped));
                };
                return Poll::Ready(Err(*error));
            }
        };
        if let Poll::Ready(reply) = Pin::new(&mut waiting.receiver).poll(cx) {
            let reply = reply.unwrap_or_else(|_| Err(waiting.published.stopped()));
            if let (Ok(Some(_)), true) = (&reply, waiting.replay) {
                waiting.published.counters.add_replay();
            }
            return Poll::Ready(reply);
        }
        if waiting.deadline.is_none() && tokio::runtime::Handle::try_current().is_ok() {
            waiting.deadline = Some(Box::pin(tokio::time::sleep(waiting.published.patience)));
        }
        if let Some(deadline) = waiting.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(waiting.expired()));
            }
        }
        Poll::Pending
    }
}
