//! The device authorization endpoint (RFC 8628) and its polling.

use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, Response, StatusCode};

use crate::client_auth::authenticate;
use crate::random::random_token;
use crate::state::{lock, DeviceGrant, DeviceState, Inner, Shared};
use crate::tls;
use crate::wire::Refused;
use crate::wire::{json, param, params, refusal};

/// `POST /oauth/device`: a device code for the (public or authenticated) client.
pub(crate) fn device_authorization(
    shared: &Shared,
    via: &tls::Connection,
    headers: &HeaderMap,
    body: &[u8],
) -> Response<Body> {
    let mut inner = lock(shared);
    let (params, is_json) = params(headers, body);
    let client_id = match authenticate(&mut inner, via, headers, &params, is_json) {
        Ok((_, client_id)) => client_id,
        Err(method) => return refusal(&method),
    };
    let device_code = random_token("dc_");
    let letters: String = {
        let mut rng = fastrand::Rng::new();
        std::iter::repeat_with(|| rng.uppercase()).take(8).collect()
    };
    let user_code = format!("{}-{}", &letters[..4], &letters[4..]);
    let (lifetime, interval) = (inner.config.device_code_lifetime, inner.config.device_interval);
    let grant = DeviceGrant {
        client_id,
        user_code: user_code.clone(),
        scope: param(&params, "scope").map(str::to_owned),
        expires_at: Instant::now() + lifetime,
        state: DeviceState::Pending,
        slow_downs: 0,
    };
    inner.devices.insert(device_code.clone(), grant);
    let verification = format!("{}/device", inner.url);
    json(
        StatusCode::OK,
        serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification,
            "verification_uri_complete": format!("{verification}?user_code={user_code}"),
            "expires_in": lifetime.as_secs(),
            "interval": interval,
        }),
    )
}

/// The device code grant: pending until the test approves, then the tokens.
pub(crate) fn poll_device(
    inner: &mut Inner,
    client_id: &str,
    params: &[(String, String)],
) -> Result<Option<String>, Refused> {
    let error = |code, description| (code, description);
    let presented = param(params, "device_code").unwrap_or("");
    let Some(device) = inner.devices.get_mut(presented).filter(|d| d.client_id == client_id) else {
        return Err(error("invalid_grant", "Unknown device code"));
    };
    if Instant::now() >= device.expires_at {
        return Err(error("expired_token", "The device code expired"));
    }
    if device.slow_downs > 0 {
        device.slow_downs -= 1;
        return Err(error("slow_down", "Polling too fast"));
    }
    match device.state {
        DeviceState::Pending => Err(error("authorization_pending", "The user has not approved yet")),
        DeviceState::Denied => Err(error("access_denied", "The user declined")),
        DeviceState::Approved => {
            let scope = device.scope.clone();
            inner.devices.remove(presented);
            Ok(scope)
        }
    }
}
