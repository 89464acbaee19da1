//! Token endpoint responses: success (RFC 6749 §5.1) and errors (§5.2),
//! parsed robustly.
//!
//! Providers differ: bodies come as JSON, form-encoded or `text/plain`;
//! `expires_in` as a number, a numeric string, `null`, zero or absurd;
//! `token_type` in any case, or missing; some send an `error` inside a
//! `200`; proxies answer HTML. [`parse_token_response`] accepts what can be
//! accepted safely and turns the rest into a [`TokenError`] that says what
//! to check, without ever quoting a token or a secret.
//!
//! ```
//! use auth_core::config::SourceConfig;
//! use auth_core::wire::response::parse_token_response;
//! use auth_core::secret::ExposeSecret;
//! use http::{HeaderMap, StatusCode};
//! use std::time::Duration;
//!
//! let config = SourceConfig::builder("https://auth.example.com/token", "id").client_secret("s").build()?;
//! let body = br#"{"access_token":"abc","token_type":"bearer","expires_in":"3600"}"#;
//! let token = parse_token_response(&config, StatusCode::OK, &HeaderMap::new(), body).unwrap();
//! assert_eq!(token.access_token.expose_secret(), "abc");
//! assert_eq!(token.expires_in, Some(Duration::from_secs(3600)));
//! # Ok::<(), auth_core::error::ConfigError>(())
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::value::RawValue;

use crate::config::SourceConfig;
use crate::error::{ErrorCode, ProviderError, TokenError};
use crate::redact::Redactor;
use crate::secret::{AccessTokenValue, ExposeSecret, RefreshToken};
use crate::text::sanitize_excerpt;

pub use crate::config::MAX_LIFETIME;

/// Longest excerpt of a non-OAuth error body kept in an error, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// A successful token response.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenResponse {
    /// The access token (its `token_type` was Bearer, in any case, or missing).
    pub access_token: AccessTokenValue,
    /// The lifetime from `expires_in`, clamped to [`MAX_LIFETIME`]. `None`
    /// when missing, `null`, zero, negative or not a number: the caller then
    /// assumes its default lifetime.
    pub expires_in: Option<Duration>,
    /// The refresh token, when one was issued.
    pub refresh_token: Option<RefreshToken>,
    /// The granted scope, when the provider said.
    pub scope: Option<String>,
    /// RFC 8693 `issued_token_type`: the type of token a token exchange
    /// issued (checked by the lifecycle against the one asked for).
    pub issued_token_type: Option<String>,
}

/// Parses a token endpoint response.
///
/// The body is rejected when it is larger than the configuration's
/// `max_body_bytes`. A `Retry-After` in seconds is kept on the error;
/// convert an HTTP-date `Retry-After` first with [`normalize_retry_after`].
/// Provider text in errors is redacted of the client secret (see
/// [`parse_token_response_redacting`] to redact more).
pub fn parse_token_response(
    config: &SourceConfig,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, TokenError> {
    parse_token_response_redacting(config, &[], status, headers, body)
}

/// [`parse_token_response`], also redacting `secrets` (the tokens the
/// caller holds) from provider text, in every encoding (see
/// [`crate::redact`]).
pub fn parse_token_response_redacting(
    config: &SourceConfig,
    secrets: &[&str],
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, TokenError> {
    let code = status.as_u16();
    if body.len() > config.max_body_bytes() {
        return Err(TokenError::BodyTooLarge { status: code, limit: config.max_body_bytes() });
    }
    let redactor = LazyRedactor::new(config, secrets);
    let fields = Fields::parse(headers.get(CONTENT_TYPE), body);
    if let Some(fields) = &fields {
        if let Some(error) = fields.get("error").as_text() {
            let clean = |text: Cow<'_, str>, max| redactor.clean(&text, max);
            let code = match ErrorCode::parse(&error) {
                ErrorCode::Other(_) => ErrorCode::Other(clean(error, 64)),
                known => known,
            };
            return Err(TokenError::Provider(ProviderError {
                status: status.as_u16(),
                code,
                description: fields.get("error_description").as_text().map(|d| clean(d, 300)).filter(|d| !d.is_empty()),
                uri: fields.get("error_uri").as_text().map(|u| clean(u, 200)).filter(|u| !u.is_empty()),
                retry_after: retry_after_seconds(headers),
            }));
        }
    }
    if !status.is_success() {
        let text = String::from_utf8_lossy(body);
        return Err(TokenError::Status {
            status: code,
            excerpt: redactor.clean(&text, EXCERPT_CHARS),
            retry_after: retry_after_seconds(headers),
        });
    }
    let malformed = |reason| TokenError::Malformed { status: code, reason };
    let fields = fields.ok_or_else(|| malformed("a body that is neither a JSON object nor form-encoded"))?;
    let access_token = match fields.get("access_token") {
        Field::Text(text) => text,
        Field::Missing | Field::Null => return Err(malformed("a body without an access_token")),
        Field::Number(_) | Field::Other => return Err(malformed("an access_token that is not a string")),
    };
    let dpop = config.dpop().is_some();
    // RFC 8693 §2.2.1: `N_A` when the token issued is not an access token.
    let not_applicable = config.token_exchange().is_some_and(|e| e.may_be_not_applicable());
    match fields.get("token_type") {
        Field::Text(kind) if kind == "N_A" && not_applicable => {}
        Field::Missing | Field::Null if !dpop => {}
        Field::Text(kind) if kind.eq_ignore_ascii_case("bearer") && !dpop => {}
        Field::Text(kind) if kind.eq_ignore_ascii_case("dpop") && dpop => {}
        Field::Text(kind) if kind.eq_ignore_ascii_case("dpop") => {
            return Err(TokenError::TokenTypeMismatch { expected: "Bearer", received: "DPoP".to_owned() });
        }
        Field::Missing | Field::Null => {
            return Err(TokenError::TokenTypeMismatch { expected: "DPoP", received: "(none)".to_owned() });
        }
        Field::Text(kind) if kind.eq_ignore_ascii_case("bearer") => {
            return Err(TokenError::TokenTypeMismatch { expected: "DPoP", received: "Bearer".to_owned() });
        }
        other => {
            let shown = other.as_text().unwrap_or(Cow::Borrowed("(not a string)"));
            // The access token of this very response is a secret too.
            let mut also = secrets.to_vec();
            also.push(&access_token);
            let token_type = LazyRedactor::new(config, &also).clean(&shown, 32);
            return Err(TokenError::UnsupportedTokenType { token_type });
        }
    }
    if access_token.is_empty() {
        return Err(TokenError::InvalidAccessToken { reason: "is empty" });
    }
    if access_token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err(TokenError::InvalidAccessToken {
            reason:
                "contains characters that cannot be sent in an HTTP header (spaces, control bytes, CR, LF or non-ASCII)",
        });
    }
    Ok(TokenResponse {
        access_token: AccessTokenValue::new(access_token.into_owned()),
        expires_in: parse_expires_in(&fields.get("expires_in")),
        refresh_token: fields
            .get("refresh_token")
            .as_text()
            .filter(|t| !t.is_empty())
            .map(|t| RefreshToken::new(t.into_owned())),
        scope: fields.get("scope").as_text().map(Cow::into_owned),
        issued_token_type: fields.get("issued_token_type").as_text().map(|t| t.chars().take(256).collect()),
    })
}

/// Parses the answer to an RFC 7009 revocation request: any 2xx is success
/// (the body is ignored; revoking an unknown or expired token succeeds too),
/// anything else is classified like a token endpoint error
/// (`unsupported_token_type` arrives as [`ErrorCode::Other`]). `secrets`
/// (the token being revoked) are redacted from provider text along with
/// the client secret.
pub fn parse_revocation_response(
    config: &SourceConfig,
    secrets: &[&str],
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), TokenError> {
    if status.is_success() {
        return Ok(());
    }
    match parse_token_response_redacting(config, secrets, status, headers, body) {
        Err(error) => Err(error),
        // A non-2xx answer is never a token; keep the status.
        Ok(_) => Err(TokenError::Status { status: status.as_u16(), excerpt: String::new(), retry_after: None }),
    }
}

/// The redactor for a response, built on first use (only error paths need it).
struct LazyRedactor<'a> {
    config: &'a SourceConfig,
    secrets: &'a [&'a str],
    built: std::cell::OnceCell<Redactor>,
}

impl<'a> LazyRedactor<'a> {
    fn new(config: &'a SourceConfig, secrets: &'a [&'a str]) -> Self {
        Self { config, secrets, built: std::cell::OnceCell::new() }
    }

    /// Provider text made safe to show: secrets redacted from the raw text,
    /// sanitised, redacted again (sanitising folds whitespace and drops
    /// tags), then cut to `max_chars`.
    fn clean(&self, text: &str, max_chars: usize) -> String {
        let redactor = self.built.get_or_init(|| redactor_for(self.config, self.secrets));
        let once = sanitize_excerpt(&redactor.redact(text), usize::MAX);
        sanitize_excerpt(&redactor.redact(&once), max_chars)
    }
}

/// A redactor of the configuration's client secret (alone and as a Basic
/// credential) and of `secrets`.
pub(crate) fn redactor_for(config: &SourceConfig, secrets: &[&str]) -> Redactor {
    let mut redactor = Redactor::new();
    if let Some(secret) = config.client_secret() {
        redactor.add_basic(config.client_id(), secret.expose_secret());
    }
    for secret in secrets {
        redactor.add(secret);
    }
    redactor.build()
}

/// The body's fields, from JSON or form encoding.
enum Fields {
    /// Values kept as raw JSON, decoded on use: a number too large for an
    /// `f64` (`1e400`) does not fail the whole body.
    Json(BTreeMap<String, Box<RawValue>>),
    Form(Vec<(String, String)>),
}

/// One field's value, whatever the encoding.
enum Field<'a> {
    Missing,
    Null,
    Text(Cow<'a, str>),
    Number(f64),
    Other,
}

impl Field<'_> {
    fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Field::Text(text) => Some(Cow::Borrowed(text.as_ref())),
            _ => None,
        }
    }
}

impl Fields {
    fn parse(content_type: Option<&HeaderValue>, body: &[u8]) -> Option<Self> {
        let media = content_type
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default();
        let json = || serde_json::from_slice::<BTreeMap<String, Box<RawValue>>>(body).ok().map(Self::Json);
        let form = || {
            let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
            pairs.iter().any(|(k, _)| k == "access_token" || k == "error").then_some(Self::Form(pairs))
        };
        if media.ends_with("json") || media.ends_with("+json") {
            json()
        } else if media == "application/x-www-form-urlencoded" {
            form()
        } else if std::str::from_utf8(body).is_ok_and(|s| s.trim_start().starts_with('{')) {
            json()
        } else if std::str::from_utf8(body).is_ok() {
            form()
        } else {
            None
        }
    }

    fn get(&self, name: &str) -> Field<'_> {
        match self {
            Self::Json(map) => match map.get(name).map(|raw| raw.get().trim()) {
                None => Field::Missing,
                Some("null") => Field::Null,
                Some(raw) if raw.starts_with('"') => {
                    serde_json::from_str::<String>(raw).map_or(Field::Other, |s| Field::Text(Cow::Owned(s)))
                }
                Some(raw) if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
                    // JSON numbers are valid f64 syntax; too large ones parse as infinity.
                    raw.parse::<f64>().map_or(Field::Other, Field::Number)
                }
                Some(_) => Field::Other,
            },
            Self::Form(pairs) => {
                pairs.iter().find(|(k, _)| k == name).map_or(Field::Missing, |(_, v)| Field::Text(Cow::Borrowed(v)))
            }
        }
    }
}

/// `expires_in` as a lifetime: numbers and numeric strings, fractional
/// seconds truncated, clamped to [`MAX_LIFETIME`]; `None` for anything
/// that is not a positive number of seconds.
fn parse_expires_in(field: &Field<'_>) -> Option<Duration> {
    let seconds = match field {
        Field::Number(n) => *n,
        Field::Text(text) => text.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if seconds.is_nan() || seconds < 1.0 {
        return None;
    }
    Some(Duration::from_secs(seconds.min(MAX_LIFETIME.as_secs() as f64) as u64))
}

/// The `Retry-After` delay when given in seconds.
pub fn retry_after_seconds(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// The `Retry-After` delay in either form (seconds or HTTP-date), against
/// the wall time `now` the caller read. A date in the past gives zero.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    retry_after_seconds(headers).or_else(|| {
        let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
        let date = httpdate::parse_http_date(value.trim()).ok()?;
        Some(date.duration_since(now).unwrap_or(Duration::ZERO))
    })
}

/// Rewrites an HTTP-date `Retry-After` as seconds from `now`, so that the
/// clock-free parser can honour it. Drivers call this on a response before
/// handing it to the lifecycle.
pub fn normalize_retry_after(headers: &mut HeaderMap, now: SystemTime) {
    if retry_after_seconds(headers).is_none() {
        if let Some(delay) = retry_after(headers, now) {
            headers.insert(RETRY_AFTER, HeaderValue::from(delay.as_secs()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SourceConfig {
        SourceConfig::builder("https://auth.example.com/token", "id")
            .client_secret("the-client-secret")
            .build()
            .unwrap()
    }

    fn parse_with(status: u16, content_type: Option<&str>, body: &str) -> Result<TokenResponse, TokenError> {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, ct.parse().unwrap());
        }
        parse_token_response(&config(), StatusCode::from_u16(status).unwrap(), &headers, body.as_bytes())
    }

    fn parse_with_config(
        config: &SourceConfig,
        status: u16,
        content_type: Option<&str>,
        body: &str,
    ) -> Result<TokenResponse, TokenError> {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type {
            headers.insert(CONTENT_TYPE, ct.parse().unwrap());
        }
        parse_token_response(config, StatusCode::from_u16(status).unwrap(), &headers, body.as_bytes())
    }

    fn parse(body: &str) -> Result<TokenResponse, TokenError> {
        parse_with(200, Some("application/json"), body)
    }

    #[test]
    fn json_success_with_every_field() {
        let token = parse(r#"{"access_token":"at.1-_~+/=","token_type":"Bearer","expires_in":3600,"refresh_token":"rt","scope":"a b"}"#).unwrap();
        assert_eq!(token.access_token.expose_secret(), "at.1-_~+/=");
        assert_eq!(token.expires_in, Some(Duration::from_secs(3600)));
        assert_eq!(token.refresh_token.unwrap().expose_secret(), "rt");
        assert_eq!(token.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn form_and_text_plain_bodies() {
        for (ct, body) in [
            (Some("application/x-www-form-urlencoded"), "access_token=tok&token_type=bearer&expires_in=60"),
            (Some("text/plain; charset=utf-8"), "access_token=tok&token_type=bearer&expires_in=60"),
            (Some("text/plain"), r#"{"access_token":"tok","expires_in":60}"#),
            (None, r#"  {"access_token":"tok","expires_in":"60"}"#),
            (Some("application/vnd.api+json"), r#"{"access_token":"tok","expires_in":60.9}"#),
        ] {
            let token = parse_with(200, ct, body).unwrap_or_else(|e| panic!("{ct:?} {body}: {e}"));
            assert_eq!(token.access_token.expose_secret(), "tok");
            assert_eq!(token.expires_in, Some(Duration::from_secs(60)), "{body}");
        }
    }

    #[test]
    fn expires_in_quirks() {
        let lifetime = |v: &str| parse(&format!(r#"{{"access_token":"t","expires_in":{v}}}"#)).unwrap().expires_in;
        assert_eq!(lifetime("3600"), Some(Duration::from_secs(3600)));
        assert_eq!(lifetime(r#""86400""#), Some(Duration::from_secs(86400)));
        assert_eq!(lifetime(r#"" 300 ""#), Some(Duration::from_secs(300)));
        for none in ["null", "0", "-5", r#""-5""#, r#""soon""#, "true", "[]", "0.5", r#""NaN""#] {
            assert_eq!(lifetime(none), None, "{none}");
        }
        assert_eq!(lifetime("1e300"), Some(MAX_LIFETIME));
        assert_eq!(lifetime("1e400"), Some(MAX_LIFETIME), "beyond f64: clamped, not a failed body");
        assert_eq!(lifetime("-1e400"), None);
        assert_eq!(lifetime("3.6e3"), Some(Duration::from_secs(3600)));
        assert_eq!(lifetime("18446744073709551615"), Some(MAX_LIFETIME));
        assert_eq!(lifetime(r#""inf""#), Some(MAX_LIFETIME));
        assert_eq!(parse(r#"{"access_token":"t"}"#).unwrap().expires_in, None);
    }

    #[test]
    fn token_type_rules() {
        for ok in [r#""bearer""#, r#""BEARER""#, r#""Bearer""#, "null"] {
            assert!(parse(&format!(r#"{{"access_token":"t","token_type":{ok}}}"#)).is_ok(), "{ok}");
        }
        let err = parse(r#"{"access_token":"t","token_type":"mac"}"#).unwrap_err();
        assert_eq!(err, TokenError::UnsupportedTokenType { token_type: "mac".into() });
        assert!(err.to_string().contains("only Bearer"));
        assert!(parse(r#"{"access_token":"t","token_type":7}"#).is_err());
    }

    #[test]
    fn error_field_in_a_200_is_an_error() {
        let err = parse(r#"{"error":"invalid_scope","error_description":"scope x unknown"}"#).unwrap_err();
        let provider = err.provider_error().unwrap();
        assert_eq!(provider.status, 200);
        assert_eq!(provider.code, ErrorCode::InvalidScope);
        assert_eq!(provider.description.as_deref(), Some("scope x unknown"));
        assert!(!err.is_transient());
    }

    #[test]
    fn rfc6749_errors_are_typed() {
        let cases = [
            (400, "invalid_request", ErrorCode::InvalidRequest),
            (401, "invalid_client", ErrorCode::InvalidClient),
            (400, "invalid_grant", ErrorCode::InvalidGrant),
            (400, "unauthorized_client", ErrorCode::UnauthorizedClient),
            (400, "unsupported_grant_type", ErrorCode::UnsupportedGrantType),
            (400, "invalid_scope", ErrorCode::InvalidScope),
            (400, "invalid_target", ErrorCode::InvalidTarget),
            (400, "consent_required", ErrorCode::Other("consent_required".into())),
        ];
        for (status, code, expected) in cases {
            let body = format!(r#"{{"error":"{code}","error_description":"d","error_uri":"https://docs.example/e"}}"#);
            let err = parse_with(status, Some("application/json"), &body).unwrap_err();
            let provider = err.provider_error().unwrap();
            assert_eq!(provider.code, expected);
            assert_eq!(provider.status, status);
            assert_eq!(provider.uri.as_deref(), Some("https://docs.example/e"));
            assert!(!err.is_transient(), "{code}");
        }
        let form = parse_with(
            400,
            Some("application/x-www-form-urlencoded"),
            "error=invalid_client&error_description=bad+client",
        )
        .unwrap_err();
        assert_eq!(form.provider_error().unwrap().description.as_deref(), Some("bad client"));
    }

    #[test]
    fn html_error_pages_give_status_and_a_clean_excerpt() {
        let page = "<html><head><title>502 Bad Gateway</title></head>\r\n<body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>";
        let err = parse_with(502, Some("text/html"), page).unwrap_err();
        match &err {
            TokenError::Status { status, excerpt, .. } => {
                assert_eq!(*status, 502);
                assert_eq!(excerpt, "502 Bad Gateway 502 Bad Gateway nginx");
            }
            other => panic!("{other:?}"),
        }
        assert!(err.is_transient());
        let long = "x".repeat(10_000);
        match parse_with(500, None, &long).unwrap_err() {
            TokenError::Status { excerpt, .. } => assert_eq!(excerpt.chars().count(), EXCERPT_CHARS + 1),
            other => panic!("{other:?}"),
        }
        // A JSON error without an OAuth `error` field is a status error too.
        assert!(matches!(
            parse_with(503, Some("application/json"), r#"{"message":"down"}"#),
            Err(TokenError::Status { status: 503, .. })
        ));
    }

    #[test]
    fn provider_text_never_echoes_our_secret() {
        let err = parse_with(
            401,
            Some("application/json"),
            r#"{"error":"invalid_client","error_description":"secret the-client-secret is wrong"}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("the-client-secret"), "{err}");
        let err = parse_with(500, Some("text/plain"), "debug: client_secret=the-client-secret").unwrap_err();
        assert!(!err.to_string().contains("the-client-secret"), "{err}");
    }

    #[test]
    fn every_provider_field_is_redacted_before_it_is_cut_or_cleaned() {
        let secret = "sEcr3t~Zy+/ <é>\tq\"x%41-long-enough-to-be-cut";
        let config =
            SourceConfig::builder("https://auth.example.com/token", "my app").client_secret(secret).build().unwrap();
        let basic = |plain: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, plain);
        let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let json_escaped = serde_json::to_string(secret).unwrap();
        let json_inner = &json_escaped[1..json_escaped.len() - 1];
        let bodies = [
            (400, "application/json", format!(r#"{{"error":"bad_{json_inner}"}}"#)),
            (
                400,
                "application/json",
                format!(r#"{{"error":"invalid_client","error_description":"got {json_inner}"}}"#),
            ),
            (400, "application/json", format!(r#"{{"error":"invalid_client","error_uri":"https://x/{form}"}}"#)),
            (200, "application/json", format!(r#"{{"access_token":"t","token_type":"{json_inner}"}}"#)),
            (500, "text/plain", format!("echo: client_secret={form}")),
            (500, "text/plain", format!("echo: Authorization: Basic {}", basic(&format!("my app:{secret}")))),
            (500, "text/html", format!("{}<b>{secret}</b>", "x".repeat(EXCERPT_CHARS - 20))),
            (500, "application/json", format!(r#"{{"message":"{json_inner}"}}"#)),
        ];
        for (status, content_type, body) in bodies {
            let err = parse_with_config(&config, status, Some(content_type), &body).unwrap_err();
            let shown = format!("{err} {err:?}");
            let percent = percent_encoding::percent_encode(secret.as_bytes(), crate::text::NOT_UNRESERVED).to_string();
            let forms = [secret, &form, json_inner, &percent, &basic(&format!("my app:{secret}"))];
            for form in forms {
                for run in form.as_bytes().windows(8).filter_map(|w| std::str::from_utf8(w).ok()) {
                    assert!(!shown.contains(run), "`{run}` of an encoding of the secret in {shown}");
                }
            }
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        // A known code is never mangled by redaction.
        let err = parse_with_config(&config, 401, Some("application/json"), r#"{"error":"invalid_client"}"#);
        assert_eq!(err.unwrap_err().code(), Some(&ErrorCode::InvalidClient));
    }

    #[test]
    fn bodies_over_the_cap_are_rejected() {
        let config =
            SourceConfig::builder("https://a.example/t", "id").client_secret("s").max_body_bytes(1024).build().unwrap();
        let body = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(2000));
        let err = parse_token_response(&config, StatusCode::OK, &HeaderMap::new(), body.as_bytes()).unwrap_err();
        assert_eq!(err, TokenError::BodyTooLarge { status: 200, limit: 1024 });
    }

    #[test]
    fn bad_access_tokens_are_never_accepted() {
        for bad in [r#""""#, r#""a\r\nX-Injected: 1""#, r#""a b""#, r#""t\u0000""#, r#""tök""#] {
            let err = parse(&format!(r#"{{"access_token":{bad}}}"#)).unwrap_err();
            assert!(matches!(err, TokenError::InvalidAccessToken { .. }), "{bad}: {err:?}");
        }
        for bad in ["{}", r#"{"access_token":null}"#, r#"{"access_token":12}"#, "[1]", "<html>ok</html>", "\u{0}\u{1}"]
        {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, TokenError::Malformed { .. }), "{bad}: {err:?}");
        }
        // A malformed success body is never quoted: it may hold a token.
        let err = parse_with(200, Some("text/html"), "<p>token: abcdef123</p>").unwrap_err();
        assert!(!err.to_string().contains("abcdef123"));
    }

    #[test]
    fn revocation_answers() {
        let config = config();
        let headers = HeaderMap::new();
        assert!(parse_revocation_response(&config, &[], StatusCode::OK, &headers, b"").is_ok());
        assert!(parse_revocation_response(&config, &[], StatusCode::NO_CONTENT, &headers, b"").is_ok());
        let err = parse_revocation_response(
            &config,
            &[],
            StatusCode::BAD_REQUEST,
            &headers,
            br#"{"error":"unsupported_token_type"}"#,
        )
        .unwrap_err();
        assert_eq!(err.code(), Some(&ErrorCode::Other("unsupported_token_type".into())));
        let err =
            parse_revocation_response(&config, &[], StatusCode::SERVICE_UNAVAILABLE, &headers, b"down").unwrap_err();
        assert!(err.is_transient());
    }

    #[test]
    fn empty_refresh_token_is_none() {
        assert!(parse(r#"{"access_token":"t","refresh_token":""}"#).unwrap().refresh_token.is_none());
    }

    #[test]
    fn retry_after_in_both_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after_seconds(&headers), Some(Duration::from_secs(120)));
        let err = parse_token_response(&config(), StatusCode::TOO_MANY_REQUESTS, &headers, b"slow down").unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
        assert!(err.is_transient());

        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        headers.insert(RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after_seconds(&headers), None);
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
        normalize_retry_after(&mut headers, now);
        assert_eq!(headers[RETRY_AFTER], "90");
        headers.insert(RETRY_AFTER, httpdate::fmt_http_date(now - Duration::from_secs(5)).parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("garbage"));
        assert_eq!(retry_after(&headers, now), None);
    }
}
