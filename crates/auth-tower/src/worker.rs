//! The task that owns a token source's lifecycle: it carries out what the core asks (fetches, store operations, timers) and answers the handles.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use auth_core::driver::{TokenAnswer, Waiter, Waiters};
use auth_core::lifecycle::WithdrawReason;
use auth_core::store::{StoreAnswer, StoreError, StoreOpId, StoreRequest, StoreTimeouts};
use auth_core::telemetry::{Sending, Telemetry};
use auth_core::wire::request::{TokenCall, TokenKind};
use auth_core::{AccessToken, FetchId, FetchRequest, Generation, Lifecycle, TokenError, Unauthorized};
use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument as _, Span};

use crate::error::AuthError;
use crate::handoff::{now, Command, FetchFuture, Fetcher, Published, Reply, Revoked};
use crate::store::TokenStore;

pub(crate) struct InFlight {
    pub(crate) id: FetchId,
    pub(crate) started: Instant,
    pub(crate) future: FetchFuture,
}

pub(crate) type StoreAnswered = (StoreOpId, Result<StoreAnswer, StoreError>);

/// The task that owns the lifecycle.
pub(crate) struct Worker {
    pub(crate) lifecycle: Lifecycle,
    pub(crate) fetcher: Fetcher,
    pub(crate) fetch_timeout: Duration,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    pub(crate) published: Arc<Published>,
    pub(crate) waiters: Waiters<Caller>,
    pub(crate) fetch: Option<InFlight>,
    pub(crate) store: Option<Arc<dyn TokenStore>>,
    pub(crate) store_timeouts: StoreTimeouts,
    /// Store operations run as tasks of their own and answer here.
    pub(crate) store_answers: mpsc::UnboundedSender<StoreAnswered>,
    pub(crate) store_answered: mpsc::UnboundedReceiver<StoreAnswered>,
    /// Store operations started and not answered yet.
    pub(crate) store_pending: usize,
    /// Callers of `flush` waiting for `store_pending` to reach zero.
    pub(crate) flushes: Vec<oneshot::Sender<()>>,
    /// Where the token requests, store operations and the lifecycle's
    /// observations are recorded (spans, metrics).
    pub(crate) telemetry: Telemetry,
    /// The source whose token this one's are made from (a chained
    /// exchange), and its newest generation to follow.
    pub(crate) upstream: Option<Upstream>,
}

/// The source a chained exchange's subject comes from.
pub(crate) struct Upstream {
    pub(crate) source: crate::TokenSource,
    pub(crate) newest: tokio::sync::watch::Receiver<u64>,
}

/// What woke the worker.
pub(crate) enum Event {
    Command(Command),
    Fetched(Result<Response<Bytes>, TokenError>),
    Stored(StoreAnswered),
    Timeout,
    /// The upstream source has a new token.
    UpstreamChanged,
}

impl Worker {
    pub(crate) async fn run(mut self) {
        loop {
            let deadline = match self.guarded(|worker| {
                worker.carry_out();
                worker.published.slot.poll_timeout_with(&worker.lifecycle)
            }) {
                Ok(deadline) => deadline.map(tokio::time::Instant::from_std),
                Err(()) => return,
            };
            let event = tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => Event::Command(command),
                    // Every handle is gone: stop, dropping any fetch in flight.
                    None => break,
                },
                outcome = poll_fetch(&mut self.fetch) => Event::Fetched(outcome),
                Some(answered) = self.store_answered.recv() => Event::Stored(answered),
                () = sleep_until(deadline) => Event::Timeout,
                Some(()) = upstream_changed(&mut self.upstream) => Event::UpstreamChanged,
            };
            if self.guarded(|worker| worker.on(event)).is_err() {
                return;
            }
        }
        tracing::debug!(target: "auth_tower", "token source stopped: every handle was dropped");
    }

    /// Runs one step; a panic (a bug) stops the worker with its message
    /// kept, so that callers learn what happened rather than a false
    /// "runtime shut down".
    pub(crate) fn guarded<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> Result<T, ()> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self))).map_err(|panic| {
            let message = auth_core::driver::panic_message(&*panic);
            tracing::error!(target: "auth_tower", "token source worker failed: {message}");
            let _ = self.published.failure.set(message);
        })
    }

    pub(crate) fn on(&mut self, event: Event) {
        match event {
            Event::Command(command) => {
                self.published.handled.fetch_add(1, Ordering::Release);
                self.handle(command);
            }
            Event::Fetched(outcome) => {
                if let Some(fetch) = self.fetch.take() {
                    self.finish(fetch.id, fetch.started, outcome);
                }
            }
            Event::Stored((id, answer)) => {
                self.store_pending = self.store_pending.saturating_sub(1);
                if let Err(error) = &answer {
                    tracing::debug!(target: "auth_tower", op = id.get(), timeout = error.timeout, "token store operation failed: {error}");
                }
                self.lifecycle.handle_store(now(), SystemTime::now(), id, answer);
                // Operations the answer started are started, and the counters
                // published, before flushes are told.
                self.carry_out();
                if self.store_pending == 0 {
                    for flush in self.flushes.drain(..) {
                        let _ = flush.send(());
                    }
                }
            }
            Event::Timeout => self.published.slot.handle_timeout_with(&mut self.lifecycle, now()),
            Event::UpstreamChanged => {
                tracing::debug!(target: "auth_tower", "the token this source exchanges changed: renewing");
                self.lifecycle.handle_upstream_changed(now());
            }
        }
    }

    /// Publishes the lifecycle's counters for `stats()`: before any
    /// answer goes out, so that a caller who got one sees what led to it.
    pub(crate) fn publish_lifecycle_stats(&self) {
        self.published.counters.publish(self.lifecycle.stats());
    }

    /// Runs a store operation in a task of its own: waits for the store to
    /// get ready, then for the answer, each at most its timeout.
    pub(crate) fn run_store_op(&mut self, request: StoreRequest) {
        self.store_pending += 1;
        let answers = self.store_answers.clone();
        let Some(store) = self.store.clone() else {
            let _ = answers.send((request.id, Err(StoreError::new("no store is configured"))));
            return;
        };
        let key = self.lifecycle.config().cache_key().clone();
        let timeouts = self.store_timeouts;
        tracing::trace!(target: "auth_tower", op = request.id.get(), kind = request.op.kind(), "token store operation");
        let (operation, started) = (self.telemetry.store_operation(&request), std::time::Instant::now());
        let span = operation.span().clone();
        let task = async move {
            let answer = async {
                match tokio::time::timeout(timeouts.connect, store.connect()).await {
                    Ok(ready) => ready?,
                    Err(_) => return Err(StoreError::connect_timeout(timeouts.connect)),
                }
                match tokio::time::timeout(timeouts.operation, store.execute(&key, SystemTime::now(), &request.op))
                    .await
                {
                    Ok(answer) => answer,
                    Err(_) => Err(StoreError::timeout(timeouts.operation)),
                }
            };
            let answer = answer.await;
            operation.ended(&answer, started.elapsed());
            let _ = answers.send((request.id, answer));
        };
        tokio::spawn(task.instrument(span));
    }

    pub(crate) fn handle(&mut self, command: Command) {
        match command {
            Command::Want(reply, span) => self.want(reply, span),
            Command::Nudge => {
                let _ = self.lifecycle.handle_token_wanted(now());
            }
            Command::Revoke(reply, span) => self.revoke(reply, span),
            Command::Discard => self.lifecycle.handle_discard(now()),
            Command::StepUp(needed) => {
                if self.lifecycle.handle_step_up(now(), &needed) {
                    tracing::info!(target: "auth_tower", scopes = needed.join(" "), "the API wants more scopes: the next token asks for them");
                }
            }
            Command::Snapshot(reply) => {
                let _ = reply.send(self.lifecycle.snapshot(now()));
            }
            Command::Send(request, reply, span) => {
                let send = self.send_timed(request, self.telemetry.sending(span.clone()), None);
                tokio::spawn(
                    async move {
                        let _ = reply.send(send.await);
                    }
                    .instrument(span),
                );
            }
            Command::SignIn(response, sent_at, reply) => {
                let outcome = self.lifecycle.handle_sign_in(now(), SystemTime::now(), sent_at, &response);
                self.publish_lifecycle_stats();
                if let Ok(token) = &outcome {
                    tracing::info!(target: "auth_tower", generation = token.generation().get(), "signed in: the user's tokens are installed");
                }
                let _ = reply.send(outcome.map_err(AuthError::Token));
            }
            Command::Flush(reply) => {
                if self.store_pending == 0 {
                    let _ = reply.send(());
                } else {
                    self.flushes.push(reply);
                }
            }
            Command::Unauthorized(generation, caller) => {
                let (reply, span) = caller.map_or((None, None), |(reply, span)| (Some(Caller(reply)), Some(span)));
                let (outcome, waits) = self.waiters.unauthorized(
                    &mut self.lifecycle,
                    &self.published.slot,
                    &self.published.counters,
                    now(),
                    generation,
                    reply,
                );
                if let Some(span) = span {
                    self.telemetry.caller(span, waits);
                }
                if let Unauthorized::Suppressed { until } = outcome {
                    tracing::warn!(
                        target: "auth_tower",
                        generation = generation.get(),
                        retry_in_ms = until.saturating_duration_since(now()).as_millis() as u64,
                        "{}; not fetching another yet",
                        auth_core::RejectedAfterRenewal::HINT
                    );
                }
            }
        }
    }

    pub(crate) fn want(&mut self, reply: oneshot::Sender<Reply>, span: Span) {
        let (slot, counters) = (&self.published.slot, &self.published.counters);
        let waits = self.waiters.want(&mut self.lifecycle, slot, counters, now(), Caller(reply));
        self.telemetry.caller(span, waits);
    }

    pub(crate) fn finish(&mut self, id: FetchId, started: Instant, outcome: Result<Response<Bytes>, TokenError>) {
        let now = now();
        let elapsed_ms = now.saturating_duration_since(started).as_millis() as u64;
        match outcome {
            Ok(response) => {
                tracing::debug!(target: "auth_tower", fetch = id.get(), status = response.status().as_u16(), elapsed_ms, "token endpoint answered");
                self.lifecycle.handle_fetch_response(now, SystemTime::now(), id, &response);
            }
            Err(error) => self.lifecycle.handle_fetch_failed(now, id, error),
        }
    }

    /// Carries out every output of the lifecycle.
    pub(crate) fn carry_out(&mut self) {
        auth_core::driver::carry_out(self);
    }

    /// Forgets the tokens, then revokes them in a task of their own (the
    /// worker keeps serving commands meanwhile).
    pub(crate) fn revoke(&mut self, reply: oneshot::Sender<Result<Revoked, AuthError>>, span: Span) {
        let requests = match self.lifecycle.handle_revoke(now()) {
            Ok(requests) => requests,
            Err(error) => {
                let _ = reply.send(Err(AuthError::Config(error)));
                return;
            }
        };
        let config = Arc::clone(self.lifecycle.config());
        let revoked = Revoked {
            access_token: requests.iter().any(|r| r.kind() == TokenKind::AccessToken),
            refresh_token: requests.iter().any(|r| r.kind() == TokenKind::RefreshToken),
        };
        let sends: Vec<_> = requests
            .into_iter()
            .map(|mut revocation| {
                let send = self.send_timed(revocation.take_request(), self.telemetry.sending(span.clone()), None);
                (revocation, send)
            })
            .collect();
        tokio::spawn(async move {
            let outcome = async {
                for (revocation, send) in sends {
                    let response = send.await?;
                    revocation.parse_response(&config, response.status(), response.headers(), response.body())?;
                }
                tracing::info!(target: "auth_tower", access = revoked.access_token, refresh = revoked.refresh_token, "tokens revoked");
                Ok(revoked)
            };
            let _ = reply.send(outcome.await.map_err(AuthError::Revocation));
        }.instrument(span));
    }

    /// Sends a request to the token endpoint through the transport, with
    /// the fetch timeout counted from the first poll. Each attempt is made
    /// ready to send at its time (fresh assertions and DPoP proof), and a
    /// DPoP nonce demand is tried once more ([`TokenCall`]); `sending`
    /// readies each attempt (the trace context) and counts the retry. With
    /// an `upstream` source (a chained exchange's fetch), its token is
    /// awaited first: the request reads it as its subject.
    pub(crate) fn send_timed(
        &self,
        request: Request<Vec<u8>>,
        sending: Sending,
        upstream: Option<crate::TokenSource>,
    ) -> impl Future<Output = Result<Response<Bytes>, TokenError>> + Send + 'static {
        let (timeout, fetcher) = (self.fetch_timeout, Arc::clone(&self.fetcher));
        let mut call = TokenCall::new(request);
        // The first attempt starts here, in the worker (or, with an
        // `upstream` source to wait for, once its token is there); a retry
        // in the task.
        let first = match upstream {
            None => Some(ready(&mut call, &sending).map(|ready| fetcher(ready))),
            Some(_) => None,
        };
        let exchange = async move {
            let first = match first {
                Some(first) => first,
                None => {
                    if let Some(upstream) = upstream {
                        upstream.token().await.map_err(|error| TokenError::Supplied {
                            what: "the subject token (the inner token source)".to_owned(),
                            reason: error.to_string(),
                        })?;
                    }
                    ready(&mut call, &sending).map(|ready| fetcher(ready))
                }
            };
            let mut response = first?.await?;
            while call.retry(&response) {
                sending.nonce_retry();
                response = fetcher(ready(&mut call, &sending)?).await?;
            }
            Ok(response)
        };
        async move { tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| Err(TokenError::timeout(timeout))) }
    }

    pub(crate) fn start(&mut self, fetch: FetchRequest) {
        tracing::info!(target: "auth_tower", fetch = fetch.id.get(), reason = ?fetch.reason, grant = ?fetch.grant, "requesting an access token");
        // A task of its own: a transport that panics fails this fetch, not
        // the worker. Dropping the fetch (the worker stops) aborts it.
        let span = self.telemetry.token_request(&fetch);
        // A chained exchange's fetch needs the inner source's token first (it is the subject).
        let upstream = self.upstream.as_ref().map(|upstream| upstream.source.clone());
        let send = self.send_timed(fetch.request, self.telemetry.sending(span.clone()), upstream);
        let task = AbortOnDrop(tokio::spawn(send.instrument(span)));
        let future: FetchFuture = Box::pin(async move {
            task.await.unwrap_or_else(|error| {
                let what = if error.is_panic() {
                    auth_core::driver::panic_message(&*error.into_panic())
                } else {
                    error.to_string()
                };
                Err(TokenError::transport(format!("the token transport failed: {what}")))
            })
        });
        self.fetch = Some(InFlight { id: fetch.id, started: now(), future });
    }
}

impl auth_core::driver::Effects for Worker {
    fn lifecycle(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    fn before_output(&mut self) {
        self.publish_lifecycle_stats();
    }

    fn fetch(&mut self, fetch: FetchRequest) {
        self.start(fetch);
    }

    fn store(&mut self, request: StoreRequest) {
        self.run_store_op(request);
    }

    fn observed(&mut self, observation: auth_core::lifecycle::Observation) {
        self.telemetry.observed(&observation);
    }

    fn token_ready(&mut self, token: Arc<AccessToken>) {
        tracing::info!(
            target: "auth_tower",
            generation = token.generation().get(),
            lifetime_s = token.lifetime().as_secs(),
            lifetime_from_provider = token.lifetime_from_provider(),
            fetch_ms = now().saturating_duration_since(token.issued_at()).as_millis() as u64,
            "access token obtained"
        );
        self.waiters.ready(&self.published.slot, now(), &token);
        self.published.newest.send_replace(token.generation().get());
        self.telemetry.answered();
    }

    fn failed(&mut self, error: TokenError) {
        tracing::warn!(
            target: "auth_tower",
            kind = error.kind(),
            transient = error.is_transient(),
            code = error.code().map(|c| c.as_str().to_owned()),
            waiters = self.waiters.len(),
            "could not obtain a token: {error}"
        );
        self.waiters.failed(now(), &error);
        self.telemetry.answered();
    }

    fn withdrawn(&mut self, generation: Generation, reason: WithdrawReason) {
        tracing::debug!(target: "auth_tower", generation = generation.get(), ?reason, "token withdrawn");
        self.published.slot.withdraw(generation);
    }

    fn store_health(&mut self, error: Option<StoreError>) {
        self.telemetry.store_health(error.is_none());
        match error {
            Some(error) => tracing::warn!(
                target: "auth_tower",
                timeout = error.timeout,
                "{error}; fetching without the store until it answers again"
            ),
            None => tracing::info!(target: "auth_tower", "the token store answers again"),
        }
    }
}

/// The next attempt of `call`, ready to send now.
fn ready(call: &mut TokenCall, sending: &Sending) -> Result<Request<Vec<u8>>, TokenError> {
    let mut request = call.attempt(SystemTime::now())?;
    sending.prepare(&mut request);
    Ok(request)
}

/// A caller of the worker waiting for a token, answered through its
/// oneshot channel.
pub(crate) struct Caller(pub(crate) oneshot::Sender<Reply>);

impl Waiter for Caller {
    fn answer(self, answer: TokenAnswer) {
        let _ = self.0.send(answer.map_err(AuthError::Token));
    }
}

/// A spawned task that is aborted when its handle is dropped.
pub(crate) struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Resolves with the outcome of the fetch in flight; pending forever when
/// there is none.
pub(crate) async fn poll_fetch(fetch: &mut Option<InFlight>) -> Result<Response<Bytes>, TokenError> {
    match fetch {
        Some(fetch) => (&mut fetch.future).await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the upstream source has a token newer than the one seen
/// (`None` once it is gone); never without an upstream.
async fn upstream_changed(upstream: &mut Option<Upstream>) -> Option<()> {
    let Some(watching) = upstream.as_mut() else { return std::future::pending().await };
    if watching.newest.changed().await.is_ok() {
        return Some(());
    }
    *upstream = None;
    None
}
