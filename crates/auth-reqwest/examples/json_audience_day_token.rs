//! Provider style: a JSON token request with `audience`, answered with a
//! token that lives a whole day (86,400 s), from a provider that allows a
//! few tokens per day.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1):
//! `cargo run -p auth-reqwest --example json_audience_day_token`.

use std::time::Duration;

use auth_reqwest::{AuthClient, ClientAuth};
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
        // The provider allows 10 tokens a day: never ask for more.
        .max_fetches_per_day(10)
        .api_origin(provider.url())
        .build()?;
    for _ in 0..20 {
        client.get(provider.api_url("users")).send().await?.error_for_status()?;
    }
    let token = client.token_source().ok_or("no token source")?.token().await?;
    println!("lifetime {:?}, renewed {:?} after issue", token.lifetime(), token.renew_at() - token.issued_at());

    let request = provider.token_requests().pop().ok_or("no token request")?;
    println!("token request: client_auth={} audience={:?}", request.client_auth, request.audience);
    assert_eq!((request.client_auth.as_str(), request.audience.as_deref()), ("json", Some("https://api.example.com/")));
    assert_eq!(provider.stats().token_requests, 1, "one token for the day");
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
