//! Makes `N` DPoP proofs (ES256) or `N` `private_key_jwt` token requests,
//! for counting instructions per signature under valgrind (docs/benchmarks.md):
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/signatures proof 2000
//! ```
//!
//! The count with `N` = 0 is the set-up, subtracted.

use std::time::SystemTime;

use auth_core::dpop::Dpop;
use auth_core::secret::AccessTokenValue;
use auth_core::wire::request::{ready_to_send, token_request, Grant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: u32 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let target: http::Uri = "https://api.example.com/v1/items".parse().expect("a URI");
    let token = AccessTokenValue::new("eyJhbGciOiJSUzI1NiJ9.an-access-token-of-a-usual-length.signature-part-here");
    match args.first().map(String::as_str) {
        Some("proof") => {
            let dpop = Dpop::generate().expect("a DPoP key");
            for _ in 0..count {
                std::hint::black_box(dpop.proof(&http::Method::GET, &target, Some(&token), SystemTime::now()).ok());
            }
        }
        Some("assertion") => {
            let key = auth_core::keys::SigningKey::generate_es256().expect("a key");
            let config = auth_core::SourceConfig::builder("https://auth.example.com/token", "bench-client")
                .signing_key(key)
                .build()
                .expect("a configuration");
            let built = token_request(&config, Grant::ClientCredentials);
            for _ in 0..count {
                std::hint::black_box(ready_to_send(&built, SystemTime::now()).ok());
            }
        }
        _ => eprintln!("usage: signatures proof|assertion N"),
    }
}
