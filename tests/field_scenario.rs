//! The user's field scenario, shortened for CI: bench/field-scenario.sh with
//! a 20 s idle period instead of 10 minutes (run the script by hand for the
//! full-length table). Asserted: with edgereach on gateway C, host A reaches C
//! over a direct path in all three scenarios within 10 s. Without edgereach,
//! the table is printed as it comes out: that is what tailscaled alone does.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn field_scenario_with_and_without_edgereach() {
    need_root!("field_scenario_with_and_without_edgereach");
    if let Some(why) = common::mesh::missing_tools() {
        skip!("field_scenario_with_and_without_edgereach", "{why}");
    }
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/field-scenario.sh"))
        .env("EDGEREACH_BIN", common::bin())
        .env("EDGEREACH_TOOLS", common::mesh::TOOLS)
        .env("FIELD_IDLE_SECONDS", "20")
        .env("FIELD_TRY_SECONDS", "15")
        .env("FIELD_OUT", out_dir.path())
        .output()
        .expect("run bench/field-scenario.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the scenario script failed");
    let results = std::fs::read_to_string(out_dir.path().join("results.tsv")).unwrap();
    let rows: Vec<Vec<&str>> = results.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 6, "3 scenarios x with/without: {results}");
    for r in rows.iter().filter(|r| r[0] == "with") {
        let secs: f64 = r[4].parse().unwrap_or(f64::INFINITY);
        assert!(
            r[2] == "direct" && secs <= 10.0,
            "with edgereach, scenario {}: {} after {}s (want direct within 10 s)",
            r[1],
            r[2],
            r[4]
        );
    }
}
