//! Provider style: a subscription key header on every call plus a client
//! credentials Bearer token, the client secret sent in the form body.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1):
//! `cargo run -p auth-reqwest --example api_key_and_bearer`.

use auth_reqwest::{AuthClient, ClientAuth};
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new().client("my-client", "my-secret").api_key(
        "cdpapi-Subscription-Key",
        None,
        "my-subscription-key",
    ))?;

    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "my-client")
        .client_secret("my-secret")
        .client_auth(ClientAuth::Post)
        .api_key_header("cdpapi-Subscription-Key", "my-subscription-key")
        .api_origin(provider.url())
        .build()?;
    for _ in 0..3 {
        let vehicles = client.get(provider.api_url("vehicles")).send().await?.error_for_status()?;
        println!("{} {}", vehicles.status(), vehicles.text().await?);
    }

    let request = provider.token_requests().pop().ok_or("no token request")?;
    println!("token requests: {} (client authentication: {})", provider.stats().token_requests, request.client_auth);
    assert_eq!(provider.stats().token_requests, 1, "one token for every call");
    assert_eq!(request.client_auth, "post");
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
