//! The token endpoint on the wire: the requests a lifecycle sends
//! ([`request`]: grants, revocation, the DPoP retry of a call) and how
//! their answers are read ([`response`]: RFC 6749 §5.1 and §5.2, as
//! providers really send them).

pub mod request;
pub mod response;
