//! Shared by the store tests: blocking token sources, each with its own
//! store handle, asking for a token at once from threads of their own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use auth_blocking::{BlockingTokenSource, BlockingTokenStore, TransportError};
use auth_core::secret::ExposeSecret;
use auth_core::store::StoreConfig;
use auth_core::SourceConfig;

/// `sources` blocking sources on stores made by `store`, against a token
/// endpoint that takes `latency` and numbers its tokens: the tokens each
/// source got, and how many token requests the endpoint received.
pub fn tokens_of_blocking_sources<S: BlockingTokenStore>(
    config: &SourceConfig,
    sources: usize,
    latency: Duration,
    store: impl Fn() -> S,
) -> (Vec<String>, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let sources: Vec<BlockingTokenSource> = (0..sources)
        .map(|_| {
            let calls = Arc::clone(&calls);
            let endpoint = move |_request: http::Request<Vec<u8>>| -> Result<http::Response<Vec<u8>>, TransportError> {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                std::thread::sleep(latency);
                Ok(http::Response::new(format!(r#"{{"access_token":"tok-{n}","expires_in":3600}}"#).into_bytes()))
            };
            BlockingTokenSource::builder(config.clone(), endpoint)
                .store(store(), StoreConfig::default())
                .build()
                .unwrap()
        })
        .collect();
    let tokens = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .map(|s| scope.spawn(move || s.token().unwrap().value().expose_secret().to_owned()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (tokens, calls.load(Ordering::SeqCst))
}
