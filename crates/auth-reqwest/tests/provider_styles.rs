//! Every provider style end to end through `AuthClient`, against mockito
//! servers on 127.0.0.1: the token request as the provider documents it
//! (headers and body asserted), the API calls, renewal and revocation.

use std::time::Duration;

use auth_core::ClientAuth;
use auth_reqwest::AuthClient;
use mockito::{Matcher, Server};
use serde_json::json;

fn token_json(value: &str, expires_in: u64) -> String {
    format!(r#"{{"access_token":"{value}","token_type":"Bearer","expires_in":{expires_in}}}"#)
}

#[tokio::test]
async fn subscription_key_header_plus_bearer_with_the_secret_in_the_form_body() {
    let mut provider = Server::new_async().await;
    let token = provider
        .mock("POST", "/token")
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_header("accept", "application/json")
        .match_header("authorization", Matcher::Missing)
        .match_body("grant_type=client_credentials&client_id=cdp-client&client_secret=s%3Dcr%2Bt")
        .with_header("content-type", "application/json")
        .with_body(token_json("cdp-token", 3600))
        .expect(1)
        .create_async()
        .await;
    let mut api = Server::new_async().await;
    let calls = api
        .mock("GET", "/vehicles")
        .match_header("authorization", "Bearer cdp-token")
        .match_header("cdpapi-subscription-key", "sub-key")
        .with_body("[]")
        .expect(50)
        .create_async()
        .await;
    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "cdp-client")
        .client_secret("s=cr+t")
        .client_auth(ClientAuth::Post)
        .api_key_header("cdpapi-Subscription-Key", "sub-key")
        .api_origin(api.url())
        .build()
        .unwrap();
    for _ in 0..50 {
        let response = client.get(format!("{}/vehicles", api.url())).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    token.assert_async().await;
    calls.assert_async().await;
    assert_eq!(client.token_source().unwrap().stats().fetches, 1, "one token per lifetime");
}

#[tokio::test]
async fn basic_client_auth_with_offline_access_renews_with_the_refresh_token_and_falls_back() {
    let mut provider = Server::new_async().await;
    // Basic per RFC 6749 §2.3.1: "my client" / "p@ss:word" are form-encoded before base64.
    let basic = "Basic bXklMjBjbGllbnQ6cCU0MHNzJTNBd29yZA==";
    let first = provider
        .mock("POST", "/token")
        .match_header("authorization", basic)
        .match_body("grant_type=client_credentials&scope=offline_access")
        .with_body(r#"{"access_token":"a1","token_type":"bearer","expires_in":2,"refresh_token":"r1","scope":"offline_access"}"#)
        .expect(1)
        .create_async()
        .await;
    let refreshed = provider
        .mock("POST", "/token")
        .match_header("authorization", basic)
        .match_body("grant_type=refresh_token&refresh_token=r1")
        .with_body(r#"{"access_token":"a2","token_type":"bearer","expires_in":2}"#)
        .expect(1)
        .create_async()
        .await;
    let mut api = Server::new_async().await;
    api.mock("GET", "/me")
        .match_header("authorization", Matcher::Regex("^Bearer a[123]$".into()))
        .with_body("ok")
        .create_async()
        .await;
    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "my client")
        .client_secret("p@ss:word")
        .scope("offline_access")
        .api_origin(api.url())
        .build()
        .unwrap();
    let source = client.token_source().unwrap().clone();
    assert_eq!(client.get(format!("{}/me", api.url())).send().await.unwrap().status(), 200);
    first.assert_async().await;
    // The 2 s token renews in the background (with the refresh token, which the answer did not rotate).
    tokio::time::sleep(Duration::from_millis(1900)).await;
    refreshed.assert_async().await;
    assert_eq!(source.cached().unwrap().header_value(), "Bearer a2");
    // Next renewal: the refresh token is refused; client credentials are used at once.
    let refused = provider
        .mock("POST", "/token")
        .match_body("grant_type=refresh_token&refresh_token=r1")
        .with_status(400)
        .with_body(r#"{"error":"invalid_grant","error_description":"refresh token expired"}"#)
        .expect(1)
        .create_async()
        .await;
    let fallback = provider
        .mock("POST", "/token")
        .match_body("grant_type=client_credentials&scope=offline_access")
        .with_body(token_json("a3", 3600))
        .expect(1)
        .create_async()
        .await;
    tokio::time::sleep(Duration::from_millis(1900)).await;
    refused.assert_async().await;
    fallback.assert_async().await;
    assert_eq!(source.cached().unwrap().header_value(), "Bearer a3");
    assert_eq!(client.get(format!("{}/me", api.url())).send().await.unwrap().status(), 200);
    assert_eq!(source.stats().failures, 0, "a refresh fallback is not a failure");
}

#[tokio::test]
async fn json_token_request_with_audience_and_a_one_day_token() {
    let mut provider = Server::new_async().await;
    let token = provider
        .mock("POST", "/oauth/token")
        .match_header("content-type", "application/json")
        .match_body(Matcher::Json(json!({
            "grant_type": "client_credentials",
            "client_id": "abc",
            "client_secret": "xyz",
            "audience": "https://api.example.com/",
        })))
        .with_body(token_json("day-token", 86_400))
        .expect(1)
        .create_async()
        .await;
    let mut api = Server::new_async().await;
    let calls =
        api.mock("GET", "/things").match_header("authorization", "Bearer day-token").expect(20).create_async().await;
    let client = AuthClient::builder()
        .client_credentials(format!("{}/oauth/token", provider.url()), "abc")
        .client_secret("xyz")
        .client_auth(ClientAuth::Json)
        .audience("https://api.example.com/")
        .api_origin(api.url())
        .build()
        .unwrap();
    for _ in 0..20 {
        client.get(format!("{}/things", api.url())).send().await.unwrap();
    }
    token.assert_async().await;
    calls.assert_async().await;
    let issued = client.token_source().unwrap().cached().unwrap();
    assert_eq!(issued.lifetime(), Duration::from_secs(86_400));
    assert!(issued.renew_at() - issued.issued_at() > Duration::from_secs(86_400 - 120));
}

#[tokio::test]
async fn plain_x_api_key_api() {
    let mut api = Server::new_async().await;
    let calls = api
        .mock("GET", "/data")
        .match_header("x-api-key", "k-1")
        .match_header("authorization", Matcher::Missing)
        .with_body("ok")
        .expect(3)
        .create_async()
        .await;
    let client = AuthClient::builder().api_key_header("X-API-Key", "k-1").api_origin(api.url()).build().unwrap();
    for _ in 0..3 {
        assert_eq!(client.get(format!("{}/data", api.url())).send().await.unwrap().status(), 200);
    }
    calls.assert_async().await;
    assert!(client.token_source().is_none());
}

#[tokio::test]
async fn api_key_in_the_query() {
    let mut api = Server::new_async().await;
    let calls = api
        .mock("GET", "/search")
        .match_query(Matcher::AllOf(vec![
            Matcher::UrlEncoded("q".into(), "a b".into()),
            Matcher::UrlEncoded("api_key".into(), "k 1".into()),
        ]))
        .expect(1)
        .create_async()
        .await;
    let client = AuthClient::builder().api_key_query("api_key", "k 1").api_origin(api.url()).build().unwrap();
    client.get(format!("{}/search?q=a%20b", api.url())).send().await.unwrap();
    calls.assert_async().await;
}

#[tokio::test]
async fn legacy_basic_credentials() {
    let mut api = Server::new_async().await;
    let calls = api
        .mock("GET", "/legacy")
        .match_header("authorization", "Basic dG9rZW4taWQ6dG9rZW4tc2VjcmV0")
        .expect(1)
        .create_async()
        .await;
    let client = AuthClient::builder().basic("token-id", "token-secret").api_origin(api.url()).build().unwrap();
    client.get(format!("{}/legacy", api.url())).send().await.unwrap();
    calls.assert_async().await;
}

#[tokio::test]
async fn revocation_of_a_token() {
    let mut provider = Server::new_async().await;
    provider
        .mock("POST", "/token")
        .with_body(r#"{"access_token":"at","refresh_token":"rt","expires_in":3600}"#)
        .create_async()
        .await;
    let revoke = provider
        .mock("POST", "/revoke")
        .match_header("authorization", "Basic aWQ6c2VjcmV0")
        .match_body(Matcher::Regex("^token=(rt&token_type_hint=refresh_token|at&token_type_hint=access_token)$".into()))
        .expect(2)
        .create_async()
        .await;
    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "id")
        .client_secret("secret")
        .revocation_url(format!("{}/revoke", provider.url()))
        .api_origin("https://api.example.com")
        .build()
        .unwrap();
    client.token_source().unwrap().token().await.unwrap();
    let revoked = client.revoke().await.unwrap();
    assert!(revoked.access_token && revoked.refresh_token);
    revoke.assert_async().await;
}

#[tokio::test]
async fn sandbox_and_production_never_share_tokens() {
    let mut sandbox_provider = Server::new_async().await;
    let mut production_provider = Server::new_async().await;
    let sandbox_token = sandbox_provider
        .mock("POST", "/token")
        .with_body(token_json("sandbox-token", 3600))
        .expect(1)
        .create_async()
        .await;
    let production_token = production_provider
        .mock("POST", "/token")
        .with_body(token_json("production-token", 3600))
        .expect(1)
        .create_async()
        .await;
    let mut sandbox_api = Server::new_async().await;
    let mut production_api = Server::new_async().await;
    let sandbox_calls = sandbox_api
        .mock("GET", "/x")
        .match_header("authorization", "Bearer sandbox-token")
        .expect(2)
        .create_async()
        .await;
    let production_calls = production_api
        .mock("GET", "/x")
        .match_header("authorization", "Bearer production-token")
        .expect(2)
        .create_async()
        .await;
    let client = |provider: &Server, api: &Server| {
        AuthClient::builder()
            .client_credentials(format!("{}/token", provider.url()), "same-client")
            .client_secret("same-secret")
            .api_origin(api.url())
            .build()
            .unwrap()
    };
    let sandbox = client(&sandbox_provider, &sandbox_api);
    let production = client(&production_provider, &production_api);
    assert_ne!(
        sandbox.token_source().unwrap().config().cache_key(),
        production.token_source().unwrap().config().cache_key()
    );
    for _ in 0..2 {
        sandbox.get(format!("{}/x", sandbox_api.url())).send().await.unwrap();
        production.get(format!("{}/x", production_api.url())).send().await.unwrap();
    }
    sandbox_token.assert_async().await;
    production_token.assert_async().await;
    sandbox_calls.assert_async().await;
    production_calls.assert_async().await;
}

#[tokio::test]
async fn misordered_builder_calls_are_a_clear_error() {
    let error = AuthClient::builder().scope("read").build().unwrap_err();
    assert!(
        error.to_string().contains("client_credentials(token_url, client_id) or user_sign_in(..) first"),
        "{error}"
    );
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_api_key_in_the_query_never_shows_in_what_the_client_returns() {
    const KEY: &str = "query-key-5f3a9c";
    let assert_hidden = |shown: String| {
        assert!(!shown.contains(KEY) && !shown.contains("5f3a9c"), "the key leaked: {shown}");
    };
    // Connection refused.
    let origin = format!("http://127.0.0.1:{}", closed_port());
    let client = AuthClient::builder().api_key_query("api_key", KEY).api_origin(&origin).build().unwrap();
    let error = client.get(format!("{origin}/v1/items?page=2")).send().await.unwrap_err();
    assert_hidden(format!("{error} {error:?}"));
    assert!(
        format!("{error:?}").contains("api_key=[redacted]") || format!("{error:?}").contains("api_key=%5Bredacted%5D")
    );

    // A timeout: the server accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", silent.local_addr().unwrap());
    let client = AuthClient::builder()
        .api_key_query("api_key", KEY)
        .api_origin(&origin)
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client.get(format!("{origin}/slow")).send().await.unwrap_err();
    assert_hidden(format!("{error} {error:?}"));

    // An error status, and the response's own URL.
    let mut api = Server::new_async().await;
    api.mock("GET", "/fails").match_query(Matcher::Any).with_status(500).create_async().await;
    let client = AuthClient::builder().api_key_query("api_key", KEY).api_origin(api.url()).build().unwrap();
    let response = client.get(format!("{}/fails?x=1", api.url())).send().await.unwrap();
    assert_hidden(response.url().to_string());
    assert!(response.url().query().unwrap().starts_with("x=1&api_key="), "{}", response.url());
    let error = response.error_for_status().unwrap_err();
    assert_hidden(format!("{error} {error:?}"));
    drop(silent);
}

#[tokio::test]
async fn secrets_from_the_environment_are_sent_and_a_missing_variable_is_a_build_error_that_names_it() {
    // `cargo test` sets CARGO_MANIFEST_DIR in the test's environment: a
    // variable that holds a value this test can also read, without setting
    // variables while other tests run.
    let secret = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let mut provider = Server::new_async().await;
    let token = provider
        .mock("POST", "/token")
        .match_body(Matcher::UrlEncoded("client_secret".into(), secret.clone()))
        .with_header("content-type", "application/json")
        .with_body(token_json("env-token", 3600))
        .create_async()
        .await;
    let api =
        provider.mock("GET", "/quotes").match_header("x-api-key", secret.as_str()).with_body("ok").create_async().await;
    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "env-client")
        .client_secret_from_env("CARGO_MANIFEST_DIR")
        .client_auth(ClientAuth::Post)
        .api_key_header_from_env("X-API-Key", "CARGO_MANIFEST_DIR")
        .api_origin(provider.url())
        .build()
        .unwrap();
    assert_eq!(client.get(format!("{}/quotes", provider.url())).send().await.unwrap().status(), 200);
    token.assert_async().await;
    api.assert_async().await;

    let unset = "AUTH_REQWEST_TEST_SECRET_THAT_IS_NEVER_SET";
    let error = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "env-client")
        .client_secret_from_env(unset)
        .api_origin(provider.url())
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(unset) && message.contains("client secret") && message.contains("is not set"),
        "{message}"
    );
    let error = AuthClient::builder().api_key_header_from_env("X-API-Key", unset).api_origin(provider.url()).build();
    let message = error.unwrap_err().to_string();
    assert!(message.contains(unset) && message.contains("the API key is not set"), "{message}");
}

#[tokio::test]
async fn private_key_jwt_through_the_reqwest_client() {
    let key = auth_core::keys::SigningKey::generate_es256().unwrap().with_key_id("k-2026");
    let jwk = serde_json::Value::Object(key.public_jwk().unwrap()).to_string();
    let provider = auth_testkit::Provider::start(auth_testkit::ProviderConfig::new().key_client("svc", &jwk)).unwrap();
    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "svc")
        .signing_key(key)
        .api_origin(provider.url())
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(client.get(provider.api_url("orders")).send().await.unwrap().status(), 200);
    }
    let requests = provider.token_requests();
    assert_eq!((requests.len(), requests[0].client_auth.as_str()), (1, "private-key-jwt"));
}

#[tokio::test]
async fn dpop_through_the_reqwest_client_with_nonces_at_both_ends() {
    let provider = auth_testkit::Provider::start(
        auth_testkit::ProviderConfig::new().client("app", "app-secret").dpop_nonces(true).require_dpop(true),
    )
    .unwrap();
    let client = AuthClient::builder()
        .client_credentials(provider.token_url(), "app")
        .client_secret("app-secret")
        .dpop(auth_core::dpop::Dpop::generate().unwrap())
        .api_origin(provider.url())
        .build()
        .unwrap();
    for _ in 0..3 {
        let response = client.post(provider.api_url("orders")).body("x").send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    provider.rotate_dpop_nonce();
    let response = client.get(provider.api_url("orders")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the nonce demand is met with one retry");
    let stats = provider.stats();
    assert_eq!((stats.token_requests, stats.dpop_nonce_challenges, stats.dpop_proofs_refused), (2, 2, 0));
}
