//! Sign-in for apps that act for a user, sans-IO: the authorization code
//! flow with PKCE ([`authorize`]), the device flow ([`device`]), and the
//! authorization server metadata both start from ([`discovery`]), and the
//! registration of a client that has no id yet ([`registration`]). The
//! tokens a sign-in yields go into a lifecycle through
//! [`Lifecycle::handle_sign_in`](crate::lifecycle::Lifecycle::handle_sign_in).

pub mod authorize;
pub mod device;
pub mod discovery;
pub mod registration;
