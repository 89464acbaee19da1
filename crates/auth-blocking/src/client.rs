//! Sending API requests with credentials and the single 401 replay.

use std::sync::Arc;

use auth_core::{ApplyError, Credentials};
use http::{Request, Response, StatusCode};

use crate::error::Error;
use crate::source::BlockingTokenSource;
use crate::transport::BlockingTransport;

/// Sends API requests with the composed credentials; on a 401 to a request
/// that carried a token, invalidates it and replays the request once with
/// the new token (bodies are `Vec<u8>`, so every request can be replayed).
///
/// Credentials go only to the origins they are limited to; use a transport
/// that does not follow redirects ([`UreqTransport::for_api`](crate::UreqTransport::for_api)
/// does not), so that they never follow a redirect elsewhere.
#[derive(Clone)]
pub struct AuthorizedClient {
    source: Option<BlockingTokenSource>,
    credentials: Arc<Credentials>,
    transport: Arc<dyn BlockingTransport>,
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
    /// A client for credentials that include a bearer token from `source`.
    pub fn new(source: BlockingTokenSource, credentials: Credentials, transport: impl BlockingTransport) -> Self {
        Self { source: Some(source), credentials: Arc::new(credentials), transport: Arc::new(transport) }
    }

    /// A client for static credentials (API keys, Basic, a static bearer).
    pub fn without_source(credentials: Credentials, transport: impl BlockingTransport) -> Result<Self, Error> {
        if credentials.needs_token() {
            return Err(Error::Apply(ApplyError::MissingToken));
        }
        Ok(Self { source: None, credentials: Arc::new(credentials), transport: Arc::new(transport) })
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
        let mut replay = copy(&request);
        self.credentials.apply_allowed(&mut request, Some(&token))?;
        let response = self.transport.send(request)?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let renewed = match source.reject(token.generation()) {
            Ok(Some(renewed)) => renewed,
            // The loop guard held the renewal back: a fresh token was rejected already.
            Ok(None) => return Ok(rejected_after_renewal(response)),
            // No new token could be had: the caller gets the 401.
            Err(_) => return Ok(response),
        };
        self.credentials.apply_allowed(&mut replay, Some(&renewed))?;
        let replayed = self.transport.send(replay)?;
        if replayed.status() == StatusCode::UNAUTHORIZED {
            // Never replayed twice; the lifecycle decides whether this token is dropped.
            source.invalidate(renewed.generation());
            return Ok(rejected_after_renewal(replayed));
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
