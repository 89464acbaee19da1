//! A fleet of token sources sharing one store, on simulated time: every
//! replica's lifecycle is driven by the same loop, store operations are
//! carried out on a [`MemoryStore`] after a latency (and may fail), the
//! token endpoint answers after a latency and counts what it issues. Used
//! by the fleet tests and the fleet benchmark.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_core::store::StoreRequest;
use auth_core::store::{MemoryStore, StoreAnswer, StoreConfig, StoreError};
use auth_core::{AccessToken, FetchId, Generation, Lifecycle, Output, SourceConfig, Want};

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// One replica.
pub struct Replica {
    /// Its lifecycle.
    pub lc: Lifecycle,
    /// The token this replica last handed out.
    pub token: Option<Arc<AccessToken>>,
}

/// A fetch in flight.
pub struct Pending {
    done_at: Duration,
    replica: usize,
    id: FetchId,
    refresh: Option<String>,
}

/// The fleet, its store, its token endpoint and what they counted.
pub struct Fleet {
    /// The replicas.
    pub replicas: Vec<Replica>,
    store: MemoryStore,
    config: SourceConfig,
    t0: Instant,
    wall0: SystemTime,
    now: Duration,
    /// Fetches in flight.
    pub pending: VecDeque<Pending>,
    latency: Duration,
    lifetime: u64,
    /// Issue rotating refresh tokens; a spent one is answered `invalid_grant`.
    pub rotate: bool,
    issued: u64,
    /// Token requests the endpoint received.
    pub fetches: u64,
    spent_refresh: HashSet<String>,
    /// Refresh tokens spent a second time.
    pub refresh_reused: u64,
    /// The share of store operations that fail (0.0: none).
    pub store_failure_rate: f64,
    /// How long a store operation takes.
    pub store_latency: Duration,
    store_rng: fastrand::Rng,
    store_pending: VecDeque<(Duration, usize, StoreRequest)>,
    /// The store is down.
    pub store_down: bool,
    /// Calls told to wait.
    pub waits: u64,
    /// Calls that failed.
    pub failed_calls: u64,
    /// Calls handed a token past its usable end.
    pub expired_sent: u64,
    /// A replica of the store that applies each operation `replica_lag`
    /// after the primary (asynchronous replication), if any.
    replica: Option<MemoryStore>,
    replica_log: VecDeque<(Duration, auth_core::store::StoreOp)>,
    /// How far the replica is behind.
    pub replica_lag: Duration,
    /// Leases, claims and records count only once the replica has them
    /// (`WAIT` after the operation; the replica applies everything before
    /// it first, as replication keeps the order).
    pub confirm_writes: bool,
}

impl Fleet {
    /// `replicas` sharing one store, or each alone (`shared: false`), a
    /// token endpoint answering after `latency` with `lifetime`-second tokens.
    pub fn new(replicas: usize, latency: Duration, lifetime: u64) -> Self {
        Self::with_sharing(replicas, latency, lifetime, true)
    }

    /// Like [`Fleet::new`], with or without the shared store.
    pub fn with_sharing(replicas: usize, latency: Duration, lifetime: u64, shared: bool) -> Self {
        let config = SourceConfig::builder("https://auth.example.com/token", "fleet-client")
            .client_secret("fleet-secret")
            .scope("offline_access")
            .build()
            .unwrap();
        let replicas = (0..replicas)
            .map(|i| Replica {
                lc: if shared {
                    Lifecycle::with_store(config.clone(), 1000 + i as u64, StoreConfig::default())
                } else {
                    Lifecycle::new(config.clone(), 1000 + i as u64)
                },
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
            store_failure_rate: 0.0,
            store_latency: Duration::ZERO,
            store_rng: fastrand::Rng::with_seed(11),
            store_pending: VecDeque::new(),
            store_down: false,
            waits: 0,
            failed_calls: 0,
            expired_sent: 0,
            replica: None,
            replica_log: VecDeque::new(),
            replica_lag: Duration::ZERO,
            confirm_writes: false,
        }
    }

    /// Gives the store a replica that applies every operation `lag` later.
    pub fn with_replica(mut self, lag: Duration) -> Self {
        self.replica = Some(MemoryStore::new());
        self.replica_lag = lag;
        self
    }

    /// The replica becomes the store: operations it had not applied yet
    /// are lost, as in a failover of an asynchronously replicated Redis. A
    /// new replica follows it from its current record on (not its leases
    /// or budget log: one failover per simulation is what this models).
    pub fn failover(&mut self) {
        if let Some(replica) = self.replica.take() {
            self.replica_log.clear();
            self.store = replica;
            let fresh = MemoryStore::new();
            let key = self.config.cache_key().clone();
            if let auth_core::store::StoreAnswer::Envelope(Some(envelope)) =
                self.store.apply(&key, self.wall(), &auth_core::store::StoreOp::Read)
            {
                let write = auth_core::store::StoreOp::Write { envelope, release: None };
                fresh.apply(&key, self.wall(), &write);
            }
            self.replica = Some(fresh);
        }
    }

    /// Applies every operation the replica has not applied yet.
    fn replicate_all(&mut self) {
        let Some(replica) = &self.replica else { return };
        let (key, wall) = (self.config.cache_key().clone(), self.wall());
        for (_, op) in self.replica_log.drain(..) {
            replica.apply(&key, wall, &op);
        }
    }

    /// Applies the replica's operations that are due.
    fn replicate(&mut self) {
        let Some(replica) = &self.replica else { return };
        let key = self.config.cache_key().clone();
        while self.replica_log.front().is_some_and(|(due, _)| *due <= self.now) {
            if let Some((_, op)) = self.replica_log.pop_front() {
                replica.apply(&key, self.wall(), &op);
            }
        }
    }

    /// The simulated instant.
    pub fn instant(&self) -> Instant {
        self.t0 + self.now
    }

    fn wall(&self) -> SystemTime {
        self.wall0 + self.now
    }

    /// Carries out replica `i`'s outputs until it has none.
    pub fn drain(&mut self, i: usize) {
        while let Some(output) = self.replicas[i].lc.poll_output() {
            match output {
                Output::Store(request) if self.store_latency.is_zero() => self.answer_store(i, request),
                Output::Store(request) => {
                    self.store_pending.push_back((self.now + self.store_latency, i, request));
                }
                Output::Fetch(fetch) => {
                    self.fetches += 1;
                    let body = String::from_utf8_lossy(fetch.request.body()).into_owned();
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

    /// Carries out a store operation of replica `i` now.
    fn answer_store(&mut self, i: usize, request: StoreRequest) {
        let failing = self.store_down || self.store_rng.f64() < self.store_failure_rate;
        let answer = if failing {
            Err(StoreError::new("injected failure"))
        } else {
            let key = self.config.cache_key().clone();
            let answer = self.store.apply(&key, self.wall(), &request.op);
            let wrote = matches!(answer, StoreAnswer::Lease(true) | StoreAnswer::Written(true));
            if self.replica.is_some() && !matches!(request.op, auth_core::store::StoreOp::Read) {
                self.replica_log.push_back((self.now + self.replica_lag, request.op.clone()));
                if self.confirm_writes && wrote {
                    // Confirmed (WAIT): the replica has it, and all before it, before the answer.
                    self.replicate_all();
                }
            }
            Ok(answer)
        };
        let (now, wall) = (self.instant(), self.wall());
        self.replicas[i].lc.handle_store(now, wall, request.id, answer);
    }

    /// Completes the fetches and store operations due by now.
    fn complete_fetches(&mut self) {
        self.replicate();
        while let Some(index) = self.store_pending.iter().position(|(done_at, _, _)| *done_at <= self.now) {
            if let Some((_, replica, request)) = self.store_pending.remove(index) {
                self.answer_store(replica, request);
                self.drain(replica);
            }
        }
        while let Some(index) = self.pending.iter().position(|p| p.done_at <= self.now) {
            let Some(pending) = self.pending.remove(index) else { break };
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
            let mut response = http::Response::new(body.into_bytes());
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
            let now = self.instant();
            self.replicas[pending.replica].lc.handle_fetch_response(
                now,
                std::time::SystemTime::now(),
                pending.id,
                &response,
            );
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
        for (done_at, _, _) in &self.store_pending {
            next = next.min(*done_at);
        }
        if let Some((due, _)) = self.replica_log.front() {
            next = next.min(*due);
        }
        next.max(self.now)
    }

    /// Runs every timer, fetch and store operation due up to `until`.
    pub fn run_until(&mut self, until: Duration) {
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
    pub fn want(&mut self, i: usize) -> Option<Generation> {
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

/// What a simulated fleet day counted.
#[derive(Debug, Clone, Copy)]
pub struct FleetDay {
    /// Token requests.
    pub fetches: u64,
    /// Calls that waited after the first minute.
    pub waited_after_start: u64,
    /// Calls that failed.
    pub failed_calls: u64,
    /// Calls handed an expired token.
    pub expired_sent: u64,
}

/// `replicas` replicas for a day, a request per replica every 10 s, 1 h
/// tokens, a store with `store_latency` failing at `store_failure_rate`
/// (sharing) or no store at all.
pub fn simulate_fleet_day(replicas: usize, shared: bool, store_latency: Duration, store_failure_rate: f64) -> FleetDay {
    let mut fleet = Fleet::with_sharing(replicas, Duration::from_millis(50), 3600, shared);
    fleet.store_latency = store_latency;
    let mut t = Duration::ZERO;
    let period = 10_000 / replicas.max(1) as u128;
    while t < SECS(24 * 3600) {
        fleet.run_until(t);
        for i in 0..replicas {
            // Staggered: replica i asks at i * period ms into each 10 s.
            if t.as_millis() % 10_000 == (i as u128 * period) % 10_000 {
                fleet.want(i);
            }
        }
        if t == SECS(60) {
            fleet.store_failure_rate = store_failure_rate;
            fleet.waits = 0;
        }
        t += Duration::from_millis(100);
    }
    FleetDay {
        fetches: fleet.fetches,
        waited_after_start: fleet.waits,
        failed_calls: fleet.failed_calls,
        expired_sent: fleet.expired_sent,
    }
}
