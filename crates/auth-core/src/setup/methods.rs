//! The builder methods every front end's client builder shares
//! ([`client_setup_methods!`](crate::client_setup_methods)), one list for
//! all of them.

/// The [`ClientSetup`](super::ClientSetup) calls as methods of an adapter's client builder
/// whose field `$field` holds a `ClientSetup`; the `*_from_env` ones read
/// the variable there (this crate reads no environment). Used by the
/// adapters, so that their builders take the same calls.
#[doc(hidden)]
#[macro_export]
macro_rules! client_setup_methods {
    ($field:ident) => {
        /// Uses an OAuth 2.0 access token from the client credentials grant
        /// at `token_url`, sent as `Authorization: Bearer`.
        pub fn client_credentials(mut self, token_url: impl Into<String>, client_id: impl Into<String>) -> Self {
            self.$field = self.$field.client_credentials(token_url, client_id);
            self
        }
        /// Uses the access token of a user who signs in (authorization code
        /// with PKCE, or the device flow), renewed with the user's refresh
        /// token. The tokens come from a sign-in installed in the client's
        /// token source (`exchange_code` of auth-reqwest and auth-tower), a
        /// token saved earlier (`restore`), or a shared store that a
        /// signed-in process wrote (`authc login --store`); until then a
        /// request fails with `SignInRequired`.
        pub fn user_sign_in(mut self, token_url: impl Into<String>, client_id: impl Into<String>) -> Self {
            self.$field = self.$field.user_sign_in(token_url, client_id);
            self
        }
        /// The client secret.
        pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
            self.$field = self.$field.client_secret(secret);
            self
        }
        /// The client secret from the environment variable `variable`; an
        /// unset, empty or non-UTF-8 variable makes `build()` fail with an
        /// error that names the variable (never a value).
        pub fn client_secret_from_env(mut self, variable: &str) -> Self {
            self.$field = self.$field.client_secret_from_env(variable, std::env::var(variable));
            self
        }
        /// The client's private key (`private_key_jwt`: a signed assertion
        /// instead of a secret).
        pub fn signing_key(mut self, key: $crate::keys::SigningKey) -> Self {
            self.$field = self.$field.signing_key(key);
            self
        }
        /// The client's private key from a PEM or JWK file
        /// (`private_key_jwt`); an unreadable file or one without a usable
        /// key makes `build()` fail with an error that names the file.
        pub fn private_key_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
            let path = path.as_ref();
            let contents = $crate::setup::read_file(path);
            self.$field = self.$field.signing_key_from_file(&path.display().to_string(), contents, None);
            self
        }
        /// Mutual TLS (RFC 8705): the client certificate presented to the
        /// token endpoint (`tls_client_auth` when no secret or key is set,
        /// or certificate-bound tokens) and to APIs that ask for one.
        pub fn client_certificate(mut self, certificate: $crate::mtls::ClientCertificate) -> Self {
            self.$field = self.$field.client_certificate(certificate);
            self
        }
        /// The client certificate (PEM, the chain after it if any) and its
        /// private key (PEM, unencrypted) from files; an unreadable or
        /// unusable file makes `build()` fail with an error that names it.
        pub fn client_certificate_files(
            mut self,
            certificate: impl AsRef<std::path::Path>,
            key: impl AsRef<std::path::Path>,
        ) -> Self {
            let (certificate, key) = (certificate.as_ref(), key.as_ref());
            self.$field = self.$field.client_certificate_from_files(
                &certificate.display().to_string(),
                $crate::setup::read_file(certificate),
                &key.display().to_string(),
                $crate::setup::read_file(key),
                None,
            );
            self
        }
        /// Trusts only the CA certificates in `pem` (one or more PEM
        /// `CERTIFICATE` blocks) instead of the built-in web roots, at the
        /// token endpoint and the API: for servers of a private PKI.
        pub fn root_certificates(mut self, pem: &str) -> Self {
            self.$field = self.$field.root_certificates(pem);
            self
        }
        /// Which requests keep a copy of themselves to send again after a
        /// 401: every request whose body can be copied (`ReplayCopies::Always`,
        /// the default: a 401 renews the token and the request is sent
        /// again), or only those whose token is at risk (`ReplayCopies::AtRisk`:
        /// a settled token's 401 then reaches the caller, and the next
        /// request carries a new token). A streaming body is never replayed.
        pub fn replay_copies(mut self, copies: $crate::publish::replay::ReplayCopies) -> Self {
            self.$field = self.$field.replay_copies(copies);
            self
        }
        /// DPoP-bound tokens (RFC 9449) with this key
        /// (`auth_core::dpop::Dpop::generate()` makes one): every token and
        /// API request carries a fresh proof, nonces are handled.
        pub fn dpop(mut self, dpop: std::sync::Arc<$crate::dpop::Dpop>) -> Self {
            self.$field = self.$field.dpop(dpop);
            self
        }
        /// How the client authenticates at the token endpoint (default Basic).
        pub fn client_auth(mut self, method: $crate::ClientAuth) -> Self {
            self.$field = self.$field.client_auth(method);
            self
        }
        /// Adds scopes (space-separated ones are split).
        pub fn scope(mut self, scope: impl AsRef<str>) -> Self {
            self.$field = self.$field.scope(scope);
            self
        }
        /// The `audience` parameter.
        pub fn audience(mut self, audience: impl Into<String>) -> Self {
            self.$field = self.$field.audience(audience);
            self
        }
        /// Adds an RFC 8707 `resource` parameter.
        pub fn resource(mut self, resource: impl Into<String>) -> Self {
            self.$field = self.$field.resource(resource);
            self
        }
        /// The client proves itself with a token from outside (a workload
        /// identity file the platform rotates) as its client assertion,
        /// read at every token request (`SourceConfigBuilder::client_assertion`).
        pub fn client_assertion(mut self, assertion: $crate::exchange::SuppliedToken) -> Self {
            self.$field = self.$field.client_assertion(assertion);
            self
        }
        /// Tokens from an RFC 8693 token exchange of the subject token (a
        /// workload identity file, a variable, a function) instead of the
        /// client credentials grant (`SourceConfigBuilder::token_exchange`).
        pub fn token_exchange(mut self, exchange: $crate::exchange::TokenExchange) -> Self {
            self.$field = self.$field.token_exchange(exchange);
            self
        }
        /// The scopes this client may add when an API refuses its token with
        /// a 403 `insufficient_scope` naming them: its next token is asked
        /// for the union, once (`SourceConfigBuilder::step_up_scopes`).
        pub fn step_up_scopes(mut self, scopes: &[&str]) -> Self {
            self.$field = self.$field.step_up_scopes(scopes);
            self
        }
        /// Adds an extra token request parameter.
        pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.$field = self.$field.param(name, value);
            self
        }
        /// The RFC 7009 revocation endpoint.
        pub fn revocation_url(mut self, url: impl Into<String>) -> Self {
            self.$field = self.$field.revocation_url(url);
            self
        }
        /// The daily fetch budget: at most `limit` token requests in any 24
        /// hours, counted for the whole fleet when the client shares a
        /// store (`.store(..)`); when it is spent, requests fail with
        /// `BudgetSpent`, which says when the next fetch is allowed.
        pub fn max_fetches_per_day(mut self, limit: u32) -> Self {
            self.$field = self.$field.max_fetches_per_day(limit);
            self
        }
        /// Any other token source setting (policies, the default lifetime,
        /// ...).
        pub fn configure_token(
            mut self,
            change: impl FnOnce($crate::SourceConfigBuilder) -> $crate::SourceConfigBuilder,
        ) -> Self {
            self.$field = self.$field.configure_token(change);
            self
        }
        /// An API key in the named header.
        pub fn api_key_header(mut self, name: impl Into<String>, key: impl Into<String>) -> Self {
            self.$field = self.$field.api_key_header(name, key);
            self
        }
        /// An API key in the named header, from the environment variable
        /// `variable`; an unset or empty variable makes `build()` fail with
        /// an error that names it.
        pub fn api_key_header_from_env(mut self, name: impl Into<String>, variable: &str) -> Self {
            self.$field = self.$field.api_key_header_from_env(name, variable, std::env::var(variable));
            self
        }
        /// An API key in the named query parameter.
        pub fn api_key_query(mut self, name: impl Into<String>, key: impl Into<String>) -> Self {
            self.$field = self.$field.api_key_query(name, key);
            self
        }
        /// Static HTTP Basic credentials (legacy APIs).
        pub fn basic(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
            self.$field = self.$field.basic(user, password);
            self
        }
        /// A bearer token the user already holds (a JWT).
        pub fn static_bearer(mut self, token: impl Into<String>) -> Self {
            self.$field = self.$field.static_bearer(token);
            self
        }
        /// Limits the credentials to an origin (`https://api.example.com`:
        /// scheme, host and port, no path); may be repeated. Required, or
        /// `any_origin()`: requests to other origins go out without the
        /// credentials.
        pub fn api_origin(mut self, origin: impl Into<String>) -> Self {
            self.$field = self.$field.api_origin(origin);
            self
        }
        /// Sends the credentials to every host the client calls instead of
        /// the origins given with `api_origin`. Only for a client that
        /// calls one API and URLs you control: a URL built from user input
        /// would receive the credentials.
        pub fn any_origin(mut self) -> Self {
            self.$field = self.$field.any_origin();
            self
        }
    };
}
