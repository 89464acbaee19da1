//! The authorization endpoint, and the code it issues.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode};
use base64::Engine as _;

use crate::random::random_token;
use crate::state::{lock, Inner, PendingCode, Shared};
use crate::wire::Refused;
use crate::wire::{json, oauth_error, param, query_param, redirect, text};

/// `GET /oauth/authorize`: checks the request, then signs the test user in
/// and redirects back with a code (or `access_denied`).
pub(crate) fn authorize(shared: &Shared, query: &str) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.authorizations += 1;
    let query = match resolve(&mut inner, query) {
        Ok(query) => query,
        Err(why) => return text(StatusCode::BAD_REQUEST, why),
    };
    let query = query.as_str();
    let get = |name| query_param(query, name);
    let client_id = get("client_id").unwrap_or_default();
    if !inner.config.clients.iter().any(|(id, _)| *id == client_id) {
        // Never redirect for an unknown client (RFC 6749 §4.1.2.1).
        return text(StatusCode::BAD_REQUEST, "unknown client_id");
    }
    let Some(redirect_uri) =
        get("redirect_uri").filter(|r| r.starts_with("http://127.0.0.1:") || r.starts_with("https://"))
    else {
        return text(StatusCode::BAD_REQUEST, "missing or unregistered redirect_uri");
    };
    let state = get("state").unwrap_or_default();
    let issuer = inner.issuer();
    let send_iss = inner.config.send_iss;
    let answer = |params: Vec<(&str, &str)>| {
        let mut all: Vec<(&str, &str)> = params.clone();
        if !state.is_empty() {
            all.push(("state", state.as_str()));
        }
        if send_iss {
            all.push(("iss", issuer.as_str()));
        }
        redirect(&redirect_uri, &all)
    };
    if get("response_type").as_deref() != Some("code") {
        return answer(vec![("error", "unsupported_response_type")]);
    }
    let Some(challenge) = get("code_challenge").filter(|c| c.len() >= 43) else {
        return answer(vec![("error", "invalid_request"), ("error_description", "PKCE code_challenge required")]);
    };
    if get("code_challenge_method").as_deref() != Some("S256") {
        return answer(vec![("error", "invalid_request"), ("error_description", "code_challenge_method must be S256")]);
    }
    if inner.config.deny_sign_in {
        return answer(vec![("error", "access_denied"), ("error_description", "The user denied the request")]);
    }
    let code = random_token("code_");
    let pending = PendingCode {
        client_id,
        redirect_uri: redirect_uri.clone(),
        challenge,
        scope: get("scope"),
        user: inner.config.user.clone(),
        // The first class asked for is the one the test user reaches.
        acr: get("acr_values").and_then(|acr| acr.split(' ').next().map(str::to_owned)),
        expires_at: Instant::now() + Duration::from_secs(60),
    };
    inner.codes.insert(code.clone(), pending);
    answer(vec![("code", &code)])
}

/// The authorization code grant: the code once, for the client and
/// redirect URI it was issued to, with the PKCE verifier that matches.
pub(crate) fn redeem_code(
    inner: &mut Inner,
    client_id: &str,
    params: &[(String, String)],
) -> Result<(Option<String>, String, Option<String>), Refused> {
    let invalid = |description| ("invalid_grant", description);
    // A code is used once, whatever the outcome.
    let pending =
        inner.codes.remove(param(params, "code").unwrap_or("")).ok_or_else(|| invalid("Unknown or used code"))?;
    if pending.client_id != client_id || Instant::now() >= pending.expires_at {
        return Err(invalid("The code was issued to another client or expired"));
    }
    if param(params, "redirect_uri") != Some(pending.redirect_uri.as_str()) {
        return Err(invalid("redirect_uri does not match the authorization request"));
    }
    let verifier = param(params, "code_verifier").unwrap_or("");
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
    if verifier.is_empty() || challenge != pending.challenge {
        return Err(invalid("PKCE verification failed"));
    }
    Ok((pending.scope, pending.user, pending.acr))
}

/// `POST /oauth/par` (RFC 9126): authenticates the client, keeps the
/// authorization request's parameters for 60 s, and answers the
/// `request_uri` that stands for them (once).
pub(crate) fn push(shared: &Shared, via: &crate::tls::Connection, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let mut inner = lock(shared);
    if inner.config.par.is_none() {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    let (params, is_json) = crate::wire::params(headers, body);
    let client_id = match crate::client_auth::authenticate(&mut inner, via, headers, &params, is_json) {
        Ok((_, client_id)) => client_id,
        Err(_) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed"),
    };
    if param(&params, "request_uri").is_some() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "request_uri cannot be pushed");
    }
    // The request's own parameters: not the client's authentication.
    let mut kept = form_urlencoded::Serializer::new(String::new());
    for (name, value) in &params {
        if !matches!(name.as_str(), "client_id" | "client_secret" | "client_assertion" | "client_assertion_type") {
            kept.append_pair(name, value);
        }
    }
    kept.append_pair("client_id", &client_id);
    let request_uri = format!("urn:ietf:params:oauth:request_uri:{}", random_token(""));
    let expires_at = Instant::now() + Duration::from_secs(60);
    inner.pushed.insert(request_uri.clone(), (client_id, kept.finish(), expires_at));
    inner.stats.pushed_requests += 1;
    json(StatusCode::CREATED, serde_json::json!({ "request_uri": request_uri, "expires_in": 60 }))
}

/// The authorization request `query` stands for: its pushed parameters
/// when it names a `request_uri` (used once, by its client, in time), or
/// itself; `Err` when pushing is required and it was not pushed.
fn resolve(inner: &mut Inner, query: &str) -> Result<String, &'static str> {
    let Some(request_uri) = query_param(query, "request_uri") else {
        return match inner.config.par {
            Some(true) => Err("pushed authorization requests are required (RFC 9126)"),
            _ => Ok(query.to_owned()),
        };
    };
    let client_id = query_param(query, "client_id").unwrap_or_default();
    match inner.pushed.remove(&request_uri) {
        Some((pushed_by, kept, expires_at)) if pushed_by == client_id && Instant::now() < expires_at => Ok(kept),
        _ => Err("unknown, used or expired request_uri"),
    }
}
