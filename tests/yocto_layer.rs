//! The Yocto layer's crate list follows Cargo.lock: a dependency change that
//! forgets `yocto/gen-crates-inc.py` fails here, in every `cargo test`.
//! (yocto/check.sh also runs oelint-adv on the recipe; tests/run.sh runs it.)

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn crates_inc_matches_cargo_lock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match Command::new("python3")
        .arg(root.join("yocto/gen-crates-inc.py"))
        .arg("--check")
        .output()
    {
        Ok(out) => out,
        Err(e) => skip!("crates_inc_matches_cargo_lock", "python3 not runnable: {e}"),
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn generator_lists_every_locked_registry_crate() {
    // The generator must not drop or invent crates: compare its output with a
    // plain count of the lock file's registry packages.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Ok(out) = Command::new("python3")
        .arg(root.join("yocto/gen-crates-inc.py"))
        .arg("--stdout")
        .output()
    else {
        skip!(
            "generator_lists_every_locked_registry_crate",
            "python3 not runnable"
        );
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inc = String::from_utf8(out.stdout).expect("utf-8 output");
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
    let registry = lock
        .lines()
        .filter(|l| l.starts_with("source = \"registry+"))
        .count();
    let uris = inc.matches("crate://crates.io/").count();
    let sums = inc
        .lines()
        .filter(|l| l.starts_with("SRC_URI[") && l.contains(".sha256sum] = \""))
        .count();
    assert!(registry > 0);
    assert_eq!(uris, registry, "one crate:// entry per registry package");
    assert_eq!(sums, registry, "one checksum per registry package");
    assert!(inc.contains("crate://crates.io/tokio/"));
}
