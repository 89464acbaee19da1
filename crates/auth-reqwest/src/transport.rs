//! The token endpoint transport on reqwest.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use auth_core::mtls::ClientCertificate;
use auth_core::{ConfigError, SourceConfig, TokenError};
use http::header::ACCEPT;
use http::HeaderValue;
use tower::Service;

/// Default timeout of one token request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the core's token requests with reqwest.
///
/// Built by [`ReqwestTransport::new`], its client never follows redirects
/// (a token request, with the client secret in it, is never re-sent to
/// another place), has a timeout, and asks for JSON. The response body is
/// streamed to the [`TokenSource`](auth_tower::TokenSource), which stops
/// reading at the configuration's size cap (64 KiB by default).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport with its own client: no redirects, a 30 s timeout.
    pub fn new() -> Result<Self, reqwest::Error> {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// A transport with its own client: no redirects, the given timeout.
    pub fn with_timeout(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(timeout).build()?;
        Ok(Self { client })
    }

    /// A transport for `config`: no redirects, the given timeout, and the
    /// configuration's client certificate (RFC 8705 mutual TLS) when it has
    /// one. A certificate the TLS library refuses (a key that is not the
    /// certificate's, an algorithm it does not support) is a
    /// [`ConfigError::Tls`].
    pub fn for_config(config: &SourceConfig, timeout: Duration) -> Result<Self, ConfigError> {
        let tls = Tls { certificate: config.client_certificate().cloned(), roots: None };
        Self::with_tls(timeout, &tls)
    }

    /// A transport with its own client: no redirects, `timeout`, `tls`.
    pub(crate) fn with_tls(timeout: Duration, tls: &Tls) -> Result<Self, ConfigError> {
        let builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(timeout);
        let client = tls.apply(builder)?.build().map_err(|error| ConfigError::tls(&error))?;
        Ok(Self { client })
    }

    /// A transport over a client of yours (proxy settings, custom roots...).
    /// Build it with `redirect(reqwest::redirect::Policy::none())`: a token
    /// request must never follow a redirect.
    pub fn from_client(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Service<http::Request<Vec<u8>>> for ReqwestTransport {
    type Response = http::Response<reqwest::Body>;
    /// A failure below HTTP, already classified: reqwest's own timeout is
    /// a timeout (`TokenError::Transport { timeout: true, .. }`), anything
    /// else is a transport failure. The message holds no URL.
    type Error = TokenError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Vec<u8>>) -> Self::Future {
        request.headers_mut().entry(ACCEPT).or_insert(HeaderValue::from_static("application/json"));
        let client = self.client.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(token_error)?;
            let response = client.execute(request).await.map_err(token_error)?;
            Ok(http::Response::from(response))
        })
    }
}

/// The reqwest identity of a client certificate (RFC 8705 mutual TLS), for
/// a `reqwest::Client` you build yourself
/// (`reqwest::ClientBuilder::identity`): give it to the client of the
/// [`ReqwestTransport::from_client`] and, for certificate-bound tokens, to
/// the client that calls the API.
#[cfg(feature = "rustls")]
pub fn client_identity(certificate: &ClientCertificate) -> Result<reqwest::Identity, ConfigError> {
    let pem = certificate.to_identity_pem().map_err(|error| ConfigError::tls(&error))?;
    reqwest::Identity::from_pem(pem.as_bytes()).map_err(|error| ConfigError::tls(&error))
}

/// The reqwest identity of a client certificate, for the platform's TLS
/// library (feature `native-tls` without `rustls`): it reads only PKCS#8
/// private keys.
#[cfg(all(feature = "native-tls", not(feature = "rustls")))]
pub fn client_identity(certificate: &ClientCertificate) -> Result<reqwest::Identity, ConfigError> {
    if certificate.private_key_der().0 != auth_core::keys::PrivateKeyFormat::Pkcs8 {
        return Err(ConfigError::Tls {
            reason: "the platform's TLS library (native-tls) reads only PKCS#8 private keys: convert the key \
                     (`openssl pkcs8 -topk8 -nocrypt`) or use the `rustls` feature"
                .to_owned(),
        });
    }
    let (chain, key) = certificate.to_pem_parts().map_err(|error| ConfigError::tls(&error))?;
    reqwest::Identity::from_pkcs8_pem(chain.as_bytes(), key.as_bytes()).map_err(|error| ConfigError::tls(&error))
}

/// `builder` with a client certificate to present (RFC 8705 mutual TLS)
/// and, when `roots` are given, trusting only those CA certificates (DER)
/// instead of the built-in web roots: what [`AuthClient`](crate::AuthClient)
/// does to its clients, for a `reqwest::Client` you build yourself.
///
/// Built without a TLS feature (`rustls`, `native-tls`), only plain http
/// can be spoken: a certificate or roots given are a configuration error.
#[cfg(not(any(feature = "rustls", feature = "native-tls")))]
pub fn with_tls(
    builder: reqwest::ClientBuilder,
    certificate: Option<&ClientCertificate>,
    roots: Option<&[Vec<u8>]>,
) -> Result<reqwest::ClientBuilder, ConfigError> {
    if certificate.is_some() || roots.is_some() {
        return Err(ConfigError::Tls {
            reason: "auth-reqwest was built without TLS: turn on its `rustls` or `native-tls` feature".to_owned(),
        });
    }
    Ok(builder)
}

/// `builder` with a client certificate to present (RFC 8705 mutual TLS)
/// and, when `roots` are given, trusting only those CA certificates (DER)
/// instead of the built-in web roots: what [`AuthClient`](crate::AuthClient)
/// does to its clients, for a `reqwest::Client` you build yourself.
#[cfg(any(feature = "rustls", feature = "native-tls"))]
pub fn with_tls(
    mut builder: reqwest::ClientBuilder,
    certificate: Option<&ClientCertificate>,
    roots: Option<&[Vec<u8>]>,
) -> Result<reqwest::ClientBuilder, ConfigError> {
    // With both TLS features, rustls (the identity above is rustls's).
    #[cfg(feature = "rustls")]
    {
        builder = builder.use_rustls_tls();
    }
    if let Some(certificate) = certificate {
        builder = builder.identity(client_identity(certificate)?);
    }
    if let Some(roots) = roots {
        builder = builder.tls_built_in_root_certs(false);
        for der in roots {
            let root = reqwest::Certificate::from_der(der).map_err(|error| ConfigError::tls(&error))?;
            builder = builder.add_root_certificate(root);
        }
    }
    Ok(builder)
}

/// The TLS settings of the clients an [`AuthClient`](crate::AuthClient)
/// builds: the client certificate to present, the roots to trust instead
/// of the built-in ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tls {
    pub(crate) certificate: Option<ClientCertificate>,
    pub(crate) roots: Option<Vec<Vec<u8>>>,
}

impl Tls {
    pub(crate) fn apply(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, ConfigError> {
        with_tls(builder, self.certificate.as_ref(), self.roots.as_deref())
    }
}

/// A reqwest error as a token error: timeouts recognised, no URL.
pub(crate) fn token_error(error: reqwest::Error) -> TokenError {
    let timeout = error.is_timeout();
    TokenError::from_error(&error.without_url(), timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reqwest_timeouts_are_timeouts() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", silent.local_addr().unwrap());
        let mut transport = ReqwestTransport::with_timeout(Duration::from_millis(200)).unwrap();
        let request = http::Request::post(&url).body(b"grant_type=client_credentials".to_vec()).unwrap();
        let error = transport.call(request).await.unwrap_err();
        assert!(matches!(error, TokenError::Transport { timeout: true, .. }), "{error:?}");
        assert!(error.to_string().contains("timed out"), "{error}");
        assert!(!error.to_string().contains("unreachable"), "{error}");
        drop(silent);
    }
}
