//! Sign-in for apps that act for a user, on tokio: the authorization code
//! flow through a loopback redirect (native apps and CLIs, RFC 8252), and
//! the device flow (RFC 8628). The rules (PKCE, state, `iss`, polling) live
//! in `auth-core`; this module carries them out: it listens, waits, sends
//! through a [`TokenSource`]'s transport, and installs the tokens in that
//! source (a [`SourceGrant::SignIn`](auth_core::SourceGrant::SignIn) one),
//! which renews them with the refresh token from then on.
//!
//! Web apps call the core pieces from their own handlers instead: build an
//! [`AuthorizationRequest`] in the login handler (keep its state and
//! verifier in the session), check the callback in the callback handler,
//! then [`exchange_code`].
//!
//! ```no_run
//! # async fn run(source: auth_tower::TokenSource) -> Result<(), Box<dyn std::error::Error>> {
//! use auth_core::sign_in::authorize::AuthorizationRequest;
//! use auth_tower::sign_in::{exchange_code, Loopback, LoopbackOptions};
//!
//! let loopback = Loopback::bind(&LoopbackOptions::default()).await?;
//! let request = AuthorizationRequest::builder(source.config(), "https://id.example.com/authorize", loopback.redirect_uri())
//!     .build()?;
//! eprintln!("Open this URL to sign in: {}", request.url());
//! let code = loopback.receive(&request).await?;
//! exchange_code(&source, &request, &code).await?;
//! let token = source.token().await?; // the user's, renewed from now on
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use auth_core::secret::AuthorizationCode;
use auth_core::sign_in::authorize::{AuthorizationRequest, CallbackError};
use auth_core::sign_in::device::{
    device_authorization_request, parse_device_authorization, DeviceAuthorization, DeviceError, DevicePoll,
    DevicePoller, DeviceStatus,
};
use auth_core::{AccessToken, ConfigError};

use crate::error::AuthError;
use crate::handoff::now;
use crate::source::TokenSource;

/// How long a loopback sign-in waits for the browser by default: 5 minutes.
pub const DEFAULT_SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a sign-in did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignInError {
    /// The redirect that came back was refused (or the user said no).
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The device flow ended without tokens.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Sending to the token endpoint, or reading its answer, failed.
    #[error(transparent)]
    Token(#[from] AuthError),
    /// A URL or setting is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No callback came in time.
    #[error("no sign-in came back within {}s; run the sign-in again and finish it in the browser (or raise the timeout)", .after.as_secs())]
    Timeout {
        /// How long it waited.
        after: Duration,
    },
    /// The loopback listener could not start.
    #[error("cannot listen for the sign-in's redirect on 127.0.0.1:{port}: {message}; choose another port (or 0 for any free one)")]
    Bind {
        /// The port asked for.
        port: u16,
        /// What the system said.
        message: String,
    },
}

/// Sends the code exchange of `request` through `source`'s transport and
/// installs the tokens in `source`.
pub async fn exchange_code(
    source: &TokenSource,
    request: &AuthorizationRequest,
    code: &AuthorizationCode,
) -> Result<Arc<AccessToken>, SignInError> {
    traced("authorization_code", async {
        let sent_at = now();
        let response = source.send_token_request(request.exchange_request(source.config(), code)).await?;
        Ok(source.install_sign_in(response, sent_at).await?)
    })
    .await
}

/// Runs a sign-in by `flow` in its span, which records how it ended.
async fn traced<T>(
    flow: &'static str,
    sign_in: impl std::future::Future<Output = Result<T, SignInError>>,
) -> Result<T, SignInError> {
    let span = auth_core::telemetry::spans::sign_in(flow);
    let outcome = tracing::Instrument::instrument(sign_in, span.clone()).await;
    auth_core::telemetry::spans::ended(&span, outcome.is_ok());
    outcome
}

/// Runs the device flow (RFC 8628) at `device_url`: asks for the codes,
/// hands them to `show` (print the verification URI and the user code),
/// polls by the rules until the user approves, declines or the codes
/// expire, and installs the tokens in `source`. Time is tokio's (a paused
/// clock in tests).
pub async fn device_sign_in(
    source: &TokenSource,
    device_url: &str,
    show: impl FnOnce(&DeviceAuthorization),
) -> Result<Arc<AccessToken>, SignInError> {
    traced("device", async {
        let config = source.config();
        let url = auth_core::config::validate_endpoint(device_url, false)?;
        let answer = source.send_token_request(device_authorization_request(config, &url)).await?;
        let authorization = parse_device_authorization(config, answer.status(), answer.headers(), answer.body())
            .map_err(AuthError::Token)?;
        show(&authorization);
        let mut poller = DevicePoller::new(&authorization, now());
        loop {
            let request = match poller.poll(config, now()) {
                DevicePoll::Send(request) => request,
                DevicePoll::Wait(at) => {
                    tokio::time::sleep_until(at.into()).await;
                    continue;
                }
                DevicePoll::Finished(error) => return Err(error.into()),
                // `Approved` is answered below and returns at once; no other
                // answer lets the flow go on.
                _ => return Err(DeviceError::Expired { after: authorization.expires_in() }.into()),
            };
            let sent_at = now();
            match source.send_token_request(request).await {
                Ok(response) => match poller.handle_response(config, now(), &response) {
                    DeviceStatus::Approved => return Ok(source.install_sign_in(response, sent_at).await?),
                    DeviceStatus::Finished(error) => return Err(error.into()),
                    _ => {}
                },
                Err(AuthError::Token(error)) if error.is_transient() => poller.handle_failed(now()),
                Err(error) => return Err(error.into()),
            }
        }
    })
    .await
}

/// Opens `url` in the user's browser (the `webbrowser` crate, which
/// honours `$BROWSER`). Always print the URL too: there may be no browser.
#[cfg(feature = "browser")]
pub fn open_browser(url: &str) -> Result<(), String> {
    webbrowser::open(url).map_err(|e| e.to_string())
}

#[cfg(feature = "loopback")]
pub use loopback::{Loopback, LoopbackOptions};

#[cfg(feature = "loopback")]
mod loopback {
    use std::convert::Infallible;
    use std::time::Duration;

    use auth_core::secret::AuthorizationCode;
    use auth_core::sign_in::authorize::AuthorizationRequest;
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::{SignInError, DEFAULT_SIGN_IN_TIMEOUT};

    /// Where the loopback listener listens and how long it waits.
    #[derive(Debug, Clone)]
    #[non_exhaustive]
    pub struct LoopbackOptions {
        /// The port on 127.0.0.1; 0 (the default) for a free one (RFC 8252
        /// §7.3). A fixed port is for servers that only accept a registered
        /// redirect URI with its port.
        pub port: u16,
        /// The redirect URI's path. Default `/callback`.
        pub path: String,
        /// How long to wait for the callback. Default 5 minutes.
        pub timeout: Duration,
    }

    impl Default for LoopbackOptions {
        fn default() -> Self {
            Self { port: 0, path: "/callback".to_owned(), timeout: DEFAULT_SIGN_IN_TIMEOUT }
        }
    }

    impl LoopbackOptions {
        /// The default options with this port (0: a free one).
        pub fn port(mut self, port: u16) -> Self {
            self.port = port;
            self
        }
        /// The default options with this path (a leading `/` is added).
        pub fn path(mut self, path: impl Into<String>) -> Self {
            let path = path.into();
            self.path = if path.starts_with('/') { path } else { format!("/{path}") };
            self
        }
        /// The default options with this timeout.
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }
    }

    /// A listener on `127.0.0.1` for one sign-in's redirect.
    #[derive(Debug)]
    pub struct Loopback {
        listener: TcpListener,
        redirect_uri: String,
        path: String,
        timeout: Duration,
    }

    /// Connections served at once; a newer one closes the oldest (a local
    /// process opening many cannot exhaust the descriptors, and a browser,
    /// which sends its request at once, is served before it is the oldest).
    const MAX_CONNECTIONS: usize = 32;
    /// How long one connection may take to send its request and get its
    /// page: the browser sends at once; an idle one is closed.
    const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
    /// The pause after a failed `accept` (out of descriptors, say), so
    /// that the loop does not spin.
    const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

    const DONE_PAGE: &str = "<!doctype html><title>Signed in</title><h1>Signed in</h1><p>You can close this tab and return to the terminal.</p>";

    fn page(status: StatusCode, body: String) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/html; charset=utf-8"));
        headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
        headers.insert(http::header::REFERRER_POLICY, http::HeaderValue::from_static("no-referrer"));
        response
    }

    /// Escapes text for an HTML page.
    fn escape(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    }

    impl Loopback {
        /// Listens on `127.0.0.1` (never on another interface) at the
        /// options' port.
        pub async fn bind(options: &LoopbackOptions) -> Result<Self, SignInError> {
            let bind_error = |e: std::io::Error| SignInError::Bind { port: options.port, message: e.to_string() };
            let listener = TcpListener::bind(("127.0.0.1", options.port)).await.map_err(bind_error)?;
            let port = listener.local_addr().map_err(bind_error)?.port();
            Ok(Self {
                listener,
                redirect_uri: format!("http://127.0.0.1:{port}{}", options.path),
                path: options.path.clone(),
                timeout: options.timeout,
            })
        }

        /// `http://127.0.0.1:PORT/PATH`: the redirect URI of the
        /// authorization request.
        pub fn redirect_uri(&self) -> &str {
            &self.redirect_uri
        }

        /// Serves exactly one callback at the path (other paths get 404
        /// and are not counted), checks it against `request`, answers the
        /// browser with a short page that says to return to the terminal,
        /// and returns the code. Gives up after the timeout.
        ///
        /// Only a callback carrying this sign-in's `state` ends it
        /// ([`CallbackError::ends_sign_in`](auth_core::sign_in::authorize::CallbackError::ends_sign_in)):
        /// any other (no state, another state, a malformed query: any local
        /// process or page can send one) gets an error page and the
        /// listener keeps waiting. At most 32 connections are served at
        /// once (a newer one closes the oldest), each for at most 5 s, and a
        /// failed `accept` pauses the loop instead of spinning.
        pub async fn receive(self, request: &AuthorizationRequest) -> Result<AuthorizationCode, SignInError> {
            let (sender, mut outcome) = mpsc::channel(1);
            let deadline = tokio::time::sleep(self.timeout);
            tokio::pin!(deadline);
            let mut connections = tokio::task::JoinSet::new();
            let expected = std::sync::Arc::new(request.clone());
            let mut served: std::collections::VecDeque<tokio::task::AbortHandle> = std::collections::VecDeque::new();
            let result = loop {
                tokio::select! {
                    accepted = self.listener.accept() => {
                        let stream = match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => {
                                tokio::time::sleep(ACCEPT_BACKOFF).await;
                                continue;
                            }
                        };
                        // Past the cap the oldest connection is closed.
                        served.retain(|handle| !handle.is_finished());
                        if served.len() >= MAX_CONNECTIONS {
                            if let Some(oldest) = served.pop_front() {
                                oldest.abort();
                            }
                        }
                        let sender = sender.clone();
                        let path = self.path.clone();
                        let expected = std::sync::Arc::clone(&expected);
                        let handle = connections.spawn(async move {
                            let service = hyper::service::service_fn(move |incoming: Request<hyper::body::Incoming>| {
                                let answer = if incoming.uri().path() == path && incoming.method() == http::Method::GET {
                                    let query = incoming.uri().query().unwrap_or("");
                                    let result = expected.handle_callback(query);
                                    let page_body = match &result {
                                        Ok(_) => DONE_PAGE.to_owned(),
                                        Err(error) => format!(
                                            "<!doctype html><title>Sign-in failed</title><h1>Sign-in failed</h1><p>{}</p><p>Return to the terminal.</p>",
                                            escape(&error.to_string())
                                        ),
                                    };
                                    let status = if result.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
                                    // Not this sign-in's callback: answered, not counted.
                                    if result.as_ref().err().is_none_or(|error| error.ends_sign_in()) {
                                        let _ = sender.try_send(result);
                                    }
                                    page(status, page_body)
                                } else {
                                    page(StatusCode::NOT_FOUND, "<!doctype html><title>Not found</title>".to_owned())
                                };
                                async move { Ok::<_, Infallible>(answer) }
                            });
                            let serving = hyper::server::conn::http1::Builder::new()
                                .keep_alive(false)
                                .serve_connection(TokioIo::new(stream), service);
                            let _ = tokio::time::timeout(CONNECTION_DEADLINE, serving).await;
                        });
                        served.push_back(handle);
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                    Some(result) = outcome.recv() => break result.map_err(SignInError::from),
                    () = &mut deadline => break Err(SignInError::Timeout { after: self.timeout }),
                }
            };
            // Let the page reach the browser before the listener goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while connections.join_next().await.is_some() {}
            })
            .await;
            result
        }
    }
}
