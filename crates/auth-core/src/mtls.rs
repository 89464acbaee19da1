//! Mutual TLS (RFC 8705): the client's certificate and its private key,
//! presented in the TLS handshake to the token endpoint (for the
//! `tls_client_auth` and `self_signed_tls_client_auth` methods, and for
//! certificate-bound tokens with any method) and to the APIs that ask for
//! it (a certificate-bound token is only accepted over a connection made
//! with its certificate).
//!
//! This crate does no TLS: it reads and checks the PEM files, keeps the key
//! as a secret and names the certificate by its RFC 8705 `x5t#S256`
//! thumbprint (which keeps the tokens of two certificates apart in the
//! cache). The adapters hand the DER to their TLS library.
//!
//! ```
//! use auth_core::mtls::ClientCertificate;
//!
//! # let (certificate, private_key) = (
//! #     include_str!("../testdata/keys/cert.pem"),
//! #     include_str!("../testdata/keys/ec-p256.pem"),
//! # );
//! let identity = ClientCertificate::from_pem(certificate, private_key, None)?;
//! assert_eq!(identity.chain_der().len(), 1);
//! // The `cnf` claim a certificate-bound token carries names this value.
//! assert_eq!(identity.thumbprint().len(), 43);
//! // Debug output names the certificate, never the key.
//! assert!(!format!("{identity:?}").contains("PRIVATE"));
//! # Ok::<(), auth_core::keys::KeyError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::keys::pem::{pem_blocks, private_key_der, PrivateKeyFormat};
use crate::keys::KeyError;

struct Inner {
    chain: Vec<Vec<u8>>,
    key_format: PrivateKeyFormat,
    key: Zeroizing<Vec<u8>>,
    thumbprint: String,
}

/// A client certificate (with the intermediates that lead to its CA, if
/// any) and its private key. Cheap to clone; the key is zeroized when the
/// last clone is dropped. Its `Debug` shows the thumbprint only.
#[derive(Clone)]
pub struct ClientCertificate(Arc<Inner>);

impl ClientCertificate {
    /// Reads the certificate chain (PEM `CERTIFICATE` blocks, the client's
    /// own first) and the private key (PEM: PKCS#8, PKCS#1, SEC1, or
    /// encrypted PKCS#8 with `password`). The two texts may be one file
    /// holding both; other blocks are skipped.
    ///
    /// Whether the key belongs to the certificate, and whether the TLS
    /// library supports its algorithm, is checked by the adapter when it
    /// builds its TLS configuration.
    pub fn from_pem(certificates: &str, private_key: &str, password: Option<&[u8]>) -> Result<Self, KeyError> {
        Self::with_key(certificates_from_pem(certificates)?, private_key, password)
    }

    /// The certificate `chain` (DER) and the key of the PEM text `private_key`.
    fn with_key(chain: Vec<Vec<u8>>, private_key: &str, password: Option<&[u8]>) -> Result<Self, KeyError> {
        let (key_format, key) = private_key_der(private_key, password)?;
        let thumbprint = URL_SAFE_NO_PAD.encode(crate::text::sha256(&chain[0]));
        Ok(Self(Arc::new(Inner { chain, key_format, key: Zeroizing::new(key.as_bytes().to_vec()), thumbprint })))
    }

    /// Reads the files' `contents` (read by the caller: this crate does no
    /// IO) as [`ClientCertificate::from_pem`] does, with errors that name
    /// the files and never quote them.
    pub fn read_files(
        certificate_path: &str,
        certificate: std::io::Result<String>,
        key_path: &str,
        key: std::io::Result<String>,
        password: Option<&[u8]>,
    ) -> Result<Self, crate::error::ConfigError> {
        let read = |path: &str, contents: std::io::Result<String>| {
            contents.map(Zeroizing::new).map_err(|error| crate::error::ConfigError::KeyFile {
                path: path.to_owned(),
                reason: error.to_string(),
            })
        };
        let (certificate, key) = (read(certificate_path, certificate)?, read(key_path, key)?);
        let chain = certificates_from_pem(&certificate).map_err(|error| crate::error::ConfigError::Key {
            what: format!("the client certificate file `{certificate_path}`"),
            error,
        })?;
        Self::with_key(chain, &key, password).map_err(|error| crate::error::ConfigError::Key {
            what: format!("the client key file `{key_path}`"),
            error,
        })
    }

    /// The certificates, DER, the client's own first.
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.0.chain
    }

    /// The private key's DER and its format. Secret: give it to the TLS
    /// library only.
    pub fn private_key_der(&self) -> (PrivateKeyFormat, &[u8]) {
        (self.0.key_format, &self.0.key)
    }

    /// The private key and the chain as one PEM text (what
    /// `reqwest::Identity::from_pem` reads). Secret: zeroized when dropped.
    pub fn to_identity_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let (chain, key) = self.to_pem_parts()?;
        let mut pem = key;
        pem.push_str(&chain);
        Ok(pem)
    }

    /// The chain (PEM `CERTIFICATE`s) and the private key (PEM in its own
    /// format: `PRIVATE KEY` for PKCS#8), apart: what TLS libraries that
    /// take them separately read. The key is secret: zeroized when dropped.
    pub fn to_pem_parts(&self) -> Result<(String, Zeroizing<String>), KeyError> {
        let label = match self.0.key_format {
            PrivateKeyFormat::Pkcs8 => "PRIVATE KEY",
            PrivateKeyFormat::Pkcs1 => "RSA PRIVATE KEY",
            PrivateKeyFormat::Sec1 => "EC PRIVATE KEY",
        };
        let encode = |label: &'static str, der: &[u8]| {
            pkcs8::der::pem::encode_string(label, pkcs8::LineEnding::LF, der)
                .map_err(|error| KeyError::Malformed { format: "PEM", reason: error.to_string() })
        };
        let key = Zeroizing::new(encode(label, &self.0.key)?);
        let mut chain = String::new();
        for certificate in &self.0.chain {
            chain.push_str(&encode("CERTIFICATE", certificate)?);
        }
        Ok((chain, key))
    }

    /// The RFC 8705 §3.1 `x5t#S256` thumbprint of the client's certificate:
    /// base64url of the SHA-256 of its DER.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.0.thumbprint)
            .field("chain", &self.0.chain.len())
            .finish_non_exhaustive()
    }
}

/// The certificates of a PEM text (its `CERTIFICATE` blocks, DER, in
/// order; other blocks are skipped): a client certificate chain, or the
/// roots a client trusts. At least one is required.
pub fn certificates_from_pem(text: &str) -> Result<Vec<Vec<u8>>, KeyError> {
    let mut certificates = Vec::new();
    for (label, block) in pem_blocks(text)? {
        if label != "CERTIFICATE" {
            continue;
        }
        let (_, der) = pkcs8::Document::from_pem(block)
            .map_err(|error| KeyError::Malformed { format: "certificate", reason: error.to_string() })?;
        certificates.push(der.as_bytes().to_vec());
    }
    if certificates.is_empty() {
        return Err(KeyError::NotACertificate);
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/testdata/keys/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn a_certificate_and_its_key_are_read_in_any_key_format_and_give_one_thumbprint() {
        let certificate = fixture("cert.pem");
        let der = certificates_from_pem(&certificate).unwrap().remove(0);
        let expected = URL_SAFE_NO_PAD.encode(crate::text::sha256(&der));
        for (key, password, format) in [
            (fixture("ec-p256.pem"), None, PrivateKeyFormat::Pkcs8),
            (fixture("ec-p256-sec1.pem"), None, PrivateKeyFormat::Sec1),
            (fixture("rsa-2048-pkcs1.pem"), None, PrivateKeyFormat::Pkcs1),
            (fixture("ec-p256-encrypted.pem"), Some(&b"correct-horse"[..]), PrivateKeyFormat::Pkcs8),
            // One file with both.
            (format!("{}{certificate}", fixture("ec-p256.pem")), None, PrivateKeyFormat::Pkcs8),
        ] {
            let identity = ClientCertificate::from_pem(&certificate, &key, password).unwrap();
            assert_eq!(identity.thumbprint(), expected);
            assert_eq!(identity.private_key_der().0, format);
            assert_eq!(identity.chain_der(), std::slice::from_ref(&der));
            // The identity PEM reads back to the same key and chain.
            let pem = identity.to_identity_pem().unwrap();
            let again = ClientCertificate::from_pem(&pem, &pem, None).unwrap();
            assert_eq!(again.private_key_der(), identity.private_key_der());
            assert_eq!(again.thumbprint(), expected);
        }
        // A P-384 key, which cannot sign JWTs here, still serves TLS.
        assert!(ClientCertificate::from_pem(&certificate, &fixture("ec-p384.pem"), None).is_ok());
    }

    #[test]
    fn wrong_files_say_what_is_wrong_and_never_quote_the_key() {
        let certificate = fixture("cert.pem");
        let key = fixture("ec-p256.pem");
        let err = |c: &str, k: &str, p: Option<&[u8]>| ClientCertificate::from_pem(c, k, p).unwrap_err();
        assert_eq!(err(&key, &key, None), KeyError::NotACertificate);
        assert_eq!(err("", &key, None), KeyError::NotACertificate);
        assert_eq!(err(&certificate, &certificate, None), KeyError::WrongPemBlock { label: "CERTIFICATE".into() });
        assert_eq!(err(&certificate, &fixture("ec-p256.pub.pem"), None), KeyError::PublicKeyOnly);
        assert_eq!(err(&certificate, &fixture("ec-p256-encrypted.pem"), None), KeyError::PasswordNeeded);
        assert_eq!(err(&certificate, &fixture("ec-p256-encrypted.pem"), Some(b"wrong")), KeyError::WrongPassword);
        assert!(matches!(
            err(&certificate, &fixture("ec-legacy-encrypted.pem"), Some(b"x")),
            KeyError::Unsupported { .. }
        ));
        let broken = certificate.replace("MII", "MIX");
        assert!(matches!(err(&broken, &key, None), KeyError::Malformed { format: "certificate", .. }));

        let error = ClientCertificate::read_files(
            "/etc/client.crt",
            Ok(certificate.clone()),
            "/etc/client.key",
            Ok(fixture("ec-p256.pub.pem")),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`/etc/client.key`") && error.contains("public key"), "{error}");
        let error =
            ClientCertificate::read_files("/etc/client.crt", Ok(key.clone()), "/etc/client.key", Ok(key.clone()), None)
                .unwrap_err()
                .to_string();
        assert!(error.contains("`/etc/client.crt`") && error.contains("CERTIFICATE"), "{error}");
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = ClientCertificate::read_files("/etc/client.crt", Err(missing), "/etc/client.key", Ok(key), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("`/etc/client.crt`") && error.contains("No such file"), "{error}");
    }

    #[test]
    fn debug_shows_the_thumbprint_and_no_key_material() {
        let key = fixture("ec-p256.pem");
        let identity = ClientCertificate::from_pem(&fixture("cert.pem"), &key, None).unwrap();
        let debug = format!("{identity:?}");
        assert!(debug.contains(identity.thumbprint()), "{debug}");
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!debug.contains(&body[..20]) && !debug.contains("PRIVATE"), "{debug}");
    }
}
