//! `cargo xtask advisories`, and the test of the same name: no crate
//! version in `Cargo.lock` is affected by a RustSec advisory of the
//! snapshot in `supply-chain/rustsec-advisories.tsv` (its one input: a
//! newer snapshot of the same columns replaces it).
//!
//! A version is affected by an advisory unless it is in one of the
//! advisory's patched ranges or one of its unaffected ranges (each range a
//! semver requirement, `;` between ranges), as `cargo audit` decides;
//! every kind counts (vulnerability, unsound, unmaintained, notice).

use std::path::Path;

use semver::{Version, VersionReq};

/// The snapshot, relative to the workspace root.
pub(crate) const SNAPSHOT: &str = "supply-chain/rustsec-advisories.tsv";

/// One locked crate version an advisory affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) krate: String,
    pub(crate) version: String,
    pub(crate) id: String,
    pub(crate) kind: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} is affected by {} ({})", self.krate, self.version, self.id, self.kind)
    }
}

/// The `(name, version)` of every package in a `Cargo.lock`.
pub(crate) fn locked(lock: &str) -> Result<Vec<(String, String)>, String> {
    let value: toml::Table = lock.parse().map_err(|e| format!("Cargo.lock does not parse: {e}"))?;
    let packages = value.get("package").and_then(|p| p.as_array()).ok_or("Cargo.lock lists no package")?;
    packages
        .iter()
        .map(|package| {
            let field = |name: &str| package.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            match (field("name"), field("version")) {
                (Some(name), Some(version)) => Ok((name, version)),
                _ => Err(format!("a Cargo.lock package without a name or version: {package:?}")),
            }
        })
        .collect()
}

/// Whether `version` is in any of the `;`-separated ranges.
fn in_ranges(version: &Version, ranges: &str) -> Result<bool, String> {
    for range in ranges.split(';').map(str::trim).filter(|r| !r.is_empty()) {
        let requirement = VersionReq::parse(range).map_err(|e| format!("the range `{range}` does not parse: {e}"))?;
        if requirement.matches(version) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Every locked version an advisory of `snapshot` (the TSV's text)
/// affects.
pub(crate) fn check(packages: &[(String, String)], snapshot: &str) -> Result<Vec<Finding>, String> {
    let mut findings = Vec::new();
    for line in snapshot.lines().filter(|l| !l.starts_with('#') && !l.starts_with("crate\t") && !l.trim().is_empty()) {
        let columns: Vec<&str> = line.split('\t').collect();
        let [krate, id, _date, kind, patched, unaffected] = columns[..] else {
            return Err(format!("a line of {SNAPSHOT} without its six columns: {line}"));
        };
        for (name, version) in packages.iter().filter(|(name, _)| name == krate) {
            let parsed = Version::parse(version).map_err(|e| format!("{name} {version}: {e}"))?;
            if !in_ranges(&parsed, patched)? && !in_ranges(&parsed, unaffected)? {
                findings.push(Finding {
                    krate: name.clone(),
                    version: version.clone(),
                    id: id.to_owned(),
                    kind: kind.to_owned(),
                });
            }
        }
    }
    Ok(findings)
}

/// The check of the workspace at `root`: every finding, said.
pub(crate) fn run(root: &Path) -> Result<(), String> {
    let read = |path: &str| std::fs::read_to_string(root.join(path)).map_err(|e| format!("cannot read {path}: {e}"));
    let findings = check(&locked(&read("Cargo.lock")?)?, &read(SNAPSHOT)?)?;
    if findings.is_empty() {
        eprintln!("xtask: no locked crate is affected by an advisory of {SNAPSHOT}");
        return Ok(());
    }
    let list: Vec<String> = findings.iter().map(|f| format!("  {f}")).collect();
    Err(format!(
        "{} locked crate version(s) affected by RustSec advisories (upgrade or replace them):\n{}",
        findings.len(),
        list.join("\n")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT_TEXT: &str = "# facts\ncrate\tid\tdate\tkind\tpatched\tunaffected\n\
        rsa\tRUSTSEC-2023-0071\t2023-11-22\tvulnerability\t\t\n\
        ring\tRUSTSEC-2025-0009\t2025-03-06\tvulnerability\t>= 0.17.12\t\n\
        ring\tRUSTSEC-2025-0010\t2025-03-05\tunmaintained\t\t>= 0.17\n\
        tokio\tRUSTSEC-2025-0023\t2025-04-07\tunsound\t>= 1.38.2, < 1.39.0;>= 1.44.2\t< 0.2.5\n";

    fn packages(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn affected_patched_and_unaffected_versions_are_told_apart() {
        let found = check(
            &packages(&[
                ("rsa", "0.9.10"),
                ("ring", "0.17.14"),
                ("ring", "0.16.20"),
                ("tokio", "1.38.2"),
                ("tokio", "1.40.0"),
                ("tokio", "1.48.0"),
                ("tokio", "0.2.1"),
                ("serde", "1.0.0"),
            ]),
            SNAPSHOT_TEXT,
        )
        .unwrap();
        let said: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "rsa 0.9.10 is affected by RUSTSEC-2023-0071 (vulnerability)",
                "ring 0.16.20 is affected by RUSTSEC-2025-0009 (vulnerability)",
                "ring 0.16.20 is affected by RUSTSEC-2025-0010 (unmaintained)",
                "tokio 1.40.0 is affected by RUSTSEC-2025-0023 (unsound)",
            ]
        );
        assert!(check(&packages(&[("x", "1.0.0")]), "x\tonly-two").is_err(), "a malformed line is an error");
    }

    #[test]
    fn no_locked_crate_has_an_open_advisory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        if let Err(message) = run(&root) {
            panic!("{message}");
        }
        // The lock is read whole: the crates the workspace is built from are in it.
        let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap();
        let names: Vec<String> = locked(&lock).unwrap().into_iter().map(|(name, _)| name).collect();
        assert!(names.iter().any(|n| n == "ring") && names.iter().any(|n| n == "auth-core"));
        for gone in ["rsa", "p256", "ed25519-dalek", "jsonwebtoken"] {
            assert!(!names.iter().any(|n| n == gone), "{gone} is back in Cargo.lock");
        }
    }
}
