//! The token source's tracing events, at the most verbose level, never
//! carry a secret: not the client secret, not an access or refresh token.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_tower::TokenSource;
use common::{Scripted, ScriptedEndpoint};
use http::{Request, Response};
use tower::{service_fn, Layer, ServiceExt};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn trace_output_holds_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let refresh_body = r#"{"access_token":"access-token-AAA","token_type":"Bearer","expires_in":120,"refresh_token":"refresh-token-BBB"}"#;
    let endpoint = ScriptedEndpoint::new(
        vec![
            Scripted::status(200, refresh_body),
            Scripted::status(503, "<p>refresh for refresh-token-BBB / access-token-AAA failed</p>"),
            Scripted::status(400, r#"{"error":"invalid_grant","error_description":"refresh-token-BBB is revoked"}"#),
            Scripted::status(
                401,
                r#"{"error":"invalid_client","error_description":"bad secret very-secret-client-secret"}"#,
            ),
        ],
        Scripted::token("access-token-CCC", 3600),
    );
    let config = auth_core::SourceConfig::builder("https://auth.example.com/token", "client-id")
        .client_secret("very-secret-client-secret")
        .scope("offline_access")
        .build()
        .unwrap();
    let source = TokenSource::builder(config, endpoint.service()).seed(1).build().unwrap();
    let api = common::any_origin_bearer(&source).layer(service_fn(|request: Request<String>| async move {
        let status = if request.headers()["authorization"] == "Bearer access-token-AAA" { 401 } else { 200 };
        Ok::<_, std::convert::Infallible>(Response::builder().status(status).body(String::new()).unwrap())
    }));
    // First token; the API rejects it; the refresh grant fails with a 503
    // page quoting the tokens; later the refresh token is refused
    // (invalid_grant), the client credentials fallback is refused with a
    // description quoting the secret; after the backoff, success.
    let _ = api.clone().oneshot(Request::new(String::new())).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let _ = api.clone().oneshot(Request::new(String::new())).await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    let last = api.clone().oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(last.status(), 200);
    assert_eq!(endpoint.calls(), 5, "every step of the scenario ran");

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("requesting an access token"), "{text}");
    assert!(text.contains("access token obtained"), "{text}");
    assert!(text.contains("could not obtain a token"), "{text}");
    for secret in ["very-secret-client-secret", "access-token-AAA", "refresh-token-BBB", "access-token-CCC"] {
        assert!(!text.contains(secret), "`{secret}` leaked into the trace output:\n{text}");
    }
}
