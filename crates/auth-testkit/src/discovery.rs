//! The discovery documents (RFC 8414, OpenID Connect).

use axum::body::Body;
use axum::http::{Response, StatusCode};

use crate::state::{lock, Shared};
use crate::wire::json;

/// The discovery document (RFC 8414 and OpenID Connect alike).
pub(crate) fn discovery(shared: &Shared) -> Response<Body> {
    let inner = lock(shared);
    let url = &inner.url;
    let mut document = serde_json::json!({
            "issuer": inner.issuer(),
            "authorization_endpoint": format!("{url}/oauth/authorize"),
            "token_endpoint": format!("{url}/oauth/token"),
            "device_authorization_endpoint": format!("{url}/oauth/device"),
            "revocation_endpoint": format!("{url}/oauth/revoke"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA", "HS256"],
            "dpop_signing_alg_values_supported": ["ES256", "RS256", "PS256", "EdDSA"],
            "authorization_response_iss_parameter_supported": inner.config.send_iss,
    });
    if let Some(required) = inner.config.par {
        document["pushed_authorization_request_endpoint"] = serde_json::json!(format!("{url}/oauth/par"));
        document["require_pushed_authorization_requests"] = serde_json::json!(required);
    }
    if inner.config.dynamic_registration {
        document["registration_endpoint"] = serde_json::json!(format!("{url}/oauth/register"));
    }
    if let Some(mtls) = &inner.mtls_url {
        document["mtls_endpoint_aliases"] = serde_json::json!({
            "token_endpoint": format!("{mtls}/oauth/token"),
            "revocation_endpoint": format!("{mtls}/oauth/revoke"),
            "device_authorization_endpoint": format!("{mtls}/oauth/device"),
        });
        document["tls_client_certificate_bound_access_tokens"] = serde_json::Value::Bool(true);
        if let Some(methods) = document["token_endpoint_auth_methods_supported"].as_array_mut() {
            methods.extend(["tls_client_auth", "self_signed_tls_client_auth"].map(serde_json::Value::from));
        }
    }
    json(StatusCode::OK, document)
}
