//! A scripted browser for sign-in tests: it opens the authorization URL
//! an app produced, lets the provider sign its test user in (or deny, as
//! configured), and follows the redirects back to the app's redirect URI,
//! as a person's browser would, with no person and no browser.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderValue, Request, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};

/// How many redirects one [`Browser::open`] follows before it gives up.
const MAX_REDIRECTS: usize = 10;
/// How long one [`Browser::open`] may take, redirects included.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a page's body kept.
const MAX_BODY: usize = 1024 * 1024;

/// A browser that a test drives, from [`Provider::browser`](crate::Provider::browser).
///
/// It only visits `http://` addresses on this machine (`127.0.0.1`,
/// `localhost`, `[::1]`): the provider and the app under test. It keeps the
/// cookies each origin sets (name and value; attributes are ignored), so a
/// web app's session cookie goes with its callback. Its requests run on the
/// provider's own thread, so [`open`](Browser::open) can be awaited on any
/// runtime, including the single-threaded one of `#[tokio::test]` that
/// serves the app's redirect listener, and
/// [`open_blocking`](Browser::open_blocking) serves synchronous tests.
///
/// ```
/// use auth_testkit::{Provider, ProviderConfig};
///
/// let provider = Provider::start(ProviderConfig::new().public_client("app")).unwrap();
/// // An app would build this URL (with PKCE); a redirect URI nobody listens on
/// // shows what the provider answered.
/// let url = format!(
///     "{}?response_type=code&client_id=app&redirect_uri=http://127.0.0.1:9/cb\
///      &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=s1",
///     provider.authorization_url()
/// );
/// let error = provider.browser().open_blocking(&url).unwrap_err();
/// // The provider approved at once and sent the browser back to the app with a code.
/// let redirect = error.visited().last().unwrap();
/// assert!(redirect.starts_with("http://127.0.0.1:9/cb?code="));
/// ```
#[derive(Clone)]
pub struct Browser {
    runtime: tokio::runtime::Handle,
    cookies: Arc<Mutex<Cookies>>,
}

/// Cookies by origin (`host:port`), then by name.
type Cookies = BTreeMap<String, BTreeMap<String, String>>;

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").finish_non_exhaustive()
    }
}

/// The page a browser ended on, once no redirect was left to follow.
///
/// Its `Debug` output shows the URLs with their codes and tokens redacted;
/// the fields hold them as they were.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The page's URL.
    pub url: String,
    /// Its status.
    pub status: u16,
    /// Its body, as text (lossy; the first MiB).
    pub body: String,
    /// Every URL opened, in order, this page's last: the authorization
    /// URL, the redirect back to the app (with its `code` or `error`), ...
    pub visited: Vec<String>,
}

impl std::fmt::Debug for Page {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("url", &shown(&self.url))
            .field("status", &self.status)
            .field("body", &self.body)
            .field("visited", &self.visited.iter().map(|url| shown(url)).collect::<Vec<_>>())
            .finish()
    }
}

/// Why [`Browser::open`] did not reach a page. Its `Display` and `Debug`
/// show the URLs with their codes and tokens redacted;
/// [`visited`](BrowserError::visited) gives them as they were.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrowserError {
    reason: String,
    visited: Vec<String>,
}

impl BrowserError {
    /// Every URL opened before it failed; the last one is where it failed
    /// (a redirect nobody listens on, for one).
    pub fn visited(&self) -> &[String] {
        &self.visited
    }
}

impl std::fmt::Debug for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserError")
            .field("reason", &self.reason)
            .field("visited", &self.visited.iter().map(|url| shown(url)).collect::<Vec<_>>())
            .finish()
    }
}

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.visited.last() {
            Some(url) => write!(f, "the test browser could not open {}: {}", shown(url), self.reason),
            None => write!(f, "the test browser could not start: {}", self.reason),
        }
    }
}

impl std::error::Error for BrowserError {}

impl Browser {
    pub(crate) fn new(runtime: tokio::runtime::Handle) -> Self {
        Self { runtime, cookies: Arc::default() }
    }

    /// Opens `url` and follows redirects (up to ten) to the page they end
    /// on. For an authorization URL: the provider signs its test user in
    /// (or denies, with [`ProviderConfig::deny_sign_in`](crate::ProviderConfig::deny_sign_in))
    /// and sends the browser to the app's redirect URI, which gets the
    /// `code` (or `error`) and `state`; the page is what the app answered.
    /// A pushed request's URL (`client_id` and `request_uri`) works the same.
    pub async fn open(&self, url: &str) -> Result<Page, BrowserError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.spawn(url, move |result| {
            let _ = sender.send(result);
        });
        receiver.await.unwrap_or_else(|_| Err(stopped(url)))
    }

    /// [`open`](Browser::open) for synchronous tests. Do not call it from
    /// an async task that serves the app's redirect URI: that task could
    /// not answer while this waits (use [`open`](Browser::open) there).
    pub fn open_blocking(&self, url: &str) -> Result<Page, BrowserError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.spawn(url, move |result| {
            let _ = sender.send(result);
        });
        // The task gives up after OPEN_TIMEOUT; the margin covers its last step.
        receiver.recv_timeout(OPEN_TIMEOUT + Duration::from_secs(5)).unwrap_or_else(|_| Err(stopped(url)))
    }

    fn spawn(&self, url: &str, done: impl FnOnce(Result<Page, BrowserError>) + Send + 'static) {
        let (url, cookies) = (url.to_owned(), Arc::clone(&self.cookies));
        self.runtime.spawn(async move {
            let mut visited = Vec::new();
            let result = match tokio::time::timeout(OPEN_TIMEOUT, follow(&url, &cookies, &mut visited)).await {
                Ok(Ok(page)) => Ok(page),
                Ok(Err(reason)) => Err(BrowserError { reason, visited }),
                Err(_) => Err(BrowserError { reason: format!("no page within {OPEN_TIMEOUT:?}"), visited }),
            };
            done(result);
        });
    }
}

/// Query parameters whose values are secrets: an authorization code, and
/// tokens a redirect may carry.
const SECRET_PARAMS: [&str; 4] = ["code", "access_token", "id_token", "refresh_token"];

/// `url` as shown in errors and `Debug` output: secret parameters' values
/// replaced by `[redacted]`.
fn shown(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_owned() };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if SECRET_PARAMS.contains(&name) => format!("{name}=[redacted]"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn stopped(url: &str) -> BrowserError {
    BrowserError { reason: "the provider (and its browser) stopped".to_owned(), visited: vec![url.to_owned()] }
}

/// Opens `url`, following redirects; every URL opened goes to `visited`.
async fn follow(url: &str, cookies: &Mutex<Cookies>, visited: &mut Vec<String>) -> Result<Page, String> {
    let mut url = url.to_owned();
    loop {
        visited.push(url.clone());
        if visited.len() > MAX_REDIRECTS + 1 {
            return Err(format!("more than {MAX_REDIRECTS} redirects"));
        }
        let (status, location, body) = get(&url, cookies).await?;
        match location {
            Some(location) if (300..400).contains(&status) => url = resolve(&url, &location)?,
            _ => return Ok(Page { url, status, body, visited: visited.clone() }),
        }
    }
}

/// One GET: the status, the `Location` and the body.
async fn get(url: &str, cookies: &Mutex<Cookies>) -> Result<(u16, Option<String>, String), String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let origin = local_origin(&uri)?;
    let stream = tokio::net::TcpStream::connect(&origin).await.map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP failed: {e}"))?;
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // The Host header names the URL's authority (`localhost:8080` stays so).
    let host = uri.authority().map_or(origin.as_str(), |a| a.as_str());
    let mut request = Request::get(path).header(header::HOST, host);
    let sent = cookie_header(cookies, &origin);
    if let Some(sent) = sent {
        request = request.header(header::COOKIE, sent);
    }
    let request = request.body(Empty::<bytes::Bytes>::new()).map_err(|e| format!("not a valid request: {e}"))?;
    let answer = sender.send_request(request).await.map_err(|e| format!("HTTP failed: {e}"))?;
    let status = answer.status().as_u16();
    keep_cookies(cookies, &origin, answer.headers().get_all(header::SET_COOKIE).iter());
    let location = answer.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match Limited::new(answer.into_body(), MAX_BODY).collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(e) => return Err(format!("the body could not be read: {e}")),
    };
    Ok((status, location, body))
}

/// `host:port` of a plain-HTTP URL on this machine; anything else refused.
fn local_origin(uri: &Uri) -> Result<String, String> {
    if uri.scheme_str() != Some("http") {
        return Err("only http:// addresses on this machine are visited".to_owned());
    }
    let host = uri.host().unwrap_or_default();
    if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(format!("{host} is not this machine: the test browser stays on loopback"));
    }
    let host = if host == "localhost" { "127.0.0.1" } else { host };
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

/// A redirect's target: an absolute URL, or a path on the same origin.
fn resolve(from: &str, location: &str) -> Result<String, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_owned());
    }
    if !location.starts_with('/') || location.starts_with("//") {
        return Err(format!("a redirect to `{location}` is not followed (absolute URLs and paths only)"));
    }
    let uri: Uri = from.parse().map_err(|e| format!("not a URL: {e}"))?;
    let authority = uri.authority().map_or("", |a| a.as_str());
    Ok(format!("http://{authority}{location}"))
}

fn cookie_header(cookies: &Mutex<Cookies>, origin: &str) -> Option<HeaderValue> {
    let cookies = cookies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let jar = cookies.get(origin).filter(|jar| !jar.is_empty())?;
    let line: Vec<String> = jar.iter().map(|(name, value)| format!("{name}={value}")).collect();
    HeaderValue::from_str(&line.join("; ")).ok()
}

fn keep_cookies<'a>(cookies: &Mutex<Cookies>, origin: &str, set: impl Iterator<Item = &'a HeaderValue>) {
    let mut cookies = cookies.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    for value in set {
        let Some((name, value)) = value.to_str().ok().and_then(|v| v.split(';').next()?.split_once('=')) else {
            continue;
        };
        let jar = cookies.entry(origin.to_owned()).or_default();
        if value.is_empty() {
            jar.remove(name.trim());
        } else {
            jar.insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_is_visited() {
        let origin = |url: &str| local_origin(&url.parse().unwrap());
        assert_eq!(origin("http://127.0.0.1:8080/cb").unwrap(), "127.0.0.1:8080");
        assert_eq!(origin("http://localhost/cb").unwrap(), "127.0.0.1:80");
        assert!(origin("https://127.0.0.1/cb").is_err());
        assert!(origin("http://example.com/cb").unwrap_err().contains("loopback"));
    }

    #[test]
    fn redirects_resolve_absolute_urls_and_paths_only() {
        assert_eq!(resolve("http://127.0.0.1:1/a?b", "/me").unwrap(), "http://127.0.0.1:1/me");
        assert_eq!(resolve("http://127.0.0.1:1/a", "http://127.0.0.1:2/x").unwrap(), "http://127.0.0.1:2/x");
        assert!(resolve("http://127.0.0.1:1/a", "me").is_err());
        assert!(resolve("http://127.0.0.1:1/a", "//evil/").is_err());
    }

    #[test]
    fn codes_and_tokens_are_not_shown() {
        let url = "http://127.0.0.1:9/cb?code=c-123&state=s1&access_token=at-9";
        assert_eq!(shown(url), "http://127.0.0.1:9/cb?code=[redacted]&state=s1&access_token=[redacted]");
        let error = BrowserError { reason: "cannot connect".to_owned(), visited: vec![url.to_owned()] };
        for text in [error.to_string(), format!("{error:?}")] {
            assert!(!text.contains("c-123") && !text.contains("at-9") && text.contains("state=s1"), "{text}");
        }
        assert_eq!(error.visited(), [url], "the test reads them as they were");
        let page = Page { url: url.to_owned(), status: 200, body: String::new(), visited: vec![url.to_owned()] };
        assert!(!format!("{page:?}").contains("c-123"));
    }

    #[test]
    fn cookies_go_back_to_their_origin_only() {
        let jar = Mutex::new(Cookies::new());
        let set = [HeaderValue::from_static("session=abc; Path=/; HttpOnly"), HeaderValue::from_static("x=1")];
        keep_cookies(&jar, "127.0.0.1:1", set.iter());
        assert_eq!(cookie_header(&jar, "127.0.0.1:1").unwrap(), "session=abc; x=1");
        assert!(cookie_header(&jar, "127.0.0.1:2").is_none());
        keep_cookies(&jar, "127.0.0.1:1", [HeaderValue::from_static("session=; Max-Age=0")].iter());
        assert_eq!(cookie_header(&jar, "127.0.0.1:1").unwrap(), "x=1");
    }
}
