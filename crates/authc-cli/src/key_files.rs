//! Keys, certificates and assertions read from files: the private key, the client certificate, the CA roots, the JWT bearer assertion, the DPoP key.

use std::path::Path;

use auth_core::assertion::JwtBearer;
use auth_core::keys::SigningKey;
use auth_core::mtls::ClientCertificate;
use zeroize::Zeroizing;

use crate::failure::Failure;

/// Reads the private key file, decrypted with AUTHC_PRIVATE_KEY_PASSWORD
/// when it is encrypted, named by `kid` when given.
pub(crate) fn read_signing_key(path: &Path, kid: Option<&str>) -> Result<SigningKey, Failure> {
    let password = std::env::var("AUTHC_PRIVATE_KEY_PASSWORD").ok().map(Zeroizing::new);
    let contents = auth_core::setup::read_file(path);
    let key = SigningKey::read_file(&path.display().to_string(), contents, password.as_ref().map(|p| p.as_bytes()))
        .map_err(|error| {
            let hint = match &error {
                auth_core::ConfigError::Key { error: auth_core::keys::KeyError::PasswordNeeded, .. } => {
                    "; set AUTHC_PRIVATE_KEY_PASSWORD"
                }
                _ => "",
            };
            Failure::usage(format!("--private-key-file: {error}{hint}"))
        })?;
    match kid {
        Some(kid) => key.try_with_key_id(kid).map_err(|e| Failure::usage(format!("--key-id: {e}"))),
        None => Ok(key),
    }
}

/// The TLS client certificate from `certificate` and its key from `key`
/// (which may be the same file), the key decrypted with
/// AUTHC_CLIENT_KEY_PASSWORD when it is encrypted.
pub(crate) fn read_client_certificate(certificate: &Path, key: &Path) -> Result<ClientCertificate, Failure> {
    let password = std::env::var("AUTHC_CLIENT_KEY_PASSWORD").ok().map(Zeroizing::new);
    ClientCertificate::read_files(
        &certificate.display().to_string(),
        auth_core::setup::read_file(certificate),
        &key.display().to_string(),
        auth_core::setup::read_file(key),
        password.as_ref().map(|p| p.as_bytes()),
    )
    .map_err(|error| {
        let hint = match &error {
            auth_core::ConfigError::Key { error: auth_core::keys::KeyError::PasswordNeeded, .. } => {
                "; set AUTHC_CLIENT_KEY_PASSWORD"
            }
            auth_core::ConfigError::Key {
                error: auth_core::keys::KeyError::NotAKey | auth_core::keys::KeyError::WrongPemBlock { .. },
                ..
            } => "; give the certificate's private key with --client-key FILE",
            _ => "",
        };
        Failure::usage(format!("--client-cert: {error}{hint}"))
    })
}

/// The CA certificates of the PEM file `path`.
pub(crate) fn read_root_certificates(path: &Path) -> Result<Vec<Vec<u8>>, Failure> {
    let text = auth_core::setup::read_file(path)
        .map_err(|e| Failure::usage(format!("--ca-cert: cannot read `{}`: {e}", path.display())))?;
    auth_core::mtls::certificates_from_pem(&text)
        .map_err(|e| Failure::usage(format!("--ca-cert: the file `{}`: {e}", path.display())))
}

/// The JWT bearer grant's assertion from `path`: read again at every token
/// request, or once from stdin (`-`).
pub(crate) fn assertion_from(path: &Path) -> Result<(JwtBearer, String), Failure> {
    if path == Path::new("-") {
        let mut text = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| Failure::usage(format!("cannot read the assertion from stdin: {e}")))?;
        let text = Zeroizing::new(text.trim().to_owned());
        // Tokens for two identities must not share a cache record.
        let identity = jwt_identity(&text).unwrap_or_else(|| auth_core::store::fingerprint(&text));
        let bearer = JwtBearer::from_fn(format!("stdin {identity}"), move |_| Ok(text.to_string()));
        return Ok((bearer, "stdin".to_owned()));
    }
    let shown = path.display().to_string();
    let file = path.to_owned();
    let bearer = JwtBearer::from_fn(shown.clone(), move |_| {
        auth_core::setup::read_file(&file)
            .map_err(|e| format!("cannot read the assertion file {}: {e}", file.display()))
    });
    Ok((bearer, format!("the file {shown}, read at every token request")))
}

/// The DPoP key: from `key_file`, or the one kept in `dir` for this
/// client (made on first use, mode 0600), or a new one for this run only.
pub(crate) fn dpop_key(
    key_file: Option<&Path>,
    dir: Option<&Path>,
    identity: &str,
) -> Result<(std::sync::Arc<auth_core::dpop::Dpop>, String), Failure> {
    let dpop = |key: SigningKey, what: &str| {
        auth_core::dpop::Dpop::new(key)
            .map_err(|e| Failure::usage(format!("{what}: {e}; a DPoP key signs ES256, RS256, PS256 or EdDSA")))
    };
    if let Some(path) = key_file {
        let key = read_signing_key(path, None)
            .map_err(|f| Failure::usage(f.message.replace("--private-key-file", "--dpop-key-file")))?;
        return Ok((dpop(key, "--dpop-key-file")?, format!("the file {}", path.display())));
    }
    let Some(dir) = dir else {
        let key = SigningKey::generate_es256().map_err(|e| Failure::usage(format!("cannot make a DPoP key: {e}")))?;
        return Ok((dpop(key, "DPoP")?, "a new key for this run (no cache to keep it in)".to_owned()));
    };
    auth_store::file::private_dir(dir).map_err(|why| Failure::usage(format!("the DPoP key cannot be kept: {why}")))?;
    let name = auth_core::store::fingerprint(&format!("authc dpop key v1\n{identity}"));
    let path = dir.join(format!("dpop-{name}.pem"));
    let shown = format!("{} (kept for this client)", path.display());
    let read = |path: &Path| -> Result<Option<SigningKey>, Failure> {
        let text = auth_store::file::read_regular(path)
            .map_err(|e| Failure::usage(format!("cannot read the DPoP key {}: {e}", path.display())))?;
        text.map(|text| {
            SigningKey::from_pem(&text).map_err(|e| {
                Failure::usage(format!(
                    "the DPoP key {} is unusable ({e}); remove it to make a new one",
                    path.display()
                ))
            })
        })
        .transpose()
    };
    if let Some(key) = read(&path)? {
        return Ok((dpop(key, "the kept DPoP key")?, shown));
    }
    let key = SigningKey::generate_es256().map_err(|e| Failure::usage(format!("cannot make a DPoP key: {e}")))?;
    let pem = key.to_pkcs8_pem().map_err(|e| Failure::usage(format!("cannot encode the DPoP key: {e}")))?;
    let cannot = |e: std::io::Error| Failure::usage(format!("cannot keep the DPoP key in {}: {e}", dir.display()));
    // A temporary file is 0600; it becomes the key only if none appeared meanwhile.
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(cannot)?;
    std::io::Write::write_all(&mut file, pem.as_bytes()).map_err(cannot)?;
    match file.persist_noclobber(&path) {
        Ok(_) => Ok((dpop(key, "DPoP")?, shown)),
        // Another run made it first: use that one.
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => match read(&path)? {
            Some(key) => Ok((dpop(key, "the kept DPoP key")?, shown)),
            None => Err(cannot(e.error)),
        },
        Err(e) => Err(cannot(e.error)),
    }
}

/// `iss` and `sub` of an unverified JWT, to tell identities apart.
pub(crate) fn jwt_identity(jwt: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(format!("iss={} sub={}", claims.get("iss")?.as_str()?, claims.get("sub")?.as_str()?))
}
