//! The copy of a request kept to send it again after a 401, made before
//! it is sent (so before credentials are put on it).
//!
//! Its body and a spare inner service stay in the response future; the
//! rest (method, URI, version, the caller's headers and extensions, the
//! credentials and the token it carries) goes in a box that each thread
//! recycles: a box taken for a request is given back to its thread when
//! the answer needs no replay, and the next request there takes it again.
//! So the response future stays small enough to move without a call to
//! `memcpy`, and a request that keeps a copy allocates nothing once its
//! thread has a spare box.

use std::cell::Cell;
use std::sync::Arc;

use auth_core::{AccessToken, Generation};
use http::Request;

use crate::body::ReplayBody;
use crate::bound::Bound;

/// What a replay needs of a request besides its body and service.
pub(crate) struct Parts {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    /// Headers and extensions, when the request had any: most requests of
    /// a tower client carry none at this point, and then nothing is cloned
    /// and nothing allocated.
    rest: Option<Box<(http::HeaderMap, http::Extensions)>>,
    /// The credentials (a request in flight keeps them, whether or not
    /// the service that sent it is still there: `oneshot` drops it).
    pub(crate) bound: Arc<Bound>,
    /// The token the request was sent with.
    pub(crate) generation: Generation,
    /// Whether that token was at risk (an answer other than 401 is news
    /// to its slot).
    pub(crate) at_risk: bool,
}

thread_local! {
    /// This thread's spare box for [`Parts`] (empty).
    static SPARE: Cell<Option<Box<Option<Parts>>>> = const { Cell::new(None) };
}

/// [`Parts`] in a box taken from this thread's spare (or allocated when
/// there is none) and given back to the thread that drops it.
struct Recycled(Option<Box<Option<Parts>>>);

impl Recycled {
    /// `make()` in this thread's spare box (or a new one). The parts are
    /// made in place, not moved in.
    #[inline(always)]
    fn new(make: impl FnOnce() -> Parts) -> Self {
        let mut slot = SPARE.try_with(Cell::take).ok().flatten().unwrap_or_else(|| Box::new(None));
        slot.get_or_insert_with(make);
        Self(Some(slot))
    }

    #[inline(always)]
    fn get(&self) -> Option<&Parts> {
        self.0.as_deref().and_then(Option::as_ref)
    }

    /// The parts, moved out (the box goes back to the spare on drop).
    fn take(&mut self) -> Option<Parts> {
        self.0.as_deref_mut().and_then(Option::take)
    }
}

impl Drop for Recycled {
    #[inline]
    fn drop(&mut self) {
        if let Some(mut slot) = self.0.take() {
            // Emptied first: a spare holds no credentials and no token.
            *slot = None;
            let _ = SPARE.try_with(|spare| spare.set(Some(slot)));
        }
    }
}

/// The copy of a request to send again after a 401, with a spare inner
/// service.
pub(crate) struct Copy<S, B> {
    parts: Recycled,
    body: B,
    service: S,
}

impl<S: Clone, B: ReplayBody> Copy<S, B> {
    /// A copy of `request`, to be sent with the token of `generation`
    /// (whose risk is `at_risk`), when its body can be copied.
    #[inline(always)]
    pub(crate) fn of(
        request: &Request<B>,
        service: &S,
        bound: &Arc<Bound>,
        generation: Generation,
        at_risk: bool,
    ) -> Option<Self> {
        let body = request.body().try_clone_body()?;
        let parts = Recycled::new(|| Parts {
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            rest: (!request.headers().is_empty() || !request.extensions().is_empty())
                .then(|| Box::new((request.headers().clone(), request.extensions().clone()))),
            bound: Arc::clone(bound),
            generation,
            at_risk,
        });
        Some(Self { parts, body, service: service.clone() })
    }
}

impl<S, B> Copy<S, B> {
    /// The parts of the copy (always there until it is sent).
    #[inline(always)]
    pub(crate) fn parts(&self) -> Option<&Parts> {
        self.parts.get()
    }

    /// The copy as a request to send with `token`; `None` if its parts
    /// were taken already.
    pub(crate) fn into_resend(mut self, token: Arc<AccessToken>) -> Option<Resend<S, B>> {
        let parts = self.parts.take()?;
        let mut request = Request::new(self.body);
        *request.method_mut() = parts.method;
        *request.uri_mut() = parts.uri;
        *request.version_mut() = parts.version;
        if let Some(rest) = parts.rest {
            let (headers, extensions) = *rest;
            *request.headers_mut() = headers;
            *request.extensions_mut() = extensions;
        }
        Some(Resend { request, service: self.service, bound: parts.bound, token })
    }
}

/// A request about to be sent again: the copy rebuilt, the service it
/// goes to (made ready first), and the token it carries.
pub(crate) struct Resend<S, B> {
    pub(crate) request: Request<B>,
    pub(crate) service: S,
    pub(crate) bound: Arc<Bound>,
    pub(crate) token: Arc<AccessToken>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::AuthLayer;
    use auth_core::Credentials;

    /// A token a lifecycle issued.
    pub(crate) fn a_token() -> Arc<AccessToken> {
        let config = auth_core::SourceConfig::builder("https://a.example/token", "id").client_secret("s").build();
        let mut lifecycle = auth_core::Lifecycle::new(config.unwrap(), 1);
        let now = std::time::Instant::now();
        lifecycle.handle_token_wanted(now);
        let Some(auth_core::Output::Fetch(fetch)) = lifecycle.poll_output() else { panic!("a fetch") };
        let response = http::Response::new(br#"{"access_token":"t","expires_in":60}"#.to_vec());
        lifecycle.handle_fetch_response(now, std::time::SystemTime::now(), fetch.id, &response);
        Arc::clone(lifecycle.current_token(now).expect("a token"))
    }

    fn bound() -> Arc<Bound> {
        let credentials = Credentials::builder().api_key_header("X-API-Key", "k").any_origin().build().unwrap();
        AuthLayer::without_source(credentials).unwrap().bound()
    }

    #[test]
    fn a_replay_is_the_request_as_it_was_before_the_credentials() {
        let mut request = http::Request::post("https://api.example.com/x?y=1")
            .header("x-trace", "1")
            .version(http::Version::HTTP_2)
            .body(String::from("payload"))
            .unwrap();
        request.extensions_mut().insert(7u32);
        let token = a_token();
        let copy = Copy::of(&request, &(), &bound(), token.generation(), false).expect("a body that copies");
        request.headers_mut().insert("x-added-after", http::HeaderValue::from_static("1"));
        let replay = copy.into_resend(Arc::clone(&token)).expect("parts").request;
        assert_eq!(replay.method(), "POST");
        assert_eq!(replay.uri(), "https://api.example.com/x?y=1");
        assert_eq!(replay.version(), http::Version::HTTP_2);
        assert_eq!(replay.headers().len(), 1, "the headers it had, not those added after the copy");
        assert_eq!(replay.headers()["x-trace"], "1");
        assert_eq!(replay.extensions().get::<u32>(), Some(&7));
        assert_eq!(replay.body(), "payload");
        let bare = Copy::of(&http::Request::new(()), &(), &bound(), token.generation(), false).unwrap();
        assert!(bare.parts().is_some_and(|parts| parts.rest.is_none()), "a request without headers copies none");
        let bare = bare.into_resend(token).unwrap().request;
        assert!(bare.headers().is_empty() && bare.extensions().is_empty());
    }

    #[test]
    fn a_thread_reuses_its_box_and_a_spare_keeps_no_credentials() {
        let bound = bound();
        let token = a_token();
        let first = Copy::of(&http::Request::new(()), &(), &bound, token.generation(), false).unwrap();
        let address = first.parts().map(|parts| parts as *const Parts as usize);
        assert_eq!(Arc::strong_count(&bound), 2, "the copy holds the credentials");
        drop(first);
        assert_eq!(Arc::strong_count(&bound), 1, "the spare box holds nothing");
        let second = Copy::of(&http::Request::new(()), &(), &bound, token.generation(), true).unwrap();
        assert_eq!(second.parts().map(|parts| parts as *const Parts as usize), address, "the same box");
        // Two copies alive at once: the second gets a box of its own.
        let third = Copy::of(&http::Request::new(()), &(), &bound, token.generation(), true).unwrap();
        assert_ne!(third.parts().map(|parts| parts as *const Parts as usize), address);
        assert!(second.parts().is_some_and(|parts| parts.at_risk));
    }
}
