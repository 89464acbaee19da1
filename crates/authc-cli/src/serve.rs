//! `authc serve`: the embedded provider and protected API on loopback,
//! with its settings printed as shell exports, until interrupted.

use std::io::Write;
use std::time::Duration;

use auth_testkit::{Fault, Provider, ProviderConfig};

use crate::failure::Failure;

/// The flags of `authc serve`.
pub struct Options {
    pub port: u16,
    pub token_lifetime: u64,
    pub latency: u64,
    pub fail_next: u32,
    pub fault: String,
}

/// The client id of the served provider.
const CLIENT_ID: &str = "authc-serve";
/// The header the served API wants the key in.
const API_KEY_HEADER: &str = "X-API-Key";

/// The public client (no secret) for trying a user's sign-in.
const PUBLIC_CLIENT_ID: &str = "authc-public";

pub async fn run(options: Options) -> Result<(), Failure> {
    // Fresh test credentials per run, not anyone's secrets: they are
    // printed for the shell to use.
    let secret = auth_testkit::random_token("serve-secret-");
    let api_key = auth_testkit::random_token("serve-key-");
    let config = ProviderConfig::new()
        .client(CLIENT_ID, secret.clone())
        .public_client(PUBLIC_CLIENT_ID)
        .rotate_refresh_tokens(true)
        .api_key(API_KEY_HEADER, None, api_key.clone())
        .token_lifetime(Duration::from_secs(options.token_lifetime.max(1)));
    let provider = Provider::start_on_port(config, options.port).map_err(|e| {
        Failure::usage(format!("cannot listen on 127.0.0.1:{}: {e}; choose another --port", options.port))
    })?;
    if options.latency > 0 {
        provider.set_latency(Duration::from_millis(options.latency));
    }
    if options.fail_next > 0 {
        let fault = match options.fault.as_str() {
            "500" => Fault::ServerError,
            "429" => Fault::TooManyRequests { retry_after: 1 },
            _ => Fault::Unavailable,
        };
        provider.fail_next_token_requests(options.fail_next, fault);
    }
    let exports = [
        ("AUTHC_TOKEN_URL", provider.token_url()),
        ("AUTHC_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AUTHC_CLIENT_SECRET", secret),
        ("AUTHC_API_KEY_HEADER", API_KEY_HEADER.to_owned()),
        ("AUTHC_API_KEY", api_key),
        ("AUTHC_REVOCATION_URL", provider.revocation_url()),
        ("AUTHC_API_URL", provider.api_url("")),
    ];
    let mut stdout = std::io::stdout().lock();
    for (name, value) in exports {
        // The values are URLs, letters, digits and `-`: nothing a shell would expand.
        writeln!(stdout, "export {name}='{value}'")
            .map_err(|e| Failure::network(format!("cannot write to stdout: {e}")))?;
    }
    stdout.flush().map_err(|e| Failure::network(format!("cannot write to stdout: {e}")))?;
    drop(stdout);
    eprintln!(
        "authc: serving the test provider at {} (tokens live {} s); these credentials are for this server only; Ctrl-C stops it",
        provider.url(),
        options.token_lifetime.max(1)
    );
    eprintln!(
        "authc: to try a user's sign-in (the test user is approved at once; refresh tokens rotate): \
         authc login --issuer {} --client-id {PUBLIC_CLIENT_ID} --scope offline_access",
        provider.url()
    );
    tokio::signal::ctrl_c().await.map_err(|e| Failure::network(format!("cannot wait for Ctrl-C: {e}")))?;
    let stats = provider.stats();
    eprintln!(
        "authc: stopped after {} token requests ({} tokens issued) and {} API calls",
        stats.token_requests, stats.tokens_issued, stats.api_calls
    );
    Ok(())
}
