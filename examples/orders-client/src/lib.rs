//! A client for an orders API that wants an API key and an OAuth 2.0
//! token on every call: the code a user of the library writes. Its tests
//! (`tests/orders.rs`) run it against the embedded provider.

use auth_reqwest::{AuthClient, ClientAuth, ForResourceError, LoopbackOptions};

/// Where the API is and who we are.
pub struct Settings {
    /// The provider's token endpoint.
    pub token_url: String,
    /// The API's base URL (`https://api.example.com/api`).
    pub api_base: String,
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: String,
    /// The API's subscription key, sent as `X-API-Key`.
    pub api_key: String,
}

/// The orders API, for this service itself (client credentials) or for a
/// user who signed in.
pub struct Orders {
    client: AuthClient,
    api_base: String,
}

/// What went wrong, for the caller.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

impl Orders {
    /// The service's own client: one token shared by every call, renewed
    /// before it expires and after a 401.
    pub fn new(settings: &Settings) -> Result<Self, Error> {
        // Credentials go to the API's origin only.
        let origin = auth_reqwest::reqwest::Url::parse(&settings.api_base)?.origin().ascii_serialization();
        let client = AuthClient::builder()
            .client_credentials(settings.token_url.clone(), settings.client_id.clone())
            .client_secret(settings.client_secret.clone())
            .client_auth(ClientAuth::Basic)
            .api_key_header("X-API-Key", settings.api_key.clone())
            .api_origin(origin)
            .build()?;
        Ok(Self { client, api_base: settings.api_base.clone() })
    }

    /// A user's client: the API's metadata names where to sign in; the
    /// user signs in through the browser `open` is given the URL for.
    pub async fn for_user(resource: &str, open: impl FnOnce(&str) + Send) -> Result<Self, ForResourceError> {
        let client = AuthClient::builder()
            .for_resource(resource)
            .scope("read")
            .app_name("orders-client")
            .sign_in(LoopbackOptions::default(), open)
            .await?;
        Ok(Self { client, api_base: resource.trim_end_matches('/').to_owned() })
    }

    /// `GET {api_base}/orders`.
    pub async fn list(&self) -> Result<serde_json::Value, Error> {
        let answer = self.client.get(format!("{}/orders", self.api_base)).send().await?.error_for_status()?;
        Ok(answer.json().await?)
    }
}
