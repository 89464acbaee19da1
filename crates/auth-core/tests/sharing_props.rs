//! Property tests of refresh tokens shared through a store: three sign-in
//! sources of one user share a [`MemoryStore`] (with an asynchronously
//! replicated copy that can take over, as in a Redis failover) and a token
//! endpoint that rotates refresh tokens and detects reuse. Random
//! interleavings (any source paused at any point, store operations and
//! token requests answered late, failed, or not at all, failovers) must
//! never spend a refresh token twice: with confirmed writes, and without
//! failovers whether writes are confirmed or not.
//!
//! Run more cases with `PROPTEST_CASES=20000 cargo test -p auth-core --test sharing_props`;
//! `SHARING_TRACE=1` prints every store operation and token request.

#![allow(clippy::disallowed_methods)] // one real Instant anchors simulated time

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_core::store::{MemoryStore, StoreAnswer, StoreConfig, StoreError, StoreOp, StoreRequest};
use auth_core::{FetchId, GrantKind, Lifecycle, Output, SourceConfig, SourceGrant};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

const SOURCES: usize = 3;

#[derive(Debug, Clone)]
enum Step {
    /// Let time pass; every source's deadlines fire.
    Advance(Duration),
    /// A caller of source `i` wants a token.
    Want(usize),
    /// The store carries out source `i`'s oldest operation and answers.
    Store(usize),
    /// Source `i`'s oldest store operation fails (not carried out).
    StoreFails(usize),
    /// The store carries it out, but the answer is lost (a timeout).
    StoreAnswerLost(usize),
    /// The endpoint answers source `i`'s oldest token request.
    Fetch(usize),
    /// Source `i`'s oldest token request fails before reaching the endpoint.
    FetchFails(usize),
    /// The replica applies its oldest pending operation.
    Replicate,
    /// The replica takes over; what it had not applied is lost.
    Failover,
}

fn step(failovers: bool) -> impl Strategy<Value = Step> {
    let source = 0..SOURCES;
    let failover = if failovers { 1 } else { 0 };
    prop_oneof![
        3 => prop_oneof![
            (0u64..2_000).prop_map(Duration::from_millis),
            (0u64..90).prop_map(Duration::from_secs),
            (0u64..700).prop_map(Duration::from_secs),
        ].prop_map(Step::Advance),
        2 => source.clone().prop_map(Step::Want),
        8 => source.clone().prop_map(Step::Store),
        1 => source.clone().prop_map(Step::StoreFails),
        1 => source.clone().prop_map(Step::StoreAnswerLost),
        3 => source.clone().prop_map(Step::Fetch),
        1 => source.prop_map(Step::FetchFails),
        2 => Just(Step::Replicate),
        failover => Just(Step::Failover),
    ]
}

/// A token endpoint that rotates refresh tokens: each one is good once;
/// a second use is a reuse (a real server would revoke the family).
struct Endpoint {
    spent: HashSet<String>,
    issued: u64,
    reuses: u64,
}

impl Endpoint {
    fn answer(&mut self, refresh: Option<String>) -> http::Response<Vec<u8>> {
        let body = match refresh.map(|refresh| self.spent.insert(refresh)) {
            Some(false) => {
                self.reuses += 1;
                r#"{"error":"invalid_grant"}"#.to_owned()
            }
            Some(true) => {
                self.issued += 1;
                let n = self.issued;
                format!(r#"{{"access_token":"u{n}","expires_in":600,"refresh_token":"r{n}"}}"#)
            }
            None => r#"{"error":"unauthorized_client"}"#.to_owned(),
        };
        let status = if body.contains("error") { 400 } else { 200 };
        http::Response::builder().status(status).body(body.into_bytes()).unwrap()
    }
}

struct World {
    sources: Vec<Lifecycle>,
    store_ops: Vec<VecDeque<StoreRequest>>,
    fetches: Vec<VecDeque<(FetchId, Option<String>)>>,
    primary: MemoryStore,
    replica: MemoryStore,
    replica_log: VecDeque<StoreOp>,
    confirm: bool,
    endpoint: Endpoint,
    t0: Instant,
    elapsed: Duration,
}

impl World {
    fn new(confirm: bool, seed: u64) -> Self {
        let config = Arc::new(
            SourceConfig::builder("https://auth.example.com/token", "app").grant(SourceGrant::SignIn).build().unwrap(),
        );
        let store = StoreConfig::default();
        let sources =
            (0..SOURCES).map(|i| Lifecycle::with_store(Arc::clone(&config), seed ^ i as u64, store.clone())).collect();
        let mut world = Self {
            sources,
            store_ops: vec![VecDeque::new(); SOURCES],
            fetches: vec![VecDeque::new(); SOURCES],
            primary: MemoryStore::new(),
            replica: MemoryStore::new(),
            replica_log: VecDeque::new(),
            confirm,
            endpoint: Endpoint { spent: HashSet::new(), issued: 0, reuses: 0 },
            t0: Instant::now(),
            elapsed: Duration::ZERO,
        };
        // The user signs in on source 0; the record reaches both copies.
        let (now, wall) = (world.now(), world.wall());
        let signed_in = http::Response::new(br#"{"access_token":"u0","expires_in":600,"refresh_token":"r0"}"#.to_vec());
        world.sources[0].handle_sign_in(now, wall, now, &signed_in).unwrap();
        world.collect(0);
        world.store(0, Answer::Given);
        world.replicate_all();
        world
    }

    fn now(&self) -> Instant {
        self.t0 + self.elapsed
    }

    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000) + self.elapsed
    }

    fn key(&self) -> auth_core::CacheKey {
        self.sources[0].config().cache_key().clone()
    }

    /// Queues source `i`'s outputs.
    fn collect(&mut self, i: usize) {
        while let Some(output) = self.sources[i].poll_output() {
            match output {
                Output::Store(request) => self.store_ops[i].push_back(request),
                Output::Fetch(fetch) => {
                    assert!(
                        fetch.grant == GrantKind::RefreshToken,
                        "a user's source only spends refresh tokens: {:?}",
                        fetch.grant
                    );
                    let body = String::from_utf8_lossy(fetch.request.body()).into_owned();
                    // The endpoint's refresh tokens need no decoding (r and a number).
                    let refresh =
                        body.split('&').find_map(|pair| pair.strip_prefix("refresh_token=")).map(str::to_owned);
                    self.fetches[i].push_back((fetch.id, refresh));
                }
                _ => {}
            }
        }
    }

    fn replicate_all(&mut self) {
        let (key, wall) = (self.key(), self.wall());
        for op in self.replica_log.drain(..) {
            self.replica.apply(&key, wall, &op);
        }
    }

    fn store(&mut self, i: usize, answer: Answer) {
        let Some(request) = self.store_ops[i].pop_front() else { return };
        let (key, now, wall) = (self.key(), self.now(), self.wall());
        if std::env::var_os("SHARING_TRACE").is_some() {
            eprintln!("t={}s source {i} {:?}", self.elapsed.as_secs(), request.op);
        }
        let result = match answer {
            Answer::Fails => Err(StoreError::new("injected failure")),
            Answer::Given | Answer::Lost => {
                let answered = self.primary.apply(&key, wall, &request.op);
                if !matches!(request.op, StoreOp::Read) {
                    self.replica_log.push_back(request.op.clone());
                }
                if self.confirm && matches!(answered, StoreAnswer::Lease(true) | StoreAnswer::Written(true)) {
                    // WAIT: the replica has it, and everything before it.
                    self.replicate_all();
                }
                match answer {
                    Answer::Lost => Err(StoreError::timeout(Duration::from_millis(250))),
                    _ => Ok(answered),
                }
            }
        };
        if std::env::var_os("SHARING_TRACE").is_some() {
            eprintln!("   -> {result:?}");
        }
        self.sources[i].handle_store(now, wall, request.id, result);
        self.collect(i);
    }

    fn apply(&mut self, step: &Step) {
        match *step {
            Step::Advance(by) => {
                self.elapsed += by;
                let now = self.now();
                for i in 0..SOURCES {
                    self.sources[i].handle_timeout(now);
                    self.collect(i);
                }
            }
            Step::Want(i) => {
                let now = self.now();
                let _ = self.sources[i].handle_token_wanted(now);
                self.collect(i);
            }
            Step::Store(i) => self.store(i, Answer::Given),
            Step::StoreFails(i) => self.store(i, Answer::Fails),
            Step::StoreAnswerLost(i) => self.store(i, Answer::Lost),
            Step::Fetch(i) => {
                let Some((id, refresh)) = self.fetches[i].pop_front() else { return };
                if std::env::var_os("SHARING_TRACE").is_some() {
                    eprintln!("t={}s source {i} spends {refresh:?}", self.elapsed.as_secs());
                }
                let response = self.endpoint.answer(refresh);
                let (now, wall) = (self.now(), self.wall());
                self.sources[i].handle_fetch_response(now, wall, id, &response);
                self.collect(i);
            }
            Step::FetchFails(i) => {
                let Some((id, _)) = self.fetches[i].pop_front() else { return };
                let error = auth_core::TokenError::transport("connection refused");
                let now = self.now();
                self.sources[i].handle_fetch_failed(now, id, error);
                self.collect(i);
            }
            Step::Replicate => {
                if let Some(op) = self.replica_log.pop_front() {
                    let (key, wall) = (self.key(), self.wall());
                    self.replica.apply(&key, wall, &op);
                }
            }
            Step::Failover => {
                // The replica is the primary now; a new replica starts from its record.
                self.replica_log.clear();
                self.primary = std::mem::take(&mut self.replica);
                let (key, wall) = (self.key(), self.wall());
                if let StoreAnswer::Envelope(Some(envelope)) = self.primary.apply(&key, wall, &StoreOp::Read) {
                    self.replica.apply(&key, wall, &StoreOp::Write { envelope, release: None });
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Answer {
    Given,
    Fails,
    Lost,
}

/// Runs `steps`, then lets every source settle (everything answered, time
/// passing) so that each renews at least once more.
fn run(confirm: bool, seed: u64, steps: &[Step]) -> World {
    let mut world = World::new(confirm, seed);
    for step in steps {
        world.apply(step);
        prop_assert_never_reused(&world);
    }
    for _ in 0..40 {
        for i in 0..SOURCES {
            while !world.store_ops[i].is_empty() || !world.fetches[i].is_empty() {
                world.apply(&Step::Store(i));
                world.apply(&Step::Fetch(i));
            }
            world.apply(&Step::Want(i));
        }
        world.apply(&Step::Advance(Duration::from_secs(30)));
        prop_assert_never_reused(&world);
    }
    world
}

fn prop_assert_never_reused(world: &World) {
    assert_eq!(world.endpoint.reuses, 0, "a refresh token was spent twice");
}

proptest! {
    #![proptest_config(Config {
        cases: 1_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/sharing_props.txt"))),
        ..Config::default()
    })]

    #[test]
    fn with_confirmed_writes_a_refresh_token_is_never_spent_twice_across_failovers(
        seed in any::<u64>(),
        steps in prop::collection::vec(step(true), 1..=300),
    ) {
        let world = run(true, seed, &steps);
        // And the user stays signed in: once everything is answered, every source has a token.
        let now = world.now();
        for (i, source) in world.sources.iter().enumerate() {
            prop_assert!(source.current_token(now).is_some(), "source {i} has no token: {:?}", source.backoff());
        }
    }

    #[test]
    fn without_failovers_a_refresh_token_is_never_spent_twice(
        confirm in any::<bool>(),
        seed in any::<u64>(),
        steps in prop::collection::vec(step(false), 1..=300),
    ) {
        run(confirm, seed, &steps);
    }
}
