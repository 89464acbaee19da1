//! The config file's profiles: each key read and checked, and `authc profiles`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use auth_core::{ClientAuth, SourceConfig};
use serde::Deserialize;

use crate::cli::AuthArgs;
use crate::failure::Failure;
use crate::store::store_choice;

/// One profile of the config file. The schema is documented in
/// `authc --help` (PROFILES) and the README; keep the three in step.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    pub(crate) token_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) authorize_url: Option<String>,
    pub(crate) device_url: Option<String>,
    #[serde(default)]
    pub(crate) sign_in: bool,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret_file: Option<PathBuf>,
    pub(crate) client_secret_env: Option<String>,
    pub(crate) auth_method: Option<String>,
    pub(crate) private_key_file: Option<PathBuf>,
    pub(crate) key_id: Option<String>,
    pub(crate) assertion_audience: Option<String>,
    pub(crate) grant: Option<String>,
    pub(crate) assertion_file: Option<PathBuf>,
    pub(crate) client_assertion_file: Option<PathBuf>,
    pub(crate) subject_token_file: Option<PathBuf>,
    pub(crate) subject_token_type: Option<String>,
    pub(crate) actor_token_file: Option<PathBuf>,
    pub(crate) actor_token_type: Option<String>,
    pub(crate) requested_token_type: Option<String>,
    #[serde(default)]
    pub(crate) dpop: bool,
    pub(crate) dpop_key_file: Option<PathBuf>,
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
    pub(crate) ca_cert: Option<PathBuf>,
    #[serde(default)]
    pub(crate) scope: Words,
    pub(crate) audience: Option<String>,
    #[serde(default)]
    pub(crate) resource: Words,
    #[serde(default)]
    pub(crate) params: BTreeMap<String, String>,
    pub(crate) api_key_header: Option<String>,
    pub(crate) api_key_query: Option<String>,
    pub(crate) api_key_file: Option<PathBuf>,
    pub(crate) api_key_env: Option<String>,
    pub(crate) basic_user: Option<String>,
    pub(crate) basic_password_file: Option<PathBuf>,
    pub(crate) basic_password_env: Option<String>,
    #[serde(default)]
    pub(crate) api_origin: Words,
    pub(crate) revocation_url: Option<String>,
    #[serde(default)]
    pub(crate) allow_insecure_http: bool,
    /// `file`, `file:DIR`, `redis://...` or `none`.
    pub(crate) store: Option<String>,
    pub(crate) max_fetches_per_day: Option<u32>,
}

/// A string of space-separated words, or a list of strings.
#[derive(Debug, Default, Clone)]
pub(crate) struct Words(pub(crate) Vec<String>);

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
    pub(crate) path: PathBuf,
    pub(crate) profiles: BTreeMap<String, toml::Value>,
}

impl ConfigFile {
    /// Reads and parses `path` (TOML syntax only).
    pub(crate) fn read(path: &Path) -> Result<Self, Failure> {
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
    pub(crate) fn profile(&self, name: &str) -> Result<Profile, Failure> {
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
pub(crate) fn auth_methods() -> String {
    ClientAuth::ALL.map(ClientAuth::as_str).join(", ")
}

/// The grants a profile's `grant` names.
pub(crate) const GRANTS: [&str; 3] = ["client-credentials", "jwt-bearer", "token-exchange"];

impl Profile {
    /// Checks each value by the rule the command that uses it applies, so
    /// that `authc profiles` and `authc config check` report a bad value
    /// with its key, not a later command without it. The key and the
    /// problem (which never quotes a secret: a profile holds none).
    pub(crate) fn check_values(&self) -> Result<(), (&'static str, String)> {
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
                return Err(("auth_method", format!("unknown method `{name}`; use {}", auth_methods())));
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

pub(crate) fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("authc").join("config.toml"))
}

/// The config file to use, and whether it was named explicitly.
pub(crate) fn config_path(args: &AuthArgs) -> Option<(PathBuf, bool)> {
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
pub(crate) fn load_profile(args: &AuthArgs) -> Result<(Profile, Option<String>), Failure> {
    let Some(name) = &args.profile else { return Ok((Profile::default(), None)) };
    let file = config_file(args)?.ok_or_else(|| Failure::usage("no config file"))?;
    Ok((file.profile(name)?, Some(name.clone())))
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
