use auth_testkit::jose::{verify_signature, PublicKey};
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::der::{Decode as _, Encode as _};

use super::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/testdata/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The claims of `jwt`, once the provider's verifier accepts it.
fn verified(jwt: &str, key: &PublicKey, algorithm: Algorithm) -> Value {
    let (header, claims) = verify_signature(jwt, key).unwrap_or_else(|e| panic!("{algorithm}: {e}"));
    assert_eq!(header["alg"], algorithm.as_str());
    Value::Object(claims)
}

fn public(key: &SigningKey) -> PublicKey {
    PublicKey::from_jwk(&key.public_jwk().unwrap()).unwrap()
}

#[test]
fn every_algorithm_signs_what_the_providers_verifier_accepts() {
    let claims = serde_json::json!({"iss": "c", "n": 1});
    let cases = [
        ("rsa-2048.pem", Some("rsa-2048.pub.pem"), Algorithm::Rs256),
        ("rsa-2048.pem", Some("rsa-2048.pub.pem"), Algorithm::Rs384),
        ("rsa-2048-pkcs1.pem", Some("rsa-2048.pub.pem"), Algorithm::Ps256),
        ("rsa-2048-pkcs1.pem", Some("rsa-2048.pub.pem"), Algorithm::Ps384),
        ("ec-p256.pem", Some("ec-p256.pub.pem"), Algorithm::Es256),
        ("ec-p256-sec1.pem", Some("ec-p256.pub.pem"), Algorithm::Es256),
        ("ec-p384.pem", None, Algorithm::Es384),
        ("ed25519.pem", Some("ed25519.pub.pem"), Algorithm::EdDsa),
    ];
    for (private, public_pem, algorithm) in cases {
        let key = SigningKey::from_pem(&fixture(private)).unwrap().with_algorithm(algorithm).unwrap();
        assert_eq!(key.algorithm(), algorithm);
        let jwt = key.clone().with_key_id("k-1").sign_jwt("JWT", &claims).unwrap();
        if let Some(public_pem) = public_pem {
            let from_pem = PublicKey::parse(&fixture(public_pem)).unwrap();
            assert_eq!(verified(&jwt, &from_pem, algorithm), claims, "{private}");
            // The public JWK is the same key as the PEM's.
            assert_eq!(public(&key).thumbprint(), from_pem.thumbprint(), "{private}");
        }
        assert_eq!(verified(&jwt, &public(&key), algorithm), claims, "{private}");
        let (header, _) = verify_signature(&jwt, &public(&key)).unwrap();
        assert_eq!((header["kid"].as_str(), header["typ"].as_str()), (Some("k-1"), Some("JWT")));
        // A signature by another key of the kind is refused.
        let tampered = format!("{}.{}", jwt.rsplit_once('.').unwrap().0, "AAAA");
        assert!(verify_signature(&tampered, &public(&key)).is_err());
    }
    let hmac = SigningKey::hmac_sha256(b"a shared secret of thirty-two bytes!");
    let jwt = hmac.sign_jwt("JWT", &claims).unwrap();
    assert_eq!(verified(&jwt, &PublicKey::hmac(b"a shared secret of thirty-two bytes!"), Algorithm::Hs256), claims);
    assert!(verify_signature(&jwt, &PublicKey::hmac(b"another secret")).is_err());
    assert!(hmac.public_jwk().is_none() && hmac.thumbprint().is_none());
    for algorithm in Algorithm::ALL {
        assert_eq!(Algorithm::parse(algorithm.as_str()), Some(algorithm));
    }
}

#[test]
fn a_generated_key_round_trips_through_pkcs8_and_keeps_its_thumbprint() {
    let key = SigningKey::generate_es256().unwrap();
    let other = SigningKey::generate_es256().unwrap();
    assert_ne!(key.thumbprint(), other.thumbprint());
    let again = SigningKey::from_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
    assert_eq!(again.thumbprint(), key.thumbprint());
    assert_eq!(again.thumbprint(), public(&key).thumbprint(), "the provider's thumbprint agrees");
    // RFC 7638 §3.1's example key and thumbprint.
    let rfc = r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#;
    let rfc: Map<String, Value> = serde_json::from_str(rfc).unwrap();
    assert_eq!(
        PublicKey::from_jwk(&rfc).unwrap().thumbprint().as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
}

/// The private JWK of a PEM fixture, its private members read from the
/// PKCS#8 with the format crates.
fn private_jwk(key: &SigningKey) -> Map<String, Value> {
    let pem = key.to_pkcs8_pem().unwrap();
    let (_, der) = pkcs8::SecretDocument::from_pem(&pem).unwrap();
    let info = pkcs8::PrivateKeyInfo::from_der(der.as_bytes()).unwrap();
    let mut jwk = key.public_jwk().unwrap();
    let mut put = |name: &str, bytes: &[u8]| jwk.insert(name.to_owned(), Value::String(b64(bytes)));
    match key.algorithm() {
        Algorithm::Es256 | Algorithm::Es384 => {
            put("d", sec1::EcPrivateKey::from_der(info.private_key).unwrap().private_key);
        }
        Algorithm::EdDsa => {
            put("d", OctetStringRef::from_der(info.private_key).unwrap().as_bytes());
        }
        _ => {
            let rsa = pkcs1::RsaPrivateKey::from_der(info.private_key).unwrap();
            put("d", rsa.private_exponent.as_bytes());
            put("p", rsa.prime1.as_bytes());
            put("q", rsa.prime2.as_bytes());
            put("dp", rsa.exponent1.as_bytes());
            put("dq", rsa.exponent2.as_bytes());
            put("qi", rsa.coefficient.as_bytes());
        }
    }
    jwk
}

#[test]
fn private_jwks_of_every_kind_are_read_and_checked() {
    for name in ["ec-p256.pem", "ec-p384.pem", "ed25519.pem", "rsa-2048.pem"] {
        let key = SigningKey::from_pem(&fixture(name)).unwrap();
        let mut jwk = private_jwk(&key);
        jwk.insert("kid".to_owned(), Value::String("from-jwk".to_owned()));
        let text = Value::Object(jwk.clone()).to_string();
        let read = SigningKey::parse(&text, None).unwrap();
        assert_eq!((read.thumbprint(), read.key_id()), (key.thumbprint(), Some("from-jwk")), "{name}");
        // It signs what the provider accepts, and back to PKCS#8 it is the same key.
        let jwt = read.sign_jwt("JWT", &serde_json::json!({})).unwrap();
        verified(&jwt, &public(&key), key.algorithm());
        let again = SigningKey::from_pem(&read.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint(), "{name}");
        // A set with the one key; the public part alone; a wrong public part.
        let set = serde_json::json!({"keys": [Value::Object(jwk.clone())]}).to_string();
        assert_eq!(SigningKey::from_jwk(&set).unwrap().thumbprint(), key.thumbprint());
        let public = Value::Object(key.public_jwk().unwrap()).to_string();
        assert_eq!(SigningKey::from_jwk(&public).unwrap_err(), KeyError::PublicKeyOnly);
        let wrong = match jwk.get("x").and_then(Value::as_str) {
            Some(x) => ("x", URL_SAFE_NO_PAD.decode(x).unwrap().iter().map(|b| b ^ 1).collect::<Vec<u8>>()),
            None => ("qi", vec![7; 128]),
        };
        jwk.insert(wrong.0.to_owned(), Value::String(b64(&wrong.1)));
        let error = SigningKey::from_jwk(&Value::Object(jwk).to_string()).unwrap_err();
        assert!(matches!(&error, KeyError::Malformed { format: "JWK", .. }), "{name}: {error:?}");
    }
    let ps = r#"{"kty":"EC","crv":"P-256","alg":"PS256","d":"AA","x":"AA","y":"AA"}"#;
    assert!(SigningKey::from_jwk(ps).is_err());
    let k1 = r#"{"kty":"EC","crv":"secp256k1","d":"AA","x":"AA","y":"AA"}"#;
    assert!(matches!(SigningKey::from_jwk(k1), Err(KeyError::Unsupported { what }) if what.contains("secp256k1")));
    let rsa = private_jwk(&SigningKey::from_pem(&fixture("rsa-2048.pem")).unwrap());
    let without_crt: Map<String, Value> = rsa.into_iter().filter(|(k, _)| k != "dp").collect();
    let error = SigningKey::from_jwk(&Value::Object(without_crt).to_string()).unwrap_err();
    assert!(error.to_string().contains("`dp` is missing"), "{error}");
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
        matches!(err(&fixture("ec-legacy-encrypted.pem"), Some(b"x")), KeyError::Unsupported { what } if what.contains("openssl pkcs8"))
    );
    // An EC key stored without its public key: the provider derives none.
    let key = SigningKey::from_pem(&fixture("ec-p256.pem")).unwrap();
    let d = private_jwk(&key)["d"].as_str().map(|d| URL_SAFE_NO_PAD.decode(d).unwrap()).unwrap();
    let bare = sec1::EcPrivateKey {
        private_key: &d,
        parameters: Some(sec1::EcParameters::NamedCurve(pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7"))),
        public_key: None,
    };
    let pem = pkcs8::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, &bare.to_der().unwrap()).unwrap();
    assert!(matches!(err(&pem, None), KeyError::Unsupported { what } if what.contains("openssl pkey")));
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
    for (name, algorithm) in [("ed25519.pem", Algorithm::Rs256), ("ec-p256.pem", Algorithm::Es384)] {
        assert!(matches!(
            SigningKey::from_pem(&fixture(name)).unwrap().with_algorithm(algorithm),
            Err(KeyError::AlgorithmMismatch { .. })
        ));
    }
    assert_eq!(SigningKey::generate_es256().unwrap().try_with_key_id("a\nb").unwrap_err(), KeyError::InvalidKeyId);
    // No error message holds key material.
    for text in [fixture("rsa-1024.pem"), fixture("ec-p256.pem").replace("M", "x"), pem.replace("EC", "RSA")] {
        if let Err(error) = SigningKey::from_pem(&text) {
            let shown = error.to_string();
            assert!(!text.lines().filter(|l| l.len() > 20).any(|l| shown.contains(l)), "{shown}");
        }
    }
}

#[test]
fn a_shared_key_is_changed_on_a_copy() {
    let key = SigningKey::from_pem(&fixture("rsa-2048.pem")).unwrap();
    let held = key.clone();
    let named = key.with_key_id("k-2").with_algorithm(Algorithm::Ps256).unwrap();
    assert_eq!((held.key_id(), held.algorithm()), (None, Algorithm::Rs256));
    assert_eq!((named.key_id(), named.algorithm()), (Some("k-2"), Algorithm::Ps256));
    assert_eq!(named.thumbprint(), held.thumbprint());
    verified(&named.sign_jwt("JWT", &serde_json::json!({})).unwrap(), &public(&held), Algorithm::Ps256);
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
