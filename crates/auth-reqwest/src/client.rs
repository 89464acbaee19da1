//! A ready authenticated client, in a few lines.

use std::time::Duration;

use auth_core::{ClientAuth, ConfigError, Credentials, CredentialsBuilder, SourceConfig, SourceConfigBuilder};
use auth_tower::{AuthError, Revoked, TokenSource};
use reqwest::{IntoUrl, Method};
use reqwest_middleware::{ClientWithMiddleware, RequestBuilder};

use crate::{same_origin_redirects, AuthMiddleware, ReqwestTransport};

/// A reqwest client whose every request carries the configured credentials.
///
/// Build one per environment: a sandbox client and a production client have
/// different token URLs, hence different token sources and cache keys, so
/// their tokens are never mixed. Clone it freely: clones share the token.
#[derive(Debug, Clone)]
pub struct AuthClient {
    client: ClientWithMiddleware,
    source: Option<TokenSource>,
}

impl AuthClient {
    /// Starts a configuration.
    pub fn builder() -> AuthClientBuilder {
        AuthClientBuilder::default()
    }

    /// A GET request.
    pub fn get<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.client.get(url)
    }

    /// A POST request.
    pub fn post<U: IntoUrl>(&self, url: U) -> RequestBuilder {
        self.client.post(url)
    }

    /// A request with any method.
    pub fn request<U: IntoUrl>(&self, method: Method, url: U) -> RequestBuilder {
        self.client.request(method, url)
    }

    /// The middleware client, to send prepared `reqwest::Request`s.
    pub fn client(&self) -> &ClientWithMiddleware {
        &self.client
    }

    /// The token source, when the client uses OAuth.
    pub fn token_source(&self) -> Option<&TokenSource> {
        self.source.as_ref()
    }

    /// Revokes the current tokens (RFC 7009) and forgets them.
    pub async fn revoke(&self) -> Result<Revoked, AuthError> {
        match &self.source {
            Some(source) => source.revoke().await,
            None => Err(AuthError::Config(ConfigError::Incomplete {
                what: "this client has no OAuth token source to revoke",
            })),
        }
    }
}

/// Builder of an [`AuthClient`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use auth_reqwest::AuthClient;
///
/// let api = AuthClient::builder()
///     .client_credentials("https://login.example.com/oauth2/token", "client-id")
///     .client_secret(std::env::var("CLIENT_SECRET")?)
///     .scope("orders:read")
///     .api_key_header("cdpapi-Subscription-Key", std::env::var("SUBSCRIPTION_KEY")?)
///     .api_origin("https://api.example.com")
///     .build()?;
/// let orders = api.get("https://api.example.com/v1/orders").send().await?.text().await?;
/// # Ok(()) }
/// ```
#[derive(Default)]
#[must_use = "call build() to get the client"]
pub struct AuthClientBuilder {
    oauth: Option<SourceConfigBuilder>,
    credentials: CredentialsBuilder,
    timeout: Option<Duration>,
    fetch_timeout: Option<Duration>,
    /// The first mistake made while configuring, reported by `build()`.
    misuse: Option<ConfigError>,
}

impl AuthClientBuilder {
    /// Uses an OAuth 2.0 access token from the client credentials grant at
    /// `token_url`, sent as `Authorization: Bearer`.
    pub fn client_credentials(mut self, token_url: impl Into<String>, client_id: impl Into<String>) -> Self {
        self.oauth = Some(SourceConfig::builder(token_url, client_id));
        self.credentials = self.credentials.bearer_from_source();
        self
    }

    fn oauth(mut self, what: &'static str, change: impl FnOnce(SourceConfigBuilder) -> SourceConfigBuilder) -> Self {
        match self.oauth.take() {
            Some(builder) => self.oauth = Some(change(builder)),
            None => self.misuse = self.misuse.or(Some(ConfigError::Incomplete { what })),
        }
        self
    }

    /// The client secret (OAuth).
    pub fn client_secret(self, secret: impl Into<String>) -> Self {
        let secret = secret.into();
        self.oauth("client_secret(..) needs client_credentials(token_url, client_id) first", |b| {
            b.client_secret(secret)
        })
    }
    /// The client secret from the environment variable `variable` (OAuth).
    /// An unset, empty or non-UTF-8 variable makes `build()` fail with an
    /// error that names the variable.
    pub fn client_secret_from_env(self, variable: &str) -> Self {
        self.from_env(variable, "client secret", Self::client_secret)
    }
    /// An API key in the named header, from the environment variable
    /// `variable`; an unset or empty variable makes `build()` fail with an
    /// error that names it.
    pub fn api_key_header_from_env(self, name: impl Into<String>, variable: &str) -> Self {
        self.from_env(variable, "API key", |builder, key| builder.api_key_header(name, key))
    }

    /// Reads `variable` and hands its value to `then`, or keeps the error
    /// for `build()`.
    fn from_env(mut self, variable: &str, what: &'static str, then: impl FnOnce(Self, String) -> Self) -> Self {
        match auth_core::secret::from_env::<String>(variable, what, std::env::var(variable)) {
            Ok(value) => then(self, value),
            Err(error) => {
                self.misuse = self.misuse.or(Some(error));
                self
            }
        }
    }
    /// How the client authenticates at the token endpoint (default Basic).
    pub fn client_auth(self, method: ClientAuth) -> Self {
        self.oauth("client_auth(..) needs client_credentials(token_url, client_id) first", |b| b.client_auth(method))
    }
    /// Adds scopes (OAuth).
    pub fn scope(self, scope: impl AsRef<str>) -> Self {
        let scope = scope.as_ref().to_owned();
        self.oauth("scope(..) needs client_credentials(token_url, client_id) first", |b| b.scope(scope))
    }
    /// The `audience` parameter (OAuth).
    pub fn audience(self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.oauth("audience(..) needs client_credentials(token_url, client_id) first", |b| b.audience(audience))
    }
    /// Adds an RFC 8707 `resource` parameter (OAuth).
    pub fn resource(self, resource: impl Into<String>) -> Self {
        let resource = resource.into();
        self.oauth("resource(..) needs client_credentials(token_url, client_id) first", |b| b.resource(resource))
    }
    /// Adds an extra token request parameter (OAuth).
    pub fn param(self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        self.oauth("param(..) needs client_credentials(token_url, client_id) first", |b| b.param(name, value))
    }
    /// The RFC 7009 revocation endpoint (OAuth).
    pub fn revocation_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.oauth("revocation_url(..) needs client_credentials(token_url, client_id) first", |b| b.revocation_url(url))
    }
    /// Any other token source setting (policies, default lifetime, ...).
    pub fn configure_token(self, change: impl FnOnce(SourceConfigBuilder) -> SourceConfigBuilder) -> Self {
        self.oauth("configure_token(..) needs client_credentials(token_url, client_id) first", change)
    }
    /// An API key in the named header.
    pub fn api_key_header(mut self, name: impl Into<String>, key: impl Into<String>) -> Self {
        self.credentials = self.credentials.api_key_header(name, key.into());
        self
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
        self.credentials = self.credentials.allow_origin(origin);
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
    /// Timeout of each API request. Default: none.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Timeout of each token request. Default 30 s.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = Some(timeout);
        self
    }

    /// Validates the configuration and builds the client. Must be called
    /// inside a tokio runtime when OAuth is used (the token source's worker
    /// runs there).
    pub fn build(self) -> Result<AuthClient, AuthError> {
        if let Some(misuse) = self.misuse {
            return Err(AuthError::Config(misuse));
        }
        let credentials: Credentials = self.credentials.build()?;
        let fetch_timeout = self.fetch_timeout.unwrap_or(crate::transport::DEFAULT_TIMEOUT);
        let source = match self.oauth {
            Some(builder) => {
                let transport = ReqwestTransport::with_timeout(fetch_timeout).map_err(transport_error)?;
                Some(TokenSource::builder(builder.build()?, transport).fetch_timeout(fetch_timeout).build()?)
            }
            None => None,
        };
        let middleware = match &source {
            Some(source) => AuthMiddleware::new(source.clone(), credentials),
            None => AuthMiddleware::without_source(credentials)?,
        };
        let mut http = reqwest::Client::builder().redirect(same_origin_redirects());
        if let Some(timeout) = self.timeout {
            http = http.timeout(timeout);
        }
        let http = http.build().map_err(transport_error)?;
        let client = reqwest_middleware::ClientBuilder::new(http).with(middleware).build();
        Ok(AuthClient { client, source })
    }
}

fn transport_error(error: reqwest::Error) -> AuthError {
    AuthError::Token(auth_core::TokenError::transport(format!("could not build the HTTP client: {error}")))
}
