use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::config::{BackoffPolicy, ClientAuth, RefreshPolicy, SourceConfigBuilder, SourceGrant, FETCH_BUDGET_WINDOW};
use crate::error::ErrorCode;
use crate::store::{StoreAnswer, StoreError, StoreOp};

/// A copy of a fetch request, to show it wrapped in an `Output`.
fn sim_fetch_copy(fetch: &FetchRequest) -> FetchRequest {
    let mut request = http::Request::new(fetch.request.body().clone());
    *request.uri_mut() = fetch.request.uri().clone();
    *request.headers_mut() = fetch.request.headers().clone();
    FetchRequest { id: fetch.id, grant: fetch.grant, reason: fetch.reason, request }
}
use crate::secret::{AccessTokenValue, ExposeSecret};

/// The wall time the tests' answers arrive at (2027-01-15).
fn test_wall() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
}

const SECS: fn(u64) -> Duration = Duration::from_secs;

struct Sim {
    lc: Lifecycle,
    t0: Instant,
    now: Instant,
}

fn builder() -> SourceConfigBuilder {
    SourceConfig::builder("https://auth.example.com/token", "client").client_secret("secret")
}

impl Sim {
    fn new(builder: SourceConfigBuilder) -> Self {
        let t0 = Instant::now();
        Self { lc: Lifecycle::new(builder.build().unwrap(), 42), t0, now: t0 }
    }
    fn at(&mut self, secs: f64) -> Instant {
        self.now = self.t0 + Duration::from_secs_f64(secs);
        self.now
    }
    fn outputs(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.lc.poll_output()).collect()
    }
    fn want(&mut self) -> Want {
        self.lc.handle_token_wanted(self.now)
    }
    /// Drains outputs and returns the single fetch among them.
    fn take_fetch(&mut self) -> FetchRequest {
        only_fetch(self.outputs())
    }
    fn respond(&mut self, id: FetchId, status: u16, body: &str) -> Vec<Output> {
        let mut response = Response::new(body.as_bytes().to_vec());
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        self.lc.handle_fetch_response(self.now, test_wall(), id, &response);
        self.outputs()
    }
    fn respond_token(&mut self, id: FetchId, value: &str, expires_in: u64) -> Arc<AccessToken> {
        let outputs = self.respond(id, 200, &format!(r#"{{"access_token":"{value}","expires_in":{expires_in}}}"#));
        match outputs.as_slice() {
            [Output::TokenReady(token)] => token.clone(),
            other => panic!("expected TokenReady, got {other:?}"),
        }
    }
    fn timeout(&mut self) -> Vec<Output> {
        self.lc.handle_timeout(self.now);
        self.outputs()
    }
    fn secs(&self, instant: Instant) -> f64 {
        instant.duration_since(self.t0).as_secs_f64()
    }
}

/// The single fetch among `outputs`.
fn only_fetch(outputs: Vec<Output>) -> FetchRequest {
    let mut fetches: Vec<FetchRequest> = outputs
        .into_iter()
        .filter_map(|o| match o {
            Output::Fetch(f) => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(fetches.len(), 1, "expected exactly one fetch");
    fetches.remove(0)
}

fn ready(want: Want) -> Arc<AccessToken> {
    match want {
        Want::Ready(token) => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn cold_start_is_single_flight() {
    let mut sim = Sim::new(builder());
    for _ in 0..100 {
        assert!(matches!(sim.want(), Want::Wait));
    }
    let fetch = sim.take_fetch();
    assert_eq!(fetch.reason, FetchReason::NoToken);
    assert_eq!(fetch.grant, GrantKind::ClientCredentials);
    assert!(sim.lc.has_waiters());
    sim.at(0.2);
    assert!(matches!(sim.want(), Want::Wait));
    assert!(sim.outputs().is_empty(), "no second fetch while one is in flight");
    let token = sim.respond_token(fetch.id, "tok-1", 3600);
    assert!(!sim.lc.has_waiters());
    assert_eq!(token.value().expose_secret(), "tok-1");
    assert_eq!(token.header_value(), "Bearer tok-1");
    assert_eq!(ready(sim.want()).generation(), token.generation());
    assert_eq!(sim.lc.stats().fetches, 1);
    assert_eq!(sim.lc.stats().waits, 101);
}

#[test]
fn expiry_counts_from_when_the_fetch_was_sent() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    sim.at(5.0);
    let token = sim.respond_token(fetch.id, "t", 60);
    assert_eq!(sim.secs(token.issued_at()), 0.0);
    assert_eq!(sim.secs(token.expires_at()), 60.0);
    // margin = min(10 s, 60 s / 10) = 6 s
    assert_eq!(sim.secs(token.usable_until()), 54.0);
    assert!(token.is_usable(sim.at(53.9)));
    assert!(!token.is_usable(sim.at(54.0)));
}

#[test]
fn renewal_windows_scale_with_the_lifetime() {
    for (lifetime, min_ahead, max_ahead) in
        [(10u64, 0.9, 1.35), (60, 5.4, 8.1), (3600, 60.0, 90.0), (86_400, 60.0, 90.0)]
    {
        for seed in 0..20 {
            let mut lc = Lifecycle::new(builder().build().unwrap(), seed);
            let t0 = Instant::now();
            lc.handle_token_wanted(t0);
            let Some(Output::Fetch(fetch)) = lc.poll_output() else { panic!() };
            let body = format!(r#"{{"access_token":"t","expires_in":{lifetime}}}"#);
            lc.handle_fetch_response(t0, test_wall(), fetch.id, &Response::new(body.into_bytes()));
            let token = lc.current_token(t0).unwrap().clone();
            let ahead = token.usable_until().duration_since(token.renew_at()).as_secs_f64();
            assert!(ahead >= min_ahead - 1e-6 && ahead <= max_ahead + 1e-6, "{lifetime}s token renewed {ahead}s ahead");
            let margin = token.expires_at().duration_since(token.usable_until()).as_secs_f64();
            assert!((margin - (lifetime as f64 / 10.0).min(10.0)).abs() < 1e-6);
            assert_eq!(lc.poll_timeout(), Some(token.renew_at()));
        }
    }
}

#[test]
fn jitter_is_seeded() {
    let renew_at = |seed| {
        let mut lc = Lifecycle::new(builder().build().unwrap(), seed);
        let t0 = Instant::now();
        lc.handle_token_wanted(t0);
        let Some(Output::Fetch(fetch)) = lc.poll_output() else { panic!() };
        lc.handle_fetch_response(
            t0,
            test_wall(),
            fetch.id,
            &Response::new(br#"{"access_token":"t","expires_in":3600}"#.to_vec()),
        );
        lc.current_token(t0).unwrap().usable_until() - lc.current_token(t0).unwrap().renew_at()
    };
    assert_eq!(renew_at(1), renew_at(1));
    let spread: std::collections::HashSet<_> = (0..10).map(renew_at).collect();
    assert!(spread.len() > 5, "different seeds spread renewal points");
}

#[test]
fn background_renewal_serves_the_old_token_meanwhile() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    let old = sim.respond_token(fetch.id, "old", 3600);
    let renew_at = sim.lc.poll_timeout().unwrap();
    sim.now = renew_at - Duration::from_millis(1);
    assert!(sim.timeout().is_empty(), "nothing before the renewal point");
    sim.now = renew_at;
    let renewal = only_fetch(sim.timeout());
    assert_eq!(renewal.reason, FetchReason::Renewal);
    // During the renewal callers get the old token at once.
    for _ in 0..10 {
        assert_eq!(ready(sim.want()).generation(), old.generation());
    }
    assert!(sim.outputs().is_empty(), "no second fetch");
    assert_eq!(sim.lc.poll_timeout(), Some(old.usable_until()));
    let new = sim.respond_token(renewal.id, "new", 3600);
    assert!(new.generation() > old.generation());
    assert_eq!(ready(sim.want()).value().expose_secret(), "new");
    assert_eq!(sim.lc.stats().waits, 1, "only the very first caller waited");
}

#[test]
fn without_background_renewal_the_next_caller_starts_it() {
    let mut sim = Sim::new(builder().refresh_policy(RefreshPolicy { background: false, ..RefreshPolicy::default() }));
    sim.want();
    let fetch = sim.take_fetch();
    let token = sim.respond_token(fetch.id, "t", 3600);
    assert_eq!(sim.lc.poll_timeout(), Some(token.usable_until()), "no renewal timer");
    sim.now = token.renew_at();
    assert!(sim.timeout().is_empty());
    assert_eq!(ready(sim.want()).generation(), token.generation());
    assert_eq!(sim.take_fetch().reason, FetchReason::Renewal);
}

#[test]
fn missing_expires_in_uses_the_default_lifetime() {
    let mut sim = Sim::new(builder().default_lifetime(SECS(600)));
    sim.want();
    let fetch = sim.take_fetch();
    let outputs = sim.respond(fetch.id, 200, r#"{"access_token":"t","expires_in":null}"#);
    let Some(Output::TokenReady(token)) = outputs.into_iter().next() else { panic!() };
    assert_eq!(token.lifetime(), SECS(600));
    assert!(!token.lifetime_from_provider());
}

#[test]
fn refresh_token_renewal_and_fallback() {
    let mut sim = Sim::new(builder().scope("offline_access"));
    sim.want();
    let first = sim.take_fetch();
    sim.respond(first.id, 200, r#"{"access_token":"a1","expires_in":3600,"refresh_token":"r1"}"#);
    assert_eq!(sim.lc.refresh_token().unwrap().expose_secret(), "r1");

    // Renewal uses the refresh token; a response without one keeps it.
    sim.now = sim.lc.poll_timeout().unwrap();
    let renewal = only_fetch(sim.timeout());
    assert_eq!(renewal.grant, GrantKind::RefreshToken);
    assert!(std::str::from_utf8(renewal.request.body()).unwrap().contains("refresh_token=r1"));
    sim.respond(renewal.id, 200, r#"{"access_token":"a2","expires_in":3600}"#);
    assert_eq!(sim.lc.refresh_token().unwrap().expose_secret(), "r1");

    // invalid_grant: the refresh token is dropped and client credentials used at once.
    sim.now = sim.lc.poll_timeout().unwrap();
    let renewal = only_fetch(sim.timeout());
    assert_eq!(renewal.grant, GrantKind::RefreshToken);
    let outputs = sim.respond(renewal.id, 400, r#"{"error":"invalid_grant","error_description":"expired"}"#);
    let fallback = only_fetch(outputs);
    assert_eq!(fallback.grant, GrantKind::ClientCredentials);
    assert!(sim.lc.refresh_token().is_none());
    assert!(sim.lc.backoff().is_none(), "a fallback is not a failure");
    sim.respond_token(fallback.id, "a3", 3600);
    assert_eq!(sim.lc.stats().refresh_fallbacks, 1);
    assert_eq!(sim.lc.stats().failures, 0);
}

fn sign_in_builder() -> SourceConfigBuilder {
    SourceConfig::builder("https://auth.example.com/token", "native-app")
        .grant(SourceGrant::SignIn)
        .sign_in_hint("run `tool login`")
}

/// A token endpoint answer with `body`.
fn answer(body: &str) -> Response<Vec<u8>> {
    let mut response = Response::new(body.as_bytes().to_vec());
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    response
}

fn sign_in_required(outputs: &[Output]) -> &TokenError {
    match outputs.iter().find(|o| matches!(o, Output::Failed(_))) {
        Some(Output::Failed(error @ TokenError::SignInRequired { .. })) => error,
        _ => panic!("expected SignInRequired, got {outputs:?}"),
    }
}

#[test]
fn a_sign_in_source_without_tokens_says_sign_in_and_sends_nothing() {
    let mut sim = Sim::new(sign_in_builder());
    assert_eq!(sim.lc.config().client_auth(), ClientAuth::None, "no secret: a public client");
    let Want::Failed(error) = sim.want() else { panic!("a caller must be refused") };
    assert!(matches!(&error, TokenError::SignInRequired { reason: SignInReason::NotSignedIn, .. }));
    let text = error.to_string();
    assert!(text.contains("sign-in required") && text.contains("run `tool login`"), "{text}");
    assert!(!error.is_transient());
    assert_eq!(error.kind(), "sign_in_required");
    assert!(!sim.outputs().iter().any(|o| matches!(o, Output::Fetch(_))));
    // Long after, still nothing is sent.
    sim.at(3600.0);
    assert!(matches!(sim.want(), Want::Failed(TokenError::SignInRequired { .. })));
    assert!(!sim.outputs().iter().any(|o| matches!(o, Output::Fetch(_))));
    assert_eq!(sim.lc.stats().fetches, 0);
}

#[test]
fn a_sign_in_source_renews_with_rotating_refresh_tokens_and_never_falls_back() {
    let mut sim = Sim::new(sign_in_builder());
    let wall = UNIX_EPOCH + SECS(1_800_000_000);
    let signed = answer(r#"{"access_token":"u1","expires_in":600,"refresh_token":"r1"}"#);
    let token = sim.lc.handle_sign_in(sim.now, wall, sim.now, &signed).unwrap();
    assert!(matches!(sim.outputs().as_slice(), [Output::TokenReady(_)]));
    assert_eq!(ready(sim.want()).generation(), token.generation());

    // Renewal: the refresh grant with r1, public client (client_id in the body).
    sim.now = sim.lc.poll_timeout().unwrap();
    let renewal = only_fetch(sim.timeout());
    assert_eq!(renewal.grant, GrantKind::RefreshToken);
    let body = std::str::from_utf8(renewal.request.body()).unwrap().to_owned();
    assert_eq!(body, "grant_type=refresh_token&client_id=native-app&refresh_token=r1");
    // Rotation: r2 replaces r1 at once.
    sim.respond(renewal.id, 200, r#"{"access_token":"u2","expires_in":600,"refresh_token":"r2"}"#);
    assert_eq!(sim.lc.refresh_token().unwrap().expose_secret(), "r2");
    sim.now = sim.lc.poll_timeout().unwrap();
    let renewal = only_fetch(sim.timeout());
    assert!(std::str::from_utf8(renewal.request.body()).unwrap().ends_with("refresh_token=r2"));

    // invalid_grant: sign-in required, with the provider's words; no client credentials.
    let outputs = sim.respond(renewal.id, 400, r#"{"error":"invalid_grant","error_description":"session ended"}"#);
    assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))), "{outputs:?}");
    let error = sign_in_required(&outputs).clone();
    let TokenError::SignInRequired { reason: SignInReason::RefreshRejected(rejected), .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(rejected.code, ErrorCode::InvalidGrant);
    assert!(error.to_string().contains("session ended"), "{error}");
    assert!(sim.lc.refresh_token().is_none());
    assert_eq!(sim.lc.stats().refresh_fallbacks, 0);
    // The access token is still served until it stops being usable; then callers are refused.
    assert!(matches!(sim.want(), Want::Ready(_)));
    let usable_until = sim.lc.current_token(sim.now).unwrap().usable_until();
    sim.now = usable_until + SECS(5);
    let Want::Failed(later) = sim.want() else { panic!("expected a refusal") };
    assert!(matches!(later, TokenError::SignInRequired { reason: SignInReason::RefreshRejected(_), .. }));
    sim.now += SECS(3600);
    assert!(matches!(sim.want(), Want::Failed(TokenError::SignInRequired { .. })));
    assert!(!sim.outputs().iter().any(|o| matches!(o, Output::Fetch(_))));
    assert_eq!(sim.lc.stats().fetches, 2);

    // A new sign-in ends it.
    let again = answer(r#"{"access_token":"u9","expires_in":600,"refresh_token":"r9"}"#);
    sim.lc.handle_sign_in(sim.now, wall, sim.now, &again).unwrap();
    assert_eq!(ready(sim.want()).value().expose_secret(), "u9");
}

#[test]
fn a_sign_in_without_a_refresh_token_forgets_the_previous_users() {
    let mut sim = Sim::new(sign_in_builder());
    let wall = UNIX_EPOCH + SECS(1_800_000_000);
    let first = answer(r#"{"access_token":"alice","expires_in":600,"refresh_token":"alice-rt"}"#);
    sim.lc.handle_sign_in(sim.now, wall, sim.now, &first).unwrap();
    let second = answer(r#"{"access_token":"bob","expires_in":600}"#);
    sim.lc.handle_sign_in(sim.now, wall, sim.now, &second).unwrap();
    assert!(sim.lc.refresh_token().is_none(), "alice's refresh token must not renew bob's session");
    sim.now = sim.lc.poll_timeout().unwrap();
    let outputs = sim.timeout();
    assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))));
    assert!(matches!(
        sign_in_required(&outputs),
        TokenError::SignInRequired { reason: SignInReason::NoRefreshToken, .. }
    ));
    // A bad answer changes nothing.
    let error = sim.lc.handle_sign_in(sim.now, wall, sim.now, &answer(r#"{"error":"invalid_grant"}"#)).unwrap_err();
    assert_eq!(error.code(), Some(&ErrorCode::InvalidGrant));
}

#[test]
fn sign_in_tokens_have_a_cache_key_of_their_own() {
    let app = builder().build().unwrap();
    let user = builder().grant(SourceGrant::SignIn).build().unwrap();
    assert_ne!(app.cache_key(), user.cache_key());
    assert!(user.cache_key().canonical().contains("grant_type=sign_in"));
    assert!(app.cache_key().canonical().contains("grant_type=client_credentials"));
    // With a secret, a sign-in source authenticates like any confidential client.
    assert_eq!(user.client_auth(), ClientAuth::Basic);
}

/// Runs a lifecycle's store operations on `store` (`ok`) or fails them,
/// returning the other outputs.
fn run_store(
    lc: &mut Lifecycle,
    store: &crate::store::MemoryStore,
    now: Instant,
    wall: SystemTime,
    ok: bool,
) -> Vec<Output> {
    let key = lc.config().cache_key().clone();
    let mut other = Vec::new();
    while let Some(output) = lc.poll_output() {
        match output {
            Output::Store(request) if ok => {
                let answer = store.apply(&key, wall, &request.op);
                lc.handle_store(now, wall, request.id, Ok(answer));
            }
            Output::Store(request) => lc.handle_store(now, wall, request.id, Err(StoreError::new("down"))),
            output => other.push(output),
        }
    }
    other
}

#[test]
fn a_planted_record_with_a_huge_generation_is_ignored_and_sharing_goes_on() {
    let store = crate::store::MemoryStore::new();
    let config = Arc::new(builder().build().unwrap());
    let t0 = Instant::now();
    let wall = UNIX_EPOCH + SECS(1_800_000_000);
    // Someone who can write the store plants a record with generation u64::MAX.
    let planted = crate::store::Record::from_parts(
        config.cache_key(),
        Some(crate::secret::AccessTokenValue::new("planted")),
        wall,
        wall + SECS(3600),
        true,
        None,
        None,
        false,
        0,
    );
    let write = StoreOp::Write { envelope: crate::store::Envelope::seal(&planted, u64::MAX), release: None };
    store.apply(config.cache_key(), wall, &write);
    let mut lc = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    assert!(matches!(lc.handle_token_wanted(t0), Want::Wait));
    // Not adopted: this replica fetches, and its write does not overflow.
    let fetch = only_fetch(run_store(&mut lc, &store, t0, wall, true));
    let mut response = Response::new(br#"{"access_token":"fresh","expires_in":3600}"#.to_vec());
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    lc.handle_fetch_response(t0, test_wall(), fetch.id, &response);
    let outputs = run_store(&mut lc, &store, t0, wall, true);
    let token = outputs.iter().find_map(|o| match o {
        Output::TokenReady(token) => Some(token.value().expose_secret().to_owned()),
        _ => None,
    });
    assert_eq!(token.as_deref(), Some("fresh"));
    assert!(lc.stats().store_errors >= 1, "the planted record is counted");
    // A generation just under the bound is still a replica's (clocks disagree).
    let near = crate::store::generation_bound(wall);
    let skewed = StoreOp::Write { envelope: crate::store::Envelope::seal(&planted, near), release: None };
    let other = crate::store::MemoryStore::new();
    other.apply(config.cache_key(), wall, &skewed);
    let mut peer = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
    assert!(matches!(peer.handle_token_wanted(t0), Want::Wait));
    assert!(run_store(&mut peer, &other, t0, wall, true).iter().any(|o| matches!(o, Output::TokenReady(_))));
}

#[test]
fn a_users_refresh_token_is_spent_only_under_the_lease() {
    let store = crate::store::MemoryStore::new();
    let config = Arc::new(sign_in_builder().build().unwrap());
    let t0 = Instant::now();
    let wall0 = UNIX_EPOCH + SECS(1_800_000_000);
    let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    let mut b = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
    // a signs in; the tokens land in the store with a generation above any renewal's.
    a.handle_sign_in(t0, wall0, t0, &answer(r#"{"access_token":"u1","expires_in":600,"refresh_token":"r1"}"#)).unwrap();
    run_store(&mut a, &store, t0, wall0, true);
    // b adopts them, refresh token included.
    assert!(matches!(b.handle_token_wanted(t0), Want::Wait));
    assert!(run_store(&mut b, &store, t0, wall0, true).iter().any(|o| matches!(o, Output::TokenReady(_))));
    assert_eq!(b.refresh_token().unwrap().expose_secret(), "r1");

    // Both reach the renewal point together. a takes the lease and refreshes.
    let now = a.poll_timeout().unwrap().max(b.poll_timeout().unwrap());
    let wall = wall0 + (now - t0);
    a.handle_timeout(now);
    let fetch_a = only_fetch(run_store(&mut a, &store, now, wall, true));
    // b finds the lease taken: it waits, however long a takes, and never spends r1.
    b.handle_timeout(now);
    let mut later = now;
    for _ in 0..200 {
        assert!(!run_store(&mut b, &store, later, wall0 + (later - t0), true)
            .iter()
            .any(|o| matches!(o, Output::Fetch(_))));
        later = b.poll_timeout().unwrap();
        b.handle_timeout(later);
        if later > now + SECS(30) {
            break;
        }
    }
    // a gets r2 and writes it; b adopts it.
    a.handle_fetch_response(
        later,
        test_wall(),
        fetch_a.id,
        &answer(r#"{"access_token":"u2","expires_in":600,"refresh_token":"r2"}"#),
    );
    run_store(&mut a, &store, later, wall0 + (later - t0), true);
    let next = b.poll_timeout().unwrap();
    b.handle_timeout(next);
    assert!(run_store(&mut b, &store, next, wall0 + (next - t0), true)
        .iter()
        .any(|o| matches!(o, Output::TokenReady(t) if t.value().expose_secret() == "u2")));
    assert_eq!(b.refresh_token().unwrap().expose_secret(), "r2");
    assert_eq!(b.stats().fetches, 0);

    // With the store down, b does not spend r2 without the lease: callers get StoreUnavailable.
    let far = next + SECS(3600);
    let wall = wall0 + (far - t0);
    assert!(matches!(b.handle_token_wanted(far), Want::Wait));
    let mut outputs = run_store(&mut b, &store, far, wall, false);
    let mut at = far;
    while !outputs.iter().any(|o| matches!(o, Output::Failed(_))) {
        assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))), "spent without the lease");
        at = b.poll_timeout().expect("the store is tried again");
        b.handle_timeout(at);
        outputs = run_store(&mut b, &store, at, wall0 + (at - t0), false);
    }
    assert!(at - far >= StoreConfig::default().peer_wait, "tried until the patience ran out");
    let Some(Output::Failed(error)) = outputs.iter().find(|o| matches!(o, Output::Failed(_))) else { panic!() };
    assert!(matches!(error, TokenError::StoreUnavailable { .. }) && error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("claimed it in the store"), "{error}");
    assert_eq!(b.stats().fetches, 0);
}

#[test]
fn a_rejected_refresh_token_is_not_taken_from_the_store_again() {
    let store = crate::store::MemoryStore::new();
    let config = Arc::new(sign_in_builder().build().unwrap());
    let t0 = Instant::now();
    let wall0 = UNIX_EPOCH + SECS(1_800_000_000);
    let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    a.handle_sign_in(t0, wall0, t0, &answer(r#"{"access_token":"u1","expires_in":600,"refresh_token":"r1"}"#)).unwrap();
    run_store(&mut a, &store, t0, wall0, true);
    let now = t0 + SECS(700);
    let wall = wall0 + SECS(700);
    assert!(matches!(a.handle_token_wanted(now), Want::Wait));
    let fetch = only_fetch(run_store(&mut a, &store, now, wall, true));
    a.handle_fetch_response(now, test_wall(), fetch.id, &answer(r#"{"error":"invalid_grant"}"#));
    sign_in_required(&run_store(&mut a, &store, now, wall, true));
    // Every later caller reads the store again, finds r1 there, and does not spend it.
    for step in 1..20u64 {
        let now = now + SECS(step * 5);
        let _ = a.handle_token_wanted(now);
        let outputs = run_store(&mut a, &store, now, wall + SECS(step * 5), true);
        assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))), "{outputs:?}");
    }
    assert_eq!(a.stats().fetches, 1);
}

#[test]
fn unauthorized_invalidates_the_current_generation_once() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    let first = sim.respond_token(fetch.id, "t1", 3600);
    sim.at(100.0);
    assert_eq!(sim.lc.handle_unauthorized(sim.now, first.generation()), Unauthorized::Invalidated);
    let outputs = sim.outputs();
    assert!(matches!(outputs[0], Output::TokenWithdrawn { reason: WithdrawReason::Rejected, .. }));
    let refetch = only_fetch(outputs);
    assert_eq!(refetch.reason, FetchReason::Unauthorized);
    // The rest of the burst: same generation, nothing more happens.
    for _ in 0..99 {
        assert_eq!(sim.lc.handle_unauthorized(sim.now, first.generation()), Unauthorized::AlreadyReplaced);
    }
    assert!(sim.outputs().is_empty());
    assert!(matches!(sim.want(), Want::Wait), "the rejected token is never handed out again");
    let second = sim.respond_token(refetch.id, "t2", 3600);
    // A late 401 for the old generation does not discard the new token.
    assert_eq!(sim.lc.handle_unauthorized(sim.now, first.generation()), Unauthorized::AlreadyReplaced);
    assert_eq!(ready(sim.want()).generation(), second.generation());
    assert_eq!(sim.lc.stats().fetches, 2);
    assert_eq!(sim.lc.stats().invalidations, 1);
}

#[test]
fn a_rejected_fresh_token_does_not_start_a_fetch_loop() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    let t1 = sim.respond_token(fetch.id, "t1", 3600);
    sim.at(10.0);
    assert_eq!(sim.lc.handle_unauthorized(sim.now, t1.generation()), Unauthorized::Invalidated);
    let refetch = sim.take_fetch();
    let t2 = sim.respond_token(refetch.id, "t2", 3600);
    // t2 is rejected right away: the API rejects fresh tokens.
    let outcome = sim.lc.handle_unauthorized(sim.now, t2.generation());
    let Unauthorized::Suppressed { until } = outcome else { panic!("{outcome:?}") };
    assert!(!outcome.should_replay());
    assert_eq!(sim.secs(until), 20.0);
    assert!(sim.outputs().is_empty());
    assert_eq!(ready(sim.want()).generation(), t2.generation());
    // After the guard, one more try; the guard then doubles.
    sim.at(20.0);
    assert_eq!(sim.lc.handle_unauthorized(sim.now, t2.generation()), Unauthorized::Invalidated);
    let refetch = sim.take_fetch();
    let t3 = sim.respond_token(refetch.id, "t3", 3600);
    let Unauthorized::Suppressed { until } = sim.lc.handle_unauthorized(sim.now, t3.generation()) else { panic!() };
    assert_eq!(sim.secs(until), 40.0);
    assert_eq!(sim.lc.stats().fetches, 3);
}

#[test]
fn a_renewed_token_the_api_accepted_is_renewed_again_on_a_401_however_soon() {
    // A provider revokes tokens in the middle of their life, twice in
    // a row: the token fetched for the first 401 was accepted, so the
    // second 401 is a revocation too, not a token the API never takes.
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    let t1 = sim.respond_token(fetch.id, "t1", 3600);
    sim.at(10.0);
    assert_eq!(sim.lc.handle_unauthorized(sim.now, t1.generation()), Unauthorized::Invalidated);
    let refetch = sim.take_fetch();
    let t2 = sim.respond_token(refetch.id, "t2", 3600);
    sim.lc.handle_accepted(t1.generation()); // an old token's answer settles nothing
    sim.lc.handle_accepted(t2.generation());
    sim.at(11.0);
    assert_eq!(sim.lc.handle_unauthorized(sim.now, t2.generation()), Unauthorized::Invalidated);
    let refetch = sim.take_fetch();
    assert_eq!(refetch.reason, FetchReason::Unauthorized);
    let t3 = sim.respond_token(refetch.id, "t3", 3600);
    // t3 is refused before any acceptance: now the guard holds.
    let outcome = sim.lc.handle_unauthorized(sim.now, t3.generation());
    let Unauthorized::Suppressed { until } = outcome else { panic!("{outcome:?}") };
    assert_eq!(sim.secs(until), 21.0, "the streak restarted with the accepted token: the base delay");
    assert_eq!(sim.lc.stats().fetches, 3);
    assert_eq!(sim.lc.stats().suppressed, 1);
}

#[test]
fn transient_failure_keeps_serving_the_valid_token_then_surfaces_at_expiry() {
    let backoff = BackoffPolicy { jitter: 0.0, ..BackoffPolicy::default() };
    let mut sim = Sim::new(builder().backoff_policy(backoff));
    sim.want();
    let fetch = sim.take_fetch();
    let token = sim.respond_token(fetch.id, "t", 3600);
    sim.now = token.renew_at();
    let renewal = only_fetch(sim.timeout());
    let outputs = sim.respond(renewal.id, 503, "<h1>unavailable</h1>");
    assert!(matches!(&outputs[..], [Output::Failed(e)] if e.is_transient()));
    let (until, _) = sim.lc.backoff().unwrap();
    assert_eq!(until - sim.now, SECS(1));
    assert_eq!(ready(sim.want()).generation(), token.generation(), "still-valid token served");
    assert!(sim.outputs().is_empty(), "no fetch before the backoff ends");
    assert_eq!(sim.lc.poll_timeout(), Some(until));
    sim.now = until;
    let retry = only_fetch(sim.timeout());
    sim.respond(retry.id, 500, "oops");
    assert_eq!(sim.lc.backoff().unwrap().0 - sim.now, SECS(2), "exponential");
    // The outage goes on: the timer retries at each backoff end while the
    // old token is still served, until the token is truly expired.
    let mut retries = 0;
    loop {
        sim.now = sim.lc.poll_timeout().unwrap();
        let outputs = sim.timeout();
        if outputs.iter().any(|o| matches!(o, Output::TokenWithdrawn { reason: WithdrawReason::Expired, .. })) {
            break;
        }
        let retry = only_fetch(outputs);
        assert_eq!(ready(sim.want()).generation(), token.generation());
        sim.respond(retry.id, 500, "oops");
        retries += 1;
    }
    assert_eq!(sim.now, token.usable_until());
    assert!(retries >= 4, "{retries} retries in the renewal window");
    // No token now, and the last failure is older than the demand delay:
    // the first caller starts a retry and waits on it.
    assert!(matches!(sim.want(), Want::Wait));
    let retry = sim.take_fetch();
    sim.respond(retry.id, 500, "oops");
    // Callers now get the error at once...
    match sim.want() {
        Want::Failed(TokenError::Status { status: 500, .. }) => {}
        other => panic!("{other:?}"),
    }
    // ...and their demand brings the next try to within 2 s, though the
    // backoff is much longer by now.
    let (until, _) = sim.lc.backoff().unwrap();
    let demand_at = sim.lc.poll_timeout().unwrap();
    assert!(demand_at - sim.now <= SECS(2) && demand_at - sim.now >= Duration::from_millis(1500));
    assert!(until > demand_at);
    sim.now = demand_at;
    let fetch = only_fetch(sim.timeout());
    assert_eq!(fetch.reason, FetchReason::NoToken);
    sim.respond_token(fetch.id, "healed", 3600);
    assert_eq!(ready(sim.want()).value().expose_secret(), "healed");
}

#[test]
fn callers_get_a_token_within_two_seconds_of_healing_after_a_long_outage() {
    let mut sim = Sim::new(builder());
    let healed_at = 30.0 * 60.0;
    let mut fetches = 0;
    let mut first_token_at = None;
    // A caller every 100 ms for 35 minutes; the endpoint fails for 30.
    let mut t = 0.0;
    while t < 35.0 * 60.0 {
        sim.at(t);
        let mut outputs = sim.timeout();
        if let Want::Ready(_) = sim.want() {
            first_token_at.get_or_insert(t);
            break;
        }
        outputs.extend(sim.outputs());
        for output in outputs {
            if let Output::Fetch(fetch) = output {
                fetches += 1;
                if t < healed_at {
                    sim.respond(fetch.id, 503, "down");
                } else {
                    sim.respond_token(fetch.id, "healed", 3600);
                }
            }
        }
        t += 0.1;
    }
    let first = first_token_at.expect("a token after the outage");
    assert!(first >= healed_at && first <= healed_at + 2.05, "token at {first}s, healed at {healed_at}s");
    // At most one try every 1.5 s while callers kept asking.
    assert!(fetches <= (healed_at / 1.5) as usize + 2, "{fetches} fetches");
    assert!(fetches >= (healed_at / 2.0) as usize - 2, "{fetches} fetches");
}

#[test]
fn without_demand_the_backoff_grows_and_permanent_errors_keep_theirs() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    sim.respond(fetch.id, 503, "down");
    // Nobody asks: the timer follows the backoff only (no token, no deadline).
    assert_eq!(sim.lc.poll_timeout(), None);
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    sim.respond(fetch.id, 401, r#"{"error":"invalid_client"}"#);
    assert!(matches!(sim.want(), Want::Failed(_)));
    assert_eq!(sim.lc.poll_timeout(), None, "a permanent error is not retried on demand");
    sim.at(30.0);
    assert!(matches!(sim.want(), Want::Failed(_)), "still within the permanent delay");
}

#[test]
fn retry_after_is_honoured() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    let mut response = Response::new(b"slow down".to_vec());
    *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
    response.headers_mut().insert("retry-after", "30".parse().unwrap());
    sim.lc.handle_fetch_response(sim.now, test_wall(), fetch.id, &response);
    assert!(matches!(&sim.outputs()[..], [Output::Failed(e)] if e.retry_after() == Some(SECS(30))));
    assert_eq!(sim.lc.backoff().unwrap().0 - sim.now, SECS(30));
    sim.at(29.0);
    assert!(matches!(sim.want(), Want::Failed(_)));
    assert!(sim.outputs().is_empty());
    sim.at(30.0);
    assert!(matches!(sim.want(), Want::Wait));
    sim.take_fetch();
}

#[test]
fn retry_after_as_an_http_date_is_read_against_the_wall_time_given() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    let mut response = Response::new(b"down for maintenance".to_vec());
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    let date = httpdate::fmt_http_date(test_wall() + SECS(45));
    response.headers_mut().insert("retry-after", date.parse().unwrap());
    sim.lc.handle_fetch_response(sim.now, test_wall(), fetch.id, &response);
    assert!(matches!(&sim.outputs()[..], [Output::Failed(e)] if e.retry_after() == Some(SECS(45))));
    assert_eq!(sim.lc.backoff().unwrap().0 - sim.now, SECS(45));
}

#[test]
fn permanent_errors_reach_waiters_at_once_and_back_off_long() {
    let mut sim = Sim::new(builder());
    sim.want();
    sim.want();
    let fetch = sim.take_fetch();
    let outputs = sim.respond(fetch.id, 401, r#"{"error":"invalid_client","error_description":"bad secret"}"#);
    let [Output::Failed(error)] = &outputs[..] else { panic!("{outputs:?}") };
    assert_eq!(error.code(), Some(&ErrorCode::InvalidClient));
    assert!(!sim.lc.has_waiters());
    assert!(sim.lc.backoff().unwrap().0 - sim.now >= SECS(60));
    match sim.want() {
        Want::Failed(e) => assert_eq!(&e, error),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_token_that_expires_in_flight_is_an_error_not_a_loop() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    sim.at(20.0);
    let outputs = sim.respond(fetch.id, 200, r#"{"access_token":"t","expires_in":10}"#);
    assert!(matches!(&outputs[..], [Output::Failed(TokenError::ExpiredOnArrival { .. })]));
    assert!(sim.lc.current_token(sim.now).is_none());
    assert!(sim.lc.backoff().is_some());
}

#[test]
fn answers_to_other_fetches_are_ignored() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    let bogus = FetchId(fetch.id.get() + 7);
    assert!(sim.respond(bogus, 200, r#"{"access_token":"x"}"#).is_empty());
    sim.lc.handle_fetch_failed(sim.now, bogus, TokenError::transport("reset"));
    assert!(sim.outputs().is_empty());
    assert_eq!(sim.lc.fetch_in_flight(), Some(fetch.id));
    sim.lc.handle_fetch_failed(sim.now, fetch.id, TokenError::transport("connection refused"));
    assert!(matches!(&sim.outputs()[..], [Output::Failed(TokenError::Transport { .. })]));
}

#[test]
fn discard_forgets_both_tokens() {
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    sim.respond(fetch.id, 200, r#"{"access_token":"a","refresh_token":"r","expires_in":3600}"#);
    sim.lc.handle_discard(sim.now);
    assert!(matches!(&sim.outputs()[..], [Output::TokenWithdrawn { reason: WithdrawReason::Discarded, .. }]));
    assert!(sim.lc.refresh_token().is_none());
    assert!(sim.lc.poll_timeout().is_none());
    assert!(matches!(sim.want(), Want::Wait));
    assert_eq!(sim.take_fetch().grant, GrantKind::ClientCredentials);
}

#[test]
fn provider_text_never_echoes_the_tokens_we_hold() {
    let mut sim = Sim::new(builder().scope("offline_access"));
    sim.want();
    let fetch = sim.take_fetch();
    sim.respond(fetch.id, 200, r#"{"access_token":"access-AAAA","refresh_token":"refresh-BBBB","expires_in":3600}"#);
    // The access token is rejected (withdrawn) before the renewal fails.
    let generation = sim.lc.current_token(sim.now).unwrap().generation();
    assert_eq!(sim.lc.handle_unauthorized(sim.now, generation), Unauthorized::Invalidated);
    let renewal = sim.take_fetch();
    let outputs = sim.respond(renewal.id, 502, "<p>upstream failed for refresh-BBBB and access-AAAA</p>");
    let [Output::Failed(error)] = &outputs[..] else { panic!("{outputs:?}") };
    let text = error.to_string();
    assert!(!text.contains("refresh-BBBB") && !text.contains("access-AAAA"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}

#[test]
fn restored_lifetimes_are_clamped_like_fetched_ones() {
    let mut sim = Sim::new(builder());
    let forever = StoredToken::new(Some(AccessTokenValue::new("saved")), Duration::MAX, None, None);
    sim.lc.handle_restore(sim.now, forever);
    let [Output::TokenReady(token)] = &sim.outputs()[..] else { panic!() };
    assert_eq!(token.lifetime(), crate::wire::response::MAX_LIFETIME);
}

#[test]
fn revoking_forgets_both_tokens_and_asks_for_both_revocations() {
    let mut sim = Sim::new(builder().revocation_url("https://auth.example.com/revoke"));
    sim.want();
    let fetch = sim.take_fetch();
    sim.respond(fetch.id, 200, r#"{"access_token":"at-1","refresh_token":"rt-1","expires_in":3600}"#);
    let requests = sim.lc.handle_revoke(sim.now).unwrap();
    let kinds: Vec<_> = requests.iter().map(|r| r.kind()).collect();
    assert_eq!(kinds, [crate::wire::request::TokenKind::RefreshToken, crate::wire::request::TokenKind::AccessToken]);
    assert!(sim.lc.refresh_token().is_none() && sim.lc.current_token(sim.now).is_none());
    assert!(matches!(sim.outputs()[..], [Output::TokenWithdrawn { reason: WithdrawReason::Discarded, .. }]));
    // Without a revocation URL nothing is forgotten.
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    sim.respond_token(fetch.id, "kept", 3600);
    assert_eq!(sim.lc.handle_revoke(sim.now).unwrap_err(), ConfigError::NoRevocationUrl);
    assert!(sim.lc.current_token(sim.now).is_some());
}

#[test]
fn backoff_arithmetic_saturates_at_the_widest_policy() {
    let widest = BackoffPolicy {
        initial: Duration::from_secs(3600),
        max: Duration::from_secs(86_400),
        multiplier: 10.0,
        jitter: 0.0,
        ..BackoffPolicy::default()
    };
    let mut sim = Sim::new(builder().backoff_policy(widest));
    for _ in 0..80 {
        sim.now += Duration::from_secs(86_400);
        sim.timeout();
        sim.want();
        if let Some(fetch) = sim.outputs().into_iter().find_map(|o| match o {
            Output::Fetch(f) => Some(f),
            _ => None,
        }) {
            sim.respond(fetch.id, 500, "down");
        }
    }
    assert!(sim.lc.stats().failures >= 40);
    assert_eq!(sim.lc.backoff().unwrap().0 - sim.now, Duration::from_secs(86_400));
}

#[test]
fn restore_and_snapshot_round_trip() {
    let mut sim = Sim::new(builder());
    let stored = StoredToken::new(
        Some(AccessTokenValue::new("saved")),
        SECS(1800),
        Some(RefreshToken::new("r")),
        Some("s".into()),
    );
    sim.lc.handle_restore(sim.now, stored);
    let outputs = sim.outputs();
    let [Output::TokenReady(token)] = &outputs[..] else { panic!("{outputs:?}") };
    assert_eq!(token.value().expose_secret(), "saved");
    assert_eq!(token.expires_at() - sim.now, SECS(1800));
    assert_eq!(ready(sim.want()).generation(), token.generation());
    assert!(sim.outputs().is_empty(), "no fetch: the restored token is used");
    sim.at(600.0);
    let snapshot = sim.lc.snapshot(sim.now).unwrap();
    assert_eq!(snapshot.expires_in, SECS(1200));
    assert_eq!(snapshot.refresh_token.unwrap().expose_secret(), "r");
    assert_eq!(snapshot.scope.as_deref(), Some("s"));
    // An expired saved token is not used; its refresh token is.
    let mut sim = Sim::new(builder());
    sim.lc.handle_restore(
        sim.now,
        StoredToken::new(Some(AccessTokenValue::new("old")), Duration::ZERO, Some(RefreshToken::new("r2")), None),
    );
    assert!(sim.outputs().is_empty());
    assert!(matches!(sim.want(), Want::Wait));
    assert_eq!(sim.take_fetch().grant, GrantKind::RefreshToken);
}

#[test]
fn a_spent_budget_serves_the_token_until_unusable_then_says_when() {
    let refresh = RefreshPolicy { jitter: 0.0, ..RefreshPolicy::default() };
    let mut sim = Sim::new(builder().max_fetches_per_day(2).refresh_policy(refresh));
    sim.want();
    let fetch = sim.take_fetch();
    // A refused request is given back: it does not count.
    sim.respond(fetch.id, 503, "down");
    sim.now = sim.lc.backoff().unwrap().0;
    let first_at = sim.now;
    assert!(matches!(sim.want(), Want::Wait));
    let first = sim.take_fetch();
    let token = sim.respond_token(first.id, "t1", 3600);
    sim.now = token.renew_at();
    let second = only_fetch(sim.timeout());
    let token = sim.respond_token(second.id, "t2", 3600);
    sim.now = token.renew_at();
    let outputs = sim.timeout();
    assert!(
        matches!(&outputs[..], [Output::Failed(TokenError::BudgetSpent { limit: 2, shared: false, .. })]),
        "{outputs:?}"
    );
    assert_eq!(ready(sim.want()).generation(), token.generation(), "the current token is still served");
    assert!(sim.outputs().is_empty());
    sim.now = token.usable_until();
    sim.timeout();
    let allowed_at = sim.now + SECS(1);
    let error = match sim.want() {
        Want::Failed(error) => error,
        other => panic!("{other:?}"),
    };
    // The window started with the first counted fetch (the refused one was given back).
    let expected = (first_at + FETCH_BUDGET_WINDOW).duration_since(sim.now);
    assert_eq!(error.retry_after(), Some(expected));
    let text = error.to_string();
    assert!(text.contains("token budget is spent: 2 token requests in the last 24 hours by this process"), "{text}");
    assert!(text.contains("the next is allowed in 22h"), "{text}");
    assert!(allowed_at < first_at + FETCH_BUDGET_WINDOW);
    assert_eq!(sim.lc.stats().budget_refusals, 1);
    assert_eq!(sim.lc.stats().budget_refunds, 1);
    // When the first fetch leaves the window, the next caller fetches.
    sim.now = first_at + FETCH_BUDGET_WINDOW;
    assert!(matches!(sim.want(), Want::Wait));
    let third = sim.take_fetch();
    sim.respond_token(third.id, "t3", 3600);
}

#[test]
fn a_budget_in_the_store_is_shared_by_every_source() {
    let store = crate::store::MemoryStore::new();
    let config = Arc::new(builder().max_fetches_per_day(1).build().unwrap());
    let t0 = Instant::now();
    let wall0 = UNIX_EPOCH + SECS(1_800_000_000);
    let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    let mut b = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
    // Runs store operations until the source asks for something else.
    let run = |lc: &mut Lifecycle, now: Instant| -> Vec<Output> {
        let mut other = Vec::new();
        while let Some(output) = lc.poll_output() {
            match output {
                Output::Store(request) => {
                    let wall = wall0 + (now - t0);
                    let answer = store.apply(config.cache_key(), wall, &request.op);
                    lc.handle_store(now, wall, request.id, Ok(answer));
                }
                output => other.push(output),
            }
        }
        other
    };
    assert!(matches!(a.handle_token_wanted(t0), Want::Wait));
    let fetch = only_fetch(run(&mut a, t0));
    // Another cache key's worth of traffic does not matter; the same key's does.
    let mut response = Response::new(br#"{"access_token":"shared","expires_in":60}"#.to_vec());
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    a.handle_fetch_response(t0, test_wall(), fetch.id, &response);
    run(&mut a, t0);
    // b adopts a's token: no fetch, nothing spent.
    assert!(matches!(b.handle_token_wanted(t0), Want::Wait));
    assert!(run(&mut b, t0).iter().any(|o| matches!(o, Output::TokenReady(_))));
    // Both tokens expire; the fleet's one fetch of the day is spent.
    let later = t0 + SECS(120);
    assert!(matches!(b.handle_token_wanted(later), Want::Wait));
    let outputs = run(&mut b, later);
    let Some(Output::Failed(TokenError::BudgetSpent { shared: true, retry_at: Some(at), retry_in, .. })) =
        outputs.iter().find(|o| matches!(o, Output::Failed(_)))
    else {
        panic!("{outputs:?}")
    };
    assert_eq!(*at, wall0 + FETCH_BUDGET_WINDOW, "when a's fetch leaves the window");
    assert_eq!(*retry_in, FETCH_BUDGET_WINDOW - SECS(120));
    assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))));
    assert!(matches!(b.handle_token_wanted(later), Want::Failed(TokenError::BudgetSpent { .. })));
    // The lease was given back: a can try too, and is refused the same way.
    assert!(matches!(a.handle_token_wanted(later), Want::Wait));
    assert!(run(&mut a, later).iter().any(|o| matches!(o, Output::Failed(TokenError::BudgetSpent { .. }))));
    assert_eq!(a.stats().fetches + b.stats().fetches, 1);
}

#[test]
fn a_store_outage_is_reported_once_and_its_end_once() {
    let config = Arc::new(builder().build().unwrap());
    let t0 = Instant::now();
    let wall = UNIX_EPOCH + SECS(1_800_000_000);
    let mut lc = Lifecycle::with_store(Arc::clone(&config), 7, StoreConfig::default());
    let health = std::cell::RefCell::new(Vec::new());
    let answer = |lc: &mut Lifecycle, now: Instant, ok: bool| {
        let mut fetch = None;
        while let Some(output) = lc.poll_output() {
            match output {
                Output::Store(request) => {
                    let result = if ok { Ok(StoreAnswer::Envelope(None)) } else { Err(StoreError::new("down")) };
                    lc.handle_store(now, wall, request.id, result);
                }
                Output::StoreHealth { available, error } => health.borrow_mut().push((available, error.is_some())),
                Output::Fetch(f) => fetch = Some(f.id),
                _ => {}
            }
        }
        fetch
    };
    // Three acquisitions while the store fails: each fetches locally.
    for round in 0..3u64 {
        let now = t0 + SECS(round * 4000);
        lc.handle_token_wanted(now);
        let id = answer(&mut lc, now, false).expect("a local fetch");
        let mut response = Response::new(br#"{"access_token":"t","expires_in":3600}"#.to_vec());
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        lc.handle_fetch_response(now, test_wall(), id, &response);
        answer(&mut lc, now, false);
    }
    assert!(lc.stats().store_errors >= 6);
    assert_eq!(*health.borrow(), vec![(false, true)], "said once");
    let now = t0 + SECS(12_000 + 4000);
    lc.handle_token_wanted(now);
    answer(&mut lc, now, true);
    assert_eq!(*health.borrow(), vec![(false, true), (true, false)], "and its end once");
}

#[test]
fn a_budget_of_zero_or_too_many_is_refused() {
    for limit in [0, 100_001] {
        let error = builder().max_fetches_per_day(limit).build().unwrap_err();
        assert!(
            error.to_string().contains("max_fetches_per_day") && error.to_string().contains("1 to 100000"),
            "{error}"
        );
    }
    assert!(builder().max_fetches_per_day(100_000).build().is_ok());
}

#[test]
fn debug_shows_no_secret() {
    for auth in [ClientAuth::Basic, ClientAuth::Post, ClientAuth::Json] {
        let mut sim = Sim::new(builder().client_secret("client-secret-789").client_auth(auth));
        sim.want();
        let fetch = sim.take_fetch();
        let shown = format!("{fetch:?} {:?}", Output::Fetch(sim_fetch_copy(&fetch)));
        crate::wire::request::tests::assert_no_secret(&shown, &["client-secret-789"]);
        assert!(shown.contains("ClientCredentials") && shown.contains("/token"), "{shown}");
        let refresh = sim.respond(fetch.id, 200, r#"{"access_token":"a","refresh_token":"refresh-token-321"}"#);
        assert_eq!(refresh.len(), 1);
        sim.now = sim.lc.poll_timeout().unwrap();
        let renewal = only_fetch(sim.timeout());
        assert_eq!(renewal.grant, GrantKind::RefreshToken);
        crate::wire::request::tests::assert_no_secret(
            &format!("{renewal:?}"),
            &["client-secret-789", "refresh-token-321"],
        );
    }
    let mut sim = Sim::new(builder());
    sim.want();
    let fetch = sim.take_fetch();
    let token = sim.respond_token(fetch.id, "visible-token-value", 3600);
    let shown = format!("{:?} {:?}", sim.lc, token);
    assert!(!shown.contains("visible-token-value"), "{shown}");
}

#[test]
fn a_discard_deletes_the_restored_record_even_when_its_access_token_expired() {
    let config = Arc::new(builder().build().unwrap());
    let key = config.cache_key().clone();
    let wall = test_wall();
    let t0 = Instant::now();
    let stored_record = |access: &str| {
        let record = crate::store::Record::from_parts(
            &key,
            Some(AccessTokenValue::new(access)),
            wall - SECS(7200),
            wall - SECS(3600),
            true,
            None,
            Some(RefreshToken::new("r")),
            false,
            0,
        );
        StoreOp::Write { envelope: crate::store::Envelope::seal(&record, 1), release: None }
    };
    let held = |store: &crate::store::MemoryStore| {
        !matches!(store.apply(&key, wall, &StoreOp::Read), StoreAnswer::Envelope(None))
    };
    let restored = |access: &str, expires_in| {
        StoredToken::new(Some(AccessTokenValue::new(access)), expires_in, Some(RefreshToken::new("r")), None)
    };
    // Expired: not installed, yet the record holding it (and the refresh
    // token beside it) is deleted on discard.
    let store = crate::store::MemoryStore::new();
    store.apply(&key, wall, &stored_record("old"));
    let mut lc = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    lc.handle_restore(t0, restored("old", Duration::ZERO));
    assert!(run_store(&mut lc, &store, t0, wall, true).is_empty(), "not installed");
    lc.handle_discard(t0);
    run_store(&mut lc, &store, t0, wall, true);
    assert!(!held(&store), "the record is deleted");
    assert!(lc.snapshot(t0).is_none(), "and the refresh token forgotten here");
    // A record that holds another token (a peer renewed since) is kept.
    let store = crate::store::MemoryStore::new();
    store.apply(&key, wall, &stored_record("peer's"));
    let mut lc = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    lc.handle_restore(t0, restored("old", Duration::ZERO));
    lc.handle_discard(t0);
    run_store(&mut lc, &store, t0, wall, true);
    assert!(held(&store), "compare-and-delete: not ours");
    // Still valid: installed, and deleted on discard as the current token.
    let store = crate::store::MemoryStore::new();
    store.apply(&key, wall, &stored_record("valid"));
    let mut lc = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    lc.handle_restore(t0, restored("valid", SECS(600)));
    assert!(matches!(run_store(&mut lc, &store, t0, wall, true)[..], [Output::TokenReady(_)]));
    lc.handle_discard(t0);
    run_store(&mut lc, &store, t0, wall, true);
    assert!(!held(&store));
}

/// Two sign-in sources sharing `store`: `a` signed in (u1, r1) at `t0`
/// and `b` adopted the tokens.
fn signed_in_pair(store: &crate::store::MemoryStore, t0: Instant, wall0: SystemTime) -> (Lifecycle, Lifecycle) {
    let config = Arc::new(sign_in_builder().build().unwrap());
    let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    let mut b = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
    a.handle_sign_in(t0, wall0, t0, &answer(r#"{"access_token":"u1","expires_in":600,"refresh_token":"r1"}"#)).unwrap();
    run_store(&mut a, store, t0, wall0, true);
    assert!(matches!(b.handle_token_wanted(t0), Want::Wait));
    run_store(&mut b, store, t0, wall0, true);
    assert_eq!(b.refresh_token().unwrap().expose_secret(), "r1");
    (a, b)
}

/// The stored record.
fn stored(store: &crate::store::MemoryStore, lc: &Lifecycle, wall: SystemTime) -> crate::store::Record {
    match store.apply(lc.config().cache_key(), wall, &StoreOp::Read) {
        StoreAnswer::Envelope(Some(envelope)) => envelope.open(lc.config().cache_key()).unwrap(),
        other => panic!("{other:?}"),
    }
}

/// Steps `lc` through its timeouts from `from` (store answering) until it
/// fails, asserting that it sends no token request; returns the error and
/// when it came.
fn fails_without_fetching(
    lc: &mut Lifecycle,
    store: &crate::store::MemoryStore,
    t0: Instant,
    wall0: SystemTime,
    from: Instant,
) -> (TokenError, Instant) {
    let mut at = from;
    let mut outputs = run_store(lc, store, at, wall0 + (at - t0), true);
    for _ in 0..10_000 {
        assert!(!outputs.iter().any(|o| matches!(o, Output::Fetch(_))), "spent a refresh token: {outputs:?}");
        if let Some(Output::Failed(error)) = outputs.iter().find(|o| matches!(o, Output::Failed(_))) {
            return (error.clone(), at);
        }
        at = lc.poll_timeout().expect("a wait ends");
        lc.handle_timeout(at);
        outputs = run_store(lc, store, at, wall0 + (at - t0), true);
    }
    panic!("never failed");
}

/// `a` reaches its renewal point and, the store answering, claims its
/// refresh token and sends it: the instant, its wall time and the request.
fn renews(
    a: &mut Lifecycle,
    store: &crate::store::MemoryStore,
    t0: Instant,
    wall0: SystemTime,
) -> (Instant, SystemTime, FetchRequest) {
    let now = a.poll_timeout().unwrap();
    let wall = wall0 + (now - t0);
    a.handle_timeout(now);
    (now, wall, only_fetch(run_store(a, store, now, wall, true)))
}

/// The refresh answer that rotates to `u2` / `r2`.
const ROTATED: &str = r#"{"access_token":"u2","expires_in":600,"refresh_token":"r2"}"#;

#[test]
fn a_holder_paused_past_its_lease_is_the_only_one_to_spend_its_claimed_refresh_token() {
    let store = crate::store::MemoryStore::new();
    let (t0, wall0) = (Instant::now(), UNIX_EPOCH + SECS(1_800_000_000));
    let (mut a, mut b) = signed_in_pair(&store, t0, wall0);
    // a claims r1 and sends it; then it stops (a paused process) with the request unanswered.
    let (now, wall, fetch) = renews(&mut a, &store, t0, wall0);
    assert_eq!(a.stats().refresh_claims, 1);
    assert!(stored(&store, &a, wall).claimant().is_some());
    // b renews past a's lease: it finds r1 claimed, waits, and never spends it.
    let later = now + StoreConfig::default().lease_ttl + SECS(1);
    let _ = b.handle_token_wanted(later);
    b.handle_timeout(later);
    let (error, failed_at) = fails_without_fetching(&mut b, &store, t0, wall0, later);
    assert!(matches!(&error, TokenError::RefreshClaimed { by } if by.len() == 8), "{error:?}");
    assert!(error.is_transient() && error.to_string().contains("sign in again"), "{error}");
    assert!(b.stats().claim_waits > 0 && b.stats().fetches == 0);
    // a wakes up, gets r2 and writes it; b takes it on its next try.
    a.handle_fetch_response(failed_at, test_wall(), fetch.id, &answer(ROTATED));
    run_store(&mut a, &store, failed_at, wall0 + (failed_at - t0), true);
    let retry = b.backoff().map(|(until, _)| until).unwrap();
    b.handle_timeout(retry);
    let _ = b.handle_token_wanted(retry);
    let outputs = run_store(&mut b, &store, retry, wall0 + (retry - t0), true);
    assert!(outputs.iter().any(|o| matches!(o, Output::TokenReady(t) if t.value().expose_secret() == "u2")));
    assert_eq!(b.refresh_token().unwrap().expose_secret(), "r2");
    assert_eq!(b.stats().fetches, 0);
}

#[test]
fn a_claim_over_a_record_that_changed_is_refused_and_the_peers_token_taken() {
    let store = crate::store::MemoryStore::new();
    let (t0, wall0) = (Instant::now(), UNIX_EPOCH + SECS(1_800_000_000));
    let (mut a, mut b) = signed_in_pair(&store, t0, wall0);
    // a wins the lease and reads; its claim is held back (a paused before it reached the store).
    let now = a.poll_timeout().unwrap();
    let wall = wall0 + (now - t0);
    a.handle_timeout(now);
    let key = a.config().cache_key().clone();
    let held = loop {
        let Some(Output::Store(request)) = a.poll_output() else { panic!("a store operation") };
        if matches!(request.op, StoreOp::CompareAndSet { .. }) {
            break request;
        }
        let answer = store.apply(&key, wall, &request.op);
        a.handle_store(now, wall, request.id, Ok(answer));
    };
    // Past a's lease, b claims r1, spends it, and writes r2.
    let later = now + StoreConfig::default().lease_ttl + SECS(1);
    let wall_later = wall0 + (later - t0);
    b.handle_timeout(later);
    let fetch = only_fetch(run_store(&mut b, &store, later, wall_later, true));
    b.handle_fetch_response(later, test_wall(), fetch.id, &answer(ROTATED));
    run_store(&mut b, &store, later, wall_later, true);
    // a's claim reaches the store: refused (not the record a read); a reads and takes b's tokens.
    let answer = store.apply(&key, wall_later, &held.op);
    assert!(matches!(answer, StoreAnswer::Written(false)));
    a.handle_store(later, wall_later, held.id, Ok(answer));
    let outputs = run_store(&mut a, &store, later, wall_later, true);
    assert!(outputs.iter().any(|o| matches!(o, Output::TokenReady(t) if t.value().expose_secret() == "u2")));
    assert_eq!((a.stats().fetches, a.refresh_token().unwrap().expose_secret()), (0, "r2"));
}

#[test]
fn a_claimed_refresh_token_the_provider_rejects_is_rejected_for_every_peer() {
    let store = crate::store::MemoryStore::new();
    let (t0, wall0) = (Instant::now(), UNIX_EPOCH + SECS(1_800_000_000));
    let (mut a, mut b) = signed_in_pair(&store, t0, wall0);
    let (now, wall, fetch) = renews(&mut a, &store, t0, wall0);
    a.handle_fetch_response(now, test_wall(), fetch.id, &answer(r#"{"error":"invalid_grant"}"#));
    sign_in_required(&run_store(&mut a, &store, now, wall, true));
    assert!(stored(&store, &a, wall).is_refresh_rejected());
    // b does not wait for a claimant that will write nothing: the user must sign in.
    b.handle_timeout(now + SECS(1));
    let (error, at) = fails_without_fetching(&mut b, &store, t0, wall0, now + SECS(1));
    assert!(
        matches!(&error, TokenError::SignInRequired { reason: SignInReason::RefreshRejectedElsewhere, .. }),
        "{error:?}"
    );
    assert!(at - now < SECS(2), "at once, not after the patience");
    assert!(b.refresh_token().is_none());
}

#[test]
fn tokens_bought_with_a_claim_are_written_again_until_the_store_takes_them() {
    let store = crate::store::MemoryStore::new();
    let (t0, wall0) = (Instant::now(), UNIX_EPOCH + SECS(1_800_000_000));
    let (mut a, mut b) = signed_in_pair(&store, t0, wall0);
    let (now, wall, fetch) = renews(&mut a, &store, t0, wall0);
    a.handle_fetch_response(now, test_wall(), fetch.id, &answer(ROTATED));
    // The write fails (say, not confirmed by the replicas), and so does the first repair.
    run_store(&mut a, &store, now, wall, false);
    let first = a.poll_timeout().unwrap();
    assert!(first - now <= SECS(1), "repaired soon: {:?}", first - now);
    a.handle_timeout(first);
    run_store(&mut a, &store, first, wall0 + (first - t0), false);
    assert!(stored(&store, &a, wall).claimant().is_some(), "only the claim is there");
    // Then the store answers: the record is a's claim, and is replaced by the new tokens.
    let second = a.poll_timeout().unwrap();
    assert!(second > first);
    a.handle_timeout(second);
    run_store(&mut a, &store, second, wall0 + (second - t0), true);
    let record = stored(&store, &a, wall0 + (second - t0));
    assert_eq!(record.access_token_value(), Some("u2"));
    assert_eq!(record.refresh_token().unwrap().expose_secret(), "r2");
    assert!(record.claimant().is_none());
    // b takes them at its renewal.
    let renewal = b.poll_timeout().unwrap();
    b.handle_timeout(renewal);
    let outputs = run_store(&mut b, &store, renewal, wall0 + (renewal - t0), true);
    assert!(outputs.iter().any(|o| matches!(o, Output::TokenReady(t) if t.value().expose_secret() == "u2")));
    assert_eq!(b.stats().fetches, 0);
}

#[test]
fn a_repair_never_replaces_another_sources_record() {
    let store = crate::store::MemoryStore::new();
    let (t0, wall0) = (Instant::now(), UNIX_EPOCH + SECS(1_800_000_000));
    let (mut a, _b) = signed_in_pair(&store, t0, wall0);
    let (now, wall, fetch) = renews(&mut a, &store, t0, wall0);
    a.handle_fetch_response(now, test_wall(), fetch.id, &answer(ROTATED));
    run_store(&mut a, &store, now, wall, false);
    // Meanwhile another source signs the user in again: its record stands.
    let mut c = Lifecycle::with_store(Arc::clone(a.config()), 3, StoreConfig::default());
    c.handle_sign_in(now, wall, now, &answer(r#"{"access_token":"u9","expires_in":600,"refresh_token":"r9"}"#))
        .unwrap();
    run_store(&mut c, &store, now, wall, true);
    for _ in 0..20 {
        let Some(at) = a.poll_timeout().filter(|at| *at < now + SECS(120)) else { break };
        a.handle_timeout(at);
        run_store(&mut a, &store, at, wall0 + (at - t0), true);
    }
    assert_eq!(stored(&store, &a, wall).access_token_value(), Some("u9"));
}

impl Sim {
    fn observations(&mut self) -> Vec<Observation> {
        std::iter::from_fn(|| self.lc.poll_observation()).collect()
    }
}

#[test]
fn observations_say_what_happened_once_and_nothing_when_off() {
    use super::observations::{RequestOutcome, TokenOrigin, UnauthorizedOutcome};
    let mut sim = Sim::new(builder().max_fetches_per_day(3));
    sim.lc.observe(true);
    // The first token: one request, granted, and the token it installed.
    sim.at(0.0);
    assert!(matches!(sim.want(), Want::Wait));
    let fetch = sim.take_fetch();
    sim.at(0.25);
    let first = sim.respond_token(fetch.id, "t1", 100);
    assert_eq!(
        sim.observations(),
        [
            Observation::Budget { spent: 1, limit: 3, shared: false },
            Observation::TokenRequest {
                reason: FetchReason::NoToken,
                grant: GrantKind::ClientCredentials,
                outcome: RequestOutcome::Granted,
                took: Duration::from_millis(250),
            },
            Observation::TokenInstalled { origin: TokenOrigin::Fetched, lifetime: SECS(100), replaced_left: None },
        ]
    );
    // Requests with the settled token observe nothing.
    for _ in 0..10 {
        assert!(matches!(sim.want(), Want::Ready(_)));
    }
    assert!(sim.observations().is_empty());
    // A renewal replaces a token with some of its life left.
    let renew_at = sim.secs(first.renew_at);
    sim.at(renew_at);
    let renewal = only_fetch(sim.timeout());
    sim.at(renew_at + 1.0);
    sim.respond_token(renewal.id, "t2", 100);
    let installed = sim.observations();
    let Some(Observation::TokenInstalled { replaced_left: Some(left), .. }) = installed.get(2) else {
        panic!("{installed:?}")
    };
    assert_eq!(*left, first.usable_until - sim.now);
    assert_eq!(installed[0], Observation::Budget { spent: 2, limit: 3, shared: false });
    assert!(matches!(installed[1], Observation::TokenRequest { reason: FetchReason::Renewal, .. }));
    // A 401 to the current token, then to the one it replaced.
    let current = sim.lc.current_token(sim.now).unwrap().generation();
    sim.lc.handle_unauthorized(sim.now, current);
    sim.lc.handle_unauthorized(sim.now, first.generation());
    let refused = sim.take_fetch();
    assert_eq!(
        sim.observations(),
        [
            Observation::Unauthorized { outcome: UnauthorizedOutcome::Invalidated },
            Observation::Budget { spent: 3, limit: 3, shared: false },
            Observation::Unauthorized { outcome: UnauthorizedOutcome::AlreadyReplaced },
        ]
    );
    // The provider refuses: its code; the budget (3) is then spent: no request.
    sim.respond(refused.id, 400, r#"{"error":"invalid_client"}"#);
    let observed = sim.observations();
    assert!(
        matches!(
            &observed[..],
            [Observation::TokenRequest {
                outcome: RequestOutcome::Refused { code: "invalid_client" },
                reason: FetchReason::Unauthorized,
                ..
            }]
        ),
        "{observed:?}"
    );
    sim.at(renew_at + 100_000.0);
    let _ = sim.want();
    let fetch = sim.take_fetch();
    sim.lc.handle_fetch_failed(sim.now, fetch.id, TokenError::transport("connection refused"));
    let observed = sim.observations();
    assert!(
        matches!(
            &observed[..],
            [
                Observation::Budget { spent: 1, limit: 3, shared: false },
                Observation::TokenRequest {
                    outcome: RequestOutcome::Failed { kind: "transport", transient: true },
                    ..
                }
            ]
        ),
        "{observed:?}"
    );
    // Turned off: nothing kept.
    sim.lc.observe(false);
    sim.at(renew_at + 200_000.0);
    let _ = sim.want();
    sim.outputs();
    assert!(sim.observations().is_empty());
}

#[test]
fn a_spent_budget_and_the_store_are_observed() {
    let store = crate::store::MemoryStore::new();
    let (t0, wall0) = (Instant::now(), UNIX_EPOCH + SECS(1_800_000_000));
    let config = Arc::new(builder().max_fetches_per_day(1).build().unwrap());
    let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    let mut b = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
    a.observe(true);
    b.observe(true);
    let observations = |lc: &mut Lifecycle| std::iter::from_fn(|| lc.poll_observation()).collect::<Vec<_>>();
    assert!(matches!(a.handle_token_wanted(t0), Want::Wait));
    let fetch = only_fetch(run_store(&mut a, &store, t0, wall0, true));
    assert_eq!(
        observations(&mut a),
        [Observation::Lease { won: true }, Observation::Budget { spent: 1, limit: 1, shared: true }]
    );
    a.handle_fetch_response(t0, test_wall(), fetch.id, &answer(r#"{"access_token":"t1","expires_in":600}"#));
    run_store(&mut a, &store, t0, wall0, true);
    observations(&mut a);
    // b takes a's token from the store.
    assert!(matches!(b.handle_token_wanted(t0), Want::Wait));
    run_store(&mut b, &store, t0, wall0, true);
    let adopted = observations(&mut b);
    assert!(
        matches!(&adopted[..], [Observation::TokenInstalled { origin: super::observations::TokenOrigin::Adopted, .. }]),
        "{adopted:?}"
    );
    // After a 401 the budget of one is spent: refused, as counted by a
    // itself (a made the request), and by the store for b.
    let generation = a.current_token(t0).unwrap().generation();
    a.handle_unauthorized(t0, generation);
    run_store(&mut a, &store, t0, wall0, true);
    let observed = observations(&mut a);
    assert_eq!(
        observed[observed.len() - 2..],
        [Observation::BudgetRefused { shared: false }, Observation::Budget { spent: 1, limit: 1, shared: false }],
        "{observed:?}"
    );
    let generation = b.current_token(t0).unwrap().generation();
    b.handle_unauthorized(t0, generation);
    run_store(&mut b, &store, t0, wall0, true);
    let observed = observations(&mut b);
    assert_eq!(
        observed[observed.len() - 2..],
        [Observation::BudgetRefused { shared: true }, Observation::Budget { spent: 1, limit: 1, shared: true }],
        "{observed:?}"
    );
}

#[test]
fn a_token_rejected_while_the_store_was_down_is_never_taken_back_from_it() {
    let store = crate::store::MemoryStore::new();
    let (t0, wall) = (Instant::now(), UNIX_EPOCH + SECS(1_800_000_000));
    let config = Arc::new(builder().build().unwrap());
    let mut a = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    assert!(matches!(a.handle_token_wanted(t0), Want::Wait));
    let fetch = only_fetch(run_store(&mut a, &store, t0, wall, true));
    a.handle_fetch_response(t0, wall, fetch.id, &answer(r#"{"access_token":"t1","expires_in":600}"#));
    run_store(&mut a, &store, t0, wall, true);
    assert_eq!(stored(&store, &a, wall).access_token_value(), Some("t1"));
    // The store goes down; the API rejects t1: its deletion fails, and t2
    // is fetched without the store.
    let t1 = a.current_token(t0).unwrap().generation();
    a.handle_unauthorized(t0, t1);
    let fetch = only_fetch(run_store(&mut a, &store, t0, wall, false));
    a.handle_fetch_response(t0, wall, fetch.id, &answer(r#"{"access_token":"t2","expires_in":600}"#));
    run_store(&mut a, &store, t0, wall, false);
    // The store is back, and the API rejects t2 too. The store still holds
    // t1, which the API rejected: it is not taken (a request replayed with
    // it would fail again), but deleted, and a new token fetched.
    let t = t0 + SECS(1);
    let t2 = a.current_token(t).unwrap().generation();
    a.handle_accepted(t2);
    a.handle_unauthorized(t, t2);
    let outputs = run_store(&mut a, &store, t, wall, true);
    assert!(!outputs.iter().any(|o| matches!(o, Output::TokenReady(_))), "{outputs:?}");
    let fetch = only_fetch(outputs);
    assert!(a.stats().adoptions == 0, "{:?}", a.stats());
    a.handle_fetch_response(t, wall, fetch.id, &answer(r#"{"access_token":"t3","expires_in":600}"#));
    run_store(&mut a, &store, t, wall, true);
    assert_eq!(stored(&store, &a, wall).access_token_value(), Some("t3"));
}

/// The `scope` a token request asked for.
fn asked_scope(fetch: &FetchRequest) -> Option<String> {
    form_urlencoded::parse(fetch.request.body()).find(|(name, _)| name == "scope").map(|(_, value)| value.into_owned())
}

#[test]
fn a_step_up_asks_for_the_allowed_union_once_and_never_loops() {
    let mut sim = Sim::new(builder().scope("read").step_up_scopes(["write"]));
    sim.at(0.0);
    assert!(matches!(sim.want(), Want::Wait));
    let fetch = sim.take_fetch();
    assert_eq!(asked_scope(&fetch).as_deref(), Some("read"));
    sim.respond_token(fetch.id, "narrow", 3600);
    let (read, write, admin) = ("read".to_owned(), "write".to_owned(), "admin".to_owned());

    // A 403 naming `read write`: the narrow token is dropped, the next is asked for both.
    sim.at(10.0);
    assert!(sim.lc.handle_step_up(sim.now, &[read.clone(), write.clone()]));
    let outputs = sim.outputs();
    assert!(
        outputs.iter().any(|o| matches!(o, Output::TokenWithdrawn { reason: WithdrawReason::StepUp, .. })),
        "{outputs:?}"
    );
    let fetch = only_fetch(outputs);
    assert_eq!(asked_scope(&fetch).as_deref(), Some("read write"));
    sim.respond_token(fetch.id, "wide", 3600);
    // The wide token refused again for the same scopes (not granted): nothing more, no loop.
    assert!(!sim.lc.handle_step_up(sim.now, &[read.clone(), write.clone()]));
    assert!(sim.outputs().is_empty());
    assert!(matches!(sim.want(), Want::Ready(token) if token.value().expose_secret() == "wide"));
    // A scope the configuration does not allow is never asked for.
    assert!(!sim.lc.handle_step_up(sim.now, &[admin]));
    assert!(sim.outputs().is_empty());
    // Later tokens keep the union.
    sim.at(4000.0);
    sim.timeout();
    assert!(matches!(sim.want(), Want::Wait));
    let renewal = sim.take_fetch();
    assert_eq!(asked_scope(&renewal).as_deref(), Some("read write"));

    // A user's source never widens (the user must sign in for more); nor does one allowing nothing.
    let mut user = Sim::new(builder().scope("read").grant(SourceGrant::SignIn));
    assert!(!user.lc.handle_step_up(user.now, std::slice::from_ref(&write)));
    let mut fixed = Sim::new(builder().scope("read"));
    assert!(!fixed.lc.handle_step_up(fixed.now, &[write]));
    assert!(builder().grant(SourceGrant::SignIn).step_up_scopes(["x"]).build().is_err());
}

#[test]
fn a_widened_replica_takes_no_narrow_token_from_the_store_and_shares_its_wide_one() {
    let store = crate::store::MemoryStore::new();
    let config = Arc::new(builder().scope("read").step_up_scopes(["write"]).build().unwrap());
    let (t0, wall) = (Instant::now(), UNIX_EPOCH + SECS(1_800_000_000));
    let needed = ["read".to_owned(), "write".to_owned()];
    let respond = |lc: &mut Lifecycle, fetch: FetchRequest, value: &str| {
        // The provider does not say which scope it granted (RFC 6749 §5.1: the one asked for).
        lc.handle_fetch_response(
            t0,
            wall,
            fetch.id,
            &answer(&format!(r#"{{"access_token":"{value}","expires_in":3600}}"#)),
        );
        run_store(lc, &store, t0, wall, true)
    };
    let ready = |outputs: &[Output]| {
        outputs.iter().find_map(|o| match o {
            Output::TokenReady(token) => Some(token.value().expose_secret().to_owned()),
            _ => None,
        })
    };
    // A replica that never needed more puts a narrow token in the store; w takes it.
    let mut narrow = Lifecycle::with_store(Arc::clone(&config), 1, StoreConfig::default());
    assert!(matches!(narrow.handle_token_wanted(t0), Want::Wait));
    let fetch = only_fetch(run_store(&mut narrow, &store, t0, wall, true));
    assert_eq!(ready(&respond(&mut narrow, fetch, "narrow")).as_deref(), Some("narrow"));
    let mut w = Lifecycle::with_store(Arc::clone(&config), 2, StoreConfig::default());
    assert!(matches!(w.handle_token_wanted(t0), Want::Wait));
    assert_eq!(ready(&run_store(&mut w, &store, t0, wall, true)).as_deref(), Some("narrow"));

    // The API wants `write`: w drops it, does not take it back from the store, fetches the union.
    assert!(w.handle_step_up(t0, &needed));
    let fetch = only_fetch(run_store(&mut w, &store, t0, wall, true));
    assert_eq!(asked_scope(&fetch).as_deref(), Some("read write"));
    assert_eq!(ready(&respond(&mut w, fetch, "wide")).as_deref(), Some("wide"));

    // Another widened replica takes the wide token from the store; a narrow one may use it too.
    let mut w2 = Lifecycle::with_store(Arc::clone(&config), 3, StoreConfig::default());
    assert!(w2.handle_step_up(t0, &needed), "nothing held yet: the next token is asked with more");
    assert!(matches!(w2.handle_token_wanted(t0), Want::Wait));
    assert_eq!(ready(&run_store(&mut w2, &store, t0, wall, true)).as_deref(), Some("wide"));
    let mut n2 = Lifecycle::with_store(Arc::clone(&config), 4, StoreConfig::default());
    assert!(matches!(n2.handle_token_wanted(t0), Want::Wait));
    assert_eq!(ready(&run_store(&mut n2, &store, t0, wall, true)).as_deref(), Some("wide"));
    // The wide token refused for the same scopes again: no loop.
    assert!(!w2.handle_step_up(t0, &needed));
    assert!(run_store(&mut w2, &store, t0, wall, true).is_empty());
}
