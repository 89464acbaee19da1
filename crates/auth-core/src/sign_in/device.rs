//! The device authorization grant (RFC 8628), sans-IO: sign-in for
//! machines without a browser. The user opens a URL on another device and
//! types a short code; meanwhile the machine polls the token endpoint.
//!
//! 1. Send [`device_authorization_request`]; read its answer with
//!    [`parse_device_authorization`]; show the user
//!    [`DeviceAuthorization::verification_uri`] and
//!    [`DeviceAuthorization::user_code`] (or the `_complete` URI).
//! 2. Drive a [`DevicePoller`] with explicit time: at
//!    [`DevicePoller::poll_timeout`] call [`DevicePoller::poll`], send the
//!    request it gives, and report the answer with
//!    [`DevicePoller::handle_response`] (or
//!    [`DevicePoller::handle_failed`]). `authorization_pending` keeps
//!    polling at the interval, `slow_down` adds 5 seconds to it for good,
//!    `access_denied` and `expired_token` (or the code's own expiry) end
//!    with a [`DeviceError`].
//! 3. The approving answer is the user's tokens: give it to
//!    [`Lifecycle::handle_sign_in`](crate::Lifecycle::handle_sign_in).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use auth_core::sign_in::device::{parse_device_authorization, DevicePoll, DevicePoller, DeviceStatus};
//! use auth_core::{SourceConfig, SourceGrant};
//!
//! let config = SourceConfig::builder("https://id.example.com/token", "tv-app").grant(SourceGrant::SignIn).build()?;
//! let answer = br#"{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"https://id.example.com/device","expires_in":900}"#;
//! let authorization = parse_device_authorization(&config, http::StatusCode::OK, &http::HeaderMap::new(), answer)?;
//! assert_eq!(authorization.user_code(), "WDJB-MJHT");
//!
//! let start = Instant::now();
//! let mut poller = DevicePoller::new(&authorization, start);
//! // The first poll waits the interval (5 s when the server gives none).
//! assert_eq!(poller.poll_timeout(), Some(start + Duration::from_secs(5)));
//! let DevicePoll::Send(request) = poller.poll(&config, start + Duration::from_secs(5)) else { unreachable!() };
//! assert!(std::str::from_utf8(request.body()).unwrap().contains("device_code=dc"));
//! let pending = http::Response::builder().status(400).body(br#"{"error":"slow_down"}"#.to_vec())?;
//! let status = poller.handle_response(&config, start + Duration::from_secs(5), &pending);
//! assert_eq!(status, DeviceStatus::SlowDown { interval: Duration::from_secs(10) });
//! assert_eq!(poller.poll_timeout(), Some(start + Duration::from_secs(15)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use http::{HeaderMap, Request, Response, StatusCode, Uri};
use serde_json::Value;

use crate::config::{validate_endpoint, SourceConfig};
use crate::error::{ErrorCode, TokenError};
use crate::secret::{DeviceCode, ExposeSecret};
use crate::wire::request::{build, token_request, Grant};
use crate::wire::response::parse_token_response_redacting;

/// The polling interval when the server gives none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// The longest interval kept: a larger one from the server is clamped.
pub const MAX_INTERVAL: Duration = Duration::from_secs(120);
/// The longest a device code is polled for, whatever the server says.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(3600);
/// How long a device code lasts when the server does not say.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(600);

/// The device authorization request (RFC 8628 §3.1) to `device_url`:
/// the client (authenticated as `config` says; a public client sends its
/// `client_id`), the scope, audience and resources.
pub fn device_authorization_request(config: &SourceConfig, device_url: &Uri) -> Request<Vec<u8>> {
    let scope = config.scope_param();
    let mut params: Vec<(&str, &str)> = Vec::with_capacity(4);
    if let Some(scope) = scope.as_deref() {
        params.push(("scope", scope));
    }
    if let Some(audience) = config.audience() {
        params.push(("audience", audience));
    }
    params.extend(config.resources().iter().map(|r| ("resource", r.as_str())));
    // A client that authenticates in the body (or a public one) sends its client_id there.
    build(config, device_url, &params)
}

/// The answer to the device authorization request (RFC 8628 §3.2). Its
/// `Debug` does not show the device code.
#[derive(Clone)]
pub struct DeviceAuthorization {
    device_code: DeviceCode,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: Duration,
    interval: Duration,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    /// The code the user types at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }
    /// Where the user goes to approve.
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }
    /// The verification URI with the user code in it, when the server gave
    /// one (for a QR code or a link).
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }
    /// How long the codes last (clamped to [`MAX_EXPIRES_IN`]).
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }
    /// The polling interval (clamped to 1 s ..= [`MAX_INTERVAL`]).
    pub fn interval(&self) -> Duration {
        self.interval
    }
    /// The device code.
    pub fn device_code(&self) -> &DeviceCode {
        &self.device_code
    }
}

/// A number of seconds given as a JSON number or a numeric string.
fn seconds(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads the answer to [`device_authorization_request`]. An OAuth error or
/// an error status is the [`TokenError`] it would be at the token endpoint;
/// a success without a device code, user code or https verification URI
/// is [`TokenError::Malformed`]. A user code or URI holding control,
/// bidirectional or invisible characters (which could rewrite the terminal
/// it is shown on, reverse a URL or hide in a code) is refused; so is a
/// `verification_uri_complete` holding them (the flow goes on without it).
pub fn parse_device_authorization(
    config: &SourceConfig,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<DeviceAuthorization, TokenError> {
    let code = status.as_u16();
    let malformed = |reason| TokenError::Malformed { status: code, reason };
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let is_error = !status.is_success() || json.as_ref().is_some_and(|v| v.get("error").is_some());
    if is_error || body.len() > config.max_body_bytes() {
        // Classified like a token endpoint error (it never succeeds without an access token).
        return Err(match parse_token_response_redacting(config, &[], status, headers, body) {
            Err(error) => error,
            Ok(_) => malformed("an error status with a token in it"),
        });
    }
    let json = json.ok_or_else(|| malformed("a device authorization answer that is not JSON"))?;
    let text = |name: &str| json.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let device_code =
        text("device_code").ok_or_else(|| malformed("a device authorization answer without device_code"))?;
    let user_code = text("user_code").ok_or_else(|| malformed("a device authorization answer without user_code"))?;
    // Google says verification_url.
    let uri = text("verification_uri")
        .or_else(|| text("verification_url"))
        .ok_or_else(|| malformed("a device authorization answer without verification_uri"))?;
    // Control, bidirectional and invisible characters could rewrite the
    // terminal, reverse a URL or hide inside a code: refused.
    let printable = |s: &str| !s.chars().any(crate::text::is_deceptive);
    if !printable(user_code) || !printable(uri) || user_code.len() > 64 {
        return Err(malformed("a user code or verification URI that cannot be shown safely"));
    }
    let shown_uri = |value: &str| validate_endpoint(value, false).is_ok();
    if !shown_uri(uri) {
        return Err(malformed("a verification URI that is not https"));
    }
    let complete = text("verification_uri_complete").filter(|u| printable(u) && shown_uri(u)).map(str::to_owned);
    let expires_in = seconds(json.get("expires_in"))
        .filter(|s| *s > 0)
        .map_or(DEFAULT_EXPIRES_IN, Duration::from_secs)
        .min(MAX_EXPIRES_IN);
    let interval = seconds(json.get("interval"))
        .map_or(DEFAULT_INTERVAL, Duration::from_secs)
        .clamp(Duration::from_secs(1), MAX_INTERVAL);
    Ok(DeviceAuthorization {
        device_code: DeviceCode::new(device_code),
        user_code: user_code.to_owned(),
        verification_uri: uri.to_owned(),
        verification_uri_complete: complete,
        expires_in,
        interval,
    })
}

/// What [`DevicePoller::poll`] asks.
#[derive(Debug)]
#[non_exhaustive]
pub enum DevicePoll {
    /// Send this token request, then call [`DevicePoller::handle_response`].
    Send(Request<Vec<u8>>),
    /// Too early (or a poll is in flight): call again at this instant.
    Wait(Instant),
    /// The flow is over: this is how it ended.
    Finished(DeviceError),
    /// The user approved already: nothing more to send.
    Approved,
}

/// What an answer to a poll meant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceStatus {
    /// The user approved: the answer holds the tokens; give it to
    /// [`Lifecycle::handle_sign_in`](crate::Lifecycle::handle_sign_in).
    Approved,
    /// `authorization_pending`: poll again after the interval.
    Pending,
    /// `slow_down`: the interval grew to `interval` for the rest of the flow.
    SlowDown {
        /// The new interval.
        interval: Duration,
    },
    /// The flow ended (denied, expired, or a permanent error).
    Finished(DeviceError),
}

/// How a device flow ended without tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// `access_denied`: the user declined on the verification page.
    #[error("the sign-in was declined on the verification page (access_denied){}; run the sign-in again and approve it", .description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    AccessDenied {
        /// The provider's description.
        description: Option<String>,
    },
    /// `expired_token`, or the code's lifetime passed without approval.
    #[error("the device code expired before the user approved it (after {}s); run the sign-in again and approve it sooner", .after.as_secs())]
    Expired {
        /// How long the code lasted.
        after: Duration,
    },
    /// Any other error: the client, grant or server is wrong.
    #[error("the device sign-in failed: {0}")]
    Failed(TokenError),
}

/// The polling rules of RFC 8628 §3.4–3.5 as a machine driven with
/// explicit time. See the [module docs](self).
#[derive(Debug)]
pub struct DevicePoller {
    device_code: DeviceCode,
    interval: Duration,
    next_poll: Instant,
    expires_at: Instant,
    lifetime: Duration,
    in_flight: bool,
    /// Transport failures in a row: each doubles the wait (RFC 8628 §3.5).
    failures: u32,
    finished: Option<DeviceError>,
    approved: bool,
}

impl DevicePoller {
    /// Starts polling for `authorization`, received at `now`: the first poll
    /// waits one interval.
    pub fn new(authorization: &DeviceAuthorization, now: Instant) -> Self {
        Self {
            device_code: authorization.device_code.clone(),
            interval: authorization.interval,
            next_poll: now + authorization.interval,
            expires_at: now + authorization.expires_in,
            lifetime: authorization.expires_in,
            in_flight: false,
            failures: 0,
            finished: None,
            approved: false,
        }
    }

    /// The current interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the codes expire.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// When to call [`DevicePoller::poll`] next: the next poll, or the
    /// expiry. `None` while a poll is in flight or when finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (self.finished.is_none() && !self.approved && !self.in_flight).then(|| self.next_poll.min(self.expires_at))
    }

    /// At `now`: the request to send if a poll is due, or when to ask
    /// again, or how the flow ended (the codes expired).
    pub fn poll(&mut self, config: &SourceConfig, now: Instant) -> DevicePoll {
        if let Some(error) = &self.finished {
            return DevicePoll::Finished(error.clone());
        }
        if self.approved {
            return DevicePoll::Approved;
        }
        if now >= self.expires_at {
            return DevicePoll::Finished(self.finish(DeviceError::Expired { after: self.lifetime }));
        }
        if self.in_flight {
            // Wait for the answer; asking again later is harmless.
            return DevicePoll::Wait(now + self.interval);
        }
        if now < self.next_poll {
            return DevicePoll::Wait(self.next_poll.min(self.expires_at));
        }
        self.in_flight = true;
        DevicePoll::Send(token_request(config, Grant::DeviceCode(&self.device_code)))
    }

    /// The token endpoint answered the poll in flight at `now`.
    pub fn handle_response<B: AsRef<[u8]>>(
        &mut self,
        config: &SourceConfig,
        now: Instant,
        response: &Response<B>,
    ) -> DeviceStatus {
        if let Some(error) = &self.finished {
            return DeviceStatus::Finished(error.clone());
        }
        if self.approved || !self.in_flight {
            // No poll is in flight: a stray answer is not the user's approval.
            return DeviceStatus::Finished(DeviceError::Failed(TokenError::Malformed {
                status: response.status().as_u16(),
                reason: "an answer to no poll in flight",
            }));
        }
        self.in_flight = false;
        self.failures = 0;
        let secret = self.device_code.expose_secret().to_owned();
        let parsed = parse_token_response_redacting(
            config,
            &[secret.as_str()],
            response.status(),
            response.headers(),
            response.body().as_ref(),
        );
        let error = match parsed {
            Ok(_) => {
                self.approved = true;
                return DeviceStatus::Approved;
            }
            Err(error) => error,
        };
        let code = error.code().map(ErrorCode::as_str).unwrap_or("");
        match code {
            "authorization_pending" => {
                self.next_poll = now + self.interval;
                DeviceStatus::Pending
            }
            "slow_down" => {
                self.interval = (self.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL.max(self.interval));
                self.next_poll = now + self.interval;
                DeviceStatus::SlowDown { interval: self.interval }
            }
            "access_denied" => {
                let description = error.provider_error().and_then(|e| e.description.clone());
                DeviceStatus::Finished(self.finish(DeviceError::AccessDenied { description }))
            }
            "expired_token" => DeviceStatus::Finished(self.finish(DeviceError::Expired { after: self.lifetime })),
            _ if error.is_transient() => {
                // A 5xx or 429: wait longer, as after a transport failure.
                self.back_off(now);
                DeviceStatus::Pending
            }
            _ => DeviceStatus::Finished(self.finish(DeviceError::Failed(error))),
        }
    }

    /// The poll in flight failed below HTTP at `now`: the next waits twice
    /// as long each time in a row (RFC 8628 §3.5), up to [`MAX_INTERVAL`].
    pub fn handle_failed(&mut self, now: Instant) {
        if self.finished.is_none() {
            self.in_flight = false;
            self.back_off(now);
        }
    }

    fn back_off(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let wait = self.interval.saturating_mul(1 << self.failures.min(6)).min(MAX_INTERVAL.max(self.interval));
        self.next_poll = now + wait;
    }

    fn finish(&mut self, error: DeviceError) -> DeviceError {
        self.in_flight = false;
        self.finished = Some(error.clone());
        error
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the tests anchor simulated time at one real instant
mod tests {
    use super::*;
    use crate::config::SourceGrant;

    fn config() -> SourceConfig {
        SourceConfig::builder("https://id.example.com/token", "tv")
            .grant(SourceGrant::SignIn)
            .scope("read")
            .build()
            .unwrap()
    }

    fn parse(body: &str) -> Result<DeviceAuthorization, TokenError> {
        parse_device_authorization(&config(), StatusCode::OK, &HeaderMap::new(), body.as_bytes())
    }

    #[test]
    fn the_request_names_the_public_client_and_the_scope() {
        let request = device_authorization_request(&config(), &"https://id.example.com/device".parse().unwrap());
        assert_eq!(request.body(), b"scope=read&client_id=tv");
        assert_eq!(request.uri(), "https://id.example.com/device");
        assert_eq!(request.method(), http::Method::POST);
    }

    #[test]
    fn answers_are_read_leniently_and_checked_strictly() {
        let ok = parse(r#"{"device_code":"d","user_code":"AB-CD","verification_url":"https://g.example/device","expires_in":"1800","interval":0}"#).unwrap();
        assert_eq!(ok.verification_uri(), "https://g.example/device");
        assert_eq!(ok.expires_in(), Duration::from_secs(1800));
        assert_eq!(ok.interval(), Duration::from_secs(1), "clamped to at least a second");
        let defaults =
            parse(r#"{"device_code":"d","user_code":"u","verification_uri":"https://a.example/d"}"#).unwrap();
        assert_eq!((defaults.interval(), defaults.expires_in()), (DEFAULT_INTERVAL, DEFAULT_EXPIRES_IN));
        assert!(!format!("{defaults:?}").contains("\"d\""), "the device code is not shown");
        for bad in [
            r#"{"user_code":"u","verification_uri":"https://a.example/d"}"#,
            r#"{"device_code":"d","verification_uri":"https://a.example/d"}"#,
            r#"{"device_code":"d","user_code":"u"}"#,
            r#"{"device_code":"d","user_code":"u","verification_uri":"http://evil.example/d"}"#,
            r#"{"device_code":"d","user_code":"u\u001b[2J","verification_uri":"https://a.example/d"}"#,
            // Bidirectional and zero-width characters: a reversed URL, a hidden code.
            r#"{"device_code":"d","user_code":"u","verification_uri":"https://a.example/\u202Emoc.knab"}"#,
            r#"{"device_code":"d","user_code":"AB\u200BCD","verification_uri":"https://a.example/d"}"#,
            r#"{"device_code":"d","user_code":"\u2066AB-CD\u2069","verification_uri":"https://a.example/d"}"#,
            r#"{"device_code":"d","user_code":"AB\uFEFF","verification_uri":"https://a.example/d"}"#,
            "not json",
        ] {
            assert!(matches!(parse(bad), Err(TokenError::Malformed { .. })), "{bad}");
        }
        // A complete URI that cannot be shown safely is dropped; the flow goes on.
        let reversed = parse(
            r#"{"device_code":"d","user_code":"AB-CD","verification_uri":"https://a.example/d","verification_uri_complete":"https://a.example/d?c=\u202Edcba"}"#,
        )
        .unwrap();
        assert!(reversed.verification_uri_complete().is_none());
        let refused = parse_device_authorization(
            &config(),
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"error":"invalid_client"}"#,
        )
        .unwrap_err();
        assert_eq!(refused.code(), Some(&ErrorCode::InvalidClient));
    }

    fn answer(status: u16, body: &str) -> Response<Vec<u8>> {
        let mut response = Response::new(body.as_bytes().to_vec());
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        response
    }

    #[test]
    fn pending_slow_down_approval_denial_and_expiry() {
        let config = config();
        let authorization = parse(r#"{"device_code":"dc-1","user_code":"u","verification_uri":"https://a.example/d","expires_in":60,"interval":5}"#).unwrap();
        let t0 = Instant::now();
        let mut poller = DevicePoller::new(&authorization, t0);
        assert!(matches!(poller.poll(&config, t0), DevicePoll::Wait(at) if at == t0 + Duration::from_secs(5)));
        let at = |s: u64| t0 + Duration::from_secs(s);
        let DevicePoll::Send(request) = poller.poll(&config, at(5)) else { panic!() };
        let body = std::str::from_utf8(request.body()).unwrap();
        assert_eq!(
            body,
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&client_id=tv&device_code=dc-1"
        );
        assert_eq!(poller.poll_timeout(), None, "nothing while a poll is in flight");
        assert_eq!(
            poller.handle_response(&config, at(5), &answer(400, r#"{"error":"authorization_pending"}"#)),
            DeviceStatus::Pending
        );
        assert_eq!(poller.poll_timeout(), Some(at(10)));
        let DevicePoll::Send(_) = poller.poll(&config, at(10)) else { panic!() };
        assert_eq!(
            poller.handle_response(&config, at(10), &answer(400, r#"{"error":"slow_down"}"#)),
            DeviceStatus::SlowDown { interval: Duration::from_secs(10) }
        );
        assert!(matches!(poller.poll(&config, at(15)), DevicePoll::Wait(w) if w == at(20)));
        let DevicePoll::Send(_) = poller.poll(&config, at(20)) else { panic!() };
        poller.handle_failed(at(20));
        assert_eq!(poller.poll_timeout(), Some(at(40)), "a transport failure doubles the wait");
        let DevicePoll::Send(_) = poller.poll(&config, at(40)) else { panic!() };
        assert_eq!(
            poller.handle_response(&config, at(40), &answer(200, r#"{"access_token":"a","refresh_token":"r"}"#)),
            DeviceStatus::Approved
        );
        assert!(matches!(poller.poll(&config, at(45)), DevicePoll::Approved));

        // Denied.
        let mut poller = DevicePoller::new(&authorization, t0);
        let DevicePoll::Send(_) = poller.poll(&config, at(5)) else { panic!() };
        let denied = poller.handle_response(
            &config,
            at(5),
            &answer(400, r#"{"error":"access_denied","error_description":"no"}"#),
        );
        let DeviceStatus::Finished(error) = denied else { panic!() };
        assert_eq!(error, DeviceError::AccessDenied { description: Some("no".into()) });
        assert!(error.to_string().contains("declined"));
        assert!(matches!(poller.poll(&config, at(10)), DevicePoll::Finished(DeviceError::AccessDenied { .. })));

        // Expired: by the server, or by the clock.
        let mut poller = DevicePoller::new(&authorization, t0);
        let DevicePoll::Send(_) = poller.poll(&config, at(5)) else { panic!() };
        assert!(matches!(
            poller.handle_response(&config, at(5), &answer(400, r#"{"error":"expired_token"}"#)),
            DeviceStatus::Finished(DeviceError::Expired { .. })
        ));
        let mut poller = DevicePoller::new(&authorization, t0);
        assert!(matches!(poller.poll(&config, at(60)), DevicePoll::Finished(DeviceError::Expired { .. })));
        assert_eq!(poller.poll_timeout(), None);

        // A permanent error ends it, with the device code redacted from the provider's words.
        let mut poller = DevicePoller::new(&authorization, t0);
        let DevicePoll::Send(_) = poller.poll(&config, at(5)) else { panic!() };
        let DeviceStatus::Finished(DeviceError::Failed(error)) = poller.handle_response(
            &config,
            at(5),
            &answer(400, r#"{"error":"invalid_grant","error_description":"bad code dc-1"}"#),
        ) else {
            panic!()
        };
        assert!(!error.to_string().contains("dc-1"), "{error}");
    }
}
