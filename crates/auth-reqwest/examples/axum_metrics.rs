//! A service that operators can watch: an axum app whose `/orders` handler
//! calls a partner API through an `AuthClient`, with the token source's
//! OpenTelemetry metrics on the app's meter provider (here exported as
//! OTLP-shaped JSON to stdout; in production, the OTLP exporter of your
//! collector). After a background renewal and a 401 that the client
//! answers with a new token and a replay, the metrics say so:
//! `auth.token.requests` by reason (`no_token`, `renewal`,
//! `unauthorized`), `auth.unauthorized`, `auth.replays`,
//! `auth.replay.outcomes`, the lifetimes and the callers' waits.
//!
//! Needs the `opentelemetry` feature:
//! `cargo run -p auth-reqwest --features opentelemetry --example axum_metrics`.

use std::time::Duration;

use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

#[derive(Clone)]
struct App {
    partner: AuthClient,
    orders_url: String,
}

/// GET /orders: the partner's orders, through the authenticated client.
async fn orders(State(app): State<App>) -> (StatusCode, String) {
    match app.partner.get(&app.orders_url).send().await {
        Ok(answer) => {
            let status = answer.status();
            (status, answer.text().await.unwrap_or_default())
        }
        Err(error) => (StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // The partner: tokens of 2 s, so that the example sees a renewal.
    let provider =
        Provider::start(ProviderConfig::new().client("app", "app-secret").token_lifetime(Duration::from_secs(2)))?;

    // The app's meter provider (the exporter is the app's choice).
    let meters = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(opentelemetry_stdout::MetricExporter::default()).build())
        .build();
    let partner = AuthClient::builder()
        .client_credentials(provider.token_url(), "app")
        .client_secret("app-secret")
        .api_origin(provider.url())
        .meter(&meters.meter("orders-service"))
        .build()?;

    let app = App { partner: partner.clone(), orders_url: provider.api_url("orders") };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = Router::new().route("/orders", get(orders)).with_state(app);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let caller = reqwest::Client::new();
    let get_orders = || async { caller.get(format!("{base}/orders")).send().await.map(|answer| answer.status()) };
    assert_eq!(get_orders().await?, StatusCode::OK);
    // The token is renewed in the background before it expires...
    let source = partner.token_source().expect("a token source");
    while source.stats().tokens < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get_orders().await?, StatusCode::OK);
    // ... and the partner revokes it: a 401, a new token, the call replayed.
    provider.revoke_all();
    assert_eq!(get_orders().await?, StatusCode::OK);
    let stats = source.stats();
    assert_eq!((stats.fetches, stats.replays_after_401), (3, 1), "{stats:?}");

    // What the operators' backend receives (printed by the stdout exporter).
    meters.force_flush()?;
    meters.shutdown()?;
    Ok(())
}

#[test]
fn runs_against_the_embedded_provider() {
    main().expect("the example runs");
}
