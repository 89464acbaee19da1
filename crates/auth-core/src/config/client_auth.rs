//! How a client authenticates at the token endpoint, and which grant a
//! source stands for.

#[cfg(doc)]
use super::SourceConfigBuilder;

use std::fmt;

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the id and secret each
    /// form-urlencoded first, as RFC 6749 §2.3.1 requires. Every byte outside
    /// the unreserved set is percent-encoded and a space becomes `%20`, the
    /// one encoding that both strict and lenient servers accept. The default.
    #[default]
    Basic,
    /// HTTP Basic without the §2.3.1 encoding (RFC 2617 style), for servers
    /// that reject encoded values. Only differs from [`ClientAuth::Basic`]
    /// when the id or secret holds a byte outside `A-Z a-z 0-9 - . _ ~`.
    BasicRaw,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
    /// A JSON body holding `grant_type`, `client_id`, `client_secret` and the
    /// request parameters (`audience`, `scope`, ...), as some providers
    /// document it.
    Json,
    /// No client authentication (a public client): only `client_id` is sent.
    None,
    /// `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): a JWT
    /// signed with the client's private key
    /// ([`SourceConfigBuilder::signing_key`]), made fresh for every request;
    /// no secret is sent. The default when a signing key is set.
    PrivateKeyJwt,
    /// `client_secret_jwt`: a JWT signed with HMAC-SHA256 keyed by the
    /// client secret, made fresh for every request; the secret itself is
    /// never sent.
    ClientSecretJwt,
    /// `tls_client_auth` (RFC 8705 §2.1): the client authenticates with a
    /// PKI-issued certificate in the TLS handshake
    /// ([`SourceConfigBuilder::client_certificate`]); only `client_id` is
    /// sent. The default when a certificate is set and no secret or key.
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): like
    /// [`ClientAuth::TlsClientAuth`] with a self-signed certificate
    /// registered with the provider.
    SelfSignedTlsClientAuth,
}

impl ClientAuth {
    /// The name used in configuration files and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::BasicRaw => "basic-raw",
            Self::Post => "post",
            Self::Json => "json",
            Self::None => "none",
            Self::PrivateKeyJwt => "private-key-jwt",
            Self::ClientSecretJwt => "client-secret-jwt",
            Self::TlsClientAuth => "tls-client-auth",
            Self::SelfSignedTlsClientAuth => "self-signed-tls-client-auth",
        }
    }

    /// The RFC 8414 / IANA name (`client_secret_basic`, `private_key_jwt`...).
    pub fn registered_name(self) -> &'static str {
        match self {
            Self::Basic | Self::BasicRaw => "client_secret_basic",
            Self::Post | Self::Json => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client proves itself with a TLS client certificate
    /// (RFC 8705), which the transport must present.
    pub fn uses_tls_certificate(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }

    /// Parses the name used in configuration files (`basic`, `basic-raw`,
    /// `post`, `json`, `none`, `private-key-jwt`, `client-secret-jwt`,
    /// `tls-client-auth`, `self-signed-tls-client-auth`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|method| method.as_str() == name)
    }

    /// Every method, in the order a command line lists them.
    pub const ALL: [Self; 9] = [
        Self::Basic,
        Self::BasicRaw,
        Self::Post,
        Self::Json,
        Self::None,
        Self::PrivateKeyJwt,
        Self::ClientSecretJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
    ];

    /// The method a client uses when none is chosen: `private_key_jwt` with
    /// a signing key and no secret; `tls_client_auth` for client
    /// credentials with only a TLS client certificate; none (a public
    /// client) for a user's sign-in or a JWT bearer grant without a secret
    /// or key; HTTP Basic otherwise.
    pub fn default_for(grant: SourceGrant, has_secret: bool, has_key: bool, has_certificate: bool) -> Self {
        match (grant, has_secret, has_key) {
            (_, false, true) => Self::PrivateKeyJwt,
            (SourceGrant::ClientCredentials, false, false) if has_certificate => Self::TlsClientAuth,
            (SourceGrant::SignIn | SourceGrant::JwtBearer | SourceGrant::TokenExchange, false, false) => Self::None,
            _ => Self::Basic,
        }
    }

    /// Whether the method needs the client secret (`basic`, `basic-raw`,
    /// `post`, `json`, `client-secret-jwt`).
    pub fn needs_secret(self) -> bool {
        matches!(self, Self::Basic | Self::BasicRaw | Self::Post | Self::Json | Self::ClientSecretJwt)
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which grant a token source stands for: what it may send to obtain and
/// renew its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SourceGrant {
    /// The application's own identity: the client credentials grant (and
    /// the provider's refresh token, when it issues one, falling back to
    /// client credentials when that is rejected). The default.
    #[default]
    ClientCredentials,
    /// A user's tokens, obtained by a sign-in (authorization code or device
    /// authorization) and installed with
    /// [`Lifecycle::handle_sign_in`](crate::Lifecycle::handle_sign_in) or
    /// restored. The source renews them only with the user's refresh
    /// token and never asks for a client credentials token in the user's
    /// place: with no refresh token, or a rejected one, callers get
    /// [`TokenError::SignInRequired`](crate::TokenError::SignInRequired).
    /// A client without a secret (a native app, a CLI) is a public client
    /// ([`ClientAuth::None`]) unless another method is set.
    SignIn,
    /// The RFC 7523 §2.1 JWT bearer grant: the token is asked for with an
    /// assertion ([`SourceConfigBuilder::jwt_bearer`]), made fresh for every
    /// request; renewal sends a new one (or the provider's refresh token).
    JwtBearer,
    /// The RFC 8693 token exchange: a subject token (and an actor token),
    /// supplied from outside at every request, is exchanged for the token
    /// ([`SourceConfigBuilder::token_exchange`]).
    TokenExchange,
}

impl SourceGrant {
    /// The name used in cache keys and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientCredentials => "client_credentials",
            Self::SignIn => "sign_in",
            Self::JwtBearer => "jwt_bearer",
            Self::TokenExchange => "token_exchange",
        }
    }
}
