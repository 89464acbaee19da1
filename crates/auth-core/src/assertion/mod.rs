//! JWT assertions (RFC 7523): client authentication with a signed JWT
//! (`private_key_jwt`, `client_secret_jwt`; §2.2 and OpenID Connect Core
//! §9) and the JWT bearer grant (§2.1).
//!
//! An assertion is single-use: it carries a fresh `jti` and a short
//! lifetime, so it is made at the moment a request is sent, not when the
//! request is built. The request builders of [`crate::wire::request`] leave a
//! note in the request's extensions; a driver turns the built request into
//! the one it sends with [`crate::wire::request::ready_to_send`], once per
//! attempt, with the wall time of that attempt.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use auth_core::assertion::AssertionAudience;
//! use auth_core::config::{ClientAuth, SourceConfig};
//! use auth_core::keys::SigningKey;
//! use auth_core::wire::request::{ready_to_send, token_request, Grant};
//!
//! let config = SourceConfig::builder("https://auth.example.com/oauth/token", "my-client")
//!     .signing_key(SigningKey::generate_es256()?.with_key_id("key-1"))
//!     .assertion_audience(AssertionAudience::TokenUrl)
//!     .build()?;
//! assert_eq!(config.client_auth(), ClientAuth::PrivateKeyJwt);
//! let built = token_request(&config, Grant::ClientCredentials);
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let sent = ready_to_send(&built, now)?;
//! let body = std::str::from_utf8(sent.body())?;
//! assert!(body.starts_with("grant_type=client_credentials&client_id=my-client&"));
//! assert!(body.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"));
//! // Every attempt gets its own assertion.
//! assert_ne!(ready_to_send(&built, now)?.body(), sent.body());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Request;
use serde_json::{Map, Value};

use crate::config::SourceConfig;
use crate::error::TokenError;
use crate::keys::SigningKey;

pub(crate) mod settings;

use settings::BearerKind;
pub use settings::{
    AssertionAudience, AssertionFn, JwtBearer, ASSERTION_LIFETIME, CLIENT_ASSERTION_TYPE, JWT_BEARER_GRANT,
};

impl JwtBearer {
    fn make(&self, aud: Option<&str>, wall: SystemTime) -> Result<String, TokenError> {
        match &self.kind {
            BearerKind::Signed { key, issuer, subject, lifetime, claims, .. } => {
                let mut all = claims.clone();
                let registered = registered_claims(issuer, subject, aud.unwrap_or_default(), wall, *lifetime)?;
                all.extend(registered);
                sign(key, &Value::Object(all))
            }
            BearerKind::Supplied { make, .. } => {
                let assertion = make(wall).map_err(|message| TokenError::Assertion {
                    message: format!("the JWT bearer assertion could not be made: {message}"),
                })?;
                let assertion = assertion.trim().to_owned();
                if assertion.is_empty() || !assertion.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(TokenError::Assertion {
                        message:
                            "the JWT bearer assertion is empty or not a JWT (it holds spaces or control characters)"
                                .to_owned(),
                    });
                }
                Ok(assertion)
            }
        }
    }
}

fn registered_claims(
    issuer: &str,
    subject: &str,
    audience: &str,
    wall: SystemTime,
    lifetime: Duration,
) -> Result<Map<String, Value>, TokenError> {
    let now = wall.duration_since(UNIX_EPOCH).map_err(|_| TokenError::Assertion {
        message: "the system clock is before 1970; an assertion needs the time".to_owned(),
    })?;
    let jti =
        crate::keys::random_bytes::<16>().map_err(|error| TokenError::Assertion { message: error.to_string() })?;
    let now = now.as_secs();
    let mut claims = Map::new();
    claims.insert("iss".to_owned(), issuer.into());
    claims.insert("sub".to_owned(), subject.into());
    claims.insert("aud".to_owned(), audience.into());
    claims.insert(
        "jti".to_owned(),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, *jti).into(),
    );
    claims.insert("iat".to_owned(), now.into());
    // Some servers (Microsoft Entra ID) require `nbf`.
    claims.insert("nbf".to_owned(), now.into());
    claims.insert("exp".to_owned(), (now + lifetime.as_secs()).into());
    Ok(claims)
}

fn sign(key: &SigningKey, claims: &Value) -> Result<String, TokenError> {
    key.sign_jwt("JWT", claims).map_err(|error| TokenError::Assertion { message: error.to_string() })
}

/// What a built request still needs when it is sent, kept in its
/// extensions by the request builders.
#[derive(Clone)]
pub(crate) struct Pending(Arc<PendingParts>);

struct PendingParts {
    /// `private_key_jwt` / `client_secret_jwt`: the key, client id and `aud`.
    client: Option<(SigningKey, String, String)>,
    /// `private_key_jwt` with the assertion supplied from outside.
    supplied: Option<crate::exchange::SuppliedToken>,
    /// The token exchange whose tokens are read at send time.
    exchange: Option<crate::exchange::TokenExchange>,
    /// The JWT bearer grant's assertion and its `aud`.
    grant: Option<(JwtBearer, Option<String>)>,
    /// The DPoP key of a token endpoint request.
    dpop: Option<Arc<crate::dpop::Dpop>>,
}

impl Pending {
    /// What `config` adds at send time to a request to its endpoints;
    /// `grant` for a JWT bearer token request, `token_endpoint` for any
    /// request to the token endpoint (a DPoP proof).
    pub(crate) fn for_request(config: &SourceConfig, grant: bool, token_endpoint: bool) -> Option<Self> {
        let exchange = config.token_exchange().filter(|_| grant).cloned();
        let client = config
            .assertion_key()
            .map(|key| (key.clone(), config.client_id().to_owned(), config.assertion_aud().to_owned()));
        let grant = config.jwt_bearer().filter(|_| grant).map(|bearer| {
            let aud = bearer.signed_audience().and_then(|aud| aud.resolve(config.token_url(), config.issuer()));
            (bearer.clone(), aud)
        });
        let dpop = config.dpop().filter(|_| token_endpoint).cloned();
        let supplied =
            config.client_assertion().filter(|_| config.client_auth() == crate::ClientAuth::PrivateKeyJwt).cloned();
        (client.is_some() || grant.is_some() || dpop.is_some() || supplied.is_some() || exchange.is_some())
            .then(|| Self(Arc::new(PendingParts { client, supplied, exchange, grant, dpop })))
    }

    /// The form parameters to append, made now.
    pub(crate) fn params(
        &self,
        wall: SystemTime,
    ) -> Result<Vec<(&'static str, zeroize::Zeroizing<String>)>, TokenError> {
        let mut params = Vec::with_capacity(3);
        if let Some((bearer, aud)) = &self.0.grant {
            params.push(("assertion", zeroize::Zeroizing::new(bearer.make(aud.as_deref(), wall)?)));
        }
        if let Some(exchange) = &self.0.exchange {
            params.extend(exchange.tokens(wall)?);
        }
        if let Some(supplied) = &self.0.supplied {
            let assertion = supplied.read("the client assertion", wall, true)?;
            params.push(("client_assertion_type", zeroize::Zeroizing::new(CLIENT_ASSERTION_TYPE.to_owned())));
            params.push(("client_assertion", assertion));
        }
        if let Some((key, client_id, aud)) = &self.0.client {
            let claims = registered_claims(client_id, client_id, aud, wall, ASSERTION_LIFETIME)?;
            params.push(("client_assertion_type", zeroize::Zeroizing::new(CLIENT_ASSERTION_TYPE.to_owned())));
            params.push(("client_assertion", zeroize::Zeroizing::new(sign(key, &Value::Object(claims))?)));
        }
        Ok(params)
    }
}

/// The request to send for `built` (from [`crate::wire::request`]) at `wall`:
/// with a fresh client assertion, JWT bearer assertion and DPoP proof when
/// the configuration uses them, unchanged otherwise; and the proof, with
/// its key, to judge the answer by.
pub(crate) fn prepare(
    built: &Request<Vec<u8>>,
    wall: SystemTime,
) -> Result<(Request<Vec<u8>>, Option<SentProof>), TokenError> {
    let mut request = built.clone();
    let mut sent = None;
    if let Some(pending) = request.extensions_mut().remove::<Pending>() {
        if let Some(dpop) = &pending.0.dpop {
            let proof = dpop.proof(request.method(), request.uri(), None, wall)?;
            request.headers_mut().insert(crate::dpop::DPOP_HEADER, proof.value().clone());
            sent = Some((Arc::clone(dpop), proof));
        }
        let params = pending.params(wall)?;
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &params {
            serializer.append_pair(name, value);
        }
        let extra = zeroize::Zeroizing::new(serializer.finish());
        let body = request.body_mut();
        if !body.is_empty() {
            body.push(b'&');
        }
        body.extend_from_slice(extra.as_bytes());
    }
    Ok((request, sent))
}

/// A DPoP proof as sent, with its key.
pub(crate) type SentProof = (Arc<crate::dpop::Dpop>, crate::dpop::Proof);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientAuth, SourceConfigBuilder, SourceGrant};
    use crate::error::ConfigError;
    use crate::keys::Algorithm;
    use crate::secret::RefreshToken;
    use crate::wire::request::{ready_to_send, revocation_request, token_request, Grant, Revocable};

    const TOKEN_URL: &str = "https://auth.example.com/oauth/token";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    fn form(request: &Request<Vec<u8>>) -> Vec<(String, String)> {
        form_urlencoded::parse(request.body()).into_owned().collect()
    }

    fn param(request: &Request<Vec<u8>>, name: &str) -> Option<String> {
        form(request).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The claims of `jwt`, once the provider's verifier accepts its
    /// signature by `key` with `algorithm`.
    fn claims(jwt: &str, key: &SigningKey, algorithm: Algorithm) -> Map<String, Value> {
        use auth_testkit::jose::{verify_signature, PublicKey};
        let public = match key.public_jwk() {
            Some(jwk) => PublicKey::from_jwk(&jwk).unwrap(),
            None => PublicKey::hmac(b"the client secret"),
        };
        let (header, claims) = verify_signature(jwt, &public).unwrap();
        assert_eq!(header["alg"], algorithm.as_str());
        claims
    }

    fn private_key_jwt(audience: AssertionAudience) -> (SourceConfigBuilder, SigningKey) {
        let key = SigningKey::generate_es256().unwrap().with_key_id("k1");
        let builder = SourceConfig::builder(TOKEN_URL, "client-1")
            .signing_key(key.clone())
            .assertion_audience(audience)
            .revocation_url("https://auth.example.com/oauth/revoke");
        (builder, key)
    }

    #[test]
    fn private_key_jwt_sends_a_fresh_short_lived_assertion_on_every_attempt() {
        let (builder, key) = private_key_jwt(AssertionAudience::default());
        let config = builder.build().unwrap();
        assert_eq!(config.client_auth(), ClientAuth::PrivateKeyJwt);
        let built = token_request(&config, Grant::ClientCredentials);
        assert!(built.headers().get(http::header::AUTHORIZATION).is_none());
        let first = ready_to_send(&built, now()).unwrap();
        let second = ready_to_send(&built, now()).unwrap();
        let names: Vec<String> = form(&first).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["grant_type", "client_id", "client_assertion_type", "client_assertion"]);
        assert_eq!(param(&first, "client_assertion_type").unwrap(), CLIENT_ASSERTION_TYPE);
        let one = claims(&param(&first, "client_assertion").unwrap(), &key, Algorithm::Es256);
        let two = claims(&param(&second, "client_assertion").unwrap(), &key, Algorithm::Es256);
        assert_eq!(one["iss"], "client-1");
        assert_eq!(one["sub"], "client-1");
        assert_eq!(one["aud"], TOKEN_URL);
        assert_eq!(one["iat"], 1_800_000_000u64);
        assert_eq!(one["exp"], 1_800_000_060u64);
        assert_ne!(one["jti"], two["jti"], "a jti is never reused, not even by a retry");
        assert!(one["jti"].as_str().unwrap().len() >= 22);
        // The sent request carries no note: sending it again adds nothing.
        assert_eq!(ready_to_send(&first, now()).unwrap().body(), first.body());
        // Refresh and revocation requests authenticate the same way.
        let refresh = RefreshToken::from("r1");
        let renewal = ready_to_send(&token_request(&config, Grant::RefreshToken(&refresh)), now()).unwrap();
        assert!(param(&renewal, "client_assertion").is_some());
        let revocation = revocation_request(&config, Revocable::RefreshToken(&refresh)).unwrap();
        let revocation = ready_to_send(&revocation.request, now()).unwrap();
        assert_eq!(param(&revocation, "token").unwrap(), "r1");
        assert!(param(&revocation, "client_assertion").is_some());
    }

    #[test]
    fn the_audience_is_a_choice() {
        let aud = |audience, issuer: Option<&str>| {
            let (mut builder, key) = private_key_jwt(audience);
            if let Some(issuer) = issuer {
                builder = builder.issuer(issuer);
            }
            let config = builder.build()?;
            let sent = ready_to_send(&token_request(&config, Grant::ClientCredentials), now()).unwrap();
            let claims = claims(&param(&sent, "client_assertion").unwrap(), &key, Algorithm::Es256);
            Ok::<_, ConfigError>(claims["aud"].as_str().unwrap().to_owned())
        };
        let issuer = Some("https://auth.example.com");
        assert_eq!(aud(AssertionAudience::IssuerOrTokenUrl, None).unwrap(), TOKEN_URL);
        assert_eq!(aud(AssertionAudience::IssuerOrTokenUrl, issuer).unwrap(), "https://auth.example.com");
        assert_eq!(aud(AssertionAudience::TokenUrl, issuer).unwrap(), TOKEN_URL);
        assert_eq!(aud(AssertionAudience::Issuer, issuer).unwrap(), "https://auth.example.com");
        assert_eq!(aud(AssertionAudience::parse("urn:mine"), None).unwrap(), "urn:mine");
        assert!(matches!(aud(AssertionAudience::Issuer, None), Err(ConfigError::MissingIssuer { .. })));
    }

    #[test]
    fn client_secret_jwt_signs_with_the_secret_and_never_sends_it() {
        let config = SourceConfig::builder(TOKEN_URL, "client-1")
            .client_secret("the client secret")
            .client_auth(ClientAuth::ClientSecretJwt)
            .build()
            .unwrap();
        let sent = ready_to_send(&token_request(&config, Grant::ClientCredentials), now()).unwrap();
        assert!(!String::from_utf8_lossy(sent.body()).contains("secret"));
        assert!(sent.headers().get(http::header::AUTHORIZATION).is_none());
        let key = config.assertion_key().unwrap();
        let claims = claims(&param(&sent, "client_assertion").unwrap(), key, Algorithm::Hs256);
        assert_eq!(claims["sub"], "client-1");
        assert!(!format!("{config:?}").contains("the client secret"));
    }

    #[test]
    fn key_methods_without_their_key_are_refused_at_build() {
        let base = || SourceConfig::builder(TOKEN_URL, "c");
        assert_eq!(base().client_auth(ClientAuth::PrivateKeyJwt).build().unwrap_err(), ConfigError::MissingSigningKey);
        assert!(matches!(
            base().client_auth(ClientAuth::ClientSecretJwt).build().unwrap_err(),
            ConfigError::MissingClientSecret { .. }
        ));
        assert!(matches!(
            base().signing_key(SigningKey::hmac_sha256(b"x")).build().unwrap_err(),
            ConfigError::InvalidKeySetup { .. }
        ));
        assert!(matches!(
            base().grant(SourceGrant::JwtBearer).build().unwrap_err(),
            ConfigError::InvalidKeySetup { .. }
        ));
        // TLS client authentication sends the client id alone.
        let fixture = |name: &str| {
            std::fs::read_to_string(format!("{}/testdata/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        };
        let certificate =
            crate::mtls::ClientCertificate::from_pem(&fixture("cert.pem"), &fixture("ec-p256.pem"), None).unwrap();
        let tls = base().client_auth(ClientAuth::TlsClientAuth).client_certificate(certificate).build().unwrap();
        let sent = ready_to_send(&token_request(&tls, Grant::ClientCredentials), now()).unwrap();
        assert_eq!(form(&sent), [("grant_type".into(), "client_credentials".into()), ("client_id".into(), "c".into())]);
    }

    #[test]
    fn the_jwt_bearer_grant_sends_a_signed_assertion_with_the_scope() {
        let key = SigningKey::generate_es256().unwrap();
        let bearer = JwtBearer::signed(key.clone(), "svc@example.com", "user-7")
            .audience(AssertionAudience::Value("https://oauth2.example.com/token".into()))
            .lifetime(Duration::from_secs(300))
            .claim("scope", "read")
            .claim("exp", 1);
        let config = SourceConfig::builder(TOKEN_URL, "client-1").jwt_bearer(bearer).scope("read").build().unwrap();
        assert_eq!((config.grant(), config.client_auth()), (SourceGrant::JwtBearer, ClientAuth::None));
        let built = token_request(&config, Grant::JwtBearer);
        let sent = ready_to_send(&built, now()).unwrap();
        assert_eq!(param(&sent, "grant_type").unwrap(), JWT_BEARER_GRANT);
        assert_eq!(param(&sent, "scope").unwrap(), "read");
        assert_eq!(param(&sent, "client_id").unwrap(), "client-1");
        let claims = claims(&param(&sent, "assertion").unwrap(), &key, Algorithm::Es256);
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("svc@example.com"), Some("user-7")));
        assert_eq!(claims["aud"], "https://oauth2.example.com/token");
        assert_eq!(claims["exp"], 1_800_000_300u64, "a registered claim cannot be replaced");
        assert_eq!(claims["scope"], "read");
        let again = ready_to_send(&built, now()).unwrap();
        assert_ne!(param(&again, "assertion"), param(&sent, "assertion"));
        // With a client key as well, both assertions go.
        let with_client = SourceConfig::builder(TOKEN_URL, "client-1")
            .jwt_bearer(JwtBearer::signed(key.clone(), "a", "b"))
            .signing_key(SigningKey::generate_es256().unwrap())
            .build()
            .unwrap();
        let sent = ready_to_send(&token_request(&with_client, Grant::JwtBearer), now()).unwrap();
        assert!(param(&sent, "assertion").is_some() && param(&sent, "client_assertion").is_some());
        // Each identity has its own tokens.
        let other = SourceConfig::builder(TOKEN_URL, "client-1")
            .jwt_bearer(JwtBearer::signed(key, "svc@example.com", "user-8"))
            .scope("read")
            .build()
            .unwrap();
        assert_ne!(other.cache_key(), config.cache_key());
    }

    #[test]
    fn a_supplied_assertion_is_asked_for_at_each_send_and_its_failures_are_reported() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let bearer = JwtBearer::from_fn("/var/run/token", move |_| match counter.fetch_add(1, Ordering::SeqCst) {
            0 => Ok("eyJ.a.b\n".to_owned()),
            1 => Err("the file /var/run/token is missing".to_owned()),
            _ => Ok("not a jwt".to_owned()),
        });
        let config = SourceConfig::builder(TOKEN_URL, "c").jwt_bearer(bearer).build().unwrap();
        assert!(format!("{config:?}").contains("/var/run/token"));
        let built = token_request(&config, Grant::JwtBearer);
        assert_eq!(param(&ready_to_send(&built, now()).unwrap(), "assertion").unwrap(), "eyJ.a.b");
        let error = ready_to_send(&built, now()).unwrap_err();
        assert!(error.is_transient());
        assert!(error.to_string().contains("/var/run/token is missing"), "{error}");
        assert!(matches!(ready_to_send(&built, now()), Err(TokenError::Assertion { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_jwt_bearer_source_asks_with_its_assertion_and_renews_the_same_way() {
        let bearer = JwtBearer::signed(SigningKey::generate_es256().unwrap(), "a", "b");
        let config = SourceConfig::builder(TOKEN_URL, "c").jwt_bearer(bearer).build().unwrap();
        let mut lifecycle = crate::lifecycle::Lifecycle::new(config, 1);
        #[allow(clippy::disallowed_methods)]
        let start = std::time::Instant::now();
        assert!(matches!(lifecycle.handle_token_wanted(start), crate::lifecycle::Want::Wait));
        let Some(crate::lifecycle::Output::Fetch(fetch)) = lifecycle.poll_output() else { panic!("no fetch") };
        assert_eq!(fetch.grant, crate::lifecycle::GrantKind::JwtBearer);
        assert!(param(&ready_to_send(&fetch.request, now()).unwrap(), "assertion").is_some());
    }
}
