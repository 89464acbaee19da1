//! Why a key could not be read or used.

use super::Algorithm;

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
        "unsupported key: {what}; use an RSA key of 2048 to 4096 bits, a P-256 or P-384 EC key, or an Ed25519 key"
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

impl KeyError {
    /// A key in `format` that the crypto provider refused, in words that
    /// say what is wrong (the provider's are one identifier).
    pub(crate) fn rejected(format: &'static str, rejected: ring::error::KeyRejected) -> Self {
        let reason = match rejected.to_string().as_str() {
            "InconsistentComponents" => "the public key in it does not belong to the private key",
            "InvalidComponent" => "a component of the key is out of range",
            "InvalidEncoding" => "its DER encoding is not one this library reads",
            "TooSmall" => "the key is too small",
            "TooLarge" => "the key is too large",
            "VersionNotSupported" => "its version is not supported",
            "WrongAlgorithm" => "its algorithm does not match its contents",
            "PublicKeyIsMissing" => "its public key is missing",
            _ => "the crypto provider refused it",
        };
        Self::Malformed { format, reason: reason.to_owned() }
    }
}
