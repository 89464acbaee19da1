//! DPoP (RFC 9449) end to end against the embedded provider, which checks
//! proofs with ring's verifiers and binds tokens to the key: token requests
//! with proofs and the nonce dance, API requests through the layer with a
//! fresh proof each, an API nonce demand retried once with the same token,
//! a body that cannot be replayed never replayed, a server that repeats
//! the nonce it rejected, and a DPoP token without a proof refused.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use auth_core::dpop::Dpop;
use auth_core::{ApplyError, Credentials, SourceConfig, TokenError};
use auth_testkit::{Provider, ProviderConfig};
use auth_tower::{AuthError, AuthLayer, ReplayableBody, TokenSource};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

fn provider(nonces: bool) -> Provider {
    Provider::start(ProviderConfig::new().client("app", "app-secret").dpop_nonces(nonces).require_dpop(true)).unwrap()
}

fn dpop_source(provider: &Provider, dpop: Arc<Dpop>) -> TokenSource {
    let config =
        SourceConfig::builder(provider.token_url(), "app").client_secret("app-secret").dpop(dpop).build().unwrap();
    TokenSource::builder(config, common::transport(common::http_client())).build().unwrap()
}

async fn body_json(response: Response<hyper::body::Incoming>) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn dpop_tokens_with_the_nonce_dance_at_the_token_endpoint_and_the_api() {
    let provider = provider(true);
    let dpop = Dpop::generate().unwrap();
    let source = dpop_source(&provider, Arc::clone(&dpop));
    let token = source.token().await.unwrap();
    assert!(token.header_value().to_str().unwrap().starts_with("DPoP "));
    assert!(token.dpop().is_some());
    // The token endpoint asked for its nonce once; the retry carried it
    // with a new assertion-free proof (the provider refuses a replayed proof).
    let requests = provider.token_requests();
    assert_eq!(requests.iter().map(|r| r.status).collect::<Vec<_>>(), [400, 200]);
    assert_eq!(provider.stats().dpop_nonce_challenges, 1);

    let client: Client<_, ReplayableBody> = Client::builder(TokioExecutor::new()).build_http();
    let credentials = Credentials::bearer(provider.url()).unwrap();
    let api = AuthLayer::new(source.clone(), credentials).layer(client);
    let call = |body: ReplayableBody| {
        let api = api.clone();
        let url = provider.api_url("orders");
        async move { api.oneshot(Request::post(url).body(body).unwrap()).await.unwrap() }
    };
    // The nonce learnt at the token endpoint (same origin) is used at once.
    for _ in 0..3 {
        let response = call(ReplayableBody::full("x")).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(provider.stats().dpop_nonce_challenges, 1);
    assert_eq!(provider.stats().dpop_proofs_refused, 0, "every proof was fresh and right");

    // A new nonce: the API asks for it, the layer retries once with the same token.
    provider.rotate_dpop_nonce();
    let response = call(ReplayableBody::full("y")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(provider.stats().dpop_nonce_challenges, 2);
    assert_eq!(provider.stats().token_requests, 2, "a nonce demand is not a rejected token");

    // With a body that cannot be replayed, the demand goes back to the caller...
    provider.rotate_dpop_nonce();
    let before = provider.stats().api_calls;
    let stream = ReplayableBody::stream(http_body_util::Full::new(Bytes::from_static(b"streamed")));
    let response = call(stream).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("use_dpop_nonce"));
    assert_eq!(provider.stats().api_calls, before + 1, "not replayed");
    // ... and the nonce it carried is used by the next request.
    assert_eq!(call(ReplayableBody::full("z")).await.status(), StatusCode::OK);
    assert_eq!(provider.stats().token_requests, 2);
}

#[tokio::test]
async fn a_dpop_token_without_a_proof_is_refused_as_the_provider_says() {
    let provider = provider(false);
    let source = dpop_source(&provider, Dpop::generate().unwrap());
    let token = source.token().await.unwrap();
    // The library refuses to put it on a request without a proof.
    let mut request = Request::get(provider.api_url("me")).body(()).unwrap();
    let credentials = Credentials::bearer(provider.url()).unwrap();
    assert_eq!(credentials.apply(&mut request, Some(&token)).unwrap_err(), ApplyError::ProofNeeded);
    // Sent by hand without one, or as a Bearer token, the provider refuses it.
    let client = common::http_client();
    let value = auth_core::secret::ExposeSecret::expose_secret(token.value()).to_owned();
    for scheme in ["DPoP", "Bearer"] {
        let request = Request::get(provider.api_url("me"))
            .header("authorization", format!("{scheme} {value}"))
            .body(Default::default())
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{scheme}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("DPoP error="), "{challenge}");
        body_json(response).await;
    }
    // With the layer, the proof goes along and the API knows the key.
    let client: Client<_, ReplayableBody> = Client::builder(TokioExecutor::new()).build_http();
    let api = AuthLayer::new(source.clone(), credentials).layer(client);
    let response = api.oneshot(Request::get(provider.api_url("me")).body(ReplayableBody::full("")).unwrap()).await;
    assert_eq!(response.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn a_server_that_repeats_the_nonce_it_rejected_gets_one_retry_only() {
    let provider = provider(false);
    let source = dpop_source(&provider, Dpop::generate().unwrap());
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let stubborn = tower::service_fn(move |request: Request<String>| {
        counter.fetch_add(1, Ordering::SeqCst);
        assert!(request.headers().contains_key("dpop"));
        async move {
            let response = Response::builder()
                .status(401)
                .header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                .header("dpop-nonce", "always-the-same")
                .body(String::new())
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    });
    let api = AuthLayer::new(source, Credentials::builder().bearer_from_source().any_origin().build().unwrap())
        .layer(stubborn);
    let response = api.oneshot(Request::get("http://api.test/x").body(String::new()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the request and one retry with the nonce");
}

#[tokio::test]
async fn a_bearer_answer_to_a_dpop_request_is_refused() {
    let endpoint = common::ScriptedEndpoint::new(vec![], common::Scripted::token("plain", 3600));
    let config = SourceConfig::builder("https://auth.example.com/token", "app")
        .client_secret("s")
        .dpop(Dpop::generate().unwrap())
        .build()
        .unwrap();
    let source = TokenSource::builder(config, endpoint.service()).build().unwrap();
    let error = source.token().await.unwrap_err();
    assert!(matches!(error, AuthError::Token(TokenError::TokenTypeMismatch { expected: "DPoP", .. })), "{error}");
    assert!(error.to_string().contains("DPoP"), "{error}");
}
