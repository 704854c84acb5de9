//! The skip policy (tests/common: `skip!`, `common::skip`): a test that
//! cannot run here prints `SKIP name: why` and passes, except under CI
//! (`CI=true` or `CI=1`), where it fails with the reason, so a green CI run
//! means every test ran.

#[macro_use]
mod common;

use std::process::{Command, Output};

/// Set for the child run of [`a_test_that_skips`]; without it that test
/// does nothing.
const CHILD: &str = "EDGEREACH_SKIP_POLICY_CHILD";

#[test]
fn ci_is_true_or_1() {
    for v in ["true", "TRUE", "True", "1"] {
        assert!(common::ci_from(Some(v)), "{v}");
    }
    for v in ["", "0", "false", "no", "yes"] {
        assert!(!common::ci_from(Some(v)), "{v}");
    }
    assert!(!common::ci_from(None));
}

#[test]
fn under_ci_a_skip_fails_with_the_reason() {
    let e = std::panic::catch_unwind(|| common::skip_as(true, "some_test", "no widget here"))
        .expect_err("a skip under CI must panic");
    let msg = e
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("some_test"), "{msg}");
    assert!(msg.contains("no widget here"), "{msg}");
}

#[test]
fn outside_ci_a_skip_returns() {
    common::skip_as(false, "some_test", "no widget here");
}

/// Only in the child process: leaves through `skip!`.
#[test]
fn a_test_that_skips() {
    if std::env::var_os(CHILD).is_some() {
        skip!("a_test_that_skips", "the parent test asked for it");
    }
}

/// This test binary, running only [`a_test_that_skips`] with `CI` as given.
fn child(ci: Option<&str>) -> (Output, String) {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([
        "--exact",
        "a_test_that_skips",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, "1");
    match ci {
        Some(v) => cmd.env("CI", v),
        None => cmd.env_remove("CI"),
    };
    let out = cmd.output().expect("run the test binary");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

#[test]
fn the_macro_fails_the_test_under_ci_and_skips_elsewhere() {
    let (out, text) = child(None);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("SKIP a_test_that_skips: the parent test asked for it"),
        "{text}"
    );

    let (out, text) = child(Some("false"));
    assert!(out.status.success(), "{text}");

    for ci in ["true", "1"] {
        let (out, text) = child(Some(ci));
        assert!(!out.status.success(), "CI={ci}: the test passed:\n{text}");
        assert!(
            text.contains("a_test_that_skips cannot run: the parent test asked for it"),
            "CI={ci}:\n{text}"
        );
        assert!(!text.contains("SKIP a_test_that_skips"), "CI={ci}:\n{text}");
    }
}
