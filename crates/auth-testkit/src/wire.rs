//! Answers and parameters as they go over HTTP.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};

pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
}

pub(crate) fn json(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response<Body> {
    json(status, serde_json::json!({ "error": code, "error_description": description }))
}

/// The request's parameters, from a form or JSON body.
pub(crate) fn params(headers: &HeaderMap, body: &[u8]) -> (Vec<(String, String)>, bool) {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let mut out = Vec::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
            for (key, value) in map {
                match value {
                    serde_json::Value::String(s) => out.push((key, s)),
                    serde_json::Value::Array(items) => {
                        out.extend(items.into_iter().filter_map(|i| i.as_str().map(|s| (key.clone(), s.to_owned()))))
                    }
                    other => out.push((key, other.to_string())),
                }
            }
        }
        (out, true)
    } else {
        (form_urlencoded::parse(body).into_owned().collect(), false)
    }
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The `invalid_client` answer for a client that tried `method`.
pub(crate) fn refusal(method: &str) -> Response<Body> {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    if method.starts_with("basic") {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"token\""));
    }
    response
}

pub(crate) fn html(status: StatusCode, title: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(format!(
        "<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    )));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// A parameter of the authorization request's query.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// `redirect_uri` with `params` added to its query.
pub(crate) fn redirect(redirect_uri: &str, params: &[(&str, &str)]) -> Response<Body> {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params.iter());
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", query.finish());
    let mut response = text(StatusCode::FOUND, "");
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// An OAuth error code and description, answered with 400.
pub(crate) type Refused = (&'static str, &'static str);
