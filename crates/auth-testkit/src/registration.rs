//! Dynamic client registration (RFC 7591), with
//! [`ProviderConfig::dynamic_registration`](crate::ProviderConfig::dynamic_registration).

use axum::body::Body;
use axum::http::{header, HeaderMap, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::jose;
use crate::random::random_token;
use crate::state::{lock, Shared};
use crate::wire::{json as answer, oauth_error};

/// `POST /oauth/register`: registers a public client (`none`), a client
/// with a secret (`client_secret_basic`, `client_secret_post`) or with a
/// key (`private_key_jwt` and `jwks`).
pub(crate) fn register(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let mut inner = lock(shared);
    if !inner.config.dynamic_registration {
        return oauth_error(StatusCode::NOT_FOUND, "not_found", "Dynamic client registration is off");
    }
    if let Some(expected) = &inner.config.initial_access_token {
        let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if presented != Some(format!("Bearer {expected}").as_str()) {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", "An initial access token is required");
        }
    }
    let Ok(Value::Object(metadata)) = serde_json::from_slice::<Value>(body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", "The metadata is not a JSON object");
    };
    let method = metadata.get("token_endpoint_auth_method").and_then(Value::as_str).unwrap_or("client_secret_basic");
    let redirects: Vec<&str> = metadata
        .get("redirect_uris")
        .and_then(Value::as_array)
        .map(|uris| uris.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let loopback = |uri: &&str| uri.starts_with("http://127.0.0.1:") || uri.starts_with("http://localhost:");
    if redirects.iter().any(|uri| !uri.starts_with("https://") && !loopback(uri)) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri", "Redirect URIs are https or loopback");
    }
    let client_id = random_token("dyn-");
    let mut registered: Map<String, Value> = metadata.clone();
    registered.insert("client_id".to_owned(), json!(client_id));
    registered.insert("token_endpoint_auth_method".to_owned(), json!(method));
    match method {
        "none" => inner.config.clients.push((client_id.clone(), None)),
        "client_secret_basic" | "client_secret_post" => {
            let secret = random_token("dyn-secret-");
            inner.config.clients.push((client_id.clone(), Some(secret.clone())));
            registered.insert("client_secret".to_owned(), json!(secret));
            registered.insert("client_secret_expires_at".to_owned(), json!(0));
        }
        "private_key_jwt" => {
            let key = metadata
                .get("jwks")
                .and_then(|jwks| jwks.get("keys"))
                .and_then(Value::as_array)
                .and_then(|keys| keys.first())
                .and_then(Value::as_object)
                .map(jose::PublicKey::from_jwk);
            match key {
                Some(Ok(key)) => inner.config.key_clients.push((client_id.clone(), key)),
                _ => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_client_metadata",
                        "private_key_jwt needs jwks",
                    )
                }
            }
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata", "Unsupported auth method"),
    }
    let access = random_token("rat-");
    registered.insert("registration_access_token".to_owned(), json!(access));
    registered.insert("registration_client_uri".to_owned(), json!(format!("{}/oauth/register/{client_id}", inner.url)));
    inner.stats.registrations += 1;
    answer(StatusCode::CREATED, Value::Object(registered))
}
