//! 401 handling and redirects through the middleware, against mockito.

use auth_reqwest::AuthClient;
use bytes::Bytes;
use mockito::{Matcher, Server};

fn token_json(value: &str) -> String {
    format!(r#"{{"access_token":"{value}","token_type":"Bearer","expires_in":3600}}"#)
}

async fn client_with_token(provider: &mut Server, first: &str, api: &Server) -> AuthClient {
    let issued = provider.mock("POST", "/token").with_body(token_json(first)).expect(1).create_async().await;
    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "id")
        .client_secret("secret")
        .api_origin(api.url())
        .build()
        .unwrap();
    client.token_source().unwrap().token().await.unwrap();
    issued.assert_async().await;
    client
}

#[tokio::test]
async fn a_401_is_answered_with_one_new_token_and_one_replay() {
    let mut provider = Server::new_async().await;
    let mut api = Server::new_async().await;
    let client = client_with_token(&mut provider, "t1", &api).await;
    let renewal = provider.mock("POST", "/token").with_body(token_json("t2")).expect(1).create_async().await;
    let rejected = api
        .mock("POST", "/orders")
        .match_header("authorization", "Bearer t1")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let accepted = api
        .mock("POST", "/orders")
        .match_header("authorization", "Bearer t2")
        .match_body(r#"{"item":1}"#)
        .with_status(201)
        .expect(1)
        .create_async()
        .await;
    let response = client.post(format!("{}/orders", api.url())).body(r#"{"item":1}"#).send().await.unwrap();
    assert_eq!(response.status(), 201);
    rejected.assert_async().await;
    accepted.assert_async().await;
    renewal.assert_async().await;
    let stats = client.token_source().unwrap().stats();
    assert_eq!((stats.fetches, stats.replays_after_401), (2, 1));
}

#[tokio::test]
async fn a_streaming_body_is_not_replayed_but_the_next_call_works() {
    let mut provider = Server::new_async().await;
    let mut api = Server::new_async().await;
    let client = client_with_token(&mut provider, "old", &api).await;
    let renewal = provider.mock("POST", "/token").with_body(token_json("new")).expect(1).create_async().await;
    let rejected = api
        .mock("PUT", "/blob")
        .match_header("authorization", "Bearer old")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let accepted = api.mock("PUT", "/blob").match_header("authorization", "Bearer new").expect(1).create_async().await;
    let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from("chunk"))]);
    let response = client
        .request(reqwest::Method::PUT, format!("{}/blob", api.url()))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "a stream cannot be replayed: the caller gets the 401");
    rejected.assert_async().await;
    let response =
        client.request(reqwest::Method::PUT, format!("{}/blob", api.url())).body("chunk").send().await.unwrap();
    assert_eq!(response.status(), 200);
    accepted.assert_async().await;
    renewal.assert_async().await;
}

#[tokio::test]
async fn an_api_that_rejects_every_token_does_not_cause_a_fetch_loop() {
    let mut provider = Server::new_async().await;
    let mut api = Server::new_async().await;
    let client = client_with_token(&mut provider, "t1", &api).await;
    let renewals = provider.mock("POST", "/token").with_body(token_json("t2")).expect(1).create_async().await;
    let rejecting = api.mock("GET", "/x").with_status(401).expect(4).create_async().await;
    // The first call: t1 rejected, one new token, one replay (rejected too). Then the
    // loop guard keeps t2 for a while: the next calls get their 401 without any fetch.
    for _ in 0..3 {
        let response = client.get(format!("{}/x", api.url())).send().await.unwrap();
        assert_eq!(response.status(), 401);
        // The replay's 401, then the held-back renewals: all marked for the caller.
        let mark = response.extensions().get::<auth_core::RejectedAfterRenewal>();
        assert!(mark.is_some_and(|m| m.to_string().contains("audience")), "{mark:?}");
    }
    renewals.assert_async().await;
    let stats = client.token_source().unwrap().stats();
    assert_eq!(stats.fetches, 2, "{stats:?}");
    rejecting.assert_async().await;
}

#[tokio::test]
async fn redirects_to_another_origin_never_carry_credentials() {
    let mut provider = Server::new_async().await;
    let mut api = Server::new_async().await;
    let mut elsewhere = Server::new_async().await;
    let client = {
        let issued = provider.mock("POST", "/token").with_body(token_json("t")).create_async().await;
        let client = AuthClient::builder()
            .client_credentials(format!("{}/token", provider.url()), "id")
            .client_secret("secret")
            .api_key_header("X-API-Key", "key")
            .api_origin(api.url())
            .build()
            .unwrap();
        let _ = issued;
        client
    };
    let redirect = api
        .mock("GET", "/moved")
        .match_header("x-api-key", "key")
        .with_status(302)
        .with_header("location", &format!("{}/landing", elsewhere.url()))
        .expect(1)
        .create_async()
        .await;
    let never = elsewhere.mock("GET", Matcher::Any).expect(0).create_async().await;
    let response = client.get(format!("{}/moved", api.url())).send().await.unwrap();
    assert_eq!(response.status(), 302, "the cross-origin redirect is handed back, not followed");
    redirect.assert_async().await;
    never.assert_async().await;

    // Within the origin, redirects are followed with the credentials.
    let same = api
        .mock("GET", "/old")
        .with_status(301)
        .with_header("location", &format!("{}/new", api.url()))
        .create_async()
        .await;
    let target = api
        .mock("GET", "/new")
        .match_header("x-api-key", "key")
        .match_header("authorization", "Bearer t")
        .expect(1)
        .create_async()
        .await;
    let response = client.get(format!("{}/old", api.url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    target.assert_async().await;
    let _ = same;
}

#[tokio::test]
async fn a_get_is_replayed_with_its_url_headers_and_a_new_token() {
    let mut provider = Server::new_async().await;
    let mut api = Server::new_async().await;
    let client = client_with_token(&mut provider, "t1", &api).await;
    let renewal = provider.mock("POST", "/token").with_body(token_json("t2")).expect(1).create_async().await;
    let rejected = api
        .mock("GET", "/orders?page=2")
        .match_header("authorization", "Bearer t1")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    let accepted = api
        .mock("GET", "/orders?page=2")
        .match_header("authorization", "Bearer t2")
        .match_header("x-trace", "abc")
        .with_body("[]")
        .expect(1)
        .create_async()
        .await;
    let response = client.get(format!("{}/orders?page=2", api.url())).header("x-trace", "abc").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "[]");
    rejected.assert_async().await;
    accepted.assert_async().await;
    renewal.assert_async().await;
}

#[tokio::test]
async fn a_401_after_a_redirect_is_returned_and_the_next_call_works() {
    let mut provider = Server::new_async().await;
    let mut api = Server::new_async().await;
    let client = client_with_token(&mut provider, "t1", &api).await;
    let renewal = provider.mock("POST", "/token").with_body(token_json("t2")).expect(1).create_async().await;
    let moved = api.mock("GET", "/old").with_status(302).with_header("location", "/new").expect(1).create_async().await;
    let rejected =
        api.mock("GET", "/new").match_header("authorization", "Bearer t1").with_status(401).create_async().await;
    // The redirected request is not replayed (the original is not kept
    // whole): its caller gets the 401, the token is renewed for the next.
    let response = client.get(format!("{}/old", api.url())).send().await.unwrap();
    assert_eq!(response.status(), 401);
    moved.assert_async().await;
    rejected.assert_async().await;
    let accepted = api
        .mock("GET", "/new")
        .match_header("authorization", "Bearer t2")
        .with_body("ok")
        .expect(1)
        .create_async()
        .await;
    assert_eq!(client.get(format!("{}/new", api.url())).send().await.unwrap().status(), 200);
    accepted.assert_async().await;
    renewal.assert_async().await;
}

#[tokio::test]
async fn a_replay_with_a_query_key_carries_it_once() {
    let mut provider = Server::new_async().await;
    let mut api = Server::new_async().await;
    let issued = provider.mock("POST", "/token").with_body(token_json("t1")).expect(1).create_async().await;
    let client = AuthClient::builder()
        .client_credentials(format!("{}/token", provider.url()), "id")
        .client_secret("secret")
        .api_key_query("key", "k-1")
        .api_origin(api.url())
        .build()
        .unwrap();
    client.token_source().unwrap().token().await.unwrap();
    issued.assert_async().await;
    let renewal = provider.mock("POST", "/token").with_body(token_json("t2")).expect(1).create_async().await;
    let query = Matcher::AllOf(vec![
        Matcher::UrlEncoded("page".into(), "2".into()),
        Matcher::UrlEncoded("key".into(), "k-1".into()),
    ]);
    let rejected = api
        .mock("GET", "/orders")
        .match_query(query.clone())
        .match_header("authorization", "Bearer t1")
        .with_status(401)
        .expect(1)
        .create_async()
        .await;
    // The replay's URL comes from the 401 (with the key in it): the key is
    // replaced, not added twice.
    let accepted = api
        .mock("GET", Matcher::Regex(r"^/orders\?page=2&key=k-1$".into()))
        .match_header("authorization", "Bearer t2")
        .with_body("[]")
        .expect(1)
        .create_async()
        .await;
    let response = client.get(format!("{}/orders?page=2", api.url())).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.url().as_str().contains("k-1"), "the key is redacted in what the client returns");
    rejected.assert_async().await;
    accepted.assert_async().await;
    renewal.assert_async().await;
}
