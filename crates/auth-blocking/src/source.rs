//! The thread-safe token source: one background thread drives the
//! `auth-core` lifecycle; any number of threads read the current token
//! without a lock and wait on the single fetch when there is none.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use auth_core::driver::{SourceOptions, TokenAnswer, Waiter, Waiters};
use auth_core::lifecycle::WithdrawReason;
use auth_core::publish::slot::TokenSlot;
use auth_core::store::{StoreError, StoreRequest};
use auth_core::telemetry::{Sending, Telemetry};
use auth_core::wire::request::TokenKind;
use auth_core::{
    AccessToken, FetchRequest, Generation, Lifecycle, SourceConfig, StoredToken, TokenError, Unauthorized,
};
use tracing::Span;

use crate::error::Error;
use crate::store::{BlockingTokenStore, StoreRunner};
use crate::transport::BlockingTransport;

type Reply = Result<Option<Arc<AccessToken>>, Error>;

enum Command {
    /// A caller needs a token; its span (the token request it waits for
    /// is linked to it).
    Want(mpsc::SyncSender<Reply>, Span),
    Unauthorized(Generation, Option<(mpsc::SyncSender<Reply>, Span)>),
    Nudge,
    /// Revoke, in the revocation's span.
    Revoke(mpsc::SyncSender<Result<Revoked, Error>>, Span),
    Snapshot(mpsc::SyncSender<Option<StoredToken>>),
    /// Forget the current tokens, here and in the store.
    Discard,
    /// The API refused a token for lacking these scopes.
    StepUp(Vec<String>),
    /// Answered once every earlier command was handled (store operations
    /// run on the worker thread, each bounded by the store timeout).
    Flush(mpsc::SyncSender<()>),
}

/// What [`BlockingTokenSource::revoke`] revoked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revoked {
    /// An access token was revoked.
    pub access_token: bool,
    /// A refresh token was revoked.
    pub refresh_token: bool,
}

/// A snapshot of a token source's counters (the core's type).
pub use auth_core::Stats;

/// The counters the handles and the worker thread share.
type Counters = auth_core::driver::PublishedStats;

struct Published {
    slot: TokenSlot,
    counters: Counters,
    /// Set when the worker thread stopped on a panic: what it said.
    failure: OnceLock<String>,
}

impl Published {
    /// Why no answer will come from the worker.
    fn stopped(&self) -> Error {
        Error::stopped(self.failure.get().map(String::as_str))
    }
}

struct Inner {
    /// `None` only while dropping.
    commands: Option<mpsc::Sender<Command>>,
    published: Arc<Published>,
    config: Arc<SourceConfig>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    /// The last handle is gone: close the channel, so the worker thread
    /// ends (after the fetch in flight, if any), and wait for it.
    fn drop(&mut self) {
        drop(self.commands.take());
        let worker = self.worker.lock().map(|mut w| w.take()).unwrap_or(None);
        if let Some(worker) = worker {
            if worker.thread().id() != std::thread::current().id() {
                let _ = worker.join();
            }
        }
    }
}

/// A token source for synchronous programs: `Send + Sync`, cheap to clone,
/// shared by every thread that calls the API.
///
/// A background thread owns the lifecycle: it fetches the first token when
/// asked, renews it ahead of expiry while callers keep using the old one,
/// backs off on failures and reacts to 401s. The thread ends when the last
/// handle is dropped (the drop waits for a fetch in flight, bounded by the
/// transport's timeout). No async runtime is involved.
#[derive(Clone)]
pub struct BlockingTokenSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for BlockingTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingTokenSource")
            .field("cache_key", self.inner.config.cache_key())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl BlockingTokenSource {
    /// Starts a token source for `config` sending token requests through
    /// `transport` (e.g. [`UreqTransport::for_tokens`](crate::UreqTransport::for_tokens),
    /// or a closure in tests).
    pub fn new(config: SourceConfig, transport: impl BlockingTransport) -> Result<Self, Error> {
        Self::with_seed(config, transport, auth_core::driver::random_seed())
    }

    /// Like [`BlockingTokenSource::new`] with a fixed jitter seed (tests).
    pub fn with_seed(config: SourceConfig, transport: impl BlockingTransport, seed: u64) -> Result<Self, Error> {
        Self::builder(config, transport).seed(seed).build()
    }

    /// A token source with options (a shared store, a seed).
    pub fn builder(config: SourceConfig, transport: impl BlockingTransport) -> BlockingSourceBuilder {
        BlockingSourceBuilder { config, transport: Box::new(transport), options: SourceOptions::default() }
    }

    fn start(builder: BlockingSourceBuilder) -> Result<Self, Error> {
        let config = Arc::new(builder.config);
        let (commands, receiver) = mpsc::channel();
        let published =
            Arc::new(Published { slot: TokenSlot::new(), counters: Counters::default(), failure: OnceLock::new() });
        let longest = builder.options.store.as_ref().and_then(|(store, _)| store.longest_answer());
        let timeouts = builder.options.store_timeouts.allowing(longest);
        let started = builder.options.start(&config, Instant::now(), &published.counters);
        let store =
            match started.store {
                Some(store) => Some(StoreRunner::start(store, config.cache_key().clone(), timeouts).map_err(|e| {
                    Error::Token(TokenError::transport(format!("could not start the store thread: {e}")))
                })?),
                None => None,
            };
        let worker = Worker {
            lifecycle: started.lifecycle,
            transport: builder.transport,
            published: Arc::clone(&published),
            waiters: started.waiters,
            store,
            telemetry: started.telemetry,
        };
        // The thread traces to the subscriber the source was built under
        // (a scoped default included), as the caller's own code does.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let handle = std::thread::Builder::new()
            .name("auth-token-source".to_owned())
            .spawn(move || tracing::dispatcher::with_default(&dispatch, || worker.run(receiver)))
            .map_err(|e| Error::Token(TokenError::transport(format!("could not start the token thread: {e}"))))?;
        Ok(Self {
            inner: Arc::new(Inner { commands: Some(commands), published, config, worker: Mutex::new(Some(handle)) }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SourceConfig {
        &self.inner.config
    }

    /// A token to use now: the cached one when usable (an atomic load, no
    /// lock), otherwise the result of the single shared fetch (blocking).
    pub fn token(&self) -> Result<Arc<AccessToken>, Error> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Command::Want(reply, Span::current()))?;
        match answer.recv() {
            Ok(Ok(Some(token))) => Ok(token),
            Ok(Err(error)) => Err(error),
            Ok(Ok(None)) | Err(_) => Err(self.inner.published.stopped()),
        }
    }

    /// The cached token if it may be sent now.
    pub fn cached(&self) -> Option<Arc<AccessToken>> {
        let published = &self.inner.published;
        let token = published.slot.load(Instant::now)?;
        if token.renewal_due() {
            let _ = self.send(Command::Nudge);
        }
        published.counters.add_cache_hits(1);
        Some(token.to_arc())
    }

    /// Whether a request sent now with `token` (from
    /// [`BlockingTokenSource::token`]) should keep a copy of its body to
    /// replay after a 401: the token is new, past its renewal point, of an
    /// assumed lifetime or DPoP-bound (see [`auth_core::publish::slot`]).
    pub fn at_risk(&self, token: &AccessToken) -> bool {
        self.inner.published.slot.at_risk(token)
    }

    /// Reports that the API accepted a request carrying the token of
    /// `generation` (it answered something other than 401): the token is
    /// settled, and a later 401 to it is a revocation, renewed at once.
    pub fn accept(&self, generation: Generation) {
        self.inner.published.slot.accept(generation);
    }

    /// Whether the API has accepted a request carrying the token of
    /// `generation` (see [`BlockingTokenSource::accept`]).
    pub fn accepted(&self, generation: Generation) -> bool {
        self.inner.published.slot.accepted(generation)
    }

    /// Tells the source what came of an answer to a request that carried
    /// its token: `verdict` ([`judge`](auth_core::publish::replay::judge)'s)
    /// for a request sent as `attempt`. With metrics (feature
    /// `opentelemetry`) it counts DPoP nonce retries to the API and the
    /// last answers to replayed requests; otherwise it does nothing. For
    /// adapters that carry out the replay rules themselves.
    #[inline]
    pub fn judged(&self, attempt: auth_core::publish::replay::Attempt, verdict: auth_core::publish::replay::Verdict) {
        self.inner.published.counters.judged(attempt, verdict);
    }

    /// Reports that the API answered 401 to the token of `generation`; it
    /// is invalidated once if still current, and a new one is fetched.
    pub fn invalidate(&self, generation: Generation) {
        self.unpublish(generation);
        let _ = self.send(Command::Unauthorized(generation, None));
    }

    /// Tells the source that the API refused its token asking for `asked`
    /// (the [`StepUp`](auth_core::resource::step_up::StepUp) the client
    /// marks such an answer with, and passes here itself): a source whose
    /// configuration allows the scopes named asks for them from its next
    /// token on, once; any other ignores it.
    /// `generation` is the refused token's: readers stop using it at once.
    pub fn step_up(&self, asked: &auth_core::resource::step_up::StepUp, generation: Generation) {
        if let auth_core::resource::step_up::StepUp::Scopes { needed, .. } = asked {
            if self.config().allows_step_up(needed) {
                // The worker publishes it again if the source keeps it.
                self.unpublish(generation);
                let _ = self.send(Command::StepUp(needed.clone()));
            }
        }
    }

    /// Reports a 401 for `generation` and blocks until the token to replay
    /// the request with is known. `Ok(None)`: do not replay (the fetch-loop
    /// guard kept the token); return the 401.
    pub fn reject(&self, generation: Generation) -> Result<Option<Arc<AccessToken>>, Error> {
        self.unpublish(generation);
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Command::Unauthorized(generation, Some((reply, Span::current()))))?;
        let renewed = answer.recv().unwrap_or_else(|_| Err(self.inner.published.stopped()));
        if let Ok(Some(_)) = &renewed {
            self.inner.published.counters.add_replay();
        }
        renewed
    }

    /// Revokes the current tokens at the RFC 7009 endpoint and forgets them.
    pub fn revoke(&self) -> Result<Revoked, Error> {
        let span = auth_core::telemetry::spans::revocation();
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Command::Revoke(reply, span.clone()))?;
        let revoked = answer.recv().unwrap_or_else(|_| Err(self.inner.published.stopped()));
        auth_core::telemetry::spans::ended(&span, revoked.is_ok());
        revoked
    }

    /// Forgets the current tokens without revoking them: here, and in the
    /// shared store (the record that still holds them is deleted, so that
    /// no peer adopts them). Returns once the store has answered. A
    /// sign-out where the provider has no revocation endpoint;
    /// [`BlockingTokenSource::revoke`] forgets them too.
    pub fn discard(&self) {
        if self.send(Command::Discard).is_ok() {
            self.flush();
        }
    }

    /// The current access token (if usable) and refresh token, to save
    /// and restore later with [`BlockingSourceBuilder::restore`].
    pub fn snapshot(&self) -> Option<StoredToken> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Command::Snapshot(reply)).ok()?;
        answer.recv().ok().flatten()
    }

    /// Waits until the store operations started so far have finished
    /// (each is bounded by the store timeout): a program about to exit
    /// calls it so that the token it fetched reaches the store. Without a
    /// store it returns at once.
    pub fn flush(&self) {
        let (reply, answer) = mpsc::sync_channel(1);
        if self.send(Command::Flush(reply)).is_ok() {
            let _ = answer.recv();
        }
    }

    /// Counters since the source was created.
    pub fn stats(&self) -> Stats {
        self.inner.published.counters.snapshot()
    }

    fn send(&self, command: Command) -> Result<(), Error> {
        match &self.inner.commands {
            Some(commands) => commands.send(command).map_err(|_| self.inner.published.stopped()),
            None => Err(Error::Stopped),
        }
    }

    fn unpublish(&self, generation: Generation) {
        self.inner.published.slot.withdraw(generation);
    }
}

/// Default timeout of one store operation.
pub use auth_core::store::DEFAULT_STORE_TIMEOUT;

/// Default wait for the store to get ready (connect) before an operation.
pub use auth_core::store::DEFAULT_STORE_CONNECT_TIMEOUT;

/// Options of a [`BlockingTokenSource`]; see [`BlockingTokenSource::builder`].
#[must_use = "call build() to start the token source"]
pub struct BlockingSourceBuilder {
    config: SourceConfig,
    transport: Box<dyn BlockingTransport>,
    options: SourceOptions<Arc<dyn BlockingTokenStore>>,
}

impl BlockingSourceBuilder {
    auth_core::source_builder_methods!(options, BlockingTokenStore);

    /// Starts the token source's thread.
    pub fn build(self) -> Result<BlockingTokenSource, Error> {
        BlockingTokenSource::start(self)
    }
}

struct Worker {
    lifecycle: Lifecycle,
    transport: Box<dyn BlockingTransport>,
    published: Arc<Published>,
    waiters: Waiters<Caller>,
    store: Option<StoreRunner>,
    /// Where the token requests, store operations and the lifecycle's
    /// observations are recorded (spans, metrics).
    telemetry: Telemetry,
}

impl Worker {
    fn run(mut self, commands: mpsc::Receiver<Command>) {
        loop {
            let Ok(deadline) = self.guarded(|worker| {
                worker.carry_out();
                worker.published.slot.poll_timeout_with(&worker.lifecycle)
            }) else {
                return;
            };
            let command = match deadline {
                Some(deadline) => commands.recv_timeout(deadline.saturating_duration_since(Instant::now())),
                None => commands.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let step = match command {
                Ok(command) => self.guarded(|worker| worker.handle(command)),
                Err(RecvTimeoutError::Timeout) => self
                    .guarded(|worker| worker.published.slot.handle_timeout_with(&mut worker.lifecycle, Instant::now())),
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if step.is_err() {
                return;
            }
        }
        tracing::debug!(target: "auth_blocking", "token source stopped: every handle was dropped");
    }

    /// Runs one step; a panic (a bug) stops the thread with its message
    /// kept for the callers, whose waits end at once.
    fn guarded<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> Result<T, ()> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self))).map_err(|panic| {
            let message = auth_core::driver::panic_message(&*panic);
            tracing::error!(target: "auth_blocking", "token source thread failed: {message}");
            let _ = self.published.failure.set(message);
        })
    }

    /// Sends a token or revocation request in its span: each attempt made
    /// ready to send at its time (fresh assertions and DPoP proof, the
    /// trace context), a DPoP nonce demand tried once more
    /// ([`auth_core::wire::request::TokenCall`]).
    fn send(&self, request: http::Request<Vec<u8>>, sending: &Sending) -> Result<http::Response<Vec<u8>>, TokenError> {
        let _in = sending.span().enter();
        let mut call = auth_core::wire::request::TokenCall::new(request);
        loop {
            let mut ready = call.attempt(SystemTime::now())?;
            sending.prepare(&mut ready);
            let response = self.send_once(ready)?;
            if !call.retry(&response) {
                return Ok(response);
            }
            sending.nonce_retry();
        }
    }

    /// Sends a request through the transport; a transport that panics
    /// fails the request, not the thread.
    fn send_once(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, TokenError> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.transport.send(request))) {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(error.into_token_error()),
            Err(panic) => Err(TokenError::transport(format!(
                "the token transport failed: {}",
                auth_core::driver::panic_message(&*panic)
            ))),
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Want(reply, span) => self.want(reply, span),
            Command::Nudge => {
                let _ = self.lifecycle.handle_token_wanted(Instant::now());
            }
            Command::Unauthorized(generation, caller) => {
                let (reply, span) = caller.map_or((None, None), |(reply, span)| (Some(Caller(reply)), Some(span)));
                let (outcome, waits) = self.waiters.unauthorized(
                    &mut self.lifecycle,
                    &self.published.slot,
                    &self.published.counters,
                    Instant::now(),
                    generation,
                    reply,
                );
                if let Some(span) = span {
                    self.telemetry.caller(span, waits);
                }
                if let Unauthorized::Suppressed { .. } = outcome {
                    tracing::warn!(
                        target: "auth_blocking",
                        generation = generation.get(),
                        "{}; not fetching another yet",
                        auth_core::RejectedAfterRenewal::HINT
                    );
                }
            }
            Command::Revoke(reply, span) => {
                let _ = reply.send(self.revoke(&span));
            }
            Command::Snapshot(reply) => {
                let _ = reply.send(self.lifecycle.snapshot(Instant::now()));
            }
            Command::Discard => self.lifecycle.handle_discard(Instant::now()),
            Command::StepUp(needed) => {
                if self.lifecycle.handle_step_up(Instant::now(), &needed) {
                    tracing::info!(target: "auth_blocking", scopes = needed.join(" "), "the API wants more scopes: the next token asks for them");
                }
            }
            Command::Flush(reply) => {
                self.carry_out();
                let _ = reply.send(());
            }
        }
    }

    fn want(&mut self, reply: mpsc::SyncSender<Reply>, span: Span) {
        let (slot, counters) = (&self.published.slot, &self.published.counters);
        let waits = self.waiters.want(&mut self.lifecycle, slot, counters, Instant::now(), Caller(reply));
        self.telemetry.caller(span, waits);
    }

    fn carry_out(&mut self) {
        auth_core::driver::carry_out(self);
    }

    /// Publishes the lifecycle's counters for `stats()`.
    fn publish_lifecycle_stats(&self) {
        self.published.counters.publish(self.lifecycle.stats());
    }

    fn revoke(&mut self, span: &Span) -> Result<Revoked, Error> {
        let requests = self.lifecycle.handle_revoke(Instant::now())?;
        self.carry_out();
        let config = Arc::clone(self.lifecycle.config());
        let revoked = Revoked {
            access_token: requests.iter().any(|r| r.kind() == TokenKind::AccessToken),
            refresh_token: requests.iter().any(|r| r.kind() == TokenKind::RefreshToken),
        };
        for mut revocation in requests {
            let sending = self.telemetry.sending(span.clone());
            let response = self.send(revocation.take_request(), &sending).map_err(Error::Revocation)?;
            revocation
                .parse_response(&config, response.status(), response.headers(), response.body())
                .map_err(Error::Revocation)?;
        }
        Ok(revoked)
    }
}

/// A caller of the worker thread waiting for a token, answered through
/// its channel.
struct Caller(mpsc::SyncSender<Reply>);

impl Waiter for Caller {
    fn answer(self, answer: TokenAnswer) {
        let _ = self.0.send(answer.map_err(Error::Token));
    }
}

impl auth_core::driver::Effects for Worker {
    fn lifecycle(&mut self) -> &mut Lifecycle {
        &mut self.lifecycle
    }

    fn before_output(&mut self) {
        // Before any answer goes out: a caller who got one sees what led to it.
        self.publish_lifecycle_stats();
    }

    fn fetch(&mut self, fetch: FetchRequest) {
        tracing::info!(target: "auth_blocking", fetch = fetch.id.get(), reason = ?fetch.reason, grant = ?fetch.grant, "requesting an access token");
        let span = self.telemetry.token_request(&fetch);
        let sending = self.telemetry.sending(span);
        match self.send(fetch.request, &sending) {
            Ok(response) => {
                self.lifecycle.handle_fetch_response(Instant::now(), SystemTime::now(), fetch.id, &response)
            }
            Err(error) => self.lifecycle.handle_fetch_failed(Instant::now(), fetch.id, error),
        }
    }

    fn store(&mut self, request: StoreRequest) {
        let id = request.id;
        let (operation, started) = (self.telemetry.store_operation(&request), Instant::now());
        let answer = operation.span().in_scope(|| match &self.store {
            Some(store) => store.run(request),
            None => Err(StoreError::new("no store is configured")),
        });
        operation.ended(&answer, started.elapsed());
        if let Err(error) = &answer {
            tracing::debug!(target: "auth_blocking", op = id.get(), "token store operation failed: {error}");
        }
        self.lifecycle.handle_store(Instant::now(), SystemTime::now(), id, answer);
    }

    fn token_ready(&mut self, token: Arc<AccessToken>) {
        tracing::info!(target: "auth_blocking", generation = token.generation().get(), lifetime_s = token.lifetime().as_secs(), "access token obtained");
        self.waiters.ready(&self.published.slot, Instant::now(), &token);
        self.telemetry.answered();
    }

    fn failed(&mut self, error: TokenError) {
        tracing::warn!(target: "auth_blocking", kind = error.kind(), transient = error.is_transient(), "could not obtain a token: {error}");
        self.waiters.failed(Instant::now(), &error);
        self.telemetry.answered();
    }

    fn withdrawn(&mut self, generation: Generation, _reason: WithdrawReason) {
        self.published.slot.withdraw(generation);
    }

    fn observed(&mut self, observation: auth_core::lifecycle::Observation) {
        self.telemetry.observed(&observation);
    }

    fn store_health(&mut self, error: Option<StoreError>) {
        self.telemetry.store_health(error.is_none());
        match error {
            Some(error) => tracing::warn!(
                target: "auth_blocking",
                timeout = error.timeout,
                "{error}; fetching without the store until it answers again"
            ),
            None => tracing::info!(target: "auth_blocking", "the token store answers again"),
        }
    }
}
