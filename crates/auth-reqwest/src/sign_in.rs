//! A user's sign-in for an API known by its URL alone, for apps and CLIs:
//! [`ForResource::sign_in`]; and pushing an authorization request (RFC
//! 9126), which it and `authc login` do when the server requires it.

use auth_core::resource::from_url::FromUrlError;
use auth_core::sign_in::authorize::AuthorizationRequest;
use auth_core::sign_in::registration::ClientMetadata;
use auth_core::{SourceConfig, TokenError};
use auth_tower::sign_in::{exchange_code, Loopback, LoopbackOptions, SignInError};
use auth_tower::AuthError;

use crate::client::AuthClient;
use crate::resource::{discovery_client, ForResource, ForResourceError};

/// The name a client registered by [`ForResource::sign_in`] gets unless
/// [`ForResource::app_name`] says otherwise.
const DEFAULT_APP_NAME: &str = "auth-reqwest";

impl ForResource {
    /// The name a public client registered for [`ForResource::sign_in`]
    /// shows the user on the server's consent page.
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }

    /// A client with the tokens of a user who signs in (the authorization
    /// code flow with PKCE through a loopback redirect, RFC 8252), instead
    /// of client credentials.
    ///
    /// The user's tokens kept in the store (give one) from an earlier
    /// sign-in are used as they are; otherwise `open` is called with the
    /// URL to open in the user's browser (`auth_tower::sign_in::open_browser`
    /// with its `browser` feature, or print it), and the call returns once
    /// the user has signed in (or after `options`' timeout). Without a
    /// client id given or kept, a public client is registered for the
    /// loopback redirect (RFC 7591; no secret) and kept. The request is
    /// pushed first (RFC 9126) when the server requires it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// use auth_reqwest::{AuthClient, MemoryStore, StoreConfig};
    /// use auth_tower::sign_in::LoopbackOptions;
    ///
    /// let api = AuthClient::builder()
    ///     .for_resource("https://api.example.com/v1")
    ///     .scope("orders:read")
    ///     .app_name("order-viewer")
    ///     .store(MemoryStore::new(), StoreConfig::default())
    ///     .sign_in(LoopbackOptions::default(), |url| eprintln!("Sign in at {url}"))
    ///     .await?;
    /// let orders = api.get("https://api.example.com/v1/orders").send().await?.text().await?;
    /// # Ok(()) }
    /// ```
    pub async fn sign_in(
        self,
        options: LoopbackOptions,
        open: impl FnOnce(&str),
    ) -> Result<AuthClient, ForResourceError> {
        let http = discovery_client()?;
        let found = self.found(&http).await?;
        let (found, client_id, client_secret, loopback) = match self.client_of(&found) {
            Some((client_id, client_secret)) => (found, client_id, client_secret, None),
            None => {
                // The redirect URI is registered: the listener first.
                let loopback = Loopback::bind(&options).await.map_err(sign_in_failed)?;
                let name = self.app_name.clone().unwrap_or_else(|| DEFAULT_APP_NAME.to_owned());
                let metadata = ClientMetadata::public_client(name, loopback.redirect_uri());
                let found = self.registered(&http, found, &metadata).await?;
                let (client_id, client_secret) = self.client_of(&found).unwrap_or_default();
                (found, client_id, client_secret, Some(loopback))
            }
        };
        let client = self.client_for(&found, client_id, client_secret, true)?;
        let Some(source) = client.token_source() else { return Ok(client) };
        match source.token().await {
            Ok(_) => return Ok(client),
            Err(AuthError::Token(TokenError::SignInRequired { .. })) => {}
            Err(other) => return Err(other.into()),
        }
        let loopback = match loopback {
            Some(loopback) => loopback,
            None => Loopback::bind(&options).await.map_err(sign_in_failed)?,
        };
        let authorize = found
            .authorization_endpoint()
            .ok_or_else(|| FromUrlError::NoAuthorizationEndpoint { issuer: found.issuer().to_owned() })?;
        let mut request = AuthorizationRequest::builder(source.config(), authorize, loopback.redirect_uri())
            .issuer(found.issuer())
            .require_issuer_param(found.iss_parameter_supported())
            .build()
            .map_err(AuthError::Config)?;
        if let (true, Some(endpoint)) = (found.requires_par(), found.par_endpoint()) {
            request = push_authorization(&http, source.config(), request, endpoint).await.map_err(sign_in_failed)?;
        }
        open(request.url());
        let code = loopback.receive(&request).await.map_err(sign_in_failed)?;
        exchange_code(source, &request, &code).await.map_err(sign_in_failed)?;
        // In the store before the call returns: a restart finds them.
        source.flush().await;
        Ok(client)
    }
}

/// A sign-in failure as the builder's error.
fn sign_in_failed(error: SignInError) -> ForResourceError {
    ForResourceError::SignIn(error)
}

/// Pushes `request` to `par_endpoint` (RFC 9126) with `config`'s client
/// authentication: the sign-in to send the user to then carries only
/// `client_id` and the `request_uri` the server gave. A refusal is the
/// server's error.
pub async fn push_authorization(
    http: &reqwest::Client,
    config: &SourceConfig,
    request: AuthorizationRequest,
    par_endpoint: &str,
) -> Result<AuthorizationRequest, SignInError> {
    let failed = |error: TokenError| SignInError::Token(AuthError::Token(error));
    let transport = |e: reqwest::Error| {
        let timeout = e.is_timeout();
        failed(TokenError::Transport { message: e.without_url().to_string(), timeout })
    };
    let pushed = request.par_request(config, par_endpoint)?;
    let ready = auth_core::wire::request::ready_to_send(&pushed, std::time::SystemTime::now()).map_err(failed)?;
    let ready = reqwest::Request::try_from(ready).map_err(transport)?;
    let answer = http.execute(ready).await.map_err(transport)?;
    let (status, headers) = (answer.status(), answer.headers().clone());
    let body = answer.bytes().await.map_err(transport)?;
    request.pushed(config, status, &headers, &body).map_err(failed)
}
