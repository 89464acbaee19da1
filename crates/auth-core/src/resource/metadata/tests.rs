use proptest::prelude::*;

use super::*;

fn document(resource: &str, servers: &[&str]) -> Vec<u8> {
    serde_json::json!({ "resource": resource, "authorization_servers": servers }).to_string().into_bytes()
}

#[test]
fn the_well_known_url_goes_between_the_host_and_the_path() {
    assert_eq!(
        metadata_url("https://api.example.com").unwrap(),
        "https://api.example.com/.well-known/oauth-protected-resource"
    );
    assert_eq!(
        metadata_url("https://api.example.com/").unwrap(),
        "https://api.example.com/.well-known/oauth-protected-resource"
    );
    assert_eq!(
        metadata_url("https://API.example.com:8443/v1/orders/").unwrap(),
        "https://api.example.com:8443/.well-known/oauth-protected-resource/v1/orders"
    );
    assert_eq!(
        metadata_url("http://127.0.0.1:9/mcp").unwrap(),
        "http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp"
    );
    for refused in ["http://api.example.com/", "https://api.example.com/?q=1", "https://api.example.com/#x", "ftp://x/"]
    {
        assert!(metadata_url(refused).is_err(), "{refused}");
    }
}

#[test]
fn the_resource_must_be_the_apis() {
    let doc = document("https://api.example.com/v1", &["https://api.example.com"]);
    assert!(parse_resource_metadata(&doc, Expected::Identifier("https://api.example.com/v1")).is_ok());
    // The well-known URL of another identifier: identical only.
    let error = parse_resource_metadata(&doc, Expected::Identifier("https://api.example.com/v1/")).unwrap_err();
    assert!(error.to_string().contains("describes `https://api.example.com/v1`"), "{error}");
    // A challenge's metadata covers the URL requested, or a path below it.
    for requested in
        ["https://api.example.com/v1", "https://api.example.com/v1/orders?page=2", "https://API.example.com/v1/x"]
    {
        assert!(parse_resource_metadata(&doc, Expected::Requested(requested)).is_ok(), "{requested}");
    }
    for requested in [
        "https://api.example.com/v10",
        "https://api.example.com/",
        "https://evil.example.com/v1",
        "http://api.example.com/v1",
    ] {
        assert!(
            matches!(
                parse_resource_metadata(&doc, Expected::Requested(requested)),
                Err(ResourceError::ResourceMismatch { .. })
            ),
            "{requested}"
        );
    }
}

#[test]
fn hostile_documents_are_refused_with_what_was_wrong() {
    let expected = Expected::Identifier("https://api.example.com");
    let huge = format!(r#"{{"resource":"https://api.example.com","pad":"{}"}}"#, "x".repeat(MAX_METADATA_LEN));
    for (body, says) in [
        (huge.into_bytes(), "larger than"),
        (b"<html>".to_vec(), "not JSON"),
        (b"[]".to_vec(), "not a JSON object"),
        (br#"{"authorization_servers":[]}"#.to_vec(), "no resource"),
        (document("https://api.example.com", &["http://id.example.com"]), "https"),
        (br#"{"resource":"https://api.example.com","authorization_servers":"https://id"}"#.to_vec(), "not an array"),
        (br#"{"resource":"https://api.example.com","scopes_supported":[1]}"#.to_vec(), "non-strings"),
        (document("https://api.example.com", &["https://id.example.com?x=1"]), "query"),
    ] {
        let error = parse_resource_metadata(&body, expected).unwrap_err().to_string();
        assert!(error.contains(says), "{says}: {error}");
    }
}

#[test]
fn an_authorization_server_on_another_origin_needs_the_users_leave() {
    let doc = document("https://api.example.com", &["https://id.example.com/tenant", "https://api.example.com/auth"]);
    let metadata = parse_resource_metadata(&doc, Expected::Identifier("https://api.example.com")).unwrap();
    assert_eq!(metadata.authorization_server(&Origins::default()).unwrap(), "https://api.example.com/auth");
    let allowed = Origins::default().allow("https://id.example.com").unwrap();
    assert_eq!(metadata.authorization_server(&allowed).unwrap(), "https://id.example.com/tenant");
    let elsewhere = document("https://api.example.com", &["https://id.example.com"]);
    let metadata = parse_resource_metadata(&elsewhere, Expected::Identifier("https://api.example.com")).unwrap();
    let error = metadata.authorization_server(&Origins::default()).unwrap_err().to_string();
    assert!(
        error.contains("sends the client to https://id.example.com")
            && error.contains("Origins::allow(\"https://id.example.com\")"),
        "{error}"
    );
    let none = parse_resource_metadata(
        &document("https://api.example.com", &[]),
        Expected::Identifier("https://api.example.com"),
    )
    .unwrap();
    assert_eq!(none.authorization_server(&Origins::default()), Err(ResourceError::NoAuthorizationServer));
    // The metadata URL a challenge names: the API's origin, or an allowed one.
    let origins = Origins::default();
    assert!(challenge_metadata_url(
        "https://api.example.com/x",
        "https://api.example.com/.well-known/oauth-protected-resource",
        &origins
    )
    .is_ok());
    assert!(challenge_metadata_url("https://api.example.com/x", "https://169.254.169.254/latest", &origins).is_err());
    assert!(challenge_metadata_url("https://api.example.com/x", "http://api.example.com/meta", &origins).is_err());
}

proptest! {
    #[test]
    fn any_document_is_read_or_refused_without_a_panic(body in prop::collection::vec(any::<u8>(), 0..300), requested in "https://[a-z]{1,5}\\.example(/[a-z]{0,4}){0,3}") {
        let _ = parse_resource_metadata(&body, Expected::Requested(&requested));
        let _ = parse_resource_metadata(&body, Expected::Identifier(&requested));
    }

    /// A document read for a request names that request's resource: the
    /// same origin, and a path the request's is within.
    #[test]
    fn a_document_taken_for_a_request_covers_it(
        resource in "https://(api|API|evil)\\.example(:8443)?(/[a-z]{1,3}){0,2}/?",
        requested in "https://(api|evil)\\.example(:8443)?(/[a-z]{1,3}){0,3}(\\?[a-z]=1)?",
    ) {
        let doc = document(&resource, &[]);
        if parse_resource_metadata(&doc, Expected::Requested(&requested)).is_ok() {
            let (r, q): (Uri, Uri) = (resource.parse().unwrap(), requested.parse().unwrap());
            prop_assert_eq!(origin_of(&r), origin_of(&q));
            let prefix = r.path().trim_end_matches('/');
            let within = q.path() == prefix || q.path().starts_with(&(prefix.to_owned() + "/")) || prefix.is_empty();
            prop_assert!(within, "{} does not cover {}", resource, requested);
        }
    }
}
