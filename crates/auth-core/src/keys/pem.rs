//! PEM texts: their blocks, and the one private key among them as DER
//! (decrypted when it is an encrypted PKCS#8 key). The DER is read by
//! [`super::der`].

use pkcs8::der::Decode as _;

use super::KeyError;

/// How a private key's DER is laid out, after its PEM label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrivateKeyFormat {
    /// PKCS#8 `PrivateKeyInfo` (`PRIVATE KEY`; an `ENCRYPTED PRIVATE KEY`
    /// once decrypted).
    Pkcs8,
    /// PKCS#1 `RSAPrivateKey` (`RSA PRIVATE KEY`).
    Pkcs1,
    /// SEC1 `ECPrivateKey` (`EC PRIVATE KEY`).
    Sec1,
}

/// The blocks of a PEM text, `(label, whole block)`, in order.
pub(crate) fn pem_blocks(text: &str) -> Result<Vec<(&str, &str)>, KeyError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start..];
        let label_end = after[11..].find("-----").map(|i| i + 11).ok_or(KeyError::NotAKey)?;
        let label = &after[11..label_end];
        let end_marker = format!("-----END {label}-----");
        let end = after.find(&end_marker).ok_or(KeyError::NotAKey)? + end_marker.len();
        blocks.push((label, &after[..end]));
        rest = &after[end..];
    }
    Ok(blocks)
}

/// The one private key of a PEM text (certificates and `EC PARAMETERS`
/// that often share its file are skipped), decrypted with `password` when
/// it is an encrypted PKCS#8 key.
pub(crate) fn private_key_der(
    text: &str,
    password: Option<&[u8]>,
) -> Result<(PrivateKeyFormat, pkcs8::SecretDocument), KeyError> {
    let blocks = pem_blocks(text)?;
    let private: Vec<&(&str, &str)> = blocks.iter().filter(|(label, _)| label.ends_with("PRIVATE KEY")).collect();
    let block = match (private.as_slice(), blocks.first()) {
        ([(_, block)], _) => *block,
        ([], Some((label, _))) => {
            return Err(match *label {
                "PUBLIC KEY" | "RSA PUBLIC KEY" => KeyError::PublicKeyOnly,
                other => KeyError::WrongPemBlock { label: other.to_owned() },
            })
        }
        ([], None) => return Err(KeyError::NotAKey),
        (many, _) => {
            return Err(KeyError::Malformed {
                format: "PEM",
                reason: format!("the text holds {} private keys; give a file with the one to use", many.len()),
            })
        }
    };
    if block.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(KeyError::Unsupported {
            what: "a key encrypted in the legacy OpenSSL format (Proc-Type: 4,ENCRYPTED); convert it with \
                   `openssl pkcs8 -topk8 -in key.pem -out key-pkcs8.pem`"
                .to_owned(),
        });
    }
    let (label, der) = pkcs8::SecretDocument::from_pem(block)
        .map_err(|error| KeyError::Malformed { format: "PEM", reason: error.to_string() })?;
    match label {
        "PRIVATE KEY" => Ok((PrivateKeyFormat::Pkcs8, der)),
        "RSA PRIVATE KEY" => Ok((PrivateKeyFormat::Pkcs1, der)),
        "EC PRIVATE KEY" => Ok((PrivateKeyFormat::Sec1, der)),
        "ENCRYPTED PRIVATE KEY" => {
            let password = password.ok_or(KeyError::PasswordNeeded)?;
            let info = pkcs8::EncryptedPrivateKeyInfo::from_der(der.as_bytes())
                .map_err(|error| KeyError::Malformed { format: "encrypted PKCS#8", reason: error.to_string() })?;
            let plain = info.decrypt(password).map_err(|_| KeyError::WrongPassword)?;
            // A wrong password that happened to unpad yields garbage.
            pkcs8::PrivateKeyInfo::from_der(plain.as_bytes()).map_err(|_| KeyError::WrongPassword)?;
            Ok((PrivateKeyFormat::Pkcs8, plain))
        }
        other => Err(KeyError::WrongPemBlock { label: other.to_owned() }),
    }
}
