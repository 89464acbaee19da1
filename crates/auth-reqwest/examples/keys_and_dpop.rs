//! Provider style: no shared secret. The client proves itself with a
//! signed JWT (`private_key_jwt`, RFC 7523) and its tokens are bound to a
//! DPoP key (RFC 9449): every token and API request carries a fresh proof,
//! and a stolen token is useless without the key.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1), which
//! verifies the assertions and proofs and demands DPoP nonces:
//! `cargo run -p auth-reqwest --example keys_and_dpop`.

use auth_core::dpop::Dpop;
use auth_core::keys::SigningKey;
use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // In a program: the key file registered with the provider, e.g.
    // `.private_key_file("/run/secrets/client-key.pem")`.
    let key = SigningKey::generate_es256()?.with_key_id("2026-11");
    let public_jwk = serde_json::Value::Object(key.public_jwk().unwrap_or_default()).to_string();
    let provider = Provider::start(
        ProviderConfig::new().key_client("partner-app", &public_jwk).require_dpop(true).dpop_nonces(true),
    )?;

    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "partner-app")
        .signing_key(key)
        .dpop(Dpop::generate()?)
        .api_origin(provider.url())
        .build()?;
    for _ in 0..3 {
        let response = client.get(provider.api_url("orders")).send().await?.error_for_status()?;
        println!("{} {}", response.status(), response.text().await?);
    }
    let requests = provider.token_requests();
    assert_eq!(requests.last().map(|r| r.client_auth.as_str()), Some("private-key-jwt"));
    // One token (after the provider's first nonce demand), a proof on every call.
    assert_eq!(provider.stats().tokens_issued, 1);
    assert_eq!(provider.stats().dpop_proofs_refused, 0);
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
