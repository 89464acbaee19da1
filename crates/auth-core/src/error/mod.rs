//! Typed errors. Every variant says what went wrong and what to check, and
//! none of them ever holds a secret.

mod apply;
mod config;
mod provider;
mod source;
mod token;
mod wording;

pub use apply::ApplyError;
pub use config::ConfigError;
pub use provider::{ErrorCode, ProviderError};
pub use source::{DriverFailure, SourceError};
pub use token::{About, SignInReason, TokenError};
pub use wording::Endpoint;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn provider(code: &str, status: u16) -> TokenError {
        TokenError::Provider(ProviderError {
            status,
            code: ErrorCode::parse(code),
            description: Some("Client authentication failed".into()),
            uri: None,
            retry_after: None,
        })
    }

    #[test]
    fn a_provider_error_displays_alone_as_it_does_inside_a_token_error() {
        let error = provider("invalid_client", 401);
        let alone = error.provider_error().unwrap().to_string();
        assert_eq!(alone, error.to_string());
        assert!(alone.contains("invalid_client (HTTP 401): Client authentication failed; check"), "{alone}");
        let boxed: Box<dyn std::error::Error> = Box::new(error.provider_error().unwrap().clone());
        assert_eq!(boxed.to_string(), alone);
        // Every public error of this crate is a std error with a Display.
        fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
        is_error::<ConfigError>();
        is_error::<ProviderError>();
        is_error::<TokenError>();
        is_error::<ApplyError>();
        is_error::<crate::store::StoreError>();
        is_error::<crate::store::RecordError>();
    }

    #[test]
    fn codes_round_trip() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "invalid_target",
            "temporarily_unavailable",
            "server_error",
            "access_denied",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
        }
        assert_eq!(ErrorCode::parse("access_denied"), ErrorCode::Other("access_denied".into()));
    }

    #[test]
    fn classification() {
        assert!(!provider("invalid_client", 401).is_transient());
        assert!(!provider("invalid_scope", 400).is_transient());
        assert!(!provider("invalid_request", 503).is_transient());
        assert!(provider("temporarily_unavailable", 400).is_transient());
        assert!(provider("something_new", 503).is_transient());
        assert!(!provider("something_new", 400).is_transient());
        for status in [408, 429, 500, 502, 503, 504] {
            let e = TokenError::Status { status, excerpt: String::new(), retry_after: None };
            assert!(e.is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404] {
            let e = TokenError::Status { status, excerpt: String::new(), retry_after: None };
            assert!(!e.is_transient(), "{status}");
        }
        assert!(TokenError::transport("connection refused").is_transient());
        assert!(TokenError::timeout(Duration::from_secs(30)).is_transient());
        assert_eq!(TokenError::timeout(Duration::from_secs(30)).kind(), "timeout");
        assert!(!TokenError::Malformed { status: 200, reason: "x" }.is_transient());
    }

    #[test]
    fn transport_errors_carry_their_causes_on_one_capped_line() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let outer = std::io::Error::other(inner);
        let error = TokenError::from_error(&outer, false);
        assert_eq!(error, TokenError::Transport { message: "connection refused".into(), timeout: false });
        let long = std::io::Error::other("é".repeat(400));
        let TokenError::Transport { message, .. } = TokenError::from_error(&long, true) else { panic!() };
        assert!(message.len() <= 304 && message.ends_with('…'), "{message}");
    }

    #[test]
    fn messages_say_what_to_check() {
        let text = provider("invalid_client", 401).to_string();
        assert!(text.contains("invalid_client"), "{text}");
        assert!(text.contains("HTTP 401"), "{text}");
        assert!(text.contains("Client authentication failed"), "{text}");
        assert!(text.contains("check the client id and secret"), "{text}");
        let text = TokenError::Status { status: 502, excerpt: "Bad Gateway".into(), retry_after: None }.to_string();
        assert!(text.contains("HTTP 502") && text.contains("Bad Gateway") && text.contains("retrying later"), "{text}");
        assert!(!text.contains("will be retried"), "no promise of a retry nobody makes: {text}");
        let text =
            TokenError::Status { status: 429, excerpt: String::new(), retry_after: Some(Duration::from_secs(30)) }
                .to_string();
        assert!(text.contains("Retry-After: 30 s"), "{text}");
        let revoke = provider("invalid_request", 400);
        let text = revoke.about(Endpoint::Revocation).to_string();
        assert!(text.starts_with("revocation endpoint refused the request"), "{text}");
        assert!(TokenError::Status { status: 503, excerpt: String::new(), retry_after: None }
            .source_retry_note()
            .contains("retries by itself"));
        assert_eq!(provider("invalid_client", 401).source_retry_note(), "", "a permanent error is not retried");
        let text = TokenError::Transport { message: "no answer within 5s".into(), timeout: true }.to_string();
        assert!(text.contains("timed out") && !text.contains("unreachable"), "{text}");
    }
}
