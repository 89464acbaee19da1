//! Helpers shared by the integration tests: a hyper-util client as the
//! token transport and API client, and scripted in-process token endpoints.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::SourceConfig;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tower::util::BoxCloneSyncService;
use tower::{service_fn, ServiceBuilder};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A plain HTTP/1 client (mockito listens on 127.0.0.1 only).
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The hyper-util client as a token endpoint transport.
pub fn transport(
    client: HttpClient,
) -> impl tower::Service<
    Request<Vec<u8>>,
    Response = Response<hyper::body::Incoming>,
    Error = hyper_util::client::legacy::Error,
    Future: Send,
> + Clone
       + Send
       + 'static {
    ServiceBuilder::new()
        .map_request(|request: Request<Vec<u8>>| request.map(|body| Full::new(Bytes::from(body))))
        .service(client)
}

pub fn config(token_url: &str) -> SourceConfig {
    SourceConfig::builder(token_url, "client-id").client_secret("very-secret-client-secret").build().unwrap()
}

/// One scripted answer of an in-process token endpoint.
#[derive(Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u64>,
    pub latency: Duration,
}

impl Scripted {
    pub fn token(value: &str, expires_in: u64) -> Self {
        Self {
            status: 200,
            body: format!(r#"{{"access_token":"{value}","token_type":"Bearer","expires_in":{expires_in}}}"#),
            retry_after: None,
            latency: Duration::ZERO,
        }
    }
    pub fn status(status: u16, body: &str) -> Self {
        Self { status, body: body.to_owned(), retry_after: None, latency: Duration::ZERO }
    }
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
}

/// An in-process token endpoint answering from a script, on tokio's
/// clock (so tests can pause time), counting the requests it gets.
#[derive(Clone)]
pub struct ScriptedEndpoint {
    script: Arc<Mutex<VecDeque<Scripted>>>,
    pub calls: Arc<AtomicUsize>,
    /// When the script runs out, this is answered.
    fallback: Scripted,
}

impl ScriptedEndpoint {
    pub fn new(script: Vec<Scripted>, fallback: Scripted) -> Self {
        Self { script: Arc::new(Mutex::new(script.into())), calls: Arc::new(AtomicUsize::new(0)), fallback }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn push(&self, answer: Scripted) {
        self.script.lock().unwrap().push_back(answer);
    }

    pub fn service(&self) -> BoxCloneSyncService<Request<Vec<u8>>, Response<String>, Infallible> {
        let endpoint = self.clone();
        BoxCloneSyncService::new(service_fn(move |_request: Request<Vec<u8>>| {
            let endpoint = endpoint.clone();
            async move {
                endpoint.calls.fetch_add(1, Ordering::SeqCst);
                let answer = endpoint.script.lock().unwrap().pop_front().unwrap_or_else(|| endpoint.fallback.clone());
                tokio::time::sleep(answer.latency).await;
                let mut response = Response::builder().status(answer.status).header("content-type", "application/json");
                if let Some(seconds) = answer.retry_after {
                    response = response.header("retry-after", seconds.to_string());
                }
                Ok(response.body(answer.body).unwrap())
            }
        }))
    }
}

/// The bearer layer for tests whose requests have a relative URI: the
/// credentials go to any origin (an explicit opt-in).
pub fn any_origin_bearer(source: &auth_tower::TokenSource) -> auth_tower::AuthLayer {
    let credentials = auth_core::Credentials::builder().bearer_from_source().any_origin().build().unwrap();
    auth_tower::AuthLayer::new(source.clone(), credentials)
}
