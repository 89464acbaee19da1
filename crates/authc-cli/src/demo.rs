//! `authc demo`: the embedded provider and the real library stack, with a
//! readable timeline of what the library does for its user.

use std::time::{Duration, Instant};

use auth_core::RefreshPolicy;
use auth_reqwest::AuthClient;
use auth_testkit::{Fault, Provider, ProviderConfig};
use auth_tower::TokenSource;

use crate::failure::Failure;

const LIFETIME: Duration = Duration::from_secs(10);
const PACE: Duration = Duration::from_millis(100);
/// No phase may take longer than this: the demo always ends.
const PHASE_LIMIT: Duration = Duration::from_secs(12);

struct Demo {
    started: Instant,
    client: AuthClient,
    source: TokenSource,
    provider: Provider,
    calls: u64,
    failed: u64,
    slowest: Duration,
}

impl Demo {
    fn say(&self, line: impl AsRef<str>) {
        println!("[{:>6.2}s] {}", self.started.elapsed().as_secs_f64(), line.as_ref());
    }

    /// One API call; returns its status and how long it took.
    async fn call(&mut self) -> Result<(u16, Duration), Failure> {
        let started = Instant::now();
        let response = self.client.get(self.provider.api_url("orders")).send().await?;
        let took = started.elapsed();
        self.calls += 1;
        self.slowest = self.slowest.max(took);
        let status = response.status().as_u16();
        if status != 200 {
            self.failed += 1;
        }
        Ok((status, took))
    }

    fn generation(&self) -> u64 {
        self.source.cached().map_or(0, |t| t.generation().get())
    }

    /// Calls at a steady pace until `done` says so; returns how many calls.
    async fn steady_until(&mut self, mut done: impl FnMut(&Self) -> bool) -> Result<u64, Failure> {
        let phase = Instant::now();
        let before = self.calls;
        while !done(self) {
            if phase.elapsed() > PHASE_LIMIT {
                return Err(Failure::network("the demo stalled: an expected event did not happen in time"));
            }
            self.call().await?;
            tokio::time::sleep(PACE).await;
        }
        Ok(self.calls - before)
    }
}

pub async fn run() -> Result<(), Failure> {
    let started = Instant::now();
    let provider =
        Provider::start(ProviderConfig::new().client("demo-client", "demo-secret").token_lifetime(LIFETIME).api_key(
            "X-API-Key",
            None,
            "demo-api-key",
        ))
        .map_err(|e| Failure::network(format!("cannot start the embedded provider: {e}")))?;
    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "demo-client")
        .client_secret("demo-secret")
        .api_key_header("X-API-Key", "demo-api-key")
        .api_origin(provider.url())
        // Short tokens for a short demo; renew in the last 40% of their life.
        .configure_token(|config| {
            config.refresh_policy(RefreshPolicy { refresh_ahead_fraction: 0.4, ..RefreshPolicy::default() })
        })
        .build()?;
    let source = client.token_source().cloned().ok_or_else(|| Failure::usage("the demo client has no token source"))?;
    let mut demo = Demo { started, client, source, provider, calls: 0, failed: 0, slowest: Duration::ZERO };

    println!("authc demo: the library against its embedded OAuth 2.0 provider");
    demo.say(format!(
        "provider up on {}: {}-second tokens; the API wants a Bearer token and an X-API-Key header",
        demo.provider.url(),
        LIFETIME.as_secs()
    ));

    // 1. The first call waits for the first token.
    let (status, took) = demo.call().await?;
    demo.say(format!(
        "call 1: {status} after {} ms: it waited for the first token (token #{})",
        took.as_millis(),
        demo.generation()
    ));

    // 2. Many calls share it.
    for _ in 0..19 {
        demo.call().await?;
    }
    demo.say(format!(
        "calls 2-20: all answered with token #{}; token requests so far: {}",
        demo.generation(),
        demo.provider.stats().token_requests
    ));

    // 3. Renewal ahead of expiry, while calls continue.
    let first = demo.source.cached().ok_or_else(|| Failure::network("no token after the first calls"))?;
    demo.say("steady calls every 100 ms; the token is renewed ahead of expiry in the background...");
    let slowest_before = demo.slowest;
    demo.slowest = Duration::ZERO;
    let during = demo.steady_until(|d| d.generation() > first.generation().get()).await?;
    let early = first.expires_at().saturating_duration_since(Instant::now());
    demo.say(format!(
        "token #{} arrived in the background {:.1} s before #{} would have expired; {} calls meanwhile, slowest {} ms (none waited)",
        demo.generation(),
        early.as_secs_f64(),
        first.generation().get(),
        during,
        demo.slowest.as_millis()
    ));
    demo.slowest = demo.slowest.max(slowest_before);

    // 4. A revoked token: 401, renewed, replayed.
    demo.provider.revoke_all();
    demo.say("the provider revokes every token it issued");
    let rejected = demo.generation();
    let (status, took) = demo.call().await?;
    demo.say(format!(
        "next call: the API answered 401 to token #{rejected}; the library fetched token #{} and replayed the call: {status} after {} ms",
        demo.generation(),
        took.as_millis()
    ));

    // 5. An outage of the token endpoint, ridden out on the still-valid token.
    let current = demo.source.cached().ok_or_else(|| Failure::network("no token after the replay"))?;
    let until_renewal =
        current.renew_at().saturating_duration_since(Instant::now()).saturating_sub(Duration::from_millis(300));
    let fault_at = Instant::now() + until_renewal;
    demo.steady_until(|_| Instant::now() >= fault_at).await?;
    demo.provider.fail_next_token_requests(2, Fault::Unavailable);
    demo.say("outage: the token endpoint will answer 503 to its next 2 requests");
    let failures_before = demo.source.stats().failures;
    let mut reported = failures_before;
    let outage_calls_before = demo.calls;
    let phase = Instant::now();
    while demo.generation() == current.generation().get() {
        if phase.elapsed() > PHASE_LIMIT {
            return Err(Failure::network("the demo stalled: the provider did not heal in time"));
        }
        let failures = demo.source.stats().failures;
        if failures > reported {
            reported = failures;
            let left = current.usable_until().saturating_duration_since(Instant::now());
            demo.say(format!(
                "renewal attempt failed (503); backing off; calls keep using token #{} (usable {:.1} s more)",
                current.generation().get(),
                left.as_secs_f64()
            ));
        }
        demo.call().await?;
        tokio::time::sleep(PACE).await;
    }
    demo.say(format!(
        "the endpoint healed: token #{} obtained on retry; {} calls during the outage, {} failed",
        demo.generation(),
        demo.calls - outage_calls_before,
        demo.failed
    ));

    // Summary.
    let stats = demo.source.stats();
    let provider = demo.provider.stats();
    println!();
    println!("summary after {:.1} s:", demo.started.elapsed().as_secs_f64());
    println!("  calls made            {} ({} failed)", demo.calls, demo.failed);
    println!(
        "  tokens fetched        {} (token requests: {}, failed: {})",
        provider.tokens_issued, provider.token_requests, stats.failures
    );
    println!("  replays after 401     {}", stats.replays_after_401);
    println!(
        "  calls that waited     {} (the first call, and each replay after a 401; none during renewals)",
        stats.waits
    );
    println!("  slowest call          {} ms", demo.slowest.as_millis());
    if demo.failed > 0 {
        return Err(Failure::api(format!("{} demo calls failed", demo.failed)));
    }
    Ok(())
}
