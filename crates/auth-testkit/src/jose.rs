//! The provider's side of signed JWTs: client assertions (RFC 7523 §2.2),
//! JWT bearer grants (§2.1) and DPoP proofs (RFC 9449). Signatures are
//! checked with `ring`'s verifiers (the library signs with `ring`'s
//! signers: the operations share no code path), against public keys read
//! from PEM (`spki`) or JWK here.
//!
//! [`PublicKey`] and [`verify_signature`] are public, so that the
//! library's own tests check what it signs the way this provider does.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::signature::{self as sig, UnparsedPublicKey};
use serde_json::{Map, Value};
use spki::der::{Decode as _, Document};

/// A public key the provider trusts (or an HMAC secret), with the JWS
/// algorithms it may sign.
#[derive(Clone)]
pub struct PublicKey {
    key: Key,
}

#[derive(Clone)]
enum Key {
    /// `n` and `e`, big-endian.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point, on P-256 (`false`) or P-384 (`true`).
    Ec {
        point: Vec<u8>,
        p384: bool,
    },
    Ed25519(Vec<u8>),
    Hmac(Vec<u8>),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("algorithms", &self.algorithms()).finish_non_exhaustive()
    }
}

fn b64(value: Option<&Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = value.and_then(Value::as_str).ok_or_else(|| format!("member `{name}` is missing"))?;
    URL_SAFE_NO_PAD.decode(text).map_err(|_| format!("member `{name}` is not base64url"))
}

impl PublicKey {
    /// A PEM `PUBLIC KEY` (RSA, P-256, P-384 or Ed25519) or a public JWK.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('{') {
            let jwk: Map<String, Value> = serde_json::from_str(text).map_err(|e| format!("not a JWK: {e}"))?;
            return Self::from_jwk(&jwk);
        }
        let (label, document) = Document::from_pem(text).map_err(|e| format!("not a PEM public key: {e}"))?;
        if label != "PUBLIC KEY" {
            return Err(format!("a PEM `{label}`, not a `PUBLIC KEY`"));
        }
        let info = spki::SubjectPublicKeyInfoRef::from_der(document.as_bytes()).map_err(|e| e.to_string())?;
        let raw = info.subject_public_key.raw_bytes().to_vec();
        let key = match info.algorithm.oid.to_string().as_str() {
            "1.2.840.113549.1.1.1" => {
                let public = pkcs1::RsaPublicKey::from_der(&raw).map_err(|e| e.to_string())?;
                Key::Rsa { n: public.modulus.as_bytes().to_vec(), e: public.public_exponent.as_bytes().to_vec() }
            }
            "1.2.840.10045.2.1" => match info.algorithm.parameters_oid().map(|o| o.to_string()).as_deref() {
                Ok("1.2.840.10045.3.1.7") => Key::Ec { point: raw, p384: false },
                Ok("1.3.132.0.34") => Key::Ec { point: raw, p384: true },
                _ => return Err("an EC key on a curve this provider does not check".to_owned()),
            },
            "1.3.101.112" => Key::Ed25519(raw),
            other => return Err(format!("a public key of algorithm {other}")),
        };
        Ok(Self { key })
    }

    /// A public JWK (`RSA`, `EC` on P-256 or P-384, `OKP` on Ed25519).
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, String> {
        let member = |name: &str| b64(jwk.get(name), name);
        let key = match (jwk.get("kty").and_then(Value::as_str), jwk.get("crv").and_then(Value::as_str)) {
            (Some("RSA"), _) => Key::Rsa { n: member("n")?, e: member("e")? },
            (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
                Key::Ec { point: [vec![4], member("x")?, member("y")?].concat(), p384: crv == "P-384" }
            }
            (Some("OKP"), Some("Ed25519")) => Key::Ed25519(member("x")?),
            (kty, crv) => return Err(format!("an unusable JWK (kty {kty:?}, crv {crv:?})")),
        };
        Ok(Self { key })
    }

    /// An HMAC secret (`client_secret_jwt`).
    pub fn hmac(secret: &[u8]) -> Self {
        Self { key: Key::Hmac(secret.to_vec()) }
    }

    /// The JWS algorithms this key may have signed with.
    pub fn algorithms(&self) -> &'static [&'static str] {
        match &self.key {
            Key::Rsa { .. } => &["RS256", "RS384", "PS256", "PS384"],
            Key::Ec { p384: false, .. } => &["ES256"],
            Key::Ec { p384: true, .. } => &["ES384"],
            Key::Ed25519(_) => &["EdDSA"],
            Key::Hmac(_) => &["HS256"],
        }
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url (`None` for HMAC).
    pub fn thumbprint(&self) -> Option<String> {
        let canonical = match &self.key {
            Key::Rsa { n, e } => {
                serde_json::json!({"e": URL_SAFE_NO_PAD.encode(e), "kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n)})
            }
            Key::Ec { point, p384 } => {
                let (x, y) = point.get(1..)?.split_at((point.len() - 1) / 2);
                let crv = if *p384 { "P-384" } else { "P-256" };
                serde_json::json!({"crv": crv, "kty": "EC", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)})
            }
            Key::Ed25519(x) => serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": URL_SAFE_NO_PAD.encode(x)}),
            Key::Hmac(_) => return None,
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.to_string().as_bytes());
        Some(URL_SAFE_NO_PAD.encode(digest))
    }

    fn check(&self, alg: &str, input: &[u8], signature: &[u8]) -> Result<(), String> {
        if !self.algorithms().contains(&alg) {
            return Err(format!("algorithm {alg} is not allowed for this key"));
        }
        let verified = match (&self.key, alg) {
            (Key::Rsa { n, e }, _) => {
                let params: &sig::RsaParameters = match alg {
                    "RS256" => &sig::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &sig::RSA_PKCS1_2048_8192_SHA384,
                    "PS256" => &sig::RSA_PSS_2048_8192_SHA256,
                    _ => &sig::RSA_PSS_2048_8192_SHA384,
                };
                sig::RsaPublicKeyComponents { n, e }.verify(params, input, signature)
            }
            (Key::Ec { point, p384 }, _) => {
                let algorithm = if *p384 { &sig::ECDSA_P384_SHA384_FIXED } else { &sig::ECDSA_P256_SHA256_FIXED };
                UnparsedPublicKey::new(algorithm, point).verify(input, signature)
            }
            (Key::Ed25519(public), _) => UnparsedPublicKey::new(&sig::ED25519, public).verify(input, signature),
            (Key::Hmac(secret), _) => {
                ring::hmac::verify(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret), input, signature)
            }
        };
        verified.map_err(|_| "bad signature".to_owned())
    }
}

/// A JWS's header and claims, as JSON objects.
pub type Decoded = (Map<String, Value>, Map<String, Value>);

/// A compact JWS's header and claims, once its signature checks out with
/// `key` (and `alg` is one the key may sign with); no claim is checked.
pub fn verify_signature(jwt: &str, key: &PublicKey) -> Result<Decoded, String> {
    let (header, claims) = decode_unverified(jwt)?;
    let alg = header.get("alg").and_then(Value::as_str).ok_or("no alg in the header")?;
    let (input, signature) = jwt.rsplit_once('.').ok_or("not a compact JWS")?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| "the signature is not base64url")?;
    key.check(alg, input.as_bytes(), &signature)?;
    Ok((header, claims))
}

/// A compact JWS's header and claims, unchecked.
fn decode_unverified(jwt: &str) -> Result<Decoded, String> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("not a JWT (three dot-separated parts)".to_owned());
    };
    let part = |text: &str, what: &str| -> Result<Map<String, Value>, String> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| format!("the {what} is not base64url"))?;
        serde_json::from_slice(&bytes).map_err(|_| format!("the {what} is not a JSON object"))
    };
    Ok((part(header, "header")?, part(claims, "payload")?))
}

/// What an assertion must say, besides a good signature.
pub(crate) struct Expect<'a> {
    /// The accepted `aud` values.
    pub audiences: &'a [String],
    /// The `iss` it must have, if fixed.
    pub issuer: Option<&'a str>,
    /// `sub` must equal `iss` (a client assertion).
    pub subject_is_issuer: bool,
    /// The longest `exp - now` accepted, in seconds.
    pub max_lifetime: u64,
}

/// Seconds since 1970.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Verifies `jwt` with `key`; the claims, or why it was refused.
pub(crate) fn verify(
    jwt: &str,
    key: &PublicKey,
    expect: &Expect<'_>,
    seen: &mut HashSet<String>,
) -> Result<Map<String, Value>, String> {
    let (_, claims) = verify_signature(jwt, key).map_err(|e| format!("rejected: {e}"))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    for required in ["exp", "iss", "sub", "aud"] {
        if !claims.contains_key(required) {
            return Err(format!("rejected: the claim `{required}` is missing"));
        }
    }
    if !audiences(&claims).iter().any(|aud| expect.audiences.iter().any(|a| a == aud)) {
        return Err("rejected: aud is not this server".to_owned());
    }
    if let Some(issuer) = expect.issuer {
        if text("iss") != Some(issuer) {
            return Err("rejected: iss is not the trusted issuer".to_owned());
        }
    }
    if expect.subject_is_issuer && text("sub") != text("iss") {
        return Err("sub is not the client id".to_owned());
    }
    let now = now();
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    if exp + 5 < now {
        return Err("rejected: the assertion has expired".to_owned());
    }
    if exp > now + expect.max_lifetime {
        return Err(format!("exp is more than {} s away", expect.max_lifetime));
    }
    if claims.get("nbf").and_then(Value::as_u64).is_some_and(|nbf| nbf > now + 5) {
        return Err("rejected: the assertion is not valid yet (nbf)".to_owned());
    }
    let jti = text("jti").ok_or("jti is missing")?;
    if !seen.insert(format!("{}\u{0}{jti}", text("iss").unwrap_or(""))) {
        return Err("the assertion was used before (jti replay)".to_owned());
    }
    Ok(claims)
}

/// The `aud` of `claims`: one value or a list.
pub(crate) fn audiences(claims: &Map<String, Value>) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(one)) => vec![one],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The issuer `jwt` names (unverified) and its key, when it is one of
/// `trusted`; why not otherwise.
pub(crate) fn trusted_issuer(trusted: &[(String, PublicKey)], jwt: &str) -> Result<(String, PublicKey), String> {
    let issuer = unverified_claim(jwt, "iss").ok_or("the token has no iss")?;
    let key = trusted.iter().find(|(name, _)| *name == issuer).map(|(_, key)| key.clone());
    key.map(|key| (issuer.clone(), key)).ok_or_else(|| format!("issuer `{issuer}` is not trusted"))
}

/// A claim of an unverified JWT (`iss`: which key to check it with).
pub(crate) fn unverified_claim(jwt: &str, name: &str) -> Option<String> {
    decode_unverified(jwt).ok()?.1.get(name)?.as_str().map(str::to_owned)
}

/// Why a DPoP proof was refused.
#[derive(Debug)]
pub(crate) enum ProofError {
    /// The server wants its current nonce in the proof.
    UseNonce,
    /// Anything else: what is wrong.
    Invalid(String),
}

/// What a DPoP proof must match.
pub(crate) struct ProofCheck<'a> {
    pub method: &'a str,
    /// The URL without query and fragment.
    pub htu: &'a str,
    /// The access token it goes with (API requests).
    pub access_token: Option<&'a str>,
    /// The nonce the server demands, if it does.
    pub nonce: Option<&'a str>,
}

/// Verifies a DPoP proof (RFC 9449 §4.3): the thumbprint of its key.
pub(crate) fn verify_proof(
    jwt: &str,
    check: &ProofCheck<'_>,
    seen: &mut HashSet<String>,
) -> Result<String, ProofError> {
    let invalid = |why: &str| ProofError::Invalid(why.to_owned());
    let (header, _) = decode_unverified(jwt).map_err(|e| ProofError::Invalid(e.to_string()))?;
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("typ is not dpop+jwt"));
    }
    if header.get("alg").and_then(Value::as_str).is_some_and(|alg| alg.starts_with("HS")) {
        return Err(invalid("a symmetric algorithm"));
    }
    let jwk = header.get("jwk").and_then(Value::as_object).ok_or_else(|| invalid("no jwk in the header"))?;
    let key = PublicKey::from_jwk(jwk).map_err(|e| ProofError::Invalid(format!("unusable jwk: {e}")))?;
    let (_, claims) =
        verify_signature(jwt, &key).map_err(|e| ProofError::Invalid(format!("bad signature or claims: {e}")))?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("htm") != Some(check.method) {
        return Err(invalid("htm is not the request's method"));
    }
    if text("htu") != Some(check.htu) {
        return Err(ProofError::Invalid(format!("htu {:?} is not {}", text("htu"), check.htu)));
    }
    let now = now();
    let iat = claims.get("iat").and_then(Value::as_u64).ok_or_else(|| invalid("no iat"))?;
    if iat + 60 < now || iat > now + 60 {
        return Err(invalid("iat is not within a minute of now"));
    }
    if let Some(token) = check.access_token {
        let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()));
        if text("ath") != Some(expected.as_str()) {
            return Err(invalid("ath is not the access token's hash"));
        }
    }
    if let Some(nonce) = check.nonce {
        if text("nonce") != Some(nonce) {
            return Err(ProofError::UseNonce);
        }
    }
    let jti = text("jti").ok_or_else(|| invalid("no jti"))?;
    if !seen.insert(format!("dpop\u{0}{jti}")) {
        return Err(invalid("the proof was used before (jti replay)"));
    }
    key.thumbprint().ok_or_else(|| invalid("no thumbprint"))
}
