//! One test per provider style the library serves, end to end through the
//! sans-IO core: the token request as the provider documents it, the
//! provider's answer, and the credentials on the API call. The transport
//! adapters' own end-to-end tests (real HTTP on 127.0.0.1) sit beside
//! their crates.

use std::sync::Arc;
use std::time::Duration;

use auth_core::secret::ExposeSecret;
use auth_core::wire::request::{revocation_request, Revocable};
use auth_core::{AccessToken, ClientAuth, Credentials, GrantKind, Lifecycle, Output, SourceConfig, Want};
use auth_tests::{json_response, SimClock};
use base64::Engine as _;

fn form(request: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
    form_pairs(request.body())
}

fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Starts the machine, returns the first fetch after a caller asks.
fn first_fetch(lc: &mut Lifecycle, clock: &SimClock) -> auth_core::FetchRequest {
    assert!(matches!(lc.handle_token_wanted(clock.now()), Want::Wait));
    match lc.poll_output() {
        Some(Output::Fetch(fetch)) => fetch,
        other => panic!("expected a fetch, got {other:?}"),
    }
}

fn token_ready(lc: &mut Lifecycle) -> Arc<AccessToken> {
    match lc.poll_output() {
        Some(Output::TokenReady(token)) => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

#[test]
fn subscription_key_header_plus_client_credentials_bearer_with_secret_in_form_body() {
    let config = SourceConfig::builder("https://api.provider.example/token", "client-id")
        .client_secret("client-secret")
        .client_auth(ClientAuth::Post)
        .build()
        .unwrap();
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("cdpapi-Subscription-Key", "subscription-key")
        .api_origin("https://api.provider.example")
        .build()
        .unwrap();
    let mut lc = Lifecycle::new(config, 1);
    let mut clock = SimClock::new();
    let fetch = first_fetch(&mut lc, &clock);
    assert_eq!(fetch.request.headers()["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(fetch.request.headers()["accept"], "application/json");
    assert!(fetch.request.headers().get("authorization").is_none());
    assert_eq!(
        form(&fetch.request),
        pairs(&[("grant_type", "client_credentials"), ("client_id", "client-id"), ("client_secret", "client-secret")])
    );
    clock.advance_secs(1);
    lc.handle_fetch_response(
        clock.now(),
        std::time::SystemTime::now(),
        fetch.id,
        &json_response(200, r#"{"access_token":"at-1","token_type":"Bearer","expires_in":3600}"#),
    );
    let token = token_ready(&mut lc);
    let mut call = http::Request::get("https://api.provider.example/v1/orders").body(()).unwrap();
    credentials.apply(&mut call, Some(&token)).unwrap();
    assert_eq!(call.headers()["authorization"], "Bearer at-1");
    assert_eq!(call.headers()["cdpapi-subscription-key"], "subscription-key");
    // Calls for the rest of the lifetime reuse the token.
    for _ in 0..3000 {
        clock.advance_secs(1);
        assert!(matches!(lc.handle_token_wanted(clock.now()), Want::Ready(_)));
    }
    assert_eq!(lc.stats().fetches, 1);
}

#[test]
fn basic_client_auth_with_offline_access_and_refresh_token() {
    let config = SourceConfig::builder("https://login.provider.example/oauth2/token", "my client")
        .client_secret("s3cr3t/+=")
        .client_auth(ClientAuth::Basic)
        .scope("offline_access")
        .build()
        .unwrap();
    let mut lc = Lifecycle::new(config, 2);
    let mut clock = SimClock::new();
    let fetch = first_fetch(&mut lc, &clock);
    let basic = fetch.request.headers()["authorization"].to_str().unwrap().strip_prefix("Basic ").unwrap().to_owned();
    let decoded = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(basic).unwrap()).unwrap();
    assert_eq!(decoded, "my%20client:s3cr3t%2F%2B%3D", "RFC 6749 §2.3.1 encoding");
    assert_eq!(form(&fetch.request), pairs(&[("grant_type", "client_credentials"), ("scope", "offline_access")]));
    lc.handle_fetch_response(
        clock.now(), std::time::SystemTime::now(),
        fetch.id,
        &json_response(
            200,
            r#"{"access_token":"at-1","token_type":"bearer","expires_in":900,"refresh_token":"rt-1","scope":"offline_access"}"#,
        ),
    );
    let first = token_ready(&mut lc);
    assert_eq!(first.scope(), Some("offline_access"));
    // At the renewal point the refresh token is used, with Basic again.
    clock.advance_to(lc.poll_timeout().unwrap());
    lc.handle_timeout(clock.now());
    let Some(Output::Fetch(renewal)) = lc.poll_output() else { panic!("no renewal") };
    assert_eq!(renewal.grant, GrantKind::RefreshToken);
    assert_eq!(form(&renewal.request), pairs(&[("grant_type", "refresh_token"), ("refresh_token", "rt-1")]));
    assert!(renewal.request.headers()["authorization"].to_str().unwrap().starts_with("Basic "));
    lc.handle_fetch_response(
        clock.now(),
        std::time::SystemTime::now(),
        renewal.id,
        &json_response(200, r#"{"access_token":"at-2","expires_in":900,"refresh_token":"rt-2"}"#),
    );
    let second = token_ready(&mut lc);
    assert_eq!(second.value().expose_secret(), "at-2");
    assert_eq!(lc.refresh_token().unwrap().expose_secret(), "rt-2", "rotated refresh token kept");
}

#[test]
fn json_token_request_with_audience_and_a_one_day_token() {
    let config = SourceConfig::builder("https://tenant.provider.example/oauth/token", "abc")
        .client_secret("xyz")
        .client_auth(ClientAuth::Json)
        .audience("https://api.provider.example/")
        .build()
        .unwrap();
    let mut lc = Lifecycle::new(config, 3);
    let mut clock = SimClock::new();
    let fetch = first_fetch(&mut lc, &clock);
    assert_eq!(fetch.request.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(fetch.request.body()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": "abc",
            "client_secret": "xyz",
            "audience": "https://api.provider.example/",
        })
    );
    lc.handle_fetch_response(
        clock.now(),
        std::time::SystemTime::now(),
        fetch.id,
        &json_response(200, r#"{"access_token":"eyJz.eyJh.sig","token_type":"Bearer","expires_in":86400}"#),
    );
    let token = token_ready(&mut lc);
    // A day-long token is renewed a minute or so before it stops being used, not hours early.
    let renew_after = token.renew_at() - token.issued_at();
    assert!(
        renew_after > Duration::from_secs(86_400 - 120) && renew_after < Duration::from_secs(86_400),
        "{renew_after:?}"
    );
    clock.advance_secs(86_000);
    assert!(matches!(lc.handle_token_wanted(clock.now()), Want::Ready(_)));
    assert_eq!(lc.stats().fetches, 1);
}

#[test]
fn plain_x_api_key_api() {
    let credentials = Credentials::builder()
        .api_key_header("X-API-Key", "k-123")
        .api_origin("https://data.provider.example")
        .build()
        .unwrap();
    assert!(!credentials.needs_token());
    let mut call = http::Request::get("https://data.provider.example/v2/items?page=2").body(()).unwrap();
    credentials.apply(&mut call, None).unwrap();
    assert_eq!(call.headers()["x-api-key"], "k-123");
    assert!(call.headers()["x-api-key"].is_sensitive());
    assert!(call.headers().get("authorization").is_none());
}

#[test]
fn api_key_in_a_query_parameter() {
    let credentials = Credentials::builder()
        .api_key_query("api_key", "k 1")
        .api_origin("https://data.provider.example")
        .build()
        .unwrap();
    let mut call = http::Request::get("https://data.provider.example/v2/items?page=2").body(()).unwrap();
    credentials.apply(&mut call, None).unwrap();
    assert_eq!(call.uri(), "https://data.provider.example/v2/items?page=2&api_key=k%201");
}

#[test]
fn legacy_basic_credentials_and_a_jwt_the_user_holds() {
    let basic = Credentials::builder()
        .basic("token-id", "token-secret")
        .api_origin("https://legacy.provider.example")
        .build()
        .unwrap();
    let mut call = http::Request::get("https://legacy.provider.example/api").body(()).unwrap();
    basic.apply(&mut call, None).unwrap();
    assert_eq!(call.headers()["authorization"], "Basic dG9rZW4taWQ6dG9rZW4tc2VjcmV0");
    let jwt = Credentials::builder()
        .static_bearer("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln")
        .api_origin("https://jwt.provider.example")
        .build()
        .unwrap();
    let mut call = http::Request::get("https://jwt.provider.example/api").body(()).unwrap();
    jwt.apply(&mut call, None).unwrap();
    assert_eq!(call.headers()["authorization"], "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln");
}

#[test]
fn revocation_of_a_token() {
    let config = SourceConfig::builder("https://login.provider.example/oauth2/token", "id")
        .client_secret("secret")
        .revocation_url("https://login.provider.example/oauth2/revoke")
        .build()
        .unwrap();
    let mut lc = Lifecycle::new(config.clone(), 4);
    let clock = SimClock::new();
    let fetch = first_fetch(&mut lc, &clock);
    lc.handle_fetch_response(
        clock.now(),
        std::time::SystemTime::now(),
        fetch.id,
        &json_response(200, r#"{"access_token":"at-9","refresh_token":"rt-9"}"#),
    );
    let token = token_ready(&mut lc);
    let request = revocation_request(&config, Revocable::RefreshToken(lc.refresh_token().unwrap())).unwrap().request;
    assert_eq!(request.uri(), "https://login.provider.example/oauth2/revoke");
    assert_eq!(form(&request), pairs(&[("token", "rt-9"), ("token_type_hint", "refresh_token")]));
    let request = revocation_request(&config, Revocable::AccessToken(token.value())).unwrap().request;
    assert_eq!(form(&request), pairs(&[("token", "at-9"), ("token_type_hint", "access_token")]));
    lc.handle_discard(clock.now());
    assert!(lc.current_token(clock.now()).is_none());
    assert!(lc.refresh_token().is_none());
}

#[test]
fn sandbox_and_production_never_share_tokens() {
    let sandbox =
        SourceConfig::builder("https://sandbox.provider.example/token", "id").client_secret("s").build().unwrap();
    let production = SourceConfig::builder("https://provider.example/token", "id").client_secret("s").build().unwrap();
    assert_ne!(sandbox.cache_key(), production.cache_key());
    assert_ne!(sandbox.cache_key().fingerprint(), production.cache_key().fingerprint());
    // Each environment's credentials stay on its own origin.
    let sandbox_api =
        Credentials::builder().bearer_from_source().api_origin("https://sandbox.api.provider.example").build().unwrap();
    assert!(!sandbox_api.applies_to(&"https://api.provider.example/v1".parse().unwrap()));
    assert!(sandbox_api.applies_to(&"https://sandbox.api.provider.example/v1".parse().unwrap()));
}

#[test]
fn rfc6749_error_from_the_provider_reaches_the_caller_with_its_description() {
    let config =
        SourceConfig::builder("https://login.provider.example/token", "id").client_secret("wrong").build().unwrap();
    let mut lc = Lifecycle::new(config, 5);
    let clock = SimClock::new();
    let fetch = first_fetch(&mut lc, &clock);
    lc.handle_fetch_response(
        clock.now(),
        std::time::SystemTime::now(),
        fetch.id,
        &json_response(401, r#"{"error":"invalid_client","error_description":"Client authentication failed."}"#),
    );
    let Some(Output::Failed(error)) = lc.poll_output() else { panic!("no failure") };
    let text = error.to_string();
    assert!(text.contains("invalid_client") && text.contains("Client authentication failed."), "{text}");
    assert!(!text.contains("wrong"), "the secret never appears: {text}");
    assert!(!error.is_transient());
}
