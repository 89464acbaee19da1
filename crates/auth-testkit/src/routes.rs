//! Which endpoint answers a request.

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode};

use crate::api::{api, api_keys_sent, legacy, resource_metadata};
use crate::authorize::{authorize, push};
use crate::device::device_authorization;
use crate::discovery::discovery;
use crate::records::{keep, ApiRequest};
use crate::registration::register;
use crate::revocation::revoke;
use crate::state::{lock, Server, Shared};
use crate::tls;
use crate::token::token;
use crate::wire::text;

pub(crate) async fn route(State(shared): State<Shared>, request: Request<Body>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 1024 * 1024).await else {
        return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let via = match parts.extensions.get::<tls::Connection>() {
        Some(connection) => connection.clone(),
        None => tls::Connection { base_url: lock(&shared).url.clone(), client_certificate: None },
    };
    match (parts.method.clone(), path.as_str()) {
        (Method::POST, "/oauth/token") => {
            let latency = lock(&shared).faults.latency;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            with_dpop_nonce(&shared, Server::Token, token(&shared, &via, &parts.headers, &body))
        }
        (Method::POST, "/oauth/revoke") => revoke(&shared, &via, &parts.headers, &body),
        (Method::POST, "/oauth/register") => register(&shared, &parts.headers, &body),
        (Method::POST, "/oauth/par") => push(&shared, &via, &parts.headers, &body),
        (Method::GET, "/oauth/authorize") => authorize(&shared, &query),
        (Method::POST, "/oauth/device") => device_authorization(&shared, &via, &parts.headers, &body),
        (Method::GET, "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration") => {
            discovery(&shared)
        }
        (Method::GET, "/.well-known/oauth-protected-resource/api") => resource_metadata(&shared),
        (_, p) if p.starts_with("/api/") => {
            let answer = api(&shared, &via, &parts.method, p, &query, &parts.headers, body.len());
            let answer = with_dpop_nonce(&shared, Server::Api, answer);
            record_api_request(&shared, &parts, &query, body.len(), answer)
        }
        (_, p) if p.starts_with("/legacy/") => {
            let answer = legacy(&shared, &parts.headers);
            record_api_request(&shared, &parts, &query, body.len(), answer)
        }
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Keeps what an API request carried (credential kinds, not values) with
/// the status it was answered.
fn record_api_request(
    shared: &Shared,
    parts: &axum::http::request::Parts,
    query: &str,
    body_bytes: usize,
    answer: Response<Body>,
) -> Response<Body> {
    let mut inner = lock(shared);
    let api_key = inner.config.api_key.as_ref().and_then(|(header, query_name, _)| {
        api_keys_sent(header, query_name.as_deref(), &parts.headers, query).first().map(|(place, _)| *place)
    });
    let authorization_scheme = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(' ').next().unwrap_or_default().to_owned());
    let record = ApiRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        authorization_scheme,
        api_key,
        dpop_proof: parts.headers.contains_key("dpop"),
        body_bytes,
        status: answer.status().as_u16(),
    };
    keep(&mut inner.api_requests, record);
    answer
}

/// Adds `server`'s current DPoP nonce to an answer, when nonces are on.
pub(crate) fn with_dpop_nonce(shared: &Shared, server: Server, mut response: Response<Body>) -> Response<Body> {
    let inner = lock(shared);
    if inner.config.dpop_nonces {
        if let Ok(value) = HeaderValue::from_str(inner.nonce_of(server)) {
            response.headers_mut().insert("dpop-nonce", value);
        }
    }
    response
}
