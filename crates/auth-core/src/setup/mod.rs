//! A whole client configuration in one builder: the token source's (when
//! an OAuth token is used) and the credentials'. The adapters' ready-made
//! clients (`auth_reqwest::AuthClient::builder()`,
//! `auth_blocking::AuthorizedClient::builder()`) are this builder plus
//! their transport options, so both take the same calls and make the same
//! decisions.
//!
//! ```
//! use auth_core::setup::ClientSetup;
//!
//! let parts = ClientSetup::default()
//!     .client_credentials("https://login.example.com/oauth2/token", "client-id")
//!     .client_secret("client-secret")
//!     .scope("orders:read")
//!     .api_key_header("cdpapi-Subscription-Key", "subscription-key")
//!     .api_origin("https://api.example.com")
//!     .build()?;
//! assert!(parts.source.is_some() && parts.credentials.needs_token());
//!
//! // A mistake is reported by build(), with what to do.
//! let error = ClientSetup::default().scope("orders:read").api_origin("https://api.example.com").build();
//! assert!(error.unwrap_err().to_string().contains("needs client_credentials"));
//! # Ok::<(), auth_core::ConfigError>(())
//! ```

use crate::config::{ClientAuth, SourceConfig, SourceConfigBuilder};
use crate::credentials::{Credentials, CredentialsBuilder};
use crate::error::ConfigError;

mod methods;

/// Builder of a client's token source configuration and credentials.
/// Nothing is validated until [`build`](Self::build); the first mistake is
/// the error it returns.
#[derive(Default)]
#[must_use = "call build() to get the configuration"]
pub struct ClientSetup {
    oauth: Option<SourceConfigBuilder>,
    credentials: CredentialsBuilder,
    roots: Option<Vec<Vec<u8>>>,
    replay_copies: crate::publish::replay::ReplayCopies,
    misuse: Option<ConfigError>,
}

/// What [`ClientSetup::build`] gives: the token source's configuration
/// (when OAuth is used) and the credentials for API calls.
#[derive(Debug)]
#[non_exhaustive]
pub struct ClientParts {
    /// The token source's configuration, when an OAuth token is used.
    pub source: Option<SourceConfig>,
    /// The credentials every API call carries.
    pub credentials: Credentials,
    /// The CA certificates (DER) to trust instead of the built-in roots,
    /// when [`ClientSetup::root_certificates`] was called.
    pub root_certificates: Option<Vec<Vec<u8>>>,
    /// Which requests keep a copy for a 401 replay.
    pub replay_copies: crate::publish::replay::ReplayCopies,
}

impl ClientSetup {
    /// Uses an OAuth 2.0 access token from the client credentials grant at
    /// `token_url`, sent as `Authorization: Bearer`.
    pub fn client_credentials(mut self, token_url: impl Into<String>, client_id: impl Into<String>) -> Self {
        self.oauth = Some(SourceConfig::builder(token_url, client_id));
        self.credentials = self.credentials.bearer_from_source();
        self
    }

    /// Uses the access token of a user who signs in (the authorization
    /// code flow with PKCE, or the device flow), sent as `Authorization:
    /// Bearer` and renewed with the user's refresh token. The client has
    /// no token until a sign-in is installed in its token source
    /// (`exchange_code` of the async adapters), restored, or adopted from a
    /// shared store; until then, and when the refresh token is dead, a
    /// request fails with `SignInRequired`.
    pub fn user_sign_in(self, token_url: impl Into<String>, client_id: impl Into<String>) -> Self {
        let mut setup = self.client_credentials(token_url, client_id);
        setup.oauth = setup.oauth.map(|builder| builder.grant(crate::config::SourceGrant::SignIn));
        setup
    }

    /// Changes the token configuration, or records that `setting` was
    /// called before [`client_credentials`](Self::client_credentials) or
    /// [`user_sign_in`](Self::user_sign_in).
    fn oauth(mut self, setting: &'static str, change: impl FnOnce(SourceConfigBuilder) -> SourceConfigBuilder) -> Self {
        match self.oauth.take() {
            Some(builder) => self.oauth = Some(change(builder)),
            None => self.fail(ConfigError::Incomplete { what: setting }),
        }
        self
    }

    /// Keeps the first mistake for `build()`.
    fn fail(&mut self, error: ConfigError) {
        self.misuse.get_or_insert(error);
    }

    /// The client secret.
    pub fn client_secret(self, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        self.oauth("client_secret(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.client_secret(secret)
        })
    }

    /// The client secret from `value`, what `std::env::var(variable)`
    /// returned; an unset, empty or non-UTF-8 variable makes `build()` fail
    /// with an error that names it. The adapters' `client_secret_from_env`
    /// read the variable and call this.
    pub fn client_secret_from_env(self, variable: &str, value: Result<String, std::env::VarError>) -> Self {
        self.with_env_value(variable, "client secret", value, Self::client_secret)
    }

    /// Hands the variable's value to `then`, or keeps the error for `build()`.
    fn with_env_value(
        mut self,
        variable: &str,
        what: &'static str,
        value: Result<String, std::env::VarError>,
        then: impl FnOnce(Self, String) -> Self,
    ) -> Self {
        match crate::secret::from_env::<String>(variable, what, value) {
            Ok(value) => then(self, value),
            Err(error) => {
                self.fail(error);
                self
            }
        }
    }

    /// The client's private key: the token endpoint sees a
    /// `private_key_jwt` assertion signed with it instead of a secret.
    pub fn signing_key(self, key: crate::keys::SigningKey) -> Self {
        self.oauth("signing_key(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.signing_key(key)
        })
    }

    /// The client's private key from a file's `contents` (PEM or JWK, read
    /// by the adapter: this crate does no IO), decrypted with `password`
    /// when encrypted; a file that cannot be read or holds no usable key
    /// makes `build()` fail with an error that names `path`.
    pub fn signing_key_from_file(
        mut self,
        path: &str,
        contents: std::io::Result<String>,
        password: Option<&[u8]>,
    ) -> Self {
        match crate::keys::SigningKey::read_file(path, contents, password) {
            Ok(key) => self.signing_key(key),
            Err(error) => {
                self.fail(error);
                self
            }
        }
    }

    /// Mutual TLS (RFC 8705): the client certificate the adapter presents
    /// to the token endpoint (`tls_client_auth` when no secret or key is
    /// set, or certificate-bound tokens) and to APIs that ask for one.
    pub fn client_certificate(self, certificate: crate::mtls::ClientCertificate) -> Self {
        self.oauth(
            "client_certificate(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first",
            |b| b.client_certificate(certificate),
        )
    }

    /// The client certificate and key from PEM files' contents (read by the
    /// adapter), the key decrypted with `password` when encrypted; a file
    /// that cannot be read or used makes `build()` fail with an error that
    /// names it.
    pub fn client_certificate_from_files(
        mut self,
        certificate_path: &str,
        certificate: std::io::Result<String>,
        key_path: &str,
        key: std::io::Result<String>,
        password: Option<&[u8]>,
    ) -> Self {
        match crate::mtls::ClientCertificate::read_files(certificate_path, certificate, key_path, key, password) {
            Ok(certificate) => self.client_certificate(certificate),
            Err(error) => {
                self.fail(error);
                self
            }
        }
    }

    /// Trusts only the CA certificates in `pem` (one or more `CERTIFICATE`
    /// blocks) instead of the built-in web roots, at the token endpoint and
    /// the API: for servers of a private PKI. Text without a certificate
    /// makes `build()` fail.
    pub fn root_certificates(mut self, pem: &str) -> Self {
        match crate::mtls::certificates_from_pem(pem) {
            Ok(roots) => self.roots = Some(roots),
            Err(error) => self.fail(ConfigError::Key { what: "the root certificates".to_owned(), error }),
        }
        self
    }

    /// Which requests keep a copy of themselves to send again after a
    /// 401: every request whose body can be copied
    /// ([`ReplayCopies::Always`](crate::publish::replay::ReplayCopies::Always), the
    /// default), or only those whose token is at risk
    /// ([`ReplayCopies::AtRisk`](crate::publish::replay::ReplayCopies::AtRisk): a
    /// settled token's 401 then reaches the caller).
    pub fn replay_copies(mut self, copies: crate::publish::replay::ReplayCopies) -> Self {
        self.replay_copies = copies;
        self
    }

    /// DPoP-bound tokens (RFC 9449) with this key: every token and API
    /// request carries a fresh proof.
    pub fn dpop(self, dpop: std::sync::Arc<crate::dpop::Dpop>) -> Self {
        self.oauth("dpop(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.dpop(dpop)
        })
    }

    /// How the client authenticates at the token endpoint (default Basic).
    pub fn client_auth(self, method: ClientAuth) -> Self {
        self.oauth("client_auth(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.client_auth(method)
        })
    }

    /// Adds scopes (space-separated ones are split).
    pub fn scope(self, scope: impl AsRef<str>) -> Self {
        let scope = scope.as_ref().to_owned();
        self.oauth("scope(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.scope(scope)
        })
    }

    /// The `audience` parameter.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.oauth("audience(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.audience(audience)
        })
    }

    /// The scopes this client may add when an API asks for them
    /// ([`SourceConfigBuilder::step_up_scopes`]).
    pub fn step_up_scopes(self, scopes: &[&str]) -> Self {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.oauth("step_up_scopes(..) needs client_credentials(token_url, client_id) first", |b| {
            b.step_up_scopes(scopes)
        })
    }

    /// The client proves itself with a token from outside as its client
    /// assertion ([`SourceConfigBuilder::client_assertion`]).
    pub fn client_assertion(self, assertion: crate::exchange::SuppliedToken) -> Self {
        self.oauth("client_assertion(..) needs client_credentials(token_url, client_id) first", |b| {
            b.client_assertion(assertion)
        })
    }

    /// Tokens from an RFC 8693 token exchange instead of the client
    /// credentials grant ([`SourceConfigBuilder::token_exchange`]).
    pub fn token_exchange(self, exchange: crate::exchange::TokenExchange) -> Self {
        self.oauth("token_exchange(..) needs client_credentials(token_url, client_id) first", |b| {
            b.token_exchange(exchange)
        })
    }

    /// Adds an RFC 8707 `resource` parameter.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        let resource = resource.into();
        self.oauth("resource(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.resource(resource)
        })
    }

    /// Adds an extra token request parameter.
    pub fn param(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        self.oauth("param(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.param(name, value)
        })
    }

    /// The RFC 7009 revocation endpoint.
    pub fn revocation_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.oauth("revocation_url(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first", |b| {
            b.revocation_url(url)
        })
    }

    /// The daily fetch budget: at most `limit` token requests in any 24
    /// hours, counted for the whole fleet in a shared store (see
    /// [`SourceConfigBuilder::max_fetches_per_day`]).
    pub fn max_fetches_per_day(self, limit: u32) -> Self {
        self.oauth(
            "max_fetches_per_day(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first",
            |b| b.max_fetches_per_day(limit),
        )
    }

    /// Any other token source setting (policies, the daily fetch budget,
    /// the default lifetime, ...).
    pub fn configure_token(self, change: impl FnOnce(SourceConfigBuilder) -> SourceConfigBuilder) -> Self {
        self.oauth(
            "configure_token(..) needs client_credentials(token_url, client_id) or user_sign_in(..) first",
            change,
        )
    }

    /// An API key in the named header.
    pub fn api_key_header(mut self, name: impl Into<String>, key: impl Into<String>) -> Self {
        self.credentials = self.credentials.api_key_header(name, key.into());
        self
    }

    /// An API key in the named header, from `value`, what
    /// `std::env::var(variable)` returned (see
    /// [`client_secret_from_env`](Self::client_secret_from_env)).
    pub fn api_key_header_from_env(
        self,
        name: impl Into<String>,
        variable: &str,
        value: Result<String, std::env::VarError>,
    ) -> Self {
        self.with_env_value(variable, "API key", value, |setup, key| setup.api_key_header(name, key))
    }

    /// An API key in the named query parameter.
    pub fn api_key_query(mut self, name: impl Into<String>, key: impl Into<String>) -> Self {
        self.credentials = self.credentials.api_key_query(name, key.into());
        self
    }

    /// Static HTTP Basic credentials (legacy APIs).
    pub fn basic(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = self.credentials.basic(user, password.into());
        self
    }

    /// A bearer token the user already holds (a JWT).
    pub fn static_bearer(mut self, token: impl Into<String>) -> Self {
        self.credentials = self.credentials.static_bearer(token.into());
        self
    }

    /// Limits the credentials to an origin (`https://api.example.com`:
    /// scheme, host and port, no path); may be repeated. Required, or
    /// [`any_origin`](Self::any_origin): requests to other origins go out
    /// without the credentials.
    pub fn api_origin(mut self, origin: impl Into<String>) -> Self {
        self.credentials = self.credentials.api_origin(origin);
        self
    }

    /// Sends the credentials to every host the client calls instead of the
    /// origins given with [`api_origin`](Self::api_origin). Only for a
    /// client that calls one API and URLs you control: a URL built from
    /// user input would receive the credentials.
    pub fn any_origin(mut self) -> Self {
        self.credentials = self.credentials.any_origin();
        self
    }

    /// Validates the whole configuration.
    pub fn build(self) -> Result<ClientParts, ConfigError> {
        if let Some(misuse) = self.misuse {
            return Err(misuse);
        }
        let credentials = self.credentials.build()?;
        let source = self.oauth.map(SourceConfigBuilder::build).transpose()?;
        Ok(ClientParts { source, credentials, root_certificates: self.roots, replay_copies: self.replay_copies })
    }
}

/// The most a secret, key, certificate or assertion file may hold: 1 MiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The text of a secret, key, certificate or assertion file the user named
/// (see [`read_file_bytes`]).
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    let mut bytes = read_file_bytes(path)?;
    // Checked in place, so that bytes that are not text are zeroized too.
    if std::str::from_utf8(&bytes).is_err() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"));
    }
    Ok(String::from_utf8(std::mem::take(&mut *bytes)).unwrap_or_default())
}

/// The bytes of a secret, key, certificate or assertion file the user
/// named: a regular file (a symbolic link to one is followed, as mounted
/// secrets are) of at most [`MAX_FILE_BYTES`]. A FIFO, a device
/// (`/dev/zero`), a socket or a directory is refused before it is opened,
/// so nothing waits on it; a larger file is refused without being read
/// whole. The errors say which of these it was, never the content.
pub fn read_file_bytes(path: &std::path::Path) -> std::io::Result<zeroize::Zeroizing<Vec<u8>>> {
    use std::io::Read as _;
    let refuse = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned());
    let not_regular = "not a regular file (a FIFO, a device, a socket or a directory?)";
    if !std::fs::metadata(path)?.is_file() {
        return Err(refuse(not_regular));
    }
    let file = std::fs::File::open(path)?;
    // Checked again on what was opened (it may have been swapped meanwhile).
    if !file.metadata()?.is_file() {
        return Err(refuse(not_regular));
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(refuse("larger than 1 MiB: not a secret, key or certificate file"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(unix)]
    fn files_from_outside_are_regular_small_and_never_waited_on() {
        let dir = std::env::temp_dir().join(format!("auth-core-read-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("secret");
        std::fs::write(&small, "s3cr3t\n").unwrap();
        assert_eq!(super::read_file(&small).unwrap(), "s3cr3t\n");
        // A symbolic link to a regular file is followed (mounted secrets are links).
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&small, &link).unwrap();
        assert_eq!(super::read_file(&link).unwrap(), "s3cr3t\n");
        // A device that never ends, a FIFO nobody writes to, a directory: refused at once.
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        for path in [std::path::Path::new("/dev/zero"), &fifo, &dir] {
            let error = super::read_file(path).unwrap_err();
            assert!(error.to_string().contains("not a regular file"), "{}: {error}", path.display());
        }
        // A file larger than the cap: refused, not read whole.
        let large = dir.join("large");
        std::fs::write(&large, vec![b'a'; (super::MAX_FILE_BYTES + 1) as usize]).unwrap();
        assert!(super::read_file(&large).unwrap_err().to_string().contains("larger than 1 MiB"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use super::*;

    #[test]
    fn the_daily_budget_is_one_call_on_the_builder() {
        let parts = ClientSetup::default()
            .client_credentials("https://login.example.com/token", "id")
            .client_secret("s")
            .max_fetches_per_day(1_000)
            .api_origin("https://api.example.com")
            .build()
            .unwrap();
        assert_eq!(parts.source.unwrap().max_fetches_per_day(), Some(1_000));
        let early = ClientSetup::default().max_fetches_per_day(10).build().unwrap_err().to_string();
        assert!(early.contains("max_fetches_per_day(..) needs client_credentials"), "{early}");
    }

    #[test]
    #[allow(deprecated)]
    fn allow_origin_is_the_old_name_of_api_origin() {
        let old = crate::Credentials::builder().bearer_from_source().allow_origin("https://api.example.com").build();
        let new = crate::Credentials::builder().bearer_from_source().api_origin("https://api.example.com").build();
        assert_eq!(format!("{:?}", old.unwrap()), format!("{:?}", new.unwrap()));
    }

    #[test]
    fn user_sign_in_is_a_sign_in_source_with_the_same_settings() {
        let parts = ClientSetup::default()
            .user_sign_in("https://id.example.com/token", "web-app")
            .client_secret("s")
            .scope("profile")
            .api_origin("https://api.example.com")
            .build()
            .unwrap();
        let source = parts.source.unwrap();
        assert_eq!(source.grant(), crate::config::SourceGrant::SignIn);
        assert_eq!(source.scopes(), ["profile".to_owned()]);
        let error = ClientSetup::default().scope("profile").build().unwrap_err().to_string();
        assert!(error.contains("client_credentials(token_url, client_id) or user_sign_in(..)"), "{error}");
    }

    #[test]
    fn settings_before_client_credentials_and_bad_variables_fail_build_with_the_first_mistake() {
        let error = ClientSetup::default()
            .audience("https://api.example.com/")
            .client_secret_from_env("UNSET_SECRET", Err(std::env::VarError::NotPresent))
            .api_origin("https://api.example.com")
            .build()
            .unwrap_err();
        assert!(matches!(error, ConfigError::Incomplete { what } if what.starts_with("audience(..)")), "{error}");

        let error = ClientSetup::default()
            .client_credentials("https://login.example.com/token", "id")
            .client_secret_from_env("EMPTY_SECRET", Ok(String::new()))
            .api_origin("https://api.example.com")
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("`EMPTY_SECRET`") && error.to_string().contains("is empty"), "{error}");
    }

    #[test]
    fn static_credentials_need_no_source_and_oauth_adds_the_bearer() {
        let parts = ClientSetup::default()
            .api_key_header_from_env("X-API-Key", "API_KEY", Ok("k".to_owned()))
            .api_origin("https://api.example.com")
            .build()
            .unwrap();
        assert!(parts.source.is_none() && !parts.credentials.needs_token());
        let parts = ClientSetup::default()
            .client_credentials("https://login.example.com/token", "id")
            .client_secret_from_env("SECRET", Ok("s".to_owned()))
            .configure_token(|token| token.max_fetches_per_day(5))
            .any_origin()
            .build()
            .unwrap();
        assert!(parts.credentials.needs_token());
        assert_eq!(parts.source.unwrap().client_id(), "id");
    }
}
