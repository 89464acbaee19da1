//! Private JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037): read into
//! PKCS#8 ([`super::der`]), which the provider then loads and checks (a
//! public part that does not belong to the private part is refused).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::der::{self, Curve, RsaParts};
use super::{Algorithm, KeyError};

/// A private JWK, as PKCS#8 with what the JWK says beside the key.
pub(super) struct PrivateJwk {
    pub(super) pkcs8: Zeroizing<Vec<u8>>,
    /// The `alg`, when given.
    pub(super) algorithm: Option<Algorithm>,
    /// The `kid`, when given.
    pub(super) key_id: Option<String>,
}

fn bad(reason: &str) -> KeyError {
    KeyError::Malformed { format: "JWK", reason: reason.to_owned() }
}

/// The one private key of a JWK or of a JWK Set.
pub(super) fn read(json: &str) -> Result<PrivateJwk, KeyError> {
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
    if jwk.get("d").is_none() {
        return Err(if text("kty") == Some("oct") { bad("a symmetric key (`oct`)") } else { KeyError::PublicKeyOnly });
    }
    let pkcs8 = match (text("kty"), text("crv")) {
        (Some("EC"), Some(name)) => {
            let Some(curve) = Curve::from_jwk_name(name) else {
                return Err(KeyError::Unsupported { what: format!("an EC key on the curve {name}") });
            };
            let len = curve.coordinate_len();
            let (d, x, y) = (bytes(jwk, "d")?, bytes(jwk, "x")?, bytes(jwk, "y")?);
            if d.len() > len || x.len() != len || y.len() != len {
                return Err(bad(&format!("`d`, `x` and `y` are not {len}-byte {name} values")));
            }
            // A scalar written without its leading zeros is padded back.
            let mut scalar = Zeroizing::new(vec![0u8; len - d.len()]);
            scalar.extend_from_slice(&d);
            let point: Vec<u8> = [&[4u8][..], &x, &y].concat();
            der::ec(curve, &scalar, &point)?
        }
        (Some("EC"), None) => return Err(bad("member `crv` is missing")),
        (Some("OKP"), Some("Ed25519")) => {
            let (seed, public) = (bytes(jwk, "d")?, bytes(jwk, "x")?);
            if seed.len() != 32 || public.len() != 32 {
                return Err(bad("`d` and `x` are not 32 bytes"));
            }
            der::ed25519(&seed, Some(&public))?
        }
        (Some("OKP"), curve) => {
            return Err(KeyError::Unsupported { what: format!("an OKP key on the curve {}", curve.unwrap_or("?")) })
        }
        (Some("RSA"), _) => {
            if jwk.contains_key("oth") {
                return Err(KeyError::Unsupported { what: "a multi-prime RSA key (`oth`)".to_owned() });
            }
            let [n, e, d, p, q, dp, dq, qi] = ["n", "e", "d", "p", "q", "dp", "dq", "qi"].map(|name| bytes(jwk, name));
            let (n, e, d, p, q, dp, dq, qi) = (n?, e?, d?, p?, q?, dp?, dq?, qi?);
            der::rsa(&RsaParts { n: &n, e: &e, d: &d, p: &p, q: &q, dp: &dp, dq: &dq, qi: &qi })?
        }
        (Some(kty), _) => return Err(KeyError::Unsupported { what: format!("a JWK of type `{kty}`") }),
        (None, _) => return Err(bad("member `kty` is missing")),
    };
    let algorithm = match text("alg") {
        Some(alg) => Some(
            Algorithm::parse(alg)
                .ok_or_else(|| KeyError::Unsupported { what: format!("the JWK's algorithm `{alg}`") })?,
        ),
        None => None,
    };
    Ok(PrivateJwk { pkcs8, algorithm, key_id: text("kid").map(str::to_owned) })
}

/// A base64url member, decoded.
fn bytes(jwk: &Map<String, Value>, name: &'static str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let value = jwk.get(name).and_then(Value::as_str).ok_or_else(|| bad(&format!("member `{name}` is missing")))?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map(Zeroizing::new)
        .map_err(|_| bad(&format!("member `{name}` is not base64url")))
}
