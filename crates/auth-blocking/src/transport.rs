//! The blocking transport: a trait, a blanket impl for closures, and the
//! default implementation on ureq.

use http::{Request, Response};

use crate::error::TransportError;

/// The body cap of API responses through `UreqTransport::for_api` and the
/// client builder: 16 MiB.
#[cfg_attr(not(feature = "ureq"), allow(dead_code))]
pub(crate) const API_BODY_LIMIT: u64 = 16 * 1024 * 1024;

/// Sends one HTTP request and returns the whole response, blocking the
/// calling thread.
///
/// Closures implement it, so tests can script an endpoint:
///
/// ```
/// use auth_blocking::{BlockingTransport, TransportError};
///
/// let endpoint = |_request: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
///     Ok(http::Response::new(br#"{"access_token":"t","expires_in":60}"#.to_vec()))
/// };
/// let response = endpoint.send(http::Request::new(Vec::new())).unwrap();
/// assert_eq!(response.status(), 200);
/// ```
pub trait BlockingTransport: Send + Sync + 'static {
    /// Sends `request`. HTTP error statuses are responses, not errors.
    fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError>;
}

impl<F> BlockingTransport for F
where
    F: Fn(Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> + Send + Sync + 'static,
{
    fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
        self(request)
    }
}

#[cfg(feature = "ureq")]
pub use self::ureq_transport::UreqTransport;

#[cfg(feature = "ureq")]
mod ureq_transport {
    use std::time::Duration;

    use http::{Request, Response};

    use super::{BlockingTransport, API_BODY_LIMIT};
    use crate::error::TransportError;

    /// The default transport, on [ureq](https://docs.rs/ureq): plain blocking
    /// IO with rustls, no async runtime hidden inside (reqwest's blocking
    /// client runs a tokio runtime on a thread of its own, and panics when
    /// called from async code; ureq builds lighter and works anywhere).
    ///
    /// It never follows redirects (a 3xx is returned as it is, so no
    /// credential ever follows a redirect to another place), has a global
    /// timeout, and reads at most `body_limit` bytes of a response, or the
    /// configuration's `max_body_bytes` for the token and revocation
    /// requests the core builds (they carry it as a
    /// [`MaxBodyBytes`](auth_core::request::MaxBodyBytes) extension). A
    /// body over the cap is [`TransportError::is_body_too_large`], which the
    /// token source reports as `TokenError::BodyTooLarge`.
    #[derive(Debug, Clone)]
    pub struct UreqTransport {
        agent: ureq::Agent,
        body_limit: u64,
    }

    impl UreqTransport {
        /// For token endpoints: 30 s timeout, 64 KiB body cap.
        pub fn for_tokens() -> Self {
            Self::new(Duration::from_secs(30), auth_core::config::DEFAULT_MAX_BODY_BYTES as u64)
        }

        /// For API calls: 30 s timeout, 16 MiB body cap.
        pub fn for_api() -> Self {
            Self::new(Duration::from_secs(30), API_BODY_LIMIT)
        }

        /// With a timeout and a body cap of your choosing.
        pub fn new(timeout: Duration, body_limit: u64) -> Self {
            let config = ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .max_redirects(0)
                .http_status_as_error(false)
                .build();
            Self { agent: ureq::Agent::new_with_config(config), body_limit }
        }
    }

    impl BlockingTransport for UreqTransport {
        fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
            let limit = request
                .extensions()
                .get::<auth_core::request::MaxBodyBytes>()
                .map_or(self.body_limit, |max| max.0 as u64);
            let response = self.agent.run(request).map_err(describe)?;
            let (parts, mut body) = response.into_parts();
            let bytes = body.with_config().limit(limit).read_to_vec().map_err(|error| match error {
                ureq::Error::BodyExceedsLimit(_) => {
                    TransportError::body_too_large(parts.status.as_u16(), usize::try_from(limit).unwrap_or(usize::MAX))
                }
                other => describe(other),
            })?;
            Ok(Response::from_parts(parts, bytes))
        }
    }

    fn describe(error: ureq::Error) -> TransportError {
        match error {
            ureq::Error::Timeout(which) => TransportError::timeout(format!("timed out ({which})")),
            ureq::Error::BodyExceedsLimit(limit) => {
                TransportError::new(format!("the response body exceeds {limit} bytes"))
            }
            other => TransportError::new(other.to_string()),
        }
    }
}
