//! Signing keys and JSON Web Signatures: the private keys behind
//! `private_key_jwt` client assertions (RFC 7523 §2.2), the JWT bearer
//! grant (RFC 7523 §2.1) and DPoP proofs (RFC 9449).
//!
//! The signatures come from the RustCrypto crates (`p256`, `ed25519-dalek`,
//! `rsa`, `hmac`); this module reads keys, chooses the algorithm and lays
//! out the compact JWS. A [`SigningKey`] is a secret: its `Debug` shows the
//! algorithm, the key id and the public thumbprint, never the key, and the
//! key material is zeroized when the last clone is dropped.
//!
//! ```
//! use auth_core::keys::{Algorithm, SigningKey};
//!
//! let key = SigningKey::generate_es256()?.with_key_id("k1");
//! assert_eq!(key.algorithm(), Algorithm::Es256);
//! let jwt = key.sign_jwt("JWT", &serde_json::json!({"iss": "my-client"}))?;
//! assert_eq!(jwt.split('.').count(), 3);
//!
//! // Keys come from PEM (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8) or JWK.
//! let pem = key.to_pkcs8_pem()?;
//! let again = SigningKey::from_pem(&pem)?;
//! assert_eq!(again.thumbprint(), key.thumbprint());
//! assert!(!format!("{again:?}").contains("PRIVATE"));
//! # Ok::<(), auth_core::keys::KeyError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::Signer as _;
use pkcs8::der::Decode as _;
use pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// A JWS signature algorithm (RFC 7518 §3, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256 (salt of 32 bytes).
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
    /// HMAC with SHA-256: `client_secret_jwt`, keyed with the client secret.
    Hs256,
}

impl Algorithm {
    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }

    /// Parses a JWS `alg` name (`RS256`, `PS256`, `ES256`, `EdDSA`, `HS256`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "PS256" => Self::Ps256,
            "ES256" => Self::Es256,
            "EdDSA" => Self::EdDsa,
            "HS256" => Self::Hs256,
            _ => return None,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be read or used. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Neither a PEM private key nor a JWK.
    #[error(
        "no private key found: expected a PEM block (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY` \
         or `ENCRYPTED PRIVATE KEY`) or a JSON Web Key with its private part"
    )]
    NotAKey,
    /// A PEM block of another kind (a certificate, a public key...).
    #[error("the PEM block is a `{label}`, not a private key; give the private key that goes with it")]
    WrongPemBlock {
        /// The PEM label found.
        label: String,
    },
    /// No certificate where one is needed (a client certificate, a root).
    #[error("no certificate found: expected PEM `CERTIFICATE` blocks")]
    NotACertificate,
    /// A public key where a private key is needed.
    #[error("this is a public key; signing needs the private key (a JWK with `d`, or a PEM `PRIVATE KEY`)")]
    PublicKeyOnly,
    /// An encrypted key and no password.
    #[error("the private key is encrypted; give its password")]
    PasswordNeeded,
    /// The password did not decrypt the key.
    #[error("the private key could not be decrypted: wrong password, or an encryption scheme this library does not read (PBES2 with PBKDF2 or scrypt and AES-CBC)")]
    WrongPassword,
    /// A key of a kind or size that cannot be used.
    #[error(
        "unsupported key: {what}; use an RSA key of 2048 bits or more, a P-256 (prime256v1) EC key or an Ed25519 key"
    )]
    Unsupported {
        /// What was found.
        what: String,
    },
    /// A key that does not parse.
    #[error("the {format} key is malformed: {reason}")]
    Malformed {
        /// `PKCS#8`, `PKCS#1`, `SEC1` or `JWK`.
        format: &'static str,
        /// What is wrong (never key material).
        reason: String,
    },
    /// The key cannot sign with the algorithm asked for.
    #[error("a {key} key cannot sign {algorithm}")]
    AlgorithmMismatch {
        /// The kind of key.
        key: &'static str,
        /// The algorithm asked for.
        algorithm: Algorithm,
    },
    /// The key id cannot go in a JWS header.
    #[error("the key id holds control characters; use the `kid` the provider registered")]
    InvalidKeyId,
    /// The operating system gave no randomness.
    #[error("the operating system's random number generator failed: {reason}")]
    NoRandomness {
        /// The operating system's words.
        reason: String,
    },
    /// The signature could not be made.
    #[error("signing failed: {reason}")]
    Signing {
        /// The signature library's words.
        reason: String,
    },
}

enum Key {
    #[cfg(feature = "rsa")]
    Rs256(rsa::pkcs1v15::SigningKey<Sha256>),
    #[cfg(feature = "rsa")]
    Ps256(rsa::pss::BlindedSigningKey<Sha256>),
    Es256(p256::ecdsa::SigningKey),
    EdDsa(Box<ed25519_dalek::SigningKey>),
    Hs256(Zeroizing<Vec<u8>>),
}

struct Inner {
    key: Key,
    key_id: Option<String>,
}

/// A private (or, for `HS256`, shared) key that signs JWTs. Cheap to
/// clone; the key material is zeroized when the last clone is dropped.
/// Its `Debug` shows the algorithm, the key id and the RFC 7638
/// thumbprint of the public key, never the key.
#[derive(Clone)]
pub struct SigningKey(Arc<Inner>);

/// The smallest RSA modulus accepted (RFC 7518 §3.3).
#[cfg(feature = "rsa")]
const MIN_RSA_BITS: usize = 2048;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn malformed(format: &'static str) -> impl Fn(pkcs8::Error) -> KeyError {
    move |error| KeyError::Malformed { format, reason: error.to_string() }
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut *bytes).map_err(|error| KeyError::NoRandomness { reason: error.to_string() })?;
    Ok(bytes)
}

impl SigningKey {
    fn new(key: Key) -> Self {
        Self(Arc::new(Inner { key, key_id: None }))
    }

    /// Reads a private key from a PEM file's text: PKCS#8 (`PRIVATE KEY`),
    /// PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). Other blocks
    /// in the text (certificates, `EC PARAMETERS`) are skipped. RSA keys
    /// sign RS256 (see [`SigningKey::with_algorithm`] for PS256), P-256
    /// keys ES256 and Ed25519 keys EdDSA.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_pem_with_password(pem, None)
    }

    /// Like [`SigningKey::from_pem`], for a key that may be encrypted
    /// (`ENCRYPTED PRIVATE KEY`, PKCS#8 PBES2) with `password`.
    pub fn from_pem_with_password(pem: &str, password: Option<&[u8]>) -> Result<Self, KeyError> {
        let (format, der) = private_key_der(pem, password)?;
        match format {
            PrivateKeyFormat::Pkcs8 => Self::from_pkcs8_der(der.as_bytes()),
            PrivateKeyFormat::Pkcs1 => rsa_key(der.as_bytes(), true),
            PrivateKeyFormat::Sec1 => {
                let secret = p256::SecretKey::from_sec1_der(der.as_bytes()).map_err(|_| KeyError::Malformed {
                    format: "SEC1",
                    reason: "not a P-256 private key (only the P-256 curve signs ES256)".to_owned(),
                })?;
                Ok(Self::new(Key::Es256(secret.into())))
            }
        }
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` (DER).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        const RSA: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
        const EC: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
        const P256: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
        const ED25519: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.101.112");
        let info = pkcs8::PrivateKeyInfo::from_der(der)
            .map_err(|error| KeyError::Malformed { format: "PKCS#8", reason: error.to_string() })?;
        let oid = info.algorithm.oid;
        if oid == RSA {
            rsa_key(der, false)
        } else if oid == EC {
            let curve = info.algorithm.parameters_oid().ok();
            if curve != Some(P256) {
                let what = match curve {
                    Some(curve) => format!("an EC key on the curve {curve} (ES256 needs P-256, 1.2.840.10045.3.1.7)"),
                    None => "an EC key without a named curve".to_owned(),
                };
                return Err(KeyError::Unsupported { what });
            }
            let key = p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(malformed("PKCS#8"))?;
            Ok(Self::new(Key::Es256(key)))
        } else if oid == ED25519 {
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(malformed("PKCS#8"))?;
            Ok(Self::new(Key::EdDsa(Box::new(key))))
        } else {
            Err(KeyError::Unsupported { what: format!("a key of algorithm {oid}") })
        }
    }

    /// Reads a private JSON Web Key (RFC 7517): `EC` on `P-256`, `RSA`
    /// (with `p` and `q`) or `OKP` on `Ed25519`. Its `kid` becomes the key
    /// id and its `alg`, when present, the algorithm. A JWK Set holding
    /// exactly one private key is accepted too.
    pub fn from_jwk(json: &str) -> Result<Self, KeyError> {
        let bad = |reason: &str| KeyError::Malformed { format: "JWK", reason: reason.to_owned() };
        let value: Value = serde_json::from_str(json).map_err(|_| bad("not a JSON object"))?;
        let jwk = match value.get("keys").and_then(Value::as_array) {
            Some(keys) => {
                let private: Vec<&Value> = keys.iter().filter(|k| k.get("d").is_some()).collect();
                match private.as_slice() {
                    [one] => *one,
                    [] if keys.is_empty() => return Err(bad("the JWK Set is empty")),
                    [] => return Err(KeyError::PublicKeyOnly),
                    many => {
                        return Err(bad(&format!(
                            "the JWK Set holds {} private keys; give a file with the one to sign with",
                            many.len()
                        )))
                    }
                }
            }
            None => &value,
        };
        let jwk = jwk.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &'static str| -> Result<Zeroizing<Vec<u8>>, KeyError> {
            let value = text(name).ok_or_else(|| bad(&format!("member `{name}` is missing")))?;
            URL_SAFE_NO_PAD
                .decode(value.trim_end_matches('='))
                .map(Zeroizing::new)
                .map_err(|_| bad(&format!("member `{name}` is not base64url")))
        };
        if jwk.get("d").is_none() {
            return Err(if text("kty") == Some("oct") {
                bad("a symmetric key (`oct`)")
            } else {
                KeyError::PublicKeyOnly
            });
        }
        let key = match (text("kty"), text("crv")) {
            (Some("EC"), Some("P-256")) => {
                let secret = p256::SecretKey::from_slice(&bytes("d")?).map_err(|_| bad("`d` is not a P-256 scalar"))?;
                let point = p256::EncodedPoint::from(secret.public_key());
                let matches = point.x().map(|x| x.as_slice()) == Some(&bytes("x")?[..])
                    && point.y().map(|y| y.as_slice()) == Some(&bytes("y")?[..]);
                if !matches {
                    return Err(bad("`x` and `y` are not the public key of `d`"));
                }
                Key::Es256(secret.into())
            }
            (Some("EC"), curve) => {
                return Err(KeyError::Unsupported { what: format!("an EC key on the curve {}", curve.unwrap_or("?")) })
            }
            (Some("OKP"), Some("Ed25519")) => {
                let seed: [u8; 32] = bytes("d")?.as_slice().try_into().map_err(|_| bad("`d` is not 32 bytes"))?;
                let seed = Zeroizing::new(seed);
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                if key.verifying_key().as_bytes()[..] != bytes("x")?[..] {
                    return Err(bad("`x` is not the public key of `d`"));
                }
                Key::EdDsa(Box::new(key))
            }
            (Some("OKP"), curve) => {
                return Err(KeyError::Unsupported { what: format!("an OKP key on the curve {}", curve.unwrap_or("?")) })
            }
            #[cfg(feature = "rsa")]
            (Some("RSA"), _) => {
                let int = |name| bytes(name).map(|b| rsa::BigUint::from_bytes_be(&b));
                let key =
                    rsa::RsaPrivateKey::from_components(int("n")?, int("e")?, int("d")?, vec![int("p")?, int("q")?])
                        .map_err(|error| bad(&error.to_string()))?;
                key.validate().map_err(|error| bad(&error.to_string()))?;
                rsa_checked(key)?
            }
            (Some(kty), _) => return Err(KeyError::Unsupported { what: format!("a JWK of type `{kty}`") }),
            (None, _) => return Err(bad("member `kty` is missing")),
        };
        let mut key = Self::new(key);
        if let Some(alg) = text("alg") {
            let alg = Algorithm::parse(alg)
                .ok_or_else(|| KeyError::Unsupported { what: format!("the JWK's algorithm `{alg}`") })?;
            key = key.with_algorithm(alg)?;
        }
        match text("kid") {
            Some(kid) => key.try_with_key_id(kid),
            None => Ok(key),
        }
    }

    /// Reads a key from a file's text: a JWK when it starts with `{`,
    /// PEM otherwise. `password` decrypts an encrypted PKCS#8 key.
    pub fn parse(text: &str, password: Option<&[u8]>) -> Result<Self, KeyError> {
        if text.trim_start().starts_with('{') {
            Self::from_jwk(text)
        } else {
            Self::from_pem_with_password(text, password)
        }
    }

    /// Reads a key file's `contents` (as [`SigningKey::parse`]), with
    /// errors that name `path` and never hold the file's content.
    pub fn read_file(
        path: &str,
        contents: std::io::Result<String>,
        password: Option<&[u8]>,
    ) -> Result<Self, crate::error::ConfigError> {
        let text = Zeroizing::new(contents.map_err(|error| crate::error::ConfigError::KeyFile {
            path: path.to_owned(),
            reason: error.to_string(),
        })?);
        Self::parse(&text, password)
            .map_err(|error| crate::error::ConfigError::Key { what: format!("the key file `{path}`"), error })
    }

    /// A new P-256 key for ES256 (DPoP's default), from the operating
    /// system's randomness.
    pub fn generate_es256() -> Result<Self, KeyError> {
        // A random 256-bit string is a valid scalar but with probability ~2^-32.
        for _ in 0..8 {
            let bytes = random_bytes::<32>()?;
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&bytes[..]) {
                return Ok(Self::new(Key::Es256(key)));
            }
        }
        Err(KeyError::NoRandomness { reason: "no valid P-256 scalar in 8 draws".to_owned() })
    }

    /// An `HS256` key: `client_secret_jwt` signs with the client secret.
    pub fn hmac_sha256(secret: &[u8]) -> Self {
        Self::new(Key::Hs256(Zeroizing::new(secret.to_vec())))
    }

    /// Names the key (`kid` in every JWS header). Use
    /// [`SigningKey::try_with_key_id`] for a value read from elsewhere.
    ///
    /// # Panics
    ///
    /// If `kid` holds control characters.
    #[allow(clippy::panic)]
    pub fn with_key_id(self, kid: impl Into<String>) -> Self {
        match self.try_with_key_id(kid) {
            Ok(key) => key,
            Err(error) => panic!("{error}"),
        }
    }

    /// Names the key (`kid` in every JWS header).
    pub fn try_with_key_id(self, kid: impl Into<String>) -> Result<Self, KeyError> {
        let kid = kid.into();
        if kid.is_empty() || kid.chars().any(char::is_control) {
            return Err(KeyError::InvalidKeyId);
        }
        let mut inner = self.into_inner();
        inner.key_id = Some(kid);
        Ok(Self(Arc::new(inner)))
    }

    fn into_inner(self) -> Inner {
        Arc::try_unwrap(self.0)
            .unwrap_or_else(|shared| Inner { key: shared.key.duplicate(), key_id: shared.key_id.clone() })
    }

    /// Chooses the algorithm: an RSA key signs RS256 or PS256; other keys
    /// have exactly one.
    pub fn with_algorithm(self, algorithm: Algorithm) -> Result<Self, KeyError> {
        if self.algorithm() == algorithm {
            return Ok(self);
        }
        let Inner { key, key_id } = self.into_inner();
        let key = match (key, algorithm) {
            #[cfg(feature = "rsa")]
            (Key::Rs256(key), Algorithm::Ps256) => {
                Ok(Key::Ps256(rsa::pss::BlindedSigningKey::new(key.as_ref().clone())))
            }
            #[cfg(feature = "rsa")]
            (Key::Ps256(key), Algorithm::Rs256) => Ok(Key::Rs256(rsa::pkcs1v15::SigningKey::new(key.as_ref().clone()))),
            (key, algorithm) => Err(KeyError::AlgorithmMismatch { key: key.kind(), algorithm }),
        }?;
        Ok(Self(Arc::new(Inner { key, key_id })))
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> Algorithm {
        match &self.0.key {
            #[cfg(feature = "rsa")]
            Key::Rs256(_) => Algorithm::Rs256,
            #[cfg(feature = "rsa")]
            Key::Ps256(_) => Algorithm::Ps256,
            Key::Es256(_) => Algorithm::Es256,
            Key::EdDsa(_) => Algorithm::EdDsa,
            Key::Hs256(_) => Algorithm::Hs256,
        }
    }

    /// The key id, if set.
    pub fn key_id(&self) -> Option<&str> {
        self.0.key_id.as_deref()
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, `y` / `n`, `e`), without
    /// `kid` or `alg`; `None` for an `HS256` key.
    pub fn public_jwk(&self) -> Option<Map<String, Value>> {
        let mut jwk = Map::new();
        let mut put = |name: &str, value: String| jwk.insert(name.to_owned(), Value::String(value));
        match &self.0.key {
            #[cfg(feature = "rsa")]
            Key::Rs256(key) => rsa_public(key.as_ref(), &mut put),
            #[cfg(feature = "rsa")]
            Key::Ps256(key) => rsa_public(key.as_ref(), &mut put),
            Key::Es256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                put("kty", "EC".to_owned());
                put("crv", "P-256".to_owned());
                put("x", b64(point.x().map(|x| x.as_slice()).unwrap_or_default()));
                put("y", b64(point.y().map(|y| y.as_slice()).unwrap_or_default()));
            }
            Key::EdDsa(key) => {
                put("kty", "OKP".to_owned());
                put("crv", "Ed25519".to_owned());
                put("x", b64(key.verifying_key().as_bytes()));
            }
            Key::Hs256(_) => return None,
        }
        Some(jwk)
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, base64url: DPoP's
    /// `jkt`. `None` for an `HS256` key.
    pub fn thumbprint(&self) -> Option<String> {
        // serde_json's map is sorted and compact: the RFC 7638 form, as the
        // members are the required ones only and plain base64url strings.
        let canonical = serde_json::to_string(&self.public_jwk()?).ok()?;
        Some(b64(&Sha256::digest(canonical.as_bytes())))
    }

    /// The private key as unencrypted PKCS#8 PEM, to keep it in a file
    /// only its owner can read. Not for `HS256` keys.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let encoded = match &self.0.key {
            #[cfg(feature = "rsa")]
            Key::Rs256(key) => key.as_ref().to_pkcs8_pem(LineEnding::LF),
            #[cfg(feature = "rsa")]
            Key::Ps256(key) => key.as_ref().to_pkcs8_pem(LineEnding::LF),
            Key::Es256(key) => key.to_pkcs8_pem(LineEnding::LF),
            Key::EdDsa(key) => key.to_pkcs8_pem(LineEnding::LF),
            Key::Hs256(_) => {
                return Err(KeyError::AlgorithmMismatch { key: "shared secret", algorithm: Algorithm::Es256 })
            }
        };
        encoded.map_err(|error| KeyError::Malformed { format: "PKCS#8", reason: error.to_string() })
    }

    /// Signs `claims` as a compact JWS with header `{"alg", "typ", "kid"}`.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> Result<String, KeyError> {
        self.sign_jwt_with(typ, Map::new(), claims)
    }

    /// Signs `claims` as a compact JWS; `header` adds members (such as
    /// `jwk`) to `alg`, `typ` and, when set, `kid`.
    pub fn sign_jwt_with(&self, typ: &str, mut header: Map<String, Value>, claims: &Value) -> Result<String, KeyError> {
        header.insert("alg".to_owned(), Value::String(self.algorithm().as_str().to_owned()));
        header.insert("typ".to_owned(), Value::String(typ.to_owned()));
        if let Some(kid) = self.key_id() {
            header.insert("kid".to_owned(), Value::String(kid.to_owned()));
        }
        let json =
            |value: &Value| serde_json::to_vec(value).map_err(|error| KeyError::Signing { reason: error.to_string() });
        let mut jws = b64(&json(&Value::Object(header))?);
        jws.push('.');
        jws.push_str(&b64(&json(claims)?));
        let signature = self.sign(jws.as_bytes())?;
        jws.push('.');
        jws.push_str(&b64(&signature));
        Ok(jws)
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.0.key {
            #[cfg(feature = "rsa")]
            Key::Rs256(key) => rsa_sign(key, message),
            #[cfg(feature = "rsa")]
            Key::Ps256(key) => rsa_sign(key, message),
            Key::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                Ok(signature.to_bytes().to_vec())
            }
            Key::EdDsa(key) => Ok(ed25519_dalek::Signer::sign(key.as_ref(), message).to_bytes().to_vec()),
            Key::Hs256(secret) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(secret)
                    .map_err(|error| KeyError::Signing { reason: error.to_string() })?;
                mac.update(message);
                Ok(mac.finalize().into_bytes().to_vec())
            }
        }
    }
}

impl Key {
    fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "rsa")]
            Self::Rs256(_) | Self::Ps256(_) => "RSA",
            Self::Es256(_) => "P-256",
            Self::EdDsa(_) => "Ed25519",
            Self::Hs256(_) => "shared secret",
        }
    }

    fn duplicate(&self) -> Self {
        match self {
            #[cfg(feature = "rsa")]
            Self::Rs256(key) => Self::Rs256(key.clone()),
            #[cfg(feature = "rsa")]
            Self::Ps256(key) => Self::Ps256(key.clone()),
            Self::Es256(key) => Self::Es256(key.clone()),
            Self::EdDsa(key) => Self::EdDsa(key.clone()),
            Self::Hs256(secret) => Self::Hs256(secret.clone()),
        }
    }
}

/// An RSA signature with blinding (a fresh random factor per signature).
#[cfg(feature = "rsa")]
fn rsa_sign<S, Sig>(key: &S, message: &[u8]) -> Result<Vec<u8>, KeyError>
where
    S: rsa::signature::RandomizedSigner<Sig>,
    Sig: rsa::signature::SignatureEncoding,
{
    let signature = key
        .try_sign_with_rng(&mut rand_core::OsRng, message)
        .map_err(|error| KeyError::Signing { reason: error.to_string() })?;
    Ok(signature.to_vec())
}

#[cfg(feature = "rsa")]
fn rsa_public(key: &rsa::RsaPrivateKey, put: &mut impl FnMut(&str, String) -> Option<Value>) {
    use rsa::traits::PublicKeyParts as _;
    put("kty", "RSA".to_owned());
    put("n", b64(&key.n().to_bytes_be()));
    put("e", b64(&key.e().to_bytes_be()));
}

#[cfg(feature = "rsa")]
fn rsa_checked(key: rsa::RsaPrivateKey) -> Result<Key, KeyError> {
    use rsa::traits::PublicKeyParts as _;
    let bits = key.size() * 8;
    if bits < MIN_RSA_BITS {
        return Err(KeyError::Unsupported { what: format!("an RSA key of {bits} bits") });
    }
    Ok(Key::Rs256(rsa::pkcs1v15::SigningKey::new(key)))
}

#[cfg(feature = "rsa")]
fn rsa_key(der: &[u8], pkcs1: bool) -> Result<SigningKey, KeyError> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    let key = if pkcs1 {
        rsa::RsaPrivateKey::from_pkcs1_der(der)
            .map_err(|error| KeyError::Malformed { format: "PKCS#1", reason: error.to_string() })?
    } else {
        rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(malformed("PKCS#8"))?
    };
    Ok(SigningKey::new(rsa_checked(key)?))
}

#[cfg(not(feature = "rsa"))]
fn rsa_key(_der: &[u8], _pkcs1: bool) -> Result<SigningKey, KeyError> {
    Err(KeyError::Unsupported { what: "an RSA key (auth-core was built without its `rsa` feature)".to_owned() })
}

/// How a private key's DER is laid out, after its PEM label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrivateKeyFormat {
    /// PKCS#8 `PrivateKeyInfo` (`PRIVATE KEY`; an `ENCRYPTED PRIVATE KEY`
    /// once decrypted).
    Pkcs8,
    /// PKCS#1 `RSAPrivateKey` (`RSA PRIVATE KEY`).
    Pkcs1,
    /// SEC1 `ECPrivateKey` (`EC PRIVATE KEY`).
    Sec1,
}

/// The blocks of a PEM text, `(label, whole block)`, in order.
pub(crate) fn pem_blocks(text: &str) -> Result<Vec<(&str, &str)>, KeyError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after[11..].find("-----").map(|i| i + 11).ok_or(KeyError::NotAKey)?;
        let label = &after[11..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after.find(&end_marker).ok_or(KeyError::NotAKey)? + end_marker.len();
        blocks.push((label, &after[..end]));
        rest = &after[end..];
    }
    Ok(blocks)
}

/// The one private key of a PEM text (certificates and `EC PARAMETERS`
/// that often share its file are skipped), decrypted with `password` when
/// it is an encrypted PKCS#8 key.
pub(crate) fn private_key_der(
    text: &str,
    password: Option<&[u8]>,
) -> Result<(PrivateKeyFormat, pkcs8::SecretDocument), KeyError> {
    let blocks = pem_blocks(text)?;
    let private: Vec<&(&str, &str)> = blocks.iter().filter(|(label, _)| label.ends_with("PRIVATE KEY")).collect();
    let block = match (private.as_slice(), blocks.first()) {
        ([(_, block)], _) => *block,
        ([], Some((label, _))) => {
            return Err(match *label {
                "PUBLIC KEY" | "RSA PUBLIC KEY" => KeyError::PublicKeyOnly,
                other => KeyError::WrongPemBlock { label: other.to_owned() },
            })
        }
        ([], None) => return Err(KeyError::NotAKey),
        (many, _) => {
            return Err(KeyError::Malformed {
                format: "PEM",
                reason: format!("the text holds {} private keys; give a file with the one to use", many.len()),
            })
        }
    };
    if block.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(KeyError::Unsupported {
            what: "a key encrypted in the legacy OpenSSL format (Proc-Type: 4,ENCRYPTED); convert it with \
                   `openssl pkcs8 -topk8 -in key.pem -out key-pkcs8.pem`"
                .to_owned(),
        });
    }
    let (label, der) = pkcs8::SecretDocument::from_pem(block)
        .map_err(|error| KeyError::Malformed { format: "PEM", reason: error.to_string() })?;
    match label {
        "PRIVATE KEY" => Ok((PrivateKeyFormat::Pkcs8, der)),
        "RSA PRIVATE KEY" => Ok((PrivateKeyFormat::Pkcs1, der)),
        "EC PRIVATE KEY" => Ok((PrivateKeyFormat::Sec1, der)),
        "ENCRYPTED PRIVATE KEY" => {
            let password = password.ok_or(KeyError::PasswordNeeded)?;
            let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der.as_bytes())
                .map_err(|error| KeyError::Malformed { format: "encrypted PKCS#8", reason: error.to_string() })?;
            let plain = info.decrypt(password).map_err(|_| KeyError::WrongPassword)?;
            // A wrong password that happened to unpad yields garbage.
            pkcs8::PrivateKeyInfo::from_der(plain.as_bytes()).map_err(|_| KeyError::WrongPassword)?;
            Ok((PrivateKeyFormat::Pkcs8, plain))
        }
        other => Err(KeyError::WrongPemBlock { label: other.to_owned() }),
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id())
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, DecodingKey, Validation};

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{}/testdata/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// Checks a JWS with jsonwebtoken, an independent implementation.
    fn verify(jwt: &str, key: &DecodingKey, algorithm: jsonwebtoken::Algorithm) -> Value {
        let mut validation = Validation::new(algorithm);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        decode::<Value>(jwt, key, &validation).unwrap().claims
    }

    fn jwk_key(key: &SigningKey) -> DecodingKey {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(Value::Object(key.public_jwk().unwrap())).unwrap();
        DecodingKey::from_jwk(&jwk).unwrap()
    }

    #[test]
    fn every_algorithm_signs_what_an_independent_verifier_accepts() {
        use jsonwebtoken::Algorithm as J;
        let claims = serde_json::json!({"iss": "c", "n": 1});
        let cases = [
            ("rsa-2048.pem", "rsa-2048.pub.pem", Algorithm::Rs256, J::RS256),
            ("rsa-2048-pkcs1.pem", "rsa-2048.pub.pem", Algorithm::Ps256, J::PS256),
            ("ec-p256.pem", "ec-p256.pub.pem", Algorithm::Es256, J::ES256),
            ("ec-p256-sec1.pem", "ec-p256.pub.pem", Algorithm::Es256, J::ES256),
            ("ed25519.pem", "ed25519.pub.pem", Algorithm::EdDsa, J::EdDSA),
        ];
        for (private, public, algorithm, theirs) in cases {
            let key = SigningKey::from_pem(&fixture(private)).unwrap().with_algorithm(algorithm).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            let jwt = key.with_key_id("k-1").sign_jwt("JWT", &claims).unwrap();
            let public = fixture(public);
            let decoding = match theirs {
                J::RS256 | J::PS256 => DecodingKey::from_rsa_pem(public.as_bytes()),
                J::ES256 => DecodingKey::from_ec_pem(public.as_bytes()),
                _ => DecodingKey::from_ed_pem(public.as_bytes()),
            }
            .unwrap();
            assert_eq!(verify(&jwt, &decoding, theirs), claims, "{private}");
            let header = jsonwebtoken::decode_header(&jwt).unwrap();
            assert_eq!((header.alg, header.kid.as_deref(), header.typ.as_deref()), (theirs, Some("k-1"), Some("JWT")));
            // The public JWK is the same key.
            let key = SigningKey::from_pem(&fixture(private)).unwrap().with_algorithm(algorithm).unwrap();
            assert_eq!(verify(&key.sign_jwt("JWT", &claims).unwrap(), &jwk_key(&key), theirs), claims);
        }
        let hmac = SigningKey::hmac_sha256(b"a shared secret of thirty-two bytes!");
        let jwt = hmac.sign_jwt("JWT", &claims).unwrap();
        assert_eq!(verify(&jwt, &DecodingKey::from_secret(b"a shared secret of thirty-two bytes!"), J::HS256), claims);
        assert!(hmac.public_jwk().is_none() && hmac.thumbprint().is_none());
    }

    #[test]
    fn a_generated_key_round_trips_through_pkcs8_and_keeps_its_thumbprint() {
        let key = SigningKey::generate_es256().unwrap();
        let other = SigningKey::generate_es256().unwrap();
        assert_ne!(key.thumbprint(), other.thumbprint());
        let again = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint());
        // RFC 7638 §3.1's example key and thumbprint.
        let rfc = r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;
        let rfc: Map<String, Value> = serde_json::from_str(rfc).unwrap();
        let canonical: Map<String, Value> =
            rfc.into_iter().filter(|(k, _)| ["kty", "e", "n"].contains(&k.as_str())).collect();
        let thumbprint = b64(&Sha256::digest(serde_json::to_string(&canonical).unwrap().as_bytes()));
        assert_eq!(thumbprint, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn private_jwks_of_every_kind_are_read_and_checked() {
        for name in ["ec-p256.pem", "ed25519.pem", "rsa-2048.pem"] {
            let key = SigningKey::from_pem(&fixture(name)).unwrap();
            let mut jwk = key.public_jwk().unwrap();
            let d = match &key.0.key {
                Key::Es256(k) => vec![("d", b64(&k.to_bytes()))],
                Key::EdDsa(k) => vec![("d", b64(&k.to_bytes()))],
                Key::Rs256(k) => {
                    use rsa::traits::PrivateKeyParts as _;
                    let k: &rsa::RsaPrivateKey = k.as_ref();
                    vec![
                        ("d", b64(&k.d().to_bytes_be())),
                        ("p", b64(&k.primes()[0].to_bytes_be())),
                        ("q", b64(&k.primes()[1].to_bytes_be())),
                    ]
                }
                _ => unreachable!(),
            };
            for (name, value) in d {
                jwk.insert(name.to_owned(), Value::String(value));
            }
            jwk.insert("kid".to_owned(), Value::String("from-jwk".to_owned()));
            let text = Value::Object(jwk.clone()).to_string();
            let read = SigningKey::parse(&text, None).unwrap();
            assert_eq!((read.thumbprint(), read.key_id()), (key.thumbprint(), Some("from-jwk")), "{name}");
            // A set with the one key; the public part alone; a wrong public part.
            let set = serde_json::json!({"keys": [Value::Object(jwk.clone())]}).to_string();
            assert_eq!(SigningKey::from_jwk(&set).unwrap().thumbprint(), key.thumbprint());
            let public = Value::Object(key.public_jwk().unwrap()).to_string();
            assert_eq!(SigningKey::from_jwk(&public).unwrap_err(), KeyError::PublicKeyOnly);
            if jwk.contains_key("x") {
                jwk.insert("x".to_owned(), Value::String(b64(&[7; 32])));
                assert!(matches!(
                    SigningKey::from_jwk(&Value::Object(jwk).to_string()),
                    Err(KeyError::Malformed { .. })
                ));
            }
        }
        let ps = r#"{"kty":"EC","crv":"P-256","alg":"PS256","d":"AA","x":"AA","y":"AA"}"#;
        assert!(SigningKey::from_jwk(ps).is_err());
    }

    #[test]
    fn wrong_keys_and_passwords_say_what_is_wrong() {
        let err = |text: &str, password: Option<&[u8]>| SigningKey::parse(text, password).unwrap_err();
        assert_eq!(err(&fixture("cert.pem"), None), KeyError::WrongPemBlock { label: "CERTIFICATE".to_owned() });
        assert_eq!(err(&fixture("ec-p256.pub.pem"), None), KeyError::PublicKeyOnly);
        assert_eq!(err("hello", None), KeyError::NotAKey);
        assert!(
            matches!(err(&fixture("rsa-1024.pem"), None), KeyError::Unsupported { what } if what.contains("1024 bits"))
        );
        assert!(
            matches!(err(&fixture("ec-p384.pem"), None), KeyError::Unsupported { what } if what.contains("1.3.132.0.34"))
        );
        assert!(
            matches!(err(&fixture("ec-legacy-encrypted.pem"), Some(b"x")), KeyError::Unsupported { what } if what.contains("openssl pkcs8"))
        );
        let encrypted = fixture("ec-p256-encrypted.pem");
        assert_eq!(err(&encrypted, None), KeyError::PasswordNeeded);
        assert_eq!(err(&encrypted, Some(b"wrong")), KeyError::WrongPassword);
        let key = SigningKey::parse(&encrypted, Some(b"correct-horse")).unwrap();
        assert_eq!(key.thumbprint(), SigningKey::from_pem(&fixture("ec-p256.pem")).unwrap().thumbprint());
        // A key and its certificate in one file: the key is found.
        let both = format!("{}{}", fixture("cert.pem"), fixture("ec-p256.pem"));
        assert_eq!(SigningKey::from_pem(&both).unwrap().algorithm(), Algorithm::Es256);
        let two = format!("{}{}", fixture("ec-p256.pem"), fixture("ed25519.pem"));
        assert!(matches!(SigningKey::from_pem(&two), Err(KeyError::Malformed { .. })));
        assert!(matches!(
            SigningKey::from_pem(&fixture("ed25519.pem")).unwrap().with_algorithm(Algorithm::Rs256),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
        assert_eq!(SigningKey::generate_es256().unwrap().try_with_key_id("a\nb").unwrap_err(), KeyError::InvalidKeyId);
        // No error message holds key material.
        for text in [fixture("rsa-1024.pem"), fixture("ec-p384.pem"), fixture("ec-p256.pem").replace("M", "x")] {
            if let Err(error) = SigningKey::from_pem(&text) {
                let shown = error.to_string();
                assert!(!text.lines().filter(|l| l.len() > 20).any(|l| shown.contains(l)), "{shown}");
            }
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        for name in ["rsa-2048.pem", "ec-p256.pem", "ed25519.pem"] {
            let key = SigningKey::from_pem(&fixture(name)).unwrap();
            let shown = format!("{key:?}");
            assert!(shown.contains("thumbprint") && !shown.contains("PRIVATE"), "{shown}");
            let pem = key.to_pkcs8_pem().unwrap();
            for line in pem.lines().filter(|l| !l.starts_with("-----")) {
                assert!(!shown.contains(line));
            }
        }
        let hmac = format!("{:?}", SigningKey::hmac_sha256(b"hunter2-hunter2"));
        assert!(!hmac.contains("hunter2"), "{hmac}");
    }
}
