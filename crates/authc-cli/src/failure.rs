//! One clear line per failure, and the exit code that goes with it.

use std::fmt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use auth_core::TokenError;
use auth_tower::AuthError;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 2: usage or configuration error.
    Usage = 2,
    /// 3: the provider refused (an RFC 6749 error), or the fetch budget is
    /// spent.
    Refused = 3,
    /// 4: network or protocol failure.
    Network = 4,
    /// 5: the API answered an error status.
    Api = 5,
}

/// A failure: what went wrong and what to check, in one line, never with a
/// secret in it.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// The RFC 6749 error code, when an endpoint refused.
    pub refused_with: Option<auth_core::ErrorCode>,
}

impl Failure {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), refused_with: None }
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Code::Usage, message)
    }
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(Code::Network, message)
    }
    pub fn api(message: impl Into<String>) -> Self {
        Self::new(Code::Api, message)
    }
    /// Exit 3: refused, or a user must sign in (again).
    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(Code::Refused, message)
    }
    /// The same failure, its message preceded by `prefix`.
    pub fn with_prefix(self, prefix: &str) -> Self {
        Self { message: format!("{prefix}: {}", self.message), ..self }
    }
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code as u8)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line: provider text was sanitised by the library, but be sure.
        let line: String = self.message.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        f.write_str(&line)
    }
}

impl From<AuthError> for Failure {
    fn from(error: AuthError) -> Self {
        let code = match &error {
            AuthError::Token(
                TokenError::Provider(_) | TokenError::BudgetSpent { .. } | TokenError::SignInRequired { .. },
            )
            | AuthError::Revocation(TokenError::Provider(_)) => Code::Refused,
            // A token file or variable the user named is unusable (expired, not a JWT).
            AuthError::Token(TokenError::Supplied { .. }) => Code::Usage,
            AuthError::Token(_)
            | AuthError::Revocation(_)
            | AuthError::Stopped
            | AuthError::Driver(auth_tower::TowerFailure::NotDriven { .. }) => Code::Network,
            _ => Code::Usage,
        };
        // One run, no retry: a one-shot command does not promise one.
        let message = match &error {
            AuthError::Token(e) => format!("could not obtain an access token: {e}"),
            other => other.to_string(),
        };
        let refused_with = match &error {
            AuthError::Token(e) | AuthError::Revocation(e) => e.code().cloned(),
            _ => None,
        };
        Self { code, message, refused_with }
    }
}

impl From<auth_tower::sign_in::SignInError> for Failure {
    fn from(error: auth_tower::sign_in::SignInError) -> Self {
        use auth_tower::sign_in::SignInError;
        match error {
            SignInError::Token(error) => error.into(),
            SignInError::Device(auth_core::sign_in::device::DeviceError::Failed(error)) => {
                AuthError::Token(error).into()
            }
            SignInError::Config(error) => error.into(),
            SignInError::Bind { .. } => Self::usage(error.to_string()),
            SignInError::Timeout { .. } => Self::network(error.to_string()),
            // The user declined, the codes expired, or the callback was refused.
            other => Self::new(Code::Refused, other.to_string()),
        }
    }
}

impl From<auth_core::ConfigError> for Failure {
    fn from(error: auth_core::ConfigError) -> Self {
        Self::usage(format!("invalid configuration: {error}"))
    }
}

impl From<reqwest_middleware::Error> for Failure {
    fn from(error: reqwest_middleware::Error) -> Self {
        match error {
            reqwest_middleware::Error::Middleware(inner) => match inner.downcast::<AuthError>() {
                Ok(auth) => auth.into(),
                Err(other) => Self::network(format!("the request failed: {other}")),
            },
            reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => Self::network(format!(
                "the API request timed out: {}; the API did not answer in time, try again or check the network path",
                e.without_url()
            )),
            reqwest_middleware::Error::Reqwest(e) => Self::network(format!(
                "the API request failed: {}; check the URL and the network path",
                e.without_url()
            )),
        }
    }
}

/// Set by `-s`: notices are not said (failures still are).
static SILENT: AtomicBool = AtomicBool::new(false);

/// Silences [`notice`] for the rest of the run.
pub fn silence_notices() {
    SILENT.store(true, Ordering::Relaxed);
}

/// Says something worth knowing that is not a failure, on stderr, unless
/// `-s` was given.
pub fn notice(message: &str) {
    if !SILENT.load(Ordering::Relaxed) {
        eprintln!("authc: {message}");
    }
}
