//! The token endpoint: every grant, and the tokens it issues.

use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::authorize::redeem_code;
use crate::client_auth::authenticate;
use crate::device::poll_device;
use crate::jose;
use crate::random::random_token;
use crate::records::{Fault, TokenRequest};
use crate::state::{lock, Inner, Issued, Shared};
use crate::tls;
use crate::wire::{html, json, oauth_error, param, params, refusal};

pub(crate) fn token(shared: &Shared, via: &tls::Connection, headers: &HeaderMap, body: &[u8]) -> Response<Body> {
    let mut inner = lock(shared);
    inner.stats.token_requests += 1;
    let (params, is_json) = params(headers, body);
    let mut record = TokenRequest {
        grant_type: param(&params, "grant_type").unwrap_or("").to_owned(),
        client_auth: "unknown".to_owned(),
        client_certificate: via.client_certificate.clone(),
        client_id: param(&params, "client_id").map(str::to_owned),
        scope: param(&params, "scope").map(str::to_owned),
        audience: param(&params, "audience").map(str::to_owned),
        resources: params.iter().filter(|(k, _)| k == "resource").map(|(_, v)| v.clone()).collect(),
        params: params
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "client_secret"
                        | "refresh_token"
                        | "code"
                        | "code_verifier"
                        | "device_code"
                        | "client_assertion"
                        | "assertion"
                        | "subject_token"
                        | "actor_token"
                )
            })
            .cloned()
            .collect(),
        assertion_ids: ["client_assertion", "assertion"]
            .iter()
            .filter_map(|name| param(&params, name).and_then(|jwt| jose::unverified_claim(jwt, "jti")))
            .collect(),
        refusal: None,
        status: 200,
    };
    inner.last_refusal = None;
    let response = if inner.faults.remaining > 0 {
        inner.faults.remaining -= 1;
        match inner.faults.fault {
            Some(Fault::TooManyRequests { retry_after }) => {
                let mut response = oauth_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", "slow down");
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
            Some(Fault::Unavailable) => html(StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable"),
            _ => html(StatusCode::INTERNAL_SERVER_ERROR, "500 Internal Server Error"),
        }
    } else {
        match authenticate(&mut inner, via, headers, &params, is_json) {
            Err(method) => {
                let response = refusal(&method);
                record.client_auth = method;
                response
            }
            Ok((method, client_id)) => {
                record.client_auth = method;
                record.client_id = Some(client_id.clone());
                let token_url = format!("{}/oauth/token", via.base_url);
                match token_endpoint_proof(&mut inner, headers, &token_url) {
                    Ok(jkt) => issue(&mut inner, &client_id, &params, jkt, via.client_certificate.clone()),
                    Err(refusal) => *refusal,
                }
            }
        }
    };
    record.status = response.status().as_u16();
    record.refusal = inner.last_refusal.take();
    crate::records::keep(&mut inner.requests, record);
    response
}

/// Checks the DPoP proof of a token request: the key to bind the token to
/// (none without a proof), or the answer that refuses it.
pub(crate) fn token_endpoint_proof(
    inner: &mut Inner,
    headers: &HeaderMap,
    token_url: &str,
) -> Result<Option<String>, Box<Response<Body>>> {
    let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
        if inner.config.require_dpop {
            inner.stats.dpop_proofs_refused += 1;
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "A DPoP proof is required",
            )));
        }
        return Ok(None);
    };
    let nonce = inner.config.dpop_nonces.then(|| inner.dpop_nonce.clone());
    let check = jose::ProofCheck { method: "POST", htu: token_url, access_token: None, nonce: nonce.as_deref() };
    match jose::verify_proof(proof, &check, &mut inner.seen_assertions) {
        Ok(jkt) => Ok(Some(jkt)),
        Err(jose::ProofError::UseNonce) => {
            inner.stats.dpop_nonce_challenges += 1;
            Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof",
            )))
        }
        Err(jose::ProofError::Invalid(why)) => {
            inner.stats.dpop_proofs_refused += 1;
            inner.last_refusal = Some(why);
            Err(Box::new(oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", "The DPoP proof was refused")))
        }
    }
}

/// Issues tokens bound to the DPoP key `jkt` and the client certificate
/// `x5t` (RFC 8705 §3), when given.
pub(crate) fn issue(
    inner: &mut Inner,
    client_id: &str,
    params: &[(String, String)],
    jkt: Option<String>,
    x5t: Option<String>,
) -> Response<Body> {
    let lifetime = inner.config.token_lifetime;
    let mut scope = param(params, "scope").map(str::to_owned);
    let mut resource = param(params, "resource").map(str::to_owned);
    let mut acr: Option<String> = None;
    let mut user: Option<String> = None;
    // A token exchange's `issued_token_type`.
    let mut issued_type: Option<&'static str> = None;
    // Whether the answer carries a (new) refresh token: for `offline_access`
    // with client credentials, always with a user's sign-in, and with a
    // refresh grant when tokens rotate.
    let new_refresh_token = match param(params, "grant_type") {
        Some("client_credentials") => {
            let offline = scope.as_deref().is_some_and(|s| s.split(' ').any(|w| w == "offline_access"));
            offline && inner.config.refresh_tokens
        }
        Some("refresh_token") => {
            let presented = param(params, "refresh_token").unwrap_or("");
            let rotate = inner.config.rotate_refresh_tokens;
            match inner.tokens.get_mut(presented) {
                Some(issued) if issued.jkt.is_some() && issued.jkt != jkt => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The refresh token is bound to another DPoP key",
                    );
                }
                Some(issued) if issued.refresh && !issued.revoked && issued.client_id == client_id => {
                    scope = issued.scope.clone();
                    user = issued.user.clone();
                    resource = resource.or_else(|| issued.resource.clone());
                    acr = issued.acr.clone();
                    // Rotation: this refresh token is spent.
                    issued.revoked |= rotate;
                    rotate
                }
                _ => {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        "The refresh token is invalid, expired or revoked",
                    )
                }
            }
        }
        Some("authorization_code") => match redeem_code(inner, client_id, params) {
            Ok((granted, signed_in, level)) => {
                scope = granted;
                user = Some(signed_in);
                acr = level;
                inner.config.refresh_tokens
            }
            Err((code, description)) => return oauth_error(StatusCode::BAD_REQUEST, code, description),
        },
        Some("urn:ietf:params:oauth:grant-type:device_code") => match poll_device(inner, client_id, params) {
            Ok(granted) => {
                scope = granted;
                user = Some(inner.config.user.clone());
                inner.config.refresh_tokens
            }
            Err((code, description)) => return oauth_error(StatusCode::BAD_REQUEST, code, description),
        },
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => match bearer_subject(inner, params) {
            Ok(subject) => {
                user = Some(subject);
                false
            }
            Err(why) => {
                inner.last_refusal = Some(why);
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "The assertion was refused");
            }
        },
        Some(crate::exchange::GRANT) => match crate::exchange::exchange(inner, params) {
            Ok(exchanged) => {
                user = Some(match exchanged.actor {
                    Some(actor) => format!("{} (by {actor})", exchanged.subject),
                    None => exchanged.subject,
                });
                issued_type = Some(exchanged.issued_type);
                inner.stats.exchanges += 1;
                false
            }
            Err((code, why)) => {
                inner.last_refusal = Some(why);
                return oauth_error(StatusCode::BAD_REQUEST, code, "The token exchange was refused");
            }
        },
        _ => return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only client_credentials, refresh_token, authorization_code, device_code, jwt-bearer and token-exchange",
        ),
    };
    let mut refresh = None;
    if new_refresh_token {
        let value = random_token("rt_");
        let issued = Issued {
            client_id: client_id.to_owned(),
            user: user.clone(),
            scope: scope.clone(),
            expires_at: None,
            refresh: true,
            revoked: false,
            jkt: jkt.clone(),
            x5t: x5t.clone(),
            resource: resource.clone(),
            acr: acr.clone(),
        };
        inner.keep_token(value.clone(), issued);
        refresh = Some(value);
    }
    let access = random_token("at_");
    if inner.config.one_active_token {
        for issued in inner.tokens.values_mut().filter(|issued| issued.client_id == client_id && !issued.refresh) {
            issued.revoked = true;
        }
    }
    inner.keep_token(
        access.clone(),
        Issued {
            client_id: client_id.to_owned(),
            user: user.clone(),
            scope: scope.clone(),
            expires_at: Some(Instant::now() + lifetime),
            refresh: false,
            revoked: false,
            jkt: jkt.clone(),
            x5t,
            resource,
            acr,
        },
    );
    inner.stats.tokens_issued += 1;
    let token_type = match (issued_type, jkt.is_some()) {
        // RFC 8693 §2.2.1: not an access token.
        (Some(kind), _) if kind.ends_with(":jwt") => "N_A",
        (_, true) => "DPoP",
        _ => "Bearer",
    };
    let mut body =
        serde_json::json!({ "access_token": access, "token_type": token_type, "expires_in": lifetime.as_secs() });
    if let Some(kind) = issued_type {
        body["issued_token_type"] = serde_json::Value::String(kind.to_owned());
    }
    if let Some(scope) = scope {
        body["scope"] = serde_json::Value::String(scope);
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = serde_json::Value::String(refresh);
    }
    json(StatusCode::OK, body)
}

/// Verifies a JWT bearer grant's assertion: the subject it speaks for.
pub(crate) fn bearer_subject(inner: &mut Inner, params: &[(String, String)]) -> Result<String, String> {
    let assertion = param(params, "assertion").ok_or("no assertion")?;
    let (issuer, key) = jose::trusted_issuer(&inner.config.bearer_issuers, assertion)?;
    let audiences = inner.assertion_audiences();
    let expect =
        jose::Expect { audiences: &audiences, issuer: Some(&issuer), subject_is_issuer: false, max_lifetime: 3600 };
    let claims = jose::verify(assertion, &key, &expect, &mut inner.seen_assertions)?;
    claims.get("sub").and_then(|s| s.as_str()).map(str::to_owned).ok_or_else(|| "no sub".to_owned())
}
