//! Property tests of the DPoP and assertion rules at the token endpoint:
//! whatever a server answers, a token call is tried at most twice, retries
//! only for `use_dpop_nonce` with a nonce other than the one it sent, sends
//! a new proof and a new client assertion with every attempt, and the nonce
//! cache holds only what RFC 9449 allows.

use std::collections::HashSet;
use std::time::{Duration, UNIX_EPOCH};

use auth_core::dpop::Dpop;
use auth_core::keys::SigningKey;
use auth_core::wire::request::{token_request, Grant, TokenCall};
use auth_core::SourceConfig;
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    error: Option<&'static str>,
    nonce: Option<String>,
}

fn answer() -> impl Strategy<Value = Answer> {
    let status = prop_oneof![Just(200u16), Just(400), Just(401), Just(500)];
    let error = prop_oneof![Just(None), Just(Some("use_dpop_nonce")), Just(Some("invalid_dpop_proof"))];
    let nonce = prop_oneof![Just(None), "[a-z0-9]{1,4}".prop_map(Some), Just(Some("bad\"quote".to_owned()))];
    (status, error, nonce).prop_map(|(status, error, nonce)| Answer { status, error, nonce })
}

fn claim(jwt: &str, name: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get(name).and_then(|v| v.as_str()).map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_token_call_retries_at_most_once_and_only_for_a_new_nonce(answers in proptest::collection::vec(answer(), 1..6)) {
        let config = SourceConfig::builder("https://auth.example.com/token", "c")
            .signing_key(SigningKey::generate_es256().unwrap())
            .dpop(Dpop::generate().unwrap())
            .build()
            .unwrap();
        let mut call = TokenCall::new(token_request(&config, Grant::ClientCredentials));
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let (mut proofs, mut assertions) = (HashSet::new(), HashSet::new());
        let mut attempts = 0;
        for answer in &answers {
            let request = call.attempt(wall).unwrap();
            attempts += 1;
            let proof = request.headers()["dpop"].to_str().unwrap().to_owned();
            let sent_nonce = claim(&proof, "nonce");
            prop_assert!(proofs.insert(claim(&proof, "jti").unwrap()), "a proof jti was reused");
            let body: Vec<(String, String)> = form_urlencoded::parse(request.body()).into_owned().collect();
            let assertion = body.iter().find(|(k, _)| k == "client_assertion").map(|(_, v)| v.clone()).unwrap();
            prop_assert!(assertions.insert(claim(&assertion, "jti").unwrap()), "an assertion jti was reused");
            let mut response = http::Response::builder().status(answer.status);
            if let Some(nonce) = &answer.nonce {
                response = response.header("dpop-nonce", nonce.as_str());
            }
            let body = answer.error.map(|e| format!(r#"{{"error":"{e}"}}"#)).unwrap_or_default();
            let response = response.body(body.into_bytes()).unwrap();
            let retry = call.retry(&response);
            let valid_nonce = answer.nonce.as_deref().filter(|n| !n.contains('"'));
            let expected = attempts == 1
                && answer.status == 400
                && answer.error == Some("use_dpop_nonce")
                && valid_nonce.is_some()
                && valid_nonce.map(str::to_owned) != sent_nonce;
            prop_assert_eq!(retry, expected, "answer {:?} after {} attempt(s)", answer, attempts);
            if !retry {
                break;
            }
        }
        prop_assert!(attempts <= 2);
    }

    #[test]
    fn the_nonce_cache_keeps_only_valid_nonces_and_the_latest(nonces in proptest::collection::vec(".{0,40}", 1..10)) {
        let dpop = Dpop::generate().unwrap();
        let uri: http::Uri = "https://api.example.com/x".parse().unwrap();
        let mut expected: Option<String> = None;
        for nonce in &nonces {
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_str(nonce) {
                headers.insert("dpop-nonce", value);
                let valid = !nonce.is_empty() && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
                if valid {
                    expected = Some(nonce.clone());
                }
            }
            dpop.observe(&uri, &headers);
            prop_assert_eq!(dpop.nonce_for(&uri).map(|n| n.to_string()), expected.clone());
        }
        let proof = dpop.proof(&http::Method::GET, &uri, None, UNIX_EPOCH + Duration::from_secs(1_800_000_000)).unwrap();
        prop_assert_eq!(proof.nonce().map(str::to_owned), expected);
    }
}
