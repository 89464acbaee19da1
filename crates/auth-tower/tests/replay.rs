//! The providers' 401 rule through the tower layer with its defaults,
//! against the embedded provider: a token revoked in the middle of its
//! life is renewed once and every request whose body can be copied is sent
//! again; a streaming body gets its 401 and the next request the new
//! token; a renewed token the API accepted is renewed again on a later
//! 401, however soon; a one-active-token provider with two sources that
//! share no store; a DPoP token meeting `invalid_token` then a nonce
//! demand, also when it came from a shared store.

mod common;

use std::sync::Arc;

use auth_core::dpop::Dpop;
use auth_core::store::{MemoryStore, StoreConfig};
use auth_core::{Credentials, RejectedAfterRenewal, SourceConfig};
use auth_testkit::{Provider, ProviderConfig};
use auth_tower::{AuthLayer, ReplayableBody, TokenSource};
use bytes::Bytes;
use http::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

type Api = auth_tower::Auth<Client<hyper_util::client::legacy::connect::HttpConnector, ReplayableBody>>;

fn provider(config: ProviderConfig) -> Provider {
    Provider::start(config.client("app", "app-secret")).unwrap()
}

/// A source with the library's defaults (no store).
fn source(provider: &Provider) -> TokenSource {
    let config = SourceConfig::builder(provider.token_url(), "app").client_secret("app-secret").build().unwrap();
    TokenSource::new(config, common::transport(common::http_client())).unwrap()
}

/// The layer with its defaults over a client that sends both kinds of body.
fn api(provider: &Provider, source: &TokenSource) -> Api {
    let client = Client::builder(TokioExecutor::new()).build_http();
    AuthLayer::new(source.clone(), Credentials::bearer(provider.url()).unwrap()).layer(client)
}

async fn get(api: &Api, provider: &Provider) -> http::Response<hyper::body::Incoming> {
    let request = Request::get(provider.api_url("orders")).body(ReplayableBody::full(Bytes::new())).unwrap();
    api.clone().oneshot(request).await.unwrap()
}

async fn post(api: &Api, provider: &Provider, body: ReplayableBody) -> http::Response<hyper::body::Incoming> {
    let request = Request::post(provider.api_url("orders")).body(body).unwrap();
    api.clone().oneshot(request).await.unwrap()
}

fn streaming(text: &'static str) -> ReplayableBody {
    ReplayableBody::stream(http_body_util::Full::new(Bytes::from_static(text.as_bytes())))
}

#[tokio::test]
async fn a_token_revoked_mid_life_is_renewed_once_and_get_and_post_are_sent_again() {
    let provider = provider(ProviderConfig::new());
    let source = source(&provider);
    let api = api(&provider, &source);
    for _ in 0..3 {
        assert_eq!(get(&api, &provider).await.status(), StatusCode::OK);
    }
    assert_eq!(source.stats().fetches, 1);

    // Revoked in the middle of its life: the GET and the POST with a
    // buffered body succeed, with exactly one new token between them.
    provider.revoke_all();
    assert_eq!(get(&api, &provider).await.status(), StatusCode::OK);
    assert_eq!(post(&api, &provider, ReplayableBody::full("order")).await.status(), StatusCode::OK);
    assert_eq!(source.stats().fetches, 2);
    assert_eq!(source.stats().replays_after_401, 1);

    // A streaming body cannot be sent again: its 401 reaches the caller,
    // unmarked (a revocation, not a token the API never takes), and the
    // next request carries the new token.
    provider.revoke_all();
    let response = post(&api, &provider, streaming("streamed")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.extensions().get::<RejectedAfterRenewal>().is_none());
    assert_eq!(get(&api, &provider).await.status(), StatusCode::OK);
    assert_eq!(source.stats().fetches, 3);
    assert_eq!(provider.stats().api_unauthorized, 2, "one 401 per revocation");
}

#[tokio::test]
async fn twenty_callers_at_a_revocation_get_one_new_token_and_twenty_successes() {
    let provider = provider(ProviderConfig::new());
    let source = source(&provider);
    let api = api(&provider, &source);
    assert_eq!(get(&api, &provider).await.status(), StatusCode::OK);
    provider.revoke_all();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let api = api.clone();
        let url = provider.api_url("orders");
        calls.spawn(async move {
            let request = Request::post(url).body(ReplayableBody::full("x")).unwrap();
            api.oneshot(request).await.unwrap().status()
        });
    }
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(source.stats().fetches, 2, "one new token for twenty rejected requests");
    assert_eq!(provider.stats().tokens_issued, 2);
}

#[tokio::test]
async fn a_renewed_token_the_api_accepted_is_renewed_again_however_soon_it_is_revoked() {
    let provider = provider(ProviderConfig::new());
    let source = source(&provider);
    let api = api(&provider, &source);
    assert_eq!(get(&api, &provider).await.status(), StatusCode::OK);
    provider.revoke_all();
    for _ in 0..20 {
        assert_eq!(get(&api, &provider).await.status(), StatusCode::OK);
    }
    // Revoked again within the loop guard's 10 s: the new token was
    // accepted twenty times, so this is a revocation, renewed at once.
    provider.revoke_all();
    for _ in 0..5 {
        let response = get(&api, &provider).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(source.stats().fetches, 3);
}

#[tokio::test]
async fn one_active_token_and_two_sources_without_a_store_every_request_succeeds() {
    // Each new token revokes the client's earlier one: two processes that
    // share no store take turns revoking each other's token.
    let provider = provider(ProviderConfig::new().one_active_token(true));
    let (first, second) = (source(&provider), source(&provider));
    let (api_1, api_2) = (api(&provider, &first), api(&provider, &second));
    for round in 0..5 {
        assert_eq!(get(&api_1, &provider).await.status(), StatusCode::OK, "round {round}, first");
        assert_eq!(get(&api_2, &provider).await.status(), StatusCode::OK, "round {round}, second");
    }
    // One token each to start, then one per revocation (every request
    // after the first two found its token revoked by the other source).
    assert_eq!(provider.stats().tokens_issued, 10);
    assert_eq!(first.stats().fetches + second.stats().fetches, 10);
    assert_eq!(provider.stats().api_unauthorized, 8);
}

/// A DPoP source on `provider`, sharing `store` when given.
fn dpop_source(provider: &Provider, dpop: Arc<Dpop>, store: Option<&MemoryStore>) -> TokenSource {
    let config =
        SourceConfig::builder(provider.token_url(), "app").client_secret("app-secret").dpop(dpop).build().unwrap();
    let builder = TokenSource::builder(config, common::transport(common::http_client()));
    let builder = match store {
        Some(store) => builder.store(store.clone(), StoreConfig::default()),
        None => builder,
    };
    builder.build().unwrap()
}

fn nonce_provider() -> Provider {
    provider(ProviderConfig::new().dpop_nonces(true).api_dpop_nonce(true).require_dpop(true))
}

#[tokio::test]
async fn a_revoked_dpop_token_is_renewed_then_the_api_nonce_is_sent_one_new_token_one_nonce_retry() {
    let provider = nonce_provider();
    let dpop = Dpop::generate().unwrap();
    let source = dpop_source(&provider, dpop, None);
    source.token().await.unwrap();
    let api = api(&provider, &source);
    provider.revoke_all();
    let before = provider.stats();
    // invalid_token -> a new token (the token endpoint's nonce cached) ->
    // use_dpop_nonce (the API's own) -> the same token with its nonce -> 200.
    let response = post(&api, &provider, ReplayableBody::full("order")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.extensions().get::<RejectedAfterRenewal>().is_none());
    let after = provider.stats();
    assert_eq!(after.api_calls - before.api_calls, 3, "three sends: the original, the renewal, the nonce retry");
    assert_eq!(after.tokens_issued - before.tokens_issued, 1, "one new token");
    assert_eq!(source.stats().fetches, 2);
}

#[tokio::test]
async fn a_dpop_token_from_the_store_meets_the_same_sequence_and_succeeds() {
    let provider = nonce_provider();
    let dpop = Dpop::generate().unwrap();
    let store = MemoryStore::new();
    // An earlier process fetched the token and left it in the store.
    let earlier = dpop_source(&provider, Arc::clone(&dpop), Some(&store));
    earlier.token().await.unwrap();
    earlier.flush().await;
    drop(earlier);
    let source = dpop_source(&provider, dpop, Some(&store));
    source.token().await.unwrap();
    assert_eq!(source.stats().adoptions, 1, "the token came from the store");
    let api = api(&provider, &source);
    provider.revoke_all();
    let response = get(&api, &provider).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(source.stats().fetches, 1, "one new token, fetched by this source");
}

#[tokio::test]
async fn requests_that_keep_no_copy_still_report_a_new_tokens_acceptance_to_the_loop_guard() {
    // Streaming bodies only: no request keeps a copy, none is replayed.
    let provider = provider(ProviderConfig::new());
    let source = source(&provider);
    let api = api(&provider, &source);
    assert_eq!(post(&api, &provider, streaming("a")).await.status(), StatusCode::OK);
    provider.revoke_all();
    assert_eq!(post(&api, &provider, streaming("b")).await.status(), StatusCode::UNAUTHORIZED);
    // The token fetched because of that 401 (published before the next
    // request, which reads it without waiting) is accepted...
    source.token().await.unwrap();
    assert_eq!(post(&api, &provider, streaming("c")).await.status(), StatusCode::OK);
    // ...so a revocation soon after is renewed at once, not held back.
    provider.revoke_all();
    assert_eq!(post(&api, &provider, streaming("d")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(&api, &provider, streaming("e")).await.status(),
        StatusCode::OK,
        "the next request has a new token"
    );
    assert_eq!(source.stats().fetches, 3);
    // The same through a layer that never replays.
    let without = AuthLayer::new(source.clone(), Credentials::bearer(provider.url()).unwrap())
        .without_replay()
        .layer(Client::builder(TokioExecutor::new()).build_http::<ReplayableBody>());
    let send = |body: &'static str| {
        let request = Request::post(provider.api_url("orders")).body(ReplayableBody::full(body)).unwrap();
        without.clone().oneshot(request)
    };
    provider.revoke_all();
    assert_eq!(send("f").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    source.token().await.unwrap();
    assert_eq!(send("g").await.unwrap().status(), StatusCode::OK);
    provider.revoke_all();
    assert_eq!(send("h").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(send("i").await.unwrap().status(), StatusCode::OK);
    assert_eq!(source.stats().fetches, 5);
}

#[tokio::test]
async fn a_request_to_an_origin_not_allowed_goes_without_credentials_and_is_counted() {
    let provider = provider(ProviderConfig::new());
    let source = source(&provider);
    // Named as localhost, called as 127.0.0.1: another origin.
    let port = provider.url().rsplit(':').next().unwrap().to_owned();
    let credentials = Credentials::bearer(&format!("http://localhost:{port}")).unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayableBody>();
    let api = AuthLayer::new(source.clone(), credentials.clone()).layer(client);
    for _ in 0..3 {
        let request = Request::get(provider.api_url("orders")).body(ReplayableBody::full(Bytes::new())).unwrap();
        assert_eq!(api.clone().oneshot(request).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(credentials.withheld_requests(), 3, "every withheld request counted (the first one said)");
    assert_eq!(source.stats().fetches, 0, "no token was fetched for them");
}
