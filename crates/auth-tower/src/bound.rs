//! What every service an [`AuthLayer`](crate::AuthLayer) wraps shares:
//! the credentials, the token source they take their token from, and which
//! requests keep a copy for a 401.

use auth_core::publish::replay::ReplayCopies;
use auth_core::{Credentials, Generation};

use crate::handoff::TokenFuture;
use crate::source::{SourceId, TokenSource};

/// The credentials, with the token source when they carry its token.
#[derive(Debug, Clone)]
pub(crate) struct Bound {
    pub(crate) credentials: Credentials,
    pub(crate) source: Option<TokenSource>,
    /// Which requests keep a copy for a 401.
    pub(crate) copies: ReplayCopies,
}

impl Bound {
    #[inline]
    pub(crate) fn source_id(&self) -> SourceId {
        self.source.as_ref().map_or(SourceId::NONE, TokenSource::id)
    }

    /// Reports a 401 and waits for the token to send again with.
    pub(crate) fn unauthorized(&self, generation: Generation) -> TokenFuture {
        match &self.source {
            Some(source) => source.unauthorized(generation),
            None => TokenFuture::stopped(),
        }
    }
}
