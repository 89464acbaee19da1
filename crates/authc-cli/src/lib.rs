//! `authc`: the library's main job for a person or a shell script.
//!
//! This package (`authc-cli`) installs the `authc` command
//! (`cargo install authc-cli`). Its library part exists so that the
//! workspace's `cargo run -p authc` can run the same program; the command
//! line, not this library, is the interface: [`main`] is all it offers.
//!
//! ```text
//! authc token   [AUTH] [--json] [--no-cache]
//! authc request [AUTH] [-X METHOD] [-H 'Name: value']... [-d DATA|@FILE | --data-file F | --json DATA|@FILE]
//!               [-i] [-s] [-v] [-o FILE] [--timeout S] URL
//! authc revoke  [AUTH] [--revocation-url URL] [--token-type-hint access_token|refresh_token]
//! authc login   [AUTH] (--issuer URL | --authorize-url URL --token-url URL | --resource URL)
//!               [--device [--device-url URL]] [--no-browser] [--redirect-port N] [--redirect-path P]
//!               [--scope S]... [--par] [--acr-values V] [--max-age S] [--timeout SECS]
//! authc logout  [AUTH] [--revocation-url URL]
//! authc profiles [--config FILE]
//! authc config check [AUTH]
//! authc demo
//! authc serve [--port N] [--token-lifetime S] [--latency MS] [--fail-next N --fault 500|503|429]
//! ```
//!
//! Exit codes: 0 success, 2 usage or configuration error, 3 the provider
//! refused, the fetch budget is spent or a user must sign in, 4 network or protocol failure, 5 the API
//! answered an error.

#![deny(missing_docs)]

use std::process::ExitCode;

use clap::Parser;

mod capped;
mod check;
mod cli;
mod commands;
mod demo;
mod discover;
mod failure;
mod key_files;
mod logout;
mod profile;
mod resource;
mod secrets;
mod serve;
mod settings;
mod sign_ins;
mod store;
mod verbose;
mod workload;

use cli::{Cli, Command};
use failure::Failure;

/// Runs `authc` with the process's arguments and gives the exit code to
/// end the process with (0 success, 2 usage or configuration, 3 refused or
/// sign-in needed, 4 network or protocol, 5 the API answered an error).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("authc: cannot start the async runtime: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("authc: {failure}");
            failure.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Token { auth, json } => commands::token(&auth, json).await,
        Command::Request { auth, request } => {
            if request.silent {
                failure::silence_notices();
            }
            commands::request(&auth, &request).await
        }
        Command::Revoke { auth, revocation_url, token_type_hint, token } => {
            commands::revoke(&auth, revocation_url, token_type_hint, token).await
        }
        Command::Login { auth, login } => commands::login(&auth, &login).await,
        Command::Logout { auth, revocation_url } => logout::logout(&auth, revocation_url).await,
        Command::Profiles { config } => profile::list_profiles(config),
        Command::Config { action: cli::ConfigAction::Check { auth } } => check::check(&auth),
        Command::Demo => demo::run().await,
        Command::Serve { port, token_lifetime, latency, fail_next, fault } => {
            serve::run(serve::Options { port, token_lifetime, latency, fail_next, fault }).await
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (`trace`, `auth_tower=debug`,
/// ...); nothing is logged without it. No secret is ever in a log field.
fn init_logging() {
    let Ok(spec) = std::env::var("RUST_LOG") else { return };
    let filter: tracing_subscriber::filter::Targets = match spec.parse() {
        Ok(filter) => filter,
        Err(_) => {
            eprintln!(
                "authc: RUST_LOG `{spec}` is not understood (use e.g. `debug` or `auth_tower=trace`); logging off"
            );
            return;
        }
    };
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false))
        .with(filter)
        .try_init();
}
