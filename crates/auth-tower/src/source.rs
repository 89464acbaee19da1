//! The async token source: one worker task per source drives the
//! `auth-core` lifecycle on tokio; any number of cheap handles read the
//! current token without a lock and wait on the single fetch when there is
//! none.

use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use auth_core::request::{TokenCall, TokenKind};
use auth_core::response::normalize_retry_after;
use auth_core::slot::{ReadToken, SlotReader, TokenSlot};
use auth_core::store::{StoreAnswer, StoreConfig, StoreError, StoreOpId, StoreRequest, StoreTimeouts};
use auth_core::{
    AccessToken, FetchId, FetchRequest, Generation, Lifecycle, Output, SourceConfig, StoredToken, TokenError,
    Unauthorized, Want,
};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use tokio::sync::{mpsc, oneshot};
use tower::{Service, ServiceExt};

use crate::error::{AuthError, BoxError};
use crate::registry::Registry;
use crate::store::TokenStore;

/// Default timeout of one token request, connection included.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// Default timeout of one store operation: past it the source fetches on
/// its own, so a slow store never makes a request wait longer.
pub use auth_core::store::DEFAULT_STORE_TIMEOUT;

/// Default wait for the store to get ready (connect) before an operation.
pub use auth_core::store::DEFAULT_STORE_CONNECT_TIMEOUT;

/// The current time, on tokio's clock (which tests can pause and advance).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

type Reply = Result<Option<Arc<AccessToken>>, AuthError>;
type FetchFuture = Pin<Box<dyn Future<Output = Result<Response<Bytes>, TokenError>> + Send>>;
type Fetcher = Arc<dyn Fn(Request<Vec<u8>>) -> FetchFuture + Send + Sync>;

enum Command {
    /// A caller needs a token.
    Want(oneshot::Sender<Reply>),
    /// The API answered 401 to `generation`; the reply is the token to
    /// replay with, or `None` when the request must not be replayed.
    Unauthorized(Generation, Option<oneshot::Sender<Reply>>),
    /// A reader saw the renewal point pass.
    Nudge,
    /// Revoke the current tokens (RFC 7009) and forget them.
    Revoke(oneshot::Sender<Result<Revoked, AuthError>>),
    /// Report the tokens to save.
    Snapshot(oneshot::Sender<Option<StoredToken>>),
    /// Answer once no store operation is running.
    Flush(oneshot::Sender<()>),
    /// Send a token endpoint request (a sign-in's) through the transport.
    Send(Request<Vec<u8>>, oneshot::Sender<Result<Response<Bytes>, TokenError>>),
    /// Install a sign-in's tokens: the answer to a request sent at the instant.
    SignIn(Response<Bytes>, Instant, oneshot::Sender<Result<Arc<AccessToken>, AuthError>>),
}

/// What [`TokenSource::revoke`] revoked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revoked {
    /// An access token was revoked.
    pub access_token: bool,
    /// A refresh token was revoked.
    pub refresh_token: bool,
}

/// Counters shared by the handles and the worker.
#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    failures: AtomicU64,
    hits: AtomicU64,
    waits: AtomicU64,
    invalidations: AtomicU64,
    replays: AtomicU64,
    store_reads: AtomicU64,
    adoptions: AtomicU64,
    leases_won: AtomicU64,
    leases_lost: AtomicU64,
    store_errors: AtomicU64,
    peer_waits_expired: AtomicU64,
    budget_refusals: AtomicU64,
}

/// A snapshot of a token source's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Token requests sent.
    pub fetches: u64,
    /// Token requests that failed.
    pub failures: u64,
    /// Tokens served from the cache without waiting. Each `Auth` service
    /// adds its hits in batches of 64 (and when it drops), so a live
    /// service's latest hits may not show yet.
    pub cache_hits: u64,
    /// Callers that had to wait for a fetch.
    pub waits: u64,
    /// Tokens invalidated by a 401.
    pub invalidations: u64,
    /// Requests replayed after a 401.
    pub replays_after_401: u64,
    /// Reads of the shared store.
    pub store_reads: u64,
    /// Tokens taken from the store (a peer fetched them).
    pub adoptions: u64,
    /// Renewal leases taken (this source fetched for the fleet).
    pub leases_won: u64,
    /// Lease attempts that found a peer fetching.
    pub leases_lost: u64,
    /// Store operations that failed or timed out.
    pub store_errors: u64,
    /// Waits for a peer's fetch that ran out (this source then fetched).
    pub peer_waits_expired: u64,
    /// Fetches not made because the fetch budget was spent
    /// (`max_fetches_per_day`).
    pub budget_refusals: u64,
}

/// How much longer than the fetch timeout a caller waits for the worker
/// before it concludes that the worker's runtime is not being driven.
pub const WAIT_GRACE: Duration = Duration::from_secs(5);

/// What the worker publishes for the lock-free read path, and for callers
/// that wait.
struct Published {
    slot: Arc<TokenSlot>,
    counters: Counters,
    /// Commands the worker has taken up: a waiting caller that sees no
    /// change knows the worker's runtime is not running it.
    handled: AtomicU64,
    /// How long a caller waits for an answer: the fetch timeout and a grace.
    patience: Duration,
    /// Set when the worker stopped on a panic: what it said.
    failure: OnceLock<String>,
}

impl Published {
    /// Why no answer will come from the worker.
    fn stopped(&self) -> AuthError {
        match self.failure.get() {
            Some(message) => AuthError::WorkerFailed(message.clone()),
            None => AuthError::Stopped,
        }
    }
}

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
    seed: Option<u64>,
    restore: Option<StoredToken>,
    store: Option<(Arc<dyn TokenStore>, StoreConfig)>,
    store_timeouts: StoreTimeouts,
}

impl TokenSourceBuilder {
    /// Starts from a token saved earlier (see [`TokenSource::snapshot`]):
    /// used at once if still valid, its refresh token kept.
    pub fn restore(mut self, stored: StoredToken) -> Self {
        self.restore = Some(stored);
        self
    }

    /// Timeout of one token request, connection included. Default 30 s.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Shares tokens through `store` with every source of the same cache
    /// key (other tasks, processes, replicas): see [`crate::store`].
    pub fn store(mut self, store: impl TokenStore, config: StoreConfig) -> Self {
        self.store = Some((Arc::new(store), config));
        self
    }

    /// Timeout of one store operation, once the store is ready. Default
    /// 250 ms.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeouts.operation = timeout;
        self
    }

    /// How long an operation waits for the store to get ready
    /// ([`TokenStore::connect`]: connecting, a TLS handshake). Default 1 s.
    pub fn store_connect_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeouts.connect = timeout;
        self
    }

    /// Seed of the jitter of renewal points and backoffs. Default: random,
    /// so that replicas spread out. Fix it in tests.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Starts the worker on the current tokio runtime.
    pub fn build(self) -> Result<TokenSource, AuthError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AuthError::NoRuntime)?;
        let config = Arc::new(self.config);
        let seed = self.seed.unwrap_or_else(random_seed);
        let (commands, receiver) = mpsc::unbounded_channel();
        // With a store, a caller may also wait for a peer's fetch and for
        // a few store operations before the local fetch.
        let store_wait = self.store.as_ref().map_or(Duration::ZERO, |(_, store)| {
            store.peer_wait.saturating_add(self.store_timeouts.longest_wait().saturating_mul(3))
        });
        let published = Arc::new(Published {
            slot: Arc::new(TokenSlot::new()),
            counters: Counters::default(),
            handled: AtomicU64::new(0),
            patience: self.fetch_timeout.saturating_add(store_wait).saturating_add(WAIT_GRACE),
            failure: OnceLock::new(),
        });
        let (store, mut lifecycle) = match self.store {
            Some((store, store_config)) => {
                (Some(store), Lifecycle::with_store(Arc::clone(&config), seed, store_config))
            }
            None => (None, Lifecycle::new(Arc::clone(&config), seed)),
        };
        let (store_answers, store_answered) = mpsc::unbounded_channel();
        if let Some(stored) = self.restore {
            lifecycle.handle_restore(now(), stored);
        }
        let worker = Worker {
            lifecycle,
            fetcher: self.fetcher,
            fetch_timeout: self.fetch_timeout,
            commands: receiver,
            published: Arc::clone(&published),
            waiters: Vec::new(),
            fetch: None,
            store,
            store_timeouts: self.store_timeouts,
            store_answers,
            store_answered,
            store_pending: 0,
            flushes: Vec::new(),
        };
        runtime.spawn(worker.run());
        let id = SourceId::next();
        let shared = Arc::new(Shared { id, commands, published, config });
        id.register(&shared);
        Ok(TokenSource { shared })
    }
}

/// A seed that differs between processes and between sources.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.finish()
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
            seed: None,
            restore: None,
            store: None,
            store_timeouts: StoreTimeouts::default(),
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
    /// assumed lifetime or DPoP-bound (see [`auth_core::slot`]).
    pub fn at_risk(&self, token: &AccessToken) -> bool {
        self.shared.published.slot.at_risk(token)
    }

    /// Reports that the API accepted a request carrying the token of
    /// `generation` (it answered something other than 401): the token is
    /// settled (a later 401 to it is a revocation, renewed at once), and
    /// with [`ReplayCopies::AtRisk`](auth_core::replay::ReplayCopies::AtRisk)
    /// its requests stop keeping copies until its renewal point.
    pub fn accept(&self, generation: Generation) {
        self.shared.published.slot.accept(generation);
    }

    /// Whether the API has accepted a request carrying the token of
    /// `generation` (see [`TokenSource::accept`]).
    pub fn accepted(&self, generation: Generation) -> bool {
        self.shared.published.slot.accepted(generation)
    }

    /// Reports that the API answered 401 to the token of `generation`.
    /// The token is invalidated if it is still current (once, however many
    /// 401s arrive), and a new one is fetched.
    pub fn invalidate(&self, generation: Generation) {
        self.unpublish(generation);
        let _ = self.shared.commands.send(Command::Unauthorized(generation, None));
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
        if self.shared.config.revocation_url().is_none() {
            return Err(AuthError::Config(auth_core::ConfigError::NoRevocationUrl));
        }
        let (reply, receiver) = oneshot::channel();
        self.shared.commands.send(Command::Revoke(reply)).map_err(|_| AuthError::Stopped)?;
        receiver.await.unwrap_or(Err(AuthError::Stopped))
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
        self.shared.commands.send(Command::Send(request, reply)).map_err(|_| self.shared.published.stopped())?;
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
        let c = &self.shared.published.counters;
        Stats {
            fetches: c.fetches.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            cache_hits: c.hits.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
            invalidations: c.invalidations.load(Ordering::Relaxed),
            replays_after_401: c.replays.load(Ordering::Relaxed),
            store_reads: c.store_reads.load(Ordering::Relaxed),
            adoptions: c.adoptions.load(Ordering::Relaxed),
            leases_won: c.leases_won.load(Ordering::Relaxed),
            leases_lost: c.leases_lost.load(Ordering::Relaxed),
            store_errors: c.store_errors.load(Ordering::Relaxed),
            peer_waits_expired: c.peer_waits_expired.load(Ordering::Relaxed),
            budget_refusals: c.budget_refusals.load(Ordering::Relaxed),
        }
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
        self.shared.published.counters.hits.fetch_add(1, Ordering::Relaxed);
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
        self.ask(|reply| Command::Unauthorized(generation, Some(reply)), true)
    }

    /// Sends a command that the worker answers with a token.
    fn ask(&self, command: impl FnOnce(oneshot::Sender<Reply>) -> Command, replay: bool) -> TokenFuture {
        let published = Arc::clone(&self.shared.published);
        let (reply, receiver) = oneshot::channel();
        let seen = published.handled.load(Ordering::Acquire);
        match self.shared.commands.send(command(reply)) {
            Ok(()) => {
                TokenFuture(Answer::Waiting(Box::new(Waiting { receiver, published, seen, replay, deadline: None })))
            }
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
    source.shared.published.counters.hits.fetch_add(u64::from(std::mem::take(unflushed)), Ordering::Relaxed);
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

/// The answer of the worker to a caller that waits: at most the fetch
/// timeout and [`WAIT_GRACE`], then an error that says why no answer came.
#[must_use = "futures do nothing unless polled"]
pub(crate) struct TokenFuture(Answer);

enum Answer {
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
struct Waiting {
    receiver: oneshot::Receiver<Reply>,
    published: Arc<Published>,
    /// `handled` when the command was sent.
    seen: u64,
    /// The answer is a token to replay a request with: counted.
    replay: bool,
    /// Started on the first pending poll, when the caller runs in tokio.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TokenFuture {
    /// A future that answers `error` at once.
    pub(crate) fn failed(error: AuthError) -> Self {
        Self(Answer::Failed(Box::new(error)))
    }

    /// A future that answers [`AuthError::Stopped`] at once.
    pub(crate) fn stopped() -> Self {
        Self::failed(AuthError::Stopped)
    }
}

impl Waiting {
    /// The error for a caller whose patience ran out.
    fn expired(&self) -> AuthError {
        let waited = self.published.patience;
        if self.published.handled.load(Ordering::Acquire) == self.seen {
            AuthError::NotDriven { waited }
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
                waiting.published.counters.replays.fetch_add(1, Ordering::Relaxed);
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

/// Sends one token request and reads the body up to `limit` bytes.
async fn send<T, B>(mut transport: T, request: Request<Vec<u8>>, limit: usize) -> Result<Response<Bytes>, TokenError>
where
    T: Service<Request<Vec<u8>>, Response = Response<B>>,
    T::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let ready = transport.ready().await.map_err(|e| transport_error(e.into()))?;
    let response = ready.call(request).await.map_err(|e| transport_error(e.into()))?;
    let (mut parts, body) = response.into_parts();
    let body = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            TokenError::BodyTooLarge { status: parts.status.as_u16(), limit }
        } else {
            match TokenError::from_error(e.as_ref(), false) {
                TokenError::Transport { message, timeout } => {
                    TokenError::Transport { message: format!("reading the response body failed: {message}"), timeout }
                }
                other => other,
            }
        }
    })?;
    normalize_retry_after(&mut parts.headers, SystemTime::now());
    Ok(Response::from_parts(parts, body.to_bytes()))
}

/// A transport's error as a token error: a `TokenError` the transport made
/// itself is kept (it knows best what happened); otherwise a timeout is
/// recognised anywhere in the chain of sources.
fn transport_error(error: BoxError) -> TokenError {
    match error.downcast::<TokenError>() {
        Ok(error) => *error,
        Err(error) => {
            let timeout = is_timeout(error.as_ref());
            TokenError::from_error(error.as_ref(), timeout)
        }
    }
}

/// Whether an error, or one of its sources, is a timeout.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<tower::timeout::error::Elapsed>() || error.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        current = error.source();
    }
    false
}

struct InFlight {
    id: FetchId,
    started: Instant,
    future: FetchFuture,
}

type StoreAnswered = (StoreOpId, Result<StoreAnswer, StoreError>);

/// The task that owns the lifecycle.
struct Worker {
    lifecycle: Lifecycle,
    fetcher: Fetcher,
    fetch_timeout: Duration,
    commands: mpsc::UnboundedReceiver<Command>,
    published: Arc<Published>,
    waiters: Vec<oneshot::Sender<Reply>>,
    fetch: Option<InFlight>,
    store: Option<Arc<dyn TokenStore>>,
    store_timeouts: StoreTimeouts,
    /// Store operations run as tasks of their own and answer here.
    store_answers: mpsc::UnboundedSender<StoreAnswered>,
    store_answered: mpsc::UnboundedReceiver<StoreAnswered>,
    /// Store operations started and not answered yet.
    store_pending: usize,
    /// Callers of `flush` waiting for `store_pending` to reach zero.
    flushes: Vec<oneshot::Sender<()>>,
}

/// What woke the worker.
enum Event {
    Command(Command),
    Fetched(Result<Response<Bytes>, TokenError>),
    Stored(StoreAnswered),
    Timeout,
}

impl Worker {
    async fn run(mut self) {
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
    fn guarded<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> Result<T, ()> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self))).map_err(|panic| {
            let message = panic_message(&*panic);
            tracing::error!(target: "auth_tower", "token source worker failed: {message}");
            let _ = self.published.failure.set(message);
        })
    }

    fn on(&mut self, event: Event) {
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
                self.publish_lifecycle_stats();
                // Operations the answer started are counted before flushes are told.
                self.carry_out();
                if self.store_pending == 0 {
                    for flush in self.flushes.drain(..) {
                        let _ = flush.send(());
                    }
                }
            }
            Event::Timeout => self.published.slot.handle_timeout_with(&mut self.lifecycle, now()),
        }
    }

    /// Copies the lifecycle's counters to the shared ones.
    fn publish_lifecycle_stats(&self) {
        let (stats, counters) = (self.lifecycle.stats(), &self.published.counters);
        counters.failures.store(stats.failures, Ordering::Relaxed);
        counters.budget_refusals.store(stats.budget_refusals, Ordering::Relaxed);
        counters.store_reads.store(stats.store_reads, Ordering::Relaxed);
        counters.adoptions.store(stats.adoptions, Ordering::Relaxed);
        counters.leases_won.store(stats.leases_won, Ordering::Relaxed);
        counters.leases_lost.store(stats.leases_lost, Ordering::Relaxed);
        counters.store_errors.store(stats.store_errors, Ordering::Relaxed);
        counters.peer_waits_expired.store(stats.peer_waits_expired, Ordering::Relaxed);
    }

    /// Runs a store operation in a task of its own: waits for the store to
    /// get ready, then for the answer, each at most its timeout.
    fn run_store_op(&mut self, request: StoreRequest) {
        self.store_pending += 1;
        let answers = self.store_answers.clone();
        let Some(store) = self.store.clone() else {
            let _ = answers.send((request.id, Err(StoreError::new("no store is configured"))));
            return;
        };
        let key = self.lifecycle.config().cache_key().clone();
        let timeouts = self.store_timeouts;
        tracing::trace!(target: "auth_tower", op = request.id.get(), kind = request.op.kind(), "token store operation");
        tokio::spawn(async move {
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
            let _ = answers.send((request.id, answer.await));
        });
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Want(reply) => self.want(reply),
            Command::Nudge => {
                let _ = self.lifecycle.handle_token_wanted(now());
            }
            Command::Revoke(reply) => self.revoke(reply),
            Command::Snapshot(reply) => {
                let _ = reply.send(self.lifecycle.snapshot(now()));
            }
            Command::Send(request, reply) => {
                let send = self.send_timed(request);
                tokio::spawn(async move {
                    let _ = reply.send(send.await);
                });
            }
            Command::SignIn(response, sent_at, reply) => {
                let outcome = self.lifecycle.handle_sign_in(now(), SystemTime::now(), sent_at, &response);
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
            Command::Unauthorized(generation, reply) => {
                let outcome = self.published.slot.handle_unauthorized(&mut self.lifecycle, now(), generation);
                if outcome == Unauthorized::Invalidated {
                    self.published.counters.invalidations.fetch_add(1, Ordering::Relaxed);
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
                match reply {
                    Some(reply) if outcome.should_replay() => self.want(reply),
                    Some(reply) => {
                        let _ = reply.send(Ok(None));
                    }
                    None => {}
                }
            }
        }
    }

    fn want(&mut self, reply: oneshot::Sender<Reply>) {
        match self.lifecycle.handle_token_wanted(now()) {
            Want::Ready(token) => {
                self.publish(&token);
                let _ = reply.send(Ok(Some(token)));
            }
            Want::Wait => {
                self.published.counters.waits.fetch_add(1, Ordering::Relaxed);
                self.waiters.push(reply);
            }
            Want::Failed(error) => {
                let _ = reply.send(Err(AuthError::Token(error)));
            }
            _ => {
                let _ = reply.send(Err(AuthError::Stopped));
            }
        }
    }

    fn finish(&mut self, id: FetchId, started: Instant, outcome: Result<Response<Bytes>, TokenError>) {
        let now = now();
        let elapsed_ms = now.saturating_duration_since(started).as_millis() as u64;
        match outcome {
            Ok(response) => {
                tracing::debug!(target: "auth_tower", fetch = id.get(), status = response.status().as_u16(), elapsed_ms, "token endpoint answered");
                self.lifecycle.handle_fetch_response(now, id, &response);
            }
            Err(error) => self.lifecycle.handle_fetch_failed(now, id, error),
        }
    }

    /// Carries out every output of the lifecycle.
    fn carry_out(&mut self) {
        while let Some(output) = self.lifecycle.poll_output() {
            match output {
                Output::Fetch(fetch) => self.start(fetch),
                Output::Store(request) => self.run_store_op(request),
                Output::TokenReady(token) => {
                    tracing::info!(
                        target: "auth_tower",
                        generation = token.generation().get(),
                        lifetime_s = token.lifetime().as_secs(),
                        lifetime_from_provider = token.lifetime_from_provider(),
                        fetch_ms = now().saturating_duration_since(token.issued_at()).as_millis() as u64,
                        "access token obtained"
                    );
                    self.publish(&token);
                    for waiter in self.waiters.drain(..) {
                        let _ = waiter.send(Ok(Some(Arc::clone(&token))));
                    }
                }
                Output::Failed(error) => {
                    tracing::warn!(
                        target: "auth_tower",
                        kind = error.kind(),
                        transient = error.is_transient(),
                        code = error.code().map(|c| c.as_str().to_owned()),
                        waiters = self.waiters.len(),
                        "could not obtain a token: {error}"
                    );
                    for waiter in self.waiters.drain(..) {
                        let _ = waiter.send(Err(AuthError::Token(error.clone())));
                    }
                }
                Output::TokenWithdrawn { generation, reason } => {
                    tracing::debug!(target: "auth_tower", generation = generation.get(), ?reason, "token withdrawn");
                    self.published.slot.withdraw(generation);
                }
                Output::StoreHealth { error: Some(error), .. } => {
                    tracing::warn!(target: "auth_tower", timeout = error.timeout, "{error}; fetching without the store until it answers again");
                }
                Output::StoreHealth { .. } => tracing::info!(target: "auth_tower", "the token store answers again"),
                _ => {}
            }
        }
        self.publish_lifecycle_stats();
    }

    /// Forgets the tokens, then revokes them in a task of their own (the
    /// worker keeps serving commands meanwhile).
    fn revoke(&mut self, reply: oneshot::Sender<Result<Revoked, AuthError>>) {
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
                let send = self.send_timed(revocation.take_request());
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
        });
    }

    /// Sends a request to the token endpoint through the transport, with
    /// the fetch timeout counted from the first poll. Each attempt is made
    /// ready to send at its time (fresh assertions and DPoP proof), and a
    /// DPoP nonce demand is tried once more ([`TokenCall`]).
    fn send_timed(
        &self,
        request: Request<Vec<u8>>,
    ) -> impl Future<Output = Result<Response<Bytes>, TokenError>> + Send + 'static {
        let (timeout, fetcher) = (self.fetch_timeout, Arc::clone(&self.fetcher));
        let mut call = TokenCall::new(request);
        // The first attempt starts here, in the worker; a retry in the task.
        let first = call.attempt(SystemTime::now()).map(|ready| fetcher(ready));
        let exchange = async move {
            let mut response = first?.await?;
            while call.retry(&response) {
                response = fetcher(call.attempt(SystemTime::now())?).await?;
            }
            Ok(response)
        };
        async move { tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| Err(TokenError::timeout(timeout))) }
    }

    /// Makes `token` the one readers see, unless it already is.
    fn publish(&self, token: &Arc<AccessToken>) {
        self.published.slot.publish(token, now());
    }

    fn start(&mut self, fetch: FetchRequest) {
        self.published.counters.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::info!(target: "auth_tower", fetch = fetch.id.get(), reason = ?fetch.reason, grant = ?fetch.grant, "requesting an access token");
        // A task of its own: a transport that panics fails this fetch, not
        // the worker. Dropping the fetch (the worker stops) aborts it.
        let task = AbortOnDrop(tokio::spawn(self.send_timed(fetch.request)));
        let future: FetchFuture = Box::pin(async move {
            task.await.unwrap_or_else(|error| {
                let what = if error.is_panic() { panic_message(&*error.into_panic()) } else { error.to_string() };
                Err(TokenError::transport(format!("the token transport failed: {what}")))
            })
        });
        self.fetch = Some(InFlight { id: fetch.id, started: now(), future });
    }
}

/// A spawned task that is aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

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

/// What a panic said, when it said it with a string.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Resolves with the outcome of the fetch in flight; pending forever when
/// there is none.
async fn poll_fetch(fetch: &mut Option<InFlight>) -> Result<Response<Bytes>, TokenError> {
    match fetch {
        Some(fetch) => (&mut fetch.future).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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
