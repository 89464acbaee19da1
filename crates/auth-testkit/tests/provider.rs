//! The embedded provider answers like a real one (checked with a plain
//! HTTP client, not with this library).

use std::time::{Duration, Instant};

use auth_testkit::{Fault, Provider, ProviderConfig};
use base64::Engine as _;

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(ureq::Agent::config_builder().http_status_as_error(false).build())
}

fn post_form(url: &str, body: &str, basic: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = agent().post(url).header("content-type", "application/x-www-form-urlencoded");
    if let Some(basic) = basic {
        request = request
            .header("authorization", &format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(basic)));
    }
    let mut response = request.send(body).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

fn provider() -> Provider {
    Provider::start(ProviderConfig::new().client("my client", "p@ss word").public_client("public-app").api_key(
        "X-API-Key",
        Some("api_key"),
        "k1",
    ))
    .unwrap()
}

#[test]
fn every_client_authentication_method_is_accepted_and_recorded() {
    let provider = provider();
    let url = provider.token_url();
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my%20client:p%40ss%20word")).0, 200);
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word")).0, 200);
    assert_eq!(
        post_form(&url, "grant_type=client_credentials&client_id=my+client&client_secret=p%40ss+word", None).0,
        200
    );
    assert_eq!(post_form(&url, "grant_type=client_credentials&client_id=public-app&scope=read", None).0, 200);
    let mut response = agent()
        .post(&url)
        .header("content-type", "application/json")
        .send(r#"{"grant_type":"client_credentials","client_id":"my client","client_secret":"p@ss word","audience":"aud","resource":["r1","r2"]}"#)
        .unwrap();
    assert_eq!(response.status(), 200);
    let _ = response.body_mut().read_to_string();
    let methods: Vec<_> = provider.token_requests().iter().map(|r| r.client_auth.clone()).collect();
    assert_eq!(methods, ["basic", "basic-raw", "post", "none", "json"]);
    let last = provider.token_requests().pop().unwrap();
    assert_eq!(last.audience.as_deref(), Some("aud"));
    assert_eq!(last.resources, ["r1", "r2"]);
    let (status, body) = post_form(&url, "grant_type=client_credentials", Some("my client:wrong"));
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[test]
fn refresh_tokens_revocation_and_the_protected_api() {
    let provider = provider();
    let (_, issued) = post_form(
        &provider.token_url(),
        "grant_type=client_credentials&scope=offline_access",
        Some("my client:p@ss word"),
    );
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(issued["expires_in"], 3600);
    let call = |token: &str, key: &str| {
        agent()
            .get(provider.api_url("items"))
            .header("authorization", &format!("Bearer {token}"))
            .header("x-api-key", key)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(call(&access, "k1"), 200);
    assert_eq!(call(&access, "wrong"), 403);
    assert_eq!(call("nonsense", "k1"), 401);
    let query_key = agent()
        .get(format!("{}?api_key=k1", provider.api_url("items")))
        .header("authorization", &format!("Bearer {access}"))
        .call()
        .unwrap();
    assert_eq!(query_key.status(), 200);
    let (status, renewed) = post_form(
        &provider.token_url(),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        Some("my client:p@ss word"),
    );
    assert_eq!(status, 200);
    assert!(renewed.get("refresh_token").is_none(), "refresh tokens are not rotated");
    assert_eq!(
        post_form(
            &provider.revocation_url(),
            &format!("token={access}&token_type_hint=access_token"),
            Some("my client:p@ss word")
        )
        .0,
        200
    );
    assert_eq!(call(&access, "k1"), 401, "a revoked token is refused");
    provider.revoke_all();
    assert_eq!(call(renewed["access_token"].as_str().unwrap(), "k1"), 401);
    let (status, body) = post_form(
        &provider.token_url(),
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        Some("my client:p@ss word"),
    );
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[test]
fn tokens_expire() {
    let provider =
        Provider::start(ProviderConfig::new().client("c", "s").token_lifetime(Duration::from_secs(1))).unwrap();
    let (_, issued) = post_form(&provider.token_url(), "grant_type=client_credentials", Some("c:s"));
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let call = || {
        agent()
            .get(provider.api_url("x"))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(call(), 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(call(), 401);
}

#[test]
fn fault_switches() {
    let provider = provider();
    let url = provider.token_url();
    provider.fail_next_token_requests(2, Fault::ServerError);
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word")).0, 500);
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word")).0, 500);
    assert_eq!(post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word")).0, 200);
    provider.fail_next_token_requests(1, Fault::TooManyRequests { retry_after: 7 });
    let response = agent().post(&url).send("grant_type=client_credentials").unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    provider.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    post_form(&url, "grant_type=client_credentials", Some("my client:p@ss word"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(provider.stats().token_requests, 5);
}

#[test]
fn an_api_key_only_api() {
    let provider =
        Provider::start(ProviderConfig::new().api_key("X-API-Key", None, "k").api_requires_token(false)).unwrap();
    let status =
        |key: &str| agent().get(provider.api_url("x")).header("x-api-key", key).call().unwrap().status().as_u16();
    assert_eq!(status("k"), 200);
    assert_eq!(status("wrong"), 403);
}
