//! The outage figure, side by side: the token endpoint goes down before
//! any contender renews, stays down past the token's expiry, then heals.
//! One task sends a request to the embedded provider's protected API every
//! 20 ms, through each contender's own token fetching over real HTTP:
//!
//! - ours: `AuthClient` (client credentials, limited to the API's origin);
//! - aliri: `aliri_tokens::TokenWatcher` over its `ClientCredentialsTokenSource`,
//!   with `aliri_reqwest`'s middleware;
//! - middle: `ClientCredentialAuthorizer` (its header per request);
//! - oauth2-rs: the usual cache, a tokio `RwLock` around the last token
//!   response, renewed under the write lock when it is within a second of
//!   its expiry (the error is the caller's when that fails).
//!
//! The timeline is a compressed hour, so the peers whose defaults are in
//! absolute seconds get them scaled (aliri's 30 s staleness floor and
//! middle's 30 s tolerance and retry delay become 0 and 1 s); ours and the
//! oauth2-rs cache need nothing.
//!
//! Timeline per contender (tokens live 6 s): a first token at 0 s, the
//! endpoint answers 503 from 2 s to 8 s, healed at 8 s, requests until
//! 14 s. Figures: requests the caller saw succeed and fail, requests the
//! API saw with an expired token, token requests (the endpoint's load
//! while it is down), and the time from healing to the first success
//! (none within the 6 s after healing: not a number). Written to `target/bench-figures/peers-outage.json`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_bench::{write_figures, Figure};
use auth_testkit::{Fault, Provider, ProviderConfig};
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue};
use oauth2::TokenResponse as _;
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};

const LIFETIME: Duration = Duration::from_secs(6);
const DOWN_AT: Duration = Duration::from_secs(2);
const HEALED_AT: Duration = Duration::from_secs(8);
const END: Duration = Duration::from_secs(14);
const EVERY: Duration = Duration::from_millis(20);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one contender's caller saw, and what the API saw.
#[derive(Debug, Default)]
struct Outcome {
    ok: u32,
    failed: u32,
    sent_expired: u64,
    token_requests: u64,
    /// From healing to the first success, if one came.
    recovery: Option<Duration>,
}

/// Sends one request through a contender: whether the caller got a 2xx.
type Sender = Box<dyn Fn() -> BoxFuture<'static, bool>>;

/// Runs the timeline against `send`, which was built (and got its first
/// token) just before.
async fn timeline(provider: &Provider, send: Sender) -> Outcome {
    let started = Instant::now();
    let before = provider.stats();
    let mut outcome = Outcome::default();
    let (mut down, mut healed) = (false, false);
    while started.elapsed() < END {
        let at = started.elapsed();
        if !down && at >= DOWN_AT {
            provider.fail_next_token_requests(u32::MAX, Fault::Unavailable);
            down = true;
        }
        if !healed && at >= HEALED_AT {
            provider.fail_next_token_requests(0, Fault::Unavailable);
            healed = true;
        }
        // A caller that waits longer than a request interval is not waited for
        // past the end: the wait counts as a failure.
        let ok = tokio::time::timeout(END.saturating_sub(at), send()).await.unwrap_or(false);
        if ok {
            outcome.ok += 1;
            if healed && outcome.recovery.is_none() {
                outcome.recovery = Some(started.elapsed().saturating_sub(HEALED_AT));
            }
        } else {
            outcome.failed += 1;
        }
        tokio::time::sleep(EVERY.saturating_sub(started.elapsed().saturating_sub(at))).await;
    }
    provider.fail_next_token_requests(0, Fault::Unavailable);
    let after = provider.stats();
    outcome.sent_expired = after.api_unauthorized - before.api_unauthorized;
    outcome.token_requests = after.token_requests - before.token_requests;
    outcome
}

/// A request through a reqwest-middleware client: 2xx or not.
fn through(client: ClientWithMiddleware, url: String) -> Sender {
    Box::new(move || {
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move { matches!(client.get(&url).send().await, Ok(r) if r.status().is_success()) })
    })
}

/// A middleware that puts the header `header()` gives, and fails the
/// request when it gives none.
struct HeaderOrFail<F>(F);

#[async_trait::async_trait]
impl<F> Middleware for HeaderOrFail<F>
where
    F: Fn() -> BoxFuture<'static, Option<HeaderValue>> + Send + Sync + 'static,
{
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let Some(value) = (self.0)().await else {
            return Err(reqwest_middleware::Error::middleware(std::io::Error::other("no token")));
        };
        request.headers_mut().insert(AUTHORIZATION, value);
        next.run(request, extensions).await
    }
}

fn with_header<F>(header: F) -> ClientWithMiddleware
where
    F: Fn() -> BoxFuture<'static, Option<HeaderValue>> + Send + Sync + 'static,
{
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(HeaderOrFail(header)).build()
}

fn bearer(token: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {token}")).ok()
}

async fn ours(provider: &Provider) -> Sender {
    let client = auth_reqwest::AuthClient::builder()
        .client_credentials(provider.token_url(), "peer")
        .client_secret("peer-secret")
        .api_origin(provider.url())
        .build()
        .expect("our client");
    if let Some(source) = client.token_source() {
        source.token().await.expect("a first token");
    }
    let (client, url) = (client.client().clone(), provider.api_url("/orders"));
    through(client, url)
}

async fn aliri(provider: &Provider) -> Sender {
    use aliri_tokens::sources::oauth2::dto::{ClientCredentials, ClientCredentialsWithAudience};
    let credentials = ClientCredentialsWithAudience {
        credentials: Arc::new(ClientCredentials {
            client_id: aliri_tokens::ClientId::from("peer"),
            client_secret: aliri_tokens::ClientSecret::from("peer-secret"),
        }),
        audience: aliri::jwt::Audience::from("https://api.example.com"),
    };
    let source = aliri_tokens::sources::oauth2::ClientCredentialsTokenSource::new(
        reqwest::Client::new(),
        reqwest::Url::parse(&provider.token_url()).expect("the token URL"),
        credentials,
        // Stale at 3/4 of the lifetime (its default); its default floor of 30 s
        // would keep a 6 s token until it expired.
        aliri_tokens::TokenLifetimeConfig::new(0.75, aliri_clock::DurationSecs(0)),
    );
    let watcher = aliri_tokens::TokenWatcher::spawn_from_token_source(
        source,
        aliri_tokens::jitter::NullJitter,
        aliri_tokens::backoff::ErrorBackoffConfig::default(),
    )
    .await
    .expect("aliri's watcher");
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(
            // Its default sends tokens over https only; the provider listens on loopback http.
            aliri_reqwest::AccessTokenMiddleware::new(watcher)
                .with_predicate(aliri_reqwest::ExactHostMatch::new("127.0.0.1")),
        )
        .build();
    through(client, provider.api_url("/orders"))
}

async fn middle(provider: &Provider) -> Sender {
    let token_url = url::Url::parse(&provider.token_url()).expect("the token URL");
    // Its default tolerance (30 s before expiry, and 30 s between retries
    // once a renewal failed) is longer than the whole timeline: 1 s here.
    let authorizer = middle::ClientCredentialAuthorizerBuilder::new("peer", "peer-secret", token_url)
        .refresh_tolerance(Duration::from_secs(1))
        .build()
        .await
        .expect("middle's authorizer");
    let authorizer = Arc::new(authorizer);
    let client = with_header(move || {
        use middle::Authorizer as _;
        let header = authorizer.authorization_header().ok().map(|h| (*h).clone());
        Box::pin(async move { header })
    });
    through(client, provider.api_url("/orders"))
}

/// The oauth2-rs cache most users write.
struct Oauth2Cache {
    token_url: String,
    http: reqwest::Client,
    token: tokio::sync::RwLock<Option<(oauth2::basic::BasicTokenResponse, Instant)>>,
}

impl Oauth2Cache {
    const MARGIN: Duration = Duration::from_secs(1);

    async fn header(&self) -> Option<HeaderValue> {
        if let Some((token, expires)) = &*self.token.read().await {
            if Instant::now() + Self::MARGIN < *expires {
                return bearer(token.access_token().secret());
            }
        }
        let mut slot = self.token.write().await;
        if let Some((token, expires)) = &*slot {
            if Instant::now() + Self::MARGIN < *expires {
                return bearer(token.access_token().secret());
            }
        }
        let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new("peer".into()))
            .set_client_secret(oauth2::ClientSecret::new("peer-secret".into()))
            .set_token_uri(oauth2::TokenUrl::new(self.token_url.clone()).ok()?);
        let token = client.exchange_client_credentials().request_async(&self.http).await.ok()?;
        let lifetime = token.expires_in().unwrap_or(Duration::from_secs(3600));
        let value = bearer(token.access_token().secret());
        *slot = Some((token, Instant::now() + lifetime));
        value
    }
}

async fn oauth2_rwlock(provider: &Provider) -> Sender {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client");
    let cache = Arc::new(Oauth2Cache { token_url: provider.token_url(), http, token: Default::default() });
    cache.header().await.expect("a first token");
    let client = with_header(move || {
        let cache = Arc::clone(&cache);
        Box::pin(async move { cache.header().await })
    });
    through(client, provider.api_url("/orders"))
}

fn main() {
    if !auth_bench::benchmarking() {
        return; // `cargo test` builds it; only `cargo bench` runs it
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let config = ProviderConfig::new().client("peer", "peer-secret").token_lifetime(LIFETIME);
    let provider = Provider::start(config).expect("the embedded provider");
    let mut figures = Vec::new();
    runtime.block_on(async {
        let contenders: [(&str, BoxFuture<'_, Sender>); 4] = [
            ("ours (AuthClient)", Box::pin(ours(&provider))),
            ("aliri_tokens + aliri_reqwest", Box::pin(aliri(&provider))),
            ("middle ClientCredentialAuthorizer", Box::pin(middle(&provider))),
            ("oauth2-rs with a tokio RwLock", Box::pin(oauth2_rwlock(&provider))),
        ];
        for (name, send) in contenders {
            let outcome = timeline(&provider, send.await).await;
            eprintln!("outage, {name}: {outcome:?}");
            let figure =
                |what: &str, value: f64, unit| Figure::new(format!("peers, outage: {name}, {what}"), value, unit);
            figures.push(figure("requests ok", f64::from(outcome.ok), "requests"));
            figures.push(figure("requests failed", f64::from(outcome.failed), "requests"));
            figures.push(figure("requests sent with an expired token", outcome.sent_expired as f64, "requests"));
            figures.push(figure("token requests", outcome.token_requests as f64, "requests"));
            let recovery = outcome.recovery.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
            figures.push(figure("healing to the first success", recovery, "ms"));
        }
    });
    write_figures("peers-outage", &figures);
    drop(provider);
}
