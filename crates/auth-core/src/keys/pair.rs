//! The key as the crypto provider holds it: `ring`, the provider rustls
//! uses in this workspace, makes every signature (RSA PKCS#1 v1.5 and PSS,
//! ECDSA on P-256 and P-384, Ed25519, HMAC-SHA-256).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Map, Value};

use super::der::{self, Curve, Kind};
use super::{Algorithm, KeyError};

/// A key the provider signs with.
pub(super) enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, Curve),
    Ed25519(Ed25519KeyPair),
    Hmac(ring::hmac::Key),
}

impl Pair {
    /// Loads a PKCS#8 key (DER), with the algorithm it signs by default.
    pub(super) fn from_pkcs8(pkcs8: &[u8]) -> Result<(Self, Algorithm), KeyError> {
        let rejected = |error| KeyError::rejected("PKCS#8", error);
        Ok(match der::inspect(pkcs8)? {
            Kind::Rsa => (Self::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(rejected)?), Algorithm::Rs256),
            Kind::Ec(curve) => {
                let signing = match curve {
                    Curve::P256 => &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                    Curve::P384 => &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
                };
                let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8, &SystemRandom::new()).map_err(rejected)?;
                (Self::Ec(pair, curve), curve.algorithm())
            }
            Kind::Ed25519 => {
                (Self::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(rejected)?), Algorithm::EdDsa)
            }
        })
    }

    /// An HMAC-SHA-256 key.
    pub(super) fn hmac(secret: &[u8]) -> Self {
        Self::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// A new P-256 key as PKCS#8 (DER).
    pub(super) fn generate_p256() -> Result<Vec<u8>, KeyError> {
        EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map(|document| document.as_ref().to_vec())
            .map_err(|_| KeyError::NoRandomness { reason: "no key could be generated".to_owned() })
    }

    /// The kind of key, in words.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Self::Rsa(_) => "RSA",
            Self::Ec(_, curve) => curve.jwk_name(),
            Self::Ed25519(_) => "Ed25519",
            Self::Hmac(_) => "shared secret",
        }
    }

    /// Whether it signs with `algorithm`.
    pub(super) fn signs(&self, algorithm: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Rsa(_) => matches!(algorithm, Rs256 | Rs384 | Ps256 | Ps384),
            Self::Ec(_, curve) => curve.algorithm() == algorithm,
            Self::Ed25519(_) => algorithm == EdDsa,
            Self::Hmac(_) => algorithm == Hs256,
        }
    }

    /// The JWS signature of `message` with `algorithm` (one this key
    /// [`signs`](Self::signs)).
    pub(super) fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let failed = |what: &str| KeyError::Signing { reason: format!("the {what} signature could not be made") };
        match self {
            Self::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match algorithm {
                    Algorithm::Rs256 => &sig::RSA_PKCS1_SHA256,
                    Algorithm::Rs384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::Ps256 => &sig::RSA_PSS_SHA256,
                    Algorithm::Ps384 => &sig::RSA_PSS_SHA384,
                    other => return Err(KeyError::AlgorithmMismatch { key: "RSA", algorithm: other }),
                };
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &SystemRandom::new(), message, &mut signature).map_err(|_| failed("RSA"))?;
                Ok(signature)
            }
            Self::Ec(pair, _) => {
                Ok(pair.sign(&SystemRandom::new(), message).map_err(|_| failed("ECDSA"))?.as_ref().to_vec())
            }
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Self::Hmac(key) => Ok(ring::hmac::sign(key, message).as_ref().to_vec()),
        }
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, `y` / `n`, `e`);
    /// `None` for an HMAC key.
    pub(super) fn public_jwk(&self) -> Option<Map<String, Value>> {
        let b64 = |bytes: &[u8]| Value::String(URL_SAFE_NO_PAD.encode(bytes));
        let text = |text: &str| Value::String(text.to_owned());
        let mut jwk = Map::new();
        match self {
            Self::Rsa(pair) => {
                let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                jwk.insert("kty".to_owned(), text("RSA"));
                jwk.insert("n".to_owned(), b64(&public.n));
                jwk.insert("e".to_owned(), b64(&public.e));
            }
            Self::Ec(pair, curve) => {
                // The uncompressed point: 04 || x || y.
                let coordinates = pair.public_key().as_ref().get(1..).unwrap_or_default();
                let (x, y) = coordinates.split_at(coordinates.len() / 2);
                jwk.insert("kty".to_owned(), text("EC"));
                jwk.insert("crv".to_owned(), text(curve.jwk_name()));
                jwk.insert("x".to_owned(), b64(x));
                jwk.insert("y".to_owned(), b64(y));
            }
            Self::Ed25519(pair) => {
                jwk.insert("kty".to_owned(), text("OKP"));
                jwk.insert("crv".to_owned(), text("Ed25519"));
                jwk.insert("x".to_owned(), b64(pair.public_key().as_ref()));
            }
            Self::Hmac(_) => return None,
        }
        Some(jwk)
    }
}
