//! Provider style: a JSON token request with `audience`, answered with a
//! token that lives a whole day (86,400 s).
//!
//! Local stand-ins (mockito on 127.0.0.1):
//! `cargo run -p auth-reqwest --example json_audience_day_token`.

use auth_core::ClientAuth;
use auth_reqwest::AuthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut provider = mockito::Server::new_async().await;
    provider
        .mock("POST", "/oauth/token")
        .match_header("content-type", "application/json")
        .match_body(mockito::Matcher::PartialJsonString(
            r#"{"grant_type":"client_credentials","audience":"https://api.example.com/"}"#.into(),
        ))
        .with_body(r#"{"access_token":"eyJhbGciOi.day.sig","token_type":"Bearer","expires_in":86400}"#)
        .create_async()
        .await;
    let mut api = mockito::Server::new_async().await;
    api.mock("GET", "/users")
        .match_header("authorization", "Bearer eyJhbGciOi.day.sig")
        .with_body("[]")
        .create_async()
        .await;

    let client = AuthClient::builder()
        .client_credentials(format!("{}/oauth/token", provider.url()), "client-id")
        .client_secret("client-secret")
        .client_auth(ClientAuth::Json)
        .audience("https://api.example.com/")
        .api_origin(api.url())
        .build()?;
    println!("users: {}", client.get(format!("{}/users", api.url())).send().await?.text().await?);
    let token = client.token_source().ok_or("no token source")?.token().await?;
    println!("lifetime {:?}, renewed {:?} after issue", token.lifetime(), token.renew_at() - token.issued_at());
    Ok(())
}
