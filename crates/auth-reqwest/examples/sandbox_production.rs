//! Sandbox and production: two deployments of one provider, selected by a
//! single setting (`API_ENV=sandbox|production`). Each has its own token
//! endpoint, client, secret and API origin, so their tokens are never
//! interchangeable (distinct token sources and cache keys), and a sandbox
//! token is never sent to the production API.
//!
//! Runs against two embedded providers (auth-testkit on 127.0.0.1) standing
//! for the two deployments:
//! `API_ENV=production cargo run -p auth-reqwest --example sandbox_production`.

use auth_reqwest::{AuthClient, AuthError};
use auth_testkit::{Provider, ProviderConfig};

/// The one setting that selects the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    /// From the value of `API_ENV`: `sandbox` (also when unset) or `production`.
    fn from_setting(value: Option<&str>) -> Result<Self, String> {
        match value {
            None | Some("sandbox") => Ok(Self::Sandbox),
            Some("production") => Ok(Self::Production),
            Some(other) => Err(format!("API_ENV is `{other}`; use sandbox or production")),
        }
    }
}

/// What differs between the deployments. In a program these are constants
/// (`https://sandbox.login.example.com/oauth2/token`, ...) and the secret
/// comes from a variable per deployment:
/// `.client_secret_from_env("SANDBOX_CLIENT_SECRET")`.
struct Deployment {
    token_url: String,
    api_origin: String,
    client_id: &'static str,
    client_secret: &'static str,
}

/// The client for one deployment: the same code for both.
fn api_client(deployment: &Deployment) -> Result<AuthClient, AuthError> {
    AuthClient::builder()
        .client_credentials(&deployment.token_url, deployment.client_id)
        .client_secret(deployment.client_secret)
        .scope("offline_access")
        .api_origin(&deployment.api_origin)
        .build()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let sandbox = Provider::start(ProviderConfig::new().client("app-sandbox", "sandbox-secret"))?;
    let production = Provider::start(ProviderConfig::new().client("app", "production-secret"))?;
    let deployment = |environment| match environment {
        Environment::Sandbox => Deployment {
            token_url: sandbox.token_url(),
            api_origin: sandbox.url().to_owned(),
            client_id: "app-sandbox",
            client_secret: "sandbox-secret",
        },
        Environment::Production => Deployment {
            token_url: production.token_url(),
            api_origin: production.url().to_owned(),
            client_id: "app",
            client_secret: "production-secret",
        },
    };

    let chosen = Environment::from_setting(std::env::var("API_ENV").ok().as_deref())?;
    let client = api_client(&deployment(chosen))?;
    let api = if chosen == Environment::Sandbox { &sandbox } else { &production };
    let response = client.get(api.api_url("orders")).send().await?.error_for_status()?;
    println!("{chosen:?}: {} {}", response.status(), response.text().await?);

    // Both side by side, as a test suite or a migration would have them.
    let sandbox_client = api_client(&deployment(Environment::Sandbox))?;
    let production_client = api_client(&deployment(Environment::Production))?;
    let key = |client: &AuthClient| client.token_source().map(|s| s.config().cache_key().to_owned());
    assert_ne!(key(&sandbox_client), key(&production_client), "distinct cache keys");
    // The sandbox client sends nothing to the production API: 401, no token leaked.
    let crossed = sandbox_client.get(production.api_url("orders")).send().await?;
    println!("sandbox client -> production API: {} (no credentials sent)", crossed.status());
    assert_eq!(crossed.status(), 401);
    production_client.get(production.api_url("orders")).send().await?.error_for_status()?;
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
