//! Provider style: mutual TLS (RFC 8705). The client proves itself with a
//! certificate in the TLS handshake (`tls_client_auth`), and its tokens are
//! bound to that certificate: the API accepts them only over a connection
//! made with it.
//!
//! Runs against the embedded provider's TLS listener (auth-testkit on
//! 127.0.0.1, with a CA of its own that issues the client certificate):
//! `cargo run -p auth-reqwest --example mutual_tls`.

use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new().mtls(true).tls_client("partner-app", "partner-app.example"))?;
    let mtls = provider.mtls_url().unwrap_or_default().to_owned();
    // In a program: the files the provider's PKI issued.
    let dir = tempfile::tempdir()?;
    let issued = provider.issue_client_certificate("partner-app.example");
    let (cert, key, ca) = (dir.path().join("client.crt"), dir.path().join("client.key"), dir.path().join("ca.pem"));
    std::fs::write(&cert, &issued.certificate)?;
    std::fs::write(&key, &issued.private_key)?;
    std::fs::write(&ca, provider.ca_certificate().unwrap_or_default())?;

    let client = AuthClient::builder()
        .client_credentials(format!("{mtls}/oauth/token"), "partner-app")
        .client_certificate_files(&cert, &key)
        .root_certificates(&std::fs::read_to_string(&ca)?)
        .api_origin(&mtls)
        .build()?;
    for _ in 0..3 {
        let response = client.get(format!("{mtls}/api/orders")).send().await?.error_for_status()?;
        println!("{} {}", response.status(), response.text().await?);
    }
    let requests = provider.token_requests();
    assert_eq!(requests.len(), 1, "one token for every call");
    assert_eq!(requests[0].client_auth, "tls-client-auth");
    assert_eq!(provider.stats().certificate_binding_refused, 0);
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
