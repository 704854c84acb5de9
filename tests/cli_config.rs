//! `check-config` and `run` on bad files: one line naming file:line and key, exit 2.

mod common;

use std::process::Command;

use common::*;

fn check(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgereach.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path.display().to_string(),
    )
}

fn assert_one_line_error(text: &str, line: usize, key: &str) {
    let (code, err, path) = check(text);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    let prefix = format!("{path}:{line}: {key}: ");
    assert!(
        err.starts_with(&prefix),
        "want prefix {prefix:?}, got {err}"
    );
    eprintln!("{}", err.trim_end());
}

#[test]
fn example_config_is_valid() {
    let (code, err, _) = check(&example_config());
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn typo_key() {
    let text = example_config().replace("verify_interval = \"30s\"", "verify_intervall = \"30s\"");
    let line = text
        .lines()
        .position(|l| l.starts_with("verify_intervall"))
        .unwrap()
        + 1;
    assert_one_line_error(&text, line, "portmap.verify_intervall");
}

#[test]
fn wrong_type() {
    let text = example_config().replace("internal_port = 41641", "internal_port = \"41641\"");
    let line = text
        .lines()
        .position(|l| l.starts_with("internal_port"))
        .unwrap()
        + 1;
    assert_one_line_error(&text, line, "portmap.mapping.internal_port");
}

#[test]
fn bad_duration() {
    let text = example_config().replace("interval = \"5m\"", "interval = \"5 minutes-ish\"");
    let line = text
        .lines()
        .position(|l| l.starts_with("interval = \"5 min"))
        .unwrap()
        + 1;
    assert_one_line_error(&text, line, "netcheck.interval");
}

#[test]
fn run_refuses_bad_config_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[gateway]\nsite = 7\n").unwrap();
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2: gateway.site: "), "{err}");
}

#[test]
fn missing_file_is_a_config_error() {
    let out = Command::new(bin())
        .args(["check-config", "--config", "/nonexistent/edgereach.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/edgereach.toml"));
}
