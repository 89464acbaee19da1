//! Provider style: client authentication with HTTP Basic (RFC 6749 §2.3.1),
//! `scope=offline_access`, and renewal with the refresh token.
//!
//! Local stand-ins (mockito on 127.0.0.1), 2-second tokens so the renewal
//! shows: `cargo run -p auth-reqwest --example basic_auth_refresh_token`.

use std::time::Duration;

use auth_reqwest::AuthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut provider = mockito::Server::new_async().await;
    provider
        .mock("POST", "/token")
        .match_header("authorization", mockito::Matcher::Regex("^Basic ".into()))
        .match_body("grant_type=client_credentials&scope=offline_access")
        .with_body(r#"{"access_token":"first","expires_in":2,"refresh_token":"refresh-1","scope":"offline_access"}"#)
        .create_async()
        .await;
    provider
        .mock("POST", "/token")
        .match_body("grant_type=refresh_token&refresh_token=refresh-1")
        .with_body(r#"{"access_token":"renewed","expires_in":3600}"#)
        .create_async()
        .await;

    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "my client")
        .client_secret("p@ss word")
        .scope("offline_access")
        .build()?;
    let source = client.token_source().ok_or("no token source")?;
    println!("first token:   {:?}", source.token().await?.generation());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let renewed = source.token().await?;
    println!("after renewal: {:?} (lifetime {:?})", renewed.generation(), renewed.lifetime());
    println!("token requests: {}", source.stats().fetches);
    Ok(())
}
