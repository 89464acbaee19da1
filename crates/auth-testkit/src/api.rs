//! The protected API and the legacy Basic one.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use base64::Engine as _;

use crate::jose;
use crate::state::{lock, Inner, Server, Shared};
use crate::tls;
use crate::wire::{json, oauth_error, text};

pub(crate) fn api(
    shared: &Shared,
    via: &tls::Connection,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body_len: usize,
) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.api_calls += 1;
    if let Some((header_name, query_name, key)) = &inner.config.api_key {
        let sent = api_keys_sent(header_name, query_name.as_deref(), headers, query);
        if !sent.iter().any(|(_, value)| value.as_deref() == Some(key.as_str())) {
            return oauth_error(StatusCode::FORBIDDEN, "invalid_api_key", "A valid API key is required");
        }
    }
    if !inner.config.api_requires_token {
        let body = serde_json::json!({ "ok": true, "method": method.as_str(), "path": path, "body_bytes": body_len });
        return json(StatusCode::OK, body);
    }
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, presented) = authorization.split_once(' ').unwrap_or(("", ""));
    let valid = inner
        .tokens
        .get(presented)
        .filter(|issued| issued.is_live_access_token())
        .map(|issued| (issued.jkt.clone(), issued.x5t.clone()));
    // A certificate-bound token needs a connection made with its certificate.
    if let Some((_, Some(x5t))) = &valid {
        if via.client_certificate.as_ref() != Some(x5t) {
            inner.stats.certificate_binding_refused += 1;
            inner.stats.api_unauthorized += 1;
            let mut response = oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "The certificate-bound token was not sent over a connection with its client certificate",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            return response;
        }
    }
    let valid = valid.map(|(jkt, _)| jkt);
    // A DPoP-bound token needs the DPoP scheme and a proof of its key.
    let refusal = match (&valid, scheme.to_ascii_lowercase().as_str()) {
        (Some(Some(jkt)), "dpop") => {
            let htu = format!("{}{path}", via.base_url);
            api_proof(&mut inner, headers, method, &htu, presented, jkt).err().map(|refusal| *refusal)
        }
        (Some(Some(_)), _) => {
            Some(dpop_challenge(&mut inner, "invalid_token", "The DPoP-bound token was not sent with the DPoP scheme"))
        }
        (Some(None), "bearer") => None,
        _ => Some(bearer_refusal(&mut inner)),
    };
    let valid = if refusal.is_none() { inner.tokens.get(presented) } else { None };
    if let Some(refusal) = refusal {
        return refusal;
    }
    if let Some((status, error, description, param)) = valid.and_then(|issued| resource_refusal(&inner, method, issued))
    {
        let params: Vec<(&str, &str)> = param.iter().map(|(name, value)| (*name, value.as_str())).collect();
        return challenge(&mut inner, status, error, description, &params);
    }
    match valid {
        Some(issued) => {
            let body = serde_json::json!({
                "ok": true,
                "method": method.as_str(),
                "path": path,
                "client_id": issued.client_id,
                "user": issued.user,
                "scope": issued.scope,
                "body_bytes": body_len,
            });
            json(StatusCode::OK, body)
        }
        None => bearer_refusal(&mut inner),
    }
}

/// The API keys a request carries where the configured key may come: its
/// header (the value when it is text), then each value of its query
/// parameter, each with where it came (`header`, `query`).
pub(crate) fn api_keys_sent(
    header_name: &str,
    query_name: Option<&str>,
    headers: &HeaderMap,
    query: &str,
) -> Vec<(&'static str, Option<String>)> {
    let in_header = headers.get(header_name).map(|v| ("header", v.to_str().ok().map(str::to_owned)));
    let in_query = query_name.into_iter().flat_map(|name| {
        form_urlencoded::parse(query.as_bytes())
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| ("query", Some(v.into_owned())))
    });
    in_header.into_iter().chain(in_query).collect()
}

/// A refusal of a valid token: its status, error, description and the
/// challenge parameter naming what is needed.
type Refusal = (StatusCode, &'static str, &'static str, Option<(&'static str, String)>);

/// Why a valid token does not open the API: a user's sign-in below the
/// authentication level it wants (RFC 9470), issued for another resource
/// (RFC 8707), or without the scopes the method needs (RFC 6750 §3.1).
fn resource_refusal(inner: &Inner, method: &Method, issued: &crate::state::Issued) -> Option<Refusal> {
    if let Some(wanted) =
        inner.config.api_acr.clone().filter(|acr| issued.user.is_some() && issued.acr.as_ref() != Some(acr))
    {
        let description = "A different authentication level is required";
        return Some((
            StatusCode::UNAUTHORIZED,
            "insufficient_user_authentication",
            description,
            Some(("acr_values", wanted)),
        ));
    }
    let resource = format!("{}/api", inner.url);
    if inner.config.protected_resource && issued.resource.as_deref() != Some(resource.as_str()) {
        return Some((StatusCode::UNAUTHORIZED, "invalid_token", "The token was not issued for this resource", None));
    }
    let (read, write) = inner.config.api_scopes.as_ref()?;
    let needed = if matches!(*method, Method::GET | Method::HEAD) { read.clone() } else { format!("{read} {write}") };
    let granted = issued.scope.as_deref().unwrap_or("");
    let missing = needed.split(' ').filter(|s| !s.is_empty()).any(|s| !granted.split(' ').any(|g| g == s));
    missing.then_some((StatusCode::FORBIDDEN, "insufficient_scope", "The token lacks a scope", Some(("scope", needed))))
}

/// An answer with a Bearer challenge: `error`, `params` (the `scope` or
/// `acr_values` needed), and the metadata's URL when the API describes
/// itself.
fn challenge(
    inner: &mut Inner,
    status: StatusCode,
    error: &str,
    description: &str,
    params: &[(&str, &str)],
) -> Response<Body> {
    match status {
        StatusCode::UNAUTHORIZED => inner.stats.api_unauthorized += 1,
        StatusCode::FORBIDDEN => inner.stats.api_forbidden += 1,
        _ => {}
    }
    let mut response = oauth_error(status, error, description);
    let mut value = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    for (name, param) in params {
        value.push_str(&format!(", {name}=\"{param}\""));
    }
    if inner.config.protected_resource {
        value.push_str(&format!(", resource_metadata=\"{}/.well-known/oauth-protected-resource/api\"", inner.url));
    }
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The 401 for a missing, unknown, expired or revoked token.
pub(crate) fn bearer_refusal(inner: &mut Inner) -> Response<Body> {
    challenge(inner, StatusCode::UNAUTHORIZED, "invalid_token", "The access token is missing, expired or revoked", &[])
}

/// The API's protected resource metadata (RFC 9728 §2), when it describes itself.
pub(crate) fn resource_metadata(shared: &Shared) -> Response<Body> {
    let mut inner = lock(shared);
    if !inner.config.protected_resource {
        return text(StatusCode::NOT_FOUND, "not found");
    }
    inner.stats.resource_metadata_requests += 1;
    let mut document = serde_json::json!({
        "resource": format!("{}/api", inner.url),
        "authorization_servers": [inner.config.resource_authorization_server.clone().unwrap_or_else(|| inner.issuer())],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
        "resource_name": "The embedded provider's API",
    });
    if let Some((read, write)) = &inner.config.api_scopes {
        let scopes: Vec<&str> = read.split(' ').chain(write.split(' ')).filter(|s| !s.is_empty()).collect();
        document["scopes_supported"] = serde_json::json!(scopes);
    }
    json(StatusCode::OK, document)
}

/// A 401 with a `WWW-Authenticate: DPoP` challenge.
pub(crate) fn dpop_challenge(inner: &mut Inner, error: &str, description: &str) -> Response<Body> {
    inner.stats.api_unauthorized += 1;
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, error, description);
    let challenge =
        format!("DPoP error=\"{error}\", error_description=\"{description}\", algs=\"ES256 RS256 PS256 EdDSA\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// Checks the DPoP proof of an API request made with the token bound to `jkt`.
pub(crate) fn api_proof(
    inner: &mut Inner,
    headers: &HeaderMap,
    method: &Method,
    htu: &str,
    token: &str,
    jkt: &str,
) -> Result<(), Box<Response<Body>>> {
    let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
        inner.stats.dpop_proofs_refused += 1;
        return Err(Box::new(dpop_challenge(
            inner,
            "invalid_dpop_proof",
            "A DPoP proof is required with a DPoP-bound token",
        )));
    };
    let nonce = inner.config.dpop_nonces.then(|| inner.nonce_of(Server::Api).to_owned());
    let check = jose::ProofCheck { method: method.as_str(), htu, access_token: Some(token), nonce: nonce.as_deref() };
    match jose::verify_proof(proof, &check, &mut inner.seen_assertions) {
        Ok(proved) if proved == jkt => Ok(()),
        Ok(_) => {
            inner.stats.dpop_proofs_refused += 1;
            Err(Box::new(dpop_challenge(inner, "invalid_token", "The token is bound to another key")))
        }
        Err(jose::ProofError::UseNonce) => {
            inner.stats.dpop_nonce_challenges += 1;
            Err(Box::new(dpop_challenge(inner, "use_dpop_nonce", "Resource server requires nonce in DPoP proof")))
        }
        Err(jose::ProofError::Invalid(why)) => {
            inner.stats.dpop_proofs_refused += 1;
            inner.last_refusal = Some(why);
            Err(Box::new(dpop_challenge(inner, "invalid_dpop_proof", "The DPoP proof was refused")))
        }
    }
}

pub(crate) fn legacy(shared: &Shared, headers: &HeaderMap) -> Response<Body> {
    let inner = lock(shared);
    let Some((user, password)) = &inner.config.basic_login else {
        return text(StatusCode::NOT_FOUND, "no legacy API configured");
    };
    let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str()) {
        json(StatusCode::OK, serde_json::json!({ "ok": true, "user": user }))
    } else {
        let mut response = text(StatusCode::UNAUTHORIZED, "Basic credentials required");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"legacy\""));
        response
    }
}
