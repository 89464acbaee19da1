//! The running provider: its addresses, the switches a test flips while it runs, and what it saw.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;

use crate::browser::Browser;
use crate::config::ProviderConfig;
use crate::random::random_token;
use crate::records::{ApiRequest, Fault, ProviderStats, TokenRequest};
use crate::routes::route;
use crate::state::{lock, DeviceState, Faults, Inner, Issued, Shared};
use crate::tls;
use crate::tls::CertificatePem;

/// A running provider. Dropping it stops the server.
pub struct Provider {
    pub(crate) url: String,
    pub(crate) mtls: Option<(String, Arc<tls::Authority>)>,
    pub(crate) shared: Shared,
    pub(crate) stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
    /// The provider thread's runtime, where its browsers' requests run.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("url", &self.url).finish_non_exhaustive()
    }
}

impl Provider {
    /// Starts the provider on `127.0.0.1` on a free port.
    pub fn start(config: ProviderConfig) -> std::io::Result<Self> {
        Self::start_on_port(config, 0)
    }

    /// Starts the provider on `127.0.0.1:port` (`0`: a free port). Fails
    /// when the port is taken.
    pub fn start_on_port(config: ProviderConfig, port: u16) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let url = format!("http://{}", listener.local_addr()?);
        let mtls = if config.mtls {
            let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
            listener.set_nonblocking(true)?;
            let url = format!("https://{}", listener.local_addr()?);
            let authority = tls::Authority::new();
            let server = authority.server_config()?;
            Some((listener, url, Arc::new(authority), server))
        } else {
            None
        };
        let shared: Shared = Arc::new(Mutex::new(Inner {
            config,
            tokens: HashMap::new(),
            codes: HashMap::new(),
            devices: HashMap::new(),
            url: url.clone(),
            faults: Faults::default(),
            requests: Vec::new(),
            api_requests: Vec::new(),
            stats: ProviderStats::default(),
            seen_assertions: HashSet::new(),
            last_refusal: None,
            dpop_nonce: random_token("nonce-"),
            api_nonce: random_token("api-nonce-"),
            mtls_url: mtls.as_ref().map(|(_, url, _, _)| url.clone()),
            issued_certificates: HashMap::new(),
            pushed: HashMap::new(),
        }));
        let app = Router::new().fallback(route).with_state(Arc::clone(&shared));
        let (mtls_serve, mtls) = match mtls {
            Some((listener, url, authority, server)) => {
                (Some((listener, server, app.clone(), url.clone())), Some((url, authority)))
            }
            None => (None, None),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let thread = std::thread::Builder::new().name("auth-testkit".to_owned()).spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
                let mtls = async move {
                    match mtls_serve {
                        Some((listener, server, app, url)) => match tokio::net::TcpListener::from_std(listener) {
                            Ok(listener) => tls::serve(listener, server, app, url).await,
                            Err(_) => std::future::pending().await,
                        },
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = mtls => {}
                    _ = stopped => {}
                }
            });
        })?;
        Ok(Self { url, mtls, shared, stop: Some(stop), thread: Some(thread), runtime: handle })
    }

    /// The mutual TLS listener's `https://127.0.0.1:<port>`, when
    /// [`ProviderConfig::mtls`] is on: the same endpoints and API as
    /// [`Provider::url`] (`/oauth/token`, `/api/...`).
    pub fn mtls_url(&self) -> Option<&str> {
        self.mtls.as_ref().map(|(url, _)| url.as_str())
    }

    /// The CA certificate (PEM) that signed the mutual TLS listener's
    /// certificate and the client certificates it issues: the root a
    /// client must trust. `None` without [`ProviderConfig::mtls`].
    pub fn ca_certificate(&self) -> Option<String> {
        self.mtls.as_ref().map(|(_, authority)| authority.ca_pem())
    }

    /// A client certificate and key the provider's CA issues for
    /// `subject`, for a [`ProviderConfig::tls_client`] registered with that
    /// subject.
    ///
    /// # Panics
    /// Without [`ProviderConfig::mtls`] (a mistake in the test's set-up).
    pub fn issue_client_certificate(&self, subject: &str) -> CertificatePem {
        let (_, authority) = self.mtls.as_ref().expect("issue_client_certificate needs ProviderConfig::mtls(true)");
        let issued = authority.issue(subject, false);
        let thumbprint = tls::thumbprint_of_pem(&issued.certificate).expect("an issued certificate");
        lock(&self.shared).issued_certificates.insert(thumbprint, subject.to_owned());
        issued
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }
    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.url)
    }
    /// The RFC 7009 revocation endpoint.
    pub fn revocation_url(&self) -> String {
        format!("{}/oauth/revoke", self.url)
    }
    /// The authorization endpoint (authorization code flow).
    pub fn authorization_url(&self) -> String {
        format!("{}/oauth/authorize", self.url)
    }
    /// The RFC 8628 device authorization endpoint.
    pub fn device_url(&self) -> String {
        format!("{}/oauth/device", self.url)
    }
    /// The issuer its discovery documents name (its URL unless configured).
    pub fn issuer(&self) -> String {
        lock(&self.shared).issuer()
    }

    /// The user codes of device sign-ins waiting for the user.
    pub fn pending_user_codes(&self) -> Vec<String> {
        let inner = lock(&self.shared);
        inner.devices.values().filter(|d| d.state == DeviceState::Pending).map(|d| d.user_code.clone()).collect()
    }

    /// The user approves the device sign-in with `user_code` (as the
    /// configured test user). `false` when no such sign-in waits.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.settle_device(user_code, DeviceState::Approved)
    }

    /// The user declines the device sign-in with `user_code`.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.settle_device(user_code, DeviceState::Denied)
    }

    pub(crate) fn settle_device(&self, user_code: &str, state: DeviceState) -> bool {
        let mut inner = lock(&self.shared);
        match inner.devices.values_mut().find(|d| d.user_code == user_code && d.state == DeviceState::Pending) {
            Some(device) => {
                device.state = state;
                true
            }
            None => false,
        }
    }

    /// The next `count` polls of each device sign-in are answered
    /// `slow_down`.
    pub fn slow_down_device_polls(&self, count: u32) {
        for device in lock(&self.shared).devices.values_mut() {
            device.slow_downs = count;
        }
    }

    /// Every device code expires now (polls get `expired_token`).
    pub fn expire_device_codes(&self) {
        let now = Instant::now();
        for device in lock(&self.shared).devices.values_mut() {
            device.expires_at = now;
        }
    }

    /// The API's resource identifier (RFC 8707, RFC 9728): `<url>/api`.
    pub fn resource(&self) -> String {
        format!("{}/api", self.url)
    }

    /// The well-known URL of the API's protected resource metadata (RFC 9728
    /// §3.1), served with [`ProviderConfig::protected_resource`](crate::ProviderConfig::protected_resource).
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/api", self.url)
    }

    /// A URL of the protected API (`path` without the `/api` prefix).
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/api/{}", self.url, path.trim_start_matches('/'))
    }
    /// A URL of the Basic-protected legacy API.
    pub fn legacy_url(&self, path: &str) -> String {
        format!("{}/legacy/{}", self.url, path.trim_start_matches('/'))
    }

    /// Answers the next `count` token requests with `fault`.
    pub fn fail_next_token_requests(&self, count: u32, fault: Fault) {
        let mut inner = lock(&self.shared);
        inner.faults.remaining = count;
        inner.faults.fault = Some(fault);
    }

    /// Delays every token response by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared).faults.latency = latency;
    }

    /// Revokes every token issued so far, refresh tokens included (the API
    /// answers 401 to them; a refresh is refused with `invalid_grant`).
    pub fn revoke_all(&self) {
        for issued in lock(&self.shared).tokens.values_mut() {
            issued.revoked = true;
        }
    }

    /// Revokes every access token issued so far and no refresh token (as
    /// a provider does when it rotates its signing keys): the API answers
    /// 401, and a refresh gets a new access token.
    pub fn revoke_access_tokens(&self) {
        for issued in lock(&self.shared).tokens.values_mut().filter(|issued| !issued.refresh) {
            issued.revoked = true;
        }
    }

    /// Starts demanding a new DPoP nonce (as a server does every so often).
    pub fn rotate_dpop_nonce(&self) -> String {
        let nonce = random_token("nonce-");
        lock(&self.shared).dpop_nonce = nonce.clone();
        nonce
    }

    /// Changes the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        lock(&self.shared).config.token_lifetime = lifetime;
    }

    /// An access token the protected API accepts, issued outside the
    /// token endpoint: a token the user already holds (a JWT handed over by
    /// another system, say), for `client_id`, valid for `lifetime`. Not
    /// counted as a token request.
    pub fn issue_token(&self, client_id: &str, lifetime: Duration) -> String {
        let value = random_token("at_");
        let issued = Issued {
            client_id: client_id.to_owned(),
            user: None,
            scope: None,
            expires_at: Some(Instant::now() + lifetime),
            refresh: false,
            revoked: false,
            jkt: None,
            x5t: None,
            resource: None,
            acr: None,
        };
        lock(&self.shared).keep_token(value.clone(), issued);
        value
    }

    /// A new scripted browser (no cookies yet) that plays the user of a
    /// sign-in: it opens an app's authorization URL, this provider signs
    /// the test user in, and it follows the redirect back to the app.
    pub fn browser(&self) -> Browser {
        Browser::new(self.runtime.clone())
    }

    /// Every token request so far (the newest 100,000).
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        lock(&self.shared).requests.clone()
    }

    /// Every request to the protected and legacy APIs so far (the newest
    /// 100,000), in order:
    /// which credentials came (never their values) and the status answered.
    pub fn api_requests(&self) -> Vec<ApiRequest> {
        lock(&self.shared).api_requests.clone()
    }

    /// Counters.
    pub fn stats(&self) -> ProviderStats {
        lock(&self.shared).stats
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_access_tokens_are_let_go_and_live_ones_kept() {
        let provider = Provider::start(ProviderConfig::new().client("app", "secret")).unwrap();
        let live = provider.issue_token("app", Duration::from_secs(3600));
        for _ in 0..25_000 {
            provider.issue_token("app", Duration::ZERO);
        }
        let inner = lock(&provider.shared);
        assert!(inner.tokens.len() < 10_001, "{} tokens kept", inner.tokens.len());
        assert!(inner.tokens.get(&live).is_some_and(Issued::is_live_access_token));
    }
}
