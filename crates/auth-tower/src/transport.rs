//! Sending one token endpoint request through the user's tower service.

use auth_core::TokenError;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use tower::{Service, ServiceExt};

use crate::error::BoxError;

/// Sends one token request and reads the body up to `limit` bytes.
pub(crate) async fn send<T, B>(
    mut transport: T,
    request: Request<Vec<u8>>,
    limit: usize,
) -> Result<Response<Bytes>, TokenError>
where
    T: Service<Request<Vec<u8>>, Response = Response<B>>,
    T::Error: Into<BoxError>,
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let ready = transport.ready().await.map_err(|e| transport_error(e.into()))?;
    let response = ready.call(request).await.map_err(|e| transport_error(e.into()))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            TokenError::BodyTooLarge { status: parts.status.as_u16(), limit }
        } else {
            match TokenError::from_error(e.as_ref(), false) {
                TokenError::Transport { message, timeout } => {
                    TokenError::Transport { message: format!("reading the response body failed: {message}"), timeout }
                }
                other => other,
            }
        }
    })?;
    Ok(Response::from_parts(parts, body.to_bytes()))
}

/// A transport's error as a token error: a `TokenError` the transport made
/// itself is kept (it knows best what happened); otherwise a timeout is
/// recognised anywhere in the chain of sources.
pub(crate) fn transport_error(error: BoxError) -> TokenError {
    match error.downcast::<TokenError>() {
        Ok(error) => *error,
        Err(error) => {
            let timeout = is_timeout(error.as_ref());
            TokenError::from_error(error.as_ref(), timeout)
        }
    }
}

/// Whether an error, or one of its sources, is a timeout.
pub(crate) fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<tower::timeout::error::Elapsed>() || error.is::<tokio::time::error::Elapsed>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        current = error.source();
    }
    false
}
