//! Chained token exchanges: one source's token is the subject of another's
//! RFC 8693 exchange (a workload token exchanged for a platform token,
//! exchanged again for a narrower one for one API).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use auth_core::exchange::{token_types, SuppliedToken, TokenExchange};
//! use auth_core::SourceConfig;
//! use auth_tower::TokenSource;
//! # let transport = || tower::service_fn(|_: http::Request<Vec<u8>>| async {
//! #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) });
//!
//! // The platform's token for this workload, from its file.
//! let platform = SourceConfig::builder("https://sts.example.com/token", "workload")
//!     .token_exchange(TokenExchange::new(SuppliedToken::file("/var/run/secrets/token"), token_types::JWT))
//!     .build()?;
//! let platform = TokenSource::new(platform, transport())?;
//! // Exchanged again, for the orders API only.
//! let orders = SourceConfig::builder("https://sts.example.com/token", "workload")
//!     .token_exchange(TokenExchange::new(platform.subject_token(), token_types::ACCESS_TOKEN))
//!     .audience("orders-api")
//!     .build()?;
//! let orders = TokenSource::builder(orders, transport()).after(&platform).build()?;
//! # Ok(()) }
//! ```

use auth_core::exchange::SuppliedToken;

use crate::source::{TokenSource, TokenSourceBuilder};

impl TokenSource {
    /// This source's current token as a supplied token: the subject (or
    /// actor) of another source's exchange. Read without waiting when that
    /// source sends its request; give that source
    /// [`TokenSourceBuilder::after`] this one, so that it waits for this
    /// token first and renews when it changes.
    pub fn subject_token(&self) -> SuppliedToken {
        let source = self.clone();
        let name = format!("the token source {}", self.config().cache_key());
        SuppliedToken::from_fn(name, move |_| {
            let mut reader = source.reader();
            match reader.load() {
                Some(token) => Ok(auth_core::secret::ExposeSecret::expose_secret(token.value()).to_owned()),
                None => Err("it has no usable token yet".to_owned()),
            }
        })
    }
}

impl TokenSourceBuilder {
    /// Makes this source's tokens from `inner`'s (a chained exchange whose
    /// subject is [`inner.subject_token()`](TokenSource::subject_token)):
    /// each token request waits for `inner`'s token first, and a new token
    /// of `inner`'s renews this source's at once (the current one stays in
    /// use until then). The source keeps `inner` alive.
    pub fn after(mut self, inner: &TokenSource) -> Self {
        self.upstream = Some(inner.clone());
        self
    }
}
