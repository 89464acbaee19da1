//! Provider style: legacy HTTP Basic credentials (a token id and secret).
//!
//! Runs against the embedded provider's legacy API (auth-testkit on
//! 127.0.0.1): `cargo run -p auth-reqwest --example legacy_basic`.

use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new().basic_login("token-id", "token-secret"))?;

    let client = AuthClient::builder().basic("token-id", "token-secret").api_origin(provider.url()).build()?;
    let response = client.get(provider.legacy_url("accounts")).send().await?.error_for_status()?;
    println!("{} {}", response.status(), response.text().await?);
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
