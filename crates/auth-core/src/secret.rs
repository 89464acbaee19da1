//! Secret values: client secrets, API keys, passwords, access and refresh tokens.
//!
//! Every secret is a distinct newtype over [`secrecy::SecretString`], so the
//! compiler keeps an API key from being passed where a client secret is
//! expected. All of them:
//!
//! - print as `[redacted]` in `Debug` and `Display` (a `{:?}` of a whole
//!   configuration is safe to log);
//! - are zeroized when dropped (the memory is overwritten, by `secrecy`);
//! - give up their value only through [`ExposeSecret::expose_secret`], which
//!   this crate calls only where a request or header is built.
//!
//! ```
//! use auth_core::secret::{ClientSecret, ExposeSecret};
//!
//! let secret = ClientSecret::new("s3cr3t+/=");
//! assert_eq!(format!("{secret:?}"), "ClientSecret([redacted])");
//! assert_eq!(secret.to_string(), "[redacted]");
//! assert_eq!(secret.expose_secret(), "s3cr3t+/=");
//! ```

use std::fmt;

use crate::error::ConfigError;

pub use secrecy::ExposeSecret;
use secrecy::SecretString;

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a value. The original `String` is moved, not copied,
            /// so no unzeroized copy is left behind by this call.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// Whether the secret is the empty string.
            pub fn is_empty(&self) -> bool {
                self.0.expose_secret().is_empty()
            }
        }

        impl ExposeSecret<str> for $name {
            fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }
    };
}

secret_type!(
    /// An OAuth 2.0 client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// An API key sent in a header or query parameter on every API call.
    ApiKey
);
secret_type!(
    /// The password of static HTTP Basic credentials.
    Password
);
secret_type!(
    /// The value of an access token, as issued by the token endpoint or given
    /// by the user (a JWT they already hold).
    AccessTokenValue
);
secret_type!(
    /// A refresh token (RFC 6749 §1.5), used to renew an access token without
    /// sending the client credentials grant again.
    RefreshToken
);
secret_type!(
    /// An authorization code (RFC 6749 §4.1.2), exchanged once for tokens.
    AuthorizationCode
);
secret_type!(
    /// A PKCE code verifier (RFC 7636 §4.1): proves the code exchange comes
    /// from whoever started the sign-in.
    CodeVerifier
);
secret_type!(
    /// A device code (RFC 8628 §3.2), polled with until the user approves.
    DeviceCode
);
secret_type!(
    /// A registration access token (RFC 7592 §3): reads, updates or
    /// deletes a dynamically registered client's registration. Guarded
    /// like a refresh token.
    RegistrationAccessToken
);

/// A secret from the value of the environment variable `variable`, as
/// `std::env::var(variable)` returned it: an unset, empty or non-UTF-8
/// variable is a [`ConfigError::SecretFromEnv`] that names the variable
/// (never the value). The adapters' `client_secret_from_env("NAME")`
/// helpers read the variable and leave the rule to this function; the
/// core itself reads no environment.
///
/// ```
/// use auth_core::secret::{from_env, ClientSecret, ExposeSecret};
///
/// let secret: ClientSecret = from_env("FLUTE_SECRET", "client secret", Ok("s3cr3t".to_owned())).unwrap();
/// assert_eq!(secret.expose_secret(), "s3cr3t");
/// let unset = from_env::<ClientSecret>("FLUTE_SECRET", "client secret", Err(std::env::VarError::NotPresent));
/// assert!(unset.unwrap_err().to_string().contains("`FLUTE_SECRET`"));
/// ```
pub fn from_env<S: From<String>>(
    variable: &str,
    what: &'static str,
    value: Result<String, std::env::VarError>,
) -> Result<S, ConfigError> {
    let problem = match value {
        Ok(value) if !value.is_empty() => return Ok(S::from(value)),
        Ok(_) => "is empty",
        Err(std::env::VarError::NotPresent) => "is not set",
        Err(std::env::VarError::NotUnicode(_)) => "is not valid UTF-8",
    };
    Err(ConfigError::SecretFromEnv { variable: variable.to_owned(), what, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_from_the_environment_names_the_variable_and_never_the_value() {
        let cases = [
            (Err(std::env::VarError::NotPresent), "is not set"),
            (Ok(String::new()), "is empty"),
            (Err(std::env::VarError::NotUnicode("s3cr\u{fffd}t".into())), "is not valid UTF-8"),
        ];
        for (value, problem) in cases {
            let error = from_env::<ApiKey>("PARTNER_API_KEY", "API key", value).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("`PARTNER_API_KEY`") && message.contains(problem), "{message}");
            assert!(message.contains("API key") && !message.contains("s3cr"), "{message}");
        }
        let key: ApiKey = from_env("PARTNER_API_KEY", "API key", Ok("k3y".to_owned())).unwrap();
        assert_eq!(key.expose_secret(), "k3y");
    }

    #[test]
    fn every_secret_type_is_redacted_in_debug_and_display() {
        let value = "hunter2-very-secret";
        let shown = [
            (format!("{:?}", ClientSecret::new(value)), ClientSecret::new(value).to_string()),
            (format!("{:?}", ApiKey::new(value)), ApiKey::new(value).to_string()),
            (format!("{:?}", Password::new(value)), Password::new(value).to_string()),
            (format!("{:?}", AccessTokenValue::new(value)), AccessTokenValue::new(value).to_string()),
            (format!("{:?}", RefreshToken::new(value)), RefreshToken::new(value).to_string()),
        ];
        for (debug, display) in shown {
            assert!(!debug.contains(value), "{debug}");
            assert!(debug.ends_with("([redacted])"), "{debug}");
            assert_eq!(display, "[redacted]");
        }
    }

    #[test]
    fn exposes_the_exact_value() {
        let key = ApiKey::from("k e+y/ü");
        assert_eq!(key.expose_secret(), "k e+y/ü");
        assert!(!key.is_empty());
        assert!(ApiKey::new("").is_empty());
    }
}
