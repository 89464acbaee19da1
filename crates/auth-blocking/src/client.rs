//! Sending API requests with credentials and the single 401 replay.

use std::sync::Arc;
use std::time::SystemTime;

use auth_core::dpop::ApiAnswer;
use auth_core::slot::ReplayCopies;
use auth_core::{AccessToken, ApplyError, Credentials};
use http::{Request, Response, StatusCode};

use crate::error::Error;
use crate::source::BlockingTokenSource;
use crate::transport::BlockingTransport;

/// Sends API requests with the composed credentials; on a 401 to a request
/// that carried a token, invalidates it and replays the request once with
/// the new token, from a copy made before the send.
///
/// A request is copied when its token is at risk: new, past its renewal
/// point, of an assumed lifetime or DPoP-bound (see [`auth_core::slot`]),
/// or always with [`AuthorizedClient::replay_copies`]. A request without a
/// copy (sent with a settled token that the provider revoked in the
/// middle of its life) gets its 401 back, and the next request carries
/// the new token.
///
/// Credentials go only to the origins they are limited to; use a transport
/// that does not follow redirects ([`UreqTransport::for_api`](crate::UreqTransport::for_api)
/// does not), so that they never follow a redirect elsewhere.
#[derive(Clone)]
pub struct AuthorizedClient {
    source: Option<BlockingTokenSource>,
    credentials: Arc<Credentials>,
    transport: Arc<dyn BlockingTransport>,
    copies: ReplayCopies,
}

impl std::fmt::Debug for AuthorizedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizedClient")
            .field("source", &self.source)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl AuthorizedClient {
    /// Starts a configuration: token URL, client id, secret, scope, API key
    /// and origin in a few lines, over ureq (feature `ureq`, on by default).
    ///
    /// ```no_run
    /// use auth_blocking::AuthorizedClient;
    ///
    /// let api = AuthorizedClient::builder()
    ///     .client_credentials("https://login.example.com/oauth2/token", "client-id")
    ///     .client_secret_from_env("CLIENT_SECRET")
    ///     .scope("orders:read")
    ///     .api_key_header_from_env("cdpapi-Subscription-Key", "SUBSCRIPTION_KEY")
    ///     .api_origin("https://api.example.com")
    ///     .build()?;
    /// let orders = api.get("https://api.example.com/v1/orders")?;
    /// # Ok::<(), auth_blocking::Error>(())
    /// ```
    #[cfg(feature = "ureq")]
    pub fn builder() -> AuthorizedClientBuilder {
        AuthorizedClientBuilder::default()
    }

    /// Sends a GET request to `url` (a convenience over [`send`](Self::send)).
    pub fn get(&self, url: &str) -> Result<Response<Vec<u8>>, Error> {
        let request = Request::get(url).body(Vec::new()).map_err(|_| {
            Error::Config(auth_core::ConfigError::InvalidUrl { url: url.to_owned(), reason: "not a valid URI" })
        })?;
        self.send(request)
    }

    /// A client for credentials that include a bearer token from `source`.
    pub fn new(source: BlockingTokenSource, credentials: Credentials, transport: impl BlockingTransport) -> Self {
        let (credentials, transport) = (Arc::new(credentials), Arc::new(transport));
        Self { source: Some(source), credentials, transport, copies: ReplayCopies::default() }
    }

    /// Which requests keep a copy of themselves for a 401 replay: those
    /// whose token is at risk ([`ReplayCopies::AtRisk`], the default), or
    /// all ([`ReplayCopies::Always`]: one copy of each request), for APIs
    /// that revoke tokens in the middle of their life.
    pub fn replay_copies(mut self, copies: ReplayCopies) -> Self {
        self.copies = copies;
        self
    }

    /// A client for static credentials (API keys, Basic, a static bearer).
    pub fn without_source(credentials: Credentials, transport: impl BlockingTransport) -> Result<Self, Error> {
        if credentials.needs_token() {
            return Err(Error::Apply(ApplyError::MissingToken));
        }
        let (credentials, transport) = (Arc::new(credentials), Arc::new(transport));
        Ok(Self { source: None, credentials, transport, copies: ReplayCopies::default() })
    }

    /// The token source, if any.
    pub fn token_source(&self) -> Option<&BlockingTokenSource> {
        self.source.as_ref()
    }

    /// Sends `request` with the credentials, replaying it once after a 401.
    pub fn send(&self, mut request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        if !self.credentials.applies_to(request.uri()) {
            return Ok(self.transport.send(request)?);
        }
        let source = match &self.source {
            Some(source) if self.credentials.needs_token() => source,
            _ => {
                self.credentials.apply_allowed(&mut request, None)?;
                return Ok(self.transport.send(request)?);
            }
        };
        let token = source.token()?;
        let at_risk = source.at_risk(&token);
        let replay = self.copies.keep(at_risk).then(|| copy(&request));
        let uri = token.dpop().map(|_| request.uri().clone());
        let proof = self.credentials.apply_allowed_at(&mut request, Some(&token), SystemTime::now())?;
        let response = self.transport.send(request)?;
        if let (Some(proof), Some(dpop), Some(uri)) = (&proof, token.dpop(), &uri) {
            match (dpop.api_answer(uri, proof, response.status(), response.headers()), replay) {
                // The server wants its nonce: the same token, a new proof, once.
                (ApiAnswer::RetryWithNonce, Some(replay)) => return self.send_again(replay, &token),
                (ApiAnswer::RetryWithNonce | ApiAnswer::NonceRefused, _) => return Ok(response),
                (_, kept) => return self.after_answer(source, &token, at_risk, kept, response),
            }
        }
        self.after_answer(source, &token, at_risk, replay, response)
    }

    /// The answer to a request sent with `token`: returned, or after a 401
    /// the copy (if one was kept) replayed once with a renewed token.
    fn after_answer(
        &self,
        source: &BlockingTokenSource,
        token: &AccessToken,
        at_risk: bool,
        replay: Option<Request<Vec<u8>>>,
        response: Response<Vec<u8>>,
    ) -> Result<Response<Vec<u8>>, Error> {
        if response.status() != StatusCode::UNAUTHORIZED {
            if at_risk {
                source.accepted(token.generation());
            }
            return Ok(response);
        }
        let Some(replay) = replay else {
            // No copy was kept: the caller gets the 401, the next request a new token.
            source.invalidate(token.generation());
            return Ok(response);
        };
        let renewed = match source.reject(token.generation()) {
            Ok(Some(renewed)) => renewed,
            // The loop guard held the renewal back: a fresh token was rejected already.
            Ok(None) => return Ok(rejected_after_renewal(response)),
            // No new token could be had: the caller gets the 401.
            Err(_) => return Ok(response),
        };
        let replayed = self.send_again(replay, &renewed)?;
        if replayed.status() == StatusCode::UNAUTHORIZED {
            // Never replayed twice; the lifecycle decides whether this token is dropped.
            source.invalidate(renewed.generation());
            return Ok(rejected_after_renewal(replayed));
        }
        source.accepted(renewed.generation());
        Ok(replayed)
    }

    /// Sends a replay with `token` (a new DPoP proof when it is DPoP-bound)
    /// and keeps the nonce the answer carries.
    fn send_again(&self, mut replay: Request<Vec<u8>>, token: &AccessToken) -> Result<Response<Vec<u8>>, Error> {
        self.credentials.apply_allowed_at(&mut replay, Some(token), SystemTime::now())?;
        let uri = replay.uri().clone();
        let replayed = self.transport.send(replay)?;
        if let Some(dpop) = token.dpop() {
            dpop.observe(&uri, replayed.headers());
        }
        Ok(replayed)
    }
}

/// A 401 that a renewed token did not cure, marked for the caller (the
/// token source's worker logs it).
fn rejected_after_renewal(mut response: Response<Vec<u8>>) -> Response<Vec<u8>> {
    response.extensions_mut().insert(auth_core::RejectedAfterRenewal);
    response
}

/// A copy of the request (made before credentials are applied).
fn copy(request: &Request<Vec<u8>>) -> Request<Vec<u8>> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

/// Builder of an [`AuthorizedClient`] over ureq, with its token source;
/// see [`AuthorizedClient::builder`]. The same calls as
/// `auth_reqwest::AuthClient::builder()`, plus the token source's options
/// (a shared store, a token saved earlier).
#[cfg(feature = "ureq")]
#[must_use = "call build() to get the client"]
pub struct AuthorizedClientBuilder {
    setup: auth_core::setup::ClientSetup,
    timeout: std::time::Duration,
    fetch_timeout: std::time::Duration,
    source: Option<Box<dyn FnOnce(crate::BlockingSourceBuilder) -> crate::BlockingSourceBuilder>>,
}

#[cfg(feature = "ureq")]
impl Default for AuthorizedClientBuilder {
    fn default() -> Self {
        Self {
            setup: auth_core::setup::ClientSetup::default(),
            timeout: std::time::Duration::from_secs(30),
            fetch_timeout: std::time::Duration::from_secs(30),
            source: None,
        }
    }
}

#[cfg(feature = "ureq")]
impl AuthorizedClientBuilder {
    auth_core::client_setup_methods!(setup);

    /// Timeout of each API request. Default 30 s.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Timeout of each token request. Default 30 s.
    pub fn fetch_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// The token source's options: a shared store
    /// ([`BlockingSourceBuilder::store`](crate::BlockingSourceBuilder::store)),
    /// a token saved earlier ([`restore`](crate::BlockingSourceBuilder::restore)), ...
    pub fn configure_source(
        mut self,
        change: impl FnOnce(crate::BlockingSourceBuilder) -> crate::BlockingSourceBuilder + 'static,
    ) -> Self {
        self.source = Some(Box::new(change));
        self
    }

    /// Validates the configuration, starts the token source (when OAuth is
    /// used) and builds the client.
    pub fn build(self) -> Result<AuthorizedClient, Error> {
        use crate::UreqTransport;
        let auth_core::setup::ClientParts { source, credentials, root_certificates, replay_copies, .. } =
            self.setup.build()?;
        // The client certificate goes to the token endpoint and to the API
        // (a certificate-bound token needs it there); TLS sends it only to
        // a server that asks for one.
        let certificate = source.as_ref().and_then(|config| config.client_certificate());
        let roots = root_certificates.as_deref();
        let api = UreqTransport::new(self.timeout, crate::transport::API_BODY_LIMIT).with_tls(certificate, roots)?;
        let tokens = UreqTransport::new(self.fetch_timeout, auth_core::config::DEFAULT_MAX_BODY_BYTES as u64)
            .with_tls(certificate, roots)?;
        let Some(config) = source else {
            return AuthorizedClient::without_source(credentials, api);
        };
        let mut builder = BlockingTokenSource::builder(config, tokens);
        if let Some(change) = self.source {
            builder = change(builder);
        }
        Ok(AuthorizedClient::new(builder.build()?, credentials, api).replay_copies(replay_copies))
    }
}
