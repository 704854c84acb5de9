//! The user's field scenario, shortened for CI: bench/field-scenario.sh with
//! both sites behind endpoint-dependent NATs, "A tries" as ICMP through the
//! tunnel and "direct" as packets between the two sites' public addresses
//! counted on both hosts (see bench/README.md). Run the script by hand for the
//! full table.
//!
//! CI runs these labs, three at a time (4.5 minutes here):
//! - std (join, reboot, silent loss) with the DERP relay, with and without
//!   edgereach; and with edgereach without any relay;
//! - short leases (PCP only, at most 30 s, C idle 75 s) with the relay, with
//!   and without;
//! - carrier NAT with the relay, with and without;
//! - rot (a UPnP-only router whose forward rules vanish while its table still
//!   lists the mapping, tailscale #21208) without any relay, with and without.
//!
//! The CI labs run with `FIELD_HOLD_SECONDS=30`: at the reboot and the silent
//! loss the router never lets A lock itself out (a packet from A that reaches
//! the router while the forwarding is missing would create a conntrack flow to
//! the router itself, which A's own heartbeats keep alive; nothing on C can
//! clear it). Without the hold that race decides the reboot row about every
//! other run; the bench's full table (no hold) shows it in its "dead" column.
//! With the hold, A starts trying 1 s after the reboot and 1 s after the loss.
//!
//! Asserted, with edgereach: join and reboot direct within 5 s (relay or not),
//! short leases direct within 5 s of A's first try; the carrier-NAT row is not
//! direct, with or without edgereach (no mapping on C's router can reach C
//! there). The silent-loss row ([`SILENT_LOSS_ASSERTED`]) and the rot row:
//! direct within verify_interval + 5 s; rot is the one only the daemon's
//! end-to-end proof repairs (the router's own answers say all is well).
//! "without" rows are printed, never asserted: that is what tailscaled alone
//! does.
//!
//! Outside CI the test skips politely when it cannot run (not root, Go tools
//! missing); under `CI=true` it fails instead, with the reason.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;

/// The silent-loss row with edgereach must be direct within
/// `VERIFY_INTERVAL + 5` seconds. (In this lab that loss is healed by the
/// next PCP renewal too: miniupnpd 2.3.1 re-adds flushed rules on renewal.
/// The row only the end-to-end proof repairs is `rot`.)
const SILENT_LOSS_ASSERTED: bool = true;
/// edgereach's `portmap.verify_interval` in the CI labs (seconds).
const VERIFY_INTERVAL: u64 = 10;
/// join / reboot / short leases: direct within this many seconds.
const DIRECT_WITHIN: f64 = 5.0;

const JOBS: &str = "std:derp:with std:derp:without std:none:with \
                    lease:none:with lease:none:without cgnat:derp:with cgnat:derp:without \
                    rot:none:with rot:none:without";

#[derive(Debug)]
struct Row {
    mode: String,
    relay: String,
    scenario: String,
    outcome: String,
    secs: Option<f64>,
    line: String,
}

/// Why the field test cannot run here, if it cannot.
fn cannot_run() -> Option<String> {
    if !common::is_root() {
        return Some("the lab needs root (network namespaces)".into());
    }
    if let Some(why) = common::mesh::missing_tools() {
        return Some(why);
    }
    let derper = Path::new(common::mesh::TOOLS).join("derper");
    if !derper.is_file() {
        return Some(format!(
            "{} missing (see tests/lab/install-go-tools.sh)",
            derper.display()
        ));
    }
    None
}

fn silent_loss_asserted() -> bool {
    SILENT_LOSS_ASSERTED
        || std::env::var("EDGEREACH_FIELD_ASSERT_SILENT_LOSS").is_ok_and(|v| v == "1")
}

fn parse(results: &str) -> Vec<Row> {
    results
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 11, "bad results row: {l:?}");
            Row {
                mode: f[0].into(),
                relay: f[1].into(),
                scenario: f[2].into(),
                outcome: f[3].into(),
                secs: f[4].parse().ok(),
                line: l.replace('\t', "  "),
            }
        })
        .collect()
}

#[test]
fn field_scenario_with_and_without_edgereach() {
    if let Some(why) = cannot_run() {
        skip!("field_scenario_with_and_without_edgereach", "{why}");
    }
    let out_dir = tempfile::tempdir().unwrap();
    let t0 = std::time::Instant::now();
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/field-scenario.sh"))
        .env("EDGEREACH_BIN", common::bin())
        .env("EDGEREACH_TOOLS", common::mesh::TOOLS)
        .env("FIELD_JOBS", JOBS)
        .env("FIELD_PARALLEL", "3")
        .env("FIELD_TRY_SECONDS", "15")
        .env("FIELD_LEASE_SECONDS", "30")
        .env("FIELD_LEASE_IDLE_SECONDS", "75")
        .env("FIELD_VERIFY_INTERVAL", VERIFY_INTERVAL.to_string())
        .env("FIELD_HOLD_SECONDS", "30")
        // With the hold A cannot lock itself out, so it may start trying at
        // once: 1 s after the router is back, 1 s after the loss.
        .env("FIELD_REBOOT_WAIT_SECONDS", "1")
        .env("FIELD_LOSS_WAIT_SECONDS", "1")
        .env("FIELD_OUT", out_dir.path())
        .output()
        .expect("run bench/field-scenario.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "{stdout}\n{}\nfield scenario took {:.0} s",
        String::from_utf8_lossy(&out.stderr),
        t0.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "the scenario script failed");
    let results = std::fs::read_to_string(out_dir.path().join("results.tsv")).unwrap();
    let rows = parse(&results);
    let row = |mode: &str, relay: &str, scenario: &str| -> &Row {
        rows.iter()
            .find(|r| r.mode == mode && r.relay == relay && r.scenario == scenario)
            .unwrap_or_else(|| panic!("no row {mode}/{relay}/{scenario} in:\n{results}"))
    };
    let direct_within = |r: &Row, bound: f64| {
        assert!(
            r.outcome == "direct" && r.secs.is_some_and(|s| s <= bound),
            "with edgereach, {} ({} relay): {} after {:?} s, want direct within {bound} s\n  {}",
            r.scenario,
            r.relay,
            r.outcome,
            r.secs,
            r.line
        );
    };

    let mut failures = Vec::new();
    let mut check = |f: &dyn Fn()| {
        if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            failures.push(
                e.downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "assertion failed".into()),
            );
        }
    };
    for relay in ["derp", "none"] {
        for scenario in ["join", "reboot"] {
            check(&|| direct_within(row("with", relay, scenario), DIRECT_WITHIN));
        }
    }
    check(&|| direct_within(row("with", "none", "lease"), DIRECT_WITHIN));
    for mode in ["with", "without"] {
        check(&|| {
            let r = row(mode, "derp", "cgnat");
            assert!(
                r.outcome != "direct",
                "{mode} edgereach, carrier NAT: direct is physically impossible, got\n  {}",
                r.line
            );
        });
    }
    let loss_bound = VERIFY_INTERVAL as f64 + DIRECT_WITHIN;
    // Forward rules rotted while the router's UPnP table still lists the
    // mapping: only the proof sees it (the UPnP check says all is well).
    check(&|| direct_within(row("with", "none", "rot"), loss_bound));
    if silent_loss_asserted() {
        for relay in ["derp", "none"] {
            check(&|| direct_within(row("with", relay, "loss"), loss_bound));
        }
    } else {
        for r in rows
            .iter()
            .filter(|r| r.scenario == "loss" && r.mode == "with")
        {
            eprintln!(
                "NOT ASSERTED (SILENT_LOSS_ASSERTED = false): with edgereach, silent loss ({} relay): \
                 {} after {:?} s (bound once asserted: {loss_bound} s)",
                r.relay, r.outcome, r.secs
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
