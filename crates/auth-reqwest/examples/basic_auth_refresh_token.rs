//! Provider style: client authentication with HTTP Basic (RFC 6749 §2.3.1),
//! `scope=offline_access`, and renewal with the refresh token.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1), with
//! 2-second tokens so the renewal shows:
//! `cargo run -p auth-reqwest --example basic_auth_refresh_token`.

use std::time::Duration;

use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider =
        Provider::start(ProviderConfig::new().client("my client", "p@ss word").token_lifetime(Duration::from_secs(2)))?;

    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "my client")
        .client_secret("p@ss word") // Basic is the default client authentication
        .scope("offline_access")
        .api_origin(provider.url())
        .build()?;
    let source = client.token_source().ok_or("no token source")?;
    println!("first token:   generation {}", source.token().await?.generation().get());
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("after renewal: generation {}", source.token().await?.generation().get());
    client.get(provider.api_url("me")).send().await?.error_for_status()?;

    let grants: Vec<String> = provider.token_requests().into_iter().map(|r| r.grant_type).collect();
    for request in provider.token_requests() {
        println!("token request: grant_type={} client_auth={}", request.grant_type, request.client_auth);
    }
    assert_eq!(grants.first().map(String::as_str), Some("client_credentials"));
    assert!(grants[1..].iter().all(|g| g == "refresh_token") && grants.len() >= 2, "{grants:?}");
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
