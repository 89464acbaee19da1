//! A ready authenticated client, in a few lines.

use std::time::Duration;

use auth_core::setup::{ClientParts, ClientSetup};
use auth_core::store::StoreConfig;
use auth_core::ConfigError;
use auth_tower::{AuthError, Revoked, TokenSource, TokenSourceBuilder, TokenStore};
use reqwest::{IntoUrl, Method};
use reqwest_middleware::{ClientWithMiddleware, RequestBuilder};

use crate::middleware::AuthMiddleware;
use crate::redirect::same_origin_redirects;
use crate::transport::ReqwestTransport;
use crate::transport::Tls;

/// A reqwest client whose every request carries the configured credentials.
///
/// Build one per environment: a sandbox client and a production client have
/// different token URLs, hence different token sources and cache keys, so
/// their tokens are never mixed. Clone it freely: clones share the token.
#[derive(Debug, Clone)]
pub struct AuthClient {
    client: ClientWithMiddleware,
    source: Option<TokenSource>,
    /// A clone of the middleware's credentials (they share their counts).
    credentials: auth_core::Credentials,
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

    /// How many requests went out without credentials because their origin
    /// is not the API's (`api_origin`); the first per origin is also
    /// logged at warn.
    pub fn withheld_requests(&self) -> u64 {
        self.credentials.withheld_requests()
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
    setup: ClientSetup,
    timeout: Option<Duration>,
    fetch_timeout: Option<Duration>,
    source: Vec<Box<dyn FnOnce(TokenSourceBuilder) -> TokenSourceBuilder + Send>>,
}

impl AuthClientBuilder {
    auth_core::client_setup_methods!(setup);

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

    /// Shares tokens with every process and replica that uses the same
    /// store and configuration: one fetch per token lifetime for the whole
    /// fleet (a `RedisStore` or `FileStore` of `auth-store`, with its
    /// `tower` feature; `StoreConfig::default()` for the usual settings).
    /// A provider's daily token cap, counted for the whole fleet in the
    /// store: `.max_fetches_per_day(n)`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use auth_reqwest::{AuthClient, MemoryStore, StoreConfig};
    ///
    /// let store = MemoryStore::new(); // auth_store::RedisStore::new("rediss://...")? across hosts
    /// let api = AuthClient::builder()
    ///     .client_credentials("https://login.example.com/oauth2/token", "client-id")
    ///     .client_secret("client-secret")
    ///     .max_fetches_per_day(1_000)
    ///     .store(store, StoreConfig::default())
    ///     .api_origin("https://api.example.com")
    ///     .build()?;
    /// # let _ = api;
    /// # Ok(()) }
    /// ```
    pub fn store(self, store: impl TokenStore, config: StoreConfig) -> Self {
        self.configure_source(move |source| source.store(store, config))
    }

    /// Records what the token source decides and what comes of it as
    /// OpenTelemetry metrics on `meter` (feature `opentelemetry`; the
    /// instruments are listed in the README and `auth_core::telemetry`).
    #[cfg(feature = "opentelemetry")]
    pub fn meter(self, meter: &auth_core::telemetry::Meter) -> Self {
        let meter = meter.clone();
        self.configure_source(move |source| source.meter(&meter))
    }

    /// The token source's other options (a token saved earlier, the store
    /// timeout, a seed), applied in order when the client is built.
    pub fn configure_source(
        mut self,
        change: impl FnOnce(TokenSourceBuilder) -> TokenSourceBuilder + Send + 'static,
    ) -> Self {
        self.source.push(Box::new(change));
        self
    }

    /// Validates the configuration and builds the client. Must be called
    /// inside a tokio runtime when OAuth is used (the token source's worker
    /// runs there).
    pub fn build(self) -> Result<AuthClient, AuthError> {
        let ClientParts { source, credentials, root_certificates, replay_copies, .. } = self.setup.build()?;
        // The client certificate goes to the token endpoint and to the API
        // (a certificate-bound token needs it there); TLS sends it only to
        // a server that asks for one.
        let tls = Tls {
            certificate: source.as_ref().and_then(|config| config.client_certificate().cloned()),
            roots: root_certificates,
        };
        let fetch_timeout = self.fetch_timeout.unwrap_or(crate::transport::DEFAULT_TIMEOUT);
        let source = match source {
            Some(config) => {
                let transport = ReqwestTransport::with_tls(fetch_timeout, &tls)?;
                let builder = TokenSource::builder(config, transport).fetch_timeout(fetch_timeout);
                Some(self.source.into_iter().fold(builder, |builder, change| change(builder)).build()?)
            }
            None => None,
        };
        let kept = credentials.clone();
        let middleware = match &source {
            Some(source) => AuthMiddleware::new(source.clone(), credentials).replay_copies(replay_copies),
            None => AuthMiddleware::without_source(credentials)?,
        };
        let mut http = reqwest::Client::builder().redirect(same_origin_redirects());
        if let Some(timeout) = self.timeout {
            http = http.timeout(timeout);
        }
        let http = tls.apply(http)?.build().map_err(|error| ConfigError::tls(&error))?;
        let client = reqwest_middleware::ClientBuilder::new(http).with(middleware).build();
        Ok(AuthClient { client, source, credentials: kept })
    }
}
