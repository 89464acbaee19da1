//! The scopes a client's own grant may add when an API asks for them: a
//! 403 `insufficient_scope` naming them (RFC 6750 §3.1) makes such a
//! source ask for the union from its next token on, once
//! ([`Lifecycle::handle_step_up`](crate::Lifecycle::handle_step_up)).

use super::{SourceConfig, SourceConfigBuilder};

impl SourceConfigBuilder {
    /// The scopes this client may add to those it asks for when an API
    /// refuses its token with a 403 `insufficient_scope` naming them: its
    /// next token is then asked for the union (the scopes configured, those
    /// added before, and these), once; the answer that asked goes back to
    /// the caller as it came, marked with the
    /// [`StepUp`](crate::resource::step_up::StepUp). A scope not listed is
    /// never asked for. Default: none (a source asks only for what it was
    /// configured with). Not for a user's sign-in, which asks the user.
    ///
    /// ```
    /// use auth_core::SourceConfig;
    ///
    /// let config = SourceConfig::builder("https://id.example.com/token", "billing")
    ///     .client_secret("s3cret")
    ///     .scope("orders:read")
    ///     .step_up_scopes(["orders:write"])
    ///     .build()?;
    /// assert_eq!(config.step_up_scopes(), ["orders:write"]);
    /// # Ok::<(), auth_core::ConfigError>(())
    /// ```
    pub fn step_up_scopes<S: AsRef<str>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        for scope in scopes {
            for word in scope.as_ref().split_whitespace() {
                if !self.step_up_scopes.iter().any(|s| s == word) {
                    self.step_up_scopes.push(word.to_owned());
                }
            }
        }
        self
    }
}

impl SourceConfig {
    /// The scopes a step-up may add ([`SourceConfigBuilder::step_up_scopes`]).
    pub fn step_up_scopes(&self) -> &[String] {
        &self.step_up_scopes
    }

    /// Whether a source of this configuration may ask for every scope in
    /// `needed` (those it asks for, and those it may add): never for a
    /// user's sign-in.
    pub fn allows_step_up(&self, needed: &[String]) -> bool {
        self.grant != super::SourceGrant::SignIn
            && !self.step_up_scopes.is_empty()
            && !needed.is_empty()
            && needed.iter().all(|scope| self.scopes.contains(scope) || self.step_up_scopes.contains(scope))
    }

    /// This configuration asking also for `added` scopes: the same cache
    /// key (its tokens are shared with the configuration's peers, which
    /// may use a token with more scopes), the requests with the union.
    pub(crate) fn with_scopes_added(&self, added: &[String]) -> Self {
        let mut widened = self.clone();
        for scope in added {
            if !widened.scopes.contains(scope) {
                widened.scopes.push(scope.clone());
            }
        }
        widened
    }
}
