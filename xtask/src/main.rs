//! Workspace automation, run as `cargo xtask <command>`.
//!
//! - `ci`: what CI must see clean: `cargo fmt --check`, `cargo clippy
//!   --workspace --all-targets -- -D warnings`, every feature of every
//!   crate alone and all together with clippy (`cargo hack --each-feature`,
//!   installed when missing), the test suite (the README's command),
//!   `cargo doc` with warnings denied, and the publish dry run (each
//!   package built from its own `.crate` file, on a copy of the workspace
//!   that allows publishing).
//! - `package`: only the feature check and the publish dry run.
//! - `bench`: runs the criterion benches of `auth-bench`, then writes
//!   `target/bench-report.md` (a table) and `target/bench-report.json` (one
//!   object per figure: name, value, unit), and prints the table.
//! - `fuzz`: the long run of `auth-core`'s fuzz suite (release build):
//!   1,000,000 inputs for each parser property and 50,000 lifecycle
//!   sequences; `cargo test` runs 10,000 of each. Override with
//!   `AUTH_FUZZ_CASES` and `AUTH_FUZZ_SEQUENCES`.
//! - `advisories`: no crate in `Cargo.lock` has an open RustSec advisory
//!   (against `supply-chain/rustsec-advisories.tsv`); `cargo test` runs the
//!   same check.

mod advisories;
mod bench;
mod publish;

use std::process::{Command, ExitCode};

/// The test command the README gives and `.ci/run` runs.
const TEST_COMMAND: &[&str] = &["test", "--workspace", "--no-fail-fast"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench::run(args.iter().any(|a| a == "--peers")),
        Some("fuzz") => fuzz(),
        Some("package") => publish::features().and_then(|()| publish::dry_run()),
        Some("advisories") => {
            let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            advisories::run(&args.get(1).map_or(workspace, std::path::PathBuf::from))
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|package|bench [--peers]|fuzz|advisories>\n\n  ci     fmt --check, clippy -D warnings (and for each feature), tests, docs with warnings denied,\n         the publish dry run\n  package  only the feature check and the publish dry run\n  bench  criterion benches; writes target/bench-report.md and .json\n         --peers: also the published peers side by side (bench-peers/, a workspace of its own)\n  fuzz   parsers on 1,000,000 inputs, the lifecycle on 50,000 sequences\n  advisories [DIR]  no crate in DIR/Cargo.lock (default: this workspace) with an open RustSec\n         advisory of DIR/supply-chain/rustsec-advisories.tsv"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--check"], &[])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    // The user's project outside the workspace (its tests run in the suite).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let (user_project, target) = (root.join("examples/orders-client/Cargo.toml"), root.join("target"));
    let user_project = user_project.to_str().ok_or("the repository's path is not UTF-8")?;
    let target = target.to_str().ok_or("the repository's path is not UTF-8")?;
    cargo(&["fmt", "--check", "--manifest-path", user_project], &[])?;
    cargo(
        &["clippy", "--locked", "--all-targets", "--manifest-path", user_project, "--", "-D", "warnings"],
        &[("CARGO_TARGET_DIR", target)],
    )?;
    publish::features()?;
    cargo(TEST_COMMAND, &[])?;
    cargo(&["doc", "--workspace", "--no-deps"], &[("RUSTDOCFLAGS", "-D warnings")])?;
    publish::dry_run()?;
    eprintln!("xtask: ci clean");
    Ok(())
}

/// The fuzz suite's long run, in release mode.
fn fuzz() -> Result<(), String> {
    let cases = std::env::var("AUTH_FUZZ_CASES").unwrap_or_else(|_| "1000000".to_owned());
    let sequences = std::env::var("AUTH_FUZZ_SEQUENCES").unwrap_or_else(|_| "50000".to_owned());
    cargo(
        &["test", "--release", "-p", "auth-core", "--features", "opentelemetry", "--test", "fuzz", "--", "--nocapture"],
        &[("AUTH_FUZZ_CASES", &cases), ("AUTH_FUZZ_SEQUENCES", &sequences)],
    )?;
    eprintln!("xtask: fuzz clean ({cases} inputs per parser property, {sequences} lifecycle sequences)");
    Ok(())
}

pub(crate) fn cargo(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}

#[cfg(test)]
mod tests {
    use super::TEST_COMMAND;

    /// `.ci/run` and the README must run exactly the test command `ci` runs.
    #[test]
    fn ci_script_and_readme_use_the_same_test_command() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let command = format!("cargo {}", TEST_COMMAND.join(" "));
        let ci = std::fs::read_to_string(root.join(".ci/run")).unwrap();
        assert!(ci.lines().any(|l| l.trim() == command), ".ci/run must run `{command}`");
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        assert!(readme.contains(&command), "README.md must give `{command}`");
        let setup = readme
            .split("## Set-up")
            .nth(1)
            .and_then(|s| s.split("```sh\n").nth(1))
            .and_then(|s| s.split("```").next());
        assert_eq!(
            setup,
            Some(format!("cargo run -p authc -- demo\n{command}\n").as_str()),
            "the set-up is exactly the two commands"
        );
    }

    /// The README's dependency lines (the ones shown commented out as
    /// well) name crates of this workspace by their real paths, with
    /// features they have, and the tokio features `#[tokio::main]` needs.
    #[test]
    fn cookbook_snippets_are_taken_from_examples_that_run_in_cargo_test() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cookbook = std::fs::read_to_string(root.join("docs/providers.md")).unwrap();
        let mut example: Option<(String, String)> = None;
        let (mut snippets, mut examples) = (0, std::collections::BTreeSet::new());
        let mut rest = cookbook.as_str();
        while let Some(at) = rest.find("```") {
            let (before, after) = rest.split_at(at);
            if let Some(line) = before.lines().rev().find(|l| l.starts_with("Example: `")) {
                let path = line.trim_start_matches("Example: `").split('`').next().unwrap().to_owned();
                let text = std::fs::read_to_string(root.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
                examples.insert(path.clone());
                example = Some((path, text));
            }
            let (fence, body) = after[3..].split_once('\n').unwrap();
            let (block, tail) = body.split_once("```").expect("a closed code block");
            rest = tail;
            if fence != "rust" {
                continue;
            }
            let (path, text) = example.as_ref().expect("an `Example:` line before each rust snippet");
            assert!(text.contains(block), "this snippet of docs/providers.md is not in {path}:\n{block}");
            snippets += 1;
        }
        assert!(snippets >= 9, "{snippets} snippets checked");
        // Every example of the adapters runs in cargo test, shown in the cookbook or not.
        for krate in ["auth-reqwest", "auth-blocking", "auth-tower"] {
            for entry in std::fs::read_dir(root.join("crates").join(krate).join("examples")).unwrap() {
                examples.insert(format!("crates/{krate}/examples/{}", entry.unwrap().file_name().to_string_lossy()));
            }
        }
        for path in &examples {
            if path.starts_with("examples/") {
                continue; // a user's project of its own: tests/user_project.rs runs its tests
            }
            let (krate, name) = path.split_once("/examples/").unwrap();
            let name = name.trim_end_matches(".rs");
            let manifest: toml::Table =
                toml::from_str(&std::fs::read_to_string(root.join(krate).join("Cargo.toml")).unwrap()).unwrap();
            let declared = manifest["example"].as_array().unwrap().iter().find(|e| e["name"].as_str() == Some(name));
            assert_eq!(
                declared.and_then(|e| e.get("test")).and_then(|t| t.as_bool()),
                Some(true),
                "{path} runs in cargo test"
            );
        }
        for entry in std::fs::read_dir(root.join("crates/auth-reqwest/examples")).unwrap() {
            let path = format!("crates/auth-reqwest/examples/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(cookbook.contains(&path), "docs/providers.md shows {path}");
        }
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        assert!(readme.contains("docs/providers.md"), "the README points at the cookbook");
    }

    #[test]
    fn readme_dependency_lines_name_real_crates_and_features() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        let block = readme
            .split("## Use it from your project")
            .nth(1)
            .and_then(|s| s.split("```toml\n").nth(1))
            .and_then(|s| s.split("```").next())
            .expect("README.md shows the Cargo.toml lines");
        let mut checked = 0;
        for line in block.lines() {
            let line = line.trim_start_matches("# ").trim();
            let Some((name, _)) = line.split_once(" = ") else { continue };
            if !line.contains('{') || line.starts_with("or:") {
                continue;
            }
            let table: toml::Table = toml::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let dependency = &table[name];
            let features: Vec<&str> = dependency
                .get("features")
                .and_then(|f| f.as_array())
                .map(|f| f.iter().filter_map(|v| v.as_str()).collect())
                .unwrap_or_default();
            if name == "tokio" {
                assert!(features.contains(&"macros") && features.contains(&"rt-multi-thread"), "{line}");
                continue;
            }
            let path = dependency["path"].as_str().unwrap_or_else(|| panic!("{line}: a path dependency"));
            let directory = path.rsplit('/').next().unwrap();
            let manifest = std::fs::read_to_string(root.join("crates").join(directory).join("Cargo.toml"))
                .unwrap_or_else(|e| panic!("{line}: no crate at crates/{directory}: {e}"));
            let manifest: toml::Table = toml::from_str(&manifest).unwrap();
            assert_eq!(manifest["package"]["name"].as_str(), Some(name), "{line}");
            for feature in features {
                assert!(manifest["features"].get(feature).is_some(), "{line}: {name} has no feature {feature}");
            }
            checked += 1;
        }
        assert!(checked >= 4, "the adapters and the store are shown ({checked} lines checked)");
    }

    /// `auth-blocking` must work in a program without an async runtime:
    /// tokio is not in its dependency tree (default features).
    #[test]
    fn auth_blocking_has_no_async_runtime() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = std::process::Command::new(cargo)
            .args(["tree", "-p", "auth-blocking", "-e", "normal", "--prefix", "none", "--offline"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let tree = String::from_utf8(output.stdout).unwrap();
        assert!(tree.contains("auth-core"), "{tree}");
        for runtime in ["tokio ", "async-std ", "smol "] {
            assert!(!tree.lines().any(|l| l.starts_with(runtime)), "auth-blocking depends on {runtime}:\n{tree}");
        }
    }

    /// Every library crate denies missing docs and opens with an example.
    #[test]
    fn every_crate_documents_itself() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for entry in std::fs::read_dir(root.join("crates")).unwrap() {
            let lib = entry.unwrap().path().join("src/lib.rs");
            if let Ok(text) = std::fs::read_to_string(&lib) {
                assert!(text.contains("#![deny(missing_docs)]"), "{} must deny missing docs", lib.display());
                assert!(text.contains("```"), "{} must open with an example", lib.display());
            }
        }
    }
}
