//! A program that depends on `auth-reqwest` alone (no `auth-core`,
//! `auth-tower`, `reqwest` or `reqwest-middleware` of its own): every name
//! below comes through this crate's re-exports, and `.json(..)` works (the
//! default `json` feature).

use auth_reqwest::reqwest_middleware::ClientBuilder;
use auth_reqwest::{reqwest, AuthClient, AuthMiddleware, ClientAuth, Credentials, SourceConfig, TokenSource};
use mockito::{Matcher, Server};

const TOKEN: &str = r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600}"#;

#[tokio::test]
async fn the_adapter_is_the_only_dependency_and_json_bodies_work() {
    let mut provider = Server::new_async().await;
    provider
        .mock("POST", "/token")
        .match_header("authorization", Matcher::Regex("^Basic ".into()))
        .with_body(TOKEN)
        .expect(2) // one per token source
        .create_async()
        .await;
    let mut api = Server::new_async().await;
    let created = api
        .mock("POST", "/v1/orders")
        .match_header("authorization", "Bearer at-1")
        .match_header("content-type", "application/json")
        .match_body(Matcher::Json(serde_json::json!({ "item": "flute", "count": 2 })))
        .with_header("content-type", "application/json")
        .with_body(r#"{"id":7}"#)
        .expect(2)
        .create_async()
        .await;
    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "client-id")
        .client_secret("secret")
        .client_auth(ClientAuth::Basic)
        .api_origin(api.url())
        .build()
        .unwrap();
    let order = serde_json::json!({ "item": "flute", "count": 2 });
    let response = client.post(format!("{}/v1/orders", api.url())).json(&order).send().await.unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], 7);

    // The middleware on a client built by hand, from the same re-exports.
    let config = SourceConfig::builder(format!("{}/token", provider.url()), "client-id")
        .client_secret("secret")
        .client_auth(ClientAuth::Basic)
        .build()
        .unwrap();
    let source = TokenSource::new(config, auth_reqwest::ReqwestTransport::new().unwrap()).unwrap();
    let credentials = Credentials::bearer(&api.url()).unwrap();
    let by_hand = ClientBuilder::new(reqwest::Client::new()).with(AuthMiddleware::new(source, credentials)).build();
    let url: reqwest::Url = format!("{}/v1/orders", api.url()).parse().unwrap();
    let response = by_hand.post(url).json(&order).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    created.assert_async().await;
}
