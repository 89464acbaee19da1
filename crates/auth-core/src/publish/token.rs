//! The access token as the lifecycle hands it out.

use std::fmt;
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use http::HeaderValue;

use crate::secret::{AccessTokenValue, ExposeSecret};

/// Identifies one issued token within a token source. Generations grow by
/// one with every token the source obtains, so a 401 can say which token it
/// rejected and an old rejection cannot discard a newer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(NonZeroU64);

impl Generation {
    /// The `n`th token of a source, counting from 1 (0 counts as 1).
    pub(crate) fn nth(n: u64) -> Self {
        Self(NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN))
    }

    /// The number, for logs and metrics: 1 for the first token.
    #[inline]
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An access token with its timing, ready to be put on requests.
///
/// Shared as `Arc<AccessToken>`: the `Authorization` header value is built
/// once, marked sensitive, and its bytes are zeroized when the last request
/// holding a copy drops it.
pub struct AccessToken {
    pub(crate) value: AccessTokenValue,
    pub(crate) header: HeaderValue,
    pub(crate) generation: Generation,
    pub(crate) issued_at: Instant,
    pub(crate) expires_at: Instant,
    pub(crate) usable_until: Instant,
    pub(crate) renew_at: Instant,
    pub(crate) lifetime: Duration,
    pub(crate) lifetime_from_provider: bool,
    pub(crate) scope: Option<String>,
    /// The key a DPoP-bound token is bound to.
    pub(crate) dpop: Option<std::sync::Arc<crate::dpop::Dpop>>,
}

impl AccessToken {
    /// The DPoP key, when the token is DPoP-bound: every request it goes
    /// on needs a fresh proof ([`Credentials::apply_at`](crate::Credentials::apply_at)).
    #[inline]
    pub fn dpop(&self) -> Option<&std::sync::Arc<crate::dpop::Dpop>> {
        self.dpop.as_ref()
    }
    /// The token type the provider issued it as, normalised: `DPoP` for a
    /// DPoP-bound token, `Bearer` otherwise (the scheme of its
    /// `Authorization` header).
    pub fn token_type(&self) -> &'static str {
        scheme(self.dpop.is_some())
    }
    /// The token value.
    pub fn value(&self) -> &AccessTokenValue {
        &self.value
    }
    /// `Bearer <token>` (or `DPoP <token>` for a DPoP-bound one), marked
    /// sensitive. Cloning it is a reference count.
    #[inline]
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }
    /// Which token of its source this is.
    #[inline]
    pub fn generation(&self) -> Generation {
        self.generation
    }
    /// When the request that obtained it was sent; lifetimes count from here.
    pub fn issued_at(&self) -> Instant {
        self.issued_at
    }
    /// When the provider says it expires.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }
    /// The last instant (exclusive) at which it may be put on a request:
    /// `expires_at` minus the safety margin.
    pub fn usable_until(&self) -> Instant {
        self.usable_until
    }
    /// When its renewal is due.
    #[inline]
    pub fn renew_at(&self) -> Instant {
        self.renew_at
    }
    /// The lifetime it was issued with, after clamping.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }
    /// Whether the lifetime came from the provider's `expires_in` (`false`:
    /// the configured default lifetime was assumed).
    pub fn lifetime_from_provider(&self) -> bool {
        self.lifetime_from_provider
    }
    /// The scope the provider granted, when it said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
    /// Whether it may be put on a request at `now`.
    #[inline]
    pub fn is_usable(&self, now: Instant) -> bool {
        now < self.usable_until
    }
    /// The time left until it expires at `now` (zero once expired).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    /// Builds the `Bearer` (or, with `dpop`, `DPoP`) header value for a
    /// token value, or `None` when it cannot be sent in a header.
    pub(crate) fn authorization_header(value: &AccessTokenValue, dpop: bool) -> Option<HeaderValue> {
        let text = zeroize::Zeroizing::new(format!("{} {}", scheme(dpop), value.expose_secret()));
        crate::text::sensitive_value(text.as_bytes())
    }

    #[cfg(test)]
    #[allow(clippy::disallowed_methods)] // tests only: a token anchored at the real clock
    pub(crate) fn for_tests(value: &str) -> Self {
        let value = AccessTokenValue::new(value);
        let now = Instant::now();
        Self {
            header: Self::authorization_header(&value, false).expect("test token is valid"),
            value,
            generation: Generation::nth(1),
            issued_at: now,
            expires_at: now + Duration::from_secs(3600),
            usable_until: now + Duration::from_secs(3590),
            renew_at: now + Duration::from_secs(3500),
            lifetime: Duration::from_secs(3600),
            lifetime_from_provider: true,
            scope: None,
            dpop: None,
        }
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &self.value)
            .field("generation", &self.generation)
            .field("lifetime", &self.lifetime)
            .field("lifetime_from_provider", &self.lifetime_from_provider)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The `Authorization` scheme (and normalised token type) of a token.
fn scheme(dpop: bool) -> &'static str {
    if dpop {
        "DPoP"
    } else {
        "Bearer"
    }
}
