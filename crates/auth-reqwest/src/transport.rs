//! The token endpoint transport on reqwest.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::ACCEPT;
use http::HeaderValue;
use tower::Service;

/// Default timeout of one token request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends the core's token requests with reqwest.
///
/// Built by [`ReqwestTransport::new`], its client never follows redirects
/// (a token request, with the client secret in it, is never re-sent to
/// another place), has a timeout, and asks for JSON. The response body is
/// streamed to the [`TokenSource`](auth_tower::TokenSource), which stops
/// reading at the configuration's size cap (64 KiB by default).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// A transport with its own client: no redirects, a 30 s timeout.
    pub fn new() -> Result<Self, reqwest::Error> {
        Self::with_timeout(DEFAULT_TIMEOUT)
    }

    /// A transport with its own client: no redirects, the given timeout.
    pub fn with_timeout(timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(timeout).build()?;
        Ok(Self { client })
    }

    /// A transport over a client of yours (proxy settings, custom roots...).
    /// Build it with `redirect(reqwest::redirect::Policy::none())`: a token
    /// request must never follow a redirect.
    pub fn from_client(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Service<http::Request<Vec<u8>>> for ReqwestTransport {
    type Response = http::Response<reqwest::Body>;
    type Error = reqwest::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Vec<u8>>) -> Self::Future {
        request.headers_mut().entry(ACCEPT).or_insert(HeaderValue::from_static("application/json"));
        let client = self.client.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            Ok(http::Response::from(response))
        })
    }
}
