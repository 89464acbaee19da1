//! A synchronous program (no async runtime) calling an API that wants an
//! API key header and a client credentials Bearer token, from 4 threads
//! sharing one client (and so one token).
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1, which
//! serves from a thread of its own): `cargo run -p auth-blocking --example blocking_client`.

use auth_blocking::AuthorizedClient;
use auth_testkit::{Provider, ProviderConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = Provider::start(ProviderConfig::new().client("client-id", "client-secret").api_key(
        "X-API-Key",
        None,
        "sync-key",
    ))?;

    let client = AuthorizedClient::builder()
        .client_credentials(provider.token_url(), "client-id")
        .client_secret("client-secret")
        .api_key_header("X-API-Key", "sync-key")
        .api_origin(provider.url())
        .build()?;
    let url = provider.api_url("v1/items");
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            std::thread::spawn(move || {
                let response = client.get(&url).expect("the call");
                println!("thread {i}: {} {}", response.status(), String::from_utf8_lossy(response.body()));
                response.status()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().map_err(|_| "a thread panicked")?, 200);
    }
    println!("token requests: {}", provider.stats().token_requests);
    assert_eq!(provider.stats().token_requests, 1, "one token for every thread");
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
