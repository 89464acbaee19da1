//! Provider style: a subscription key header on every call plus a client
//! credentials Bearer token, the client secret sent in the form body.
//!
//! The provider and API are local stand-ins (mockito on 127.0.0.1):
//! `cargo run -p auth-reqwest --example api_key_and_bearer`.

use auth_core::ClientAuth;
use auth_reqwest::AuthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut provider = mockito::Server::new_async().await;
    provider
        .mock("POST", "/oauth2/token")
        .match_body("grant_type=client_credentials&client_id=my-client&client_secret=my-secret")
        .with_body(r#"{"access_token":"token-1","token_type":"Bearer","expires_in":3600}"#)
        .create_async()
        .await;
    let mut api = mockito::Server::new_async().await;
    api.mock("GET", "/vehicles")
        .match_header("authorization", "Bearer token-1")
        .match_header("cdpapi-subscription-key", "my-subscription-key")
        .with_body(r#"[{"vin":"WAUZZZ"}]"#)
        .create_async()
        .await;

    let client = AuthClient::builder()
        .client_credentials(format!("{}/oauth2/token", provider.url()), "my-client")
        .client_secret("my-secret")
        .client_auth(ClientAuth::Post)
        .api_key_header("cdpapi-Subscription-Key", "my-subscription-key")
        .api_origin(api.url())
        .build()?;
    for _ in 0..3 {
        let vehicles = client.get(format!("{}/vehicles", api.url())).send().await?.text().await?;
        println!("vehicles: {vehicles}");
    }
    println!("token requests: {}", client.token_source().map_or(0, |s| s.stats().fetches));
    Ok(())
}
