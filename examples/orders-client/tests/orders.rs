//! The orders client's tests, against the embedded provider: a real token
//! endpoint and API on 127.0.0.1 that can be told to fail, slow down,
//! revoke, and that says what it received.

use std::time::Duration;

use auth_testkit::{Fault, Provider, ProviderConfig};
use orders_client::{Orders, Settings};

fn provider() -> Provider {
    Provider::start(ProviderConfig::new().client("orders-service", "s3cret").api_key("X-API-Key", None, "key-1"))
        .expect("the embedded provider starts")
}

fn settings(provider: &Provider) -> Settings {
    Settings {
        token_url: provider.token_url(),
        api_base: provider.api_url("").trim_end_matches('/').to_owned(),
        client_id: "orders-service".to_owned(),
        client_secret: "s3cret".to_owned(),
        api_key: "key-1".to_owned(),
    }
}

#[tokio::test]
async fn every_call_carries_the_key_and_a_token_fetched_once() {
    let provider = provider();
    // A slow token endpoint: the calls below all wait for the one fetch.
    provider.set_latency(Duration::from_millis(200));
    let orders = std::sync::Arc::new(Orders::new(&settings(&provider)).unwrap());
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let orders = orders.clone();
        calls.spawn(async move { orders.list().await.map_err(|e| e.to_string()) });
    }
    for answer in calls.join_all().await {
        assert_eq!(answer.unwrap()["client_id"], "orders-service");
    }
    assert_eq!(provider.stats().token_requests, 1, "one token for twenty calls");
    let token_request = &provider.token_requests()[0];
    assert_eq!(
        (token_request.grant_type.as_str(), token_request.client_auth.as_str()),
        ("client_credentials", "basic")
    );
    let api = provider.api_requests();
    assert_eq!(api.len(), 20);
    assert!(api.iter().all(|r| r.authorization_scheme.as_deref() == Some("Bearer") && r.api_key == Some("header")));
}

#[tokio::test]
async fn an_outage_at_the_provider_and_a_revoked_token_are_ridden_out() {
    let provider = provider();
    // The token endpoint answers 503 twice before it recovers.
    provider.fail_next_token_requests(2, Fault::Unavailable);
    let orders = Orders::new(&settings(&provider)).unwrap();
    // A cold start during the outage: the call fails at once, saying so (it does not hang)...
    let error = orders.list().await.unwrap_err().to_string();
    assert!(error.contains("503") && error.contains("retrying later may succeed"), "{error}");
    assert!(!error.contains("s3cret"), "no secret in errors");
    // ...and the client retries the provider by itself, with backoff: a later call succeeds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let answer = loop {
        match orders.list().await {
            Ok(answer) => break answer,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("still failing after the outage: {e}"),
        }
    };
    assert_eq!(answer["ok"], true);
    assert_eq!(provider.stats().token_requests, 3, "two failures, then the token");

    // The provider revokes every token: the next call gets a 401, renews, and is replayed once.
    provider.revoke_access_tokens();
    assert_eq!(orders.list().await.unwrap()["ok"], true);
    let statuses: Vec<u16> = provider.api_requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 200], "no call reached the API without a token");
    assert_eq!(provider.stats().token_requests, 4);
}

#[tokio::test]
async fn a_user_signs_in_through_the_scripted_browser_and_a_rotated_refresh_token_is_used() {
    let provider = Provider::start(
        ProviderConfig::new()
            .protected_resource(true)
            .api_scopes("read", "write")
            .dynamic_registration(true)
            .rotate_refresh_tokens(true),
    )
    .unwrap();
    let browser = provider.browser();
    // The app opens the sign-in page; the provider's browser plays the user (alice signs in).
    let orders = Orders::for_user(&provider.resource(), move |url| {
        let (browser, url) = (browser.clone(), url.to_owned());
        tokio::spawn(async move { browser.open(&url).await.expect("the sign-in page leads back to the app") });
    })
    .await
    .unwrap();
    assert_eq!(orders.list().await.unwrap()["user"], "alice");

    // Access tokens revoked: the client renews with the user's refresh token, which rotates.
    provider.revoke_access_tokens();
    assert_eq!(orders.list().await.unwrap()["user"], "alice");
    let grants: Vec<String> = provider.token_requests().into_iter().map(|r| r.grant_type).collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);
    assert_eq!(provider.stats().registrations, 1, "the app registered itself once");
}
