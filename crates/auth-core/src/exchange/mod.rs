//! Fleets without a client secret: tokens a platform gives each workload
//! (a Kubernetes projected service account token, a CI job's OIDC token, a
//! cloud metadata token), used in one of two ways.
//!
//! - As the **client assertion** (`client_assertion_type=...jwt-bearer`):
//!   [`SourceConfigBuilder::client_assertion`](crate::SourceConfigBuilder::client_assertion)
//!   with a [`SuppliedToken`] read from its file at every request.
//! - As the **subject token of a token exchange** (RFC 8693, the
//!   `urn:ietf:params:oauth:grant-type:token-exchange` grant):
//!   [`SourceConfigBuilder::token_exchange`](crate::SourceConfigBuilder::token_exchange)
//!   with a [`TokenExchange`]: the subject token (and an actor token) with
//!   their types, the type of token asked for, and the source's `scope`,
//!   `audience` and `resource`. The answer's `issued_token_type` must be
//!   the one asked for ([`TokenExchange::check_issued`]).
//!
//! The tokens are read when a request is due ([`supplied`]): a rotated file
//! is used from the next request on, an expired one is never sent.
//!
//! ```
//! use auth_core::exchange::{token_types, SuppliedToken, TokenExchange};
//! use auth_core::SourceConfig;
//!
//! let exchange = TokenExchange::new(SuppliedToken::env("CI_JOB_JWT"), token_types::JWT)
//!     .requested_token_type(token_types::ACCESS_TOKEN);
//! let config = SourceConfig::builder("https://sts.example.com/token", "ci")
//!     .token_exchange(exchange)
//!     .audience("https://api.example.com")
//!     .build()?;
//! assert_eq!(config.grant(), auth_core::SourceGrant::TokenExchange);
//! # Ok::<(), auth_core::ConfigError>(())
//! ```

use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::error::TokenError;

pub mod supplied;

pub use supplied::SuppliedToken;

/// The RFC 8693 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token type identifiers of RFC 8693 §3.
pub mod token_types {
    /// An OAuth 2.0 access token.
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    /// An OAuth 2.0 refresh token.
    pub const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
    /// An OpenID Connect ID token.
    pub const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
    /// A base64url-encoded SAML 1.1 assertion.
    pub const SAML1: &str = "urn:ietf:params:oauth:token-type:saml1";
    /// A base64url-encoded SAML 2.0 assertion.
    pub const SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";
    /// A JWT (RFC 7519).
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
}

/// An RFC 8693 token exchange: what is exchanged and for what.
#[derive(Clone, Debug)]
pub struct TokenExchange {
    subject: (SuppliedToken, String),
    actor: Option<(SuppliedToken, String)>,
    requested: Option<String>,
}

impl TokenExchange {
    /// Exchanges `subject` (its `subject_token_type`, one of
    /// [`token_types`] or the provider's own URI).
    pub fn new(subject: SuppliedToken, subject_token_type: impl Into<String>) -> Self {
        Self { subject: (subject, subject_token_type.into()), actor: None, requested: None }
    }

    /// Also sends `actor` (delegation: the party acting for the subject).
    #[must_use]
    pub fn actor(mut self, actor: SuppliedToken, actor_token_type: impl Into<String>) -> Self {
        self.actor = Some((actor, actor_token_type.into()));
        self
    }

    /// The type of token asked for (`requested_token_type`); without it the
    /// server chooses, and an access token is expected.
    #[must_use]
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.requested = Some(token_type.into());
        self
    }

    /// The subject token and its type.
    pub fn subject(&self) -> (&SuppliedToken, &str) {
        (&self.subject.0, &self.subject.1)
    }

    /// The actor token and its type, if any.
    pub fn actor_token(&self) -> Option<(&SuppliedToken, &str)> {
        self.actor.as_ref().map(|(token, kind)| (token, kind.as_str()))
    }

    /// The `requested_token_type`, if set.
    pub fn requested(&self) -> Option<&str> {
        self.requested.as_deref()
    }

    /// What goes in the cache key: whose tokens are exchanged, for what.
    pub(crate) fn identity(&self) -> String {
        let actor = self.actor.as_ref().map(|(token, kind)| format!(" actor={} {kind}", token.identity()));
        format!(
            "subject={} {}{} requested={}",
            self.subject.0.identity(),
            self.subject.1,
            actor.unwrap_or_default(),
            self.requested.as_deref().unwrap_or("")
        )
    }

    /// The form parameters known when the request is built.
    pub(crate) fn fixed_params(&self) -> Vec<(&'static str, &str)> {
        let mut params = vec![("subject_token_type", self.subject.1.as_str())];
        if let Some((_, kind)) = &self.actor {
            params.push(("actor_token_type", kind.as_str()));
        }
        if let Some(requested) = &self.requested {
            params.push(("requested_token_type", requested.as_str()));
        }
        params
    }

    /// The tokens, read at `wall` when the request is sent.
    pub(crate) fn tokens(&self, wall: SystemTime) -> Result<Vec<(&'static str, Zeroizing<String>)>, TokenError> {
        let jwt = |kind: &str| kind == token_types::JWT || kind == token_types::ID_TOKEN;
        let mut params = vec![("subject_token", self.subject.0.read("the subject token", wall, jwt(&self.subject.1))?)];
        if let Some((actor, kind)) = &self.actor {
            params.push(("actor_token", actor.read("the actor token", wall, jwt(kind))?));
        }
        Ok(params)
    }

    /// Whether an answer's `issued_token_type` (RFC 8693 §2.2.1, required)
    /// is the one asked for: `requested_token_type` when set, an access
    /// token or a JWT otherwise.
    pub fn check_issued(&self, issued: Option<&str>) -> Result<(), TokenError> {
        let fine = match (issued, self.requested.as_deref()) {
            (Some(issued), Some(requested)) => issued == requested,
            (Some(issued), None) => issued == token_types::ACCESS_TOKEN || issued == token_types::JWT,
            (None, _) => false,
        };
        if fine {
            return Ok(());
        }
        Err(TokenError::IssuedTokenType {
            expected: self.requested.clone().unwrap_or_else(|| token_types::ACCESS_TOKEN.to_owned()),
            received: issued.map_or_else(|| "(none)".to_owned(), |t| crate::text::sanitize_excerpt(t, 120)),
        })
    }

    /// Whether the token asked for is not an access token, so that the
    /// answer's `token_type` may be `N_A` (RFC 8693 §2.2.1).
    pub(crate) fn may_be_not_applicable(&self) -> bool {
        self.requested.as_deref().is_some_and(|requested| requested != token_types::ACCESS_TOKEN)
    }
}

#[cfg(test)]
mod tests;
