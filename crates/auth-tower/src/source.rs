//! The async token source: one worker task per source drives the
//! `auth-core` lifecycle on tokio; any number of cheap handles read the
//! current token without a lock and wait on the single fetch when there is
//! none.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use auth_core::driver::SourceOptions;
use auth_core::publish::slot::{ReadToken, SlotReader, TokenSlot};
use auth_core::{AccessToken, Generation, SourceConfig, StoredToken};
use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::{mpsc, oneshot};
use tower::Service;

use crate::error::{AuthError, BoxError, TowerFailure};
use crate::handoff::{now, Command, Counters, Fetcher, Published, Reply, TokenFuture};
pub use crate::handoff::{Revoked, Stats, WAIT_GRACE};
use crate::registry::Registry;
use crate::store::TokenStore;
use crate::transport::send;
use crate::worker::Worker;

/// Default timeout of one token request, connection included.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Default timeout of one store operation: past it the source fetches on
/// its own, so a slow store never makes a request wait longer.
pub use auth_core::store::DEFAULT_STORE_TIMEOUT;

/// Default wait for the store to get ready (connect) before an operation.
pub use auth_core::store::DEFAULT_STORE_CONNECT_TIMEOUT;

struct Shared {
    id: SourceId,
    commands: mpsc::UnboundedSender<Command>,
    published: Arc<Published>,
    config: Arc<SourceConfig>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.id.unregister();
    }
}

/// The number of a token source, unique in the process: a request future
/// keeps it (rather than a handle) to reach its source after a 401, so the
/// hot path writes no shared memory, not even a reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SourceId(NonZeroU64);

/// The sources alive, by number (the registry never keeps a source, or
/// its worker, alive).
static SOURCES: Registry<Shared> = Registry::new();

impl SourceId {
    /// Stands for "no source" where a number is needed anyway (a request
    /// sent without a token). Never registered.
    pub(crate) const NONE: Self = Self(NonZeroU64::MAX);

    fn next() -> Self {
        Self(SOURCES.next_id())
    }

    fn register(self, shared: &Arc<Shared>) {
        SOURCES.register(self.0, shared);
    }

    fn unregister(self) {
        SOURCES.unregister(self.0);
    }

    /// The source, if it is still alive.
    pub(crate) fn source(self) -> Option<TokenSource> {
        SOURCES.get(self.0).map(|shared| TokenSource { shared })
    }
}

/// A shared, cheaply clonable source of access tokens.
///
/// Create one per token configuration and share it (clone the handle) with
/// every client and task that calls the API. It owns a worker task that
/// fetches tokens, renews them ahead of expiry in the background, backs off
/// on failures and reacts to 401s; dropping the last handle stops the
/// worker and every timer with it.
///
/// Reading a valid token is lock-free: an atomic load, no mutex, no
/// allocation, no await. Callers wait only when there is no usable token,
/// and then all of them wait on the same single fetch.
#[derive(Clone)]
pub struct TokenSource {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("cache_key", self.shared.config.cache_key())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Options of a [`TokenSource`]; see [`TokenSource::builder`].
#[must_use = "call build() to start the token source"]
pub struct TokenSourceBuilder {
    config: SourceConfig,
    fetcher: Fetcher,
    fetch_timeout: Duration,
    options: SourceOptions<Arc<dyn TokenStore>>,
    /// The source whose token is this one's subject (a chained exchange).
    pub(crate) upstream: Option<TokenSource>,
}

impl TokenSourceBuilder {
    auth_core::source_builder_methods!(options, TokenStore);

    /// Timeout of one token request, connection included. Default 30 s.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Starts the worker on the current tokio runtime.
    pub fn build(self) -> Result<TokenSource, AuthError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AuthError::Driver(TowerFailure::NoRuntime))?;
        let config = Arc::new(self.config);
        let (commands, receiver) = mpsc::unbounded_channel();
        // With a store, a caller may also wait for a peer's fetch and for
        // a few store operations before the local fetch.
        let longest = self.options.store.as_ref().and_then(|(store, _)| store.longest_answer());
        let store_timeouts = self.options.store_timeouts.allowing(longest);
        let store_wait = self.options.store.as_ref().map_or(Duration::ZERO, |(_, store)| {
            store.peer_wait.saturating_add(store_timeouts.longest_wait().saturating_mul(3))
        });
        let published = Arc::new(Published {
            slot: Arc::new(TokenSlot::new()),
            counters: Counters::default(),
            handled: AtomicU64::new(0),
            patience: self.fetch_timeout.saturating_add(store_wait).saturating_add(WAIT_GRACE),
            failure: OnceLock::new(),
            newest: tokio::sync::watch::Sender::new(0),
        });
        let started = self.options.start(&config, now(), &published.counters);
        let (store_answers, store_answered) = mpsc::unbounded_channel();
        let worker = Worker {
            lifecycle: started.lifecycle,
            fetcher: self.fetcher,
            fetch_timeout: self.fetch_timeout,
            commands: receiver,
            published: Arc::clone(&published),
            waiters: started.waiters,
            fetch: None,
            store: started.store,
            store_timeouts,
            store_answers,
            store_answered,
            store_pending: 0,
            flushes: Vec::new(),
            telemetry: started.telemetry,
            upstream: self.upstream.map(|source| {
                let newest = source.shared.published.newest.subscribe();
                crate::worker::Upstream { source, newest }
            }),
        };
        runtime.spawn(worker.run());
        let id = SourceId::next();
        let shared = Arc::new(Shared { id, commands, published, config });
        id.register(&shared);
        Ok(TokenSource { shared })
    }
}

impl TokenSource {
    /// A token source for `config` that sends token requests through
    /// `transport`, with default options. Must be called inside a tokio
    /// runtime.
    ///
    /// The transport is any `tower::Service` that takes the core's
    /// `http::Request<Vec<u8>>` and answers an `http::Response` with any
    /// body: a `service_fn` in tests, a hyper-util client behind a
    /// `map_request`, or `auth-reqwest`'s reqwest transport. A tower
    /// service (rather than a transport trait of our own) was chosen because
    /// every HTTP client in the tower ecosystem already is one, and
    /// timeouts, retries or tracing layers compose onto it unchanged.
    pub fn new<T, B>(config: SourceConfig, transport: T) -> Result<Self, AuthError>
    where
        T: Service<Request<Vec<u8>>, Response = Response<B>> + Clone + Send + 'static,
        T::Future: Send,
        T::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        Self::builder(config, transport).build()
    }

    /// Like [`TokenSource::new`], with options.
    pub fn builder<T, B>(config: SourceConfig, transport: T) -> TokenSourceBuilder
    where
        T: Service<Request<Vec<u8>>, Response = Response<B>> + Clone + Send + 'static,
        T::Future: Send,
        T::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let limit = config.max_body_bytes();
        // A lock, so that the fetcher is `Sync` for any transport; taken
        // only to clone the transport, once per token endpoint request.
        let transport = std::sync::Mutex::new(transport);
        let fetcher: Fetcher = Arc::new(move |request| {
            let transport = transport.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            Box::pin(send(transport, request, limit))
        });
        TokenSourceBuilder {
            config,
            fetcher,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            options: SourceOptions::default(),
            upstream: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SourceConfig {
        &self.shared.config
    }

    /// A token to use now: the cached one when it is usable (no wait), or
    /// the result of the single shared fetch. Cancel-safe: dropping the
    /// future does not cancel the fetch for other callers.
    pub async fn token(&self) -> Result<Arc<AccessToken>, AuthError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        match self.want().await {
            Ok(Some(token)) => Ok(token),
            Ok(None) => Err(AuthError::Stopped),
            Err(e) => Err(e),
        }
    }

    /// The cached token if it may be sent now, counting a cache hit.
    pub fn cached(&self) -> Option<Arc<AccessToken>> {
        let token = self.shared.published.slot.load(now)?;
        self.count_read(token.renewal_due());
        Some(token.to_arc())
    }

    /// Whether a request sent now with `token` (from
    /// [`TokenSource::cached`]) should keep a copy of itself to replay
    /// after a 401: the token is new, past its renewal point, of an
    /// assumed lifetime or DPoP-bound (see [`auth_core::publish::slot`]).
    pub fn at_risk(&self, token: &AccessToken) -> bool {
        self.shared.published.slot.at_risk(token)
    }

    /// Reports that the API accepted a request carrying the token of
    /// `generation` (it answered something other than 401): the token is
    /// settled (a later 401 to it is a revocation, renewed at once), and
    /// with [`ReplayCopies::AtRisk`](auth_core::publish::replay::ReplayCopies::AtRisk)
    /// its requests stop keeping copies until its renewal point.
    pub fn accept(&self, generation: Generation) {
        self.shared.published.slot.accept(generation);
    }

    /// Whether the API has accepted a request carrying the token of
    /// `generation` (see [`TokenSource::accept`]).
    pub fn accepted(&self, generation: Generation) -> bool {
        self.shared.published.slot.accepted(generation)
    }

    /// Tells the source what came of an answer to a request that carried
    /// its token: `verdict` ([`judge`](auth_core::publish::replay::judge)'s)
    /// for a request sent as `attempt`. With metrics (feature
    /// `opentelemetry`) it counts DPoP nonce retries to the API and the
    /// last answers to replayed requests; otherwise it does nothing. For
    /// adapters that carry out the replay rules themselves.
    #[inline]
    pub fn judged(&self, attempt: auth_core::publish::replay::Attempt, verdict: auth_core::publish::replay::Verdict) {
        self.shared.published.counters.judged(attempt, verdict);
    }

    /// Reports that the API answered 401 to the token of `generation`.
    /// The token is invalidated if it is still current (once, however many
    /// 401s arrive), and a new one is fetched.
    pub fn invalidate(&self, generation: Generation) {
        self.unpublish(generation);
        let _ = self.shared.commands.send(Command::Unauthorized(generation, None));
    }

    /// Tells the source that the API refused its token asking for `asked`
    /// (the [`StepUp`](auth_core::resource::step_up::StepUp) the layer and
    /// the adapters mark such an answer with, and pass here themselves):
    /// a source whose configuration allows the scopes named
    /// ([`step_up_scopes`](auth_core::SourceConfigBuilder::step_up_scopes))
    /// asks for them from its next token on, once; any other ignores it.
    /// `generation` is the refused token's: readers stop using it at once.
    pub fn step_up(&self, asked: &auth_core::resource::step_up::StepUp, generation: Generation) {
        if let auth_core::resource::step_up::StepUp::Scopes { needed, .. } = asked {
            if self.shared.config.allows_step_up(needed) {
                // The worker publishes it again if the source keeps it.
                self.unpublish(generation);
                let _ = self.shared.commands.send(Command::StepUp(needed.clone()));
            }
        }
    }

    /// Stops readers from using the token of `generation` at once, before
    /// the worker has seen the 401 (it republishes the token if the
    /// lifecycle keeps it).
    fn unpublish(&self, generation: Generation) {
        self.shared.published.slot.withdraw(generation);
    }

    /// Reports that the API answered 401 to the token of `generation`, and
    /// returns the token to replay the request with, once. `Ok(None)`:
    /// do not replay (the lifecycle's fetch-loop guard: a token fetched
    /// because of a 401 was rejected again at once); return the 401.
    pub async fn reject(&self, generation: Generation) -> Result<Option<Arc<AccessToken>>, AuthError> {
        self.unauthorized(generation).await
    }

    /// Revokes the current access token and refresh token at the
    /// configured RFC 7009 endpoint and forgets both: the next caller gets a
    /// new token. The tokens are forgotten even if the revocation request
    /// fails.
    pub async fn revoke(&self) -> Result<Revoked, AuthError> {
        let span = auth_core::telemetry::spans::revocation();
        let (reply, receiver) = oneshot::channel();
        self.shared.commands.send(Command::Revoke(reply, span.clone())).map_err(|_| AuthError::Stopped)?;
        let revoked = receiver.await.unwrap_or(Err(AuthError::Stopped));
        auth_core::telemetry::spans::ended(&span, revoked.is_ok());
        revoked
    }

    /// Forgets the current tokens without revoking them: here, and in the
    /// shared store (the record that still holds them is deleted, so that
    /// no peer adopts them). Returns once the store has answered. A
    /// sign-out where the provider has no revocation endpoint;
    /// [`TokenSource::revoke`] forgets them too.
    pub async fn discard(&self) {
        if self.shared.commands.send(Command::Discard).is_ok() {
            self.flush().await;
        }
    }

    /// The current access token (if usable) and refresh token, to save
    /// and restore later with [`TokenSourceBuilder::restore`].
    pub async fn snapshot(&self) -> Option<StoredToken> {
        let (reply, receiver) = oneshot::channel();
        self.shared.commands.send(Command::Snapshot(reply)).ok()?;
        receiver.await.ok().flatten()
    }

    /// Waits until the store operations started so far have finished
    /// (each is bounded by the store timeout): a program about to exit
    /// calls it so that the token it fetched reaches the store. Without a
    /// store it returns at once.
    pub async fn flush(&self) {
        let (reply, receiver) = oneshot::channel();
        if self.shared.commands.send(Command::Flush(reply)).is_ok() {
            let _ = receiver.await;
        }
    }

    /// Sends a request to the token endpoint (a sign-in's code exchange, a
    /// device poll, a device authorization request) through this source's
    /// transport, with its fetch timeout and body cap, and returns the
    /// answer as it came. See [`crate::sign_in`].
    pub async fn send_token_request(&self, request: Request<Vec<u8>>) -> Result<Response<Bytes>, AuthError> {
        let (reply, receiver) = oneshot::channel();
        let command = Command::Send(request, reply, tracing::Span::current());
        self.shared.commands.send(command).map_err(|_| self.shared.published.stopped())?;
        receiver.await.map_err(|_| self.shared.published.stopped())?.map_err(AuthError::Token)
    }

    /// Installs the tokens a sign-in obtained: `response` is the token
    /// endpoint's answer to the request sent at `sent_at` (an
    /// authorization code exchange, or the device poll the user approved).
    /// They replace any held before (the previous user's refresh token
    /// included), reach the shared store, and are renewed with their
    /// refresh token from then on (see
    /// [`Lifecycle::handle_sign_in`](auth_core::Lifecycle::handle_sign_in)).
    pub async fn install_sign_in(
        &self,
        response: Response<Bytes>,
        sent_at: Instant,
    ) -> Result<Arc<AccessToken>, AuthError> {
        let (reply, receiver) = oneshot::channel();
        self.shared
            .commands
            .send(Command::SignIn(response, sent_at, reply))
            .map_err(|_| self.shared.published.stopped())?;
        receiver.await.unwrap_or_else(|_| Err(self.shared.published.stopped()))
    }

    /// Counters since the source was created.
    pub fn stats(&self) -> Stats {
        self.shared.published.counters.snapshot()
    }

    // ----- for the layer -----

    /// A reader of the published token for one service, task or thread:
    /// the hot path of the layer, and of adapters that keep one reader per
    /// thread. A read is a pointer comparison and a few atomic loads, with
    /// no shared write and no reference count (see [`TokenReader::load`]).
    pub fn reader(&self) -> TokenReader {
        TokenReader { slot: self.shared.published.slot.reader(), unflushed: 0, source: self.clone() }
    }

    /// The number under which a request future finds this source again.
    #[inline]
    pub(crate) fn id(&self) -> SourceId {
        self.shared.id
    }

    /// Counts a cache hit, and nudges the worker when the read was the
    /// first past the renewal point.
    fn count_read(&self, renewal_due: bool) {
        self.nudge_if(renewal_due);
        self.shared.published.counters.add_cache_hits(1);
    }

    #[inline]
    fn nudge_if(&self, renewal_due: bool) {
        if renewal_due {
            let _ = self.shared.commands.send(Command::Nudge);
        }
    }

    /// Waits for a token from the worker.
    pub(crate) fn want(&self) -> TokenFuture {
        self.ask(Command::Want, false)
    }

    /// Reports a 401 and waits for the token to replay with (`None`: do not
    /// replay).
    pub(crate) fn unauthorized(&self, generation: Generation) -> TokenFuture {
        self.unpublish(generation);
        self.ask(|reply, span| Command::Unauthorized(generation, Some((reply, span))), true)
    }

    /// Sends a command that the worker answers with a token, with the
    /// caller's span.
    fn ask(&self, command: impl FnOnce(oneshot::Sender<Reply>, tracing::Span) -> Command, replay: bool) -> TokenFuture {
        let published = Arc::clone(&self.shared.published);
        let (reply, receiver) = oneshot::channel();
        let seen = published.handled.load(Ordering::Acquire);
        match self.shared.commands.send(command(reply, tracing::Span::current())) {
            Ok(()) => TokenFuture::waiting(receiver, published, seen, replay),
            Err(_) => TokenFuture::failed(published.stopped()),
        }
    }
}

/// One service's (or thread's) reader of the published token, from
/// [`TokenSource::reader`]: no shared write per read (its cache hits are
/// added to the source's counter in batches, and when it drops). It keeps
/// a handle on the token it last read until it reads the next one or
/// drops.
#[derive(Debug)]
pub struct TokenReader {
    slot: SlotReader,
    unflushed: u32,
    source: TokenSource,
}

/// Cache hits a reader counts before it adds them to the source's counter.
const HITS_BATCH: u32 = 64;

impl TokenReader {
    /// The token if it may be sent now (see [`SlotReader::load`]), with
    /// whether a request sent with it should keep a copy for a 401
    /// ([`ReadToken::at_risk`]); nudges the worker when this read was the
    /// first past the renewal point. `None`: wait for
    /// [`TokenSource::token`].
    #[inline(always)]
    pub fn load(&mut self) -> Option<ReadToken<'_>> {
        let Self { slot, unflushed, source } = self;
        let token = slot.load(now)?;
        source.nudge_if(token.renewal_due());
        *unflushed += 1;
        if *unflushed == HITS_BATCH {
            flush_hits(source, unflushed);
        }
        Some(token)
    }
}

#[cold]
fn flush_hits(source: &TokenSource, unflushed: &mut u32) {
    source.shared.published.counters.add_cache_hits(u64::from(std::mem::take(unflushed)));
}

impl Clone for TokenReader {
    fn clone(&self) -> Self {
        Self { slot: self.slot.clone(), unflushed: 0, source: self.source.clone() }
    }
}

impl Drop for TokenReader {
    fn drop(&mut self) {
        if self.unflushed > 0 {
            flush_hits(&self.source, &mut self.unflushed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn unreachable_endpoint() -> TokenSource {
        let config = SourceConfig::builder("https://auth.example.com/token", "client-id")
            .client_secret("very-secret-client-secret")
            .build()
            .unwrap();
        let transport = tower::service_fn(|_: Request<Vec<u8>>| async {
            Ok::<_, Infallible>(Response::builder().status(503).body(String::new()).unwrap())
        });
        TokenSource::new(config, transport).unwrap()
    }

    fn registered(id: SourceId) -> bool {
        SOURCES.contains(id.0)
    }

    #[tokio::test]
    async fn a_source_is_found_by_its_number_until_its_last_handle_drops() {
        let source = unreachable_endpoint();
        let other = unreachable_endpoint();
        let id = source.id();
        assert_ne!(id, other.id(), "every source has its own number");
        assert_ne!(id, SourceId::NONE);
        let found = id.source().expect("a live source is registered");
        assert!(Arc::ptr_eq(&found.shared, &source.shared));
        drop(found);

        let reader = source.reader();
        drop(source);
        assert!(registered(id), "a reader is a handle: it keeps the source alive");
        drop(reader);
        assert!(!registered(id), "the entry goes with the last handle");
        assert!(id.source().is_none());
        assert!(SourceId::NONE.source().is_none());
        assert!(other.id().source().is_some(), "other sources are untouched");
    }
}
