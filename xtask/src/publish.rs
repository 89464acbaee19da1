//! Ready for crates.io: every package builds from its own `.crate` file,
//! and every feature of every crate builds, alone and with the others,
//! clippy clean.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cargo;

/// `cargo publish --dry-run --workspace` on a copy of the workspace in
/// which publishing is allowed (`publish = false` stays in the repository
/// until a person decides to publish). Cargo packs each publishable crate,
/// then builds each from its `.crate` file alone, in dependency order.
pub(crate) fn dry_run() -> Result<(), String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let base = root.join("target").join("publish-check");
    let copy = base.join("workspace");
    if copy.exists() {
        std::fs::remove_dir_all(&copy).map_err(|e| format!("cannot clear {}: {e}", copy.display()))?;
    }
    for file in tracked_files(&root)? {
        let (from, to) = (root.join(&file), copy.join(&file));
        if !from.is_file() {
            continue; // deleted in the work tree, not yet in git
        }
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::copy(&from, &to).map_err(|e| format!("cannot copy {}: {e}", file.display()))?;
    }
    let manifest = copy.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| format!("cannot read the copied Cargo.toml: {e}"))?;
    let allowed = allow_publishing(&text)?;
    std::fs::write(&manifest, allowed).map_err(|e| format!("cannot write the copied Cargo.toml: {e}"))?;
    let target = base.join("target");
    let target = target.to_str().ok_or("the target directory's path is not UTF-8")?;
    cargo(
        &["publish", "--dry-run", "--workspace", "--allow-dirty", "--manifest-path", path(&manifest)?],
        &[("CARGO_TARGET_DIR", target)],
    )
}

/// Every feature of every crate alone, none, and all together, clippy
/// clean (cargo-hack; installed when missing).
pub(crate) fn features() -> Result<(), String> {
    let cargo_path = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let installed = Command::new(&cargo_path).args(["hack", "--version"]).output().is_ok_and(|o| o.status.success());
    if !installed {
        cargo(&["install", "cargo-hack", "--locked"], &[])?;
    }
    cargo(&["hack", "clippy", "--workspace", "--each-feature", "--", "-D", "warnings"], &[])
}

/// The workspace's files as git sees them: tracked, and new ones not
/// ignored (a change not yet committed is checked too).
fn tracked_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let output = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("could not run git: {e}"))?;
    if !output.status.success() {
        return Err(format!("git ls-files failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let list = String::from_utf8(output.stdout).map_err(|_| "git ls-files listed a path that is not UTF-8")?;
    Ok(list.split('\0').filter(|f| !f.is_empty()).map(PathBuf::from).collect())
}

/// The workspace manifest with `publish = false` of `[workspace.package]`
/// turned into `publish = true` (packages that say `publish = false`
/// themselves, the internal ones, stay unpublishable).
fn allow_publishing(manifest: &str) -> Result<String, String> {
    let section = manifest.find("[workspace.package]").ok_or("Cargo.toml has no [workspace.package]")?;
    let end = manifest[section + 1..].find("\n[").map_or(manifest.len(), |at| section + 1 + at);
    let table = &manifest[section..end];
    if !table.contains("\npublish = false\n") {
        return Err("[workspace.package] of Cargo.toml does not say `publish = false`".to_owned());
    }
    let table = table.replacen("\npublish = false\n", "\npublish = true\n", 1);
    Ok(format!("{}{table}{}", &manifest[..section], &manifest[end..]))
}

fn path(path: &Path) -> Result<&str, String> {
    path.to_str().ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::allow_publishing;

    #[test]
    fn only_the_workspace_default_is_turned_on() {
        let manifest = "[workspace]\nmembers = []\n\n[workspace.package]\nversion = \"0.1.0\"\npublish = false\n\n[workspace.dependencies]\nx = \"1\"\n";
        let allowed = allow_publishing(manifest).unwrap();
        assert!(
            allowed.contains("[workspace.package]\nversion = \"0.1.0\"\npublish = true\n\n[workspace.dependencies]")
        );
        assert!(allow_publishing("[workspace.package]\nversion = \"1\"\n").is_err());
        // The repository's own manifest keeps publishing off until a person decides.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        assert!(allow_publishing(&std::fs::read_to_string(root).unwrap()).is_ok());
    }
}
