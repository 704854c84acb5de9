//! The declared MSRV (`rust-version` in Cargo.toml) is at least every locked
//! dependency's own `rust-version`, so a `cargo update` that pulls in a crate
//! needing a newer Rust fails here instead of making the declaration false
//! (it said 1.85 while hickory-resolver needed 1.88). How the MSRV was chosen
//! and what CI builds it with: README, "Rust version".

use std::process::Command;

/// What the gateways and CI build for (tests/run.sh, cross/check.sh):
/// dependencies only other platforms pull in (Windows, macOS, wasm) are
/// never compiled here and don't count.
const TARGETS: &[&str] = &[
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "armv7-unknown-linux-gnueabihf",
];

/// "1.89" or "1.89.0" as (1, 89, 0).
fn version(v: &str) -> (u64, u64, u64) {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().expect(v));
    let mut next = || parts.next().unwrap_or(0);
    (next(), next(), next())
}

#[test]
fn no_locked_dependency_needs_a_newer_rust_than_we_declare() {
    let ours = env!("CARGO_PKG_RUST_VERSION");
    assert!(!ours.is_empty(), "Cargo.toml declares no rust-version");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "metadata",
        "--locked",
        "--format-version",
        "1",
        "--all-features",
    ])
    .arg("--manifest-path")
    .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
    for t in TARGETS {
        cmd.args(["--filter-platform", t]);
    }
    let out = cmd.output().expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let packages = meta["packages"].as_array().expect("packages");
    let mut deps: Vec<(&str, &str, &str)> = packages
        .iter()
        .filter(|p| !p["source"].is_null()) // not edgereach itself
        .filter_map(|p| {
            Some((
                p["rust_version"].as_str()?,
                p["name"].as_str()?,
                p["version"].as_str()?,
            ))
        })
        .collect();
    deps.sort_by_key(|d| version(d.0));
    // Not vacuous: the lock file's crates were seen, most with a rust-version.
    assert!(
        deps.len() > 100,
        "{} dependencies with a rust-version",
        deps.len()
    );
    let newer: Vec<String> = deps
        .iter()
        .filter(|d| version(d.0) > version(ours))
        .map(|(rv, name, v)| format!("{name} {v} needs Rust {rv}"))
        .collect();
    assert!(
        newer.is_empty(),
        "Cargo.toml declares rust-version = \"{ours}\", but locked dependencies need more:\n  {}\n\
         Either keep older versions of these crates (cargo update -p NAME --precise VERSION), \
         or raise rust-version and the README's \"Rust version\" section (every Yocto series \
         the layer claims must ship at least that Rust: the test below).",
        newer.join("\n  ")
    );
    let (rv, name, v) = deps.last().unwrap();
    eprintln!("rust-version {ours}; highest of the dependencies: {name} {v} ({rv})");
}

/// The Rust that oe-core ships in each Yocto series
/// (`meta/recipes-devtools/rust/rust_<version>.bb` on the series' branch).
/// cargo refuses a crate whose rust-version is newer than its compiler, so
/// the layer may claim only series whose Rust is at least ours.
const SERIES_RUST: &[(&str, &str)] = &[("whinlatter", "1.90.0"), ("wrynose", "1.94.1")];

#[test]
fn every_yocto_series_the_layer_claims_ships_a_new_enough_rust() {
    let ours = env!("CARGO_PKG_RUST_VERSION");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let conf = std::fs::read_to_string(root.join("yocto/meta-edgereach/conf/layer.conf"))
        .expect("layer.conf");
    let compat = conf
        .lines()
        .find_map(|l| l.strip_prefix("LAYERSERIES_COMPAT_edgereach = "))
        .expect("LAYERSERIES_COMPAT_edgereach")
        .trim_matches('"');
    for series in compat.split_whitespace() {
        let (_, rust) = SERIES_RUST
            .iter()
            .find(|(s, _)| *s == series)
            .unwrap_or_else(|| panic!("{series}: add the Rust version oe-core ships in it"));
        assert!(
            version(rust) >= version(ours),
            "{series} ships Rust {rust}, older than rust-version {ours}: \
             drop it from LAYERSERIES_COMPAT_edgereach"
        );
    }
    // What the layer and the README say is what Cargo.toml says.
    let needs = format!("Rust >= {ours}");
    assert!(conf.contains(&needs), "layer.conf does not say {needs}");
    let yocto_readme = std::fs::read_to_string(root.join("yocto/README.md")).unwrap();
    assert!(
        yocto_readme.contains(&needs),
        "yocto/README.md does not say {needs}"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let declared = format!("`rust-version` in Cargo.toml is {ours}");
    assert!(
        readme.contains(&declared),
        "README.md does not say {declared}"
    );
}
