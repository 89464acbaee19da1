//! Signing keys and JSON Web Signatures: the private keys behind
//! `private_key_jwt` client assertions (RFC 7523 §2.2), the JWT bearer
//! grant (RFC 7523 §2.1) and DPoP proofs (RFC 9449).
//!
//! The signatures come from `ring`, the crypto provider rustls uses in this
//! workspace (one provider for TLS and JOSE); this module reads keys with
//! the format crates (PEM, PKCS#8, PKCS#1, SEC1, JWK), chooses the
//! algorithm and lays out the compact JWS. A [`SigningKey`] is a secret:
//! its `Debug` shows the algorithm, the key id and the public thumbprint,
//! never the key; the PKCS#8 copy it keeps is zeroized when the last clone
//! is dropped (`ring` does not zeroize its own key schedule: see
//! docs/security.md).
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
use pkcs8::der::pem::LineEnding;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

mod der;
mod error;
mod jwk;
mod pair;
pub(crate) mod pem;

pub use error::KeyError;
pub use pem::PrivateKeyFormat;

use pair::Pair;

/// A JWS signature algorithm (RFC 7518 §3, RFC 8037).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PSS with SHA-256 (salt of 32 bytes).
    Ps256,
    /// RSASSA-PSS with SHA-384 (salt of 48 bytes).
    Ps384,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
    /// HMAC with SHA-256: `client_secret_jwt`, keyed with the client secret.
    Hs256,
}

impl Algorithm {
    /// Every algorithm, in the order [`Algorithm::parse`] lists them.
    pub const ALL: [Self; 8] =
        [Self::Rs256, Self::Rs384, Self::Ps256, Self::Ps384, Self::Es256, Self::Es384, Self::EdDsa, Self::Hs256];

    /// The JWS `alg` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
            Self::Hs256 => "HS256",
        }
    }

    /// Parses a JWS `alg` name (`RS256`, `RS384`, `PS256`, `PS384`,
    /// `ES256`, `ES384`, `EdDSA`, `HS256`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|algorithm| algorithm.as_str() == name)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Inner {
    pair: Pair,
    /// What the pair was loaded from: the PKCS#8 DER, or an HMAC key's
    /// secret. Zeroized on drop.
    material: Zeroizing<Vec<u8>>,
    algorithm: Algorithm,
    key_id: Option<String>,
    /// The header of [`SigningKey::sign_jwt`]'s JWS (`typ` `JWT`), made on
    /// first use: the same for every assertion the key signs.
    jwt_header: std::sync::OnceLock<String>,
}

/// A private (or, for `HS256`, shared) key that signs JWTs. Cheap to
/// clone. Its `Debug` shows the algorithm, the key id and the RFC 7638
/// thumbprint of the public key, never the key.
#[derive(Clone)]
pub struct SigningKey(Arc<Inner>);

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    getrandom::fill(&mut *bytes).map_err(|error| KeyError::NoRandomness { reason: error.to_string() })?;
    Ok(bytes)
}

impl SigningKey {
    /// A key from PKCS#8 DER (already checked to load).
    fn load(pkcs8: Zeroizing<Vec<u8>>) -> Result<Self, KeyError> {
        let (pair, algorithm) = Pair::from_pkcs8(&pkcs8)?;
        Ok(Self(Arc::new(Inner { pair, material: pkcs8, algorithm, key_id: None, jwt_header: Default::default() })))
    }

    /// Reads a private key from a PEM file's text: PKCS#8 (`PRIVATE KEY`),
    /// PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). Other blocks
    /// in the text (certificates, `EC PARAMETERS`) are skipped. RSA keys
    /// sign RS256 (see [`SigningKey::with_algorithm`] for RS384, PS256 and
    /// PS384), P-256 keys ES256, P-384 keys ES384 and Ed25519 keys EdDSA.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::from_pem_with_password(pem, None)
    }

    /// Like [`SigningKey::from_pem`], for a key that may be encrypted
    /// (`ENCRYPTED PRIVATE KEY`, PKCS#8 PBES2) with `password`.
    pub fn from_pem_with_password(pem: &str, password: Option<&[u8]>) -> Result<Self, KeyError> {
        let (format, der) = pem::private_key_der(pem, password)?;
        match format {
            PrivateKeyFormat::Pkcs8 => Self::from_pkcs8_der(der.as_bytes()),
            PrivateKeyFormat::Pkcs1 => Self::load(der::from_pkcs1(der.as_bytes())?),
            PrivateKeyFormat::Sec1 => Self::load(der::from_sec1(der.as_bytes())?),
        }
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` (DER).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        Self::load(Zeroizing::new(der.to_vec()))
    }

    /// Reads a private JSON Web Key (RFC 7517): `EC` on `P-256` or `P-384`,
    /// `RSA` (with `p`, `q`, `dp`, `dq` and `qi`) or `OKP` on `Ed25519`. Its
    /// `kid` becomes the key id and its `alg`, when present, the
    /// algorithm. A JWK Set holding exactly one private key is accepted
    /// too. A public part that does not belong to the private part is
    /// refused.
    pub fn from_jwk(json: &str) -> Result<Self, KeyError> {
        let read = jwk::read(json)?;
        let mut key = Self::load(read.pkcs8).map_err(|error| match error {
            KeyError::Malformed { reason, .. } => KeyError::Malformed { format: "JWK", reason },
            other => other,
        })?;
        if let Some(algorithm) = read.algorithm {
            key = key.with_algorithm(algorithm)?;
        }
        match read.key_id {
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
        Self::load(Zeroizing::new(Pair::generate_p256()?))
    }

    /// An `HS256` key: `client_secret_jwt` signs with the client secret.
    pub fn hmac_sha256(secret: &[u8]) -> Self {
        let material = Zeroizing::new(secret.to_vec());
        let pair = Pair::hmac(secret);
        Self(Arc::new(Inner {
            pair,
            material,
            algorithm: Algorithm::Hs256,
            key_id: None,
            jwt_header: Default::default(),
        }))
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
        let mut inner = self.into_inner()?;
        inner.key_id = Some(kid);
        inner.jwt_header = Default::default();
        Ok(Self(Arc::new(inner)))
    }

    /// The key to change: this one, or a copy loaded again from its
    /// material when it is shared (the provider's keys are not `Clone`).
    fn into_inner(self) -> Result<Inner, KeyError> {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => Ok(inner),
            Err(shared) => {
                let pair = match shared.algorithm {
                    Algorithm::Hs256 => Pair::hmac(&shared.material),
                    _ => Pair::from_pkcs8(&shared.material)?.0,
                };
                Ok(Inner {
                    pair,
                    material: shared.material.clone(),
                    algorithm: shared.algorithm,
                    key_id: shared.key_id.clone(),
                    jwt_header: Default::default(),
                })
            }
        }
    }

    /// Chooses the algorithm: an RSA key signs RS256, RS384, PS256 or
    /// PS384; other keys have exactly one.
    pub fn with_algorithm(self, algorithm: Algorithm) -> Result<Self, KeyError> {
        if self.algorithm() == algorithm {
            return Ok(self);
        }
        if !self.0.pair.signs(algorithm) {
            return Err(KeyError::AlgorithmMismatch { key: self.0.pair.kind(), algorithm });
        }
        let mut inner = self.into_inner()?;
        inner.algorithm = algorithm;
        inner.jwt_header = Default::default();
        Ok(Self(Arc::new(inner)))
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.0.algorithm
    }

    /// The key id, if set.
    pub fn key_id(&self) -> Option<&str> {
        self.0.key_id.as_deref()
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, `y` / `n`, `e`), without
    /// `kid` or `alg`; `None` for an `HS256` key.
    pub fn public_jwk(&self) -> Option<Map<String, Value>> {
        self.0.pair.public_jwk()
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, base64url: DPoP's
    /// `jkt`. `None` for an `HS256` key.
    pub fn thumbprint(&self) -> Option<String> {
        // serde_json's map is sorted and compact: the RFC 7638 form, as the
        // members are the required ones only and plain base64url strings.
        let canonical = serde_json::to_string(&self.public_jwk()?).ok()?;
        Some(b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref()))
    }

    /// The private key as unencrypted PKCS#8 PEM, to keep it in a file
    /// only its owner can read. Not for `HS256` keys.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        if self.0.algorithm == Algorithm::Hs256 {
            return Err(KeyError::AlgorithmMismatch { key: "shared secret", algorithm: Algorithm::Es256 });
        }
        pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &self.0.material)
            .map(Zeroizing::new)
            .map_err(|error| KeyError::Malformed { format: "PKCS#8", reason: error.to_string() })
    }

    /// Signs `claims` as a compact JWS with header `{"alg", "typ", "kid"}`.
    pub fn sign_jwt(&self, typ: &str, claims: &Value) -> Result<String, KeyError> {
        if typ != "JWT" {
            return self.sign_jwt_with(typ, Map::new(), claims);
        }
        let header = match self.0.jwt_header.get() {
            Some(header) => header,
            None => {
                let header = self.jws_header(typ, Map::new())?;
                self.0.jwt_header.get_or_init(|| header)
            }
        };
        let payload = serde_json::to_vec(claims).map_err(|error| KeyError::Signing { reason: error.to_string() })?;
        let mut jws = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
        jws.push_str(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut jws);
        self.sign_jws(jws)
    }

    /// Signs `claims` as a compact JWS; `header` adds members (such as
    /// `jwk`) to `alg`, `typ` and, when set, `kid`.
    pub fn sign_jwt_with(&self, typ: &str, header: Map<String, Value>, claims: &Value) -> Result<String, KeyError> {
        let json =
            |value: &Value| serde_json::to_vec(value).map_err(|error| KeyError::Signing { reason: error.to_string() });
        let mut jws = self.jws_header(typ, header)?;
        jws.push('.');
        jws.push_str(&b64(&json(claims)?));
        self.sign_jws(jws)
    }

    /// The base64url header of a JWS this key signs: `header`'s members,
    /// `alg`, `typ` and, when set, `kid`. Made once for many JWS with
    /// [`SigningKey::sign_jws`].
    pub fn jws_header(&self, typ: &str, mut header: Map<String, Value>) -> Result<String, KeyError> {
        header.insert("alg".to_owned(), Value::String(self.algorithm().as_str().to_owned()));
        header.insert("typ".to_owned(), Value::String(typ.to_owned()));
        if let Some(kid) = self.key_id() {
            header.insert("kid".to_owned(), Value::String(kid.to_owned()));
        }
        let json = serde_json::to_vec(&Value::Object(header))
            .map_err(|error| KeyError::Signing { reason: error.to_string() })?;
        Ok(b64(&json))
    }

    /// Signs a JWS signing input (`header.payload`, both base64url, the
    /// header from [`SigningKey::jws_header`]) and returns the compact JWS.
    pub fn sign_jws(&self, mut signing_input: String) -> Result<String, KeyError> {
        let signature = self.0.pair.sign(self.0.algorithm, signing_input.as_bytes())?;
        signing_input.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut signing_input);
        Ok(signing_input)
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
mod tests;
