//! Sending API requests with credentials, and again after a 401.

use std::sync::Arc;
use std::time::SystemTime;

use auth_core::publish::replay::{self, Attempt, ReplayCopies, Sent, Verdict};
use auth_core::resource::step_up;
use auth_core::{ApplyError, Credentials, Generation};
use http::{Request, Response};

use crate::error::Error;
use crate::source::BlockingTokenSource;
use crate::transport::BlockingTransport;

/// Sends API requests with the composed credentials; on a 401 to a request
/// that carried a token, invalidates it and sends the request again with
/// the new token, from a copy made before the send, as providers tell
/// their clients to do (the rules: [`auth_core::publish::replay`]).
///
/// Every request is copied by default (its body is a buffer). With
/// [`AuthorizedClient::replay_copies`] and
/// [`ReplayCopies::AtRisk`] only requests whose token is at risk are: a
/// settled token revoked in the middle of its life then gives its 401 to
/// the caller, and the next request carries the new token.
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

    /// Which requests keep a copy of themselves to send again after a
    /// 401: all ([`ReplayCopies::Always`], the default), or only those
    /// whose token is at risk ([`ReplayCopies::AtRisk`]: a settled token's
    /// 401 reaches the caller).
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

    /// How many requests went out without credentials because their origin
    /// is not the API's (`api_origin`); the first per origin is also
    /// logged at warn.
    pub fn withheld_requests(&self) -> u64 {
        self.credentials.withheld_requests()
    }

    /// Sends `request` with the credentials; after a 401 it is sent again
    /// with a renewed token (and once more after a DPoP nonce demand), as
    /// [`auth_core::publish::replay`] decides.
    pub fn send(&self, mut request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        if !self.credentials.applies_to(request.uri()) {
            // Sent without credentials: counted, and said once per origin.
            let origin = Credentials::origin_of(request.uri());
            if let Some(message) = self.credentials.note_withheld(&origin) {
                tracing::warn!(target: "auth_blocking", "{message}");
            }
            return Ok(self.transport.send(request)?);
        }
        let source = match &self.source {
            Some(source) if self.credentials.needs_token() => source,
            _ => {
                self.credentials.apply_allowed(&mut request, None)?;
                return Ok(self.transport.send(request)?);
            }
        };
        let mut token = source.token()?;
        let copies = self.copies.keep(source.at_risk(&token));
        let mut attempt = Attempt::default();
        loop {
            let spare = (copies && attempt.may_send_again()).then(|| copy(&request));
            let uri = token.dpop().map(|_| request.uri().clone());
            let proof = self.credentials.apply_allowed_at(&mut request, Some(&token), SystemTime::now())?;
            let response = self.transport.send(request)?;
            if let (Some(dpop), Some(uri)) = (token.dpop(), &uri) {
                dpop.observe(uri, response.headers());
            }
            let generation = token.generation();
            let accepted = attempt.renewed() && source.accepted(generation);
            let sent = Sent { attempt, copy: spare.is_some(), proof: proof.as_ref(), accepted };
            let verdict = replay::judge(&sent, response.status(), response.headers());
            source.judged(attempt, verdict);
            match verdict {
                Verdict::Accepted => {
                    source.accept(generation);
                    return Ok(marked(response, source, generation));
                }
                Verdict::GiveBack => return Ok(response),
                Verdict::StepUp => return Ok(marked(response, source, generation)),
                Verdict::Invalidate => {
                    source.invalidate(generation);
                    return Ok(response);
                }
                Verdict::RejectedAfterRenewal => {
                    source.invalidate(generation);
                    return Ok(rejected_after_renewal(response));
                }
                Verdict::RetryWithNonce => {}
                Verdict::Renew => match source.reject(generation) {
                    Ok(Some(renewed)) => token = renewed,
                    // The loop guard held the renewal back: a new token was refused already.
                    Ok(None) => return Ok(rejected_after_renewal(response)),
                    // No new token could be had: the caller gets the 401.
                    Err(_) => return Ok(response),
                },
            }
            attempt = attempt.after(verdict);
            match spare {
                Some(spare) => request = spare,
                // Unreachable: a verdict sends again only with a copy at hand.
                None => return Ok(response),
            }
        }
    }
}

/// A 401 or 403 marked with the step-up it asks of `source`'s tokens (more
/// scopes, a stronger sign-in), if it asks for one.
fn marked(mut response: Response<Vec<u8>>, source: &BlockingTokenSource, generation: Generation) -> Response<Vec<u8>> {
    let scopes = source.config().scopes();
    if let Some(asked) = step_up::step_up(response.status(), response.headers(), scopes) {
        source.step_up(&asked, generation);
        response.extensions_mut().insert(asked);
    }
    response
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
    source: Vec<Box<dyn FnOnce(crate::source::BlockingSourceBuilder) -> crate::source::BlockingSourceBuilder>>,
}

#[cfg(feature = "ureq")]
impl Default for AuthorizedClientBuilder {
    fn default() -> Self {
        Self {
            setup: auth_core::setup::ClientSetup::default(),
            timeout: std::time::Duration::from_secs(30),
            fetch_timeout: std::time::Duration::from_secs(30),
            source: Vec::new(),
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
    /// ([`BlockingSourceBuilder::store`](crate::source::BlockingSourceBuilder::store)),
    /// a token saved earlier ([`restore`](crate::source::BlockingSourceBuilder::restore)), ...
    pub fn configure_source(
        mut self,
        change: impl FnOnce(crate::source::BlockingSourceBuilder) -> crate::source::BlockingSourceBuilder + 'static,
    ) -> Self {
        self.source.push(Box::new(change));
        self
    }

    /// Shares tokens with every process and replica that uses the same
    /// store and configuration: one fetch per token lifetime for the whole
    /// fleet (a `FileStore` or `RedisStore` of `auth-store`, with its
    /// `blocking` feature; `StoreConfig::default()` for the usual settings).
    pub fn store(self, store: impl crate::store::BlockingTokenStore, config: auth_core::store::StoreConfig) -> Self {
        self.configure_source(move |source| source.store(store, config))
    }

    /// Validates the configuration, starts the token source (when OAuth is
    /// used) and builds the client.
    pub fn build(self) -> Result<AuthorizedClient, Error> {
        use crate::transport::UreqTransport;
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
        for change in self.source {
            builder = change(builder);
        }
        Ok(AuthorizedClient::new(builder.build()?, credentials, api).replay_copies(replay_copies))
    }
}
