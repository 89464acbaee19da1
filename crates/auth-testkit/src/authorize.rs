//! The authorization endpoint, and the code it issues.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Response, StatusCode};
use base64::Engine as _;

use crate::random::random_token;
use crate::state::{lock, Inner, PendingCode, Shared};
use crate::wire::Refused;
use crate::wire::{param, query_param, redirect, text};

/// `GET /oauth/authorize`: checks the request, then signs the test user in
/// and redirects back with a code (or `access_denied`).
pub(crate) fn authorize(shared: &Shared, query: &str) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.authorizations += 1;
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
) -> Result<(Option<String>, String), Refused> {
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
    Ok((pending.scope, pending.user))
}
