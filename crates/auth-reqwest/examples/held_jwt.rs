//! Provider style: a JWT the user already holds (issued by another system,
//! handed over as a deployment secret), sent as `Authorization: Bearer`
//! with no token endpoint involved.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1), which
//! mints the token here: `cargo run -p auth-reqwest --example held_jwt`.

use std::time::Duration;

use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new())?;
    // In a program: std::env::var("PARTNER_JWT")?
    let jwt = provider.issue_token("partner", Duration::from_secs(3600));

    let client = AuthClient::builder().static_bearer(jwt).api_origin(provider.url()).build()?;
    let response = client.get(provider.api_url("reports")).send().await?.error_for_status()?;
    println!("{} {}", response.status(), response.text().await?);
    assert_eq!(provider.stats().token_requests, 0, "no token endpoint");
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
