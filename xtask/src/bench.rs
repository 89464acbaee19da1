//! `cargo xtask bench`: run the benches, gather their figures, report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

struct Row {
    name: String,
    value: f64,
    unit: String,
    note: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub(crate) fn run(peers: bool) -> Result<(), String> {
    let target = root().join("target");
    let _ = std::fs::remove_dir_all(target.join("bench-figures"));
    // Figure 1 with metrics on (every source records on a meter): first,
    // so that the full run below leaves criterion's results as they are
    // without the feature; its paired ratios are kept under their own name.
    crate::cargo(&["bench", "-p", "auth-bench", "--bench", "hot_path", "--features", "opentelemetry"], &[])?;
    let figures = target.join("bench-figures");
    std::fs::rename(figures.join("hot_path_paired.json"), figures.join("hot_path_paired_metrics.json"))
        .map_err(|e| format!("keeping the figures with metrics on: {e}"))?;
    crate::cargo(&["bench", "-p", "auth-bench"], &[])?;
    if peers {
        // A workspace of its own: the peers never enter `cargo test --workspace`.
        let manifest = root().join("bench-peers/Cargo.toml");
        crate::cargo(&["bench", "--manifest-path", &manifest.to_string_lossy()], &[])?;
    }
    let mut rows = gather(&target)?;
    if peers {
        rows.extend(peer_rows(&target)?);
    }
    let machine = machine();
    let (markdown, json) = render(&rows, &machine);
    std::fs::write(target.join("bench-report.md"), &markdown).map_err(|e| format!("writing the report: {e}"))?;
    std::fs::write(target.join("bench-report.json"), json.to_string())
        .map_err(|e| format!("writing the report: {e}"))?;
    println!("{markdown}");
    eprintln!("xtask: wrote target/bench-report.md and target/bench-report.json");
    Ok(())
}

/// Figure 10: the peers' figures, as the peers benches wrote them (the
/// hot path, then the outage).
fn peer_rows(target: &Path) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for file in ["peers.json", "peers-outage.json"] {
        let path = target.join("bench-figures").join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("no figures at {}: {e}", path.display()))?;
        let Ok(Value::Array(items)) = serde_json::from_str(&text) else {
            return Err(format!("{}: not a list of figures", path.display()));
        };
        rows.extend(items.iter().map(|item| Row {
            name: format!("10. {}", item["name"].as_str().unwrap_or("")),
            value: item["value"].as_f64().unwrap_or(f64::NAN),
            unit: item["unit"].as_str().unwrap_or("").into(),
            note: String::new(),
        }));
    }
    Ok(rows)
}

/// Criterion's median estimate for `id` (`group/function[/parameter]`), in ns.
fn criterion_ns(target: &Path, id: &str) -> Result<f64, String> {
    let path = target.join("criterion").join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("no criterion result at {}: {e}", path.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    value["median"]["point_estimate"].as_f64().ok_or_else(|| format!("{}: no median", path.display()))
}

/// The target of a tower contender's ratio to the floor, by its label.
fn tower_target(contender: &str) -> &'static str {
    if contender.starts_with("auth layer with an origin, ReplayCopies::AtRisk") {
        "target ≤ 1.30"
    } else if contender.starts_with("auth layer with an origin") {
        "target ≤ 1.45"
    } else if contender.starts_with("auth layer, without_replay()") {
        "target ≤ 1.25"
    } else {
        ""
    }
}

fn gather(target: &Path) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let contenders = [
        ("floor_tower_http_static_header", "tower-http static header (floor)"),
        ("auth_layer", "auth layer (every request keeps a copy for a 401, the default)"),
        ("auth_layer_with_origin", "auth layer with an origin (the default and recommended set-up)"),
        (
            "auth_layer_with_origin_at_risk",
            "auth layer with an origin, ReplayCopies::AtRisk (a copy only while the token is at risk, opt-in)",
        ),
        ("auth_layer_without_replay_copy", "auth layer, without_replay()"),
        ("auth_layer_dpop", "auth layer with a DPoP-bound token (a proof signed per request)"),
        ("hand_written_std_mutex", "hand-written std Mutex"),
        ("hand_written_tokio_rwlock", "hand-written tokio RwLock"),
    ];
    let floor = criterion_ns(target, "hot_path/floor_tower_http_static_header")?;
    for (id, label) in contenders {
        let ns = criterion_ns(target, &format!("hot_path/{id}"))?;
        rows.push(Row {
            name: format!("1. per-request cost: {label}"),
            value: ns,
            unit: "ns".into(),
            note: String::new(),
        });
        rows.push(Row {
            name: format!("1. ratio to the floor: {label}"),
            value: ns / floor,
            unit: "x".into(),
            note: tower_target(label).into(),
        });
    }
    let figures = |bench: &str| read_figures(target, bench);
    // The same ratios measured in turns (both contenders see the same machine).
    for item in figures("hot_path_paired")? {
        let name = item["name"].as_str().unwrap_or("").to_owned();
        let contender = name.rsplit_once(": ").map_or(name.as_str(), |(_, contender)| contender);
        rows.push(Row {
            name: format!("1. {name}"),
            value: item["value"].as_f64().unwrap_or(f64::NAN),
            unit: "x".into(),
            note: tower_target(contender).into(),
        });
    }
    for item in figures("hot_path_paired_metrics")? {
        let name = item["name"].as_str().unwrap_or("").to_owned();
        rows.push(Row {
            name: format!("1. with metrics on (feature opentelemetry, a meter installed): {name}"),
            value: item["value"].as_f64().unwrap_or(f64::NAN),
            unit: "x".into(),
            note: "no worse than without beyond noise".into(),
        });
    }
    let mut floor_allocs = None;
    for item in figures("hot_path")? {
        let (name, value) =
            (item["name"].as_str().unwrap_or("").to_owned(), item["value"].as_f64().unwrap_or(f64::NAN));
        if name.contains("floor") {
            floor_allocs = Some(value);
        }
        let note = match (floor_allocs, name.contains("auth layer")) {
            (Some(floor), true) => format!("{:+.2} vs the floor (target +0)", value - floor),
            _ => String::new(),
        };
        rows.push(Row { name: format!("2. {name}"), value, unit: item["unit"].as_str().unwrap_or("").into(), note });
    }
    // The contenders the contention bench runs, by name (not by position in
    // the list above, which gains entries the contention bench does not run).
    let contended =
        ["floor_tower_http_static_header", "auth_layer", "hand_written_std_mutex", "hand_written_tokio_rwlock"];
    for (id, label) in contenders.into_iter().filter(|(id, _)| contended.contains(id)) {
        let one = criterion_ns(target, &format!("contention/{id}/1"))?;
        for tasks in [1, 2, 8] {
            let ns = criterion_ns(target, &format!("contention/{id}/{tasks}"))?;
            rows.push(Row {
                name: format!("3. contention, {tasks} task(s): {label}"),
                value: ns,
                unit: "ns/request".into(),
                note: format!("{:.2}x one task", ns / one),
            });
        }
    }
    for (bench, number) in [("load", ""), ("day", "5. "), ("fleet", "7. "), ("fleet_scale", "7. ")] {
        for item in figures(bench)? {
            let name = item["name"].as_str().unwrap_or("").to_owned();
            let prefix = if !number.is_empty() {
                number
            } else if name.starts_with("cold-start") {
                "4. "
            } else {
                "6. "
            };
            let note = if name.contains("token requests for") {
                "target 1"
            } else if name.starts_with("simulated fleet (") && name.ends_with("token fetches") {
                "target ≤ 25"
            } else if name.starts_with("simulated fleet of 10,000 replicas (") && name.ends_with("token fetches") {
                "target ≤ 26"
            } else if name.ends_with("store operations per replica per token lifetime") {
                "target ≤ 3"
            } else if name.contains("expired token") || name.contains("waited after the first") {
                "target 0"
            } else {
                ""
            };
            rows.push(Row {
                name: format!("{prefix}{name}"),
                value: item["value"].as_f64().unwrap_or(f64::NAN),
                unit: item["unit"].as_str().unwrap_or("").into(),
                note: note.into(),
            });
        }
    }
    let rq_floor = criterion_ns(target, "reqwest/floor_static_header_middleware")?;
    for (id, label, note) in [
        ("floor_static_header_middleware", "static-header middleware (floor)", ""),
        (
            "auth_middleware_with_origin",
            "AuthMiddleware with an origin (every request keeps a copy, the default)",
            "target ≤ 1.10",
        ),
        ("auth_middleware_with_origin_at_risk", "AuthMiddleware with an origin, ReplayCopies::AtRisk (opt-in)", ""),
    ] {
        let ns = criterion_ns(target, &format!("reqwest/{id}"))?;
        rows.push(Row {
            name: format!("9. reqwest-middleware, per request: {label}"),
            value: ns,
            unit: "ns".into(),
            note: String::new(),
        });
        rows.push(Row {
            name: format!("9. reqwest-middleware, ratio to the floor: {label}"),
            value: ns / rq_floor,
            unit: "x".into(),
            note: note.into(),
        });
    }
    for item in figures("reqwest_paired")? {
        let name = item["name"].as_str().unwrap_or("").to_owned();
        let note = if name.ends_with("AuthMiddleware with an origin") { "target ≤ 1.10" } else { "" };
        rows.push(Row {
            name: format!("9. {name}"),
            value: item["value"].as_f64().unwrap_or(f64::NAN),
            unit: "x".into(),
            note: note.into(),
        });
    }
    let mut rq_floor_allocs = None;
    for item in figures("reqwest")? {
        let (name, value) =
            (item["name"].as_str().unwrap_or("").to_owned(), item["value"].as_f64().unwrap_or(f64::NAN));
        let note = match rq_floor_allocs {
            None => {
                rq_floor_allocs = Some(value);
                String::new()
            }
            Some(floor) => format!("{:+.2} vs the floor (target +0)", value - floor),
        };
        rows.push(Row { name: format!("9. {name}"), value, unit: "allocs".into(), note });
    }
    rows.extend(signing_rows(target)?);
    // Figure 8 needs redis-server: without it the bench writes nothing.
    match figures("store") {
        Ok(items) => {
            for item in items {
                let name = item["name"].as_str().unwrap_or("").to_owned();
                let note = if name.contains("token requests for 20") {
                    "target 1"
                } else if name.contains("Redis-backed / memory-only") {
                    "target 1.00"
                } else {
                    ""
                };
                rows.push(Row {
                    name: format!("8. {name}"),
                    value: item["value"].as_f64().unwrap_or(f64::NAN),
                    unit: item["unit"].as_str().unwrap_or("").into(),
                    note: note.into(),
                });
            }
        }
        Err(_) => eprintln!("xtask: no Redis figures (redis-server not installed?)"),
    }
    // In figure order (the sort is stable within a figure).
    rows.sort_by_key(|row| row.name.split('.').next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(u32::MAX));
    Ok(rows)
}

/// The figures a bench wrote to `target/bench-figures/<bench>.json`.
fn read_figures(target: &Path, bench: &str) -> Result<Vec<Value>, String> {
    let path = target.join("bench-figures").join(format!("{bench}.json"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("no figures at {}: {e}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Array(items)) => Ok(items),
        _ => Err(format!("{}: not a list of figures", path.display())),
    }
}

/// Figure 11: signatures (the `signing` bench). Each DPoP figure's floor
/// is its frame's floor plus one bare ring signature.
fn signing_rows(target: &Path) -> Result<Vec<Row>, String> {
    let ns = |id: &str| criterion_ns(target, &format!("signing/{id}"));
    let row =
        |name: String, value: f64, unit: &str, note: &str| Row { name, value, unit: unit.into(), note: note.into() };
    let mut rows = Vec::new();
    let (layer_floor, middleware_floor) = (ns("layer_floor")?, ns("middleware_floor")?);
    for (id, alg, target_note) in [
        ("es256", "ES256", "target ≤ 1.25"),
        ("eddsa", "EdDSA", "target ≤ 1.25"),
        ("rs256", "RS256", "no target (RSA)"),
        ("ps256", "PS256", "no target (RSA)"),
    ] {
        let bare = ns(&format!("bare_{id}"))?;
        rows.push(row(format!("11. one bare ring signature, {alg} (400 bytes)"), bare, "ns", ""));
        rows.push(row(format!("11. DPoP proof for an API request, {alg}"), ns(&format!("proof_{id}"))?, "ns", ""));
        for (frame, floor, label) in
            [("layer", layer_floor, "tower layer"), ("middleware", middleware_floor, "reqwest middleware")]
        {
            let value = ns(&format!("{frame}_dpop_{id}"))?;
            rows.push(row(format!("11. {label} with a DPoP-bound {alg} token, per request"), value, "ns", ""));
            rows.push(row(
                format!("11. {label} with a DPoP-bound {alg} token / (its floor + one bare signature)"),
                value / (floor + bare),
                "x",
                target_note,
            ));
        }
    }
    // The same ratios timed in turns (the VM's speed drifts between criterion's runs).
    for item in read_figures(target, "signing_paired")? {
        rows.push(row(
            format!("11. {} / (its floor + one bare signature)", item["name"].as_str().unwrap_or("")),
            item["value"].as_f64().unwrap_or(f64::NAN),
            "x",
            "target ≤ 1.25",
        ));
    }
    let assertion = ns("assertion_es256")?;
    rows.push(row("11. private_key_jwt token request made ready (ES256 assertion)".into(), assertion, "ns", ""));
    rows.push(row(
        "11. private_key_jwt assertion / one bare ES256 signature".into(),
        assertion / ns("bare_es256")?,
        "x",
        "target ≤ 1.25",
    ));
    Ok(rows)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {} {}, {rustc}", std::env::consts::OS, std::env::consts::ARCH)
}

fn render(rows: &[Row], machine: &str) -> (String, Value) {
    let mut markdown = format!("Machine: {machine}\n\n| Figure | Value | Unit | Note |\n|---|---:|---|---|\n");
    for row in rows {
        let value = if row.value.abs() >= 100.0 { format!("{:.0}", row.value) } else { format!("{:.2}", row.value) };
        let _ = writeln!(markdown, "| {} | {} | {} | {} |", row.name, value, row.unit, row.note);
    }
    let json = Value::Array(
        rows.iter().map(|r| serde_json::json!({ "name": r.name, "value": r.value, "unit": r.unit, "note": r.note, "machine": machine })).collect(),
    );
    (markdown, json)
}

#[cfg(test)]
mod tests {
    use super::tower_target;

    #[test]
    fn both_ratios_of_a_contender_get_its_target() {
        for label in ["auth layer with an origin (the default and recommended set-up)", "auth layer with an origin"] {
            assert_eq!(tower_target(label), "target ≤ 1.45", "{label}");
        }
        for label in [
            "auth layer with an origin, ReplayCopies::AtRisk",
            "auth layer with an origin, ReplayCopies::AtRisk (a copy only while the token is at risk, opt-in)",
        ] {
            assert_eq!(tower_target(label), "target ≤ 1.30", "{label}");
        }
        assert_eq!(tower_target("auth layer, without_replay()"), "target ≤ 1.25");
        for label in [
            "auth layer (every request keeps a copy for a 401, the default)",
            "auth layer",
            "auth layer with a DPoP-bound token",
        ] {
            assert_eq!(tower_target(label), "", "{label}");
        }
    }
}
