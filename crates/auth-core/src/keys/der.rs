//! Private keys as PKCS#8 DER, the one form the crypto provider is given.
//! Keys in PKCS#1, SEC1 and JWK are wrapped or laid out in it with the
//! format crates (`pkcs8`, `sec1`, `pkcs1`: encoding only, no arithmetic),
//! and a PKCS#8 key is inspected for its kind (algorithm, curve, RSA
//! modulus size) before it is loaded, so that an unusable key is refused
//! with words that say why.

use pkcs8::der::asn1::{AnyRef, ObjectIdentifier, OctetStringRef, UintRef};
use pkcs8::der::{Decode as _, Encode as _};
use zeroize::Zeroizing;

use super::{Algorithm, KeyError};

const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The RSA modulus sizes the provider signs with (RFC 7518 §3.3 asks for
/// 2048 bits or more).
const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// An elliptic curve a key may be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    /// P-256 (prime256v1, secp256r1): ES256.
    P256,
    /// P-384 (secp384r1): ES384.
    P384,
}

impl Curve {
    const P256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    const P384_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");

    fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => Self::P256_OID,
            Self::P384 => Self::P384_OID,
        }
    }

    fn from_oid(oid: ObjectIdentifier) -> Result<Self, KeyError> {
        match oid {
            Self::P256_OID => Ok(Self::P256),
            Self::P384_OID => Ok(Self::P384),
            other => Err(KeyError::Unsupported { what: format!("an EC key on the curve {other}") }),
        }
    }

    /// The JWK `crv`.
    pub(super) fn jwk_name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    /// The curve a JWK `crv` names.
    pub(super) fn from_jwk_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            _ => None,
        }
    }

    /// Bytes of a coordinate, and of the private scalar.
    pub(super) fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    /// The one algorithm a key on the curve signs with.
    pub(super) fn algorithm(self) -> Algorithm {
        match self {
            Self::P256 => Algorithm::Es256,
            Self::P384 => Algorithm::Es384,
        }
    }
}

/// What a PKCS#8 `PrivateKeyInfo` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// An RSA key (its size checked).
    Rsa,
    /// An EC key on a supported curve, with its public key.
    Ec(Curve),
    /// An Ed25519 key.
    Ed25519,
}

fn malformed(format: &'static str) -> impl Fn(pkcs8::der::Error) -> KeyError {
    move |error| KeyError::Malformed { format, reason: error.to_string() }
}

/// The kind of key a PKCS#8 `PrivateKeyInfo` (DER) holds, refusing what
/// cannot be used: other algorithms and curves, RSA keys outside
/// [`RSA_BITS`], EC keys without their public key (the provider derives
/// none).
pub(super) fn inspect(der: &[u8]) -> Result<Kind, KeyError> {
    let info = pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|e| KeyError::Malformed { format: "PKCS#8", reason: e.to_string() })?;
    match info.algorithm.oid {
        RSA => {
            let key = pkcs1::RsaPrivateKey::from_der(info.private_key).map_err(malformed("PKCS#1"))?;
            let modulus = key.modulus.as_bytes();
            let bits = (modulus.len() * 8).saturating_sub(modulus.first().map_or(8, |b| b.leading_zeros() as usize));
            if !RSA_BITS.contains(&bits) {
                return Err(KeyError::Unsupported { what: format!("an RSA key of {bits} bits") });
            }
            Ok(Kind::Rsa)
        }
        EC => {
            let curve = match info.algorithm.parameters_oid() {
                Ok(oid) => Curve::from_oid(oid)?,
                Err(_) => return Err(KeyError::Unsupported { what: "an EC key without a named curve".to_owned() }),
            };
            let key = sec1::EcPrivateKey::from_der(info.private_key).map_err(malformed("SEC1"))?;
            if key.public_key.is_none() {
                return Err(KeyError::Unsupported {
                    what: "an EC key stored without its public key (rewrite the file with \
                           `openssl pkey -in KEY -out NEW`, which adds it)"
                        .to_owned(),
                });
            }
            Ok(Kind::Ec(curve))
        }
        ED25519 => Ok(Kind::Ed25519),
        other => Err(KeyError::Unsupported { what: format!("a key of algorithm {other}") }),
    }
}

/// A `PrivateKeyInfo` around `private_key`.
fn wrap(
    oid: ObjectIdentifier,
    parameters: Option<AnyRef<'_>>,
    private_key: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let algorithm = pkcs8::AlgorithmIdentifierRef { oid, parameters };
    pkcs8::PrivateKeyInfo::new(algorithm, private_key).to_der().map(Zeroizing::new).map_err(malformed("PKCS#8"))
}

/// A PKCS#1 `RSAPrivateKey` (DER) as PKCS#8.
pub(super) fn from_pkcs1(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    pkcs1::RsaPrivateKey::from_der(der).map_err(malformed("PKCS#1"))?;
    wrap(RSA, Some(AnyRef::NULL), der)
}

/// A SEC1 `ECPrivateKey` (DER) as PKCS#8, its curve from its parameters.
pub(super) fn from_sec1(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(malformed("SEC1"))?;
    let curve = match key.parameters.and_then(|p| p.named_curve()) {
        Some(oid) => Curve::from_oid(oid)?,
        None => return Err(KeyError::Unsupported { what: "an EC key without a named curve".to_owned() }),
    };
    let oid = curve.oid();
    wrap(EC, Some(AnyRef::from(&oid)), der)
}

/// An EC key from its private scalar `d` and public point (`04 || x || y`).
pub(super) fn ec(curve: Curve, d: &[u8], point: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let oid = curve.oid();
    let key = sec1::EcPrivateKey {
        private_key: d,
        parameters: Some(sec1::EcParameters::NamedCurve(oid)),
        public_key: Some(point),
    };
    let der = Zeroizing::new(key.to_der().map_err(malformed("SEC1"))?);
    wrap(EC, Some(AnyRef::from(&oid)), &der)
}

/// An Ed25519 key from its 32-byte seed (RFC 8410), with its public key
/// when known (PKCS#8 v2: the provider then checks that they match).
pub(super) fn ed25519(seed: &[u8], public: Option<&[u8]>) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let inner = Zeroizing::new(OctetStringRef::new(seed).and_then(|s| s.to_der()).map_err(malformed("PKCS#8"))?);
    let algorithm = pkcs8::AlgorithmIdentifierRef { oid: ED25519, parameters: None };
    let info = pkcs8::PrivateKeyInfo { algorithm, private_key: &inner, public_key: public };
    info.to_der().map(Zeroizing::new).map_err(malformed("PKCS#8"))
}

/// The integers of an RSA private key, big-endian (a JWK's `n`, `e`, `d`,
/// `p`, `q`, `dp`, `dq`, `qi`).
pub(super) struct RsaParts<'a> {
    pub(super) n: &'a [u8],
    pub(super) e: &'a [u8],
    pub(super) d: &'a [u8],
    pub(super) p: &'a [u8],
    pub(super) q: &'a [u8],
    pub(super) dp: &'a [u8],
    pub(super) dq: &'a [u8],
    pub(super) qi: &'a [u8],
}

/// An RSA key from its integers.
pub(super) fn rsa(parts: &RsaParts<'_>) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let int = |bytes| UintRef::new(bytes).map_err(malformed("JWK"));
    let key = pkcs1::RsaPrivateKey {
        modulus: int(parts.n)?,
        public_exponent: int(parts.e)?,
        private_exponent: int(parts.d)?,
        prime1: int(parts.p)?,
        prime2: int(parts.q)?,
        exponent1: int(parts.dp)?,
        exponent2: int(parts.dq)?,
        coefficient: int(parts.qi)?,
        other_prime_infos: None,
    };
    let der = Zeroizing::new(key.to_der().map_err(malformed("PKCS#1"))?);
    wrap(RSA, Some(AnyRef::NULL), &der)
}
