//! Provider style: a JSON token request with `audience`, answered with a
//! token that lives a whole day (86,400 s).
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1):
//! `cargo run -p auth-reqwest --example json_audience_day_token`.

use std::time::Duration;

use auth_core::ClientAuth;
use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(
        ProviderConfig::new().client("client-id", "client-secret").token_lifetime(Duration::from_secs(86_400)),
    )?;

    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "client-id")
        .client_secret("client-secret")
        .client_auth(ClientAuth::Json)
        .audience("https://api.example.com/")
        .api_origin(provider.url())
        .build()?;
    println!("users: {}", client.get(provider.api_url("users")).send().await?.text().await?);
    let token = client.token_source().ok_or("no token source")?.token().await?;
    println!("lifetime {:?}, renewed {:?} after issue", token.lifetime(), token.renew_at() - token.issued_at());
    let request = provider.token_requests().pop().ok_or("no token request")?;
    println!("token request: client_auth={} audience={:?}", request.client_auth, request.audience);
    Ok(())
}
