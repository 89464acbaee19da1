//! Fleets without a client secret, against the embedded provider: a
//! workload identity token (a Kubernetes projected service account token,
//! say) in a file the platform rotates, used as the client assertion and as
//! the subject of an RFC 8693 token exchange.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_core::exchange::{token_types, SuppliedToken, TokenExchange};
use auth_core::keys::SigningKey;
use auth_reqwest::AuthClient;
use auth_testkit::{Provider, ProviderConfig};

/// The platform: it signs workload tokens and writes them to a file.
struct Platform {
    key: SigningKey,
    issuer: String,
}

impl Platform {
    fn new() -> Self {
        Self { key: SigningKey::generate_es256().unwrap(), issuer: "https://kubernetes.default.svc".to_owned() }
    }

    fn public_key(&self) -> String {
        serde_json::Value::Object(self.key.public_jwk().unwrap()).to_string()
    }

    /// A token for `subject`, for the provider (`aud`), expiring in `ttl`.
    fn token(&self, provider: &Provider, subject: &str, ttl: i64) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let claims = serde_json::json!({
            "iss": self.issuer, "sub": subject, "aud": provider.token_url(),
            "iat": now, "exp": now + ttl,
        });
        self.key.sign_jwt("JWT", &claims).unwrap()
    }

    /// Writes `token` to `path` as the kubelet does (a new file renamed over the old one).
    fn write(path: &Path, token: &str) {
        let next = path.with_extension("next");
        std::fs::write(&next, token).unwrap();
        std::fs::rename(&next, path).unwrap();
    }
}

const SA: &str = "system:serviceaccount:payments:worker";

/// A platform, and a provider with `config` that trusts its tokens and
/// exchanges them for the public client `sts-client`.
fn exchanging(config: ProviderConfig) -> (Platform, Provider) {
    let platform = Platform::new();
    let config = config
        .workload_issuer(&platform.issuer, &platform.public_key())
        .public_client("sts-client")
        .token_exchange(true);
    let provider = Provider::start(config).unwrap();
    (platform, provider)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_token_file_is_the_client_assertion_and_its_rotation_is_used() {
    let platform = Platform::new();
    let provider = Provider::start(
        ProviderConfig::new()
            .workload_issuer(&platform.issuer, &platform.public_key())
            .federated_client("payments", SA)
            .token_lifetime(Duration::from_secs(2)),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    let first = platform.token(&provider, SA, 600);
    Platform::write(&path, &first);
    let api = AuthClient::builder()
        .client_credentials(provider.token_url(), "payments")
        .client_assertion(SuppliedToken::file(&path))
        .api_origin(provider.url())
        .build()
        .unwrap();
    let body: serde_json::Value = api.get(provider.api_url("me")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["client_id"], "payments", "{body}");
    assert_eq!(provider.token_requests()[0].client_auth, "federated");

    // The platform rotates the file; the next token request uses the new token, never the old one.
    let second = platform.token(&provider, SA, 900);
    Platform::write(&path, &second);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.get(provider.api_url("me")).send().await.unwrap().status(), 200);
    let requests = provider.token_requests();
    assert!(requests.len() >= 2, "renewed: {}", requests.len());
    let ids: Vec<String> = requests.iter().flat_map(|r| r.assertion_ids.clone()).collect();
    assert!(ids.is_empty(), "workload tokens carry no jti here: {ids:?}");
    assert!(requests.iter().all(|r| r.status == 200), "every request accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_exchange_uses_the_rotated_subject_and_an_expired_one_is_never_sent() {
    let (platform, provider) = exchanging(ProviderConfig::new().token_lifetime(Duration::from_secs(2)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    Platform::write(&path, &platform.token(&provider, SA, 600));
    let exchange = TokenExchange::new(SuppliedToken::file(&path), token_types::JWT)
        .requested_token_type(token_types::ACCESS_TOKEN);
    let api = AuthClient::builder()
        .client_credentials(provider.token_url(), "sts-client")
        .token_exchange(exchange)
        .audience("payments-api")
        .api_origin(provider.url())
        .build()
        .unwrap();
    let body: serde_json::Value = api.get(provider.api_url("me")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["user"], SA, "the token speaks for the workload: {body}");
    let first = &provider.token_requests()[0];
    assert_eq!(first.grant_type, "urn:ietf:params:oauth:grant-type:token-exchange");
    assert_eq!(first.audience.as_deref(), Some("payments-api"));
    assert!(first.params.iter().any(|(k, v)| k == "subject_token_type" && v == token_types::JWT));
    assert_eq!(provider.stats().exchanges, 1);

    // Rotated: another workload identity from the next exchange on.
    Platform::write(&path, &platform.token(&provider, "system:serviceaccount:payments:other", 600));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let body: serde_json::Value = api.get(provider.api_url("me")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["user"], "system:serviceaccount:payments:other", "{body}");

    // Expired in the file (the platform stopped renewing it): a clear error, and no request.
    Platform::write(&path, &platform.token(&provider, SA, -60));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = provider.stats().token_requests;
    let error = api.get(provider.api_url("me")).send().await.unwrap_err().to_string();
    assert!(error.contains("the subject token") && error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("expired"), "{error}");
    assert_eq!(provider.stats().token_requests, before, "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_token_of_another_type_is_refused_and_n_a_is_taken_for_a_jwt() {
    let (platform, provider) = exchanging(ProviderConfig::new());
    let token = platform.token(&provider, SA, 600);
    let source = |requested: &str| {
        let token = token.clone();
        let exchange = TokenExchange::new(SuppliedToken::from_fn("test", move |_| Ok(token.clone())), token_types::JWT)
            .requested_token_type(requested);
        let config = auth_core::SourceConfig::builder(provider.token_url(), "sts-client")
            .token_exchange(exchange)
            .build()
            .unwrap();
        auth_reqwest::TokenSource::new(config, auth_reqwest::ReqwestTransport::new().unwrap()).unwrap()
    };
    // A JWT asked for: issued with token_type N_A, and taken.
    assert!(source(token_types::JWT).token().await.is_ok());
    // A type the server does not issue: its refusal.
    let error = source(token_types::SAML2).token().await.unwrap_err().to_string();
    assert!(error.contains("invalid_target"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_exchange_waits_for_the_inner_token_and_renews_when_it_changes() {
    use auth_core::secret::ExposeSecret as _;
    let (platform, provider) = exchanging(ProviderConfig::new());
    let token = platform.token(&provider, SA, 600);
    let transport = || auth_reqwest::ReqwestTransport::new().unwrap();
    // The workload's token exchanged for a platform token...
    let inner = auth_core::SourceConfig::builder(provider.token_url(), "sts-client")
        .token_exchange(TokenExchange::new(
            SuppliedToken::from_fn("the workload", move |_| Ok(token.clone())),
            token_types::JWT,
        ))
        .build()
        .unwrap();
    let inner = auth_reqwest::TokenSource::new(inner, transport()).unwrap();
    // ...exchanged again for one API's.
    let outer = auth_core::SourceConfig::builder(provider.token_url(), "sts-client")
        .token_exchange(TokenExchange::new(inner.subject_token(), token_types::ACCESS_TOKEN))
        .audience("orders-api")
        .build()
        .unwrap();
    let outer = auth_reqwest::TokenSource::builder(outer, transport()).after(&inner).build().unwrap();

    // Cold: the outer waits for the inner's token, then exchanges it.
    let first = outer.token().await.unwrap();
    assert_eq!(provider.stats().exchanges, 2);
    let requests = provider.token_requests();
    assert!(requests[1].params.iter().any(|(k, v)| k == "subject_token_type" && v == token_types::ACCESS_TOKEN));
    assert_eq!(requests[1].audience.as_deref(), Some("orders-api"));

    // The inner token changes (a 401 for it, say): the outer renews at once.
    let inner_token = inner.token().await.unwrap();
    inner.invalidate(inner_token.generation());
    for _ in 0..200 {
        if provider.stats().exchanges >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(provider.stats().exchanges, 4, "the inner's new token, then the outer's");
    let second = outer.token().await.unwrap();
    assert_ne!(first.value().expose_secret(), second.value().expose_secret(), "the outer token was renewed");

    // Without `after`, a cold outer has no subject yet: it says so, naming the inner source.
    let lonely = auth_core::SourceConfig::builder(provider.token_url(), "sts-client")
        .token_exchange(TokenExchange::new(
            auth_reqwest::TokenSource::new(
                auth_core::SourceConfig::builder(provider.token_url(), "sts-client")
                    .token_exchange(TokenExchange::new(SuppliedToken::env("NO_SUCH_VARIABLE_X"), token_types::JWT))
                    .build()
                    .unwrap(),
                transport(),
            )
            .unwrap()
            .subject_token(),
            token_types::ACCESS_TOKEN,
        ))
        .build()
        .unwrap();
    let error = auth_reqwest::TokenSource::new(lonely, transport()).unwrap().token().await.unwrap_err().to_string();
    assert!(error.contains("no usable token yet"), "{error}");
}
