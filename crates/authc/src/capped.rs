//! Answers from outside, read with a cap: a discovery document, a
//! revocation answer. The request's own timeout is the deadline (every
//! client authc builds has one); the cap keeps an endless or huge body
//! from filling memory before it.

use crate::failure::Failure;

/// The most a discovery document or an endpoint's answer may weigh: 256 KiB
/// (real ones are a few KiB; the token endpoint's answers are capped at 64).
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The body of `response`, `what` it is for the error, refused past
/// [`MAX_DOCUMENT_BYTES`] without reading further.
pub async fn body(mut response: reqwest::Response, what: &str) -> Result<Vec<u8>, Failure> {
    let too_large = || Failure::network(format!("{what} is larger than {} KiB: refused", MAX_DOCUMENT_BYTES / 1024));
    if response.content_length().is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| Failure::network(format!("reading {what} failed: {}", e.without_url())))?;
        let Some(chunk) = chunk else { return Ok(body) };
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
}
