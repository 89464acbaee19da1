//! The options of a source whose client proves itself with a token from
//! outside, or whose grant is a token exchange ([`crate::exchange`]).

use super::{SourceConfig, SourceConfigBuilder, SourceGrant};
use crate::exchange::{SuppliedToken, TokenExchange};

impl SourceConfigBuilder {
    /// The client authenticates with a JWT supplied from outside as its
    /// client assertion (`client_assertion_type=...jwt-bearer`, the
    /// `private_key_jwt` method): a workload identity token in a file the
    /// platform rotates, read again at every token request; an expired one
    /// is never sent. Replaces signing an assertion with a key.
    ///
    /// ```
    /// use auth_core::exchange::SuppliedToken;
    /// use auth_core::{ClientAuth, SourceConfig};
    ///
    /// let config = SourceConfig::builder("https://login.example.com/token", "app-id")
    ///     .client_assertion(SuppliedToken::file("/var/run/secrets/tokens/azure-identity-token"))
    ///     .build()?;
    /// assert_eq!(config.client_auth(), ClientAuth::PrivateKeyJwt);
    /// # Ok::<(), auth_core::ConfigError>(())
    /// ```
    pub fn client_assertion(mut self, assertion: SuppliedToken) -> Self {
        self.client_assertion = Some(assertion);
        self
    }

    /// Asks for tokens with the RFC 8693 token exchange: the grant becomes
    /// [`SourceGrant::TokenExchange`], and the source's `scope`, `audience`
    /// and `resource` go with the exchange's own parameters. The client
    /// authenticates when a secret, key or assertion is set; otherwise
    /// only its `client_id` is sent.
    pub fn token_exchange(mut self, exchange: TokenExchange) -> Self {
        self.token_exchange = Some(exchange);
        self.grant = SourceGrant::TokenExchange;
        self
    }
}

impl SourceConfig {
    /// The client assertion supplied from outside, if any.
    pub fn client_assertion(&self) -> Option<&SuppliedToken> {
        self.client_assertion.as_ref()
    }

    /// The token exchange, for a [`SourceGrant::TokenExchange`] source.
    pub fn token_exchange(&self) -> Option<&TokenExchange> {
        self.token_exchange.as_ref()
    }
}
