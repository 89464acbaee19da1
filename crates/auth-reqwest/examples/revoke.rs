//! Revocation of a token (RFC 7009): both the access and the refresh
//! token are revoked and forgotten; the next call gets a new token.
//!
//! Local stand-in (mockito on 127.0.0.1): `cargo run -p auth-reqwest --example revoke`.

use auth_reqwest::AuthClient;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut provider = mockito::Server::new_async().await;
    provider
        .mock("POST", "/token")
        .with_body(r#"{"access_token":"access","refresh_token":"refresh","expires_in":3600}"#)
        .create_async()
        .await;
    let revocations = provider.mock("POST", "/revoke").expect(2).create_async().await;

    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "client-id")
        .client_secret("client-secret")
        .revocation_url(format!("{}/revoke", provider.url()))
        .build()?;
    let source = client.token_source().ok_or("no token source")?;
    source.token().await?;
    let revoked = client.revoke().await?;
    println!("revoked access token: {}, refresh token: {}", revoked.access_token, revoked.refresh_token);
    revocations.assert_async().await;
    println!("cached token after revocation: {}", source.cached().is_some());
    Ok(())
}
