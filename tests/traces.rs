//! The spans of token requests, store operations and revocations, read
//! back, and the trace context carried to the token endpoint (feature
//! `trace-context`). One subscriber for the whole binary, installed as the
//! global default the way an application installs it: a scoped default
//! per test races with the other tests' threads over tracing's callsite
//! cache. Each test finds its own spans by the caller's span they belong to.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use auth_core::SourceConfig;
use auth_testkit::spans::{SpanLog, SpanRecord};

fn config() -> SourceConfig {
    SourceConfig::builder("https://auth.example.com/token", "metrics-client")
        .client_secret("the-secret")
        .build()
        .unwrap()
}

type Endpoint = tower::util::BoxCloneSyncService<http::Request<Vec<u8>>, http::Response<String>, Infallible>;

/// The spans of every test of this binary: tracing-opentelemetry and a
/// log, the W3C propagator installed (once).
fn spans() -> &'static SpanLog {
    static SPANS: OnceLock<SpanLog> = OnceLock::new();
    SPANS.get_or_init(|| {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder().build().tracer("test");
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let spans = SpanLog::default();
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)).with(spans.clone());
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this binary");
        spans
    })
}

/// The spans named `name` whose parent is the span named `parent`.
fn children(spans: &SpanLog, name: &str, parent: &str) -> Vec<SpanRecord> {
    spans.named(name).into_iter().filter(|span| span.parent.as_deref() == Some(parent)).collect()
}

/// Tokens of `expires_in` seconds (`tok-N`), and the headers of every
/// token request.
fn recording_endpoint(calls: &Arc<AtomicUsize>, headers: &Arc<Mutex<Vec<http::HeaderMap>>>) -> Endpoint {
    let (calls, headers) = (Arc::clone(calls), Arc::clone(headers));
    tower::util::BoxCloneSyncService::new(tower::service_fn(move |request: http::Request<Vec<u8>>| {
        headers.lock().unwrap().push(request.headers().clone());
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, Infallible>(http::Response::new(format!(r#"{{"access_token":"tok-{n}","expires_in":2}}"#))) }
    }))
}

/// No span field holds a token or the client secret.
fn spans_hold_no_secret(spans: &SpanLog) {
    let all = spans.all();
    assert!(!all.is_empty());
    for span in all {
        let text = format!("{span:?}");
        assert!(!["tok-", "the-secret", "app-secret", "Bearer"].iter().any(|secret| text.contains(secret)), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_token_request_is_traced_in_the_callers_span_and_carries_its_trace_context() {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing::Instrument as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let spans = spans();

    let (calls, headers) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let store = auth_core::store::MemoryStore::new();
    let source = auth_tower::TokenSource::builder(config(), recording_endpoint(&calls, &headers))
        .store(store, auth_core::store::StoreConfig::default())
        .build()
        .unwrap();
    let request = tracing::info_span!("GET /orders");
    let trace_id = request.context().span().span_context().trace_id();
    source.token().instrument(request).await.unwrap();
    source.flush().await;

    let traced = children(spans, "auth.token_request", "GET /orders");
    assert_eq!(traced.len(), 1, "a child of the caller's request: {traced:?}");
    assert_eq!(traced[0].field("auth.reason"), Some("no_token"));
    assert_eq!(traced[0].field("auth.outcome"), Some("ok"));
    let operations: Vec<_> = spans
        .named("auth.store.operation")
        .iter()
        .map(|s| s.field("auth.store.operation").unwrap().to_owned())
        .collect();
    assert!(
        operations.contains(&"acquire_lease".to_owned()) && operations.contains(&"write".to_owned()),
        "{operations:?}"
    );
    assert!(spans.named("auth.store.operation").iter().any(|s| s.field("auth.outcome") == Some("ok")));
    // The token endpoint saw the caller's trace, and the token request's span.
    let sent = headers.lock().unwrap();
    let traceparent = sent[0].get("traceparent").expect("traceparent sent").to_str().unwrap().to_owned();
    assert!(traceparent.starts_with(&format!("00-{trace_id}-")), "{traceparent} in trace {trace_id}");
    spans_hold_no_secret(spans);
}

#[test]
fn blocking_token_requests_revocations_and_store_operations_are_traced() {
    let spans = spans();
    let config = SourceConfig::builder("https://auth.example.com/token", "metrics-client")
        .client_secret("the-secret")
        .revocation_url("https://auth.example.com/revoke")
        .build()
        .unwrap();
    let transport = |request: http::Request<Vec<u8>>| {
        let body = match request.uri().path() {
            "/revoke" => Vec::new(),
            _ => br#"{"access_token":"tok-1","expires_in":60}"#.to_vec(),
        };
        Ok::<_, auth_blocking::TransportError>(http::Response::new(body))
    };
    let source = auth_blocking::BlockingTokenSource::builder(config, transport)
        .store(auth_core::store::MemoryStore::new(), auth_core::store::StoreConfig::default())
        .build()
        .unwrap();
    tracing::info_span!("job").in_scope(|| source.token().unwrap());
    source.revoke().unwrap();
    source.flush();
    let request = children(spans, "auth.token_request", "job").pop().expect("a token request span in the job's");
    assert_eq!(request.field("auth.outcome"), Some("ok"));
    assert_eq!(request.field("auth.grant"), Some("client_credentials"));
    let revocations = spans.named("auth.revocation");
    assert!(revocations.iter().any(|span| span.field("auth.outcome") == Some("ok")), "{revocations:?}");
    assert!(!spans.named("auth.store.operation").is_empty());
    spans_hold_no_secret(spans);
}
