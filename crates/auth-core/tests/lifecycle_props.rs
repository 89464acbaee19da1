//! Property tests of the token lifecycle: random sequences of inputs drive
//! the real [`Lifecycle`] beside a reference model that observes every
//! input and output and checks the invariants after every step.
//!
//! Run more cases with `PROPTEST_CASES=20000 cargo test -p auth-core --test lifecycle_props`.

#![allow(clippy::disallowed_methods)] // one real Instant anchors simulated time

use std::collections::HashMap;
use std::time::{Duration, Instant};

use auth_core::lifecycle::{Observation, TokenOrigin};
use auth_core::{
    FetchReason, GrantKind, Lifecycle, Output, RefreshPolicy, SourceConfig, SourceGrant, TokenError, Unauthorized,
    Want, WithdrawReason,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

/// The wall time the tests' answers arrive at (2027-01-15).
fn test_wall() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
}

const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
enum Failure {
    Status(u16),
    Provider(&'static str),
    Transport,
}

#[derive(Debug, Clone)]
enum Step {
    /// Let simulated time pass, firing every deadline on the way.
    Advance(Duration),
    /// A caller wants a token.
    Want,
    /// The fetch in flight (if any) succeeds.
    FetchOk { expires_in: Option<u64>, refresh_token: bool },
    /// The fetch in flight (if any) fails.
    FetchFails { failure: Failure, retry_after: Option<u64> },
    /// The API answers 401 to the token issued `back` generations ago
    /// (0: the latest; more than issued: a generation never seen).
    Unauthorized { back: u64 },
    /// The API accepts a request carrying the token issued `back`
    /// generations ago.
    Accepted { back: u64 },
    /// A user signs in (sign-in sources only; ignored otherwise).
    SignIn { expires_in: u64, refresh_token: bool },
    /// The API answers 403 `insufficient_scope` naming `read write` (a
    /// scope the configuration allows adding) or `admin` (one it does not).
    MoreScopes { allowed: bool },
    /// The token this source's are made from changed (a chained exchange).
    UpstreamChanged,
}

fn step() -> impl Strategy<Value = Step> {
    let advance = prop_oneof![
        (0u64..3_000).prop_map(Duration::from_millis),
        (0u64..120).prop_map(Duration::from_secs),
        (0u64..7_200).prop_map(Duration::from_secs),
    ]
    .prop_map(Step::Advance);
    let expires_in = prop_oneof![
        Just(None),
        Just(Some(0)),
        (1u64..20).prop_map(Some),
        (20u64..7_200).prop_map(Some),
        Just(Some(86_400)),
    ];
    let failure = prop_oneof![
        prop::sample::select(vec![500u16, 502, 503, 408, 429, 400, 404]).prop_map(Failure::Status),
        prop::sample::select(vec!["invalid_client", "invalid_scope", "invalid_grant", "temporarily_unavailable"])
            .prop_map(Failure::Provider),
        Just(Failure::Transport),
    ];
    prop_oneof![
        3 => advance,
        4 => Just(Step::Want),
        3 => (expires_in, any::<bool>()).prop_map(|(expires_in, refresh_token)| Step::FetchOk { expires_in, refresh_token }),
        2 => (failure, prop::option::of(0u64..400)).prop_map(|(failure, retry_after)| Step::FetchFails { failure, retry_after }),
        2 => (0u64..4).prop_map(|back| Step::Unauthorized { back }),
        1 => (0u64..3).prop_map(|back| Step::Accepted { back }),
        1 => (1u64..7_200, any::<bool>()).prop_map(|(expires_in, refresh_token)| Step::SignIn { expires_in, refresh_token }),
        1 => any::<bool>().prop_map(|allowed| Step::MoreScopes { allowed }),
        1 => Just(Step::UpstreamChanged),
    ]
}

struct TokenFacts {
    handle: auth_core::Generation,
    usable_until: Instant,
    renew_at: Instant,
    received_at: Instant,
    from_401: bool,
    rejected: bool,
    /// The API accepted it while it was current.
    accepted: bool,
    /// Asked with the scope a step-up added.
    wide: bool,
}

struct InFlight {
    id: auth_core::FetchId,
    sent_at: Instant,
    grant: GrantKind,
    /// Sent after a step-up added a scope.
    wide: bool,
    /// Started, or taken over, because of a 401.
    for_401: bool,
}

/// The reference model: what the machine may and must do, from what it was
/// told and what it said.
struct Model {
    config: SourceConfig,
    /// A user's source: renews only with a refresh token, never with client credentials.
    sign_in: bool,
    /// A `SignInRequired` was handed out since the last token.
    told_to_sign_in: bool,
    now: Instant,
    in_flight: Option<InFlight>,
    tokens: HashMap<u64, TokenFacts>,
    current: Option<u64>,
    last_generation: u64,
    waiting: bool,
    failures: u32,
    /// No fetch may start before this (a backoff's shortest possible end).
    not_before: Option<Instant>,
    /// After a transient failure: no fetch on a caller's demand before the
    /// first instant, and one due by the second once a caller was refused.
    demand_window: Option<(Instant, Instant)>,
    /// A caller was refused since the last failure.
    refused: bool,
    /// Set while a refresh grant's `invalid_grant` may start the fallback fetch at once.
    fallback_allowed: bool,
    /// Generations a 401 was reported for in the current step.
    rejected_now: Vec<u64>,
    /// The send time, expected lifetime and 401 origin of the token being delivered.
    delivering: Option<(Instant, Duration, bool)>,
    /// Whether the token being delivered was asked with the added scope.
    delivering_wide: bool,
    /// A step-up added a scope.
    widened: bool,
    /// A step-up is being reported in the current step.
    stepping_up_now: bool,
    /// The upstream's change is being reported in the current step: a
    /// renewal may start before the renewal point.
    upstream_changed_now: bool,
    /// A renewal an upstream change started is under way.
    upstream_renewing: bool,
}

impl Model {
    fn shortest_backoff(&self, error: &TokenError) -> Duration {
        let policy = self.config.backoff_policy();
        if matches!(error, TokenError::SignInRequired { .. }) {
            return policy.initial.saturating_sub(Duration::from_millis(1));
        }
        let exponent = self.failures.saturating_sub(1).min(64) as i32;
        let base = (policy.initial.as_secs_f64() * policy.multiplier.powi(exponent)).min(policy.max.as_secs_f64());
        let mut delay = Duration::from_secs_f64(base * (1.0 - policy.jitter));
        if !error.is_transient() {
            delay = delay.max(policy.permanent_delay);
        }
        if let Some(asked) = error.retry_after() {
            delay = delay.max(asked.min(policy.max_retry_after));
        }
        delay.saturating_sub(Duration::from_millis(1))
    }

    /// Checks one output against the model and updates the model.
    fn observe(&mut self, output: Output) {
        let now = self.now;
        match output {
            Output::Fetch(fetch) => {
                assert!(self.in_flight.is_none(), "two fetches in flight");
                if self.sign_in {
                    assert_eq!(fetch.grant, GrantKind::RefreshToken, "a user's source asked for client credentials");
                }
                let on_demand = self.refused
                    && self.current.is_none()
                    && self.demand_window.is_some_and(|(earliest, _)| now >= earliest);
                if !std::mem::take(&mut self.fallback_allowed) && !on_demand {
                    if let Some(not_before) = self.not_before {
                        assert!(now >= not_before, "fetch {:?} before the backoff ends", fetch.reason);
                    }
                }
                self.refused = false;
                if let Some(current) = self.current.filter(|_| !self.upstream_changed_now && !self.upstream_renewing) {
                    let facts = &self.tokens[&current];
                    assert!(now >= facts.renew_at, "fetch ({:?}) while a fresh token exists", fetch.reason);
                }
                if self.upstream_changed_now {
                    assert!(self.current.is_some(), "an upstream change renews only a source that holds a token");
                    assert_eq!(fetch.reason, FetchReason::Renewal);
                    assert_ne!(fetch.grant, GrantKind::RefreshToken, "a new subject is exchanged, not refreshed");
                    self.upstream_renewing = true;
                }
                let for_401 = fetch.reason == FetchReason::Unauthorized;
                self.in_flight =
                    Some(InFlight { id: fetch.id, sent_at: now, grant: fetch.grant, for_401, wide: self.widened });
            }
            Output::TokenReady(token) => {
                let (sent_at, lifetime, from_401) =
                    self.delivering.take().expect("a token appeared without a successful fetch");
                let margin = Duration::from_secs(10).min(lifetime / 10);
                let usable_until = sent_at + lifetime - margin;
                assert_eq!(token.usable_until(), usable_until, "usable_until counts from the send time");
                assert!(usable_until > now, "handed out a token that is already unusable");
                let usable = usable_until - sent_at;
                let window = usable.mul_f64(0.1).min(Duration::from_secs(60));
                let late_floor = now + (usable_until - now) / 2;
                assert!(token.renew_at() <= (usable_until - window).max(late_floor), "renewal window too short");
                assert!(token.renew_at() >= sent_at + usable / 2, "renewal before half the usable life");
                let widest = window.mul_f64(1.5).min(usable / 2) + Duration::from_micros(1);
                assert!(token.renew_at() >= usable_until - widest, "renewal window wider than policy and jitter allow");
                assert!(
                    token.renew_at() > now && token.renew_at() < usable_until,
                    "renewal point inside the usable life"
                );
                let generation = token.generation().get();
                assert!(generation > self.last_generation, "generations grow");
                self.last_generation = generation;
                self.tokens.insert(
                    generation,
                    TokenFacts {
                        handle: token.generation(),
                        usable_until,
                        renew_at: token.renew_at(),
                        received_at: now,
                        from_401,
                        rejected: false,
                        accepted: false,
                        wide: std::mem::take(&mut self.delivering_wide),
                    },
                );
                self.current = Some(generation);
                self.upstream_renewing = false;
                self.told_to_sign_in = false;
                // A token answers any refused caller's demand.
                self.refused = false;
                self.demand_window = None;
                self.waiting = false;
                self.failures = 0;
                self.not_before = None;
            }
            Output::Failed(error) => {
                self.delivering = None;
                self.upstream_renewing = false;
                if matches!(error, TokenError::SignInRequired { .. }) {
                    assert!(self.sign_in, "sign-in required from a client credentials source");
                    self.told_to_sign_in = true;
                }
                self.waiting = false;
                self.failures += 1;
                self.not_before = Some(now + self.shortest_backoff(&error));
                self.refused = false;
                self.demand_window = error.is_transient().then(|| {
                    let policy = self.config.backoff_policy();
                    let asked = error.retry_after().map_or(Duration::ZERO, |a| a.min(policy.max_retry_after));
                    let earliest =
                        policy.demand_retry.mul_f64(0.75).max(asked).saturating_sub(Duration::from_millis(1));
                    (now + earliest, now + policy.demand_retry.max(asked))
                });
            }
            Output::TokenWithdrawn { generation, reason } => {
                let generation = generation.get();
                let facts = self.tokens.get(&generation).expect("withdrew an unknown token");
                match reason {
                    WithdrawReason::Expired => assert!(now >= facts.usable_until, "withdrawn as expired too early"),
                    WithdrawReason::Rejected => {
                        assert!(self.rejected_now.contains(&generation), "withdrawn without a 401")
                    }
                    WithdrawReason::StepUp => {
                        assert!(self.stepping_up_now, "withdrawn for scopes without a step-up");
                        assert!(!facts.wide, "a token asked with the added scope was dropped for it: a loop");
                    }
                    other => panic!("unexpected withdrawal {other:?}"),
                }
                if self.current == Some(generation) {
                    self.current = None;
                }
            }
            other => panic!("unexpected output {other:?}"),
        }
    }
}

struct Harness {
    lc: Lifecycle,
    model: Model,
}

impl Harness {
    fn new(background: bool, sign_in: bool, seed: u64) -> Self {
        let grant = if sign_in { SourceGrant::SignIn } else { SourceGrant::ClientCredentials };
        let mut config =
            SourceConfig::builder("https://auth.example.com/token", "client").client_secret("secret").scope("read");
        if !sign_in {
            config = config.step_up_scopes(["write"]);
        }
        let config = config
            .grant(grant)
            .default_lifetime(DEFAULT_LIFETIME)
            .refresh_policy(RefreshPolicy { background, ..RefreshPolicy::default() })
            .build()
            .unwrap();
        let now = Instant::now();
        let mut lc = Lifecycle::new(config.clone(), seed);
        lc.observe(true);
        Self {
            lc,
            model: Model {
                config,
                sign_in,
                told_to_sign_in: false,
                now,
                in_flight: None,
                tokens: HashMap::new(),
                current: None,
                last_generation: 0,
                waiting: false,
                failures: 0,
                not_before: None,
                demand_window: None,
                refused: false,
                fallback_allowed: false,
                rejected_now: Vec::new(),
                delivering: None,
                delivering_wide: false,
                widened: false,
                stepping_up_now: false,
                upstream_changed_now: false,
                upstream_renewing: false,
            },
        }
    }

    fn drain(&mut self) {
        while let Some(output) = self.lc.poll_output() {
            self.model.observe(output);
        }
    }

    /// The token requests observed since the last call, and the tokens
    /// installed by them: each ended request is observed once, when it ends.
    fn observed_requests(&mut self) -> (usize, usize) {
        let observations: Vec<Observation> = std::iter::from_fn(|| self.lc.poll_observation()).collect();
        let requests = observations.iter().filter(|o| matches!(o, Observation::TokenRequest { .. })).count();
        let installed = observations
            .iter()
            .filter(|o| matches!(o, Observation::TokenInstalled { origin: TokenOrigin::Fetched, .. }))
            .count();
        (requests, installed)
    }

    fn complete(&mut self, answer: impl FnOnce(&mut Lifecycle, Instant, auth_core::FetchId)) {
        let Some(fetch) = self.model.in_flight.take() else { return };
        let was_waiting = self.model.waiting;
        let tokens_before = self.model.last_generation;
        let failures_before = self.lc.stats().failures;
        assert_eq!(self.observed_requests().0, 0, "a token request observed before it ended");
        answer(&mut self.lc, self.model.now, fetch.id);
        self.drain();
        let (requests, installed) = self.observed_requests();
        assert_eq!(requests, 1, "an ended token request observed once");
        assert!(installed <= 1, "one token installed per request at most");
        if was_waiting {
            let answered = self.model.last_generation > tokens_before || self.lc.stats().failures > failures_before;
            let fell_back = self.model.in_flight.is_some() && self.lc.has_waiters();
            assert!(answered || fell_back, "waiters left hanging after a fetch completed");
        }
        self.model.delivering = None;
    }

    fn apply(&mut self, step: &Step) {
        self.model.rejected_now.clear();
        self.model.stepping_up_now = false;
        match step {
            Step::UpstreamChanged => {
                let had_fetch = self.model.in_flight.is_some();
                self.model.upstream_changed_now = true;
                self.lc.handle_upstream_changed(self.model.now);
                self.drain();
                self.model.upstream_changed_now = false;
                if had_fetch {
                    assert!(self.lc.poll_output().is_none(), "a fetch under way is not doubled");
                }
            }
            Step::MoreScopes { allowed } => {
                let needed: Vec<String> = match allowed {
                    true => vec!["read".into(), "write".into()],
                    false => vec!["admin".into()],
                };
                let current_wide = self.model.current.map(|c| self.model.tokens[&c].wide);
                self.model.stepping_up_now = true;
                let widened = self.lc.handle_step_up(self.model.now, &needed);
                self.drain();
                self.model.stepping_up_now = false;
                if self.model.sign_in || !allowed {
                    assert!(!widened, "a step-up the configuration does not allow");
                    return;
                }
                if widened {
                    // Only the first step-up, or a token asked without the scope.
                    assert!(!self.model.widened || current_wide == Some(false), "a step-up loop");
                }
                if current_wide == Some(true) {
                    assert!(!widened, "a token asked with the scope is never dropped for it");
                }
                self.model.widened |= widened;
            }
            Step::Advance(duration) => {
                let target = self.model.now + *duration;
                let mut guard = 0;
                while let Some(deadline) = self.lc.poll_timeout().filter(|d| *d <= target) {
                    guard += 1;
                    assert!(guard < 10_000, "poll_timeout does not make progress");
                    self.model.now = deadline;
                    self.lc.handle_timeout(deadline);
                    self.drain();
                }
                self.model.now = target;
                if let Some((_, latest)) = self.model.demand_window.filter(|_| self.model.refused) {
                    let owed = self.model.current.is_none() && self.model.in_flight.is_none();
                    assert!(!owed || target < latest, "callers were refused, yet no retry by the demand deadline");
                }
            }
            Step::Want => {
                // A caller with no token to use is demand: it may start the retry.
                self.model.refused |= self.model.current.is_none() && self.model.in_flight.is_none();
                let answer = self.lc.handle_token_wanted(self.model.now);
                self.drain();
                match answer {
                    Want::Ready(token) => {
                        let generation = token.generation().get();
                        let facts = &self.model.tokens[&generation];
                        assert!(self.model.now < facts.usable_until, "handed out a token at or past its hard expiry");
                        assert!(!facts.rejected, "handed out a token the API rejected");
                        assert_eq!(self.model.current, Some(generation), "handed out a token that is not current");
                    }
                    Want::Wait => {
                        assert!(self.model.in_flight.is_some(), "told to wait with no fetch in flight");
                        self.model.waiting = true;
                    }
                    Want::Failed(_) => {
                        assert!(self.model.current.is_none(), "failed a caller while a valid token exists");
                        assert!(self.model.in_flight.is_none());
                        let (until, _) = self.lc.backoff().expect("failed a caller outside a backoff");
                        assert!(until > self.model.now);
                        if let Some((_, latest)) = self.model.demand_window {
                            assert!(self.model.now < latest, "refused a caller though the demand retry was due");
                        }
                        self.model.refused = true;
                    }
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            Step::FetchOk { expires_in, refresh_token } => {
                if let Some(fetch) = &self.model.in_flight {
                    let lifetime = match expires_in {
                        Some(seconds) if *seconds > 0 => Duration::from_secs(*seconds),
                        _ => DEFAULT_LIFETIME,
                    };
                    let usable_until = fetch.sent_at + lifetime - Duration::from_secs(10).min(lifetime / 10);
                    // A token that cannot be used any more on arrival is a failure, never handed out.
                    self.model.delivering =
                        (usable_until > self.model.now).then_some((fetch.sent_at, lifetime, fetch.for_401));
                    self.model.delivering_wide = fetch.wide;
                }
                let mut body = String::from(r#"{"access_token":"tok","token_type":"bearer""#);
                if let Some(seconds) = expires_in {
                    body.push_str(&format!(r#","expires_in":{seconds}"#));
                }
                if *refresh_token {
                    body.push_str(r#","refresh_token":"rt""#);
                }
                body.push('}');
                self.complete(|lc, now, id| {
                    lc.handle_fetch_response(now, test_wall(), id, &http::Response::new(body.into_bytes()))
                });
            }
            Step::FetchFails { failure, retry_after } => {
                let refresh_grant = self.model.in_flight.as_ref().is_some_and(|f| f.grant == GrantKind::RefreshToken);
                let mut response = http::Response::new(Vec::new());
                let mut transport = false;
                match failure {
                    Failure::Status(status) => {
                        *response.status_mut() = http::StatusCode::from_u16(*status).unwrap();
                        *response.body_mut() = b"<html>error</html>".to_vec();
                    }
                    Failure::Provider(code) => {
                        self.model.fallback_allowed = refresh_grant && *code == "invalid_grant";
                        *response.status_mut() = http::StatusCode::BAD_REQUEST;
                        *response.body_mut() = format!(r#"{{"error":"{code}"}}"#).into_bytes();
                    }
                    Failure::Transport => transport = true,
                }
                if let Some(seconds) = retry_after {
                    response.headers_mut().insert("retry-after", (*seconds).into());
                }
                self.complete(|lc, now, id| {
                    if transport {
                        lc.handle_fetch_failed(now, id, TokenError::transport("connection reset"));
                    } else {
                        lc.handle_fetch_response(now, test_wall(), id, &response);
                    }
                });
                if self.model.sign_in && self.fell_back(refresh_grant, failure) {
                    assert!(self.model.in_flight.is_none(), "a user's rejected refresh token was followed by a fetch");
                    assert!(self.model.told_to_sign_in, "a rejected refresh token must say: sign in again");
                    assert!(self.lc.refresh_token().is_none());
                    self.model.fallback_allowed = false;
                } else if std::mem::take(&mut self.model.fallback_allowed) || self.fell_back(refresh_grant, failure) {
                    let fetch = self.model.in_flight.as_ref().expect("invalid_grant on a refresh grant must fall back");
                    assert_eq!(fetch.grant, GrantKind::ClientCredentials, "the fallback uses client credentials");
                }
            }
            Step::SignIn { expires_in, refresh_token } => {
                if !self.model.sign_in {
                    return;
                }
                let lifetime = Duration::from_secs(*expires_in);
                let usable_until = self.model.now + lifetime - Duration::from_secs(10).min(lifetime / 10);
                self.model.delivering = (usable_until > self.model.now).then_some((self.model.now, lifetime, false));
                self.model.delivering_wide = false;
                let mut body = format!(r#"{{"access_token":"user","expires_in":{expires_in}"#);
                if *refresh_token {
                    body.push_str(r#","refresh_token":"user-rt""#);
                }
                body.push('}');
                let was_waiting = self.model.waiting;
                let answer = self.lc.handle_sign_in(
                    self.model.now,
                    std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                    self.model.now,
                    &http::Response::new(body.into_bytes()),
                );
                if answer.is_ok() {
                    // A refresh in flight is abandoned; waiters get the user's token.
                    self.model.in_flight = None;
                }
                self.drain();
                self.model.delivering = None;
                if answer.is_ok() {
                    assert!(!self.lc.has_waiters() && !self.model.waiting, "waiters left after a sign-in");
                    assert_eq!(self.lc.refresh_token().is_some(), *refresh_token, "the sign-in's refresh token only");
                } else {
                    assert_eq!(self.model.waiting, was_waiting);
                }
            }
            Step::Accepted { back } => {
                let Some(generation) = self.model.last_generation.checked_sub(*back).filter(|g| *g > 0) else { return };
                let handle = self.model.tokens[&generation].handle;
                self.lc.handle_accepted(handle);
                if self.model.current == Some(generation) {
                    self.model.tokens.get_mut(&generation).unwrap().accepted = true;
                }
                assert!(self.lc.poll_output().is_none(), "an acceptance asks for nothing");
            }
            Step::Unauthorized { back } => {
                let Some(generation) = self.model.last_generation.checked_sub(*back).filter(|g| *g > 0) else { return };
                let token = generation;
                self.model.rejected_now.push(token);
                let handle = self.model.tokens[&token].handle;
                let outcome = self.lc.handle_unauthorized(self.model.now, handle);
                let was_current = self.model.current == Some(token);
                let backing_off = self.lc.backoff().is_some_and(|(until, _)| until > self.model.now);
                self.drain();
                match outcome {
                    Unauthorized::Invalidated => {
                        assert!(was_current, "invalidated a token that was not current");
                        let facts = &self.model.tokens[&token];
                        assert!(
                            !facts.from_401
                                || facts.accepted
                                || self.model.now >= facts.received_at + Duration::from_secs(10),
                            "fetch loop: a token fetched after a 401 was invalidated again at once"
                        );
                        assert!(self.model.current.is_none(), "the rejected token was not withdrawn");
                        self.model.tokens.get_mut(&token).unwrap().rejected = true;
                        if let Some(fetch) = &mut self.model.in_flight {
                            fetch.for_401 = true;
                        }
                        if !backing_off {
                            assert!(self.model.in_flight.is_some(), "no fetch after a 401 invalidated the token");
                        }
                    }
                    Unauthorized::AlreadyReplaced => {
                        assert!(!was_current, "ignored a 401 for the current token");
                    }
                    Unauthorized::Suppressed { until } => {
                        assert!(was_current);
                        assert!(until > self.model.now);
                        assert!(
                            self.model.tokens[&token].from_401,
                            "suppressed a 401 for a token not fetched after a 401"
                        );
                        assert!(!self.model.tokens[&token].accepted, "suppressed a 401 for a token the API accepted");
                    }
                    other => panic!("unexpected outcome {other:?}"),
                }
            }
        }
        self.check_invariants();
    }

    /// Whether this failure was a refresh grant's `invalid_grant`, which
    /// must be answered with a client credentials fetch at once.
    fn fell_back(&self, refresh_grant: bool, failure: &Failure) -> bool {
        refresh_grant && matches!(failure, Failure::Provider("invalid_grant"))
    }

    fn check_invariants(&mut self) {
        let now = self.model.now;
        if let Some(deadline) = self.lc.poll_timeout() {
            assert!(deadline > now, "poll_timeout lies in the past");
        }
        if let Some(token) = self.lc.current_token(now) {
            assert!(now < token.usable_until());
            assert_eq!(self.model.current, Some(token.generation().get()));
        }
        assert_eq!(
            self.lc.fetch_in_flight(),
            self.model.in_flight.as_ref().map(|f| f.id),
            "model and machine disagree on the fetch in flight"
        );
        assert_eq!(self.lc.has_waiters(), self.model.waiting, "model and machine disagree on waiters");
    }
}

proptest! {
    #![proptest_config(Config {
        cases: 1_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/lifecycle_props.txt"))),
        ..Config::default()
    })]

    #[test]
    fn lifecycle_invariants_hold(background in any::<bool>(), sign_in in any::<bool>(), seed in any::<u64>(), steps in prop::collection::vec(step(), 1..=60)) {
        let mut harness = Harness::new(background, sign_in, seed);
        for step in &steps {
            harness.apply(step);
        }
    }
}
