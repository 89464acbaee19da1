//! What an [`AuthLayer`](crate::AuthLayer) does after a 401: replay the
//! request from a copy ([`ReplayOn401`], the default) or not
//! ([`NoReplay`]), and where a response future keeps that copy.

#[cfg(doc)]
use auth_core::publish::replay::ReplayCopies;

#[cfg(doc)]
use crate::body::ReplayBody;

/// The default 401 handling: every request whose body can be copied
/// ([`ReplayBody`]) keeps a copy of itself made before it is sent, and
/// after a 401 the copy is sent again with a renewed token (and once more
/// after a DPoP nonce demand), as providers tell their clients to do; the
/// rules are [`auth_core::publish::replay`]'s. The copy is held inline in the
/// response future (no allocation for a request without headers); a
/// request with headers boxes a clone of them.
///
/// [`AuthLayer::replay_copies`](crate::layer::AuthLayer::replay_copies) with [`ReplayCopies::AtRisk`] copies only
/// requests whose token is at risk (new, past its renewal point, of an
/// assumed lifetime or DPoP-bound, see [`auth_core::publish::slot`]): a settled
/// token revoked in the middle of its life then gives its 401 to the
/// caller, and the next request carries a new token.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOn401;

/// No replay: no copy is made, and a 401 goes back to the caller. The
/// token is still invalidated, so the next request carries a new one.
/// For APIs that never reject a token they issued before its expiry.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplay;

mod sealed {

    /// Where a response future keeps its replay copy: in its boxed state,
    /// or nowhere.
    pub trait Mode {
        /// Whether a copy is made at all.
        const REPLAYS: bool;
        /// A kept `T`: `T` itself, or an empty type.
        type Kept<T>;
        /// Keeps `t`, when this mode keeps anything.
        fn keep<T>(t: T) -> Option<Self::Kept<T>>;
        /// The kept `T`.
        fn take<T>(kept: Self::Kept<T>) -> T;
        /// The kept `T`, borrowed.
        fn get<T>(kept: &Self::Kept<T>) -> &T;
    }

    /// Has no value: what [`super::NoReplay`] keeps.
    pub enum Nothing {}
}

impl sealed::Mode for ReplayOn401 {
    const REPLAYS: bool = true;
    type Kept<T> = T;

    #[inline]
    fn keep<T>(t: T) -> Option<T> {
        Some(t)
    }

    fn take<T>(kept: T) -> T {
        kept
    }

    fn get<T>(kept: &T) -> &T {
        kept
    }
}

impl sealed::Mode for NoReplay {
    const REPLAYS: bool = false;
    type Kept<T> = sealed::Nothing;

    #[inline(always)]
    fn keep<T>(_t: T) -> Option<sealed::Nothing> {
        None
    }

    fn take<T>(kept: sealed::Nothing) -> T {
        match kept {}
    }

    fn get<T>(kept: &sealed::Nothing) -> &T {
        match *kept {}
    }
}

pub(crate) use sealed::Mode;
