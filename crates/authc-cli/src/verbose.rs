//! `authc request -v`: the token request and the API requests as they go
//! out, and the status lines and headers that come back, on stderr, with
//! every credential shown as `[redacted]`.

use std::sync::Arc;

use auth_core::Credentials;
use http::{HeaderMap, HeaderName};

/// What to redact in what is shown.
#[derive(Clone)]
pub struct Redaction {
    /// Headers whose values are credentials (besides `Authorization`, the
    /// proxy's, and cookies).
    headers: Arc<Vec<HeaderName>>,
    /// The credentials, for API keys in a query.
    credentials: Option<Arc<Credentials>>,
}

/// Headers that always hold credentials.
const ALWAYS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

impl Redaction {
    pub fn new(api_key_header: Option<&str>, credentials: Credentials) -> Self {
        let headers =
            api_key_header.and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok()).into_iter().collect();
        Self { headers: Arc::new(headers), credentials: Some(Arc::new(credentials)) }
    }

    /// For token endpoint exchanges (the client's credentials are in
    /// `Authorization` or the body, never in the query).
    fn for_tokens() -> Self {
        Self { headers: Arc::new(Vec::new()), credentials: None }
    }

    fn secret_header(&self, name: &HeaderName) -> bool {
        ALWAYS.contains(&name.as_str()) || self.headers.contains(name)
    }

    /// `> METHOD URL` and `> name: value` lines.
    pub fn request(&self, method: &http::Method, url: &reqwest::Url, headers: &HeaderMap) -> String {
        let mut shown = url.clone();
        let redacted = url.query().zip(self.credentials.as_ref()).and_then(|(query, c)| c.redact_query(query));
        if let Some(redacted) = redacted {
            shown.set_query(Some(&redacted));
        }
        let mut text = format!("> {method} {shown}\n");
        self.header_lines(&mut text, '>', headers);
        text
    }

    /// `< STATUS` and `< name: value` lines.
    pub fn response(&self, version: http::Version, status: http::StatusCode, headers: &HeaderMap) -> String {
        let mut text = format!("< {version:?} {status}\n");
        self.header_lines(&mut text, '<', headers);
        text
    }

    fn header_lines(&self, text: &mut String, mark: char, headers: &HeaderMap) {
        for (name, value) in headers {
            let value = if self.secret_header(name) {
                "[redacted]".into()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            text.push_str(&format!("{mark} {name}: {value}\n"));
        }
    }
}

/// Shows each API request after the credentials were applied (the 401
/// replay included) and each answer.
pub struct Verbose(pub Redaction);

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Verbose {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware::Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        eprint!("{}", self.0.request(request.method(), request.url(), request.headers()));
        let response = next.run(request, extensions).await?;
        eprint!("{}", self.0.response(response.version(), response.status(), response.headers()));
        Ok(response)
    }
}

/// Shows a token (or revocation) request: its line and headers, and the
/// size of its body, which holds the client credentials and is not shown.
pub fn token_request(request: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let redaction = Redaction::for_tokens();
    if let Ok(url) = reqwest::Url::parse(&request.uri().to_string()) {
        eprint!("{}", redaction.request(request.method(), &url, request.headers()));
        eprintln!("> ({} bytes of form or JSON, not shown: they hold the client credentials)", request.body().len());
    }
    request
}

/// Shows a token endpoint's answer: status line and headers (the body holds
/// the token and is not shown).
pub fn token_response<B>(response: http::Response<B>) -> http::Response<B> {
    let redaction = Redaction::for_tokens();
    eprint!("{}", redaction.response(response.version(), response.status(), response.headers()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_headers_and_the_query_are_redacted() {
        let credentials = Credentials::builder()
            .api_key_query("api_key", "k-1")
            .api_key_header("X-API-Key", "k-1")
            .any_origin()
            .build()
            .unwrap();
        let redaction = Redaction::new(Some("X-API-Key"), credentials);
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer at-secret".parse().unwrap());
        headers.insert("x-api-key", "k-1".parse().unwrap());
        headers.insert("accept", "application/json".parse().unwrap());
        let url = reqwest::Url::parse("https://api.example.com/v1?api_key=k-1&page=2").unwrap();
        let shown = redaction.request(&http::Method::GET, &url, &headers);
        assert!(!shown.contains("k-1") && !shown.contains("at-secret"), "{shown}");
        assert!(shown.contains("> authorization: [redacted]") && shown.contains("> accept: application/json"));
        assert!(shown.contains("api_key=[redacted]&page=2"), "{shown}");
    }
}
