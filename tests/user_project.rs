//! A user's project, outside this workspace (`examples/orders-client`):
//! a small API client whose own tests use auth-testkit's provider and
//! scripted browser, depending on the crates by path. Its `cargo test`
//! runs here, offline, with its lock file, sharing this build's target
//! directory (its dependencies are this workspace's, built once).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/` of this build: the test binary is `target/debug/deps/NAME`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors().nth(3).expect("the test binary lives under target/PROFILE/deps").to_path_buf()
}

#[test]
fn a_users_project_tests_its_api_client_with_the_testkit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the repository's root");
    let manifest = root.join("examples/orders-client/Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["test", "--offline", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .expect("cargo runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the user's tests failed:\n{stdout}\n{stderr}");
    // Its three tests ran (a filtered or empty run would pass too).
    for name in [
        "every_call_carries_the_key_and_a_token_fetched_once",
        "an_outage_at_the_provider_and_a_revoked_token_are_ridden_out",
        "a_user_signs_in_through_the_scripted_browser_and_a_rotated_refresh_token_is_used",
    ] {
        assert!(stdout.contains(&format!("test {name} ... ok")), "{name} did not run:\n{stdout}");
    }
}
