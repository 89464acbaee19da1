//! The copy of a request kept to send it again after a 401, made before
//! it is sent: only what the response cannot give back.

use std::time::Duration;

use http::Version;
use reqwest::{Request, Response};

/// What a replay after a 401 needs, copied before the send: only what the
/// response cannot give back, and nothing that allocates for a request
/// without headers or body. The URL is not copied: a 401 that was not
/// redirected comes with the URL it was sent to (`Response::url`), and a
/// print of the sent URL tells whether it was redirected.
pub(crate) enum ReplayCopy {
    /// The parts of a request without a body, and the print of the URL it
    /// was sent to (credentials on).
    Parts {
        method: http::Method,
        headers: Option<Box<http::HeaderMap>>,
        timeout: Option<Duration>,
        version: Version,
        sent: UrlPrint,
    },
    /// A request with an in-memory body: copied whole (`Request::try_clone`),
    /// boxed so that the common path's future stays small.
    Whole(Box<Request>),
}

impl ReplayCopy {
    /// `None` when the request cannot be sent again (a streaming body).
    pub(crate) fn before_send(request: &Request) -> Option<Self> {
        if request.body().is_some() {
            return request.try_clone().map(|copy| Self::Whole(Box::new(copy)));
        }
        let headers = (!request.headers().is_empty()).then(|| Box::new(request.headers().clone()));
        let (method, timeout, version) = (request.method().clone(), request.timeout().copied(), request.version());
        Some(Self::Parts { method, headers, timeout, version, sent: UrlPrint::default() })
    }

    /// Notes the URL the request goes out to, its credentials on.
    pub(crate) fn sent_to(&mut self, url: &reqwest::Url) {
        if let Self::Parts { sent, .. } = self {
            *sent = UrlPrint::of(url);
        }
    }

    /// The request to replay after `response` (a 401): `None` when the
    /// response came from a redirect (not the URL that was sent), which
    /// is not replayed.
    pub(crate) fn into_request(self, response: &Response) -> Option<Request> {
        match self {
            Self::Whole(request) => Some(*request),
            Self::Parts { method, headers, timeout, version, sent } => {
                if UrlPrint::of(response.url()) != sent {
                    return None;
                }
                let mut request = Request::new(method, response.url().clone());
                if let Some(headers) = headers {
                    *request.headers_mut() = *headers;
                }
                *request.timeout_mut() = timeout;
                *request.version_mut() = version;
                Some(request)
            }
        }
    }
}

/// A print of a URL (length and a 64-bit hash), to tell whether a response
/// came from the URL that was sent without keeping a copy of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UrlPrint(usize, u64);

impl UrlPrint {
    /// Length and a multiply-xor hash over 8-byte words. Not a defence
    /// against a server that makes two URLs print alike: a replay goes only
    /// to an origin the credentials are for, checked again before it is
    /// sent, and the redirect itself took them there.
    fn of(url: &reqwest::Url) -> Self {
        let bytes = url.as_str().as_bytes();
        let mut words = bytes.chunks_exact(8);
        let mix = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
        let mut hash =
            words.by_ref().fold(0, |hash, word| mix(hash, u64::from_le_bytes(word.try_into().unwrap_or_default())));
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        hash = mix(hash, u64::from_le_bytes(tail));
        Self(bytes.len(), hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::ResponseBuilderExt as _;

    fn answer_from(url: &str) -> Response {
        let url = reqwest::Url::parse(url).unwrap();
        Response::from(http::Response::builder().status(401).url(url).body("").unwrap())
    }

    #[test]
    fn a_request_without_a_body_is_rebuilt_from_its_401_unless_that_came_from_elsewhere() {
        let url = reqwest::Url::parse("https://api.example.com/v1/items?page=2").unwrap();
        let mut request = Request::new(reqwest::Method::DELETE, url.clone());
        request.headers_mut().insert("x-trace", http::HeaderValue::from_static("1"));
        let mut copy = ReplayCopy::before_send(&request).expect("no body: copied");
        copy.sent_to(&url);
        let mut copy_again = ReplayCopy::before_send(&request).unwrap();
        copy_again.sent_to(&url);
        let replay = copy.into_request(&answer_from(url.as_str())).expect("the same URL");
        assert_eq!((replay.method(), replay.url()), (&reqwest::Method::DELETE, &url));
        assert_eq!(replay.headers()["x-trace"], "1");
        // A 401 from a redirect's target is not replayed.
        assert!(copy_again.into_request(&answer_from("https://api.example.com/v1/moved")).is_none());
        assert_ne!(
            UrlPrint::of(&url),
            UrlPrint::of(&reqwest::Url::parse("https://api.example.com/v1/items?page=3").unwrap())
        );
    }

    #[test]
    fn a_streaming_body_is_not_copied() {
        let url = reqwest::Url::parse("https://api.example.com/upload").unwrap();
        let mut request = Request::new(reqwest::Method::PUT, url);
        let chunks = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from("chunk"))]);
        *request.body_mut() = Some(reqwest::Body::wrap_stream(chunks));
        assert!(ReplayCopy::before_send(&request).is_none());
        *request.body_mut() = Some(reqwest::Body::from("buffered"));
        assert!(matches!(ReplayCopy::before_send(&request), Some(ReplayCopy::Whole(_))));
    }
}
