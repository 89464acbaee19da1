//! DPoP (RFC 9449): sender-constrained access tokens. The client holds a
//! key pair; every token request and every API request carries a fresh
//! proof (a JWT signed with the key, naming the method, the URL, the time
//! and, on API requests, the token's hash), so a stolen token is useless
//! without the key.
//!
//! A [`Dpop`] is one key with its nonce cache. Give it to a source with
//! [`SourceConfigBuilder::dpop`](crate::config::SourceConfigBuilder::dpop):
//! its token requests then carry proofs, the provider's `token_type` must
//! be `DPoP`, and the tokens it hands out make their own proofs when
//! [`Credentials`](crate::Credentials) put them on requests.
//!
//! Nonces (§8, §9): a server may demand that proofs carry a nonce it
//! chose. A `DPoP-Nonce` header on any answer is remembered for that
//! origin and put in the next proofs there; an answer that rejects a proof
//! for want of a nonce (`use_dpop_nonce`) is retried once with the new one,
//! never when the server names the nonce it just rejected.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use auth_core::dpop::Dpop;
//!
//! let dpop = Dpop::generate()?;
//! let uri: http::Uri = "https://api.example.com/orders?page=2".parse()?;
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let proof = dpop.proof(&http::Method::GET, &uri, None, now)?;
//! assert_eq!(proof.value().to_str()?.split('.').count(), 3);
//! // The server asks for a nonce: it is remembered for the origin.
//! let mut headers = http::HeaderMap::new();
//! headers.insert("dpop-nonce", "n-1".parse()?);
//! dpop.observe(&uri, &headers);
//! assert_eq!(dpop.proof(&http::Method::GET, &uri, None, now)?.nonce(), Some("n-1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::{Map, Value};

use crate::error::TokenError;
use crate::keys::{Algorithm, KeyError, SigningKey};
use crate::secret::{AccessTokenValue, ExposeSecret};

/// The header that carries a proof.
pub const DPOP_HEADER: &str = "dpop";
/// The header that carries a server's nonce.
pub const NONCE_HEADER: &str = "dpop-nonce";
/// The `typ` of a proof.
const PROOF_TYPE: &str = "dpop+jwt";
/// Nonces longer than this are not kept (a server's mistake, or abuse).
const MAX_NONCE_LEN: usize = 512;
/// Origins whose nonces are kept; the oldest goes beyond this.
const MAX_ORIGINS: usize = 64;

/// A DPoP key with its nonce cache. Share it (`Arc<Dpop>`) between the
/// token source and the requests its tokens go on. Its `Debug` shows the
/// key's algorithm and thumbprint, never the key.
pub struct Dpop {
    key: SigningKey,
    /// The proofs' JWS header (`typ`, `alg`, `jwk`), base64url: the same
    /// for every proof made with the key, so made once.
    header: String,
    thumbprint: String,
    nonces: Mutex<NonceCache>,
    /// The `ath` of the access token last proved with: computed once per
    /// token, not once per request.
    ath: Mutex<Option<(AccessTokenValue, Arc<str>)>>,
    /// The `htu` of the request target last proved for, and its JSON form:
    /// a client calls the same few URLs.
    htu: Mutex<Option<(String, Arc<str>)>>,
}

#[derive(Default)]
struct NonceCache {
    by_origin: HashMap<String, Arc<str>>,
    order: Vec<String>,
}

/// One proof: the `DPoP` header value, and the nonce it carries.
#[derive(Clone)]
pub struct Proof {
    value: HeaderValue,
    nonce: Option<Arc<str>>,
}

impl Proof {
    /// The `DPoP` header value (marked sensitive).
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }
    /// The nonce it carries, if any.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proof").field("nonce", &self.nonce).finish_non_exhaustive()
    }
}

impl Dpop {
    /// DPoP with `key` (ES256, RS256, PS256 or EdDSA; not HS256).
    pub fn new(key: SigningKey) -> Result<Arc<Self>, KeyError> {
        if key.algorithm() == Algorithm::Hs256 {
            return Err(KeyError::AlgorithmMismatch { key: "shared secret", algorithm: Algorithm::Es256 });
        }
        let mut header = Map::new();
        header.insert("jwk".to_owned(), Value::Object(key.public_jwk().unwrap_or_default()));
        let header = key.jws_header(PROOF_TYPE, header)?;
        let thumbprint = key.thumbprint().unwrap_or_default();
        let (nonces, ath, htu) = (Mutex::new(NonceCache::default()), Mutex::new(None), Mutex::new(None));
        Ok(Arc::new(Self { key, header, thumbprint, nonces, ath, htu }))
    }

    /// DPoP with a new ES256 key.
    pub fn generate() -> Result<Arc<Self>, KeyError> {
        Self::new(SigningKey::generate_es256()?)
    }

    /// The key (to keep it beside a cached token: tokens are bound to it).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The RFC 7638 thumbprint of the public key: the `jkt` tokens are bound to.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A fresh proof for `method` on `uri` at `wall`, with the nonce last
    /// seen from `uri`'s origin and, for an API request, the hash of
    /// `access_token` (`ath`).
    pub fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        access_token: Option<&AccessTokenValue>,
        wall: SystemTime,
    ) -> Result<Proof, TokenError> {
        let fail =
            |message: String| TokenError::Assertion { message: format!("the DPoP proof could not be made: {message}") };
        let now = wall.duration_since(UNIX_EPOCH).map_err(|_| fail("the system clock is before 1970".to_owned()))?;
        let jti = crate::keys::random_bytes::<16>().map_err(|e| fail(e.to_string()))?;
        let nonce = self.nonce_for(uri);
        // The claims written straight as JSON (strings escaped by serde_json).
        let mut claims = Vec::with_capacity(160);
        let string = |claims: &mut Vec<u8>, text: &str| serde_json::to_writer(claims, text);
        claims.extend_from_slice(b"{\"jti\":\"");
        claims.extend_from_slice(URL_SAFE_NO_PAD.encode(*jti).as_bytes());
        claims.extend_from_slice(b"\",\"htm\":");
        string(&mut claims, method.as_str()).map_err(|e| fail(e.to_string()))?;
        claims.extend_from_slice(b",\"htu\":");
        claims.extend_from_slice(self.htu_json(uri).map_err(|e| fail(e.to_string()))?.as_bytes());
        write!(claims, ",\"iat\":{}", now.as_secs()).map_err(|e| fail(e.to_string()))?;
        if let Some(nonce) = &nonce {
            claims.extend_from_slice(b",\"nonce\":");
            string(&mut claims, nonce).map_err(|e| fail(e.to_string()))?;
        }
        if let Some(token) = access_token {
            claims.extend_from_slice(b",\"ath\":\"");
            claims.extend_from_slice(self.ath(token).as_bytes());
            claims.push(b'"');
        }
        claims.push(b'}');
        let mut signing_input = String::with_capacity(self.header.len() + claims.len() * 4 / 3 + 100);
        signing_input.push_str(&self.header);
        signing_input.push('.');
        URL_SAFE_NO_PAD.encode_string(&claims, &mut signing_input);
        let jwt = self.key.sign_jws(signing_input).map_err(|e| fail(e.to_string()))?;
        let mut value = HeaderValue::try_from(jwt).map_err(|e| fail(e.to_string()))?;
        value.set_sensitive(true);
        Ok(Proof { value, nonce })
    }

    /// RFC 9449 §4.2 `ath`: base64url(SHA-256(`token`)), kept for the
    /// token last asked about.
    fn ath(&self, token: &AccessTokenValue) -> Arc<str> {
        let mut cached = self.ath.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((known, ath)) = cached.as_ref() {
            if known.expose_secret() == token.expose_secret() {
                return Arc::clone(ath);
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, token.expose_secret().as_bytes());
        let ath: Arc<str> = Arc::from(URL_SAFE_NO_PAD.encode(digest));
        *cached = Some((token.clone(), Arc::clone(&ath)));
        ath
    }

    /// The `htu` of `uri` as a JSON string, kept for the target last asked
    /// about.
    fn htu_json(&self, uri: &Uri) -> Result<Arc<str>, serde_json::Error> {
        let mut cached = self.htu.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((known, json)) = cached.as_ref() {
            if is_htu_of(known, uri) {
                return Ok(Arc::clone(json));
            }
        }
        let plain = htu(uri);
        let json: Arc<str> = Arc::from(serde_json::to_string(&plain)?);
        *cached = Some((plain, Arc::clone(&json)));
        Ok(json)
    }

    /// Remembers the `DPoP-Nonce` of an answer from `uri`'s origin, if it
    /// carries a usable one.
    pub fn observe(&self, uri: &Uri, headers: &HeaderMap) {
        let Some(nonce) = headers.get(NONCE_HEADER).and_then(|v| v.to_str().ok()).filter(|n| valid_nonce(n)) else {
            return;
        };
        let origin = origin(uri);
        let mut cache = self.nonces.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.by_origin.get(&origin).is_some_and(|known| &**known == nonce) {
            return;
        }
        if !cache.by_origin.contains_key(&origin) {
            if cache.order.len() >= MAX_ORIGINS {
                let oldest = cache.order.remove(0);
                cache.by_origin.remove(&oldest);
            }
            cache.order.push(origin.clone());
        }
        cache.by_origin.insert(origin, Arc::from(nonce));
    }

    /// The nonce last seen from `uri`'s origin.
    pub fn nonce_for(&self, uri: &Uri) -> Option<Arc<str>> {
        let cache = self.nonces.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.by_origin.get(&origin(uri)).cloned()
    }

    /// Whether a token endpoint answer asks for the request again with a
    /// nonce: `400` with `error=use_dpop_nonce` and a `DPoP-Nonce` that is
    /// not the one `sent` carried. Remembers the nonce either way.
    pub fn token_endpoint_retry(
        &self,
        uri: &Uri,
        sent: &Proof,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> bool {
        self.observe(uri, headers);
        status == StatusCode::BAD_REQUEST
            && error_code(body).as_deref() == Some("use_dpop_nonce")
            && offers_new_nonce(sent, headers)
    }
}

/// Whether an answer to a request that carried `sent` offers a valid nonce
/// other than the one `sent` carried (a retry with it may succeed).
pub fn offers_new_nonce(sent: &Proof, headers: &HeaderMap) -> bool {
    let offered = headers.get(NONCE_HEADER).and_then(|v| v.to_str().ok()).filter(|n| valid_nonce(n));
    offered.is_some() && offered != sent.nonce()
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop")
            .field("algorithm", &self.key.algorithm())
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// Whether an API answer demands a DPoP nonce (`401` with
/// `WWW-Authenticate: DPoP error="use_dpop_nonce"`): the token is fine, the
/// proof lacked the nonce. Such an answer never invalidates the token.
pub fn is_nonce_demand(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED && asks_for_nonce(headers)
}

/// RFC 9449 §4.2 `htu`: the URI without query and fragment.
pub fn htu(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map_or("", |a| a.as_str());
    let path = if uri.path().is_empty() { "/" } else { uri.path() };
    format!("{scheme}://{authority}{path}")
}

/// Whether `known` is [`htu`] of `uri`, compared piece by piece (no
/// allocation).
fn is_htu_of(known: &str, uri: &Uri) -> bool {
    let path = if uri.path().is_empty() { "/" } else { uri.path() };
    known
        .strip_prefix(uri.scheme_str().unwrap_or("https"))
        .and_then(|rest| rest.strip_prefix("://"))
        .and_then(|rest| rest.strip_prefix(uri.authority().map_or("", |a| a.as_str())))
        .is_some_and(|rest| rest == path)
}

fn origin(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
    let authority = uri.authority().map_or(String::new(), |a| a.as_str().to_ascii_lowercase());
    format!("{scheme}://{authority}")
}

/// RFC 9449 §8.1: `nonce = 1*NQCHAR` (printable ASCII but `"` and `\`).
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_LEN
        && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

/// The `error` of a JSON error body.
fn error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value.get("error")?.as_str().map(str::to_owned)
}

/// Whether a `WWW-Authenticate` challenge is `DPoP` with
/// `error="use_dpop_nonce"` (a header that cannot be read whole is not).
fn asks_for_nonce(headers: &HeaderMap) -> bool {
    use crate::resource::challenge::{from_headers, Scheme};
    from_headers(headers).is_ok_and(|challenges| {
        challenges
            .iter()
            .any(|challenge| challenge.scheme() == Scheme::Dpop && challenge.error() == Some("use_dpop_nonce"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_testkit::jose::{verify_signature, PublicKey};

    fn now() -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000)
    }

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    /// The claims of a proof, verified with the key in its own header, as
    /// a server does.
    fn verified(proof: &Proof) -> (Map<String, Value>, Map<String, Value>) {
        let jwt = proof.value().to_str().unwrap();
        let header: Map<String, Value> =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
        let key = PublicKey::from_jwk(header["jwk"].as_object().unwrap()).unwrap();
        verify_signature(jwt, &key).unwrap()
    }

    #[test]
    fn a_proof_names_method_url_time_and_token_and_is_never_the_same_twice() {
        let dpop = Dpop::generate().unwrap();
        let target = uri("https://API.example.com:8443/orders/7?page=2#top");
        let token = AccessTokenValue::new("tok-1");
        let proof = dpop.proof(&Method::POST, &target, Some(&token), now()).unwrap();
        assert!(proof.value().is_sensitive());
        let (header, claims) = verified(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        let thumbprint = PublicKey::from_jwk(header["jwk"].as_object().unwrap()).unwrap().thumbprint();
        assert_eq!(thumbprint.as_deref(), Some(dpop.thumbprint()));
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://API.example.com:8443/orders/7");
        assert_eq!(claims["iat"], 1_800_000_000u64);
        // RFC 9449 §4.2: ath = base64url(SHA-256(token)).
        assert_eq!(claims["ath"], URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, b"tok-1")));
        assert!(!claims.contains_key("nonce"));
        let again = verified(&dpop.proof(&Method::POST, &target, Some(&token), now()).unwrap()).1;
        assert_ne!(again["jti"], claims["jti"]);
        assert_eq!(htu(&uri("http://127.0.0.1:8080")), "http://127.0.0.1:8080/");
        // The htu kept for the last target is never another target's.
        for target in [
            "https://api.example.com/a",
            "https://api.example.com/b",
            "https://api.example.com/a?x=1",
            "http://api.example.com/a",
            "https://api.example.com:444/a",
            "https://api.example.com",
        ] {
            let claims = verified(&dpop.proof(&Method::GET, &uri(target), None, now()).unwrap()).1;
            assert_eq!(claims["htu"], htu(&uri(target)), "{target}");
        }
    }

    #[test]
    fn nonces_are_kept_per_origin_and_retries_need_a_new_one() {
        let dpop = Dpop::generate().unwrap();
        let token_url = uri("https://auth.example.com/token");
        let api = uri("https://api.example.com/orders");
        let mut headers = HeaderMap::new();
        headers.insert(NONCE_HEADER, HeaderValue::from_static("n-1"));
        let first = dpop.proof(&Method::POST, &token_url, None, now()).unwrap();
        let body = br#"{"error":"use_dpop_nonce","error_description":"need a nonce"}"#;
        assert!(dpop.token_endpoint_retry(&token_url, &first, StatusCode::BAD_REQUEST, &headers, body));
        let second = dpop.proof(&Method::POST, &token_url, None, now()).unwrap();
        assert_eq!(verified(&second).1["nonce"], "n-1");
        // The same nonce rejected again: no second retry.
        assert!(!dpop.token_endpoint_retry(&token_url, &second, StatusCode::BAD_REQUEST, &headers, body));
        // Another error, or no nonce offered: no retry.
        assert!(!dpop.token_endpoint_retry(
            &token_url,
            &first,
            StatusCode::BAD_REQUEST,
            &headers,
            br#"{"error":"invalid_grant"}"#
        ));
        assert!(!dpop.token_endpoint_retry(&token_url, &first, StatusCode::BAD_REQUEST, &HeaderMap::new(), body));
        // The API's origin has its own nonce.
        assert!(dpop.proof(&Method::GET, &api, None, now()).unwrap().nonce().is_none());
        let mut challenge = HeaderMap::new();
        challenge.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#,
            ),
        );
        challenge.insert(NONCE_HEADER, HeaderValue::from_static("api-n"));
        // What a driver does with it is `replay::judge`'s to say; here: a
        // nonce demand with a new nonce, remembered for the API's origin.
        let sent = dpop.proof(&Method::GET, &api, None, now()).unwrap();
        assert!(is_nonce_demand(StatusCode::UNAUTHORIZED, &challenge) && offers_new_nonce(&sent, &challenge));
        dpop.observe(&api, &challenge);
        let resent = dpop.proof(&Method::GET, &api, None, now()).unwrap();
        assert_eq!(resent.nonce(), Some("api-n"));
        assert!(!offers_new_nonce(&resent, &challenge), "the nonce just sent is not a new one");
        let mut bearer = challenge.clone();
        bearer.insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer error="invalid_token""#));
        assert!(!is_nonce_demand(StatusCode::UNAUTHORIZED, &bearer));
        // Any answer updates the nonce; unusable ones are ignored.
        let mut ok = HeaderMap::new();
        ok.insert(NONCE_HEADER, HeaderValue::from_static("api-n2"));
        dpop.observe(&api, &ok);
        assert_eq!(dpop.nonce_for(&api).as_deref(), Some("api-n2"));
        ok.insert(NONCE_HEADER, HeaderValue::from_static("has\"quote"));
        dpop.observe(&api, &ok);
        assert_eq!(dpop.nonce_for(&api).as_deref(), Some("api-n2"));
        assert_eq!(dpop.nonce_for(&token_url).as_deref(), Some("n-1"));
    }

    #[test]
    fn the_nonce_cache_is_bounded() {
        let dpop = Dpop::generate().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(NONCE_HEADER, HeaderValue::from_static("n"));
        for i in 0..(MAX_ORIGINS + 10) {
            dpop.observe(&uri(&format!("https://h{i}.example.com/")), &headers);
        }
        let cache = dpop.nonces.lock().unwrap();
        assert_eq!(cache.by_origin.len(), MAX_ORIGINS);
        assert!(!cache.by_origin.contains_key("https://h0.example.com"));
    }

    #[test]
    fn a_shared_secret_cannot_be_a_dpop_key_and_debug_shows_no_key() {
        assert!(Dpop::new(SigningKey::hmac_sha256(b"k")).is_err());
        let dpop = Dpop::generate().unwrap();
        let shown = format!("{dpop:?}");
        assert!(shown.contains(dpop.thumbprint()));
        let pem = dpop.key().to_pkcs8_pem().unwrap();
        assert!(pem.lines().filter(|l| !l.starts_with("-----")).all(|line| !shown.contains(line)));
    }
}
