//! What every driver of a [`Lifecycle`] needs besides the lifecycle
//! itself, and does the same way: carrying out each of its outputs (one
//! exhaustive dispatch, here, so that a new output is a compile error in
//! the core rather than ignored by a driver), the seed of its jitter, and
//! the words for a panic a caller is told about.

use std::sync::Arc;

use crate::error::TokenError;
use crate::lifecycle::{FetchRequest, Lifecycle, Output, WithdrawReason};
use crate::store::{StoreError, StoreRequest};
use crate::token::{AccessToken, Generation};

/// What a driver does with each output of its lifecycle. A driver
/// implements it; [`carry_out`] calls it for every output, in order.
pub trait Effects {
    /// The lifecycle the driver runs.
    fn lifecycle(&mut self) -> &mut Lifecycle;

    /// Called before each output is carried out: a driver publishes the
    /// lifecycle's counters here, so that a caller who gets an answer
    /// sees what led to it.
    fn before_output(&mut self) {}

    /// Send this token request; answer with `handle_fetch_response` or
    /// `handle_fetch_failed`.
    fn fetch(&mut self, fetch: FetchRequest);

    /// Carry out this store operation; answer with `handle_store`.
    fn store(&mut self, request: StoreRequest);

    /// A new token: publish it and answer every caller waiting.
    fn token_ready(&mut self, token: Arc<AccessToken>);

    /// No token can be had now: answer every caller waiting with `error`.
    fn failed(&mut self, error: TokenError);

    /// This token must no longer be sent: unpublish it.
    fn withdrawn(&mut self, generation: Generation, reason: WithdrawReason);

    /// The store stopped answering (`Some`, with why) or answers again
    /// (`None`): say so once.
    fn store_health(&mut self, error: Option<StoreError>);
}

/// Carries out every output the lifecycle has, until it has none.
pub fn carry_out(driver: &mut impl Effects) {
    while let Some(output) = driver.lifecycle().poll_output() {
        driver.before_output();
        match output {
            Output::Fetch(fetch) => driver.fetch(fetch),
            Output::Store(request) => driver.store(request),
            Output::TokenReady(token) => driver.token_ready(token),
            Output::Failed(error) => driver.failed(error),
            Output::TokenWithdrawn { generation, reason } => driver.withdrawn(generation, reason),
            Output::StoreHealth { error, .. } => driver.store_health(error),
        }
    }
    driver.before_output();
}

/// A seed for a lifecycle's jitter: random per token source, so that the
/// replicas of a fleet spread their renewals and retries out.
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        // No randomness from the system: a hasher's random keys still
        // differ between processes.
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new().build_hasher().finish()
        }
    }
}

/// What a panic said (its `&str` or `String` payload), for the error the
/// callers of a failed worker or transport get.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_differ_and_panics_say_what_they_said() {
        assert_ne!(super::random_seed(), super::random_seed());
        let said = std::panic::catch_unwind(|| panic!("the transport broke")).unwrap_err();
        assert_eq!(super::panic_message(&*said), "the transport broke");
        let formatted = std::panic::catch_unwind(|| panic!("code {}", 7)).unwrap_err();
        assert_eq!(super::panic_message(&*formatted), "code 7");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7_u8)).unwrap_err();
        assert_eq!(super::panic_message(&*other), "a panic without a message");
    }
}
