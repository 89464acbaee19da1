//! The `tracing` spans every driver opens around a token source's work,
//! named and given their fields here once. Target `auth_core`; no field
//! holds a secret (every value comes from a short closed list, or is a
//! number).
//!
//! | span | level | fields |
//! |---|---|---|
//! | `auth.token_request` | INFO | `auth.fetch`, `auth.reason`, `auth.grant`, `auth.outcome`, `auth.error.code` (refused), `auth.error.kind` (failed), `auth.dpop.nonce_retried` |
//! | `auth.store.operation` | DEBUG | `auth.store.op`, `auth.store.operation`, `auth.outcome` (`ok`, `error`, `timeout`) |
//! | `auth.sign_in` | INFO | `auth.flow` (`authorization_code`, `device`), `auth.outcome` (`ok`, `failed`) |
//! | `auth.revocation` | INFO | `auth.outcome` (`ok`, `failed`) |
//!
//! A token request made while callers waited for a token is a child of
//! the first caller's span (the request it was made for, a 401's replay
//! included) and follows from the others'; a renewal made ahead of time
//! has no parent.

use tracing::field::Empty;
use tracing::Span;

use super::names;
use crate::lifecycle::{FetchRequest, RequestOutcome};
use crate::store::{StoreAnswer, StoreError, StoreRequest};

/// The span of `fetch`'s token request, a child of `parent` (a caller's
/// span) or of none.
pub fn token_request(fetch: &FetchRequest, parent: Option<&Span>) -> Span {
    tracing::info_span!(
        target: "auth_core",
        parent: parent.and_then(Span::id),
        "auth.token_request",
        auth.fetch = fetch.id.get(),
        auth.reason = names::reason(fetch.reason),
        auth.grant = names::grant(fetch.grant),
        auth.outcome = Empty,
        auth.error.code = Empty,
        auth.error.kind = Empty,
        auth.dpop.nonce_retried = Empty,
    )
}

/// Records how a token request ended on its span.
pub fn request_ended(span: &Span, outcome: &RequestOutcome) {
    span.record("auth.outcome", outcome.name());
    match outcome {
        RequestOutcome::Refused { code } => {
            span.record("auth.error.code", *code);
        }
        RequestOutcome::Failed { kind, .. } => {
            span.record("auth.error.kind", *kind);
        }
        _ => {}
    }
}

/// Records on a token request's span that a DPoP nonce demand was
/// answered by sending it once more.
pub fn nonce_retried(span: &Span) {
    span.record("auth.dpop.nonce_retried", true);
}

/// The span of a store operation (no parent: it runs for the source, not
/// for one caller).
pub fn store_operation(request: &StoreRequest) -> Span {
    tracing::debug_span!(
        target: "auth_core",
        parent: None,
        "auth.store.operation",
        auth.store.op = request.id.get(),
        auth.store.operation = request.op.kind(),
        auth.outcome = Empty,
    )
}

/// Records how a store operation ended on its span.
pub fn store_ended(span: &Span, answer: &Result<StoreAnswer, StoreError>) {
    span.record("auth.outcome", names::store_outcome(answer));
}

/// The span of a user's sign-in by `flow` (`authorization_code`,
/// `device`), in the caller's span.
pub fn sign_in(flow: &'static str) -> Span {
    tracing::info_span!(target: "auth_core", "auth.sign_in", auth.flow = flow, auth.outcome = Empty)
}

/// The span of a revocation (RFC 7009), in the caller's span.
pub fn revocation() -> Span {
    tracing::info_span!(target: "auth_core", "auth.revocation", auth.outcome = Empty)
}

/// Records on a sign-in's or a revocation's span whether it succeeded.
pub fn ended(span: &Span, ok: bool) {
    span.record("auth.outcome", if ok { "ok" } else { "failed" });
}
