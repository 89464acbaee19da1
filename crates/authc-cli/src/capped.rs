//! Answers from outside, read with a cap: a discovery document, a
//! revocation answer. The request's own timeout is the deadline (every
//! client authc builds has one); the cap keeps an endless or huge body
//! from filling memory before it.

use auth_reqwest::capped::CappedError;

use crate::failure::Failure;

/// The most a discovery document or an endpoint's answer may weigh: 256 KiB
/// (real ones are a few KiB; the token endpoint's answers are capped at 64).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The body of `response`, `what` it is for the error, refused past
/// [`MAX_DOCUMENT_BYTES`] without reading further.
pub async fn body(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, Failure> {
    auth_reqwest::capped::read_capped(&mut response, MAX_DOCUMENT_BYTES).await.map_err(|error| match error {
        CappedError::TooLarge => {
            Failure::network(format!("{what} is larger than {} KiB: refused", MAX_DOCUMENT_BYTES / 1024))
        }
        CappedError::Failed(e) => Failure::network(format!("reading {what} failed: {}", e.without_url())),
    })
}
