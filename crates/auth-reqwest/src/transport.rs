//! The token endpoint transport on reqwest.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use auth_core::TokenError;
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
    /// A failure below HTTP, already classified: reqwest's own timeout is
    /// a timeout (`TokenError::Transport { timeout: true, .. }`), anything
    /// else is a transport failure. The message holds no URL.
    type Error = TokenError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Vec<u8>>) -> Self::Future {
        request.headers_mut().entry(ACCEPT).or_insert(HeaderValue::from_static("application/json"));
        let client = self.client.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).map_err(token_error)?;
            let response = client.execute(request).await.map_err(token_error)?;
            Ok(http::Response::from(response))
        })
    }
}

/// A reqwest error as a token error: timeouts recognised, no URL.
pub(crate) fn token_error(error: reqwest::Error) -> TokenError {
    let timeout = error.is_timeout();
    TokenError::from_error(&error.without_url(), timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reqwest_timeouts_are_timeouts() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", silent.local_addr().unwrap());
        let mut transport = ReqwestTransport::with_timeout(Duration::from_millis(200)).unwrap();
        let request = http::Request::post(&url).body(b"grant_type=client_credentials".to_vec()).unwrap();
        let error = transport.call(request).await.unwrap_err();
        assert!(matches!(error, TokenError::Transport { timeout: true, .. }), "{error:?}");
        assert!(error.to_string().contains("timed out"), "{error}");
        assert!(!error.to_string().contains("unreachable"), "{error}");
        drop(silent);
    }
}
