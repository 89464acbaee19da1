//! Redirects that never carry credentials to another origin.

use reqwest::redirect::{Attempt, Policy};
use reqwest::Url;

/// The most redirects followed within one origin.
pub const MAX_REDIRECTS: usize = 10;

/// A redirect policy that follows redirects within the origin of the
/// request (same scheme, host and port, up to [`MAX_REDIRECTS`]) and stops
/// at any redirect to another origin, returning the 3xx response to the
/// caller.
///
/// reqwest drops `Authorization` on a cross-host redirect, but not an API
/// key in a custom header or the query: with this policy no credential
/// ever reaches an origin it was not meant for. [`AuthClient`] uses it;
/// use it on your own client when you add [`AuthMiddleware`].
///
/// [`AuthClient`]: crate::AuthClient
/// [`AuthMiddleware`]: crate::AuthMiddleware
pub fn same_origin_redirects() -> Policy {
    Policy::custom(decide)
}

fn decide(attempt: Attempt<'_>) -> reqwest::redirect::Action {
    let same_origin = attempt.previous().first().is_some_and(|first| same_origin(first, attempt.url()));
    if same_origin && attempt.previous().len() <= MAX_REDIRECTS {
        attempt.follow()
    } else {
        attempt.stop()
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}
