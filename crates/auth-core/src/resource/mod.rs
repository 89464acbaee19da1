//! What an API says about itself (sans-IO): the challenges of its 401 and
//! 403 answers ([`challenge`]), what a refusal asks of the next token
//! ([`step_up`]: more scopes, a stronger sign-in), and its protected
//! resource metadata ([`metadata`], RFC 9728): which authorization server
//! to sign in at, and which origins a client may contact to find out;
//! what discovery found and the client registered there, kept in the
//! token store ([`discovered`]).

pub mod challenge;
pub mod discovered;
pub mod from_url;
pub mod metadata;
pub mod step_up;
