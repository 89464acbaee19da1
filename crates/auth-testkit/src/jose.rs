//! The provider's side of signed JWTs: client assertions (RFC 7523 §2.2),
//! JWT bearer grants (§2.1) and, later, DPoP proofs. Verification is done
//! by `jsonwebtoken`, an implementation independent of the library's.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// A public key the provider trusts, with the algorithms it may sign.
#[derive(Clone)]
pub(crate) struct TrustedKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey").field("algorithms", &self.algorithms).finish_non_exhaustive()
    }
}

impl TrustedKey {
    /// A PEM `PUBLIC KEY` (RSA, P-256 or Ed25519), a public JWK, or (for
    /// `client_secret_jwt`) an HMAC secret.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('{') {
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(text).map_err(|e| format!("not a JWK: {e}"))?;
            let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable JWK: {e}"))?;
            let algorithms = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => vec![Algorithm::RS256, Algorithm::PS256],
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => vec![Algorithm::ES256],
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                _ => vec![Algorithm::HS256],
            };
            return Ok(Self { key, algorithms });
        }
        let pem = text.as_bytes();
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self { key, algorithms: vec![Algorithm::RS256, Algorithm::PS256] });
        }
        if let Ok(key) = DecodingKey::from_ec_pem(pem) {
            return Ok(Self { key, algorithms: vec![Algorithm::ES256] });
        }
        if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            return Ok(Self { key, algorithms: vec![Algorithm::EdDSA] });
        }
        Err("not a PEM public key (RSA, P-256 or Ed25519) nor a JWK".to_owned())
    }

    pub(crate) fn hmac(secret: &str) -> Self {
        Self { key: DecodingKey::from_secret(secret.as_bytes()), algorithms: vec![Algorithm::HS256] }
    }
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

/// Verifies `jwt` with `key`; the claims, or why it was refused.
pub(crate) fn verify(
    jwt: &str,
    key: &TrustedKey,
    expect: &Expect<'_>,
    seen: &mut HashSet<String>,
) -> Result<Map<String, Value>, String> {
    let header = decode_header(jwt).map_err(|e| format!("not a JWT: {e}"))?;
    if !key.algorithms.contains(&header.alg) {
        return Err(format!("algorithm {:?} is not allowed for this key", header.alg));
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = 5;
    validation.set_audience(expect.audiences);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    if let Some(issuer) = expect.issuer {
        validation.set_issuer(&[issuer]);
    }
    let claims = decode::<Map<String, Value>>(jwt, &key.key, &validation).map_err(|e| format!("rejected: {e}"))?.claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if expect.subject_is_issuer && text("sub") != text("iss") {
        return Err("sub is not the client id".to_owned());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
    if exp > now + expect.max_lifetime {
        return Err(format!("exp is more than {} s away", expect.max_lifetime));
    }
    let jti = text("jti").ok_or("jti is missing")?;
    if !seen.insert(format!("{}\u{0}{jti}", text("iss").unwrap_or(""))) {
        return Err("the assertion was used before (jti replay)".to_owned());
    }
    Ok(claims)
}

/// A claim of an unverified JWT (`iss`: which key to check it with).
pub(crate) fn unverified_claim(jwt: &str, name: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get(name)?.as_str().map(str::to_owned)
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
    use base64::Engine as _;
    use sha2::Digest as _;
    let invalid = |why: &str| ProofError::Invalid(why.to_owned());
    let header = decode_header(jwt).map_err(|e| ProofError::Invalid(format!("not a JWT: {e}")))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(invalid("typ is not dpop+jwt"));
    }
    if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(invalid("a symmetric algorithm"));
    }
    let jwk = header.jwk.as_ref().ok_or_else(|| invalid("no jwk in the header"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| ProofError::Invalid(format!("unusable jwk: {e}")))?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = decode::<Map<String, Value>>(jwt, &key, &validation)
        .map_err(|e| ProofError::Invalid(format!("bad signature or claims: {e}")))?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("htm") != Some(check.method) {
        return Err(invalid("htm is not the request's method"));
    }
    if text("htu") != Some(check.htu) {
        return Err(ProofError::Invalid(format!("htu {:?} is not {}", text("htu"), check.htu)));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let iat = claims.get("iat").and_then(Value::as_u64).ok_or_else(|| invalid("no iat"))?;
    if iat + 60 < now || iat > now + 60 {
        return Err(invalid("iat is not within a minute of now"));
    }
    if let Some(token) = check.access_token {
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token));
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
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .map_err(|e| ProofError::Invalid(format!("no thumbprint: {e}")))
}
