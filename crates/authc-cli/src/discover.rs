//! Filling the endpoints from the issuer's discovery document.

use auth_core::sign_in::discovery::ServerMetadata;

use crate::failure::Failure;
use crate::settings::Settings;

impl Settings {
    /// Fills the endpoints from the issuer's discovery document (RFC 8414,
    /// then OpenID Connect Discovery): the token, authorization, device and
    /// revocation endpoints that were not given, and the client
    /// authentication method when none was. The document's issuer must
    /// equal the configured one.
    pub async fn discover(&mut self) -> Result<(), Failure> {
        let Some(issuer) = self.issuer.clone() else { return Ok(()) };
        let metadata = self.server_metadata(&issuer).await?;
        self.apply(&metadata);
        Ok(())
    }

    /// The discovery document of `issuer`, checked.
    pub async fn server_metadata(&self, issuer: &str) -> Result<ServerMetadata, Failure> {
        let urls = auth_core::sign_in::discovery::discovery_urls(issuer)
            .map_err(|e| Failure::usage(format!("--issuer: {e}")))?;
        let client = self.discovery_client()?;
        let mut last = None;
        for url in &urls {
            let answer = match client.get(url).header("accept", "application/json").send().await {
                Ok(answer) if answer.status().is_success() => answer,
                Ok(answer) => {
                    last = Some(Failure::network(format!("discovery at {url} answered {}", answer.status())));
                    continue;
                }
                Err(e) => {
                    last = Some(Failure::network(format!("discovery at {url} failed: {}", e.without_url())));
                    continue;
                }
            };
            let body = crate::capped::body(answer, "the discovery document").await?;
            return auth_core::sign_in::discovery::parse_metadata(issuer, &body, self.allow_insecure_http)
                .map_err(|e| Failure::usage(format!("{e} ({url})")));
        }
        Err(last.unwrap_or_else(|| Failure::network("no discovery document was found")))
    }

    /// The HTTP client of discovery: no redirect, 30 s, the TLS settings.
    pub fn discovery_client(&self) -> Result<reqwest::Client, Failure> {
        self.http_client(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30)),
        )
    }

    /// Takes the endpoints this document names that were not given.
    pub fn apply(&mut self, metadata: &ServerMetadata) {
        if self.auth_method.is_none() {
            self.auth_method = Some(metadata.client_auth_for(
                self.client_secret.is_some(),
                self.signing_key.is_some(),
                self.client_certificate.is_some(),
            ));
        }
        // With a TLS client certificate, the RFC 8705 aliases when named.
        let text = |uri: &http::Uri| uri.to_string();
        let mutual_tls = self.client_certificate.is_some();
        self.token_url.get_or_insert_with(|| text(metadata.token_endpoint_for(mutual_tls)));
        if self.authorize_url.is_none() {
            self.authorize_url = metadata.authorization_endpoint().map(text);
        }
        if self.device_url.is_none() {
            self.device_url = metadata.device_authorization_endpoint_for(mutual_tls).map(text);
        }
        if self.revocation_url.is_none() {
            self.revocation_url = metadata.revocation_endpoint_for(mutual_tls).map(text);
        }
        self.par_endpoint = metadata.par_endpoint().map(text);
        self.requires_par = metadata.requires_par();
        self.issuer_param_required = metadata.iss_parameter_supported();
    }
}
