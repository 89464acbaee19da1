//! The provider's TLS listener (RFC 8705 mutual TLS): a certificate
//! authority of its own that signs the server's certificate and the client
//! certificates it hands out, a handshake that asks every client for a
//! certificate (and checks that the client holds its key), and the
//! connection's certificate chain handed to the routes.

use std::sync::Arc;

use axum::Router;
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tower::ServiceExt as _;

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct CertificatePem {
    /// The certificate.
    pub certificate: String,
    /// Its private key (PKCS#8).
    pub private_key: String,
}

impl std::fmt::Debug for CertificatePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificatePem").field("thumbprint", &thumbprint_of_pem(&self.certificate)).finish()
    }
}

/// A new self-signed certificate with common name `subject`, for a
/// `self_signed_tls_client_auth` client.
pub fn self_signed_certificate(subject: &str) -> CertificatePem {
    let key = KeyPair::generate().expect("a P-256 key");
    let mut params = CertificateParams::new(Vec::new()).expect("certificate parameters");
    params.distinguished_name.push(DnType::CommonName, subject);
    let certificate = params.self_signed(&key).expect("a self-signed certificate");
    CertificatePem { certificate: certificate.pem(), private_key: key.serialize_pem() }
}

/// The RFC 8705 `x5t#S256` of a DER certificate.
pub(crate) fn thumbprint(der: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, der))
}

/// The DER of the first certificate of a PEM text.
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|line| !line.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|line| !line.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// The thumbprint of the first certificate of a PEM text.
pub(crate) fn thumbprint_of_pem(pem: &str) -> Option<String> {
    certificate_der(pem).map(|der| thumbprint(&der))
}

/// The provider's certificate authority.
pub(crate) struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    pub(crate) fn new() -> Self {
        let mut params = CertificateParams::new(Vec::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "auth-testkit CA");
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a CA key")).expect("a CA");
        Self { issuer }
    }

    pub(crate) fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `subject` signed by the authority: `127.0.0.1`
    /// for the server, a common name for a client.
    pub(crate) fn issue(&self, subject: &str, server: bool) -> CertificatePem {
        let key = KeyPair::generate().expect("a P-256 key");
        let names = if server { vec![subject.to_owned()] } else { Vec::new() };
        let mut params = CertificateParams::new(names).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, subject);
        let certificate = params.signed_by(&key, &self.issuer).expect("a certificate");
        CertificatePem { certificate: certificate.pem(), private_key: key.serialize_pem() }
    }

    /// The server's TLS configuration: its certificate for 127.0.0.1, and a
    /// request for a client certificate in every handshake.
    pub(crate) fn server_config(&self) -> std::io::Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = self.issue("127.0.0.1", true);
        let key = KeyPair::from_pem(&server.private_key).map_err(std::io::Error::other)?;
        let der = certificate_der(&server.certificate).ok_or_else(|| std::io::Error::other("no server certificate"))?;
        let chain = vec![CertificateDer::from(der), self.issuer.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_client_cert_verifier(Arc::new(AnyClientCertificate { provider }))
            .with_single_cert(chain, key)
            .map_err(std::io::Error::other)
    }
}

/// Asks for a client certificate, accepts any (the routes decide what it
/// is worth) but only from a client that proves it holds the key.
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// What the routes learn of a TLS connection: its base URL and the
/// thumbprint of the client's certificate, if it showed one.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    pub(crate) base_url: String,
    pub(crate) client_certificate: Option<String>,
}

/// Serves `app` over TLS on `listener`, each request carrying its
/// [`Connection`].
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    config: rustls::ServerConfig,
    app: Router,
    base_url: String,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let (acceptor, app, base_url) = (acceptor.clone(), app.clone(), base_url.clone());
        tokio::spawn(async move {
            // A client that fails the handshake (an untrusted server
            // certificate, no proof of its key) just goes away.
            let Ok(Ok(tls)) = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await
            else {
                return;
            };
            let client_certificate =
                tls.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(|leaf| thumbprint(leaf));
            let connection = Connection { base_url, client_certificate };
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(connection.clone());
                app.clone().oneshot(request)
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
        });
    }
}
