//! Provider style: legacy HTTP Basic credentials (a token id and secret).
//!
//! Local stand-in (mockito on 127.0.0.1): `cargo run -p auth-reqwest --example legacy_basic`.

use auth_reqwest::AuthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut api = mockito::Server::new_async().await;
    api.mock("GET", "/v1/accounts")
        .match_header("authorization", "Basic dG9rZW4taWQ6dG9rZW4tc2VjcmV0")
        .with_body(r#"[{"id":"acc-1"}]"#)
        .create_async()
        .await;

    let client = AuthClient::builder().basic("token-id", "token-secret").api_origin(api.url()).build()?;
    println!("accounts: {}", client.get(format!("{}/v1/accounts", api.url())).send().await?.text().await?);
    Ok(())
}
