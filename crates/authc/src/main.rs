//! `cargo run -p authc -- ARGS` runs `authc ARGS` from this repository's
//! sources. The command itself lives in the `authc-cli` package (installed
//! with `cargo install authc-cli`, or built as `target/debug/authc`).

fn main() -> std::process::ExitCode {
    authc_cli::main()
}
