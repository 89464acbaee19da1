//! A synchronous program (no async runtime) calling an API that wants an
//! API key header and a client credentials Bearer token, from 4 threads
//! sharing one token source.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1, which
//! serves from a thread of its own): `cargo run -p auth-blocking --example blocking_client`.

use auth_blocking::{AuthorizedClient, BlockingTokenSource, UreqTransport};
use auth_core::{Credentials, SourceConfig};
use auth_testkit::{Provider, ProviderConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = Provider::start(ProviderConfig::new().client("client-id", "client-secret").api_key(
        "X-API-Key",
        None,
        "sync-key",
    ))?;

    let config = SourceConfig::builder(provider.token_url(), "client-id").client_secret("client-secret").build()?;
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens())?;
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("X-API-Key", "sync-key")
        .allow_origin(provider.url())
        .build()?;
    let client = AuthorizedClient::new(source.clone(), credentials, UreqTransport::for_api());

    let url = provider.api_url("v1/items");
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
    println!("token requests: {}", provider.stats().token_requests);
    Ok(())
}
