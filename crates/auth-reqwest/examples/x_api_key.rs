//! Provider style: a plain `X-API-Key` API, no OAuth at all.
//!
//! Local stand-in (mockito on 127.0.0.1): `cargo run -p auth-reqwest --example x_api_key`.

use auth_reqwest::AuthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut api = mockito::Server::new_async().await;
    api.mock("GET", "/quotes")
        .match_header("x-api-key", "my-api-key")
        .with_body(r#"{"EURUSD":1.08}"#)
        .create_async()
        .await;

    let client = AuthClient::builder().api_key_header("X-API-Key", "my-api-key").api_origin(api.url()).build()?;
    println!("quotes: {}", client.get(format!("{}/quotes", api.url())).send().await?.text().await?);
    Ok(())
}
