//! The whole stack against the embedded provider (auth-testkit): the
//! reqwest and blocking adapters through the same scenarios, over real
//! HTTP on 127.0.0.1.

use std::time::Duration;

use auth_blocking::{AuthorizedClient, BlockingTokenSource, UreqTransport};
use auth_core::{Credentials, RefreshPolicy, SourceConfig};
use auth_reqwest::AuthClient;
use auth_testkit::{Fault, Provider, ProviderConfig};

fn provider(lifetime: Duration) -> Provider {
    Provider::start(ProviderConfig::new().client("app", "app-secret").token_lifetime(lifetime).api_key(
        "X-API-Key",
        None,
        "key",
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_client_rides_out_an_outage_and_recovers_from_revocation() {
    let provider = provider(Duration::from_secs(4));
    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "app")
        .client_secret("app-secret")
        .api_key_header("X-API-Key", "key")
        .api_origin(provider.url())
        .configure_token(|c| {
            c.refresh_policy(RefreshPolicy { refresh_ahead_fraction: 0.5, ..RefreshPolicy::default() })
        })
        .build()
        .unwrap();
    let source = client.token_source().unwrap().clone();
    let call = || async { client.get(provider.api_url("x")).send().await.unwrap().status().as_u16() };
    assert_eq!(call().await, 200);
    // The renewal (at about half the life) meets an outage of one request; the old token carries on.
    provider.fail_next_token_requests(1, Fault::ServerError);
    let first = source.cached().unwrap();
    while source.cached().unwrap().generation() == first.generation() {
        assert_eq!(call().await, 200, "no call fails during the outage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(source.stats().failures, 1);
    // Revocation: one 401, one new token, one replay.
    provider.revoke_all();
    assert_eq!(call().await, 200);
    assert_eq!(source.stats().replays_after_401, 1);
    assert_eq!(provider.stats().api_unauthorized, 1);
}

#[test]
fn blocking_client_rides_out_an_outage_and_recovers_from_revocation() {
    let provider = provider(Duration::from_secs(4));
    let config = SourceConfig::builder(provider.token_url(), "app")
        .client_secret("app-secret")
        .refresh_policy(RefreshPolicy { refresh_ahead_fraction: 0.5, ..RefreshPolicy::default() })
        .build()
        .unwrap();
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens()).unwrap();
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("X-API-Key", "key")
        .api_origin(provider.url())
        .build()
        .unwrap();
    let client = AuthorizedClient::new(source.clone(), credentials, UreqTransport::for_api());
    let call =
        || client.send(http::Request::get(provider.api_url("x")).body(Vec::new()).unwrap()).unwrap().status().as_u16();
    assert_eq!(call(), 200);
    provider.fail_next_token_requests(1, Fault::Unavailable);
    let first = source.cached().unwrap();
    while source.cached().unwrap().generation() == first.generation() {
        assert_eq!(call(), 200, "no call fails during the outage");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(source.stats().failures, 1);
    provider.revoke_all();
    assert_eq!(call(), 200);
    assert_eq!(provider.stats().api_unauthorized, 1);
}

/// A 1 ms fetch-loop guard: these tests revoke tokens fetched because of a 401.
fn quick_guard(config: auth_core::SourceConfigBuilder) -> auth_core::SourceConfigBuilder {
    config.refresh_policy(RefreshPolicy { unauthorized_backoff: Duration::from_millis(1), ..RefreshPolicy::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_copies_every_request_by_default_and_only_at_risk_when_told() {
    use auth_core::publish::replay::ReplayCopies;
    let provider = provider(Duration::from_secs(3600));
    let client = |copies: Option<ReplayCopies>| {
        let builder = AuthClient::builder()
            .client_credentials(provider.token_url(), "app")
            .client_secret("app-secret")
            .api_key_header("X-API-Key", "key")
            .api_origin(provider.url())
            .configure_token(quick_guard);
        match copies {
            Some(copies) => builder.replay_copies(copies).build().unwrap(),
            None => builder.build().unwrap(),
        }
    };
    // `always` has the defaults.
    let (client, always) = (client(Some(ReplayCopies::AtRisk)), client(None));
    let source = client.token_source().unwrap().clone();
    let post = |client: &AuthClient| {
        let request = client.post(provider.api_url("orders")).body("order=1");
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // A new token: the body is copied; the 200 settles the token.
    assert_eq!(post(&client).await, 200);
    assert!(!source.at_risk(&source.cached().unwrap()));
    // Revoked in the middle of its life: the settled token's POST kept no copy.
    provider.revoke_all();
    assert_eq!(post(&client).await, 401, "the 401 reaches the caller");
    assert_eq!(post(&client).await, 200, "the next request carries a new token");
    // A request without a body follows the same rule.
    let get = |client: &AuthClient| {
        let request = client.get(provider.api_url("orders"));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    provider.revoke_all();
    assert_eq!(get(&client).await, 401, "the settled token's GET kept no copy");
    assert_eq!(get(&client).await, 200, "the next request carries a new token");
    assert_eq!(source.stats().replays_after_401, 0);
    // By default (ReplayCopies::Always) a settled token's requests are replayed.
    assert_eq!(post(&always).await, 200);
    provider.revoke_all();
    assert_eq!(post(&always).await, 200, "replayed");
    tokio::time::sleep(Duration::from_millis(20)).await;
    provider.revoke_all();
    assert_eq!(get(&always).await, 200, "replayed");
    assert_eq!(always.token_source().unwrap().stats().replays_after_401, 2);
    assert_eq!(provider.stats().api_unauthorized, 4);
}

#[test]
fn blocking_copies_every_request_by_default_and_only_at_risk_when_told() {
    use auth_core::publish::replay::ReplayCopies;
    let provider = provider(Duration::from_secs(3600));
    let config = quick_guard(SourceConfig::builder(provider.token_url(), "app").client_secret("app-secret"));
    let source = BlockingTokenSource::new(config.build().unwrap(), UreqTransport::for_tokens()).unwrap();
    let credentials = || {
        Credentials::builder()
            .bearer_from_source()
            .api_key_header("X-API-Key", "key")
            .api_origin(provider.url())
            .build()
            .unwrap()
    };
    let client = AuthorizedClient::new(source.clone(), credentials(), UreqTransport::for_api())
        .replay_copies(ReplayCopies::AtRisk);
    let send = |client: &AuthorizedClient, body: &[u8]| {
        let request = http::Request::post(provider.api_url("orders")).body(body.to_vec()).unwrap();
        client.send(request).unwrap().status().as_u16()
    };
    assert_eq!(send(&client, b"order=1"), 200);
    assert!(!source.at_risk(&source.cached().unwrap()));
    provider.revoke_all();
    assert_eq!(send(&client, b"order=1"), 401, "the settled token's POST kept no copy");
    assert_eq!(send(&client, b"order=1"), 200, "the next request carries a new token");
    std::thread::sleep(Duration::from_millis(20));
    provider.revoke_all();
    assert_eq!(send(&client, b""), 401, "a request without a body follows the same rule");
    assert_eq!(send(&client, b""), 200, "the next request carries a new token");

    // The default: every request is copied.
    let always = AuthorizedClient::new(source.clone(), credentials(), UreqTransport::for_api());
    std::thread::sleep(Duration::from_millis(20));
    provider.revoke_all();
    assert_eq!(send(&always, b"order=1"), 200, "replayed");
    std::thread::sleep(Duration::from_millis(20));
    provider.revoke_all();
    assert_eq!(send(&always, b""), 200, "replayed");
    assert_eq!(provider.stats().api_unauthorized, 4);
}
