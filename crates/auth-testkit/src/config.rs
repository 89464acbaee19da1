//! What the provider accepts and issues, set before it starts.

use std::time::Duration;

use crate::jose;
use crate::tls;

/// What the provider accepts and issues.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub(crate) clients: Vec<(String, Option<String>)>,
    pub(crate) token_lifetime: Duration,
    pub(crate) refresh_tokens: bool,
    pub(crate) api_key: Option<(String, Option<String>, String)>,
    pub(crate) api_requires_token: bool,
    pub(crate) basic_login: Option<(String, String)>,
    pub(crate) user: String,
    pub(crate) deny_sign_in: bool,
    pub(crate) rotate_refresh_tokens: bool,
    pub(crate) send_iss: bool,
    pub(crate) issuer: Option<String>,
    pub(crate) device_code_lifetime: Duration,
    pub(crate) device_interval: u64,
    /// `private_key_jwt` clients and their public keys.
    pub(crate) key_clients: Vec<(String, jose::PublicKey)>,
    pub(crate) assertion_audience: AssertionAudience,
    /// Issuers trusted for the JWT bearer grant.
    pub(crate) bearer_issuers: Vec<(String, jose::PublicKey)>,
    /// Issuers of workload identity tokens, trusted for federated clients
    /// and token exchange subjects.
    pub(crate) workload_issuers: Vec<(String, jose::PublicKey)>,
    /// Clients that authenticate with a workload token for this subject.
    pub(crate) federated_clients: Vec<(String, String)>,
    /// The RFC 8693 token exchange grant is accepted.
    pub(crate) token_exchange: bool,
    /// DPoP proofs must carry the server's nonce.
    pub(crate) dpop_nonces: bool,
    /// The API keeps a DPoP nonce of its own (the token endpoint another).
    pub(crate) api_dpop_nonce: bool,
    /// A new access token revokes the client's earlier ones.
    pub(crate) one_active_token: bool,
    /// Token requests without a DPoP proof are refused.
    pub(crate) require_dpop: bool,
    /// A second listener, HTTPS, that asks for client certificates.
    pub(crate) mtls: bool,
    /// `tls_client_auth` clients and the subject of their certificate.
    pub(crate) tls_clients: Vec<(String, String)>,
    /// `self_signed_tls_client_auth` clients and their certificate's thumbprint.
    pub(crate) self_signed_clients: Vec<(String, String)>,
    /// The API describes itself (RFC 9728) and takes only tokens issued
    /// for it (RFC 8707).
    pub(crate) protected_resource: bool,
    /// The authorization server the API's metadata names instead of this
    /// provider.
    pub(crate) resource_authorization_server: Option<String>,
    /// The scopes the API wants for reads and for writes.
    pub(crate) api_scopes: Option<(String, String)>,
    /// Clients may register themselves (RFC 7591).
    pub(crate) dynamic_registration: bool,
    /// The initial access token registration asks for, if any.
    pub(crate) initial_access_token: Option<String>,
    /// Pushed authorization requests (RFC 9126): offered, and required.
    pub(crate) par: Option<bool>,
    /// The authentication context class the API wants of users' tokens.
    pub(crate) api_acr: Option<String>,
}

/// Which `aud` the provider accepts in assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The issuer or the token endpoint URL (the default).
    #[default]
    IssuerOrTokenUrl,
    /// The issuer only (RFC 7523bis).
    Issuer,
    /// The token endpoint URL only.
    TokenUrl,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ProviderConfig {
    /// No clients yet, 1-hour tokens, refresh tokens for `offline_access`,
    /// no API key, no Basic login.
    pub fn new() -> Self {
        Self {
            clients: Vec::new(),
            token_lifetime: Duration::from_secs(3600),
            refresh_tokens: true,
            api_key: None,
            api_requires_token: true,
            basic_login: None,
            user: "alice".to_owned(),
            deny_sign_in: false,
            rotate_refresh_tokens: false,
            send_iss: true,
            issuer: None,
            device_code_lifetime: Duration::from_secs(600),
            device_interval: 5,
            key_clients: Vec::new(),
            assertion_audience: AssertionAudience::default(),
            bearer_issuers: Vec::new(),
            workload_issuers: Vec::new(),
            federated_clients: Vec::new(),
            token_exchange: false,
            dpop_nonces: false,
            api_dpop_nonce: false,
            one_active_token: false,
            require_dpop: false,
            mtls: false,
            tls_clients: Vec::new(),
            self_signed_clients: Vec::new(),
            protected_resource: false,
            resource_authorization_server: None,
            api_scopes: None,
            dynamic_registration: false,
            initial_access_token: None,
            par: None,
            api_acr: None,
        }
    }

    /// The API wants users signed in at the authentication context class
    /// `acr` (RFC 9470): a user's token from a sign-in that did not ask for
    /// it (`acr_values`) is answered 401 `insufficient_user_authentication`
    /// naming it. The client's own tokens are not concerned.
    pub fn api_acr(mut self, acr: impl Into<String>) -> Self {
        self.api_acr = Some(acr.into());
        self
    }

    /// Offers pushed authorization requests (RFC 9126) at `/oauth/par`,
    /// named in the discovery document, and with `required` takes no
    /// other (`require_pushed_authorization_requests`): an authorization
    /// request without a pushed `request_uri` is then refused.
    pub fn pushed_authorization(mut self, required: bool) -> Self {
        self.par = Some(required);
        self
    }

    /// Clients may register themselves (RFC 7591) at `/oauth/register`,
    /// named in the discovery document (`registration_endpoint`): a
    /// public client (`none`, redirect URIs https or loopback), a client
    /// with a secret the provider issues, or one with a key
    /// (`private_key_jwt`, its `jwks`). Counted in
    /// [`ProviderStats::registrations`](crate::ProviderStats::registrations).
    pub fn dynamic_registration(mut self, on: bool) -> Self {
        self.dynamic_registration = on;
        self
    }

    /// Registration needs this initial access token (`Authorization:
    /// Bearer`, RFC 7591 §3).
    pub fn initial_access_token(mut self, token: impl Into<String>) -> Self {
        self.initial_access_token = Some(token.into());
        self
    }

    /// The API describes itself (RFC 9728): its 401 and 403 challenges name
    /// its protected resource metadata (`resource_metadata`), served at the
    /// well-known URL of its resource identifier
    /// ([`Provider::resource`](crate::Provider::resource), `<url>/api`),
    /// which names this provider as its authorization server. It then takes
    /// only tokens requested for it (RFC 8707 `resource`): a token without
    /// it, or for another resource, is answered 401 `invalid_token`.
    pub fn protected_resource(mut self, on: bool) -> Self {
        self.protected_resource = on;
        self
    }

    /// The authorization server (an issuer URL) the API's metadata names
    /// instead of this provider: to test a client against an API that
    /// sends it elsewhere.
    pub fn resource_authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.resource_authorization_server = Some(issuer.into());
        self
    }

    /// The scopes (space-separated) the API wants of a token: `read` for GET
    /// and HEAD, `write` for the other methods. A token without them is
    /// answered 403 `insufficient_scope` with a `scope` naming all of them
    /// (RFC 6750 §3.1). Listed in the metadata's `scopes_supported`.
    pub fn api_scopes(mut self, read: impl Into<String>, write: impl Into<String>) -> Self {
        self.api_scopes = Some((read.into(), write.into()));
        self
    }

    /// Also serves everything on a mutual TLS listener (RFC 8705):
    /// HTTPS with a certificate from the provider's own CA
    /// ([`Provider::ca_certificate`](crate::Provider::ca_certificate)), asking every client for a
    /// certificate. The discovery document names its endpoints in
    /// `mtls_endpoint_aliases`. A token obtained there with a client
    /// certificate is bound to it (`x5t#S256`): the API accepts it only
    /// over a connection made with the same certificate. Default `false`.
    pub fn mtls(mut self, on: bool) -> Self {
        self.mtls = on;
        self
    }

    /// A `tls_client_auth` client (RFC 8705 §2.1): it authenticates with a
    /// certificate the provider's CA issued for `subject`
    /// ([`Provider::issue_client_certificate`](crate::Provider::issue_client_certificate)). Needs [`ProviderConfig::mtls`].
    pub fn tls_client(mut self, id: impl Into<String>, subject: impl Into<String>) -> Self {
        self.tls_clients.push((id.into(), subject.into()));
        self
    }

    /// A `self_signed_tls_client_auth` client (RFC 8705 §2.2) registered
    /// with its certificate (PEM, see [`self_signed_certificate`](crate::self_signed_certificate)). Needs
    /// [`ProviderConfig::mtls`].
    pub fn self_signed_tls_client(mut self, id: impl Into<String>, certificate_pem: &str) -> Self {
        let thumbprint = tls::thumbprint_of_pem(certificate_pem).expect("a PEM certificate");
        self.self_signed_clients.push((id.into(), thumbprint));
        self
    }

    /// Whether DPoP proofs (at the token endpoint and the API) must carry
    /// the provider's current nonce (RFC 9449 §8, §9): a proof without it
    /// is answered `use_dpop_nonce` with a `DPoP-Nonce` header. Default
    /// `false`. Every answer carries the nonce when this is on.
    pub fn dpop_nonces(mut self, required: bool) -> Self {
        self.dpop_nonces = required;
        self
    }

    /// With [`ProviderConfig::dpop_nonces`]: whether the protected API
    /// demands a nonce of its own, distinct from the token endpoint's
    /// (RFC 9449 §9: each server chooses its nonces, on one origin too).
    /// Each answers with its own nonce, so a client that just fetched a
    /// token holds the token endpoint's nonce and meets a `use_dpop_nonce`
    /// at the API. Default `false` (one nonce for both).
    pub fn api_dpop_nonce(mut self, separate: bool) -> Self {
        self.api_dpop_nonce = separate;
        self
    }

    /// Whether each client has one active access token at a time: a new
    /// one revokes the client's earlier ones (as providers with a
    /// one-active-token policy do). Default `false`.
    pub fn one_active_token(mut self, on: bool) -> Self {
        self.one_active_token = on;
        self
    }

    /// Whether token requests must carry a DPoP proof (default `false`: a
    /// request with a proof gets a DPoP-bound token, one without a Bearer
    /// token).
    pub fn require_dpop(mut self, required: bool) -> Self {
        self.require_dpop = required;
        self
    }

    /// Registers a `private_key_jwt` client with its public key: a PEM
    /// `PUBLIC KEY` (RSA, P-256, Ed25519) or a public JWK.
    ///
    /// # Panics
    ///
    /// If the key cannot be read.
    #[allow(clippy::panic)]
    pub fn key_client(mut self, id: impl Into<String>, public_key: &str) -> Self {
        let key = jose::PublicKey::parse(public_key).unwrap_or_else(|e| panic!("key_client: {e}"));
        self.key_clients.push((id.into(), key));
        self
    }

    /// Which `aud` client and JWT bearer assertions may name.
    pub fn assertion_audience(mut self, accepted: AssertionAudience) -> Self {
        self.assertion_audience = accepted;
        self
    }

    /// Trusts `issuer`'s assertions for the JWT bearer grant (RFC 7523
    /// §2.1), signed with this public key (PEM or JWK); a token is issued
    /// for the assertion's `sub`.
    ///
    /// # Panics
    ///
    /// If the key cannot be read.
    #[allow(clippy::panic)]
    pub fn jwt_bearer_issuer(mut self, issuer: impl Into<String>, public_key: &str) -> Self {
        let key = jose::PublicKey::parse(public_key).unwrap_or_else(|e| panic!("jwt_bearer_issuer: {e}"));
        self.bearer_issuers.push((issuer.into(), key));
        self
    }

    /// Trusts workload identity tokens (a Kubernetes service account
    /// token, a CI job's OIDC token) issued by `issuer` and signed with this
    /// public key (PEM or JWK): as the assertion of a
    /// [`federated_client`](Self::federated_client) and as the subject or
    /// actor token of a [`token_exchange`](Self::token_exchange). Their
    /// `aud` must be this server (its issuer or token URL); unlike a
    /// client's own assertion, one may be presented many times.
    ///
    /// # Panics
    ///
    /// If the key cannot be read.
    #[allow(clippy::panic)]
    pub fn workload_issuer(mut self, issuer: impl Into<String>, public_key: &str) -> Self {
        let key = jose::PublicKey::parse(public_key).unwrap_or_else(|e| panic!("workload_issuer: {e}"));
        self.workload_issuers.push((issuer.into(), key));
        self
    }

    /// A client with no secret that authenticates with a workload token
    /// whose `sub` is `subject` as its client assertion (workload identity
    /// federation).
    pub fn federated_client(mut self, client_id: impl Into<String>, subject: impl Into<String>) -> Self {
        self.federated_clients.push((client_id.into(), subject.into()));
        self
    }

    /// Accepts the RFC 8693 token exchange: a workload token (`jwt`,
    /// `id_token`) or an access token this provider issued (`access_token`,
    /// a chained exchange) as the subject, optionally an actor; issues an
    /// access token for the subject (`requested_token_type` `access_token`,
    /// or `jwt`, answered with `token_type` `N_A`). Default off.
    pub fn token_exchange(mut self, on: bool) -> Self {
        self.token_exchange = on;
        self
    }

    /// The user the authorization endpoint signs in (and approves for) at
    /// once. Default `alice`.
    pub fn user(mut self, name: impl Into<String>) -> Self {
        self.user = name.into();
        self
    }

    /// Whether the authorization endpoint answers `access_denied` instead
    /// of approving (the user said no). Default `false`.
    pub fn deny_sign_in(mut self, deny: bool) -> Self {
        self.deny_sign_in = deny;
        self
    }

    /// Whether a refresh grant issues a new refresh token and retires the
    /// one presented (a second use is `invalid_grant`). Default `false`.
    pub fn rotate_refresh_tokens(mut self, rotate: bool) -> Self {
        self.rotate_refresh_tokens = rotate;
        self
    }

    /// Whether the authorization endpoint's redirect carries RFC 9207
    /// `iss`. Default `true`.
    pub fn send_iss(mut self, send: bool) -> Self {
        self.send_iss = send;
        self
    }

    /// The issuer the discovery documents (and `iss`) name instead of the
    /// provider's URL: to test a mismatch.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// How long device codes last (default 10 minutes) and the polling
    /// interval the device endpoint asks for, in seconds (default 5).
    pub fn device_codes(mut self, lifetime: Duration, interval_secs: u64) -> Self {
        self.device_code_lifetime = lifetime;
        self.device_interval = interval_secs;
        self
    }

    /// Whether `/api/...` wants a Bearer token (default `true`). With
    /// `false` and an API key configured, it is a plain API-key API.
    pub fn api_requires_token(mut self, required: bool) -> Self {
        self.api_requires_token = required;
        self
    }

    /// Registers a confidential client.
    pub fn client(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.clients.push((id.into(), Some(secret.into())));
        self
    }

    /// Registers a public client (no secret).
    pub fn public_client(mut self, id: impl Into<String>) -> Self {
        self.clients.push((id.into(), None));
        self
    }

    /// The `expires_in` of issued access tokens.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Whether to issue refresh tokens when the scope holds `offline_access`.
    pub fn refresh_tokens(mut self, issue: bool) -> Self {
        self.refresh_tokens = issue;
        self
    }

    /// The API wants this key in the header `header` (and, if `query` is
    /// given, accepts it in that query parameter instead).
    pub fn api_key(mut self, header: impl Into<String>, query: Option<&str>, key: impl Into<String>) -> Self {
        self.api_key = Some((header.into().to_ascii_lowercase(), query.map(str::to_owned), key.into()));
        self
    }

    /// `/legacy/...` wants these HTTP Basic credentials.
    pub fn basic_login(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_login = Some((user.into(), password.into()));
        self
    }
}
