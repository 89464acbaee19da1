//! The token source and the layer against real HTTP: mockito servers on
//! 127.0.0.1 for the token endpoint and the API, a hyper-util client.

mod common;

use std::sync::Arc;

use auth_core::Credentials;
use auth_tower::{AuthError, AuthLayer, ReplayableBody, TokenSource};
use bytes::Bytes;
use common::{config, http_client, transport};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mockito::Matcher;
use tower::{Layer, ServiceExt};

fn token_body(value: &str) -> String {
    format!(r#"{{"access_token":"{value}","token_type":"Bearer","expires_in":3600}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_requests_on_a_cold_start_cause_one_token_request() {
    let mut provider = mockito::Server::new_async().await;
    let token = provider
        .mock("POST", "/token")
        .match_header("authorization", Matcher::Regex("^Basic ".into()))
        .match_header("accept", "application/json")
        .match_body("grant_type=client_credentials")
        .with_header("content-type", "application/json")
        .with_body(token_body("cold-start-token"))
        .expect(1)
        .create_async()
        .await;
    let mut api_server = mockito::Server::new_async().await;
    let api_mock = api_server
        .mock("GET", "/v1/items")
        .match_header("authorization", "Bearer cold-start-token")
        .match_header("x-api-key", "api-key-1")
        .with_body("ok")
        .expect(1000)
        .create_async()
        .await;

    let client = http_client();
    let source = TokenSource::new(config(&format!("{}/token", provider.url())), transport(client.clone())).unwrap();
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("X-API-Key", "api-key-1")
        .api_origin(api_server.url())
        .build()
        .unwrap();
    let api = AuthLayer::new(source.clone(), credentials).layer(client);
    let url = format!("{}/v1/items", api_server.url());

    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let api = api.clone();
        let request = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
        calls.spawn(async move { api.oneshot(request).await.map(|r| r.status()) });
    }
    while let Some(outcome) = calls.join_next().await {
        assert_eq!(outcome.unwrap().unwrap(), StatusCode::OK);
    }
    token.assert_async().await;
    api_mock.assert_async().await;
    let stats = source.stats();
    assert_eq!(stats.fetches, 1);
}

#[tokio::test]
async fn a_401_gets_one_new_token_and_one_replay() {
    let mut provider = mockito::Server::new_async().await;
    let first = provider.mock("POST", "/token").with_body(token_body("t1")).expect(1).create_async().await;
    let mut api_server = mockito::Server::new_async().await;
    let rejected = api_server
        .mock("POST", "/v1/orders")
        .match_header("authorization", "Bearer t1")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let accepted = api_server
        .mock("POST", "/v1/orders")
        .match_header("authorization", "Bearer t2")
        .match_body("order=1")
        .with_body("created")
        .expect(1)
        .create_async()
        .await;

    let client = http_client();
    let source = TokenSource::new(config(&format!("{}/token", provider.url())), transport(client.clone())).unwrap();
    let api = AuthLayer::bearer(source.clone(), &api_server.url()).unwrap().layer(client);
    // Warm the cache with t1, then let the provider issue t2 next.
    let t1 = source.token().await.unwrap();
    assert_eq!(t1.header_value(), "Bearer t1");
    first.assert_async().await;
    let second = provider.mock("POST", "/token").with_body(token_body("t2")).expect(1).create_async().await;

    let request =
        Request::post(format!("{}/v1/orders", api_server.url())).body(Full::new(Bytes::from("order=1"))).unwrap();
    let response = api.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "created");
    rejected.assert_async().await;
    accepted.assert_async().await;
    second.assert_async().await;
    let stats = source.stats();
    assert_eq!((stats.fetches, stats.invalidations, stats.replays_after_401), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_401s_for_one_token_cause_one_fetch() {
    let mut provider = mockito::Server::new_async().await;
    let first = provider.mock("POST", "/token").with_body(token_body("old")).expect(1).create_async().await;
    let mut api_server = mockito::Server::new_async().await;
    let rejected = api_server
        .mock("GET", "/x")
        .match_header("authorization", "Bearer old")
        .with_status(401)
        .expect(100)
        .create_async()
        .await;
    let accepted = api_server
        .mock("GET", "/x")
        .match_header("authorization", "Bearer new")
        .with_body("ok")
        .expect(100)
        .create_async()
        .await;

    let client = http_client();
    let source = TokenSource::new(config(&format!("{}/token", provider.url())), transport(client.clone())).unwrap();
    source.token().await.unwrap();
    first.assert_async().await;
    let renewal = provider.mock("POST", "/token").with_body(token_body("new")).expect(1).create_async().await;
    // Hold the 100 requests until all were sent with the old token.
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let api = AuthLayer::bearer(source.clone(), &api_server.url()).unwrap().layer(tower::service_fn(
        move |request: Request<Full<Bytes>>| {
            let client = client.clone();
            let barrier = barrier.clone();
            let first_attempt = request.headers()["authorization"] == "Bearer old";
            async move {
                if first_attempt {
                    barrier.wait().await;
                }
                client.request(request).await
            }
        },
    ));
    let url = format!("{}/x", api_server.url());
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let api = api.clone();
        let request = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
        calls.spawn(async move { api.oneshot(request).await.map(|r| r.status()) });
    }
    while let Some(outcome) = calls.join_next().await {
        assert_eq!(outcome.unwrap().unwrap(), StatusCode::OK);
    }
    rejected.assert_async().await;
    accepted.assert_async().await;
    renewal.assert_async().await;
    assert_eq!(source.stats().fetches, 2);
    assert_eq!(source.stats().invalidations, 1);
}

#[tokio::test]
async fn a_request_with_a_streaming_body_gets_its_401_and_the_next_request_works() {
    let mut provider = mockito::Server::new_async().await;
    provider.mock("POST", "/token").with_body(token_body("stale")).expect(1).create_async().await;
    let mut api_server = mockito::Server::new_async().await;
    let rejected = api_server
        .mock("PUT", "/upload")
        .match_header("authorization", "Bearer stale")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let accepted = api_server
        .mock("PUT", "/upload")
        .match_header("authorization", "Bearer fresh")
        .with_body("stored")
        .expect(1)
        .create_async()
        .await;

    let client: Client<_, ReplayableBody> = Client::builder(TokioExecutor::new()).build_http();
    let source = TokenSource::new(config(&format!("{}/token", provider.url())), transport(http_client())).unwrap();
    source.token().await.unwrap();
    let renewal = provider.mock("POST", "/token").with_body(token_body("fresh")).expect(1).create_async().await;
    let api = AuthLayer::bearer(source.clone(), &api_server.url()).unwrap().layer(client);
    let url = format!("{}/upload", api_server.url());

    let streaming = Request::put(&url).body(ReplayableBody::stream(Full::new(Bytes::from("chunk")))).unwrap();
    let response = api.clone().oneshot(streaming).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "a stream is never replayed");
    rejected.assert_async().await;

    let in_memory = Request::put(&url).body(ReplayableBody::full("chunk")).unwrap();
    let response = api.oneshot(in_memory).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the token was invalidated, the next request uses a new one");
    accepted.assert_async().await;
    renewal.assert_async().await;
    assert_eq!(source.stats().replays_after_401, 0);
}

#[tokio::test]
async fn without_replay_a_401_reaches_the_caller_and_the_next_request_gets_a_new_token() {
    let mut provider = mockito::Server::new_async().await;
    provider.mock("POST", "/token").with_body(token_body("revoked")).expect(1).create_async().await;
    let mut api_server = mockito::Server::new_async().await;
    let rejected = api_server
        .mock("POST", "/v1/orders")
        .match_header("authorization", "Bearer revoked")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let accepted = api_server
        .mock("POST", "/v1/orders")
        .match_header("authorization", "Bearer renewed")
        .with_body("created")
        .expect(1)
        .create_async()
        .await;

    let client = http_client();
    let source = TokenSource::new(config(&format!("{}/token", provider.url())), transport(client.clone())).unwrap();
    source.token().await.unwrap();
    let renewal = provider.mock("POST", "/token").with_body(token_body("renewed")).expect(1).create_async().await;
    let api = AuthLayer::bearer(source.clone(), &api_server.url()).unwrap().without_replay().layer(client);
    let url = format!("{}/v1/orders", api_server.url());
    let order = || Request::post(&url).body(Full::new(Bytes::from("order=1"))).unwrap();

    let response = api.clone().oneshot(order()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "without_replay: an in-memory body is not replayed either");
    rejected.assert_async().await;
    let response = api.oneshot(order()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the 401 invalidated the token");
    accepted.assert_async().await;
    renewal.assert_async().await;
    let stats = source.stats();
    assert_eq!((stats.fetches, stats.invalidations, stats.replays_after_401), (2, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_client_reaches_every_waiting_caller_at_once_without_secrets() {
    let mut provider = mockito::Server::new_async().await;
    let refused = provider
        .mock("POST", "/token")
        .with_status(401)
        .with_header("content-type", "application/json")
        .with_body(r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#)
        .expect(1)
        .create_async()
        .await;
    let client = http_client();
    let source = TokenSource::new(config(&format!("{}/token", provider.url())), transport(client.clone())).unwrap();
    let api = AuthLayer::bearer(source.clone(), "http://127.0.0.1:9").unwrap().layer(client);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let api = api.clone();
        let request = Request::get("http://127.0.0.1:9/never-called").body(Full::new(Bytes::new())).unwrap();
        calls.spawn(async move { api.oneshot(request).await });
    }
    while let Some(outcome) = calls.join_next().await {
        let error = outcome.unwrap().unwrap_err();
        let auth = error.downcast_ref::<AuthError>().expect("a typed AuthError");
        let provider_error = auth.provider_error().expect("the provider's error");
        assert_eq!(provider_error.code.as_str(), "invalid_client");
        assert_eq!(provider_error.description.as_deref(), Some("Client authentication failed"));
        assert!(!auth.is_transient());
        let text = format!("{error} {error:?}");
        assert!(!text.contains("very-secret-client-secret"), "{text}");
        assert!(text.contains("check the client id and secret"), "{text}");
    }
    refused.assert_async().await;
    assert_eq!(source.stats().fetches, 1);
}

#[tokio::test]
async fn credentials_stay_on_their_origin() {
    let mut provider = mockito::Server::new_async().await;
    let token = provider.mock("POST", "/token").with_body(token_body("t")).expect(0).create_async().await;
    let mut other = mockito::Server::new_async().await;
    let bare = other
        .mock("GET", "/")
        .match_header("authorization", Matcher::Missing)
        .match_header("x-api-key", Matcher::Missing)
        .expect(1)
        .create_async()
        .await;
    let client = http_client();
    let source = TokenSource::new(config(&format!("{}/token", provider.url())), transport(client.clone())).unwrap();
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("X-API-Key", "k")
        .api_origin("https://api.example.com")
        .build()
        .unwrap();
    let api = AuthLayer::new(source.clone(), credentials).layer(client);
    let response =
        api.oneshot(Request::get(format!("{}/", other.url())).body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    bare.assert_async().await;
    token.assert_async().await;
}

#[tokio::test]
async fn revoke_revokes_both_tokens_and_forgets_them() {
    let mut provider = mockito::Server::new_async().await;
    let issue = provider
        .mock("POST", "/token")
        .with_body(r#"{"access_token":"at-1","refresh_token":"rt-1","expires_in":3600}"#)
        .expect(1)
        .create_async()
        .await;
    let revoke_refresh = provider
        .mock("POST", "/revoke")
        .match_header("authorization", Matcher::Regex("^Basic ".into()))
        .match_body("token=rt-1&token_type_hint=refresh_token")
        .expect(1)
        .create_async()
        .await;
    let revoke_access = provider
        .mock("POST", "/revoke")
        .match_body("token=at-1&token_type_hint=access_token")
        .expect(1)
        .create_async()
        .await;
    let config = auth_core::SourceConfig::builder(format!("{}/token", provider.url()), "client-id")
        .client_secret("s")
        .revocation_url(format!("{}/revoke", provider.url()))
        .build()
        .unwrap();
    let source = TokenSource::new(config, transport(http_client())).unwrap();
    source.token().await.unwrap();
    let revoked = source.revoke().await.unwrap();
    assert!(revoked.access_token && revoked.refresh_token);
    issue.assert_async().await;
    revoke_refresh.assert_async().await;
    revoke_access.assert_async().await;
    assert!(source.cached().is_none(), "revoked tokens are forgotten");
    let next = provider
        .mock("POST", "/token")
        .match_body("grant_type=client_credentials")
        .with_body(token_body("at-2"))
        .expect(1)
        .create_async()
        .await;
    assert_eq!(source.token().await.unwrap().header_value(), "Bearer at-2");
    next.assert_async().await;

    let without_endpoint =
        TokenSource::new(config_without_revocation(&provider.url()), transport(http_client())).unwrap();
    assert!(matches!(without_endpoint.revoke().await, Err(AuthError::Config(_))));
}

fn config_without_revocation(base: &str) -> auth_core::SourceConfig {
    config(&format!("{base}/token"))
}

#[tokio::test]
async fn a_revocation_error_is_worded_as_one_and_never_quotes_the_token() {
    let mut provider = mockito::Server::new_async().await;
    provider
        .mock("POST", "/token")
        .with_body(r#"{"access_token":"AT-4e1b77c09d","refresh_token":"RT-8f2a9c1d77","expires_in":3600}"#)
        .create_async()
        .await;
    provider
        .mock("POST", "/revoke")
        .with_status(400)
        .with_header("content-type", "application/json")
        .with_body(
            r#"{"error":"invalid_request","error_description":"token RT-8f2a9c1d77 (AT-4e1b77c09d) is not known"}"#,
        )
        .create_async()
        .await;
    let config = auth_core::SourceConfig::builder(format!("{}/token", provider.url()), "client-id")
        .client_secret("very-secret-client-secret")
        .revocation_url(format!("{}/revoke", provider.url()))
        .build()
        .unwrap();
    let source = TokenSource::new(config, transport(http_client())).unwrap();
    source.token().await.unwrap();
    let error = source.revoke().await.unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("8f2a9c1d") && !shown.contains("4e1b77c0"), "{shown}");
    assert!(error.to_string().starts_with("could not revoke the token: revocation endpoint refused"), "{error}");
    assert!(source.cached().is_none(), "forgotten all the same");
}

#[tokio::test]
async fn a_401_that_a_new_token_does_not_cure_is_marked_and_causes_no_fetch_loop() {
    let mut provider = mockito::Server::new_async().await;
    provider.mock("POST", "/token").with_body(token_body("first")).expect(1).create_async().await;
    let mut api_server = mockito::Server::new_async().await;
    let rejecting = api_server.mock("GET", "/v1/orders").with_status(401).expect(4).create_async().await;

    let client = http_client();
    let source = TokenSource::new(config(&format!("{}/token", provider.url())), transport(client.clone())).unwrap();
    source.token().await.unwrap();
    let renewal = provider.mock("POST", "/token").with_body(token_body("second")).expect(1).create_async().await;
    let api = AuthLayer::bearer(source.clone(), &api_server.url()).unwrap().layer(client);
    let url = format!("{}/v1/orders", api_server.url());
    // The first call: rejected, renewed, replayed, rejected again. Then the
    // loop guard holds the renewal back. Every one of these 401s is marked.
    for _ in 0..3 {
        let response = api.clone().oneshot(Request::get(&url).body(Full::new(Bytes::new())).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let mark = response.extensions().get::<auth_core::RejectedAfterRenewal>();
        assert!(mark.is_some_and(|m| m.to_string().contains("audience")), "{mark:?}");
    }
    rejecting.assert_async().await;
    renewal.assert_async().await;
    assert_eq!(source.stats().fetches, 2);
}

/// A provider whose API takes its tokens, and a layer-wrapped client for it.
fn revocation_setup(
    copies: auth_core::publish::replay::ReplayCopies,
) -> (auth_testkit::Provider, TokenSource, impl Fn() -> Request<Full<Bytes>>, auth_tower::Auth<common::HttpClient>) {
    let provider =
        auth_testkit::Provider::start(auth_testkit::ProviderConfig::new().client("app", "app-secret")).unwrap();
    let client = http_client();
    // A 1 ms fetch-loop guard: these tests revoke tokens fetched because of a 401.
    let policy =
        auth_core::RefreshPolicy { unauthorized_backoff: std::time::Duration::from_millis(1), ..Default::default() };
    let config = auth_core::SourceConfig::builder(provider.token_url(), "app").client_secret("app-secret");
    let config = config.refresh_policy(policy).build();
    let source = TokenSource::new(config.unwrap(), transport(client.clone())).unwrap();
    let api = AuthLayer::bearer(source.clone(), provider.url()).unwrap().replay_copies(copies).layer(client);
    let url = provider.api_url("orders");
    let get = move || Request::get(&url).body(Full::default()).unwrap();
    (provider, source, get, api)
}

#[tokio::test]
async fn a_401_is_replayed_where_a_copy_was_kept_new_tokens_yes_settled_ones_no() {
    let (provider, source, get, api) = revocation_setup(auth_core::publish::replay::ReplayCopies::AtRisk);
    // A new token is at risk until the API accepts it: revoked before any
    // answer, its request's 401 is replayed with a second token.
    let first = source.token().await.unwrap();
    assert!(source.at_risk(&first), "new: not yet accepted");
    provider.revoke_all();
    assert_eq!(api.clone().oneshot(get()).await.unwrap().status(), StatusCode::OK, "replayed");
    assert_eq!(source.stats().replays_after_401, 1);
    let second = source.cached().unwrap();
    assert!(second.generation() > first.generation());
    assert!(!source.at_risk(&second), "the replay's answer settled the second token");

    // Revoked in the middle of its life (past the 1 ms fetch-loop guard of
    // a token fetched because of a 401): the settled token's request kept
    // no copy, so the 401 reaches the caller and the token is dropped.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    provider.revoke_all();
    assert_eq!(api.clone().oneshot(get()).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert!(source.cached().is_none(), "the 401 withdrew the token");
    // The next request carries a new token.
    assert_eq!(api.clone().oneshot(get()).await.unwrap().status(), StatusCode::OK);
    let stats = source.stats();
    assert_eq!((stats.fetches, stats.invalidations, stats.replays_after_401), (3, 2, 1));
    assert_eq!(provider.stats().api_unauthorized, 2);
}

#[tokio::test]
async fn with_replay_copies_always_a_settled_tokens_401_is_replayed_too() {
    let (provider, source, get, api) = revocation_setup(auth_core::publish::replay::ReplayCopies::Always);
    assert_eq!(api.clone().oneshot(get()).await.unwrap().status(), StatusCode::OK);
    assert!(!source.at_risk(&source.cached().unwrap()));
    provider.revoke_all();
    assert_eq!(api.clone().oneshot(get()).await.unwrap().status(), StatusCode::OK, "replayed");
    let stats = source.stats();
    assert_eq!((stats.fetches, stats.invalidations, stats.replays_after_401), (2, 1, 1));
}

#[tokio::test]
async fn a_refusal_asking_for_more_comes_back_marked_and_is_never_renewed() {
    use auth_core::resource::step_up::StepUp;
    let mut provider = mockito::Server::new_async().await;
    let token = provider.mock("POST", "/token").with_body(token_body("t1")).expect(1).create_async().await;
    let mut api_server = mockito::Server::new_async().await;
    let forbidden = api_server
        .mock("POST", "/v1/orders")
        .with_status(403)
        .with_header("www-authenticate", r#"Bearer error="insufficient_scope", scope="orders:read orders:write""#)
        .expect(2)
        .create_async()
        .await;
    let stronger = api_server
        .mock("GET", "/v1/payments")
        .with_status(401)
        .with_header("www-authenticate", r#"Bearer error="insufficient_user_authentication", max_age="60""#)
        .expect(1)
        .create_async()
        .await;
    let client = http_client();
    let config = auth_core::SourceConfig::builder(format!("{}/token", provider.url()), "client-id")
        .client_secret("very-secret-client-secret")
        .scope("orders:read")
        .build()
        .unwrap();
    let source = TokenSource::new(config, transport(client.clone())).unwrap();
    let credentials = Credentials::bearer(&api_server.url()).unwrap();
    // With a copy kept (the default; the token is new) and without one (a settled token, AtRisk).
    for copies in [auth_core::publish::replay::ReplayCopies::Always, auth_core::publish::replay::ReplayCopies::AtRisk] {
        let api = AuthLayer::new(source.clone(), credentials.clone()).replay_copies(copies).layer(client.clone());
        let request =
            Request::post(format!("{}/v1/orders", api_server.url())).body(Full::new(Bytes::from_static(b"x"))).unwrap();
        let answer = api.oneshot(request).await.unwrap();
        assert_eq!(answer.status(), StatusCode::FORBIDDEN);
        let asked = answer.extensions().get::<StepUp>().expect("marked");
        assert_eq!(asked.scopes().unwrap(), ["orders:read", "orders:write"]);
    }
    let api = AuthLayer::new(source.clone(), credentials).layer(client);
    let request = Request::get(format!("{}/v1/payments", api_server.url())).body(Full::new(Bytes::new())).unwrap();
    let answer = api.oneshot(request).await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let asked = answer.extensions().get::<StepUp>().expect("marked");
    assert_eq!(asked, &StepUp::Authentication { acr_values: Vec::new(), max_age: Some(60) });
    token.assert_async().await;
    forbidden.assert_async().await;
    stronger.assert_async().await;
    assert_eq!(source.stats().fetches, 1, "nothing renewed");
}
