//! Real tailscaled/tailscale/headscale on top of the lab (tests/lab/mesh.sh).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::lab::{Lab, LabDaemon};
use super::set_key;

/// Where tests/lab/install-go-tools.sh puts the Go programs (never installed
/// from a test).
pub const TOOLS: &str = "/var/cache/edgereach-tools/bin";

pub fn mesh_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/mesh.sh")
}

/// Why the mesh tests cannot run here, if they cannot.
pub fn missing_tools() -> Option<String> {
    ["tailscaled", "tailscale", "headscale"]
        .iter()
        .find(|b| !Path::new(TOOLS).join(b).is_file())
        .map(|b| format!("{TOOLS}/{b} missing (see tests/lab/install-go-tools.sh)"))
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The last 30 lines of LABDIR/logs/NAME.log.
pub fn log_tail(lab: &Lab, name: &str) -> String {
    let t = std::fs::read_to_string(lab.path().join("logs").join(format!("{name}.log")))
        .unwrap_or_default();
    let lines: Vec<_> = t.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// tests/lab/mesh.sh SUB LABDIR args… with extra env; panics with the output
/// and `log`'s tail on failure.
pub fn mesh_env(lab: &Lab, sub: &str, args: &[&str], env: &[(&str, &str)], log: &str) -> Output {
    let out = Command::new(mesh_script())
        .arg(sub)
        .arg(lab.path())
        .args(args)
        .env("EDGEREACH_TOOLS", TOOLS)
        .envs(env.iter().copied())
        .output()
        .expect("run mesh.sh");
    assert!(
        out.status.success(),
        "mesh.sh {sub} {args:?} failed: {}\n{log} log:\n{}",
        text(&out),
        log_tail(lab, log)
    );
    out
}

/// [`mesh_env`] without extra env.
pub fn mesh(lab: &Lab, sub: &str, args: &[&str], log: &str) -> Output {
    mesh_env(lab, sub, args, &[], log)
}

/// Start headscale in the lab (STUN-only DERP map); returns a reusable
/// pre-auth key.
pub fn headscale(lab: &Lab) -> String {
    headscale_env(lab, &[])
}

/// [`headscale`] with tailscale's derper as relay in both DERP regions.
pub fn headscale_with_relay(lab: &Lab) -> String {
    headscale_env(lab, &[("MESH_DERP", "yes")])
}

fn headscale_env(lab: &Lab, env: &[(&str, &str)]) -> String {
    let out = mesh_env(lab, "headscale", &[], env, "headscale");
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(!key.is_empty(), "no pre-auth key: {}", text(&out));
    key
}

/// Join tailscaled NAME in HOSTKEY's namespace set up as edgereach's checks
/// ask (`--port 41641`, its own port mapper off: `TS_DISABLE_PORTMAPPER=1`).
pub fn join_as_edgereach_asks(lab: &Lab, host: &str, name: &str, key: &str) {
    mesh_env(
        lab,
        "join",
        &[host, name, key],
        &[("MESH_TS_ENV", "TS_DISABLE_PORTMAPPER=1")],
        &format!("tailscaled-{name}"),
    );
}

/// The tailnet the keepalive tests share: headscale, tailscaled "a" on the
/// public peer, and edgereach on the hard gateway pointed at tailscaled
/// "c"'s socket with a 5 s keepalive. "c" is not joined yet: the caller
/// does that with [`join_as_edgereach_asks`] and the returned key.
pub fn peer_a_and_daemon_for_c(lab: &Lab) -> (String, LabDaemon) {
    let key = headscale(lab);
    mesh(lab, "join", &["peer", "a", &key], "tailscaled-a");
    let sock = lab.path().join("ts-c/tailscaled.sock");
    let d = lab.daemon("gwhard", |c| {
        let c = set_key(
            &c,
            "tailscale",
            "socket",
            &format!("\"{}\"", sock.display()),
        );
        set_key(&c, "tailscale", "keepalive_interval", "\"5s\"")
    });
    (key, d)
}
