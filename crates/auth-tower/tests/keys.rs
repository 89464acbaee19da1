//! Keys instead of shared secrets, end to end against the embedded
//! provider (which verifies with ring's verifiers, as a server would):
//! `private_key_jwt` with every key type and algorithm, `client_secret_jwt`,
//! the assertion audience, a fresh assertion per attempt, replay refused,
//! and the JWT bearer grant, signed or supplied.

mod common;

use std::time::{Duration, SystemTime};

use auth_core::assertion::{AssertionAudience, JwtBearer};
use auth_core::keys::{Algorithm, SigningKey};
use auth_core::secret::ExposeSecret;
use auth_core::wire::request::{ready_to_send, token_request, Grant};
use auth_core::{ClientAuth, SourceConfig, TokenError};
use auth_testkit::{AssertionAudience as Accepted, Fault, Provider, ProviderConfig};
use auth_tower::{AuthError, TokenSource};
use http::Request;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../auth-core/testdata/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn public_jwk(key: &SigningKey) -> String {
    serde_json::Value::Object(key.public_jwk().unwrap()).to_string()
}

fn source(config: SourceConfig) -> TokenSource {
    TokenSource::builder(config, common::transport(common::http_client())).build().unwrap()
}

async fn api_user(provider: &Provider, token: &str) -> serde_json::Value {
    let client = common::http_client();
    let request = Request::get(provider.api_url("me")).header("authorization", format!("Bearer {token}"));
    let answer = client.request(request.body(Default::default()).unwrap()).await.unwrap();
    assert_eq!(answer.status(), 200);
    let body = http_body_util::BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn private_key_jwt_works_with_every_key_type_for_token_and_revocation_requests() {
    let cases = [
        ("rsa-2048.pem", "rsa-2048.pub.pem", Algorithm::Rs256),
        ("rsa-2048.pem", "rsa-2048.pub.pem", Algorithm::Rs384),
        ("rsa-2048-pkcs1.pem", "rsa-2048.pub.pem", Algorithm::Ps256),
        ("rsa-2048-pkcs1.pem", "rsa-2048.pub.pem", Algorithm::Ps384),
        ("ec-p256-sec1.pem", "ec-p256.pub.pem", Algorithm::Es256),
        ("ec-p384.pem", "ec-p384.pub.pem", Algorithm::Es384),
        ("ed25519.pem", "ed25519.pub.pem", Algorithm::EdDsa),
    ];
    for (private, public, algorithm) in cases {
        let provider = Provider::start(ProviderConfig::new().key_client("svc", &fixture(public))).unwrap();
        let key = SigningKey::from_pem(&fixture(private)).unwrap().with_algorithm(algorithm).unwrap();
        let config = SourceConfig::builder(provider.token_url(), "svc")
            .signing_key(key)
            .revocation_url(provider.revocation_url())
            .build()
            .unwrap();
        let source = source(config);
        let token = source.token().await.unwrap_or_else(|e| panic!("{private}: {e}"));
        api_user(&provider, token.value().expose_secret()).await;
        let requests = provider.token_requests();
        assert_eq!(requests[0].client_auth, "private-key-jwt", "{private}");
        assert_eq!(requests[0].assertion_ids.len(), 1);
        source.revoke().await.unwrap_or_else(|e| panic!("{private}: revocation: {e}"));
        assert_eq!(provider.stats().revocations, 1);
    }
}

#[tokio::test]
async fn client_secret_jwt_never_sends_the_secret() {
    let provider = Provider::start(ProviderConfig::new().client("app", "a-shared-secret-of-32-bytes-or-so")).unwrap();
    let config = SourceConfig::builder(provider.token_url(), "app")
        .client_secret("a-shared-secret-of-32-bytes-or-so")
        .client_auth(ClientAuth::ClientSecretJwt)
        .build()
        .unwrap();
    source(config).token().await.unwrap();
    let requests = provider.token_requests();
    assert_eq!(requests[0].client_auth, "client-secret-jwt");
    assert!(requests[0].params.iter().all(|(name, _)| name != "client_secret"));
}

#[tokio::test]
async fn the_audience_the_server_wants_is_a_setting() {
    let key = SigningKey::generate_es256().unwrap();
    let provider = Provider::start(
        ProviderConfig::new().key_client("svc", &public_jwk(&key)).assertion_audience(Accepted::Issuer),
    )
    .unwrap();
    let builder = || SourceConfig::builder(provider.token_url(), "svc").signing_key(key.clone());
    // The token URL (the default without an issuer) is refused by this server...
    let error = source(builder().build().unwrap()).token().await.unwrap_err();
    assert!(
        matches!(error, AuthError::Token(TokenError::Provider(ref e)) if e.code.as_str() == "invalid_client"),
        "{error}"
    );
    assert!(provider.token_requests()[0].refusal.as_deref().unwrap().contains("aud is not this server"));
    // ... and the issuer is accepted, as the default once the issuer is known.
    source(builder().issuer(provider.issuer()).build().unwrap()).token().await.unwrap();
    let explicit = builder().assertion_audience(AssertionAudience::Value(provider.issuer())).build().unwrap();
    source(explicit).token().await.unwrap();
}

#[tokio::test]
async fn every_attempt_carries_a_new_assertion_and_a_replayed_one_is_refused() {
    let key = SigningKey::generate_es256().unwrap();
    let provider = Provider::start(ProviderConfig::new().key_client("svc", &public_jwk(&key))).unwrap();
    let config = SourceConfig::builder(provider.token_url(), "svc").signing_key(key).build().unwrap();
    // The first attempts fail; the source retries with fresh assertions.
    provider.fail_next_token_requests(2, Fault::Unavailable);
    let source = source(config.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while source.token().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no token after the faults");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = provider.token_requests().iter().flat_map(|r| r.assertion_ids.clone()).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2], "{ids:?}");

    // A request sent twice as is: the provider refuses the replay.
    let ready = ready_to_send(&token_request(&config, Grant::ClientCredentials), SystemTime::now()).unwrap();
    let client = common::http_client();
    let send = |request: Request<Vec<u8>>| {
        let client = client.clone();
        async move {
            let request = request.map(|body| http_body_util::Full::new(bytes::Bytes::from(body)));
            client.request(request).await.unwrap().status().as_u16()
        }
    };
    let copy = {
        let mut copy = Request::new(ready.body().clone());
        *copy.method_mut() = ready.method().clone();
        *copy.uri_mut() = ready.uri().clone();
        *copy.headers_mut() = ready.headers().clone();
        copy
    };
    assert_eq!(send(ready).await, 200);
    assert_eq!(send(copy).await, 401);
    let last = provider.token_requests().pop().unwrap();
    assert!(last.refusal.as_deref().unwrap().contains("replay"), "{last:?}");
}

#[tokio::test]
async fn the_jwt_bearer_grant_gets_a_token_for_the_subject() {
    let issuer_key = SigningKey::from_pem(&fixture("ed25519.pem")).unwrap();
    let provider = Provider::start(
        ProviderConfig::new().public_client("app").jwt_bearer_issuer("svc@example.com", &fixture("ed25519.pub.pem")),
    )
    .unwrap();
    let config = SourceConfig::builder(provider.token_url(), "app")
        .jwt_bearer(JwtBearer::signed(issuer_key.clone(), "svc@example.com", "dave"))
        .build()
        .unwrap();
    let token = source(config).token().await.unwrap();
    assert_eq!(api_user(&provider, token.value().expose_secret()).await["user"], "dave");
    let request = &provider.token_requests()[0];
    assert_eq!(request.grant_type, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert_eq!(request.client_auth, "none");

    // A JWT minted elsewhere, handed over by a function at each send.
    let minted = {
        let key = issuer_key.clone();
        let aud = provider.token_url();
        move |now: SystemTime| {
            let now = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
            let claims = serde_json::json!({"iss": "svc@example.com", "sub": "erin", "aud": aud,
                "jti": auth_testkit::random_token("j"), "exp": now + 60});
            key.sign_jwt("JWT", &claims).map_err(|e| e.to_string())
        }
    };
    let config = SourceConfig::builder(provider.token_url(), "app")
        .jwt_bearer(JwtBearer::from_fn("erin", minted))
        .build()
        .unwrap();
    let token = source(config).token().await.unwrap();
    assert_eq!(api_user(&provider, token.value().expose_secret()).await["user"], "erin");

    // An untrusted issuer is refused as the provider says.
    let config = SourceConfig::builder(provider.token_url(), "app")
        .jwt_bearer(JwtBearer::signed(SigningKey::generate_es256().unwrap(), "mallory", "dave"))
        .build()
        .unwrap();
    let error = source(config).token().await.unwrap_err();
    assert!(error.to_string().contains("invalid_grant"), "{error}");

    // A function that fails: nothing is sent, the error says why.
    let before = provider.token_requests().len();
    let config = SourceConfig::builder(provider.token_url(), "app")
        .jwt_bearer(JwtBearer::from_fn("broken", |_| Err("the token file is missing".to_owned())))
        .build()
        .unwrap();
    let source = TokenSource::builder(config, common::transport(common::http_client())).build().unwrap();
    let error = tokio::time::timeout(Duration::from_secs(10), source.token()).await.unwrap().unwrap_err();
    assert!(error.to_string().contains("the token file is missing"), "{error}");
    assert_eq!(provider.token_requests().len(), before);
}
