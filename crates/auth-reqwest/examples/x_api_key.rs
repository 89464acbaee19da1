//! Provider style: a plain `X-API-Key` API, no OAuth at all.
//!
//! Runs against the embedded provider's API (auth-testkit on 127.0.0.1),
//! configured as an API-key-only API:
//! `cargo run -p auth-reqwest --example x_api_key`.

use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider =
        Provider::start(ProviderConfig::new().api_key("X-API-Key", None, "my-api-key").api_requires_token(false))?;

    let client = AuthClient::builder().api_key_header("X-API-Key", "my-api-key").api_origin(provider.url()).build()?;
    let response = client.get(provider.api_url("quotes")).send().await?.error_for_status()?;
    println!("{} {}", response.status(), response.text().await?);
    assert_eq!(provider.stats().token_requests, 0, "no OAuth here");
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
