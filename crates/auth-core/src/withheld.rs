//! Requests that go out without credentials because their origin is not
//! one the credentials are limited to: counted, and the first per origin
//! said once, with what to change. Withholding is right (credentials never
//! reach a host they were not meant for); saying nothing is not: a client
//! built for `http://localhost:8080` that calls `http://127.0.0.1:8080`, or
//! a sandbox client pointed at production, otherwise sees a bare 401.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Origins remembered as said; past this many, new ones are counted but
/// not said (a client calling many hosts does not fill memory or logs).
const MAX_ORIGINS_SAID: usize = 64;

/// What [`Credentials`](crate::Credentials) remember of withheld requests.
#[derive(Debug, Default)]
pub(crate) struct Withheld {
    said: Mutex<Vec<String>>,
    count: AtomicU64,
}

impl Withheld {
    /// Counts a request to `origin`, and the first time for that origin
    /// returns what to say, naming `allowed`.
    pub(crate) fn note(&self, origin: &str, allowed: &[&str]) -> Option<String> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut said = self.said.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if said.len() >= MAX_ORIGINS_SAID || said.iter().any(|o| o == origin) {
            return None;
        }
        said.push(origin.to_owned());
        Some(format!(
            "a request to {origin} was sent without credentials: they go only to {} (and {origin} is another \
             origin: scheme, host and port must match, so localhost and 127.0.0.1 differ); if the API is \
             there, name it with api_origin, or call the API at the origin you named \
             (said once per origin)",
            allowed.join(", ")
        ))
    }

    /// How many requests went out without credentials so far.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_origin_is_said_once_and_every_request_counted() {
        let withheld = Withheld::default();
        let first = withheld.note("http://127.0.0.1:8080", &["http://localhost:8080"]).expect("said");
        assert!(first.contains("http://127.0.0.1:8080") && first.contains("http://localhost:8080"), "{first}");
        assert!(first.contains("api_origin"));
        assert!(withheld.note("http://127.0.0.1:8080", &["http://localhost:8080"]).is_none());
        assert!(withheld.note("https://prod.example.com", &["https://sandbox.example.com"]).is_some());
        for n in 0..100 {
            withheld.note(&format!("https://h{n}.example"), &[]);
        }
        assert_eq!(withheld.said.lock().unwrap().len(), MAX_ORIGINS_SAID);
        assert_eq!(withheld.count(), 103);
    }
}
