use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_testkit::spans::SpanLog;
use tracing_subscriber::layer::SubscriberExt as _;

use super::*;
use crate::lifecycle::{Lifecycle, Output, RequestOutcome};
use crate::store::{StoreOp, StoreOpId};

fn fetch() -> FetchRequest {
    let config = crate::SourceConfig::builder("https://a.example/token", "id").client_secret("s3cret").build().unwrap();
    let mut lifecycle = Lifecycle::new(Arc::new(config), 1);
    let _ = lifecycle.handle_token_wanted(Instant::now());
    loop {
        match lifecycle.poll_output() {
            Some(Output::Fetch(fetch)) => return fetch,
            Some(_) => {}
            None => panic!("no fetch"),
        }
    }
}

fn traced(test: impl FnOnce()) -> SpanLog {
    let log = SpanLog::default();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(log.clone()), test);
    log
}

#[test]
fn a_token_request_is_a_child_of_the_first_waiting_caller_and_follows_from_the_others() {
    let log = traced(|| {
        let mut telemetry = Telemetry::default();
        let caller = |name: &str| tracing::info_span!("caller", name = name.to_owned());
        // Answered at once: never linked.
        telemetry.caller(tracing::info_span!("served"), false);
        telemetry.caller(caller("first"), true);
        telemetry.caller(caller("second"), true);
        let span = telemetry.token_request(&fetch());
        // A caller that comes while the request is in flight follows too.
        telemetry.caller(tracing::info_span!("late"), true);
        let sending = telemetry.sending(span);
        sending.nonce_retry();
        telemetry.observed(&Observation::TokenRequest {
            reason: crate::FetchReason::NoToken,
            grant: crate::GrantKind::ClientCredentials,
            outcome: RequestOutcome::Refused { code: "invalid_client" },
            took: Duration::from_millis(5),
        });
        // The next request has no caller: no parent.
        telemetry.caller(tracing::info_span!("answered-later"), true);
        telemetry.answered();
        telemetry.token_request(&fetch());
    });
    let requests = log.named("auth.token_request");
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.target, "auth_core");
    assert_eq!(first.parent.as_deref(), Some("caller"));
    assert_eq!(first.follows, ["caller", "late"]);
    for (field, value) in [
        ("auth.reason", "no_token"),
        ("auth.grant", "client_credentials"),
        ("auth.outcome", "refused"),
        ("auth.error.code", "invalid_client"),
        ("auth.dpop.nonce_retried", "true"),
    ] {
        assert_eq!(first.field(field), Some(value), "{field} in {first:?}");
    }
    assert_eq!(requests[1].parent, None);
    assert!(requests[1].follows.is_empty());
    for span in log.all() {
        assert!(!format!("{span:?}").contains("s3cret"), "{span:?}");
    }
}

#[test]
fn a_store_operation_records_its_kind_and_outcome() {
    let log = traced(|| {
        let telemetry = Telemetry::default();
        let request = StoreRequest { id: StoreOpId(7), op: StoreOp::Read };
        let operation = telemetry.store_operation(&request);
        operation.ended(&Err(StoreError::timeout(Duration::from_secs(1))), Duration::from_secs(1));
        let revocation = spans::revocation();
        spans::ended(&revocation, true);
    });
    let store = log.named("auth.store.operation").pop().unwrap();
    assert_eq!(store.field("auth.store.operation"), Some("read"));
    assert_eq!(store.field("auth.store.op"), Some("7"));
    assert_eq!(store.field("auth.outcome"), Some("timeout"));
    assert_eq!(log.named("auth.revocation").pop().unwrap().field("auth.outcome"), Some("ok"));
}
