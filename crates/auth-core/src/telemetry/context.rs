//! The trace context carried into the token endpoint (feature
//! `trace-context`): the span's OpenTelemetry context (through
//! `tracing-opentelemetry`) written into the request's headers by the
//! propagator the user installed.

use opentelemetry_http::HeaderInjector;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Writes `span`'s trace context into `headers` with the global
/// propagator (none by default: then nothing is written).
pub(super) fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    let context = span.context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}
