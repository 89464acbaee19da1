//! What every driver of a [`Lifecycle`] needs besides the lifecycle
//! itself, and does the same way: carrying out each of its outputs (one
//! exhaustive dispatch, here, so that a new output is a compile error in
//! the core rather than ignored by a driver), answering the callers who
//! want a token or report a 401 ([`Waiters`], generic over how a driver
//! answers), the seed of its jitter, and the words for a panic a caller is
//! told about.

use std::sync::Arc;
use std::time::Instant;

use crate::config::SourceConfig;
use crate::error::TokenError;
mod counters;

pub use counters::PublishedStats;

use crate::lifecycle::{FetchRequest, Lifecycle, Observation, Output, StoredToken, Unauthorized, Want, WithdrawReason};
use crate::publish::slot::TokenSlot;
use crate::publish::token::{AccessToken, Generation};
use crate::store::{StoreConfig, StoreTimeouts};
use crate::store::{StoreError, StoreRequest};
use crate::telemetry::Telemetry;

/// What a driver does with each output of its lifecycle. A driver
/// implements it; [`carry_out`] calls it for every output, in order.
pub trait Effects {
    /// The lifecycle the driver runs.
    fn lifecycle(&mut self) -> &mut Lifecycle;

    /// Called before each output is carried out: a driver publishes the
    /// lifecycle's counters here, so that a caller who gets an answer
    /// sees what led to it.
    fn before_output(&mut self) {}

    /// Send this token request; answer with `handle_fetch_response` or
    /// `handle_fetch_failed`.
    fn fetch(&mut self, fetch: FetchRequest);

    /// Carry out this store operation; answer with `handle_store`.
    fn store(&mut self, request: StoreRequest);

    /// A new token: publish it and answer every caller waiting.
    fn token_ready(&mut self, token: Arc<AccessToken>);

    /// No token can be had now: answer every caller waiting with `error`.
    fn failed(&mut self, error: TokenError);

    /// This token must no longer be sent: unpublish it.
    fn withdrawn(&mut self, generation: Generation, reason: WithdrawReason);

    /// The store stopped answering (`Some`, with why) or answers again
    /// (`None`): say so once.
    fn store_health(&mut self, error: Option<StoreError>);

    /// What the lifecycle decided or saw, while it is observed
    /// ([`Lifecycle::observe`]): record it (metrics). The default drops it.
    fn observed(&mut self, observation: Observation) {
        let _ = observation;
    }
}

/// Carries out every output the lifecycle has, until it has none. What
/// the lifecycle observed is handed over first, before any caller is
/// answered: a caller who got its answer finds it recorded.
pub fn carry_out(driver: &mut impl Effects) {
    loop {
        while let Some(observation) = driver.lifecycle().poll_observation() {
            driver.observed(observation);
        }
        let Some(output) = driver.lifecycle().poll_output() else { break };
        driver.before_output();
        match output {
            Output::Fetch(fetch) => driver.fetch(fetch),
            Output::Store(request) => driver.store(request),
            Output::TokenReady(token) => driver.token_ready(token),
            Output::Failed(error) => driver.failed(error),
            Output::TokenWithdrawn { generation, reason } => driver.withdrawn(generation, reason),
            Output::StoreHealth { error, .. } => driver.store_health(error),
        }
    }
    driver.before_output();
}

/// What a caller who asked for a token is answered: the token to send
/// (or to replay a request with), `None` for "do not replay" (after a
/// 401 the fetch-loop guard kept), or why no token can be had now.
pub type TokenAnswer = Result<Option<Arc<AccessToken>>, TokenError>;

/// A caller waiting for an answer, as a driver reaches it (a oneshot
/// sender, a channel). Answering a caller that has gone is not an error.
pub trait Waiter {
    /// Gives the caller its answer.
    fn answer(self, answer: TokenAnswer);
}

/// The callers of one driver that wait for the fetch in flight, and the
/// rules for answering a caller: every driver answers "I want a token" and
/// "the API answered 401" the same way, through these methods.
///
/// Each method publishes the lifecycle's counters to `stats` before it
/// answers anyone, so that a caller sees what led to its answer.
#[derive(Debug)]
pub struct Waiters<W> {
    /// The callers, with when each began to wait.
    waiting: Vec<(W, Instant)>,
    /// Where each wait is recorded (feature `opentelemetry`).
    #[cfg(feature = "opentelemetry")]
    meters: Option<crate::telemetry::Meters>,
}

impl<W> Default for Waiters<W> {
    fn default() -> Self {
        Self {
            waiting: Vec::new(),
            #[cfg(feature = "opentelemetry")]
            meters: None,
        }
    }
}

impl<W> Waiters<W> {
    /// Records every caller's wait into `meters` (how long, and whether it
    /// ended with a token).
    #[cfg(feature = "opentelemetry")]
    pub fn record_into(&mut self, meters: Option<crate::telemetry::Meters>) {
        self.meters = meters;
    }

    /// The callers, each told its wait ended at `now` (with a token when
    /// `token`).
    #[cfg_attr(not(feature = "opentelemetry"), allow(unused_variables))]
    fn drain_at(&mut self, now: Instant, token: bool) -> impl Iterator<Item = W> + '_ {
        #[cfg(feature = "opentelemetry")]
        let meters = self.meters.clone();
        self.waiting.drain(..).map(move |(caller, since)| {
            #[cfg(feature = "opentelemetry")]
            if let Some(meters) = &meters {
                meters.record_wait(now.saturating_duration_since(since), token);
            }
            caller
        })
    }
}

impl<W: Waiter> Waiters<W> {
    /// How many callers wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no caller waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A caller wants a token: answered now with the current one
    /// (published in `slot` first) or the error the lifecycle backs off
    /// after, or kept until the fetch in flight ends. Returns whether it
    /// was kept (its span is then linked to the token request that
    /// answers it: [`Telemetry::caller`]).
    pub fn want(
        &mut self,
        lifecycle: &mut Lifecycle,
        slot: &TokenSlot,
        stats: &PublishedStats,
        now: Instant,
        caller: W,
    ) -> bool {
        let wanted = lifecycle.handle_token_wanted(now);
        stats.publish(lifecycle.stats());
        match wanted {
            Want::Ready(token) => {
                slot.publish(&token, now);
                caller.answer(Ok(Some(token)));
                false
            }
            Want::Wait => {
                self.waiting.push((caller, now));
                true
            }
            Want::Failed(error) => {
                caller.answer(Err(error));
                false
            }
        }
    }

    /// The API answered 401 to the token of `generation` (acceptance
    /// learnt from `slot` first). A `caller` that would replay its request
    /// is answered like [`Waiters::want`] when the lifecycle says to replay,
    /// and with `Ok(None)` otherwise. Returns what the lifecycle decided,
    /// and whether the caller was kept waiting.
    pub fn unauthorized(
        &mut self,
        lifecycle: &mut Lifecycle,
        slot: &TokenSlot,
        stats: &PublishedStats,
        now: Instant,
        generation: Generation,
        caller: Option<W>,
    ) -> (Unauthorized, bool) {
        let outcome = slot.handle_unauthorized(lifecycle, now, generation);
        stats.publish(lifecycle.stats());
        let waits = match caller {
            Some(caller) if outcome.should_replay() => self.want(lifecycle, slot, stats, now, caller),
            Some(caller) => {
                caller.answer(Ok(None));
                false
            }
            None => false,
        };
        (outcome, waits)
    }

    /// A new token ([`Output::TokenReady`]): published in `slot`, and every
    /// waiting caller is answered with it.
    pub fn ready(&mut self, slot: &TokenSlot, now: Instant, token: &Arc<AccessToken>) {
        slot.publish(token, now);
        for caller in self.drain_at(now, true) {
            caller.answer(Ok(Some(Arc::clone(token))));
        }
    }

    /// No token can be had now ([`Output::Failed`], at `now`): every
    /// waiting caller is answered with `error`.
    pub fn failed(&mut self, now: Instant, error: &TokenError) {
        for caller in self.drain_at(now, false) {
            caller.answer(Err(error.clone()));
        }
    }
}

/// The options every driver's source builder takes besides its transport
/// (set through [`source_builder_methods!`](crate::source_builder_methods)):
/// a token to start from, a store to share through (`S`: the driver's
/// kind of store) and its timeouts, the seed of the jitter.
#[derive(Debug)]
pub struct SourceOptions<S> {
    /// A token saved earlier, used at once if still valid.
    pub restore: Option<StoredToken>,
    /// The store and how to share through it.
    pub store: Option<(S, StoreConfig)>,
    /// How long the driver waits for the store.
    pub store_timeouts: StoreTimeouts,
    /// The jitter's seed; random when `None`.
    pub seed: Option<u64>,
    /// The instruments the lifecycle's observations are recorded into
    /// (feature `opentelemetry`): the lifecycle observes when set.
    #[cfg(feature = "opentelemetry")]
    pub meters: Option<crate::telemetry::Meters>,
}

impl<S> Default for SourceOptions<S> {
    fn default() -> Self {
        Self {
            restore: None,
            store: None,
            store_timeouts: StoreTimeouts::default(),
            seed: None,
            #[cfg(feature = "opentelemetry")]
            meters: None,
        }
    }
}

/// What a driver runs, as [`SourceOptions::start`] set it up.
#[derive(Debug)]
#[non_exhaustive]
pub struct Started<S, W> {
    /// The lifecycle (with the store's configuration, the seed and the
    /// restored token; observing, for the spans and metrics).
    pub lifecycle: Lifecycle,
    /// The store to carry its operations out on.
    pub store: Option<S>,
    /// The callers' waiters (recording their waits when metrics are).
    pub waiters: Waiters<W>,
    /// Where the lifecycle's observations, the token requests and the
    /// store operations are recorded (spans; metrics with the feature
    /// `opentelemetry`).
    pub telemetry: Telemetry,
}

impl<S> SourceOptions<S> {
    /// Starts what a driver of `config` runs: the lifecycle, the store,
    /// the waiters, the telemetry; with metrics, every one of them (and
    /// `counters`, for replays) records into the same instruments.
    pub fn start<W>(self, config: &Arc<SourceConfig>, now: Instant, counters: &PublishedStats) -> Started<S, W> {
        #[cfg(feature = "opentelemetry")]
        let meters = self.meters.clone().map(|meters| meters.for_source(config.cache_key()));
        #[cfg(feature = "opentelemetry")]
        if let Some(meters) = &meters {
            counters.record_into(meters.clone());
        }
        #[cfg(not(feature = "opentelemetry"))]
        let _ = counters;
        #[allow(unused_mut)] // with the opentelemetry feature, told where to record
        let mut waiters = Waiters::default();
        #[cfg(feature = "opentelemetry")]
        waiters.record_into(meters.clone());
        let seed = self.seed.unwrap_or_else(random_seed);
        let (mut lifecycle, store) = match self.store {
            Some((store, store_config)) => (Lifecycle::with_store(Arc::clone(config), seed, store_config), Some(store)),
            None => (Lifecycle::new(Arc::clone(config), seed), None),
        };
        // Observations are made on the token path only: the spans need
        // them (a token request's outcome) as much as the metrics.
        lifecycle.observe(true);
        if let Some(stored) = self.restore {
            lifecycle.handle_restore(now, stored);
        }
        #[cfg(feature = "opentelemetry")]
        let telemetry = Telemetry::with_meters(meters);
        #[cfg(not(feature = "opentelemetry"))]
        let telemetry = Telemetry::default();
        Started { lifecycle, store, waiters, telemetry }
    }
}

/// The [`SourceOptions`] setters as methods of a driver's source builder
/// whose field `$field` holds them; `$store` is the driver's store trait.
/// Used by the drivers, so that their builders take the same calls.
#[doc(hidden)]
#[macro_export]
macro_rules! source_builder_methods {
    ($field:ident, $store:path) => {
        /// Records what the source decides and what comes of it (token
        /// requests, renewals, 401s, the budget, the store's leases) as
        /// OpenTelemetry metrics on `meter`, from the user's meter provider
        /// (feature `opentelemetry`; the instruments:
        /// `auth_core::telemetry`). Nothing is recorded on the path of a
        /// request that has a settled token.
        #[cfg(feature = "opentelemetry")]
        pub fn meter(mut self, meter: &$crate::telemetry::Meter) -> Self {
            self.$field.meters = Some($crate::telemetry::Meters::new(meter));
            self
        }

        /// [`meter`](Self::meter), with the cache key's fingerprint as an
        /// attribute of every measurement (`auth.cache_key`): a series per
        /// configuration.
        #[cfg(feature = "opentelemetry")]
        pub fn meter_by_cache_key(mut self, meter: &$crate::telemetry::Meter) -> Self {
            self.$field.meters = Some($crate::telemetry::Meters::new(meter).by_cache_key());
            self
        }

        /// Starts from a token saved earlier (the source's `snapshot`):
        /// used at once if still valid, its refresh token kept.
        pub fn restore(mut self, stored: $crate::lifecycle::StoredToken) -> Self {
            self.$field.restore = Some(stored);
            self
        }

        /// Shares tokens through `store` with every source of the same
        /// cache key (other tasks, threads, processes, replicas): see
        /// [`crate::store`].
        pub fn store(mut self, store: impl $store, config: $crate::store::StoreConfig) -> Self {
            self.$field.store = Some((std::sync::Arc::new(store), config));
            self
        }

        /// Timeout of one store operation, once the store is ready.
        /// Default 250 ms.
        pub fn store_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.$field.store_timeouts.operation = timeout;
            self
        }

        /// How long an operation waits for the store to get ready (its
        /// `connect`: connecting, a TLS handshake). Default 1 s.
        pub fn store_connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.$field.store_timeouts.connect = timeout;
            self
        }

        /// Seed of the jitter of renewal points and backoffs. Default:
        /// random, so that replicas spread out. Fix it in tests.
        pub fn seed(mut self, seed: u64) -> Self {
            self.$field.seed = Some(seed);
            self
        }
    };
}

/// A seed for a lifecycle's jitter: random per token source, so that the
/// replicas of a fleet spread their renewals and retries out.
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        // No randomness from the system: a hasher's random keys still
        // differ between processes.
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        }
    }
}

/// What a panic said (its `&str` or `String` payload), for the error the
/// callers of a failed worker or transport get.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the test anchors simulated time at one real instant
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use super::*;
    use crate::config::SourceConfig;

    /// A caller whose answers land in a shared list, by name.
    struct Recorder(&'static str, Rc<RefCell<Vec<(&'static str, String)>>>);

    impl Waiter for Recorder {
        fn answer(self, answer: TokenAnswer) {
            let said = match answer {
                Ok(Some(token)) => format!("token {}", token.generation().get()),
                Ok(None) => "do not replay".to_owned(),
                Err(error) => format!("error {}", error.kind()),
            };
            self.1.borrow_mut().push((self.0, said));
        }
    }

    fn answer_fetch(lifecycle: &mut Lifecycle, now: Instant, status: u16, body: &str) -> Vec<Output> {
        let fetch = std::iter::from_fn(|| lifecycle.poll_output())
            .find_map(|output| match output {
                Output::Fetch(fetch) => Some(fetch),
                _ => None,
            })
            .expect("a fetch");
        let mut response = http::Response::new(body.as_bytes().to_vec());
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        lifecycle.handle_fetch_response(now, UNIX_EPOCH + Duration::from_secs(1_800_000_000), fetch.id, &response);
        std::iter::from_fn(|| lifecycle.poll_output()).collect()
    }

    #[test]
    fn callers_wait_for_one_fetch_and_a_401_is_answered_by_the_lifecycles_rules() {
        let config =
            SourceConfig::builder("https://auth.example.com/token", "client").client_secret("s").build().unwrap();
        let mut lifecycle = Lifecycle::new(config, 7);
        let (slot, stats) = (TokenSlot::new(), PublishedStats::default());
        let answers = Rc::new(RefCell::new(Vec::new()));
        let caller = |name| Recorder(name, Rc::clone(&answers));
        let mut waiters = Waiters::default();
        let now = Instant::now();

        // Two callers, one fetch: both wait, and both get the token.
        waiters.want(&mut lifecycle, &slot, &stats, now, caller("a"));
        waiters.want(&mut lifecycle, &slot, &stats, now, caller("b"));
        assert_eq!(waiters.len(), 2);
        assert!(answers.borrow().is_empty());
        assert_eq!(stats.snapshot().fetches, lifecycle.stats().fetches, "counters published before answering");
        let outputs = answer_fetch(&mut lifecycle, now, 200, r#"{"access_token":"t1","expires_in":3600}"#);
        let Some(Output::TokenReady(token)) = outputs.into_iter().next() else { panic!("no token") };
        waiters.ready(&slot, now, &token);
        assert!(waiters.is_empty());
        assert_eq!(*answers.borrow(), [("a", "token 1".to_owned()), ("b", "token 1".to_owned())]);
        let loaded = slot.load(|| now).map(|loaded| loaded.to_arc().generation());
        assert_eq!(loaded, Some(token.generation()), "published");

        // A caller with a valid token is answered at once.
        answers.borrow_mut().clear();
        assert!(!waiters.want(&mut lifecycle, &slot, &stats, now, caller("c")), "answered at once");
        assert_eq!(*answers.borrow(), [("c", "token 1".to_owned())]);

        // A 401 to it: the replaying caller waits for the new token...
        answers.borrow_mut().clear();
        let outcome = waiters.unauthorized(&mut lifecycle, &slot, &stats, now, token.generation(), Some(caller("d")));
        assert_eq!(outcome, (Unauthorized::Invalidated, true));
        assert_eq!(waiters.len(), 1);
        let outputs = answer_fetch(&mut lifecycle, now, 200, r#"{"access_token":"t2","expires_in":3600}"#);
        let Some(Output::TokenReady(renewed)) = outputs.into_iter().next() else { panic!("no token") };
        waiters.ready(&slot, now, &renewed);
        // ...and a 401 to the renewed token before any acceptance is not
        // replayed (the fetch-loop guard).
        let outcome = waiters.unauthorized(&mut lifecycle, &slot, &stats, now, renewed.generation(), Some(caller("e")));
        assert!(matches!(outcome, (Unauthorized::Suppressed { .. }, false)), "{outcome:?}");
        assert_eq!(*answers.borrow(), [("d", "token 2".to_owned()), ("e", "do not replay".to_owned())]);

        // A failed fetch answers every waiting caller with its error.
        answers.borrow_mut().clear();
        let later = now + Duration::from_secs(30);
        let mut lifecycle = Lifecycle::new(
            SourceConfig::builder("https://auth.example.com/token", "client").client_secret("s").build().unwrap(),
            7,
        );
        waiters.want(&mut lifecycle, &slot, &stats, later, caller("f"));
        let outputs = answer_fetch(&mut lifecycle, later, 400, r#"{"error":"invalid_client"}"#);
        let Some(Output::Failed(error)) = outputs.into_iter().find(|o| matches!(o, Output::Failed(_))) else {
            panic!("no failure")
        };
        waiters.failed(later, &error);
        assert_eq!(*answers.borrow(), [("f", format!("error {}", error.kind()))]);
    }

    #[test]
    fn seeds_differ_and_panics_say_what_they_said() {
        assert_ne!(super::random_seed(), super::random_seed());
        let said = std::panic::catch_unwind(|| panic!("the transport broke")).unwrap_err();
        assert_eq!(super::panic_message(&*said), "the transport broke");
        let formatted = std::panic::catch_unwind(|| panic!("code {}", 7)).unwrap_err();
        assert_eq!(super::panic_message(&*formatted), "code 7");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(super::panic_message(&*other), "a panic without a message");
    }
}
