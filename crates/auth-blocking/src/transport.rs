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

    use auth_core::keys::PrivateKeyFormat;
    use auth_core::mtls::ClientCertificate;
    use auth_core::ConfigError;
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

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
    /// [`MaxBodyBytes`](auth_core::wire::request::MaxBodyBytes) extension). A
    /// body over the cap is [`TransportError::is_body_too_large`], which the
    /// token source reports as `TokenError::BodyTooLarge`.
    #[derive(Debug, Clone)]
    pub struct UreqTransport {
        agent: ureq::Agent,
        timeout: Duration,
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
            Self::with_tls_config(timeout, body_limit, TlsConfig::default())
        }

        fn with_tls_config(timeout: Duration, body_limit: u64, tls: TlsConfig) -> Self {
            let config = ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .max_redirects(0)
                .http_status_as_error(false)
                .tls_config(tls)
                .build();
            Self { agent: ureq::Agent::new_with_config(config), timeout, body_limit }
        }

        /// The same transport presenting `certificate` in TLS handshakes
        /// (RFC 8705 mutual TLS: `SourceConfig::client_certificate`), and
        /// trusting only `roots` (DER CA certificates) instead of the
        /// built-in web roots when given. Both are checked here with
        /// rustls, so that a key that is not the certificate's, or one of
        /// an algorithm TLS cannot use, is a [`ConfigError::Tls`] now
        /// rather than a failure at the first request.
        pub fn with_tls(
            self,
            certificate: Option<&ClientCertificate>,
            roots: Option<&[Vec<u8>]>,
        ) -> Result<Self, ConfigError> {
            check_with_rustls(certificate, roots)?;
            let mut tls = TlsConfig::builder();
            if let Some(certificate) = certificate {
                let chain: Vec<Certificate<'static>> =
                    certificate.chain_der().iter().map(|der| Certificate::from_der(der).to_owned()).collect();
                // ureq takes a key from PEM (its key kinds are not public).
                let pem = certificate.to_identity_pem().map_err(|error| ConfigError::tls(&error))?;
                let key = PrivateKey::from_pem(pem.as_bytes()).map_err(|error| ConfigError::tls(&error))?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            if let Some(roots) = roots {
                let roots: Vec<Certificate<'static>> =
                    roots.iter().map(|der| Certificate::from_der(der).to_owned()).collect();
                tls = tls.root_certs(RootCerts::new_with_certs(&roots));
            }
            Ok(Self::with_tls_config(self.timeout, self.body_limit, tls.build()))
        }
    }

    /// What ureq would find out at its first connection (and panic on):
    /// whether rustls takes the roots, and the certificate with its key.
    fn check_with_rustls(
        certificate: Option<&ClientCertificate>,
        roots: Option<&[Vec<u8>]>,
    ) -> Result<(), ConfigError> {
        use rustls::pki_types::{
            CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
        };
        let mut store = rustls::RootCertStore::empty();
        for der in roots.unwrap_or_default() {
            store.add(CertificateDer::from(der.as_slice())).map_err(|error| ConfigError::tls(&error))?;
        }
        let Some(certificate) = certificate else { return Ok(()) };
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| ConfigError::tls(&error))?
            .with_root_certificates(store);
        let chain = certificate.chain_der().iter().map(|der| CertificateDer::from(der.clone())).collect();
        let (format, der) = certificate.private_key_der();
        let key = match format {
            PrivateKeyFormat::Pkcs1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der.to_vec())),
            PrivateKeyFormat::Sec1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der.to_vec())),
            _ => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der.to_vec())),
        };
        builder.with_client_auth_cert(chain, key).map(drop).map_err(|error| ConfigError::tls(&error))
    }

    impl BlockingTransport for UreqTransport {
        fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, TransportError> {
            let limit = request
                .extensions()
                .get::<auth_core::wire::request::MaxBodyBytes>()
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
