//! A fleet of thousands of replicas for a day, on simulated time and
//! driven by events (each replica's next timeout, store answers, token
//! endpoint answers, requests), so that 10,000 replicas cost seconds: what
//! the shared store sees (operations per replica, the busiest second) and
//! how many tokens the fleet fetches.
//!
//! Each replica runs the real [`Lifecycle`] with a [`MemoryStore`] shared
//! by all (answering after `store_latency`), 1-hour tokens, the default
//! refresh policy (renewal at a jittered point before expiry, in the
//! background), and a request every `request_every` (staggered over the
//! replicas).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_core::store::{MemoryStore, StoreConfig, StoreRequest};
use auth_core::{FetchId, Lifecycle, Output, SourceConfig};

/// What happens at a simulated instant.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Replica `i` asks for a token.
    Want(usize),
    /// Replica `i`'s timeout may be due.
    Timeout(usize),
    /// The answer to replica `i`'s store operation `k` (an index into
    /// `in_flight`).
    StoreDone(usize, usize),
    /// The token endpoint answers replica `i`'s fetch.
    FetchDone(usize, u64),
}

/// What a large fleet's day counted.
#[derive(Debug, Clone)]
pub struct ScaleDay {
    /// Replicas.
    pub replicas: usize,
    /// Token requests of the whole fleet.
    pub fetches: u64,
    /// Store operations of the whole fleet, by kind.
    pub store_ops: BTreeMap<&'static str, u64>,
    /// The most store operations started in one simulated second.
    pub peak_ops_per_second: u64,
    /// The same after the cold start (the first request period): the
    /// renewals' peak.
    pub peak_ops_per_second_after_start: u64,
    /// Token lifetimes in the day (24 h / the lifetime).
    pub lifetimes: u64,
    /// Requests answered with a token the replica already held.
    pub served: u64,
    /// Requests that had to wait (a replica without a token).
    pub waited: u64,
    /// Requests handed a token past its usable end.
    pub expired_sent: u64,
}

impl ScaleDay {
    /// Store operations per replica per token lifetime.
    pub fn ops_per_replica_per_lifetime(&self) -> f64 {
        let total: u64 = self.store_ops.values().sum();
        total as f64 / self.replicas as f64 / self.lifetimes.max(1) as f64
    }
}

/// `replicas` replicas sharing one store for 24 h: 1-hour tokens, a token
/// endpoint answering after 50 ms, a store answering after
/// `store_latency`, a request per replica every `request_every`.
pub fn simulate_scale_day(replicas: usize, store_latency: Duration, request_every: Duration) -> ScaleDay {
    const LIFETIME: u64 = 3600;
    let day = Duration::from_secs(24 * 3600);
    let config = SourceConfig::builder("https://auth.example.com/token", "fleet-client")
        .client_secret("fleet-secret")
        .build()
        .expect("a configuration");
    let key = config.cache_key().clone();
    let store = MemoryStore::new();
    let (t0, wall0) = (Instant::now(), UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let mut lifecycles: Vec<Lifecycle> = (0..replicas)
        .map(|i| Lifecycle::with_store(config.clone(), 7_000 + i as u64, StoreConfig::default()))
        .collect();
    let mut queue: BinaryHeap<Reverse<(Duration, Event)>> = BinaryHeap::new();
    // Requests staggered over the first period; then one per period.
    let stagger = request_every.as_nanos() / replicas.max(1) as u128;
    for i in 0..replicas {
        let at = Duration::from_nanos(u64::try_from(stagger * i as u128).unwrap_or(0));
        queue.push(Reverse((at, Event::Want(i))));
    }
    let mut in_flight: Vec<Option<StoreRequest>> = Vec::new();
    let mut free_slots: Vec<usize> = Vec::new();
    let mut fetch_ids: Vec<Option<FetchId>> = vec![None; replicas];
    let mut report = ScaleDay {
        replicas,
        fetches: 0,
        store_ops: BTreeMap::new(),
        peak_ops_per_second: 0,
        peak_ops_per_second_after_start: 0,
        lifetimes: day.as_secs() / LIFETIME,
        served: 0,
        waited: 0,
        expired_sent: 0,
    };
    let mut per_second: BTreeMap<u64, u64> = BTreeMap::new();
    let mut issued = 0u64;
    // The next timeout each replica is queued for, so that one is queued once.
    let mut queued_timeout: Vec<Option<Duration>> = vec![None; replicas];

    while let Some(Reverse((now, event))) = queue.pop() {
        if now > day {
            break;
        }
        let (instant, wall) = (t0 + now, wall0 + now);
        let i = match event {
            Event::Want(i) => {
                match lifecycles[i].handle_token_wanted(instant) {
                    auth_core::Want::Ready(token) => {
                        report.served += 1;
                        if !token.is_usable(instant) {
                            report.expired_sent += 1;
                        }
                    }
                    _ => report.waited += 1,
                }
                queue.push(Reverse((now + request_every, Event::Want(i))));
                i
            }
            Event::Timeout(i) => {
                queued_timeout[i] = None;
                lifecycles[i].handle_timeout(instant);
                i
            }
            Event::StoreDone(i, k) => {
                if let Some(request) = in_flight[k].take() {
                    free_slots.push(k);
                    let answer = store.apply(&key, wall, &request.op);
                    lifecycles[i].handle_store(instant, wall, request.id, Ok(answer));
                }
                i
            }
            Event::FetchDone(i, n) => {
                if let Some(id) = fetch_ids[i].take() {
                    let body = format!(r#"{{"access_token":"tok-{n}","expires_in":{LIFETIME}}}"#);
                    let mut response = http::Response::new(body.into_bytes());
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, "application/json".parse().expect("a header"));
                    lifecycles[i].handle_fetch_response(instant, SystemTime::now(), id, &response);
                }
                i
            }
        };
        // Carry out what the replica asked for.
        while let Some(output) = lifecycles[i].poll_output() {
            match output {
                Output::Store(request) => {
                    *report.store_ops.entry(request.op.kind()).or_default() += 1;
                    *per_second.entry(now.as_secs()).or_default() += 1;
                    let k = match free_slots.pop() {
                        Some(k) => {
                            in_flight[k] = Some(request);
                            k
                        }
                        None => {
                            in_flight.push(Some(request));
                            in_flight.len() - 1
                        }
                    };
                    queue.push(Reverse((now + store_latency, Event::StoreDone(i, k))));
                }
                Output::Fetch(fetch) => {
                    report.fetches += 1;
                    issued += 1;
                    fetch_ids[i] = Some(fetch.id);
                    queue.push(Reverse((now + Duration::from_millis(50), Event::FetchDone(i, issued))));
                }
                _ => {}
            }
        }
        if let Some(deadline) = lifecycles[i].poll_timeout() {
            let at = deadline.saturating_duration_since(t0).max(now);
            if queued_timeout[i].is_none_or(|queued| at < queued) {
                queued_timeout[i] = Some(at);
                queue.push(Reverse((at, Event::Timeout(i))));
            }
        }
    }
    report.peak_ops_per_second = per_second.values().copied().max().unwrap_or(0);
    let start = request_every.as_secs().max(1);
    report.peak_ops_per_second_after_start = per_second.range(start..).map(|(_, n)| *n).max().unwrap_or(0);
    report
}
