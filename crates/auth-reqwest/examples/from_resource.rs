//! An API that tells you where to sign in (RFC 9728): a service knows only
//! the API's URL. Its metadata names the authorization server; the client
//! registers itself there once (RFC 7591, kept in the token store), asks
//! every token for the API (RFC 8707), and, allowed `orders:write`, asks
//! for it too the first time a write is refused for lacking it.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1):
//! `cargo run -p auth-reqwest --example from_resource`.

use auth_core::resource::step_up::StepUp;
use auth_reqwest::{AuthClient, ClientMetadata, MemoryStore, StoreConfig};
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(
        ProviderConfig::new()
            .protected_resource(true)
            .api_scopes("orders:read", "orders:write")
            .dynamic_registration(true),
    )?;
    let store = MemoryStore::new(); // a RedisStore or FileStore: shared by replicas and restarts

    let api = AuthClient::builder()
        .for_resource(provider.resource())
        .scope("orders:read")
        .register(ClientMetadata::service("order-sync"))
        .store(store.clone(), StoreConfig::default())
        .configure(|client| client.step_up_scopes(&["orders:write"]))
        .build()
        .await?;
    let orders = api.get(provider.api_url("orders")).send().await?;
    println!("read: {}", orders.status());

    // The first write is refused for lacking `orders:write`, marked with what it asks for.
    let refused = api.post(provider.api_url("orders")).body("{}").send().await?;
    if let Some(asked) = refused.extensions().get::<StepUp>() {
        println!("write: {} ({asked})", refused.status());
    }
    // The client is allowed that scope: the next token asks for both.
    let written = api.post(provider.api_url("orders")).body("{}").send().await?;
    println!("write again: {}", written.status());

    let stats = provider.stats();
    println!("registrations: {}, metadata fetched: {}", stats.registrations, stats.resource_metadata_requests);
    assert_eq!((orders.status().as_u16(), refused.status().as_u16(), written.status().as_u16()), (200, 403, 200));

    // A restart with the same store: no discovery, no registration, the token kept.
    let again = AuthClient::builder()
        .for_resource(provider.resource())
        .scope("orders:read")
        .register(ClientMetadata::service("order-sync"))
        .store(store, StoreConfig::default())
        .build()
        .await?;
    println!("after a restart: {}", again.get(provider.api_url("orders")).send().await?.status());
    let stats = provider.stats();
    println!("registrations: {}, metadata fetched: {}", stats.registrations, stats.resource_metadata_requests);
    assert_eq!((stats.registrations, stats.resource_metadata_requests), (1, 1));
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
