//! The providers' 401 rule through the reqwest middleware with its
//! defaults, against the embedded provider: a token revoked in the middle
//! of its life is renewed once and GET and buffered POST are sent again; a
//! streaming body gets its 401 and the next request the new token; twenty
//! callers at a revocation; a renewed token the API accepted is renewed
//! again however soon; one active token with two clients that share no
//! store; a DPoP token meeting `invalid_token` then a nonce demand, also
//! when it came from a shared store.

use std::sync::Arc;

use auth_core::dpop::Dpop;
use auth_core::store::{MemoryStore, StoreConfig};
use auth_core::{Credentials, RejectedAfterRenewal, SourceConfig};
use auth_reqwest::{AuthClient, AuthMiddleware, ReqwestTransport, TokenSource};
use auth_testkit::{Provider, ProviderConfig};
use bytes::Bytes;

fn provider(config: ProviderConfig) -> Provider {
    Provider::start(config.client("app", "app-secret")).unwrap()
}

/// A client with the builder's defaults.
fn client(provider: &Provider) -> AuthClient {
    AuthClient::builder()
        .client_credentials(provider.token_url(), "app")
        .client_secret("app-secret")
        .api_origin(provider.url())
        .build()
        .unwrap()
}

fn fetches(client: &AuthClient) -> u64 {
    client.token_source().unwrap().stats().fetches
}

async fn get(client: &AuthClient, provider: &Provider) -> reqwest::Response {
    client.get(provider.api_url("orders")).send().await.unwrap()
}

async fn post(client: &AuthClient, provider: &Provider, body: reqwest::Body) -> reqwest::Response {
    client.post(provider.api_url("orders")).body(body).send().await.unwrap()
}

fn streaming() -> reqwest::Body {
    let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from("chunk"))]);
    reqwest::Body::wrap_stream(chunks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_mid_life_is_renewed_once_and_get_and_post_are_sent_again() {
    let provider = provider(ProviderConfig::new());
    let client = client(&provider);
    for _ in 0..3 {
        assert_eq!(get(&client, &provider).await.status(), 200);
    }
    provider.revoke_all();
    assert_eq!(get(&client, &provider).await.status(), 200);
    assert_eq!(post(&client, &provider, "order=1".into()).await.status(), 200);
    assert_eq!(fetches(&client), 2, "exactly one new token");

    provider.revoke_all();
    let response = post(&client, &provider, streaming()).await;
    assert_eq!(response.status(), 401, "a stream cannot be sent again");
    assert!(response.extensions().get::<RejectedAfterRenewal>().is_none(), "a revocation, not marked");
    assert_eq!(get(&client, &provider).await.status(), 200, "the next call carries the new token");
    assert_eq!(fetches(&client), 3);
    assert_eq!(provider.stats().api_unauthorized, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_callers_at_a_revocation_get_one_new_token_and_twenty_successes() {
    let provider = provider(ProviderConfig::new());
    let client = client(&provider);
    assert_eq!(get(&client, &provider).await.status(), 200);
    provider.revoke_all();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let request = client.post(provider.api_url("orders")).body("x");
        calls.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = calls.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    assert_eq!(fetches(&client), 2);
    assert_eq!(provider.stats().tokens_issued, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_token_the_api_accepted_is_renewed_again_however_soon_it_is_revoked() {
    let provider = provider(ProviderConfig::new());
    let client = client(&provider);
    assert_eq!(get(&client, &provider).await.status(), 200);
    provider.revoke_all();
    for _ in 0..20 {
        assert_eq!(get(&client, &provider).await.status(), 200);
    }
    provider.revoke_all();
    for _ in 0..5 {
        let response = get(&client, &provider).await;
        assert_eq!(response.status(), 200);
    }
    assert_eq!(fetches(&client), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_active_token_and_two_clients_without_a_store_every_request_succeeds() {
    let provider = provider(ProviderConfig::new().one_active_token(true));
    let (first, second) = (client(&provider), client(&provider));
    for round in 0..5 {
        assert_eq!(get(&first, &provider).await.status(), 200, "round {round}, first");
        assert_eq!(post(&second, &provider, "x".into()).await.status(), 200, "round {round}, second");
    }
    assert_eq!(provider.stats().tokens_issued, 10);
    assert_eq!(fetches(&first) + fetches(&second), 10);
}

/// A hand-built client over a DPoP source sharing `store` when given.
fn dpop_client(
    provider: &Provider,
    dpop: Arc<Dpop>,
    store: Option<&MemoryStore>,
) -> (TokenSource, reqwest_middleware::ClientWithMiddleware) {
    let config =
        SourceConfig::builder(provider.token_url(), "app").client_secret("app-secret").dpop(dpop).build().unwrap();
    let builder = TokenSource::builder(config, ReqwestTransport::new().unwrap());
    let builder = match store {
        Some(store) => builder.store(store.clone(), StoreConfig::default()),
        None => builder,
    };
    let source = builder.build().unwrap();
    let middleware = AuthMiddleware::new(source.clone(), Credentials::bearer(provider.url()).unwrap());
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build();
    (source, client)
}

fn nonce_provider() -> Provider {
    provider(ProviderConfig::new().dpop_nonces(true).api_dpop_nonce(true).require_dpop(true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_dpop_token_is_renewed_then_the_api_nonce_is_sent_one_new_token_one_nonce_retry() {
    let provider = nonce_provider();
    let (source, client) = dpop_client(&provider, Dpop::generate().unwrap(), None);
    source.token().await.unwrap();
    provider.revoke_all();
    let before = provider.stats();
    let response = client.post(provider.api_url("orders")).body("order=1").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let after = provider.stats();
    assert_eq!(after.api_calls - before.api_calls, 3, "the original, the renewal, the nonce retry");
    assert_eq!(after.tokens_issued - before.tokens_issued, 1);
    assert_eq!(source.stats().fetches, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_token_from_the_store_meets_the_same_sequence_and_succeeds() {
    let provider = nonce_provider();
    let dpop = Dpop::generate().unwrap();
    let store = MemoryStore::new();
    let (earlier, _) = dpop_client(&provider, Arc::clone(&dpop), Some(&store));
    earlier.token().await.unwrap();
    earlier.flush().await;
    drop(earlier);
    let (source, client) = dpop_client(&provider, dpop, Some(&store));
    source.token().await.unwrap();
    assert_eq!(source.stats().adoptions, 1, "the token came from the store");
    provider.revoke_all();
    let response = client.get(provider.api_url("orders")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(source.stats().fetches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_built_with_one_store_share_one_token() {
    use auth_reqwest::{MemoryStore, StoreConfig};
    let provider = provider(ProviderConfig::new());
    let store = MemoryStore::new();
    let fleet: Vec<AuthClient> = (0..3)
        .map(|_| {
            AuthClient::builder()
                .client_credentials(provider.token_url(), "app")
                .client_secret("app-secret")
                .api_origin(provider.url())
                .store(store.clone(), StoreConfig::default())
                .build()
                .unwrap()
        })
        .collect();
    for client in &fleet {
        assert_eq!(get(client, &provider).await.status(), 200);
    }
    assert_eq!(provider.stats().tokens_issued, 1, "one fetch for the fleet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_an_origin_not_allowed_goes_without_credentials_and_is_counted() {
    let provider = provider(ProviderConfig::new());
    let port = provider.url().rsplit(':').next().unwrap().to_owned();
    let config = SourceConfig::builder(provider.token_url(), "app").client_secret("app-secret").build().unwrap();
    let source = TokenSource::builder(config, ReqwestTransport::new().unwrap()).build().unwrap();
    let credentials = Credentials::bearer(&format!("http://localhost:{port}")).unwrap();
    let middleware = AuthMiddleware::new(source.clone(), credentials.clone());
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(middleware).build();
    for _ in 0..2 {
        let response = client.get(provider.api_url("orders")).send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
    assert_eq!(credentials.withheld_requests(), 2);
    assert_eq!(source.stats().fetches, 0);

    // The ready-made client says it too.
    let named = AuthClient::builder()
        .client_credentials(provider.token_url(), "app")
        .client_secret("app-secret")
        .api_origin(format!("http://localhost:{port}"))
        .build()
        .unwrap();
    assert_eq!(named.get(provider.api_url("orders")).send().await.unwrap().status(), 401);
    assert_eq!(named.withheld_requests(), 1);
}
