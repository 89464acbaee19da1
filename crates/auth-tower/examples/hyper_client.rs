//! A hyper-util client wrapped with `AuthLayer`, calling a protected API
//! that wants both an API key header and a Bearer token from the client
//! credentials grant.
//!
//! The provider and the API are local stand-ins (mockito on 127.0.0.1), so
//! the example runs anywhere: `cargo run -p auth-tower --example hyper_client`.

use auth_core::{ClientAuth, Credentials, SourceConfig};
use auth_tower::{AuthLayer, TokenSource};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Stand-ins: a token endpoint (secret in the form body) and an API that
    // checks both credentials.
    let mut provider = mockito::Server::new_async().await;
    provider
        .mock("POST", "/oauth/token")
        .match_body(mockito::Matcher::Regex("client_secret=example-secret".into()))
        .with_header("content-type", "application/json")
        .with_body(r#"{"access_token":"example-access-token","token_type":"Bearer","expires_in":3600}"#)
        .expect(1)
        .create_async()
        .await;
    let mut api = mockito::Server::new_async().await;
    api.mock("GET", "/v1/vehicles")
        .match_header("authorization", "Bearer example-access-token")
        .match_header("cdpapi-subscription-key", "example-subscription-key")
        .with_body(r#"[{"id":1}]"#)
        .expect(3)
        .create_async()
        .await;

    // One HTTP client for the token endpoint and the API.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let token_transport = ServiceBuilder::new()
        .map_request(|request: http::Request<Vec<u8>>| request.map(|body| Full::new(Bytes::from(body))))
        .service(client.clone());

    let config = SourceConfig::builder(format!("{}/oauth/token", provider.url()), "example-client")
        .client_secret("example-secret")
        .client_auth(ClientAuth::Post)
        .build()?;
    let source = TokenSource::new(config, token_transport)?;
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("cdpapi-Subscription-Key", "example-subscription-key")
        .allow_origin(api.url())
        .build()?;
    let authed = AuthLayer::new(source.clone(), credentials).layer(client);

    for _ in 0..3 {
        let request = http::Request::get(format!("{}/v1/vehicles", api.url())).body(Full::new(Bytes::new()))?;
        let response = authed.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!("{status} {}", String::from_utf8_lossy(&body));
    }
    println!("token requests: {} (one token for all calls)", source.stats().fetches);
    Ok(())
}
