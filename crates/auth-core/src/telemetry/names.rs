//! The values spans and metrics give the lifecycle's words: short, from
//! closed lists, never a secret.

use crate::lifecycle::{FetchReason, GrantKind, TokenOrigin};
use crate::store::{StoreAnswer, StoreError};

/// `auth.reason`: why a token was requested.
pub(super) fn reason(reason: FetchReason) -> &'static str {
    match reason {
        FetchReason::NoToken => "no_token",
        FetchReason::Renewal => "renewal",
        FetchReason::Unauthorized => "unauthorized",
    }
}

/// `auth.grant`.
pub(super) fn grant(grant: GrantKind) -> &'static str {
    match grant {
        GrantKind::ClientCredentials => "client_credentials",
        GrantKind::RefreshToken => "refresh_token",
        GrantKind::JwtBearer => "jwt_bearer",
        GrantKind::TokenExchange => "token_exchange",
    }
}

/// `auth.token.origin`.
#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
pub(super) fn origin(origin: TokenOrigin) -> &'static str {
    match origin {
        TokenOrigin::Fetched => "fetched",
        TokenOrigin::Adopted => "adopted",
        TokenOrigin::SignedIn => "signed_in",
        TokenOrigin::Restored => "restored",
    }
}

/// `auth.outcome` of a store operation.
pub(super) fn store_outcome(answer: &Result<StoreAnswer, StoreError>) -> &'static str {
    match answer {
        Ok(_) => "ok",
        Err(error) if error.timeout => "timeout",
        Err(_) => "error",
    }
}
