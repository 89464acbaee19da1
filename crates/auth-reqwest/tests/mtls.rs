//! Mutual TLS (RFC 8705) through `AuthClient`, against the embedded
//! provider's TLS listener: the certificate authenticates the client at the
//! token endpoint and the certificate-bound token works at the API.

use auth_core::mtls::ClientCertificate;
use auth_core::ClientAuth;
use auth_reqwest::{AuthClient, AuthError, ConfigError};
use auth_testkit::{self_signed_certificate, Provider, ProviderConfig};

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn tls_client_auth_from_pem_files_and_a_certificate_bound_token_at_the_api() {
    let provider =
        Provider::start(ProviderConfig::new().mtls(true).tls_client("pki-app", "pki-app.example.com")).unwrap();
    let mtls = provider.mtls_url().unwrap().to_owned();
    let issued = provider.issue_client_certificate("pki-app.example.com");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (write(&dir, "client.crt", &issued.certificate), write(&dir, "client.key", &issued.private_key));
    let client = AuthClient::builder()
        .client_credentials(format!("{mtls}/oauth/token"), "pki-app")
        .client_certificate_files(&cert, &key)
        .root_certificates(&provider.ca_certificate().unwrap())
        .api_origin(&mtls)
        .build()
        .unwrap();
    assert_eq!(client.token_source().unwrap().config().client_auth(), ClientAuth::TlsClientAuth);
    for _ in 0..3 {
        let response = client.get(format!("{mtls}/api/orders")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let requests = provider.token_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].client_auth, "tls-client-auth");
    assert_eq!(requests[0].client_certificate.as_deref(), Some(client_thumbprint(&issued)).as_deref());
    assert_eq!(provider.stats().certificate_binding_refused, 0);
}

fn client_thumbprint(pem: &auth_testkit::CertificatePem) -> String {
    ClientCertificate::from_pem(&pem.certificate, &pem.private_key, None).unwrap().thumbprint().to_owned()
}

#[tokio::test]
async fn self_signed_tls_client_auth_gets_and_revokes_over_the_alias() {
    let own = self_signed_certificate("self-signed-app");
    let provider =
        Provider::start(ProviderConfig::new().mtls(true).self_signed_tls_client("own-app", &own.certificate)).unwrap();
    let mtls = provider.mtls_url().unwrap().to_owned();
    let certificate = ClientCertificate::from_pem(&own.certificate, &own.private_key, None).unwrap();
    let client = AuthClient::builder()
        .client_credentials(format!("{mtls}/oauth/token"), "own-app")
        .client_auth(ClientAuth::SelfSignedTlsClientAuth)
        .client_certificate(certificate)
        .revocation_url(format!("{mtls}/oauth/revoke"))
        .root_certificates(&provider.ca_certificate().unwrap())
        .api_origin(&mtls)
        .build()
        .unwrap();
    assert_eq!(client.get(format!("{mtls}/api/orders")).send().await.unwrap().status(), 200);
    client.revoke().await.unwrap();
    assert_eq!(provider.stats().revocations, 1);
    assert_eq!(provider.token_requests()[0].client_auth, "self-signed-tls-client-auth");
}

#[tokio::test]
async fn a_key_that_is_not_the_certificates_is_a_clear_build_error() {
    let provider = Provider::start(ProviderConfig::new().mtls(true)).unwrap();
    let issued = provider.issue_client_certificate("app");
    let stranger = self_signed_certificate("someone-else");
    let mixed = ClientCertificate::from_pem(&issued.certificate, &stranger.private_key, None).unwrap();
    let config = auth_reqwest::SourceConfig::builder(format!("{}/oauth/token", provider.mtls_url().unwrap()), "app")
        .client_certificate(mixed.clone())
        .build()
        .unwrap();
    let error = auth_reqwest::ReqwestTransport::for_config(&config, std::time::Duration::from_secs(5)).unwrap_err();
    assert!(matches!(error, ConfigError::Tls { .. }), "{error:?}");
    let error = AuthClient::builder()
        .client_credentials(format!("{}/oauth/token", provider.mtls_url().unwrap()), "app")
        .client_certificate(mixed)
        .any_origin()
        .build()
        .unwrap_err();
    assert!(matches!(error, AuthError::Config(ConfigError::Tls { .. })), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("key belongs to the certificate"), "{message}");
    let key_body: String = stranger.private_key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!message.contains(&key_body[..16]), "{message}");

    // Unreadable files and a root file without certificates name the problem.
    let error = AuthClient::builder()
        .client_credentials("https://login.example.com/token", "app")
        .client_certificate_files("/nonexistent/client.crt", "/nonexistent/client.key")
        .any_origin()
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("`/nonexistent/client.crt`"), "{error}");
    let error = AuthClient::builder()
        .client_credentials("https://login.example.com/token", "app")
        .client_secret("s")
        .root_certificates(&issued.private_key)
        .any_origin()
        .build()
        .unwrap_err()
        .to_string();
    assert!(error.contains("root certificates") && error.contains("no certificate found"), "{error}");
}

#[tokio::test]
async fn a_hand_built_client_presents_the_certificate_through_client_identity() {
    use auth_reqwest::{client_identity, AuthMiddleware, Credentials, ReqwestTransport, SourceConfig, TokenSource};
    let provider =
        Provider::start(ProviderConfig::new().mtls(true).tls_client("pki-app", "pki-app.example.com")).unwrap();
    let mtls = provider.mtls_url().unwrap().to_owned();
    let issued = provider.issue_client_certificate("pki-app.example.com");
    let certificate = ClientCertificate::from_pem(&issued.certificate, &issued.private_key, None).unwrap();
    let config = SourceConfig::builder(format!("{mtls}/oauth/token"), "pki-app")
        .client_certificate(certificate)
        .build()
        .unwrap();
    // One reqwest client with the identity and the private root, for the
    // token endpoint and the API.
    let ca = reqwest::Certificate::from_pem(provider.ca_certificate().unwrap().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .identity(client_identity(config.client_certificate().unwrap()).unwrap())
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let source = TokenSource::new(config, ReqwestTransport::from_client(http.clone())).unwrap();
    let credentials = Credentials::builder().bearer_from_source().api_origin(&mtls).build().unwrap();
    let client = reqwest_middleware::ClientBuilder::new(http).with(AuthMiddleware::new(source, credentials)).build();
    for _ in 0..2 {
        assert_eq!(client.get(format!("{mtls}/api/orders")).send().await.unwrap().status(), 200);
    }
    assert_eq!(provider.token_requests().len(), 1);
}
