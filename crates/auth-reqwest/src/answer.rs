//! The answer as the caller gets it: the values of our query keys
//! redacted from its URL, and the marks the core's rules put on it (a 401
//! a renewed token did not cure, the step-up a refusal asks for).

use auth_core::resource::step_up;
use auth_core::{Credentials, Generation};
use auth_tower::TokenSource;
use http::StatusCode;
use reqwest::{Response, ResponseBuilderExt as _};

/// `outcome` marked with the step-up it asks of `source`'s tokens (the
/// token of the generation given was sent), and
/// with our query keys redacted from its URL (when the credentials put
/// any in the query).
#[inline(always)]
pub(crate) fn finish(
    credentials: &Credentials,
    source: Option<(&TokenSource, Generation)>,
    outcome: reqwest_middleware::Result<Response>,
) -> reqwest_middleware::Result<Response> {
    let outcome = match outcome {
        Ok(response) if response.status() == StatusCode::FORBIDDEN || response.status() == StatusCode::UNAUTHORIZED => {
            Ok(mark_step_up(source, response))
        }
        other => other,
    };
    if !credentials.has_query_params() {
        return outcome;
    }
    redact_outcome(credentials, outcome)
}

/// A 401 that a renewed token did not cure, marked for the caller (the
/// token source's worker logs it).
pub(crate) fn rejected_after_renewal(mut response: Response) -> Response {
    response.extensions_mut().insert(auth_core::RejectedAfterRenewal);
    response
}

/// A 401 or 403 marked with the step-up it asks of the source's tokens
/// (more scopes, a stronger sign-in), if it asks for one.
#[cold]
fn mark_step_up(source: Option<(&TokenSource, Generation)>, mut response: Response) -> Response {
    let Some((source, generation)) = source else { return response };
    let scopes = source.config().scopes();
    if let Some(asked) = step_up::step_up(response.status(), response.headers(), scopes) {
        source.step_up(&asked, generation);
        response.extensions_mut().insert(asked);
    }
    response
}

/// [`finish`] for credentials with query keys.
#[cold]
fn redact_outcome(
    credentials: &Credentials,
    outcome: reqwest_middleware::Result<Response>,
) -> reqwest_middleware::Result<Response> {
    match outcome {
        Ok(response) => Ok(redact_response_url(credentials, response)),
        Err(reqwest_middleware::Error::Reqwest(mut error)) => {
            if let Some(url) = error.url_mut() {
                redact_url(credentials, url);
            }
            Err(reqwest_middleware::Error::Reqwest(error))
        }
        Err(other) => Err(other),
    }
}

/// Replaces the value of our query keys in `url`.
fn redact_url(credentials: &Credentials, url: &mut reqwest::Url) {
    if let Some(redacted) = url.query().and_then(|query| credentials.redact_query(query)) {
        url.set_query(Some(&redacted));
    }
}

/// The response with our query keys redacted from `Response::url()`.
fn redact_response_url(credentials: &Credentials, response: Response) -> Response {
    let mut url = response.url().clone();
    if url.query().and_then(|query| credentials.redact_query(query)).is_none() {
        return response;
    }
    redact_url(credentials, &mut url);
    let (mut parts, body) = http::Response::<reqwest::Body>::from(response).into_parts();
    let mut carrier = http::Response::builder().url(url).body(()).unwrap_or_default();
    parts.extensions.extend(std::mem::take(carrier.extensions_mut()));
    Response::from(http::Response::from_parts(parts, body))
}
