//! A synchronous program (no async runtime) calling an API that wants an
//! API key header and a client credentials Bearer token, from 4 threads
//! sharing one token source.
//!
//! The provider and the API are local stand-ins (mockito on 127.0.0.1):
//! `cargo run -p auth-blocking --example blocking_client`.

use auth_blocking::{AuthorizedClient, BlockingTokenSource, UreqTransport};
use auth_core::{Credentials, SourceConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut provider = mockito::Server::new();
    provider
        .mock("POST", "/oauth2/token")
        .with_body(r#"{"access_token":"sync-token","token_type":"Bearer","expires_in":3600}"#)
        .expect(1)
        .create();
    let mut api = mockito::Server::new();
    api.mock("GET", "/v1/items")
        .match_header("authorization", "Bearer sync-token")
        .match_header("x-api-key", "sync-key")
        .with_body("[1,2,3]")
        .create();

    let config = SourceConfig::builder(format!("{}/oauth2/token", provider.url()), "client-id")
        .client_secret("client-secret")
        .build()?;
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens())?;
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("X-API-Key", "sync-key")
        .allow_origin(api.url())
        .build()?;
    let client = AuthorizedClient::new(source.clone(), credentials, UreqTransport::for_api());

    let url = format!("{}/v1/items", api.url());
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let client = client.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                let response =
                    client.send(http::Request::get(url).body(Vec::new()).expect("valid request")).expect("call");
                println!("thread {i}: {} {}", response.status(), String::from_utf8_lossy(response.body()));
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a thread panicked")?;
    }
    println!("token requests: {}", source.stats().fetches);
    Ok(())
}
