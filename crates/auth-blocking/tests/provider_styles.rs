//! Every provider style end to end with the ureq transport, against mockito
//! servers on 127.0.0.1 (their sync API: no async runtime in this program).

use std::time::Duration;

use auth_blocking::{AuthorizedClient, BlockingTokenSource, UreqTransport};
use auth_core::{ClientAuth, Credentials, SourceConfig};
use mockito::{Matcher, Server};

fn token_json(value: &str, expires_in: u64) -> String {
    format!(r#"{{"access_token":"{value}","token_type":"Bearer","expires_in":{expires_in}}}"#)
}

fn get(url: String) -> http::Request<Vec<u8>> {
    http::Request::get(url).body(Vec::new()).unwrap()
}

#[test]
fn subscription_key_header_plus_bearer_with_the_secret_in_the_form_body() {
    let mut provider = Server::new();
    let token = provider
        .mock("POST", "/token")
        .match_header("content-type", "application/x-www-form-urlencoded")
        .match_header("accept", "application/json")
        .match_header("authorization", Matcher::Missing)
        .match_body("grant_type=client_credentials&client_id=cdp-client&client_secret=s%3Dcr%2Bt")
        .with_body(token_json("cdp-token", 3600))
        .expect(1)
        .create();
    let mut api = Server::new();
    let calls = api
        .mock("GET", "/vehicles")
        .match_header("authorization", "Bearer cdp-token")
        .match_header("cdpapi-subscription-key", "sub-key")
        .with_body("[]")
        .expect(40)
        .create();
    let config = SourceConfig::builder(format!("{}/token", provider.url()), "cdp-client")
        .client_secret("s=cr+t")
        .client_auth(ClientAuth::Post)
        .build()
        .unwrap();
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens()).unwrap();
    let credentials = Credentials::builder()
        .bearer_from_source()
        .api_key_header("cdpapi-Subscription-Key", "sub-key")
        .api_origin(api.url())
        .build()
        .unwrap();
    let client = AuthorizedClient::new(source.clone(), credentials, UreqTransport::for_api());
    for _ in 0..40 {
        assert_eq!(client.send(get(format!("{}/vehicles", api.url()))).unwrap().status(), 200);
    }
    token.assert();
    calls.assert();
    assert_eq!(source.stats().fetches, 1, "one token per lifetime");
}

#[test]
fn basic_client_auth_with_offline_access_renews_with_the_refresh_token_and_falls_back() {
    let mut provider = Server::new();
    let basic = "Basic bXklMjBjbGllbnQ6cCU0MHNzJTNBd29yZA==";
    let first = provider
        .mock("POST", "/token")
        .match_header("authorization", basic)
        .match_body("grant_type=client_credentials&scope=offline_access")
        .with_body(r#"{"access_token":"a1","token_type":"bearer","expires_in":2,"refresh_token":"r1"}"#)
        .expect(1)
        .create();
    let refreshed = provider
        .mock("POST", "/token")
        .match_header("authorization", basic)
        .match_body("grant_type=refresh_token&refresh_token=r1")
        .with_body(r#"{"access_token":"a2","token_type":"bearer","expires_in":2}"#)
        .expect(1)
        .create();
    let config = SourceConfig::builder(format!("{}/token", provider.url()), "my client")
        .client_secret("p@ss:word")
        .scope("offline_access")
        .build()
        .unwrap();
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens()).unwrap();
    assert_eq!(source.token().unwrap().header_value(), "Bearer a1");
    first.assert();
    std::thread::sleep(Duration::from_millis(1900));
    refreshed.assert();
    assert_eq!(source.token().unwrap().header_value(), "Bearer a2");
    let refused = provider
        .mock("POST", "/token")
        .match_body("grant_type=refresh_token&refresh_token=r1")
        .with_status(400)
        .with_body(r#"{"error":"invalid_grant"}"#)
        .expect(1)
        .create();
    let fallback = provider
        .mock("POST", "/token")
        .match_body("grant_type=client_credentials&scope=offline_access")
        .with_body(token_json("a3", 3600))
        .expect(1)
        .create();
    std::thread::sleep(Duration::from_millis(1900));
    refused.assert();
    fallback.assert();
    assert_eq!(source.token().unwrap().header_value(), "Bearer a3");
    assert_eq!(source.stats().failures, 0);
}

#[test]
fn json_token_request_with_audience_and_a_one_day_token() {
    let mut provider = Server::new();
    let token = provider
        .mock("POST", "/oauth/token")
        .match_header("content-type", "application/json")
        .match_body(Matcher::JsonString(
            r#"{"grant_type":"client_credentials","client_id":"abc","client_secret":"xyz","audience":"https://api.example.com/"}"#.into(),
        ))
        .with_body(token_json("day-token", 86_400))
        .expect(1)
        .create();
    let config = SourceConfig::builder(format!("{}/oauth/token", provider.url()), "abc")
        .client_secret("xyz")
        .client_auth(ClientAuth::Json)
        .audience("https://api.example.com/")
        .build()
        .unwrap();
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens()).unwrap();
    for _ in 0..20 {
        assert_eq!(source.token().unwrap().header_value(), "Bearer day-token");
    }
    token.assert();
    let issued = source.token().unwrap();
    assert!(issued.renew_at() - issued.issued_at() > Duration::from_secs(86_400 - 120));
}

#[test]
fn plain_x_api_key_and_legacy_basic() {
    let mut api = Server::new();
    let keyed = api
        .mock("GET", "/data")
        .match_header("x-api-key", "k-1")
        .match_header("authorization", Matcher::Missing)
        .expect(2)
        .create();
    let basic = api
        .mock("GET", "/legacy")
        .match_header("authorization", "Basic dG9rZW4taWQ6dG9rZW4tc2VjcmV0")
        .expect(1)
        .create();
    let key_client = AuthorizedClient::without_source(
        Credentials::builder().api_key_header("X-API-Key", "k-1").api_origin(api.url()).build().unwrap(),
        UreqTransport::for_api(),
    )
    .unwrap();
    for _ in 0..2 {
        key_client.send(get(format!("{}/data", api.url()))).unwrap();
    }
    let basic_client = AuthorizedClient::without_source(
        Credentials::builder().basic("token-id", "token-secret").api_origin(api.url()).build().unwrap(),
        UreqTransport::for_api(),
    )
    .unwrap();
    basic_client.send(get(format!("{}/legacy", api.url()))).unwrap();
    keyed.assert();
    basic.assert();
}

/// A bearer client for `api` whose source already fetched its first token
/// from `provider`.
fn bearer_client_holding_a_token(provider: &Server, api: &Server) -> AuthorizedClient {
    let config = SourceConfig::builder(format!("{}/token", provider.url()), "id").client_secret("s").build().unwrap();
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens()).unwrap();
    let client =
        AuthorizedClient::new(source.clone(), Credentials::bearer(&api.url()).unwrap(), UreqTransport::for_api());
    source.token().unwrap();
    client
}

#[test]
fn a_401_gets_one_new_token_and_one_replay() {
    let mut provider = Server::new();
    let first = provider.mock("POST", "/token").with_body(token_json("t1", 3600)).expect(1).create();
    let mut api = Server::new();
    let rejected =
        api.mock("POST", "/orders").match_header("authorization", "Bearer t1").with_status(401).expect(1).create();
    let accepted = api
        .mock("POST", "/orders")
        .match_header("authorization", "Bearer t2")
        .match_body("order=1")
        .with_status(201)
        .expect(1)
        .create();
    let client = bearer_client_holding_a_token(&provider, &api);
    first.assert();
    let renewal = provider.mock("POST", "/token").with_body(token_json("t2", 3600)).expect(1).create();
    let request = http::Request::post(format!("{}/orders", api.url())).body(b"order=1".to_vec()).unwrap();
    assert_eq!(client.send(request).unwrap().status(), 201);
    rejected.assert();
    accepted.assert();
    renewal.assert();
    // One Stats for every driver: the replay and the invalidation are counted here too.
    let stats = client.token_source().unwrap().stats();
    assert_eq!((stats.replays_after_401, stats.invalidations, stats.fetches), (1, 1, 2), "{stats:?}");
}

#[test]
fn a_401_that_a_new_token_does_not_cure_is_marked_and_causes_no_fetch_loop() {
    let mut provider = Server::new();
    let first = provider.mock("POST", "/token").with_body(token_json("t1", 3600)).expect(1).create();
    let mut api = Server::new();
    let rejecting = api.mock("GET", "/orders").with_status(401).expect(4).create();
    let client = bearer_client_holding_a_token(&provider, &api);
    first.assert();
    let renewal = provider.mock("POST", "/token").with_body(token_json("t2", 3600)).expect(1).create();
    for _ in 0..3 {
        let response = client.send(get(format!("{}/orders", api.url()))).unwrap();
        assert_eq!(response.status(), 401);
        let mark = response.extensions().get::<auth_core::RejectedAfterRenewal>();
        assert!(mark.is_some_and(|m| m.to_string().contains("audience")), "{mark:?}");
    }
    renewal.assert();
    rejecting.assert();
}

#[test]
fn revocation_of_a_token() {
    let mut provider = Server::new();
    provider
        .mock("POST", "/token")
        .with_body(r#"{"access_token":"at","refresh_token":"rt","expires_in":3600}"#)
        .create();
    let revoke = provider
        .mock("POST", "/revoke")
        .match_header("authorization", "Basic aWQ6c2VjcmV0")
        .match_body(Matcher::Regex("^token=(rt&token_type_hint=refresh_token|at&token_type_hint=access_token)$".into()))
        .expect(2)
        .create();
    let config = SourceConfig::builder(format!("{}/token", provider.url()), "id")
        .client_secret("secret")
        .revocation_url(format!("{}/revoke", provider.url()))
        .build()
        .unwrap();
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens()).unwrap();
    source.token().unwrap();
    let revoked = source.revoke().unwrap();
    assert!(revoked.access_token && revoked.refresh_token);
    revoke.assert();
    assert!(source.cached().is_none());
}

#[test]
fn redirects_are_returned_not_followed() {
    let mut api = Server::new();
    let mut elsewhere = Server::new();
    let moved = api
        .mock("GET", "/moved")
        .with_status(302)
        .with_header("location", &format!("{}/x", elsewhere.url()))
        .expect(1)
        .create();
    let never = elsewhere.mock("GET", Matcher::Any).expect(0).create();
    let client = AuthorizedClient::without_source(
        Credentials::builder().api_key_header("X-API-Key", "k").api_origin(api.url()).build().unwrap(),
        UreqTransport::for_api(),
    )
    .unwrap();
    assert_eq!(client.send(get(format!("{}/moved", api.url()))).unwrap().status(), 302);
    moved.assert();
    never.assert();
}

#[test]
fn a_revocation_error_is_worded_as_one_and_never_quotes_the_token() {
    let mut provider = Server::new();
    provider
        .mock("POST", "/token")
        .with_body(r#"{"access_token":"AT-4e1b77c09d","refresh_token":"RT-8f2a9c1d77","expires_in":3600}"#)
        .create();
    provider
        .mock("POST", "/revoke")
        .with_status(400)
        .with_header("content-type", "application/json")
        .with_body(r#"{"error":"invalid_request","error_description":"token RT-8f2a9c1d77 is not known"}"#)
        .create();
    let config = SourceConfig::builder(format!("{}/token", provider.url()), "id")
        .client_secret("secret")
        .revocation_url(format!("{}/revoke", provider.url()))
        .build()
        .unwrap();
    let source = BlockingTokenSource::new(config, UreqTransport::for_tokens()).unwrap();
    source.token().unwrap();
    let error = source.revoke().unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("8f2a9c1d") && !shown.contains("4e1b77c0"), "{shown}");
    assert!(error.to_string().starts_with("could not revoke the token: revocation endpoint refused"), "{error}");
    assert!(!shown.contains("obtain an access token"), "{shown}");
}

#[test]
fn an_oversized_token_answer_is_body_too_large_and_a_raised_cap_is_honoured() {
    let mut provider = Server::new();
    let padding = "p".repeat(100 * 1024);
    let body = format!(r#"{{"access_token":"big","expires_in":3600,"padding":"{padding}"}}"#);
    provider.mock("POST", "/token").with_body(&body).create();
    let url = format!("{}/token", provider.url());
    let small = SourceConfig::builder(&url, "id").client_secret("s").build().unwrap();
    let source = BlockingTokenSource::new(small, UreqTransport::for_tokens()).unwrap();
    match source.token().unwrap_err() {
        auth_blocking::Error::Token(auth_core::TokenError::BodyTooLarge { status: 200, limit }) => {
            assert_eq!(limit, 64 * 1024)
        }
        other => panic!("{other:?}"),
    }
    let raised = SourceConfig::builder(&url, "id").client_secret("s").max_body_bytes(256 * 1024).build().unwrap();
    let source = BlockingTokenSource::new(raised, UreqTransport::for_tokens()).unwrap();
    assert_eq!(auth_core::secret::ExposeSecret::expose_secret(source.token().unwrap().value()), "big");
}
