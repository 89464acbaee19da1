//! Settings from flags, the environment and a profile, in that order of
//! precedence; secrets only from the environment or files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use auth_core::secret::{ApiKey, ClientSecret, Password};
use auth_core::{ClientAuth, Credentials, SourceConfig};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::cli::{AuthArgs, AuthMethod};
use crate::failure::Failure;

/// One profile of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    /// Refused with a clear message: secrets do not belong in the config file.
    client_secret: Option<toml::Value>,
    auth_method: Option<String>,
    #[serde(default)]
    scope: Vec<String>,
    audience: Option<String>,
    #[serde(default)]
    resource: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    api_key_header: Option<String>,
    api_key_query: Option<String>,
    api_key_file: Option<PathBuf>,
    basic_user: Option<String>,
    basic_password_file: Option<PathBuf>,
    revocation_url: Option<String>,
    #[serde(default)]
    allow_insecure_http: bool,
    /// `file`, `file:DIR` or `none`.
    store: Option<String>,
    max_fetches_per_day: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// Everything a command needs to authenticate.
#[derive(Debug)]
pub struct Settings {
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<ClientSecret>,
    pub auth_method: ClientAuth,
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

fn load_profile(args: &AuthArgs) -> Result<Profile, Failure> {
    let explicit = args.config.is_some();
    let Some(path) = args.config.clone().or_else(default_config_path) else {
        return match &args.profile {
            Some(name) => Err(Failure::usage(format!(
                "profile `{name}` asked for, but no config directory is known; pass --config FILE"
            ))),
            None => Ok(Profile::default()),
        };
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit && args.profile.is_none() => {
            return Ok(Profile::default())
        }
        Err(e) => return Err(Failure::usage(format!("cannot read the config file {}: {e}", path.display()))),
    };
    let mut file: ConfigFile = toml::from_str(&text)
        .map_err(|e| Failure::usage(format!("the config file {} is not valid: {}", path.display(), e.message())))?;
    let profile = match &args.profile {
        None => Profile::default(),
        Some(name) => file.profiles.remove(name).ok_or_else(|| {
            let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            Failure::usage(format!("no profile `{name}` in {} (profiles: {})", path.display(), known.join(", ")))
        })?,
    };
    if profile.client_secret.is_some() {
        return Err(Failure::usage(format!(
            "profile `{}` holds a client_secret; keep secrets out of {}: use client_secret_file or AUTHC_CLIENT_SECRET",
            args.profile.as_deref().unwrap_or(""),
            path.display()
        )));
    }
    Ok(profile)
}

/// A secret from the environment variable `var`, else from `file`.
fn read_secret(var: &str, file: Option<&Path>, what: &str) -> Result<Option<String>, Failure> {
    if let Ok(value) = std::env::var(var) {
        return Ok(Some(value));
    }
    let Some(file) = file else { return Ok(None) };
    let text = Zeroizing::new(
        std::fs::read_to_string(file)
            .map_err(|e| Failure::usage(format!("cannot read the {what} file {}: {e}", file.display())))?,
    );
    Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()))
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
    }
}

impl Settings {
    /// Merges flags and environment (already merged by clap) over the profile.
    pub fn resolve(args: &AuthArgs, revocation_url: Option<String>) -> Result<Self, Failure> {
        let profile = load_profile(args)?;
        let auth_method = match (args.auth_method, &profile.auth_method) {
            (Some(method), _) => auth_method(method),
            (None, Some(name)) => ClientAuth::parse(name).ok_or_else(|| {
                Failure::usage(format!(
                    "unknown auth_method `{name}` in the profile; use basic, basic-raw, post, json or none"
                ))
            })?,
            (None, None) => ClientAuth::Basic,
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
        let client_secret_file = args.client_secret_file.clone().or(profile.client_secret_file);
        let api_key_file = args.api_key_file.clone().or(profile.api_key_file);
        Ok(Self {
            token_url: args.token_url.clone().or(profile.token_url),
            client_id: args.client_id.clone().or(profile.client_id),
            client_secret: read_secret("AUTHC_CLIENT_SECRET", client_secret_file.as_deref(), "client secret")?
                .map(ClientSecret::new),
            auth_method,
            scopes: if args.scope.is_empty() { profile.scope } else { args.scope.clone() },
            audience: args.audience.clone().or(profile.audience),
            resources: if args.resource.is_empty() { profile.resource } else { args.resource.clone() },
            params,
            api_key_header: args.api_key_header.clone().or(profile.api_key_header),
            api_key_query: args.api_key_query.clone().or(profile.api_key_query),
            api_key: read_secret("AUTHC_API_KEY", api_key_file.as_deref(), "API key")?.map(ApiKey::new),
            basic_user: args.basic_user.clone().or(profile.basic_user),
            basic_password: read_secret(
                "AUTHC_BASIC_PASSWORD",
                profile.basic_password_file.as_deref(),
                "Basic password",
            )?
            .map(Password::new),
            revocation_url: revocation_url.or(profile.revocation_url),
            allow_insecure_http: args.allow_insecure_http || profile.allow_insecure_http,
            store: if args.no_cache {
                None
            } else {
                store_choice(args.store.as_deref().or(profile.store.as_deref()).unwrap_or("file"))?
            },
            max_fetches_per_day: args.max_fetches_per_day.or(profile.max_fetches_per_day),
        })
    }

    /// The token source configuration, when OAuth is configured.
    pub fn source_config(&self) -> Result<Option<SourceConfig>, Failure> {
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
        } else if self.auth_method != ClientAuth::None {
            return Err(Failure::usage(format!(
                "client authentication `{}` needs the client secret: set AUTHC_CLIENT_SECRET or --client-secret-file (or use --auth-method none)",
                self.auth_method
            )));
        }
        for scope in &self.scopes {
            builder = builder.scope(scope);
        }
        if let Some(audience) = &self.audience {
            builder = builder.audience(audience);
        }
        for resource in &self.resources {
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
        Ok(Some(builder.build()?))
    }

    /// The credentials for API calls, limited to `origin`.
    pub fn credentials(&self, with_bearer: bool, origin: &str) -> Result<Credentials, Failure> {
        let mut builder = Credentials::builder().allow_origin(origin);
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
