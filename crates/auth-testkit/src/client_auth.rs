//! Client authentication at the endpoints: secrets, certificates and signed assertions.

use axum::http::{header, HeaderMap};
use base64::Engine as _;

use crate::jose;
use crate::state::Inner;
use crate::tls;
use crate::wire::param;

/// Authenticates the client: `(method, client id)`, or the method it tried.
pub(crate) fn authenticate(
    inner: &mut Inner,
    via: &tls::Connection,
    headers: &HeaderMap,
    params: &[(String, String)],
    is_json: bool,
) -> Result<(String, String), String> {
    if let Some(assertion) = param(params, "client_assertion") {
        return authenticate_assertion(inner, params, assertion);
    }
    if let Some(result) = authenticate_certificate(inner, via, headers, params) {
        return result;
    }
    let known = |id: &str, secret: Option<&str>| {
        inner.config.clients.iter().any(|(cid, csecret)| cid == id && csecret.as_deref() == secret)
    };
    let refuse = |method: &str| Err(method.to_owned());
    if let Some(basic) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    {
        let Some(decoded) =
            base64::engine::general_purpose::STANDARD.decode(basic).ok().and_then(|b| String::from_utf8(b).ok())
        else {
            return refuse("basic");
        };
        let Some((id, secret)) = decoded.split_once(':') else {
            return refuse("basic");
        };
        let unescape = |s: &str| {
            form_urlencoded::parse(format!("v={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        let (Some(id_decoded), Some(secret_decoded)) = (unescape(id), unescape(secret)) else {
            return refuse("basic");
        };
        // RFC 6749 §2.3.1 leaves only unreserved characters and escapes; any
        // other byte means the client sent the values raw (RFC 2617 style).
        let encoded = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b));
        if encoded(id) && encoded(secret) && known(&id_decoded, Some(&secret_decoded)) {
            return Ok(("basic".to_owned(), id_decoded));
        }
        if known(id, Some(secret)) {
            return Ok(("basic-raw".to_owned(), id.to_owned()));
        }
        return refuse("basic");
    }
    let method = if is_json { "json" } else { "post" };
    match (param(params, "client_id"), param(params, "client_secret")) {
        (Some(id), Some(secret)) if known(id, Some(secret)) => Ok((method.to_owned(), id.to_owned())),
        (Some(id), None) if known(id, None) => Ok(("none".to_owned(), id.to_owned())),
        (Some(_), Some(_)) => refuse(method),
        _ => refuse("unknown"),
    }
}

/// `tls_client_auth` and `self_signed_tls_client_auth`: `None` when the
/// client id is not one of their clients.
pub(crate) fn authenticate_certificate(
    inner: &mut Inner,
    via: &tls::Connection,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Option<Result<(String, String), String>> {
    if headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let id = param(params, "client_id")?;
    let config = &inner.config;
    let (method, accepted) = if let Some((_, subject)) = config.tls_clients.iter().find(|(cid, _)| cid == id) {
        let issued = via.client_certificate.as_ref().and_then(|t| inner.issued_certificates.get(t));
        ("tls-client-auth", issued == Some(subject))
    } else if let Some((_, registered)) = config.self_signed_clients.iter().find(|(cid, _)| cid == id) {
        ("self-signed-tls-client-auth", via.client_certificate.as_ref() == Some(registered))
    } else {
        return None;
    };
    if accepted {
        return Some(Ok((method.to_owned(), id.to_owned())));
    }
    inner.last_refusal = Some(match &via.client_certificate {
        None => "no client certificate in the TLS handshake".to_owned(),
        Some(_) => format!("the client certificate is not the one registered for `{id}`"),
    });
    Some(Err(method.to_owned()))
}

/// `private_key_jwt` and `client_secret_jwt`.
pub(crate) fn authenticate_assertion(
    inner: &mut Inner,
    params: &[(String, String)],
    assertion: &str,
) -> Result<(String, String), String> {
    let refused = |inner: &mut Inner, method: &str, why: String| {
        inner.last_refusal = Some(why);
        Err(method.to_owned())
    };
    if param(params, "client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return refused(inner, "unknown", "client_assertion_type is not jwt-bearer".to_owned());
    }
    let Some(client_id) = jose::unverified_claim(assertion, "iss") else {
        return refused(inner, "unknown", "the assertion has no iss".to_owned());
    };
    // Workload identity federation: a platform's token, for the client named.
    if let Some(client_id) = param(params, "client_id") {
        if let Some(outcome) = crate::exchange::federated_client(inner, client_id, assertion) {
            return match outcome {
                Ok(()) => Ok(("federated".to_owned(), client_id.to_owned())),
                Err(why) => refused(inner, "federated", why),
            };
        }
    }
    if param(params, "client_id").is_some_and(|id| id != client_id) {
        return refused(inner, "unknown", "client_id is not the assertion's iss".to_owned());
    }
    let key = inner.config.key_clients.iter().find(|(id, _)| *id == client_id).map(|(_, key)| key.clone());
    let (method, key) = match key {
        Some(key) => ("private-key-jwt", key),
        None => match inner.config.clients.iter().find(|(id, _)| *id == client_id) {
            Some((_, Some(secret))) => ("client-secret-jwt", jose::PublicKey::hmac(secret.as_bytes())),
            _ => return refused(inner, "unknown", format!("no client `{client_id}` with a key or secret")),
        },
    };
    let audiences = inner.assertion_audiences();
    let expect = jose::Expect { audiences: &audiences, issuer: None, subject_is_issuer: true, max_lifetime: 300 };
    match jose::verify(assertion, &key, &expect, &mut inner.seen_assertions) {
        Ok(_) => Ok((method.to_owned(), client_id)),
        Err(why) => refused(inner, method, why),
    }
}
