//! `AuthorizedClient::builder()` against the embedded provider: the same
//! calls as auth-reqwest's `AuthClient::builder()`, the token source's
//! options (a shared store, a saved token), and the errors of a bad
//! configuration.

use std::time::Duration;

use auth_blocking::AuthorizedClient;
use auth_core::store::{MemoryStore, StoreConfig};
use auth_testkit::{Provider, ProviderConfig};

fn provider() -> Provider {
    Provider::start(ProviderConfig::new().client("app", "app-secret").api_key("X-API-Key", None, "key-1"))
        .expect("provider")
}

fn builder(provider: &Provider) -> auth_blocking::AuthorizedClientBuilder {
    AuthorizedClient::builder()
        .client_credentials(provider.token_url(), "app")
        .client_secret("app-secret")
        .scope("offline_access orders:read")
        .api_key_header("X-API-Key", "key-1")
        .api_origin(provider.url())
}

#[test]
fn a_few_lines_give_a_client_with_token_and_api_key() {
    let provider = provider();
    let client = builder(&provider).build().unwrap();
    for _ in 0..5 {
        let response = client.get(&provider.api_url("orders")).unwrap();
        assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    }
    assert_eq!(provider.stats().token_requests, 1);
    let request = provider.token_requests().pop().unwrap();
    assert_eq!((request.client_auth.as_str(), request.scope.as_deref()), ("basic", Some("offline_access orders:read")));
}

#[test]
fn a_snapshot_restored_into_a_new_client_is_used_without_a_token_request() {
    let provider = provider();
    let first = builder(&provider).build().unwrap();
    assert_eq!(first.get(&provider.api_url("orders")).unwrap().status(), 200);
    let saved = first.token_source().unwrap().snapshot().expect("a token to save");
    assert!(saved.access_token.is_some() && saved.refresh_token.is_some());
    drop(first);

    let second = builder(&provider).configure_source(move |source| source.restore(saved)).build().unwrap();
    assert_eq!(second.get(&provider.api_url("orders")).unwrap().status(), 200);
    assert_eq!(provider.stats().token_requests, 1, "the restored token was used");
    assert_eq!(second.token_source().unwrap().stats().fetches, 0);
}

#[test]
fn clients_sharing_a_store_fetch_once_and_flush_returns_after_the_write() {
    let provider = provider();
    let store = MemoryStore::default();
    let with_store = |store: MemoryStore| {
        builder(&provider)
            .configure_source(move |source| {
                source.store(store, StoreConfig::default()).store_timeout(Duration::from_secs(1))
            })
            .build()
            .unwrap()
    };
    let first = with_store(store.clone());
    assert_eq!(first.get(&provider.api_url("orders")).unwrap().status(), 200);
    first.token_source().unwrap().flush();
    let second = with_store(store);
    assert_eq!(second.get(&provider.api_url("orders")).unwrap().status(), 200);
    assert_eq!(provider.stats().token_requests, 1, "the second client adopted the stored token");
    assert_eq!(second.token_source().unwrap().stats().adoptions, 1);
}

#[test]
fn static_credentials_need_no_token_source() {
    let provider = Provider::start(ProviderConfig::new().api_key("X-API-Key", None, "key-1").api_requires_token(false))
        .expect("provider");
    let client =
        AuthorizedClient::builder().api_key_header("X-API-Key", "key-1").api_origin(provider.url()).build().unwrap();
    assert!(client.token_source().is_none());
    assert_eq!(client.get(&provider.api_url("quotes")).unwrap().status(), 200);
    assert_eq!(provider.stats().token_requests, 0);
}

#[test]
fn a_missing_variable_or_a_setting_out_of_order_is_a_build_error_that_says_what_to_do() {
    let unset = "AUTH_BLOCKING_TEST_SECRET_THAT_IS_NEVER_SET";
    let error = AuthorizedClient::builder()
        .client_credentials("https://login.example.com/token", "app")
        .client_secret_from_env(unset)
        .api_origin("https://api.example.com")
        .build()
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains(unset) && message.contains("client secret is not set"), "{message}");

    let error = AuthorizedClient::builder().scope("read").api_origin("https://api.example.com").build().unwrap_err();
    assert!(error.to_string().contains("scope(..) needs client_credentials"), "{error}");
    let error = AuthorizedClient::builder().api_key_header("X-API-Key", "k").build().unwrap_err();
    assert!(error.to_string().contains("api_origin"), "{error}");
}

#[test]
fn a_private_key_file_replaces_the_client_secret() {
    let keys = format!("{}/../auth-core/testdata/keys", env!("CARGO_MANIFEST_DIR"));
    let public = std::fs::read_to_string(format!("{keys}/ec-p256.pub.pem")).unwrap();
    let provider = Provider::start(ProviderConfig::new().key_client("svc", &public)).unwrap();
    let client = AuthorizedClient::builder()
        .client_credentials(provider.token_url(), "svc")
        .private_key_file(format!("{keys}/ec-p256-sec1.pem"))
        .api_origin(provider.url())
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(client.get(&provider.api_url("orders")).unwrap().status(), 200);
    }
    let requests = provider.token_requests();
    assert_eq!((requests.len(), requests[0].client_auth.as_str()), (1, "private-key-jwt"));

    // A missing file, a certificate, an encrypted key: build errors that name the file.
    for (file, says) in
        [("nope.pem", "cannot read the key file"), ("cert.pem", "CERTIFICATE"), ("ec-p256-encrypted.pem", "encrypted")]
    {
        let error = AuthorizedClient::builder()
            .client_credentials(provider.token_url(), "svc")
            .private_key_file(format!("{keys}/{file}"))
            .api_origin(provider.url())
            .build()
            .unwrap_err()
            .to_string();
        assert!(error.contains(file) && error.contains(says), "{error}");
    }
}

#[test]
fn dpop_through_the_blocking_client_with_nonces_at_both_ends() {
    let provider =
        Provider::start(ProviderConfig::new().client("app", "app-secret").dpop_nonces(true).require_dpop(true))
            .unwrap();
    let client = AuthorizedClient::builder()
        .client_credentials(provider.token_url(), "app")
        .client_secret("app-secret")
        .dpop(auth_core::dpop::Dpop::generate().unwrap())
        .api_origin(provider.url())
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(client.get(&provider.api_url("orders")).unwrap().status(), 200);
    }
    provider.rotate_dpop_nonce();
    assert_eq!(client.get(&provider.api_url("orders")).unwrap().status(), 200);
    let stats = provider.stats();
    assert_eq!((stats.token_requests, stats.dpop_nonce_challenges, stats.dpop_proofs_refused), (2, 2, 0));
}

#[test]
fn mutual_tls_through_the_blocking_client_with_a_certificate_bound_token() {
    let provider =
        Provider::start(ProviderConfig::new().mtls(true).tls_client("pki-app", "pki-app.example.com")).unwrap();
    let mtls = provider.mtls_url().unwrap().to_owned();
    let issued = provider.issue_client_certificate("pki-app.example.com");
    let certificate =
        auth_core::mtls::ClientCertificate::from_pem(&issued.certificate, &issued.private_key, None).unwrap();
    let client = AuthorizedClient::builder()
        .client_credentials(format!("{mtls}/oauth/token"), "pki-app")
        .client_certificate(certificate.clone())
        .root_certificates(&provider.ca_certificate().unwrap())
        .revocation_url(format!("{mtls}/oauth/revoke"))
        .api_origin(&mtls)
        .build()
        .unwrap();
    for _ in 0..3 {
        let response = client.get(&format!("{mtls}/api/orders")).unwrap();
        assert_eq!(response.status(), 200, "{}", String::from_utf8_lossy(response.body()));
    }
    let requests = provider.token_requests();
    assert_eq!((requests.len(), requests[0].client_auth.as_str()), (1, "tls-client-auth"));
    assert_eq!(requests[0].client_certificate.as_deref(), Some(certificate.thumbprint()));
    client.token_source().unwrap().revoke().unwrap();
    assert_eq!(provider.stats().revocations, 1);

    // Without the provider's CA the server is not trusted; the failure says so.
    let untrusting = AuthorizedClient::builder()
        .client_credentials(format!("{mtls}/oauth/token"), "pki-app")
        .client_certificate(certificate)
        .api_origin(&mtls)
        .build()
        .unwrap();
    let error = untrusting.get(&format!("{mtls}/api/orders")).unwrap_err().to_string();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert_eq!(provider.token_requests().len(), 1);
}

#[test]
fn a_client_certificate_tls_cannot_use_is_a_build_error_not_a_panic() {
    let provider = Provider::start(ProviderConfig::new().mtls(true)).unwrap();
    let issued = provider.issue_client_certificate("app");
    let stranger = auth_testkit::self_signed_certificate("someone-else");
    let mixed = auth_core::mtls::ClientCertificate::from_pem(&issued.certificate, &stranger.private_key, None).unwrap();
    let error = AuthorizedClient::builder()
        .client_credentials(format!("{}/oauth/token", provider.mtls_url().unwrap()), "app")
        .client_certificate(mixed)
        .any_origin()
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("TLS settings cannot be used") && error.contains("KeyMismatch"), "{error}");
}
