//! The shipped systemd unit: `systemd-analyze verify` is clean and the
//! `systemd-analyze security` exposure is at most 2.0.

mod common;

use std::process::Command;

/// The unit with ExecStart pointed at the binary under test, or None when
/// `test` cannot run here (a skip; a failure under CI).
fn unit_for_test(test: &str, dir: &std::path::Path) -> Option<std::path::PathBuf> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        common::skip(test, "systemd-analyze is not installed");
        return None;
    }
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/edgereach.service"),
    )
    .unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit = unit.replace("/usr/bin/edgereach", common::bin());
    let path = dir.join("edgereach.service");
    std::fs::write(&path, unit).unwrap();
    Some(path)
}

#[test]
fn unit_verifies_clean() {
    let dir = tempfile::tempdir().unwrap();
    let Some(unit) = unit_for_test("unit_verifies_clean", dir.path()) else {
        return;
    };
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    // Messages about other units on this machine are not ours to judge.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("edgereach")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn unit_exposure_is_at_most_2() {
    let dir = tempfile::tempdir().unwrap();
    let Some(unit) = unit_for_test("unit_exposure_is_at_most_2", dir.path()) else {
        return;
    };
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {line}"));
    eprintln!("{}", line.trim());
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    assert!(
        text.contains("Type=notify")
            || std::fs::read_to_string(&unit)
                .unwrap()
                .contains("Type=notify")
    );
}

/// The unit keeps every property the gateway images rely on; a line lost in
/// an edit fails here even where systemd-analyze is missing.
#[test]
fn unit_keeps_the_shipping_properties() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/edgereach.service"),
    )
    .unwrap();
    let lines: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |want: &str| lines.contains(&want);
    for want in [
        "Type=notify",
        "Restart=on-failure",
        "StateDirectory=edgereach",
        "RuntimeDirectory=edgereach",
        "ConfigurationDirectory=edgereach",
        "User=edgereach",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ExecStart=/usr/bin/edgereach run --config /etc/edgereach/edgereach.toml",
    ] {
        assert!(has(want), "config/edgereach.service lacks `{want}`");
    }
    assert!(
        lines.iter().any(|l| l
            .strip_prefix("WatchdogSec=")
            .is_some_and(|v| !v.is_empty() && v != "0")),
        "no WatchdogSec="
    );
    let families = lines
        .iter()
        .find_map(|l| l.strip_prefix("RestrictAddressFamilies="))
        .expect("RestrictAddressFamilies=");
    for family in ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"] {
        assert!(
            families.split_whitespace().any(|f| f == family),
            "{family} missing"
        );
    }
    // Readiness is handled inside (netlink): never wait for network-online.
    assert!(
        !lines.iter().any(|l| l.contains("network-online")),
        "the unit must not depend on network-online.target"
    );
}
