//! Revocation of a token (RFC 7009): both the access and the refresh
//! token are revoked and forgotten; the next call gets a new token.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1):
//! `cargo run -p auth-reqwest --example revoke`.

use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new().client("client-id", "client-secret"))?;

    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "client-id")
        .client_secret("client-secret")
        .scope("offline_access")
        .revocation_url(provider.revocation_url())
        .api_origin(provider.url())
        .build()?;
    println!("before: {}", client.get(provider.api_url("me")).send().await?.error_for_status()?.status());
    let revoked = client.revoke().await?;
    println!("revoked access token: {}, refresh token: {}", revoked.access_token, revoked.refresh_token);
    println!("revocation requests: {}", provider.stats().revocations);
    println!(
        "after: {} (with a new token)",
        client.get(provider.api_url("me")).send().await?.error_for_status()?.status()
    );
    println!("tokens issued: {}", provider.stats().tokens_issued);
    assert!(revoked.access_token && revoked.refresh_token);
    assert_eq!(provider.stats().tokens_issued, 2);
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
