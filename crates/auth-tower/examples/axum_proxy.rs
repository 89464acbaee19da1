//! An axum service that calls an upstream API through `AuthLayer`: its own
//! clients never see the upstream credentials.
//!
//! The upstream provider and API are the embedded provider (auth-testkit
//! on 127.0.0.1); the example starts the axum service on 127.0.0.1, calls
//! it once, and exits: `cargo run -p auth-tower --example axum_proxy`.

use auth_core::{Credentials, SourceConfig};
use auth_testkit::{Provider, ProviderConfig};
use auth_tower::{Auth, AuthLayer, TokenSource};
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceBuilder, ServiceExt};

type Upstream = Auth<Client<HttpConnector, Full<Bytes>>>;

#[derive(Clone)]
struct AppState {
    upstream: Upstream,
    upstream_url: String,
}

/// GET /orders: fetches the orders upstream with the service's credentials.
async fn orders(State(state): State<AppState>) -> Result<String, (http::StatusCode, String)> {
    let request = http::Request::get(format!("{}/orders", state.upstream_url))
        .body(Full::new(Bytes::new()))
        .map_err(|e| (http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let response = state
        .upstream
        .oneshot(request)
        .await
        .map_err(|e| (http::StatusCode::BAD_GATEWAY, format!("upstream call failed: {e}")))?;
    let body = response.into_body().collect().await.map_err(|e| (http::StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let provider = Provider::start(ProviderConfig::new().client("proxy", "proxy-secret").api_key(
        "X-API-Key",
        None,
        "upstream-key",
    ))?;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let transport = ServiceBuilder::new()
        .map_request(|request: http::Request<Vec<u8>>| request.map(|body| Full::new(Bytes::from(body))))
        .service(client.clone());
    let config = SourceConfig::builder(provider.token_url(), "proxy").client_secret("proxy-secret").build()?;
    let source = TokenSource::new(config, transport)?;
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("X-API-Key", "upstream-key")
        .api_origin(provider.url())
        .build()?;
    let state = AppState {
        upstream: AuthLayer::new(source, credentials).layer(client.clone()),
        upstream_url: provider.api_url("v2"),
    };
    let app = Router::new().route("/orders", get(orders)).with_state(state);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    // A client of the proxy: it sends no credentials at all.
    let response = client.get(format!("http://{address}/orders").parse()?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!("proxy answered {status}: {}", String::from_utf8_lossy(&body));
    assert_eq!(status, 200, "the proxy added the credentials");
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
