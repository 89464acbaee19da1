use std::time::{Duration, UNIX_EPOCH};

use super::*;
use crate::wire::request::{ready_to_send, token_request, Grant};
use crate::{ClientAuth, SourceConfig, SourceGrant};

fn form(request: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.body()).into_owned().collect()
}

fn value<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn supplied(value: &'static str) -> SuppliedToken {
    SuppliedToken::from_fn(format!("test {value}"), move |_| Ok(value.to_owned()))
}

#[test]
fn an_exchange_sends_every_parameter_of_the_rfc_and_reads_its_tokens_when_sent() {
    let exchange = TokenExchange::new(supplied("subject-1"), token_types::ACCESS_TOKEN)
        .actor(supplied("actor-1"), token_types::ACCESS_TOKEN)
        .requested_token_type(token_types::ACCESS_TOKEN);
    let config = SourceConfig::builder("https://sts.example.com/token", "gateway")
        .client_secret("s3cret")
        .token_exchange(exchange)
        .scope("orders:read")
        .audience("orders-api")
        .resource("https://api.example.com/")
        .build()
        .unwrap();
    assert_eq!(config.grant(), SourceGrant::TokenExchange);
    let built = token_request(&config, Grant::TokenExchange);
    assert!(value(&form(&built), "subject_token").is_none(), "read when sent, not when built");
    let sent = form(&ready_to_send(&built, now()).unwrap());
    for (name, expected) in [
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("subject_token", "subject-1"),
        ("subject_token_type", token_types::ACCESS_TOKEN),
        ("actor_token", "actor-1"),
        ("actor_token_type", token_types::ACCESS_TOKEN),
        ("requested_token_type", token_types::ACCESS_TOKEN),
        ("scope", "orders:read"),
        ("audience", "orders-api"),
        ("resource", "https://api.example.com/"),
    ] {
        assert_eq!(value(&sent, name), Some(expected), "{name}");
    }
    // Tokens for another subject are other tokens.
    let other = SourceConfig::builder("https://sts.example.com/token", "gateway")
        .client_secret("s3cret")
        .token_exchange(TokenExchange::new(supplied("subject-2"), token_types::ACCESS_TOKEN))
        .build()
        .unwrap();
    assert_ne!(config.cache_key(), other.cache_key());
    // An exchange without a subject is no configuration.
    let grant_only = SourceConfig::builder("https://sts.example.com/token", "c").grant(SourceGrant::TokenExchange);
    assert!(grant_only.build().is_err());
}

#[test]
fn a_subject_token_that_cannot_be_read_sends_nothing() {
    let exchange = TokenExchange::new(
        SuppliedToken::from_fn("the CI job's token", |_| Err("the job has no id_token".to_owned())),
        token_types::JWT,
    );
    let config = SourceConfig::builder("https://sts.example.com/token", "ci").token_exchange(exchange).build().unwrap();
    assert_eq!(config.client_auth(), ClientAuth::None, "a public client unless told otherwise");
    let error = ready_to_send(&token_request(&config, Grant::TokenExchange), now()).unwrap_err();
    assert!(error.to_string().contains("the subject token (the CI job's token) could not be used"), "{error}");
    // A JWT type wants a JWT.
    let opaque = TokenExchange::new(supplied("opaque"), token_types::ID_TOKEN);
    let config = SourceConfig::builder("https://sts.example.com/token", "ci").token_exchange(opaque).build().unwrap();
    let error = ready_to_send(&token_request(&config, Grant::TokenExchange), now()).unwrap_err();
    assert!(error.to_string().contains("not a JWT"), "{error}");
}

#[test]
fn the_issued_token_type_must_be_the_one_asked_for() {
    let asked = TokenExchange::new(supplied("s"), token_types::JWT).requested_token_type(token_types::ID_TOKEN);
    assert!(asked.check_issued(Some(token_types::ID_TOKEN)).is_ok());
    let error = asked.check_issued(Some(token_types::ACCESS_TOKEN)).unwrap_err();
    assert!(matches!(error, TokenError::IssuedTokenType { .. }) && !error.is_transient());
    assert!(error.to_string().contains("id_token"), "{error}");
    assert!(asked.check_issued(None).unwrap_err().to_string().contains("(none)"));
    let default = TokenExchange::new(supplied("s"), token_types::JWT);
    assert!(default.check_issued(Some(token_types::ACCESS_TOKEN)).is_ok());
    assert!(default.check_issued(Some(token_types::JWT)).is_ok());
    assert!(default.check_issued(Some(token_types::REFRESH_TOKEN)).is_err());

    // `N_A` is a token type only for a token that is not an access token.
    let config = |exchange: TokenExchange| {
        SourceConfig::builder("https://sts.example.com/token", "c").token_exchange(exchange).build().unwrap()
    };
    let answer = br#"{"access_token":"eyJ.x.y","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}"#;
    let parse = |config: &SourceConfig| {
        crate::wire::response::parse_token_response(config, http::StatusCode::OK, &http::HeaderMap::new(), answer)
    };
    let parsed = parse(&config(asked.clone())).unwrap();
    assert_eq!(parsed.issued_token_type.as_deref(), Some(token_types::ID_TOKEN));
    assert!(parse(&config(default)).is_err(), "an access token asked for: N_A is not its type");
}

#[test]
fn a_client_assertion_from_outside_replaces_a_signed_one() {
    let config = SourceConfig::builder("https://login.example.com/token", "app-id")
        .client_assertion(supplied("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDB9.c2ln"))
        .build()
        .unwrap();
    assert_eq!(config.client_auth(), ClientAuth::PrivateKeyJwt);
    let sent = form(&ready_to_send(&token_request(&config, Grant::ClientCredentials), now()).unwrap());
    assert_eq!(value(&sent, "client_assertion_type"), Some(crate::assertion::CLIENT_ASSERTION_TYPE));
    assert_eq!(value(&sent, "client_assertion"), Some("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDB9.c2ln"));
    assert_eq!(value(&sent, "client_id"), Some("app-id"));
    // An opaque value is no client assertion: nothing is sent.
    let opaque =
        SourceConfig::builder("https://login.example.com/token", "app-id").client_assertion(supplied("opaque"));
    let error = ready_to_send(&token_request(&opaque.build().unwrap(), Grant::ClientCredentials), now());
    assert!(error.unwrap_err().to_string().contains("the client assertion (test opaque)"));
}
