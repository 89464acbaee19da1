//! A fleet of token sources sharing one store, on simulated time: every
//! replica's lifecycle is driven by the same loop, store operations are
//! carried out on a [`MemoryStore`] (optionally failing), the token
//! endpoint answers after a latency and counts what it issues.

#![allow(clippy::disallowed_methods)] // one real Instant anchors simulated time

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_core::store::{MemoryStore, StoreConfig, StoreError};
use auth_core::{AccessToken, FetchId, Generation, Lifecycle, Output, SourceConfig, Want};

const SECS: fn(u64) -> Duration = Duration::from_secs;

struct Replica {
    lc: Lifecycle,
    /// The token this replica last handed out.
    token: Option<Arc<AccessToken>>,
}

struct Pending {
    done_at: Duration,
    replica: usize,
    id: FetchId,
    refresh: Option<String>,
}

struct Fleet {
    replicas: Vec<Replica>,
    store: MemoryStore,
    config: SourceConfig,
    t0: Instant,
    wall0: SystemTime,
    now: Duration,
    pending: VecDeque<Pending>,
    latency: Duration,
    lifetime: u64,
    /// Issue rotating refresh tokens; a spent one is answered `invalid_grant`.
    rotate: bool,
    issued: u64,
    fetches: u64,
    spent_refresh: HashSet<String>,
    refresh_reused: u64,
    /// Every n-th store operation fails (0: never).
    store_fails_every: u64,
    store_ops: u64,
    /// The store is down.
    store_down: bool,
    waits: u64,
    failed_calls: u64,
    expired_sent: u64,
}

impl Fleet {
    fn new(replicas: usize, latency: Duration, lifetime: u64) -> Self {
        let config = SourceConfig::builder("https://auth.example.com/token", "fleet-client")
            .client_secret("fleet-secret")
            .scope("offline_access")
            .build()
            .unwrap();
        let replicas = (0..replicas)
            .map(|i| Replica {
                lc: Lifecycle::with_store(config.clone(), 1000 + i as u64, StoreConfig::default()),
                token: None,
            })
            .collect();
        Self {
            replicas,
            store: MemoryStore::new(),
            config,
            t0: Instant::now(),
            wall0: UNIX_EPOCH + SECS(1_800_000_000),
            now: Duration::ZERO,
            pending: VecDeque::new(),
            latency,
            lifetime,
            rotate: false,
            issued: 0,
            fetches: 0,
            spent_refresh: HashSet::new(),
            refresh_reused: 0,
            store_fails_every: 0,
            store_ops: 0,
            store_down: false,
            waits: 0,
            failed_calls: 0,
            expired_sent: 0,
        }
    }

    fn instant(&self) -> Instant {
        self.t0 + self.now
    }

    fn wall(&self) -> SystemTime {
        self.wall0 + self.now
    }

    /// Carries out replica `i`'s outputs until it has none.
    fn drain(&mut self, i: usize) {
        while let Some(output) = self.replicas[i].lc.poll_output() {
            match output {
                Output::Store(request) => {
                    self.store_ops += 1;
                    let failing = self.store_down
                        || (self.store_fails_every > 0 && self.store_ops.is_multiple_of(self.store_fails_every));
                    let answer = if failing {
                        Err(StoreError::new("injected failure"))
                    } else {
                        Ok(self.store.apply(self.config.cache_key(), self.wall(), &request.op))
                    };
                    let (now, wall) = (self.instant(), self.wall());
                    self.replicas[i].lc.handle_store(now, wall, request.id, answer);
                }
                Output::Fetch(fetch) => {
                    self.fetches += 1;
                    let body = String::from_utf8(fetch.request.body().clone()).unwrap();
                    let refresh = form_urlencoded::parse(body.as_bytes())
                        .find(|(k, _)| k == "refresh_token")
                        .map(|(_, v)| v.into_owned());
                    self.pending.push_back(Pending {
                        done_at: self.now + self.latency,
                        replica: i,
                        id: fetch.id,
                        refresh,
                    });
                }
                Output::TokenReady(token) => self.replicas[i].token = Some(token),
                _ => {}
            }
        }
    }

    /// Completes the fetches due by now.
    fn complete_fetches(&mut self) {
        while let Some(index) = self.pending.iter().position(|p| p.done_at <= self.now) {
            let pending = self.pending.remove(index).unwrap();
            let body = match pending.refresh {
                Some(refresh) if !self.spent_refresh.insert(refresh.clone()) => {
                    self.refresh_reused += 1;
                    r#"{"error":"invalid_grant"}"#.to_owned()
                }
                _ => {
                    self.issued += 1;
                    let refresh =
                        if self.rotate { format!(r#","refresh_token":"rt-{}""#, self.issued) } else { String::new() };
                    format!(r#"{{"access_token":"tok-{}","expires_in":{}{refresh}}}"#, self.issued, self.lifetime)
                }
            };
            let status = if body.contains("error") { 400 } else { 200 };
            let response = http::Response::builder().status(status).body(body.into_bytes()).unwrap();
            let now = self.instant();
            self.replicas[pending.replica].lc.handle_fetch_response(now, pending.id, &response);
            self.drain(pending.replica);
        }
    }

    /// The next instant something is due, no later than `limit`.
    fn next_event(&self, limit: Duration) -> Duration {
        let mut next = limit;
        for replica in &self.replicas {
            if let Some(deadline) = replica.lc.poll_timeout() {
                next = next.min(deadline.saturating_duration_since(self.t0));
            }
        }
        for pending in &self.pending {
            next = next.min(pending.done_at);
        }
        next.max(self.now)
    }

    /// Runs every timer and fetch due up to `until`.
    fn run_until(&mut self, until: Duration) {
        let mut guard = 0;
        loop {
            let next = self.next_event(until);
            self.now = next;
            self.complete_fetches();
            for i in 0..self.replicas.len() {
                if self.replicas[i].lc.poll_timeout().is_some_and(|d| d <= self.instant()) {
                    let now = self.instant();
                    self.replicas[i].lc.handle_timeout(now);
                    self.drain(i);
                }
            }
            if next >= until {
                break;
            }
            guard += 1;
            assert!(guard < 1_000_000, "the simulation does not progress");
        }
    }

    /// Replica `i` needs a token now.
    fn want(&mut self, i: usize) -> Option<Generation> {
        let now = self.instant();
        let answer = self.replicas[i].lc.handle_token_wanted(now);
        self.drain(i);
        match answer {
            Want::Ready(token) => {
                if !token.is_usable(now) {
                    self.expired_sent += 1;
                }
                Some(token.generation())
            }
            Want::Wait => {
                self.waits += 1;
                None
            }
            _ => {
                self.failed_calls += 1;
                None
            }
        }
    }
}

#[test]
fn a_cold_fleet_makes_one_fetch_and_every_replica_gets_the_token() {
    let mut fleet = Fleet::new(8, Duration::from_millis(50), 3600);
    for i in 0..8 {
        assert!(fleet.want(i).is_none(), "nobody has a token yet");
    }
    fleet.run_until(SECS(2));
    assert_eq!(fleet.fetches, 1, "one fetch for the whole fleet");
    for i in 0..8 {
        assert!(fleet.want(i).is_some(), "replica {i} has the token");
        let token = fleet.replicas[i].token.as_ref().unwrap();
        assert_eq!(auth_core::secret::ExposeSecret::expose_secret(token.value()), "tok-1");
    }
    let adoptions: u64 = fleet.replicas.iter().map(|r| r.lc.stats().adoptions).sum();
    assert_eq!(adoptions, 7);
}

/// 100 replicas, a request per replica every 10 s, 1 h tokens, a day.
fn day(store_fails_every: u64) -> Fleet {
    let mut fleet = Fleet::new(100, Duration::from_millis(50), 3600);
    let mut t = Duration::ZERO;
    while t < SECS(24 * 3600) {
        fleet.run_until(t);
        for i in 0..100 {
            // Staggered: replica i asks at i * 100 ms into each 10 s.
            if t.as_millis() % 10_000 == (i as u128 * 100) % 10_000 {
                fleet.want(i);
            }
        }
        if t == SECS(60) {
            fleet.store_fails_every = store_fails_every;
            fleet.waits = 0;
        }
        t += Duration::from_millis(100);
    }
    fleet
}

#[test]
fn a_fleet_of_a_hundred_makes_one_fetch_per_token_lifetime() {
    let fleet = day(0);
    assert!(fleet.fetches <= 26, "{} fetches in a day for 100 replicas", fleet.fetches);
    assert_eq!(fleet.expired_sent, 0);
    assert_eq!(fleet.failed_calls, 0);
    assert_eq!(fleet.waits, 0, "no request waited after the first minute");
}

#[test]
fn store_failures_cost_few_fetches_and_no_request() {
    let fleet = day(20); // every 20th store operation fails: 5%
    assert!(fleet.fetches <= 40, "{} fetches in a day with 5% store failures", fleet.fetches);
    assert_eq!(fleet.expired_sent, 0);
    assert_eq!(fleet.failed_calls, 0);
    assert_eq!(fleet.waits, 0);
}

#[test]
fn with_the_store_down_every_replica_fetches_on_its_own_and_nobody_fails() {
    let mut fleet = Fleet::new(4, Duration::from_millis(50), 3600);
    fleet.store_down = true;
    for i in 0..4 {
        fleet.want(i);
    }
    fleet.run_until(SECS(1));
    assert_eq!(fleet.fetches, 4, "each replica fetched for itself");
    for i in 0..4 {
        assert!(fleet.want(i).is_some());
    }
    // The store comes back: the next renewals share again.
    fleet.store_down = false;
    let before = fleet.fetches;
    fleet.run_until(SECS(3 * 3600));
    for i in 0..4 {
        assert!(fleet.want(i).is_some());
    }
    assert!(fleet.fetches - before <= 4, "{} fetches for 3 renewals of 4 replicas", fleet.fetches - before);
    assert_eq!(fleet.failed_calls, 0);
}

#[test]
fn a_401_at_the_fleet_gives_one_new_token() {
    let mut fleet = Fleet::new(6, Duration::from_millis(50), 3600);
    for i in 0..6 {
        fleet.want(i);
    }
    fleet.run_until(SECS(1));
    assert_eq!(fleet.fetches, 1);
    fleet.run_until(SECS(600));
    // The API rejects tok-1: every replica gets a 401 for it.
    for i in 0..6 {
        let generation = fleet.replicas[i].token.as_ref().unwrap().generation();
        let now = fleet.instant();
        let _ = fleet.replicas[i].lc.handle_unauthorized(now, generation);
        fleet.drain(i);
    }
    fleet.run_until(SECS(605));
    assert_eq!(fleet.fetches, 2, "one new token for the fleet");
    for i in 0..6 {
        assert!(fleet.want(i).is_some());
        let token = fleet.replicas[i].token.as_ref().unwrap();
        assert_eq!(auth_core::secret::ExposeSecret::expose_secret(token.value()), "tok-2");
    }
}

#[test]
fn rotating_refresh_tokens_are_never_spent_twice() {
    let mut fleet = Fleet::new(10, Duration::from_millis(200), 600);
    fleet.rotate = true;
    let mut t = Duration::ZERO;
    while t < SECS(6 * 3600) {
        fleet.run_until(t);
        for i in 0..10 {
            fleet.want(i);
        }
        t += SECS(5);
    }
    assert_eq!(fleet.refresh_reused, 0, "a refresh token was spent twice");
    // One fetch per renewal period (a 600 s token is renewed 59-88 s before
    // its usable end at 590 s) for the fleet, and the cold start.
    let renewals = (6 * 3600) / (590 - 88) + 1;
    assert!(fleet.fetches <= renewals, "{} fetches, at most {renewals} renewals", fleet.fetches);
    assert_eq!(fleet.failed_calls, 0);
    assert_eq!(fleet.expired_sent, 0);
}

#[test]
fn a_lease_holder_that_dies_blocks_the_others_only_for_the_peer_wait() {
    let mut fleet = Fleet::new(3, Duration::from_millis(50), 3600);
    fleet.want(0);
    // Replica 0 took the lease and is fetching; it dies: its fetch never completes.
    assert_eq!(fleet.fetches, 1);
    fleet.pending.clear();
    fleet.want(1);
    fleet.want(2);
    fleet.run_until(SECS(9));
    assert!(fleet.want(1).is_none(), "still waiting for the peer");
    fleet.run_until(SECS(11));
    assert!(fleet.want(1).is_some() && fleet.want(2).is_some(), "fetched locally after the peer wait");
    assert!(fleet.fetches <= 3);
}
