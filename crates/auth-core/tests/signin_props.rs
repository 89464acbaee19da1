//! Property tests of the sign-in pieces: the callback validation of the
//! authorization code flow and the RFC 8628 device poller.

#![allow(clippy::disallowed_methods)] // one real Instant anchors simulated time

use std::time::{Duration, Instant};

use auth_core::secret::{CodeVerifier, ExposeSecret};
use auth_core::sign_in::authorize::{AuthorizationRequest, CallbackError};
use auth_core::sign_in::device::{parse_device_authorization, DevicePoll, DevicePoller, DeviceStatus, SLOW_DOWN_STEP};
use auth_core::{SourceConfig, SourceGrant};
use proptest::prelude::*;

const STATE: &str = "the-state";
const ISSUER: &str = "https://id.example.com";

fn config() -> SourceConfig {
    SourceConfig::builder("https://id.example.com/token", "app").grant(SourceGrant::SignIn).build().unwrap()
}

fn sign_in(issuer_required: bool) -> AuthorizationRequest {
    AuthorizationRequest::builder(&config(), "https://id.example.com/authorize", "http://127.0.0.1:9/cb")
        .issuer(ISSUER)
        .require_issuer_param(issuer_required)
        .resume(STATE, CodeVerifier::new("x".repeat(50)), None)
        .build()
        .unwrap()
}

fn field() -> impl Strategy<Value = (String, String)> {
    let name = prop::sample::select(vec!["code", "state", "iss", "error", "error_description", "other"]);
    let value = prop_oneof![
        Just(STATE.to_owned()),
        Just(ISSUER.to_owned()),
        Just(String::new()),
        "[a-zA-Z0-9%+&=<>\\-]{0,12}",
        any::<String>(),
    ];
    (name, value).prop_map(|(n, v)| (n.to_owned(), v))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// A code is returned exactly when the query holds each parameter at
    /// most once, the right state, no error, a non-empty code, and an `iss`
    /// that is the issuer (or none, when the server does not always send it).
    #[test]
    fn a_code_is_accepted_only_from_the_right_callback(fields in prop::collection::vec(field(), 0..7), issuer_required in any::<bool>()) {
        let request = sign_in(issuer_required);
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(fields.iter());
        let query = query.finish();
        let result = request.handle_callback(&query);
        let count = |name: &str| fields.iter().filter(|(n, _)| n == name).count();
        let value = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let unique = fields.iter().all(|(n, _)| count(n) == 1);
        let iss_ok = match value("iss") {
            Some(iss) => iss == ISSUER,
            None => !issuer_required,
        };
        let should_accept = unique
            && count("error") == 0
            && value("state") == Some(STATE)
            && value("code").is_some_and(|c| !c.is_empty())
            && iss_ok;
        match &result {
            Ok(code) => {
                prop_assert!(should_accept, "accepted {query}");
                prop_assert_eq!(code.expose_secret(), value("code").unwrap());
            }
            Err(error) => {
                prop_assert!(!should_accept, "refused {query}: {error}");
                if unique && value("state").is_some_and(|s| s != STATE) {
                    prop_assert_eq!(error, &CallbackError::StateMismatch);
                }
                // Nothing the callback sent reaches the message unsanitised.
                prop_assert!(!error.to_string().contains(['\r', '\n', '<']));
            }
        }
    }

    /// Arbitrary bytes never panic the callback check.
    #[test]
    fn any_query_is_handled(query in any::<String>()) {
        let _ = sign_in(false).handle_callback(&query);
    }
}

#[derive(Debug, Clone)]
enum Answer {
    Pending,
    SlowDown,
    Transport,
    ServerError,
    Approve,
    Deny,
    Expire,
    Other,
}

fn answer() -> impl Strategy<Value = (Answer, u64)> {
    let kind = prop_oneof![
        6 => Just(Answer::Pending),
        3 => Just(Answer::SlowDown),
        2 => Just(Answer::Transport),
        1 => Just(Answer::ServerError),
        1 => Just(Answer::Approve),
        1 => Just(Answer::Deny),
        1 => Just(Answer::Expire),
        1 => Just(Answer::Other),
    ];
    // How late (ms) after being due the driver gets to the poll, and the answer's delay.
    (kind, 0u64..4_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Driven by a simulated clock against random answers, the poller never
    /// polls before the interval since the last answer, never has two polls
    /// in flight, grows the interval by exactly 5 s per slow_down and never
    /// shrinks it, never polls at or past expiry, and sends nothing after
    /// the flow ended.
    #[test]
    fn the_poller_keeps_the_rfc_8628_rules(
        interval in 1u64..12,
        expires_in in 5u64..400,
        answers in prop::collection::vec(answer(), 1..40),
    ) {
        let config = config();
        let body = format!(
            r#"{{"device_code":"dc","user_code":"U","verification_uri":"https://id.example.com/d","expires_in":{expires_in},"interval":{interval}}}"#
        );
        let authorization =
            parse_device_authorization(&config, http::StatusCode::OK, &http::HeaderMap::new(), body.as_bytes()).unwrap();
        let t0 = Instant::now();
        let expires_at = t0 + Duration::from_secs(expires_in);
        let mut poller = DevicePoller::new(&authorization, t0);
        let mut now = t0;
        let mut earliest = t0 + Duration::from_secs(interval);
        let mut expected_interval = Duration::from_secs(interval);
        let mut over = false;
        for (kind, lateness) in answers {
            let Some(due) = poller.poll_timeout() else {
                prop_assert!(over, "no timeout while the flow goes on");
                prop_assert!(!matches!(poller.poll(&config, now), DevicePoll::Send(_)), "a poll after the end");
                break;
            };
            prop_assert!(due >= earliest.min(expires_at), "poll_timeout before the interval passed");
            // A driver that is late (past expiry, say) asks at once.
            now = due.max(now) + Duration::from_millis(lateness);
            let request = match poller.poll(&config, now) {
                DevicePoll::Send(request) => request,
                DevicePoll::Finished(_) => {
                    prop_assert!(now >= expires_at, "ended early without an answer");
                    over = true;
                    continue;
                }
                DevicePoll::Wait(at) => {
                    prop_assert!(at > now);
                    continue;
                }
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            };
            prop_assert!(!over, "a poll after the end");
            prop_assert!(now >= earliest, "polled before the interval passed");
            prop_assert!(now < expires_at, "polled at or past expiry");
            prop_assert!(std::str::from_utf8(request.body()).unwrap().contains("device_code=dc"));
            prop_assert!(poller.poll_timeout().is_none(), "a second poll while one is in flight");
            prop_assert!(matches!(poller.poll(&config, now), DevicePoll::Wait(_)));
            // The answer comes back a little later.
            now += Duration::from_millis(lateness / 2);
            let reply = |status: u16, body: &str| {
                let mut response = http::Response::new(body.as_bytes().to_vec());
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                response
            };
            let before = poller.interval();
            let status = match kind {
                Answer::Transport => {
                    poller.handle_failed(now);
                    None
                }
                Answer::Pending => Some(poller.handle_response(&config, now, &reply(400, r#"{"error":"authorization_pending"}"#))),
                Answer::SlowDown => Some(poller.handle_response(&config, now, &reply(400, r#"{"error":"slow_down"}"#))),
                Answer::ServerError => Some(poller.handle_response(&config, now, &reply(503, "down"))),
                Answer::Approve => Some(poller.handle_response(&config, now, &reply(200, r#"{"access_token":"a"}"#))),
                Answer::Deny => Some(poller.handle_response(&config, now, &reply(400, r#"{"error":"access_denied"}"#))),
                Answer::Expire => Some(poller.handle_response(&config, now, &reply(400, r#"{"error":"expired_token"}"#))),
                Answer::Other => Some(poller.handle_response(&config, now, &reply(401, r#"{"error":"invalid_client"}"#))),
            };
            prop_assert!(poller.interval() >= before, "the interval shrank");
            match status {
                Some(DeviceStatus::SlowDown { interval }) => {
                    expected_interval = (expected_interval + SLOW_DOWN_STEP).min(Duration::from_secs(120));
                    prop_assert_eq!(interval, expected_interval);
                }
                Some(DeviceStatus::Approved) | Some(DeviceStatus::Finished(_)) => over = true,
                Some(DeviceStatus::Pending) | None => {}
                Some(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
            prop_assert_eq!(poller.interval(), expected_interval);
            earliest = now + poller.interval();
        }
    }
}
