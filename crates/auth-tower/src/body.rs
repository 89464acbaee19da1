//! Request bodies that can be replayed after a 401.
//!
//! A request is replayed only if a copy of it was made *before* it was
//! sent. [`ReplayBody::try_clone_body`] makes that copy; bodies that cannot
//! be copied (streams) answer `None`, and such a request gets its 401 back
//! unchanged (the token is still invalidated, so the next request works).

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, combinators::UnsyncBoxBody, Empty, Full};

/// A request body the [`Auth`](crate::Auth) layer may copy before sending,
/// to replay the request once after a 401.
///
/// Implemented for the in-memory bodies (`Full`, `Empty`, `String`,
/// `Vec<u8>`, `Bytes`, `()`), for [`ReplayableBody`], and as "never
/// replayable" for the boxed stream bodies. Implement it for your own body
/// type: return `None` for anything that streams.
pub trait ReplayBody: Sized {
    /// A copy of the body, if it can be sent again.
    fn try_clone_body(&self) -> Option<Self>;
}

macro_rules! replay_by_clone {
    ($($ty:ty),*) => {$(
        impl ReplayBody for $ty {
            fn try_clone_body(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}
replay_by_clone!((), String, Vec<u8>, Bytes);

impl<D: Clone> ReplayBody for Full<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for Empty<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

impl<D, E> ReplayBody for BoxBody<D, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

impl<D, E> ReplayBody for UnsyncBoxBody<D, E> {
    fn try_clone_body(&self) -> Option<Self> {
        None
    }
}

/// A body that is either fully in memory (replayable) or a stream (not).
///
/// Use it as the request body type of a client stack that sends both
/// kinds: in-memory requests get the 401 replay, streaming ones pass
/// through once.
#[derive(Debug)]
pub enum ReplayableBody {
    /// In memory: replayable.
    Full(Full<Bytes>),
    /// A stream: sent once, never replayed.
    Stream(UnsyncBoxBody<Bytes, crate::error::BoxError>),
}

impl ReplayableBody {
    /// An in-memory body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Full::new(bytes.into()))
    }

    /// A streaming body.
    pub fn stream<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<crate::error::BoxError>,
    {
        use http_body_util::BodyExt;
        Self::Stream(body.map_err(Into::into).boxed_unsync())
    }
}

impl ReplayBody for ReplayableBody {
    fn try_clone_body(&self) -> Option<Self> {
        match self {
            Self::Full(body) => Some(Self::Full(body.clone())),
            Self::Stream(_) => None,
        }
    }
}

impl http_body::Body for ReplayableBody {
    type Data = Bytes;
    type Error = crate::error::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            Self::Full(body) => std::pin::Pin::new(body).poll_frame(cx).map_err(|never| match never {}),
            Self::Stream(body) => std::pin::Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(body) => body.is_end_stream(),
            Self::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Self::Full(body) => body.size_hint(),
            Self::Stream(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn in_memory_bodies_copy_and_streams_do_not() {
        assert!(Full::new(Bytes::from_static(b"x")).try_clone_body().is_some());
        assert!(Empty::<Bytes>::new().try_clone_body().is_some());
        assert_eq!(String::from("a").try_clone_body().as_deref(), Some("a"));
        let boxed: BoxBody<Bytes, std::convert::Infallible> = Full::new(Bytes::new()).boxed();
        assert!(boxed.try_clone_body().is_none());
        assert!(ReplayableBody::full("abc").try_clone_body().is_some());
        assert!(ReplayableBody::stream(Full::new(Bytes::new())).try_clone_body().is_none());
    }

    #[tokio::test]
    async fn replayable_body_streams_its_bytes() {
        let body = ReplayableBody::full("hello");
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
    }
}
