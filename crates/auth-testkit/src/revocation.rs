//! The revocation endpoint (RFC 7009).

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode};

use crate::client_auth::authenticate;
use crate::state::{lock, Shared};
use crate::tls;
use crate::wire::{param, params, refusal, text};

pub(crate) fn revoke(shared: &Shared, via: &tls::Connection, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.revocations += 1;
    let (params, is_json) = params(headers, body);
    if let Err(method) = authenticate(&mut inner, via, headers, &params, is_json) {
        return refusal(&method);
    }
    if let Some(issued) = param(&params, "token").and_then(|t| inner.tokens.get_mut(t)) {
        issued.revoked = true;
    }
    // RFC 7009 §2.2: unknown tokens are not an error.
    text(StatusCode::OK, "")
}
