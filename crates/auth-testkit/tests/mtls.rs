//! The mutual TLS listener (RFC 8705), checked with a plain HTTP client.

use auth_testkit::{self_signed_certificate, CertificatePem, Provider, ProviderConfig};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

fn agent(provider: &Provider, identity: Option<&CertificatePem>) -> ureq::Agent {
    let ca = provider.ca_certificate().unwrap();
    let mut tls =
        TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[Certificate::from_pem(ca.as_bytes()).unwrap()]));
    if let Some(identity) = identity {
        let chain = [Certificate::from_pem(identity.certificate.as_bytes()).unwrap()];
        let key = PrivateKey::from_pem(identity.private_key.as_bytes()).unwrap();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    ureq::Agent::config_builder().tls_config(tls.build()).http_status_as_error(false).build().new_agent()
}

fn plain() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().new_agent()
}

fn token(agent: &ureq::Agent, url: &str, client_id: &str) -> (u16, serde_json::Value) {
    let mut response = agent
        .post(format!("{url}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(format!("grant_type=client_credentials&client_id={client_id}"))
        .unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap())
}

fn api(agent: &ureq::Agent, url: &str, token: &str) -> u16 {
    agent
        .get(format!("{url}/api/orders"))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn certificate_clients_authenticate_and_their_tokens_are_bound_to_the_certificate() {
    let own = self_signed_certificate("own-cert-client");
    let provider = Provider::start(
        ProviderConfig::new()
            .mtls(true)
            .tls_client("pki-client", "pki-client.example.com")
            .self_signed_tls_client("self-signed-client", &own.certificate),
    )
    .unwrap();
    let mtls = provider.mtls_url().unwrap().to_owned();
    assert!(mtls.starts_with("https://127.0.0.1:"));
    let issued = provider.issue_client_certificate("pki-client.example.com");
    let with_issued = agent(&provider, Some(&issued));

    // tls_client_auth with the issued certificate; the token works over a
    // connection with that certificate only.
    let (status, body) = token(&with_issued, &mtls, "pki-client");
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(api(&with_issued, &mtls, &access), 200);
    assert_eq!(api(&agent(&provider, None), &mtls, &access), 401);
    assert_eq!(api(&agent(&provider, Some(&own)), &mtls, &access), 401);
    assert_eq!(api(&plain(), provider.url(), &access), 401);
    assert_eq!(provider.stats().certificate_binding_refused, 3);

    // self_signed_tls_client_auth with the registered certificate.
    let with_own = agent(&provider, Some(&own));
    let (status, body) = token(&with_own, &mtls, "self-signed-client");
    assert_eq!(status, 200, "{body}");

    // Refusals: no certificate, another client's certificate, a certificate
    // the CA issued for another subject, the plain listener.
    let other = provider.issue_client_certificate("someone-else");
    for (agent, client, why) in [
        (agent(&provider, None), "pki-client", "no client certificate"),
        (agent(&provider, Some(&own)), "pki-client", "not the one registered"),
        (agent(&provider, Some(&other)), "pki-client", "not the one registered"),
        (agent(&provider, Some(&issued)), "self-signed-client", "not the one registered"),
    ] {
        let (status, body) = token(&agent, &mtls, client);
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{client}: {body}");
        let refusal = provider.token_requests().last().unwrap().refusal.clone().unwrap();
        assert!(refusal.contains(why), "{refusal}");
    }
    let (status, _) = token(&plain(), provider.url(), "pki-client");
    assert_eq!(status, 401);

    let requests = provider.token_requests();
    assert_eq!(requests[0].client_auth, "tls-client-auth");
    assert_eq!(requests[1].client_auth, "self-signed-tls-client-auth");
    assert!(
        requests[0].client_certificate.is_some() && requests[0].client_certificate != requests[1].client_certificate
    );

    // The discovery document names the aliases.
    let document: serde_json::Value = serde_json::from_str(
        &ureq::get(format!("{}/.well-known/oauth-authorization-server", provider.url()))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(document["mtls_endpoint_aliases"]["token_endpoint"], format!("{mtls}/oauth/token"));
    assert!(document["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&"tls_client_auth".into()));
}
