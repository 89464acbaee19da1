//! Settings from flags, the environment and a profile, in that order of
//! precedence; secrets only from the environment or files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use auth_core::assertion::{AssertionAudience, JwtBearer};
use auth_core::keys::SigningKey;
use auth_core::mtls::ClientCertificate;
use auth_core::secret::{ApiKey, ClientSecret, Password};
use auth_core::{ClientAuth, Credentials, SourceConfig, SourceGrant};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::cli::{AuthArgs, AuthMethod, GrantArg};
use crate::failure::Failure;

/// One profile of the config file. The schema is documented in
/// `authc --help` (PROFILES) and the README; keep the three in step.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    token_url: Option<String>,
    issuer: Option<String>,
    authorize_url: Option<String>,
    device_url: Option<String>,
    #[serde(default)]
    sign_in: bool,
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    client_secret_env: Option<String>,
    auth_method: Option<String>,
    private_key_file: Option<PathBuf>,
    key_id: Option<String>,
    assertion_audience: Option<String>,
    grant: Option<String>,
    assertion_file: Option<PathBuf>,
    #[serde(default)]
    dpop: bool,
    dpop_key_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    ca_cert: Option<PathBuf>,
    #[serde(default)]
    scope: Words,
    audience: Option<String>,
    #[serde(default)]
    resource: Words,
    #[serde(default)]
    params: BTreeMap<String, String>,
    api_key_header: Option<String>,
    api_key_query: Option<String>,
    api_key_file: Option<PathBuf>,
    api_key_env: Option<String>,
    basic_user: Option<String>,
    basic_password_file: Option<PathBuf>,
    basic_password_env: Option<String>,
    #[serde(default)]
    api_origin: Words,
    revocation_url: Option<String>,
    #[serde(default)]
    allow_insecure_http: bool,
    /// `file`, `file:DIR`, `redis://...` or `none`.
    store: Option<String>,
    max_fetches_per_day: Option<u32>,
}

/// A string of space-separated words, or a list of strings.
#[derive(Debug, Default, Clone)]
struct Words(Vec<String>);

impl<'de> Deserialize<'de> for Words {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        match OneOrMany::deserialize(deserializer) {
            Ok(OneOrMany::One(words)) => Ok(Self(words.split_whitespace().map(str::to_owned).collect())),
            Ok(OneOrMany::Many(list)) => Ok(Self(list)),
            Err(_) => Err(serde::de::Error::custom("expected a string or a list of strings")),
        }
    }
}

/// The config file, each profile kept as written until one is used, so
/// that a bad profile does not break the others.
pub struct ConfigFile {
    path: PathBuf,
    profiles: BTreeMap<String, toml::Value>,
}

impl ConfigFile {
    /// Reads and parses `path` (TOML syntax only).
    fn read(path: &Path) -> Result<Self, Failure> {
        let text = auth_core::setup::read_file(path)
            .map_err(|e| Failure::usage(format!("cannot read the config file {}: {e}", path.display())))?;
        let mut table: toml::Table = toml::from_str(&text)
            .map_err(|e| Failure::usage(format!("the config file {} is not valid TOML: {}", path.display(), e)))?;
        if let Some(key) = table.keys().find(|k| *k != "profiles") {
            return Err(Failure::usage(format!(
                "the config file {}: unknown top-level key `{key}`; profiles go in [profiles.NAME] tables",
                path.display()
            )));
        }
        let profiles = match table.remove("profiles") {
            None => BTreeMap::new(),
            Some(toml::Value::Table(profiles)) => profiles.into_iter().collect(),
            Some(_) => {
                return Err(Failure::usage(format!(
                    "the config file {}: `profiles` must be tables ([profiles.NAME])",
                    path.display()
                )))
            }
        };
        Ok(Self { path: path.to_owned(), profiles })
    }

    /// The names of the profiles.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// The profile `name`, checked key by key: an error names the file,
    /// the profile and the key.
    fn profile(&self, name: &str) -> Result<Profile, Failure> {
        let at = |key: &str, problem: String| {
            Failure::usage(format!("{}: profile `{name}`, key `{key}`: {problem}", self.path.display()))
        };
        let Some(value) = self.profiles.get(name) else {
            let known: Vec<&str> = self.names().collect();
            return Err(Failure::usage(format!(
                "no profile `{name}` in {} (profiles: {})",
                self.path.display(),
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        };
        let toml::Value::Table(table) = value else {
            return Err(Failure::usage(format!(
                "{}: profile `{name}` must be a table ([profiles.{name}])",
                self.path.display()
            )));
        };
        if table.contains_key("client_secret") {
            return Err(at(
                "client_secret",
                "secrets do not belong in the config file; use client_secret_file, client_secret_env or AUTHC_CLIENT_SECRET"
                    .to_owned(),
            ));
        }
        // Each key alone first, so that the error names it.
        for (key, value) in table {
            let single: toml::Table = [(key.clone(), value.clone())].into_iter().collect();
            if let Err(e) = Profile::deserialize(toml::Value::Table(single)) {
                let problem = e.message().to_owned();
                let problem = if problem.starts_with("unknown field") {
                    format!(
                        "unknown key; the keys are listed in `authc --help` ({})",
                        problem.split(", expected").next().unwrap_or(&problem)
                    )
                } else {
                    problem
                };
                return Err(at(key, problem));
            }
        }
        let profile = Profile::deserialize(value.clone())
            .map_err(|e| Failure::usage(format!("{}: profile `{name}`: {}", self.path.display(), e.message())))?;
        profile.check_values().map_err(|(key, problem)| at(key, problem))?;
        Ok(profile)
    }
}

/// The client authentication methods a profile's `auth_method` names.
const AUTH_METHODS: &str = "basic, basic-raw, post, json, none, private-key-jwt, client-secret-jwt, tls-client-auth \
                            or self-signed-tls-client-auth";

/// The grants a profile's `grant` names.
const GRANTS: [&str; 2] = ["client-credentials", "jwt-bearer"];

impl Profile {
    /// Checks each value by the rule the command that uses it applies, so
    /// that `authc profiles` and `authc config check` report a bad value
    /// with its key, not a later command without it. The key and the
    /// problem (which never quotes a secret: a profile holds none).
    fn check_values(&self) -> Result<(), (&'static str, String)> {
        let endpoints = [
            ("token_url", &self.token_url),
            ("issuer", &self.issuer),
            ("authorize_url", &self.authorize_url),
            ("device_url", &self.device_url),
            ("revocation_url", &self.revocation_url),
        ];
        for (key, url) in endpoints {
            if let Some(url) = url {
                auth_core::config::validate_endpoint(url, self.allow_insecure_http)
                    .map_err(|e| (key, e.to_string()))?;
            }
        }
        for origin in &self.api_origin.0 {
            auth_core::Origin::parse(origin).map_err(|e| ("api_origin", e.to_string()))?;
        }
        if let Some(name) = &self.auth_method {
            if ClientAuth::parse(name).is_none() {
                return Err(("auth_method", format!("unknown method `{name}`; use {AUTH_METHODS}")));
            }
        }
        if let Some(grant) = self.grant.as_deref().filter(|g| !GRANTS.contains(g)) {
            return Err(("grant", format!("unknown grant `{grant}`; use {}", GRANTS.join(" or "))));
        }
        if let Some(spec) = &self.store {
            store_choice(spec).map_err(|failure| ("store", failure.to_string()))?;
        }
        if let Some(limit) = self.max_fetches_per_day {
            SourceConfig::builder("https://auth.example.invalid/token", "check")
                .client_auth(ClientAuth::None)
                .max_fetches_per_day(limit)
                .build()
                .map_err(|e| ("max_fetches_per_day", e.to_string()))?;
        }
        Ok(())
    }
}

/// What tokens are asked for, beside the client: part of a token's cache
/// key, so a sign-in is stored per scoping.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scoping {
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub resources: Vec<String>,
}

impl std::fmt::Display for Scoping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As the options that give it, for a message that says what to run.
        let mut options = Vec::new();
        if !self.scopes.is_empty() {
            options.push(format!("--scope \"{}\"", self.scopes.join(" ")));
        }
        if let Some(audience) = &self.audience {
            options.push(format!("--audience {audience}"));
        }
        options.extend(self.resources.iter().map(|r| format!("--resource {r}")));
        match options.is_empty() {
            true => f.write_str("no --scope"),
            false => f.write_str(&options.join(" ")),
        }
    }
}

/// Everything a command needs to authenticate.
#[derive(Debug)]
pub struct Settings {
    /// The profile the settings came from, if any.
    pub profile: Option<String>,
    pub token_url: Option<String>,
    /// The issuer whose discovery document fills the endpoints.
    pub issuer: Option<String>,
    pub authorize_url: Option<String>,
    pub device_url: Option<String>,
    /// A user's sign-in: the tokens are the signed-in user's.
    pub sign_in: bool,
    /// The issuer said it always sends `iss` on the callback.
    pub issuer_param_required: bool,
    /// The client authentication method was given (not defaulted).
    pub auth_method_given: bool,
    pub client_id: Option<String>,
    pub client_secret: Option<ClientSecret>,
    pub auth_method: ClientAuth,
    /// The client's private key and the file it came from.
    pub signing_key: Option<(SigningKey, PathBuf)>,
    pub assertion_audience: Option<AssertionAudience>,
    /// The JWT bearer grant's assertion and where it comes from.
    pub jwt_bearer: Option<(JwtBearer, String)>,
    /// The DPoP key and where it comes from.
    pub dpop: Option<(std::sync::Arc<auth_core::dpop::Dpop>, String)>,
    /// The TLS client certificate (mutual TLS) and the file it came from.
    pub client_certificate: Option<(ClientCertificate, PathBuf)>,
    /// The CA certificates (DER) trusted instead of the built-in roots,
    /// and their file.
    pub root_certificates: Option<(Vec<Vec<u8>>, PathBuf)>,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub resources: Vec<String>,
    pub params: Vec<(String, String)>,
    pub api_key_header: Option<String>,
    pub api_key_query: Option<String>,
    pub api_key: Option<ApiKey>,
    pub basic_user: Option<String>,
    pub basic_password: Option<Password>,
    pub revocation_url: Option<String>,
    pub allow_insecure_http: bool,
    /// The token store: `None` for none.
    pub store: Option<StoreChoice>,
    /// The fetch budget per 24 hours.
    pub max_fetches_per_day: Option<u32>,
    /// The origins the credentials may go to (`--api-origin`,
    /// `api_origin`); empty: the origin of the URL requested.
    pub api_origins: Vec<String>,
    /// Where each secret came from (never its value).
    pub client_secret_source: Option<SecretSource>,
    pub api_key_source: Option<SecretSource>,
    pub basic_password_source: Option<SecretSource>,
}

/// Where tokens are shared between runs.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// A directory (the cache directory by default).
    File(PathBuf),
    /// A Redis URL (it may hold a password: never shown).
    Redis(String),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(dir) => f.debug_tuple("File").field(dir).finish(),
            Self::Redis(_) => f.write_str("Redis([redacted])"),
        }
    }
}

fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("authc").join("config.toml"))
}

/// The config file to use, and whether it was named explicitly.
fn config_path(args: &AuthArgs) -> Option<(PathBuf, bool)> {
    match &args.config {
        Some(path) => Some((path.clone(), true)),
        None => default_config_path().map(|path| (path, false)),
    }
}

/// The config file, if there is one to read.
pub fn config_file(args: &AuthArgs) -> Result<Option<ConfigFile>, Failure> {
    let Some((path, explicit)) = config_path(args) else {
        return match &args.profile {
            Some(name) => Err(Failure::usage(format!(
                "profile `{name}` asked for, but no config directory is known; pass --config FILE"
            ))),
            None => Ok(None),
        };
    };
    if !explicit && args.profile.is_none() && !path.exists() {
        return Ok(None);
    }
    ConfigFile::read(&path).map(Some)
}

/// The profile named by `--profile` (an empty one without).
fn load_profile(args: &AuthArgs) -> Result<(Profile, Option<String>), Failure> {
    let Some(name) = &args.profile else { return Ok((Profile::default(), None)) };
    let file = config_file(args)?.ok_or_else(|| Failure::usage("no config file"))?;
    Ok((file.profile(name)?, Some(name.clone())))
}

/// Where a secret came from (never its value), for `authc config check`
/// and for errors that depend on it (`invalid_client`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A global variable (`AUTHC_CLIENT_SECRET`, ...).
    GlobalVariable(&'static str),
    /// A file given on the command line.
    FlagFile(PathBuf),
    /// The variable a profile names (`client_secret_env`).
    ProfileVariable { profile: String, key: &'static str, variable: String },
    /// The file a profile names (`client_secret_file`).
    ProfileFile { profile: String, key: &'static str, path: PathBuf },
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::GlobalVariable(variable) => write!(f, "the environment variable {variable}"),
            Self::FlagFile(path) => write!(f, "the file {} (command line)", path.display()),
            Self::ProfileVariable { profile, key, variable } => {
                write!(f, "the environment variable {variable} ({key} of profile `{profile}`)")
            }
            Self::ProfileFile { profile, key, path } => {
                write!(f, "the file {} ({key} of profile `{profile}`)", path.display())
            }
        }
    }
}

/// Where one kind of secret may come from, in order of precedence: the
/// global variable, a file on the command line, the profile's variable,
/// the profile's file.
struct SecretPlaces<'a> {
    what: &'static str,
    global: &'static str,
    flag: Option<(&'static str, &'a Path)>,
    profile: &'a str,
    env: Option<(&'static str, &'a str)>,
    file: Option<(&'static str, &'a Path)>,
}

impl SecretPlaces<'_> {
    /// The secret and where it came from, if any place holds one; says on
    /// stderr when the global variable overrides what a profile or the
    /// command line names.
    fn read(&self) -> Result<Option<(Zeroizing<String>, SecretSource)>, Failure> {
        let profile = self.profile.to_owned();
        if let Ok(value) = std::env::var(self.global) {
            let overridden = match (self.flag, self.env, self.file) {
                (Some((flag, path)), _, _) => Some(format!("{flag} {}", path.display())),
                (None, Some((key, variable)), _) => Some(format!("{key} = \"{variable}\" of profile `{profile}`")),
                (None, None, Some((key, path))) => {
                    Some(format!("{key} = \"{}\" of profile `{profile}`", path.display()))
                }
                _ => None,
            };
            if let Some(overridden) = overridden {
                crate::failure::notice(&format!(
                    "the {} comes from {}, which overrides {overridden}; unset {} to use that instead",
                    self.what, self.global, self.global
                ));
            }
            return Ok(Some((Zeroizing::new(value), SecretSource::GlobalVariable(self.global))));
        }
        if let Some((_, path)) = self.flag {
            return Ok(Some((self.read_file(path)?, SecretSource::FlagFile(path.to_owned()))));
        }
        if let Some((key, variable)) = self.env {
            let value: String = auth_core::secret::from_env(variable, self.what, std::env::var(variable))
                .map_err(|e| Failure::usage(format!("profile `{profile}`, key `{key}`: {e}")))?;
            let source = SecretSource::ProfileVariable { profile, key, variable: variable.to_owned() };
            return Ok(Some((Zeroizing::new(value), source)));
        }
        if let Some((key, path)) = self.file {
            let source = SecretSource::ProfileFile { profile, key, path: path.to_owned() };
            return Ok(Some((self.read_file(path)?, source)));
        }
        Ok(None)
    }

    fn read_file(&self, file: &Path) -> Result<Zeroizing<String>, Failure> {
        let text = Zeroizing::new(
            auth_core::setup::read_file(file)
                .map_err(|e| Failure::usage(format!("cannot read the {} file {}: {e}", self.what, file.display())))?,
        );
        Ok(Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned()))
    }
}

/// A secret read from its place, as its type, and the place.
fn split_secret<S>(
    read: Option<(Zeroizing<String>, SecretSource)>,
    wrap: impl FnOnce(String) -> S,
) -> (Option<S>, Option<SecretSource>) {
    match read {
        Some((value, source)) => (Some(wrap(value.to_string())), Some(source)),
        None => (None, None),
    }
}

/// Parses `--store`: `file`, `file:DIR`, `redis://...`, `rediss://...` or `none`.
fn store_choice(spec: &str) -> Result<Option<StoreChoice>, Failure> {
    let default_dir = || {
        std::env::var_os("AUTHC_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::cache_dir().map(|d| d.join("authc")))
            .ok_or_else(|| Failure::usage("no cache directory is known: set AUTHC_CACHE_DIR or pass --store file:DIR"))
    };
    match spec {
        "none" => Ok(None),
        "file" => Ok(Some(StoreChoice::File(default_dir()?))),
        redis if redis.starts_with("redis://") || redis.starts_with("rediss://") => {
            Ok(Some(StoreChoice::Redis(redis.to_owned())))
        }
        other => match other.strip_prefix("file:") {
            Some(dir) if !dir.is_empty() => Ok(Some(StoreChoice::File(PathBuf::from(dir)))),
            // Not quoted: a mistyped Redis URL may hold a password.
            _ => Err(Failure::usage("--store is not understood; use file, file:DIR, redis://HOST:PORT/DB or none")),
        },
    }
}

fn auth_method(method: AuthMethod) -> ClientAuth {
    match method {
        AuthMethod::Basic => ClientAuth::Basic,
        AuthMethod::BasicRaw => ClientAuth::BasicRaw,
        AuthMethod::Post => ClientAuth::Post,
        AuthMethod::Json => ClientAuth::Json,
        AuthMethod::None => ClientAuth::None,
        AuthMethod::PrivateKeyJwt => ClientAuth::PrivateKeyJwt,
        AuthMethod::ClientSecretJwt => ClientAuth::ClientSecretJwt,
        AuthMethod::TlsClientAuth => ClientAuth::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth => ClientAuth::SelfSignedTlsClientAuth,
    }
}

/// Reads the private key file, decrypted with AUTHC_PRIVATE_KEY_PASSWORD
/// when it is encrypted, named by `kid` when given.
fn read_signing_key(path: &Path, kid: Option<&str>) -> Result<SigningKey, Failure> {
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
fn read_client_certificate(certificate: &Path, key: &Path) -> Result<ClientCertificate, Failure> {
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
fn read_root_certificates(path: &Path) -> Result<Vec<Vec<u8>>, Failure> {
    let text = auth_core::setup::read_file(path)
        .map_err(|e| Failure::usage(format!("--ca-cert: cannot read `{}`: {e}", path.display())))?;
    auth_core::mtls::certificates_from_pem(&text)
        .map_err(|e| Failure::usage(format!("--ca-cert: the file `{}`: {e}", path.display())))
}

/// The JWT bearer grant's assertion from `path`: read again at every token
/// request, or once from stdin (`-`).
fn assertion_from(path: &Path) -> Result<(JwtBearer, String), Failure> {
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
fn dpop_key(
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
fn jwt_identity(jwt: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(format!("iss={} sub={}", claims.get("iss")?.as_str()?, claims.get("sub")?.as_str()?))
}

impl Settings {
    /// Merges flags and environment (already merged by clap) over the profile.
    pub fn resolve(args: &AuthArgs, revocation_url: Option<String>) -> Result<Self, Failure> {
        Self::resolve_with(args, revocation_url, false)
    }

    /// [`Settings::resolve`] for `authc login` / `logout`: the options
    /// describe a user's sign-in whatever they name.
    pub fn resolve_sign_in(args: &AuthArgs, revocation_url: Option<String>) -> Result<Self, Failure> {
        Self::resolve_with(args, revocation_url, true)
    }

    fn resolve_with(args: &AuthArgs, revocation_url: Option<String>, sign_in: bool) -> Result<Self, Failure> {
        let (profile, profile_name) = load_profile(args)?;
        let given_method = match (args.auth_method, &profile.auth_method) {
            (Some(method), _) => Some(auth_method(method)),
            (None, Some(name)) => Some(ClientAuth::parse(name).ok_or_else(|| {
                Failure::usage(format!("unknown auth_method `{name}` in the profile; use {AUTH_METHODS}"))
            })?),
            (None, None) => None,
        };
        let mut params: Vec<(String, String)> = profile.params.into_iter().collect();
        for param in &args.param {
            let (key, value) = param
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| Failure::usage(format!("--param `{param}` is not KEY=VALUE")))?;
            params.retain(|(k, _)| k != key);
            params.push((key.to_owned(), value.to_owned()));
        }
        let name = profile_name.as_deref().unwrap_or_default();
        let client_secret = SecretPlaces {
            what: "client secret",
            global: "AUTHC_CLIENT_SECRET",
            flag: args.client_secret_file.as_deref().map(|path| ("--client-secret-file", path)),
            profile: name,
            env: profile.client_secret_env.as_deref().map(|v| ("client_secret_env", v)),
            file: profile.client_secret_file.as_deref().map(|path| ("client_secret_file", path)),
        }
        .read()?;
        let api_key = SecretPlaces {
            what: "API key",
            global: "AUTHC_API_KEY",
            flag: args.api_key_file.as_deref().map(|path| ("--api-key-file", path)),
            profile: name,
            env: profile.api_key_env.as_deref().map(|v| ("api_key_env", v)),
            file: profile.api_key_file.as_deref().map(|path| ("api_key_file", path)),
        }
        .read()?;
        let basic_password = SecretPlaces {
            what: "Basic password",
            global: "AUTHC_BASIC_PASSWORD",
            flag: None,
            profile: name,
            env: profile.basic_password_env.as_deref().map(|v| ("basic_password_env", v)),
            file: profile.basic_password_file.as_deref().map(|path| ("basic_password_file", path)),
        }
        .read()?;
        let words = |flags: &[String], profile: Words| {
            if flags.is_empty() {
                profile.0
            } else {
                flags.iter().flat_map(|flag| flag.split_whitespace().map(str::to_owned)).collect()
            }
        };
        let (client_secret, client_secret_source) = split_secret(client_secret, ClientSecret::from);
        let client_certificate =
            match (args.client_cert.clone().or(profile.client_cert), args.client_key.clone().or(profile.client_key)) {
                (Some(certificate), key) => {
                    let key = key.unwrap_or_else(|| certificate.clone());
                    Some((read_client_certificate(&certificate, &key)?, certificate))
                }
                (None, Some(_)) => return Err(Failure::usage("--client-key goes with --client-cert FILE")),
                (None, None) => None,
            };
        let root_certificates = match args.ca_cert.clone().or(profile.ca_cert) {
            Some(path) => Some((read_root_certificates(&path)?, path)),
            None => None,
        };
        let has_key_or_certificate =
            client_certificate.is_some() || args.private_key_file.is_some() || profile.private_key_file.is_some();
        let issuer = args.issuer.clone().or(profile.issuer);
        let authorize_url = args.authorize_url.clone().or(profile.authorize_url);
        // Naming an authorization endpoint (or an issuer, for a client
        // without a secret, key or certificate) describes a user's sign-in.
        let sign_in = sign_in
            || args.sign_in
            || profile.sign_in
            || authorize_url.is_some()
            || (issuer.is_some() && client_secret.is_none() && !has_key_or_certificate);
        let key_id = args.key_id.clone().or(profile.key_id);
        let signing_key = match args.private_key_file.clone().or(profile.private_key_file) {
            Some(path) => Some((read_signing_key(&path, key_id.as_deref())?, path)),
            None => None,
        };
        let grant = match (args.grant, profile.grant.as_deref()) {
            (Some(grant), _) => Some(grant),
            (None, Some("client-credentials")) => Some(GrantArg::ClientCredentials),
            (None, Some("jwt-bearer")) => Some(GrantArg::JwtBearer),
            (None, Some(other)) => {
                return Err(Failure::usage(format!(
                    "unknown grant `{other}` in the profile; use {}",
                    GRANTS.join(" or ")
                )))
            }
            (None, None) => None,
        };
        let assertion_file = args.assertion_file.clone().or(profile.assertion_file);
        let jwt_bearer = match (grant, assertion_file) {
            (Some(GrantArg::JwtBearer), Some(path)) => Some(assertion_from(&path)?),
            (Some(GrantArg::JwtBearer), None) => {
                return Err(Failure::usage("--grant jwt-bearer needs --assertion-file FILE (or `-` for stdin)"))
            }
            (_, Some(_)) => return Err(Failure::usage("--assertion-file goes with --grant jwt-bearer")),
            _ => None,
        };
        let store = if args.no_cache {
            None
        } else {
            store_choice(args.store.as_deref().or(profile.store.as_deref()).unwrap_or("file"))?
        };
        let token_url = args.token_url.clone().or(profile.token_url);
        let client_id = args.client_id.clone().or(profile.client_id);
        let dpop_key_file = args.dpop_key_file.clone().or(profile.dpop_key_file);
        let dpop = if args.dpop || profile.dpop || dpop_key_file.is_some() {
            let dir = match &store {
                Some(StoreChoice::File(dir)) => Some(dir.clone()),
                // Redis holds tokens, not keys: the key stays on this host.
                Some(StoreChoice::Redis(_)) => std::env::var_os("AUTHC_CACHE_DIR")
                    .map(PathBuf::from)
                    .or_else(|| dirs::cache_dir().map(|d| d.join("authc"))),
                None => None,
            };
            let endpoint = token_url.as_deref().or(issuer.as_deref()).unwrap_or_default();
            let identity = format!("{endpoint}\n{}", client_id.as_deref().unwrap_or_default());
            Some(dpop_key(dpop_key_file.as_deref(), dir.as_deref(), &identity)?)
        } else {
            None
        };
        let grant_kind = if sign_in {
            SourceGrant::SignIn
        } else if jwt_bearer.is_some() {
            SourceGrant::JwtBearer
        } else {
            SourceGrant::ClientCredentials
        };
        let auth_method = given_method.unwrap_or(ClientAuth::default_for(
            grant_kind,
            client_secret.is_some(),
            signing_key.is_some(),
            client_certificate.is_some(),
        ));
        let (api_key, api_key_source) = split_secret(api_key, ApiKey::from);
        let (basic_password, basic_password_source) = split_secret(basic_password, Password::from);
        Ok(Self {
            profile: profile_name.clone(),
            token_url,
            issuer,
            authorize_url,
            device_url: profile.device_url,
            sign_in,
            issuer_param_required: false,
            auth_method_given: given_method.is_some(),
            client_id,
            client_secret,
            auth_method,
            signing_key,
            assertion_audience: args
                .assertion_audience
                .clone()
                .or(profile.assertion_audience)
                .map(|aud| AssertionAudience::parse(&aud)),
            jwt_bearer,
            dpop,
            client_certificate,
            root_certificates,
            scopes: words(&args.scope, profile.scope),
            audience: args.audience.clone().or(profile.audience),
            resources: words(&args.resource, profile.resource),
            params,
            api_key_header: args.api_key_header.clone().or(profile.api_key_header),
            api_key_query: args.api_key_query.clone().or(profile.api_key_query),
            api_key,
            basic_user: args.basic_user.clone().or(profile.basic_user),
            basic_password,
            revocation_url: revocation_url.or(profile.revocation_url),
            allow_insecure_http: args.allow_insecure_http || profile.allow_insecure_http,
            store,
            max_fetches_per_day: args.max_fetches_per_day.or(profile.max_fetches_per_day),
            api_origins: words(&args.api_origin, profile.api_origin),
            client_secret_source,
            api_key_source,
            basic_password_source,
        })
    }

    /// Adds where the client secret came from to a refusal that is about
    /// the client's credentials (`invalid_client`).
    pub fn explain(&self, failure: Failure) -> Failure {
        match &self.client_secret_source {
            Some(source) if failure.refused_with == Some(auth_core::ErrorCode::InvalidClient) => {
                Failure { message: format!("{}; the client secret came from {source}", failure.message), ..failure }
            }
            _ => failure,
        }
    }

    /// The token source configuration, when OAuth is configured.
    pub fn source_config(&self) -> Result<Option<SourceConfig>, Failure> {
        self.source_config_scoped(&self.scoping())
    }

    /// What the tokens are asked for: the scopes, the audience and the
    /// resources given.
    pub fn scoping(&self) -> Scoping {
        Scoping { scopes: self.scopes.clone(), audience: self.audience.clone(), resources: self.resources.clone() }
    }

    /// The token source's configuration, with the scopes, audience and
    /// resources of `scoping` instead of the ones given.
    pub fn source_config_scoped(&self, scoping: &Scoping) -> Result<Option<SourceConfig>, Failure> {
        let Some(token_url) = &self.token_url else {
            return Ok(None);
        };
        let client_id = self
            .client_id
            .clone()
            .ok_or_else(|| Failure::usage("--token-url needs --client-id (or AUTHC_CLIENT_ID)"))?;
        let mut builder = SourceConfig::builder(token_url, client_id)
            .client_auth(self.auth_method)
            .allow_insecure_http(self.allow_insecure_http);
        if let Some(secret) = &self.client_secret {
            builder = builder.client_secret(secret.clone());
        } else if self.auth_method.needs_secret() {
            return Err(Failure::usage(format!(
                "client authentication `{}` needs the client secret: set AUTHC_CLIENT_SECRET or --client-secret-file \
                 (or use --private-key-file, or --auth-method none)",
                self.auth_method
            )));
        }
        match &self.signing_key {
            Some((key, _)) => builder = builder.signing_key(key.clone()),
            None if self.auth_method == ClientAuth::PrivateKeyJwt => {
                return Err(Failure::usage("client authentication `private-key-jwt` needs --private-key-file FILE"))
            }
            None => {}
        }
        if let Some(issuer) = &self.issuer {
            builder = builder.issuer(issuer);
        }
        if let Some(audience) = &self.assertion_audience {
            builder = builder.assertion_audience(audience.clone());
        }
        if let Some((bearer, _)) = &self.jwt_bearer {
            builder = builder.jwt_bearer(bearer.clone());
        }
        if let Some((dpop, _)) = &self.dpop {
            builder = builder.dpop(dpop.clone());
        }
        match &self.client_certificate {
            Some((certificate, _)) => builder = builder.client_certificate(certificate.clone()),
            None if self.auth_method.uses_tls_certificate() => {
                return Err(Failure::usage(format!(
                    "client authentication `{}` needs --client-cert FILE (and --client-key FILE)",
                    self.auth_method
                )))
            }
            None => {}
        }
        for scope in &scoping.scopes {
            builder = builder.scope(scope);
        }
        if let Some(audience) = &scoping.audience {
            builder = builder.audience(audience);
        }
        for resource in &scoping.resources {
            builder = builder.resource(resource);
        }
        for (key, value) in &self.params {
            builder = builder.param(key, value);
        }
        if let Some(url) = &self.revocation_url {
            builder = builder.revocation_url(url);
        }
        if let Some(limit) = self.max_fetches_per_day {
            builder = builder.max_fetches_per_day(limit);
        }
        if self.sign_in {
            builder = builder.grant(SourceGrant::SignIn).sign_in_hint(self.login_hint());
        }
        Ok(Some(builder.build()?))
    }

    /// What a user who must sign in again is told to run.
    pub fn login_hint(&self) -> String {
        match &self.profile {
            Some(profile) => format!("run `authc login --profile {profile}`"),
            None => "run `authc login` with the same options".to_owned(),
        }
    }

    /// Fills the endpoints from the issuer's discovery document (RFC 8414,
    /// then OpenID Connect Discovery): the token, authorization, device and
    /// revocation endpoints that were not given, and the client
    /// authentication method when none was. The document's issuer must
    /// equal the configured one.
    pub async fn discover(&mut self) -> Result<(), Failure> {
        let Some(issuer) = self.issuer.clone() else { return Ok(()) };
        let urls =
            auth_core::discovery::discovery_urls(&issuer).map_err(|e| Failure::usage(format!("--issuer: {e}")))?;
        let client = self.http_client(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30)),
        )?;
        let mut last = None;
        for url in &urls {
            let answer = match client.get(url).header("accept", "application/json").send().await {
                Ok(answer) if answer.status().is_success() => answer,
                Ok(answer) => {
                    last = Some(Failure::network(format!("discovery at {url} answered {}", answer.status())));
                    continue;
                }
                Err(e) => {
                    last = Some(Failure::network(format!("discovery at {url} failed: {}", e.without_url())));
                    continue;
                }
            };
            let body = crate::capped::body(answer, "the discovery document").await?;
            let metadata = auth_core::discovery::parse_metadata(&issuer, &body, self.allow_insecure_http)
                .map_err(|e| Failure::usage(format!("{e} ({url})")))?;
            if !self.auth_method_given {
                self.auth_method = metadata.client_auth_for(
                    self.client_secret.is_some(),
                    self.signing_key.is_some(),
                    self.client_certificate.is_some(),
                );
            }
            // With a TLS client certificate, the RFC 8705 aliases when named.
            let text = |uri: &http::Uri| uri.to_string();
            let mutual_tls = self.client_certificate.is_some();
            self.token_url.get_or_insert_with(|| text(metadata.token_endpoint_for(mutual_tls)));
            if self.authorize_url.is_none() {
                self.authorize_url = metadata.authorization_endpoint().map(text);
            }
            if self.device_url.is_none() {
                self.device_url = metadata.device_authorization_endpoint_for(mutual_tls).map(text);
            }
            if self.revocation_url.is_none() {
                self.revocation_url = metadata.revocation_endpoint_for(mutual_tls).map(text);
            }
            self.issuer_param_required = metadata.iss_parameter_supported();
            return Ok(());
        }
        Err(last.unwrap_or_else(|| Failure::network("no discovery document was found")))
    }

    /// An HTTP client from `builder` with the TLS settings: the client
    /// certificate (presented to servers that ask for one) and the roots.
    pub fn http_client(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::Client, Failure> {
        let certificate = self.client_certificate.as_ref().map(|(certificate, _)| certificate);
        let roots = self.root_certificates.as_ref().map(|(roots, _)| roots.as_slice());
        let tls = |error: auth_core::ConfigError| Failure::usage(format!("--client-cert / --ca-cert: {error}"));
        auth_reqwest::with_tls(builder, certificate, roots)
            .map_err(tls)?
            .build()
            .map_err(|error| tls(auth_core::ConfigError::tls(&error)))
    }

    /// The credentials for API calls, limited to `origins`.
    pub fn credentials(&self, with_bearer: bool, origins: &[String]) -> Result<Credentials, Failure> {
        let mut builder = Credentials::builder();
        for origin in origins {
            builder = builder.api_origin(origin);
        }
        if with_bearer {
            builder = builder.bearer_from_source();
        }
        if self.api_key_header.is_some() || self.api_key_query.is_some() {
            let key = self.api_key.clone().ok_or_else(|| {
                Failure::usage(
                    "an API key header or query parameter is set, but no key: set AUTHC_API_KEY or --api-key-file",
                )
            })?;
            if let Some(header) = &self.api_key_header {
                builder = builder.api_key_header(header, key.clone());
            }
            if let Some(name) = &self.api_key_query {
                builder = builder.api_key_query(name, key);
            }
        }
        if let Some(user) = &self.basic_user {
            let password =
                self.basic_password.clone().ok_or_else(|| Failure::usage("--basic-user needs AUTHC_BASIC_PASSWORD"))?;
            builder = builder.basic(user, password);
        }
        Ok(builder.build()?)
    }
}

/// `authc profiles`: every profile of the config file, one per line, with
/// its token URL (or API origins); an invalid one says why.
pub fn list_profiles(config: Option<PathBuf>) -> Result<(), Failure> {
    let Some(path) = config.or_else(default_config_path) else {
        return Err(Failure::usage("no config directory is known; pass --config FILE"));
    };
    if !path.exists() {
        println!("no config file at {} (profiles go in [profiles.NAME] tables there)", path.display());
        return Ok(());
    }
    let file = ConfigFile::read(&path)?;
    println!("profiles in {}:", path.display());
    for name in file.names() {
        match file.profile(name) {
            Ok(profile) => {
                let target = profile
                    .token_url
                    .or_else(|| (!profile.api_origin.0.is_empty()).then(|| profile.api_origin.0.join(" ")))
                    .unwrap_or_else(|| "(no token_url)".to_owned());
                println!("  {name}\t{target}");
            }
            Err(failure) => println!("  {name}\tinvalid: {failure}"),
        }
    }
    Ok(())
}

/// `authc config check`: resolves the settings as a command would, builds
/// the configuration, and prints what it found; secrets by their source.
pub fn check(args: &AuthArgs) -> Result<(), Failure> {
    let settings = Settings::resolve(args, None)?;
    let config = settings.source_config()?;
    // The credentials are checked against the API origins, or a stand-in
    // when the origin comes from each request's URL.
    let origins = if settings.api_origins.is_empty() {
        vec!["https://api.example.invalid".to_owned()]
    } else {
        settings.api_origins.clone()
    };
    settings.credentials(config.is_some(), &origins)?;
    let from = |source: &Option<SecretSource>| match source {
        Some(source) => format!("from {source}"),
        None => "none".to_owned(),
    };
    let mut lines = Vec::new();
    match (&args.profile, config_path(args)) {
        (Some(name), Some((path, _))) => lines.push(("profile", format!("{name} ({})", path.display()))),
        _ => lines.push(("profile", "none (flags and environment only)".to_owned())),
    }
    if let Some(config) = &config {
        lines.push(("token URL", config.token_url().to_string()));
        lines.push(("client id", config.client_id().to_owned()));
        lines.push(("client auth", settings.auth_method.to_string()));
        lines.push(("client secret", from(&settings.client_secret_source)));
        if let Some((key, path)) = &settings.signing_key {
            let kid = key.key_id().map(|kid| format!(", kid {kid}")).unwrap_or_default();
            lines.push((
                "private key",
                format!("{} ({}{kid}), aud {}", path.display(), key.algorithm(), config.assertion_aud()),
            ));
        }
        if let Some((dpop, source)) = &settings.dpop {
            lines.push(("DPoP", format!("key {} from {source}", dpop.thumbprint())));
        }
        if let Some((certificate, path)) = &settings.client_certificate {
            lines.push(("client cert", format!("{} (x5t#S256 {})", path.display(), certificate.thumbprint())));
        }
        if let Some((_, source)) = &settings.jwt_bearer {
            lines.push(("grant", format!("jwt-bearer, the assertion from {source}")));
        }
        if !settings.scopes.is_empty() {
            lines.push(("scope", settings.scopes.join(" ")));
        }
        if let Some(audience) = &settings.audience {
            lines.push(("audience", audience.clone()));
        }
        if !settings.resources.is_empty() {
            lines.push(("resource", settings.resources.join(" ")));
        }
        if let Some(limit) = settings.max_fetches_per_day {
            lines.push(("fetch budget", format!("{limit} token requests per 24 hours")));
        }
    } else {
        lines.push(("OAuth", "none (no token_url)".to_owned()));
    }
    if let Some(header) = &settings.api_key_header {
        lines.push(("API key", format!("header {header}, {}", from(&settings.api_key_source))));
    }
    if let Some(query) = &settings.api_key_query {
        lines.push(("API key", format!("query parameter {query}, {}", from(&settings.api_key_source))));
    }
    if let Some(user) = &settings.basic_user {
        lines.push(("Basic", format!("user {user}, password {}", from(&settings.basic_password_source))));
    }
    lines.push((
        "API origins",
        if settings.api_origins.is_empty() {
            "the origin of each URL requested".to_owned()
        } else {
            settings.api_origins.join(" ")
        },
    ));
    lines.push((
        "token store",
        match &settings.store {
            None => "none".to_owned(),
            Some(StoreChoice::File(dir)) => format!("files in {}", dir.display()),
            Some(StoreChoice::Redis(_)) => "Redis (the URL is not shown: it may hold a password)".to_owned(),
        },
    ));
    for (what, value) in lines {
        println!("{:<14} {value}", format!("{what}:"));
    }
    println!("the configuration is usable");
    Ok(())
}
