//! Redirects in a tower stack that never carry credentials to another
//! origin.
//!
//! tower-http's [`FollowRedirect`](tower_http::follow_redirect::FollowRedirect)
//! removes `Authorization`, `Cookie` and `Proxy-Authorization` on a
//! cross-origin redirect with its default policy, but keeps every other
//! header: an API key in `X-API-Key` would follow the redirect to the other
//! host. Two stack orders are safe:
//!
//! 1. **`FollowRedirect` outside [`AuthLayer`](crate::AuthLayer)** (the
//!    recommended order): every hop goes through the layer, which puts the
//!    credentials only on the origins they are allowed on. Any redirect
//!    policy works.
//! 2. **`FollowRedirect` inside `AuthLayer`**: the credentials are on the
//!    request before the first hop, so the redirect policy must refuse
//!    other origins: use [`same_origin_redirects`]. A redirect to another
//!    origin then comes back to the caller as the 3xx response.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use auth_core::Credentials;
//! use auth_tower::{redirect::same_origin_redirects, AuthLayer};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_http::follow_redirect::FollowRedirectLayer;
//!
//! // An API that redirects to another host.
//! let api = service_fn(|request: http::Request<String>| async move {
//!     let leaked = request.uri().host() == Some("elsewhere.example.net") && request.headers().contains_key("x-api-key");
//!     assert!(!leaked, "the API key followed the redirect");
//!     let response = http::Response::builder().status(302).header("location", "https://elsewhere.example.net/x");
//!     Ok::<_, std::convert::Infallible>(response.body(String::new()).unwrap())
//! });
//! let credentials = Credentials::builder()
//!     .api_key_header("X-API-Key", "key-123")
//!     .api_origin("https://api.example.com")
//!     .build()?;
//!
//! // Order 2: the policy stops at the other origin and returns the 302.
//! let client = ServiceBuilder::new()
//!     .layer(AuthLayer::without_source(credentials.clone())?)
//!     .layer(FollowRedirectLayer::with_policy(same_origin_redirects()))
//!     .service(api.clone());
//! let response = client.oneshot(http::Request::get("https://api.example.com/a").body(String::new())?).await?;
//! assert_eq!(response.status(), 302);
//!
//! // Order 1: the redirect is followed, without the key.
//! let client = ServiceBuilder::new()
//!     .layer(FollowRedirectLayer::new())
//!     .layer(AuthLayer::without_source(credentials)?)
//!     .service(service_fn(|request: http::Request<String>| async move {
//!         let on_api = request.uri().host() == Some("api.example.com");
//!         assert_eq!(request.headers().contains_key("x-api-key"), on_api);
//!         let response = match on_api {
//!             true => http::Response::builder().status(302).header("location", "https://elsewhere.example.net/x"),
//!             false => http::Response::builder().status(200),
//!         };
//!         Ok::<_, std::convert::Infallible>(response.body(String::new()).unwrap())
//!     }));
//! let response = client.oneshot(http::Request::get("https://api.example.com/a").body(String::new())?).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(()) }
//! ```

use tower_http::follow_redirect::policy::{And, Limited, PolicyExt, SameOrigin};

/// The most redirects followed within one origin.
pub const MAX_REDIRECTS: usize = 10;

/// The policy [`same_origin_redirects`] returns: tower-http's own
/// [`Limited`] and [`SameOrigin`] policies together.
pub type SameOriginRedirects = And<Limited, SameOrigin>;

/// A `FollowRedirect` policy that follows redirects within the origin of
/// the previous request (same scheme, host and port, up to
/// [`MAX_REDIRECTS`]) and stops at any redirect to another origin,
/// returning the 3xx response. The twin of `auth-reqwest`'s
/// `same_origin_redirects`; see the [module docs](self) for where to put
/// `FollowRedirect` in the stack.
pub fn same_origin_redirects() -> SameOriginRedirects {
    PolicyExt::and::<SameOrigin, (), ()>(Limited::new(MAX_REDIRECTS), SameOrigin::new())
}
