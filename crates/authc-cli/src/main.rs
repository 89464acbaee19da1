//! The `authc` command: see the package's library for what it does.

fn main() -> std::process::ExitCode {
    authc_cli::main()
}
