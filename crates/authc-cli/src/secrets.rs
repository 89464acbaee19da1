//! Where a secret comes from (the environment or a file, never the config file), and reading it.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::failure::Failure;

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
pub(crate) struct SecretPlaces<'a> {
    pub(crate) what: &'static str,
    pub(crate) global: &'static str,
    pub(crate) flag: Option<(&'static str, &'a Path)>,
    pub(crate) profile: &'a str,
    pub(crate) env: Option<(&'static str, &'a str)>,
    pub(crate) file: Option<(&'static str, &'a Path)>,
}

impl SecretPlaces<'_> {
    /// The secret and where it came from, if any place holds one; says on
    /// stderr when the global variable overrides what a profile or the
    /// command line names.
    pub(crate) fn read(&self) -> Result<Option<(Zeroizing<String>, SecretSource)>, Failure> {
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

    pub(crate) fn read_file(&self, file: &Path) -> Result<Zeroizing<String>, Failure> {
        let text = Zeroizing::new(
            auth_core::setup::read_file(file)
                .map_err(|e| Failure::usage(format!("cannot read the {} file {}: {e}", self.what, file.display())))?,
        );
        Ok(Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned()))
    }
}

/// A secret read from its place, as its type, and the place.
pub(crate) fn split_secret<S>(
    read: Option<(Zeroizing<String>, SecretSource)>,
    wrap: impl FnOnce(String) -> S,
) -> (Option<S>, Option<SecretSource>) {
    match read {
        Some((value, source)) => (Some(wrap(value.to_string())), Some(source)),
        None => (None, None),
    }
}
