//! What every driver of a [`Lifecycle`](crate::lifecycle::Lifecycle) needs
//! besides the lifecycle itself, and decides the same way: the seed of its
//! jitter, and the words for a panic a caller is told about.

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
