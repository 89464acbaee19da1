//! A client for an API known by its URL alone: its protected resource
//! metadata (RFC 9728) names its authorization server, whose metadata
//! (RFC 8414 / OpenID Connect) names the token endpoint; a client without
//! an id registers itself (RFC 7591) when allowed; every token is asked
//! for the API's resource (RFC 8707). What was found, and the
//! registration, are kept in the token store when one is given (one
//! record per API origin), so that later runs and other replicas neither
//! discover nor register again. The rules are auth-core's
//! ([`auth_core::resource`]); the requests are [`crate::discovery`]'s.

use std::sync::Arc;
use std::time::Duration;

use auth_core::resource::discovered::Discovered;
use auth_core::resource::from_url::FromUrlError;
use auth_core::resource::metadata::{validate_resource, Origins};
use auth_core::secret::ExposeSecret as _;
use auth_core::sign_in::registration::ClientMetadata;
use auth_core::store::StoreConfig;
use auth_tower::{AuthError, TokenStore};
use zeroize::Zeroizing;

use crate::client::{AuthClient, AuthClientBuilder};
use crate::discovery::{discover, keep, kept, register};

/// How long each discovery or registration request may take.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an [`AuthClient`] could not be set up from an API's URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForResourceError {
    /// Discovery or registration failed.
    #[error(transparent)]
    Discovery(#[from] FromUrlError),
    /// The client found could not be built.
    #[error(transparent)]
    Client(#[from] AuthError),
    /// The user's sign-in failed (declined, timed out, refused).
    #[cfg(feature = "loopback")]
    #[error(transparent)]
    SignIn(auth_tower::sign_in::SignInError),
}

/// Builder of an [`AuthClient`] for an API known by its URL alone
/// (client credentials); from [`AuthClientBuilder::for_resource`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use auth_reqwest::{AuthClient, ClientMetadata, MemoryStore, StoreConfig};
///
/// let api = AuthClient::builder()
///     .for_resource("https://api.example.com/v1")
///     .scope("orders:read")
///     // No client id: register one (kept in the store; a restart reuses it).
///     .register(ClientMetadata::service("billing"))
///     .store(MemoryStore::new(), StoreConfig::default())
///     .build()
///     .await?;
/// let orders = api.get("https://api.example.com/v1/orders").send().await?.text().await?;
/// # Ok(()) }
/// ```
#[must_use = "call build().await to get the client"]
pub struct ForResource {
    pub(crate) resource: String,
    pub(crate) client: AuthClientBuilder,
    pub(crate) client_id: Option<String>,
    pub(crate) client_secret: Option<Zeroizing<String>>,
    pub(crate) signing_key: Option<auth_core::keys::SigningKey>,
    pub(crate) scopes: Vec<String>,
    pub(crate) register: Option<ClientMetadata>,
    pub(crate) initial_access_token: Option<Zeroizing<String>>,
    pub(crate) origins: Result<Origins, FromUrlError>,
    pub(crate) store: Option<(Arc<dyn TokenStore>, StoreConfig)>,
    pub(crate) configure: Vec<Box<dyn FnOnce(AuthClientBuilder) -> AuthClientBuilder + Send>>,
    #[cfg(feature = "loopback")]
    pub(crate) app_name: Option<String>,
}

impl std::fmt::Debug for ForResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForResource")
            .field("resource", &self.resource)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl AuthClientBuilder {
    /// A client for the API identified by `resource` (its resource
    /// identifier, e.g. `https://api.example.com/v1`), configured from what
    /// the API says about itself: see [`ForResource`]. Credentials go to
    /// the API's origin only.
    pub fn for_resource(self, resource: impl Into<String>) -> ForResource {
        ForResource {
            resource: resource.into(),
            client: self,
            client_id: None,
            client_secret: None,
            signing_key: None,
            scopes: Vec::new(),
            register: None,
            initial_access_token: None,
            origins: Ok(Origins::default()),
            store: None,
            configure: Vec::new(),
            #[cfg(feature = "loopback")]
            app_name: None,
        }
    }
}

impl ForResource {
    /// The client id the authorization server gave this client (no
    /// registration then).
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The client secret of the client id given.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(Zeroizing::new(secret.into()));
        self
    }

    /// The client's private key (`private_key_jwt`): for a client id given,
    /// or registered with [`ClientMetadata::service_with_key`].
    pub fn signing_key(mut self, key: auth_core::keys::SigningKey) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// A scope to ask for (repeatable, or space-separated).
    pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
        self.scopes.extend(scope.as_ref().split_whitespace().map(str::to_owned));
        self
    }

    /// Without a client id, registers a client with `metadata` (RFC 7591)
    /// at the authorization server, once: the registration is kept in the
    /// store (give one) beside the tokens, and reused by later builds.
    pub fn register(mut self, metadata: ClientMetadata) -> Self {
        self.register = Some(metadata);
        self
    }

    /// The initial access token the server wants with registrations.
    pub fn initial_access_token(mut self, token: impl Into<String>) -> Self {
        self.initial_access_token = Some(Zeroizing::new(token.into()));
        self
    }

    /// Allows discovery to contact `origin` besides the API's own (where
    /// its metadata names its authorization server). Without it, an API
    /// naming another origin is refused: an API cannot send the client to
    /// any host it likes.
    pub fn trust_origin(mut self, origin: &str) -> Self {
        self.origins = self.origins.and_then(|origins| origins.allow(origin).map_err(FromUrlError::from));
        self
    }

    /// Shares tokens through `store` (as [`AuthClientBuilder::store`]),
    /// and keeps what discovery found and the registration there.
    pub fn store(mut self, store: impl TokenStore, config: StoreConfig) -> Self {
        self.store = Some((Arc::new(store), config));
        self
    }

    /// Any other option of the client (an audience, a timeout, a meter),
    /// applied once the token endpoint is known.
    pub fn configure(mut self, change: impl FnOnce(AuthClientBuilder) -> AuthClientBuilder + Send + 'static) -> Self {
        self.configure.push(Box::new(change));
        self
    }

    /// Discovers (or reads what was kept), registers if asked and needed,
    /// and builds the client. Must be called inside a tokio runtime.
    pub async fn build(self) -> Result<AuthClient, ForResourceError> {
        let http = discovery_client()?;
        let found = self.found(&http).await?;
        let (found, client_id, client_secret) = match self.client_of(&found) {
            Some((client_id, client_secret)) => (found, client_id, client_secret),
            None => {
                // Without a registration endpoint, `registered` says so.
                let Some(metadata) = self.register.clone() else {
                    let (issuer, can_register) = (found.issuer().to_owned(), found.registration_endpoint().is_some());
                    return Err(FromUrlError::NoClient { issuer, can_register }.into());
                };
                let found = self.registered(&http, found, &metadata).await?;
                let (client_id, client_secret) = self.client_of(&found).unwrap_or_default();
                (found, client_id, client_secret)
            }
        };
        Ok(self.client_for(&found, client_id, client_secret, false)?)
    }

    /// What was kept for the resource, or what discovery finds (then kept).
    pub(crate) async fn found(&self, http: &reqwest::Client) -> Result<Discovered, FromUrlError> {
        let origins = self.origins.clone()?;
        validate_resource(&self.resource)?;
        let store = self.store.as_ref().map(|(store, _)| store.as_ref());
        if let Some(store) = store {
            if let Some(found) = kept(store, &self.resource).await.filter(|found| found.resource() == self.resource) {
                return Ok(found);
            }
        }
        let mut found = discover(http, &self.resource, &origins).await?;
        if let Some(store) = store {
            keep_or_warn(store, &mut found).await;
        }
        Ok(found)
    }

    /// The client to use: the id given (with its secret), or the one
    /// registered before; `None` when there is none.
    pub(crate) fn client_of(&self, found: &Discovered) -> Option<(String, Option<Zeroizing<String>>)> {
        if let Some(id) = &self.client_id {
            return Some((id.clone(), self.client_secret.clone()));
        }
        let registration = found.registration()?;
        let secret = registration.client_secret().map(|s| Zeroizing::new(s.expose_secret().to_owned()));
        Some((registration.client_id().to_owned(), secret))
    }

    /// Registers a client with `metadata` at `found`'s server and keeps it.
    pub(crate) async fn registered(
        &self,
        http: &reqwest::Client,
        found: Discovered,
        metadata: &ClientMetadata,
    ) -> Result<Discovered, FromUrlError> {
        let Some(endpoint) = found.registration_endpoint() else {
            return Err(FromUrlError::NoClient { issuer: found.issuer().to_owned(), can_register: false });
        };
        let iat = self.initial_access_token.as_deref().map(String::as_str);
        let registration = register(http, endpoint, metadata, iat).await?;
        let mut found = found.registered(registration);
        if let Some((store, _)) = &self.store {
            keep_or_warn(store.as_ref(), &mut found).await;
        }
        Ok(found)
    }

    /// The client for what was found: client credentials, or a user's
    /// sign-in (`user`).
    pub(crate) fn client_for(
        self,
        found: &Discovered,
        client_id: String,
        client_secret: Option<Zeroizing<String>>,
        user: bool,
    ) -> Result<AuthClient, AuthError> {
        let issuer = found.issuer().to_owned();
        let origin = found.origin();
        let client = match user {
            true => self.client.user_sign_in(found.token_endpoint(), client_id),
            false => self.client.client_credentials(found.token_endpoint(), client_id),
        };
        let mut client =
            client.resource(found.resource()).api_origin(origin).configure_token(move |builder| builder.issuer(issuer));
        if let Some(secret) = client_secret {
            client = client.client_secret(secret.as_str());
        }
        if let Some(key) = self.signing_key {
            client = client.signing_key(key);
        }
        if let Some(auth) = found.registration().and_then(|r| r.client_auth()) {
            client = client.client_auth(auth);
        }
        for scope in &self.scopes {
            client = client.scope(scope);
        }
        if let Some(url) = found.revocation_endpoint() {
            client = client.revocation_url(url);
        }
        if let Some((store, config)) = self.store {
            client = client.store(store, config);
        }
        self.configure.into_iter().fold(client, |client, change| change(client)).build()
    }
}

/// The HTTP client of discovery and registration: no redirect, 30 s.
pub(crate) fn discovery_client() -> Result<reqwest::Client, AuthError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DISCOVERY_TIMEOUT)
        .build()
        .map_err(|e| AuthError::Config(auth_core::ConfigError::tls(&e)))
}

/// Keeps `found`; a failure is logged (the next build discovers again).
async fn keep_or_warn(store: &dyn TokenStore, found: &mut Discovered) {
    if let Err(error) = keep(store, found).await {
        tracing::warn!(target: "auth_reqwest", error = %error.message, "could not keep what discovery found");
    }
}
