//! The lab itself: hard vs easy NAT, UPnP on the hard router, MQTT across the
//! fake internet, router reboot, and nothing left behind.

#[macro_use]
mod common;

use std::process::Command;

use common::lab::Lab;

#[test]
fn lab_smoke_and_clean_teardown() {
    need_root!("lab_smoke_and_clean_teardown");
    let lab = Lab::up(&[]);
    assert_eq!(lab.get("HARD_WAN_IP"), "203.0.113.2");
    let smoke =
        Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/smoke.sh"))
            .arg(lab.path())
            .output()
            .unwrap();
    let text = String::from_utf8_lossy(&smoke.stdout).into_owned()
        + &String::from_utf8_lossy(&smoke.stderr);
    eprintln!("{text}");
    assert!(smoke.status.success(), "smoke failed:\n{text}");
    for check in [
        "a. hard NAT",
        "b. easy NAT",
        "c. UPnP mapping",
        "e. MQTT",
        "f. reboot-router",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("PASS") && l.contains(check)),
            "no PASS for {check}:\n{text}"
        );
    }
    assert!(!text.lines().any(|l| l.starts_with("FAIL")), "{text}");

    let namespaces_prefix = format!("{}-", lab.get("LAB_ID"));
    let (clean, report) = lab.down_and_check();
    assert!(clean, "lab left something behind:\n{report}");
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.contains(&namespaces_prefix),
        "namespaces left: {list}"
    );
}

#[test]
fn failed_build_tears_down_what_it_built() {
    need_root!("failed_build_tears_down_what_it_built");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::lab::lab_script())
        .arg("up")
        .arg(dir.path())
        .env("LAB_FAIL_AT", "miniupnpd")
        .output()
        .unwrap();
    assert!(!out.status.success(), "forced failure must fail");
    let left = Command::new(common::lab::lab_script())
        .arg("leftovers")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        left.status.success(),
        "leftovers after failed up:\n{}{}",
        String::from_utf8_lossy(&left.stdout),
        String::from_utf8_lossy(&left.stderr)
    );
}
