//! A program that hands a `FileStore` to a token source without the
//! feature that makes it one fails to compile with a message that names
//! the feature to turn on (not only "trait bound not satisfied").
//!
//! It compiles a small crate of its own (`cargo check --offline`, auth-store
//! with its default features only) in a target directory of its own under
//! the workspace's, so that the dependencies built once are reused.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAM: &str = r#"
fn shared<S: auth_core::store::TokenStore>(_store: S) {}
fn shared_blocking<S: auth_core::store::BlockingTokenStore>(_store: S) {}

fn main() {
    shared(auth_store::FileStore::open("tokens").unwrap());
    shared_blocking(auth_store::FileStore::open("tokens").unwrap());
}
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

#[test]
fn a_store_without_its_driver_feature_names_the_feature() {
    let root = workspace();
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[package]\nname = \"feature-hint\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\nauth-store = {{ path = {store:?} }}\nauth-core = {{ path = {core:?} }}\n\n[workspace]\n",
        store = root.join("crates/auth-store"),
        core = root.join("crates/auth-core"),
    );
    std::fs::write(dir.path().join("Cargo.toml"), manifest).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/main.rs"), PROGRAM).unwrap();
    // The workspace's versions, so that nothing needs the network.
    std::fs::copy(root.join("Cargo.lock"), dir.path().join("Cargo.lock")).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["check", "--offline", "--quiet"])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", target.join("feature-hint"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it must not compile: {stderr}");
    assert!(stderr.contains("`FileStore` is not a token store for async token sources"), "{stderr}");
    assert!(stderr.contains(r#"features = ["tower"]"#), "the async hint names the feature: {stderr}");
    assert!(stderr.contains("`FileStore` is not a token store for blocking token sources"), "{stderr}");
    assert!(stderr.contains(r#"features = ["blocking"]"#), "the blocking hint names the feature: {stderr}");
}
