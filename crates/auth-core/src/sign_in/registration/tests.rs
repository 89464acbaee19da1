use proptest::prelude::*;

use super::*;

fn document(request: &Request<Vec<u8>>) -> Value {
    serde_json::from_slice(request.body()).unwrap()
}

#[test]
fn each_kind_of_client_asks_for_what_it_needs() {
    let cli = ClientMetadata::public_client("my-cli", "http://127.0.0.1:8765/callback").scope("read offline_access");
    let request = registration_request("https://id.example.com/register", &cli, None).unwrap();
    assert_eq!(request.headers()[header::CONTENT_TYPE], "application/json");
    assert!(request.headers().get(header::AUTHORIZATION).is_none());
    assert_eq!(
        document(&request),
        json!({
            "client_name": "my-cli",
            "redirect_uris": ["http://127.0.0.1:8765/callback"],
            "response_types": ["code"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            "scope": "read offline_access",
        })
    );
    let service = ClientMetadata::service("billing");
    let request = registration_request("https://id.example.com/register", &service, Some("iat-1")).unwrap();
    assert_eq!(request.headers()[header::AUTHORIZATION], "Bearer iat-1");
    assert!(request.headers()[header::AUTHORIZATION].is_sensitive());
    let sent = document(&request);
    assert_eq!(sent["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(sent["grant_types"], json!(["client_credentials"]));
    assert!(sent.get("redirect_uris").is_none());

    let key = SigningKey::generate_es256().unwrap().with_key_id("k1");
    let keyed = ClientMetadata::service_with_key("billing", &key).unwrap();
    let sent = document(&registration_request("https://id.example.com/register", &keyed, None).unwrap());
    assert_eq!(sent["token_endpoint_auth_method"], "private_key_jwt");
    let jwk = &sent["jwks"]["keys"][0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["kid"].as_str()),
        (Some("EC"), Some("ES256"), Some("k1"))
    );
    assert!(jwk.get("d").is_none(), "the private key never leaves");
    let hmac = SigningKey::hmac_sha256(b"0123456789abcdef0123456789abcdef");
    assert!(ClientMetadata::service_with_key("x", &hmac).is_err());

    assert!(registration_request("http://id.example.com/register", &cli, None).is_err(), "https only");
    assert!(registration_request("https://id.example.com/register", &cli, Some("a\nb")).is_err());
}

#[test]
fn an_answer_is_read_its_secrets_guarded_and_kept_as_json() {
    let answer = br#"{"client_id":"c-1","client_secret":"cs-secret-1","client_secret_expires_at":0,
        "registration_access_token":"rat-secret-1","registration_client_uri":"https://id.example.com/register/c-1",
        "token_endpoint_auth_method":"client_secret_basic","client_name":"billing"}"#;
    let registration = parse_registration(StatusCode::CREATED, answer).unwrap();
    assert_eq!(registration.client_id(), "c-1");
    assert_eq!(registration.client_secret().unwrap().expose_secret(), "cs-secret-1");
    assert_eq!(registration.client_secret_expires_at(), None, "0: never");
    assert_eq!(registration.auth_method(), Some("client_secret_basic"));
    assert_eq!(registration.client_auth(), Some(crate::ClientAuth::Basic));
    let read = |json: &str| parse_registration(StatusCode::CREATED, json.as_bytes()).unwrap().client_auth();
    assert_eq!(read(r#"{"client_id":"p","token_endpoint_auth_method":"none"}"#), Some(crate::ClientAuth::None));
    assert_eq!(read(r#"{"client_id":"p"}"#), Some(crate::ClientAuth::Basic), "RFC 7591's default");
    assert_eq!(
        read(r#"{"client_id":"p","token_endpoint_auth_method":"client_secret_post"}"#),
        Some(crate::ClientAuth::Post)
    );
    assert_eq!(read(r#"{"client_id":"p","token_endpoint_auth_method":"magic"}"#), None);
    let shown = format!("{registration:?}");
    assert!(!shown.contains("cs-secret-1") && !shown.contains("rat-secret-1"), "{shown}");
    // Kept, then read back the same.
    let again = parse_registration(StatusCode::OK, registration.to_json().as_bytes()).unwrap();
    assert_eq!(again.client_secret().unwrap().expose_secret(), "cs-secret-1");
    assert_eq!(again.registration_access_token().unwrap().expose_secret(), "rat-secret-1");
    assert_eq!(again.registration_client_uri(), Some("https://id.example.com/register/c-1"));
}

#[test]
fn refusals_and_unusable_answers_say_why() {
    for (status, body, says) in [
        (
            400,
            &br#"{"error":"invalid_redirect_uri","error_description":"loopback only"}"#[..],
            "invalid_redirect_uri (loopback only)",
        ),
        (400, br#"{"error":"invalid_client_metadata"}"#, "register it by hand"),
        (401, br#"{"error":"invalid_token"}"#, "initial access token"),
        (500, b"<html>", "not JSON"),
        (400, br#"{}"#, "without an error code"),
        (201, br#"{"client_secret":"x"}"#, "no client_id"),
        (201, br#"{"client_id":"c\u202e1"}"#, "cannot be used safely"),
        (201, br#"{"client_id":"c","registration_client_uri":"http://id.example.com/x"}"#, "not https"),
        (201, br#"{"client_id":"c","client_secret_expires_at":"soon"}"#, "not a number"),
    ] {
        let error = parse_registration(StatusCode::from_u16(status).unwrap(), body).unwrap_err().to_string();
        assert!(error.contains(says), "{says}: {error}");
    }
    // The initial access token the request carried, echoed: not shown.
    let echoed = br#"{"error":"invalid_client_metadata","error_description":"token iat-secret-0042 may not register"}"#;
    let error = parse_registration_redacting(StatusCode::BAD_REQUEST, echoed, &["iat-secret-0042"]).unwrap_err();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("iat-secret-0042") && shown.contains("[redacted]"), "{shown}");
    let huge = vec![b' '; MAX_ANSWER_LEN + 1];
    assert!(parse_registration(StatusCode::CREATED, &huge).unwrap_err().to_string().contains("64 KiB"));
}

proptest! {
    #[test]
    fn any_answer_is_read_or_refused_without_a_panic_or_a_secret_shown(
        status in 100u16..600,
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            "\\{\"(client_id|error|client_secret|error_description)\":\"[ -~]{0,20}\"(,\"client_secret\":\"sek-[a-z]{4}\")?\\}"
                .prop_map(String::into_bytes),
        ],
    ) {
        let status = StatusCode::from_u16(status).unwrap();
        match parse_registration(status, &body) {
            Ok(registration) => {
                let shown = format!("{registration:?}");
                prop_assert!(!shown.contains("sek-"), "{}", shown);
            }
            Err(error) => prop_assert!(!error.to_string().contains("sek-")),
        }
    }
}
