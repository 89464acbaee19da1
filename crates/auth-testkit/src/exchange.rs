//! Workload identity: tokens a platform gives each workload, signed by a
//! trusted issuer, taken as a federated client's assertion and as the
//! subject (or actor) of an RFC 8693 token exchange; and the exchange of
//! this provider's own access tokens (chained exchanges).

use serde_json::{Map, Value};

use crate::jose;
use crate::state::Inner;
use crate::wire::param;

/// The RFC 8693 grant type.
pub(crate) const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The claims of a workload token from a trusted issuer, checked: its
/// signature, `aud` (this server), `exp`. Unlike a client's own assertion
/// it may be presented many times (the platform rotates it, not each use).
pub(crate) fn workload_claims(inner: &Inner, jwt: &str) -> Result<Map<String, Value>, String> {
    let (_, key) = jose::trusted_issuer(&inner.config.workload_issuers, jwt)?;
    let (_, claims) = jose::verify_signature(jwt, &key).map_err(|e| format!("rejected: {e}"))?;
    let audiences = jose::audiences(&claims);
    let accepted = inner.assertion_audiences();
    if !audiences.iter().any(|aud| accepted.iter().any(|a| a == aud)) {
        return Err("rejected: aud is not this server".to_owned());
    }
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or("rejected: no exp")?;
    if exp <= jose::now() {
        return Err("rejected: the token has expired".to_owned());
    }
    Ok(claims)
}

/// A federated client's authentication: the workload token's `sub` must be
/// the one registered for `client_id`.
pub(crate) fn federated_client(inner: &Inner, client_id: &str, assertion: &str) -> Option<Result<(), String>> {
    let (_, subject) = inner.config.federated_clients.iter().find(|(id, _)| id == client_id)?;
    Some(workload_claims(inner, assertion).and_then(|claims| {
        match claims.get("sub").and_then(Value::as_str) == Some(subject.as_str()) {
            true => Ok(()),
            false => Err(format!("the workload token is not for `{subject}`")),
        }
    }))
}

/// Who a token exchange is for: the subject token's subject (a workload's
/// `sub`, or the user or client of an access token this server issued), its
/// actor if any, and the token type to issue.
pub(crate) struct Exchanged {
    pub(crate) subject: String,
    pub(crate) actor: Option<String>,
    pub(crate) issued_type: &'static str,
}

/// Checks a token exchange request (RFC 8693 §2.1); the error code and why.
pub(crate) fn exchange(inner: &Inner, params: &[(String, String)]) -> Result<Exchanged, (&'static str, String)> {
    if !inner.config.token_exchange {
        return Err(("unsupported_grant_type", "token exchange is not enabled".to_owned()));
    }
    let invalid = |why: String| ("invalid_request", why);
    let subject_token = param(params, "subject_token").ok_or_else(|| invalid("no subject_token".to_owned()))?;
    let subject_type =
        param(params, "subject_token_type").ok_or_else(|| invalid("no subject_token_type".to_owned()))?;
    let subject = who(inner, subject_token, subject_type).map_err(|why| ("invalid_grant", why))?;
    let actor = match (param(params, "actor_token"), param(params, "actor_token_type")) {
        (Some(token), Some(kind)) => Some(who(inner, token, kind).map_err(|why| ("invalid_grant", why))?),
        (None, None) => None,
        _ => return Err(invalid("actor_token and actor_token_type go together".to_owned())),
    };
    let issued_type = match param(params, "requested_token_type") {
        None | Some(ACCESS_TOKEN) => ACCESS_TOKEN,
        Some(JWT) => JWT,
        Some(other) => return Err(("invalid_target", format!("cannot issue `{other}`"))),
    };
    Ok(Exchanged { subject, actor, issued_type })
}

/// Whom `token` (of type `kind`) speaks for.
fn who(inner: &Inner, token: &str, kind: &str) -> Result<String, String> {
    match kind {
        JWT | ID_TOKEN => {
            let claims = workload_claims(inner, token)?;
            claims.get("sub").and_then(Value::as_str).map(str::to_owned).ok_or_else(|| "no sub".to_owned())
        }
        ACCESS_TOKEN => {
            let issued = inner
                .tokens
                .get(token)
                .filter(|issued| issued.is_live_access_token())
                .ok_or("the access token is unknown, expired or revoked")?;
            Ok(issued.user.clone().unwrap_or_else(|| issued.client_id.clone()))
        }
        other => Err(format!("subject_token_type `{other}` is not supported")),
    }
}
