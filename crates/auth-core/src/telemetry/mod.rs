//! What operators see of a token source's work: `tracing` spans around
//! each token request, store operation, sign-in and revocation
//! ([`spans`], always), OpenTelemetry metrics (feature `opentelemetry`:
//! `Meters`), and the trace context carried into the token endpoint
//! (feature `trace-context`). All of it is recorded on the token path,
//! never for a request that has a settled token.
//!
//! A driver keeps one [`Telemetry`] per token source and tells it what
//! happens: callers that wait, the lifecycle's observations, each token
//! request and store operation it carries out. The names, fields and
//! attributes are decided here, once for every driver.
//!
//! ```
//! use auth_core::lifecycle::{Observation, RequestOutcome};
//! use auth_core::telemetry::Telemetry;
//! use auth_core::{FetchReason, GrantKind};
//!
//! let mut telemetry = Telemetry::default();
//! telemetry.observed(&Observation::TokenRequest {
//!     reason: FetchReason::Renewal,
//!     grant: GrantKind::ClientCredentials,
//!     outcome: RequestOutcome::Granted,
//!     took: std::time::Duration::from_millis(120),
//! });
//! ```

#[cfg(feature = "trace-context")]
mod context;
#[cfg(feature = "opentelemetry")]
mod meters;
mod names;
pub mod spans;

use std::time::Duration;

#[cfg(feature = "opentelemetry")]
pub use meters::{Meter, Meters};
use tracing::Span;

use crate::lifecycle::{FetchRequest, Observation};
use crate::store::{StoreAnswer, StoreError, StoreRequest};

/// The most callers' spans kept for a token request not started yet (the
/// rest are not linked to it).
const MAX_CALLERS: usize = 32;

/// A token source's spans and metrics, as its driver records them.
#[derive(Debug, Default)]
pub struct Telemetry {
    #[cfg(feature = "opentelemetry")]
    meters: Option<Meters>,
    /// The span of the token request in flight.
    request: Option<Span>,
    /// The spans of callers waiting for a token request not started yet.
    callers: Vec<Span>,
}

impl Telemetry {
    /// Records into `meters` as well (feature `opentelemetry`).
    #[cfg(feature = "opentelemetry")]
    pub fn with_meters(meters: Option<Meters>) -> Self {
        Self { meters, ..Self::default() }
    }

    /// The instruments recorded into, if any.
    #[cfg(feature = "opentelemetry")]
    pub fn meters(&self) -> Option<&Meters> {
        self.meters.as_ref()
    }

    /// A caller asked for a token from within `span` (its
    /// `Span::current()`), and `waits` (it was not answered at once): the
    /// token request that answers it is linked to its span.
    pub fn caller(&mut self, span: Span, waits: bool) {
        if !waits || span.is_none() {
            return;
        }
        match &self.request {
            Some(request) => {
                request.follows_from(&span);
            }
            None if self.callers.len() < MAX_CALLERS => self.callers.push(span),
            None => {}
        }
    }

    /// Every waiting caller was answered: none is linked to a later
    /// token request.
    pub fn answered(&mut self) {
        self.callers.clear();
    }

    /// The span of `fetch`'s token request: a child of the first waiting
    /// caller's span, following from the others'. Instrument the request
    /// with it; it ends when the lifecycle observes the request's end.
    pub fn token_request(&mut self, fetch: &FetchRequest) -> Span {
        let mut callers = self.callers.drain(..);
        let first = callers.next();
        let span = spans::token_request(fetch, first.as_ref());
        for caller in callers {
            span.follows_from(&caller);
        }
        self.request = Some(span.clone());
        span
    }

    /// What a token request sends, for the driver's sending loop: the
    /// request's span and where its DPoP nonce retries are counted.
    pub fn sending(&self, span: Span) -> Sending {
        Sending {
            span,
            #[cfg(feature = "opentelemetry")]
            meters: self.meters.clone(),
        }
    }

    /// Records what the lifecycle observed (its metrics; a token
    /// request's end on its span).
    pub fn observed(&mut self, observation: &Observation) {
        if let Observation::TokenRequest { outcome, .. } = observation {
            if let Some(span) = self.request.take() {
                spans::request_ended(&span, outcome);
            }
        }
        #[cfg(feature = "opentelemetry")]
        if let Some(meters) = &self.meters {
            meters.record(observation);
        }
    }

    /// A store operation the driver is about to carry out: its span, and
    /// what records its end.
    pub fn store_operation(&self, request: &StoreRequest) -> StoreOperation {
        StoreOperation {
            span: spans::store_operation(request),
            #[cfg(feature = "opentelemetry")]
            kind: request.op.kind(),
            #[cfg(feature = "opentelemetry")]
            meters: self.meters.clone(),
        }
    }

    /// The store answers again (`true`) or stopped answering.
    pub fn store_health(&self, available: bool) {
        #[cfg(feature = "opentelemetry")]
        if let Some(meters) = &self.meters {
            meters.record_store_health(available);
        }
        #[cfg(not(feature = "opentelemetry"))]
        let _ = available;
    }
}

/// A token request being sent (from [`Telemetry::sending`]): the driver
/// calls [`Sending::prepare`] on every attempt and
/// [`Sending::nonce_retry`] when it sends again for a DPoP nonce. Cheap
/// to clone; `Send`, for the task that sends.
#[derive(Debug, Clone)]
pub struct Sending {
    span: Span,
    #[cfg(feature = "opentelemetry")]
    meters: Option<Meters>,
}

impl Sending {
    /// The request's span.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Readies `request` to go: with feature `trace-context`, the trace
    /// context of the request's span is written into its headers by the
    /// propagator the user installed (`traceparent` with the W3C one; none
    /// is installed by default, and then nothing is written).
    pub fn prepare(&self, request: &mut http::Request<Vec<u8>>) {
        #[cfg(feature = "trace-context")]
        context::inject(&self.span, request.headers_mut());
        #[cfg(not(feature = "trace-context"))]
        let _ = request;
    }

    /// The token endpoint asked for a DPoP nonce and the request is sent
    /// once more with it.
    pub fn nonce_retry(&self) {
        spans::nonce_retried(&self.span);
        #[cfg(feature = "opentelemetry")]
        if let Some(meters) = &self.meters {
            meters.record_nonce_retry(false);
        }
    }
}

/// A store operation being carried out (from
/// [`Telemetry::store_operation`]): `Send`, for the task that runs it.
#[derive(Debug)]
pub struct StoreOperation {
    span: Span,
    #[cfg(feature = "opentelemetry")]
    kind: &'static str,
    #[cfg(feature = "opentelemetry")]
    meters: Option<Meters>,
}

impl StoreOperation {
    /// The operation's span: run the operation in it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Records how the operation ended, after `took`.
    pub fn ended(self, answer: &Result<StoreAnswer, StoreError>, took: Duration) {
        spans::store_ended(&self.span, answer);
        #[cfg(feature = "opentelemetry")]
        if let Some(meters) = &self.meters {
            meters.record_store(self.kind, answer, took);
        }
        #[cfg(not(feature = "opentelemetry"))]
        let _ = took;
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // the tests anchor their lifecycle at one real instant
mod tests;
