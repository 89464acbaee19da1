//! A hyper-util client wrapped with `AuthLayer`, calling a protected API
//! that wants both an API key header and a Bearer token from the client
//! credentials grant.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1):
//! `cargo run -p auth-tower --example hyper_client`.

use auth_core::{ClientAuth, Credentials, SourceConfig};
use auth_testkit::{Provider, ProviderConfig};
use auth_tower::{AuthLayer, TokenSource};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new().client("example-client", "example-secret").api_key(
        "cdpapi-Subscription-Key",
        None,
        "example-subscription-key",
    ))?;

    // One HTTP client for the token endpoint and the API.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let token_transport = ServiceBuilder::new()
        .map_request(|request: http::Request<Vec<u8>>| request.map(|body| Full::new(Bytes::from(body))))
        .service(client.clone());

    let config = SourceConfig::builder(provider.token_url(), "example-client")
        .client_secret("example-secret")
        .client_auth(ClientAuth::Post)
        .build()?;
    let source = TokenSource::new(config, token_transport)?;
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("cdpapi-Subscription-Key", "example-subscription-key")
        .api_origin(provider.url())
        .build()?;
    let authed = AuthLayer::new(source.clone(), credentials).layer(client);

    for _ in 0..3 {
        let request = http::Request::get(provider.api_url("v1/vehicles")).body(Full::new(Bytes::new()))?;
        let response = authed.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        println!("{status} {}", String::from_utf8_lossy(&body));
        assert_eq!(status, 200);
    }
    println!("token requests: {} (one token for all calls)", source.stats().fetches);
    assert_eq!(source.stats().fetches, 1);
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
