//! No secret in the fleet: each replica proves itself with the token its
//! platform gives it (a Kubernetes projected service account token in a
//! file the kubelet rotates), as its client assertion, or exchanged (RFC
//! 8693) for an access token, and exchanged again for one API's.
//!
//! Runs against the embedded provider (auth-testkit on 127.0.0.1), which
//! plays the cluster's token issuer too:
//! `cargo run -p auth-reqwest --example workload_identity`.

use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::exchange::{token_types, SuppliedToken, TokenExchange};
use auth_core::keys::SigningKey;
use auth_reqwest::{AuthClient, ReqwestTransport, TokenSource};
use auth_testkit::{Provider, ProviderConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The cluster: it signs the workload's token and the provider trusts it.
    let cluster = SigningKey::generate_es256()?;
    let public = serde_json::Value::Object(cluster.public_jwk().ok_or("no public key")?).to_string();
    let provider = Provider::start(
        ProviderConfig::new()
            .workload_issuer("https://kubernetes.default.svc", &public)
            .federated_client("payments", "system:serviceaccount:payments:worker")
            .public_client("sts-client")
            .token_exchange(true),
    )?;
    let dir = tempfile::tempdir()?;
    let token_file = dir.path().join("token");
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = serde_json::json!({
        "iss": "https://kubernetes.default.svc", "sub": "system:serviceaccount:payments:worker",
        "aud": provider.token_url(), "iat": now, "exp": now + 3600,
    });
    std::fs::write(&token_file, cluster.sign_jwt("JWT", &claims)?)?;

    // 1. The token file as the client assertion: no client secret anywhere.
    let api = AuthClient::builder()
        .client_credentials(provider.token_url(), "payments")
        .client_assertion(SuppliedToken::file(&token_file))
        .api_origin(provider.url())
        .build()?;
    let me: serde_json::Value = api.get(provider.api_url("me")).send().await?.json().await?;
    println!("client assertion: the API sees client {}", me["client_id"]);

    // 2. The token file exchanged for an access token (RFC 8693).
    let exchanged = AuthClient::builder()
        .client_credentials(provider.token_url(), "sts-client")
        .token_exchange(
            TokenExchange::new(SuppliedToken::file(&token_file), token_types::JWT)
                .requested_token_type(token_types::ACCESS_TOKEN),
        )
        .audience("payments-api")
        .api_origin(provider.url())
        .build()?;
    let me: serde_json::Value = exchanged.get(provider.api_url("me")).send().await?.json().await?;
    println!("token exchange: the API sees {}", me["user"]);

    // 3. Chained: the exchanged token exchanged again, for one API.
    let platform = auth_core::SourceConfig::builder(provider.token_url(), "sts-client")
        .token_exchange(TokenExchange::new(SuppliedToken::file(&token_file), token_types::JWT))
        .build()?;
    let platform = TokenSource::new(platform, ReqwestTransport::new()?)?;
    let orders = auth_core::SourceConfig::builder(provider.token_url(), "sts-client")
        .token_exchange(TokenExchange::new(platform.subject_token(), token_types::ACCESS_TOKEN))
        .audience("orders-api")
        .build()?;
    let orders = TokenSource::builder(orders, ReqwestTransport::new()?).after(&platform).build()?;
    orders.token().await?;
    println!("chained exchange: {} exchanges in all", provider.stats().exchanges);
    assert_eq!(provider.stats().exchanges, 3);
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
