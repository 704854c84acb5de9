//! Helpers shared by the integration tests: a daemon in a temporary directory,
//! started and killed by PID.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_edgereach")
}

pub fn example_config() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/edgereach.toml"))
        .expect("example config")
}

/// The example config for a daemon in the HOST namespace: state and socket
/// in `dir`, and everything that talks to the network switched off (port
/// mapping would ask this machine's real default gateway, netcheck would send
/// STUN through it). Tests that need those run inside the lab
/// ([`lab_config_in`]).
pub fn config_in(dir: &Path) -> String {
    let mut section = String::new();
    lab_config_in(dir)
        .lines()
        .map(|l| {
            if l.starts_with('[') {
                section = l.to_string();
            }
            match (section.as_str(), l) {
                ("[portmap]", l) if l.starts_with("enabled =") => "enabled = false".to_string(),
                ("[netcheck]", l) if l.starts_with("stun_servers =") => {
                    "stun_servers = []".to_string()
                }
                // A free port each: daemons of parallel tests never collide;
                // `web.listening` in the status says which one it got.
                ("[web]", l) if l.starts_with("listen =") => {
                    "listen = [\"127.0.0.1:0\"]".to_string()
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lab's two STUN servers (tests/lab/lab.sh, coturn).
pub const LAB_STUN_SERVERS: &str = "[\"203.0.113.10:3478\", \"203.0.113.11:3478\"]";

/// The example config with state and sockets moved into `dir` (tailscaled's
/// socket too: a test that drives a lab tailscaled sets it) and the lab's
/// STUN servers (the example names none), everything else on: only for
/// daemons inside lab namespaces.
pub fn lab_config_in(dir: &Path) -> String {
    example_config()
        .lines()
        .map(|l| {
            if l.starts_with("stun_servers =") {
                format!("stun_servers = {LAB_STUN_SERVERS}")
            } else if l.starts_with("socket = \"/run/tailscale/") {
                format!("socket = \"{}\"", dir.join("no-tailscaled.sock").display())
            } else if l.starts_with("state_dir =") {
                format!("state_dir = \"{}\"", dir.join("state").display())
            } else if l.starts_with("control_socket =") {
                format!(
                    "control_socket = \"{}\"",
                    dir.join("control.sock").display()
                )
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub log: PathBuf,
}

/// `config` with `key = value` set in `[section]` (replaced when present,
/// added at the top of the section otherwise).
pub fn set_key(config: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let prefix = format!("{key} =");
    let mut current = String::new();
    let present = config.lines().any(|l| {
        if l.starts_with('[') {
            current = l.to_string();
        }
        current == header && l.starts_with(&prefix)
    });
    let line = format!("{key} = {value}");
    let mut out = Vec::new();
    current.clear();
    for l in config.lines() {
        if l.starts_with('[') {
            current = l.to_string();
        }
        if present && current == header && l.starts_with(&prefix) {
            out.push(line.clone());
            continue;
        }
        out.push(l.to_string());
        if !present && l == header {
            out.push(line.clone());
        }
    }
    if !config.lines().any(|l| l == header) {
        out.push(header);
        out.push(line);
    }
    out.join("\n")
}

impl Daemon {
    pub fn start() -> Self {
        Self::start_with(|c| c)
    }

    /// Start with the host-safe config, `edit` applied.
    pub fn start_with(edit: impl Fn(String) -> String) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Let a non-root test user reach the socket below it.
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(dir.path()).unwrap().permissions(),
            0o755,
        );
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let config = dir.path().join("edgereach.toml");
        std::fs::write(&config, edit(config_in(dir.path()))).unwrap();
        let log = dir.path().join("daemon.log");
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn daemon");
        let d = Self {
            child,
            dir,
            config,
            log,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.cli(&["status", "--json"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("daemon not ready in 10 s; log:\n{}", self.log_text());
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run cli")
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status json")
    }

    /// The address the status page got (the config asks for port 0).
    pub fn web_addr(&self) -> std::net::SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let s = self.status_json();
            if let Some(a) = s["web"]["listening"][0].as_str() {
                return a.parse().expect("web.listening");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the status page never listened; log:\n{}", self.log_text());
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig)
            .expect("signal daemon");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait for exit up to `limit`; returns the exit status and the time taken.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return Some((st, start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod acs;
pub mod http;
pub mod lab;
pub mod mesh;
pub mod promtest;

/// Whether this is a CI run: `CI` is `true` (any case) or `1`. There a test
/// that cannot run here fails instead of skipping (`.ci/run` sets `CI=true`).
pub fn ci() -> bool {
    ci_from(std::env::var("CI").ok().as_deref())
}

/// [`ci`] for a given value of `CI`.
pub fn ci_from(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The one way a test says it cannot run here: under CI (see [`ci`]) it
/// panics with the reason, so the test fails; elsewhere it prints
/// `SKIP name: why` on stderr and the caller returns. Use [`skip!`], which
/// also returns.
pub fn skip(name: &str, why: &str) {
    skip_as(ci(), name, why)
}

/// [`skip`] with the CI flag given (the self-test calls this: `CI` is
/// process-global and tests run in parallel threads).
pub fn skip_as(ci: bool, name: &str, why: &str) {
    if ci {
        panic!("{name} cannot run: {why} (under CI a test that would skip fails)");
    }
    eprintln!("SKIP {name}: {why}");
}

/// `skip!("test_name", "why {x}")`: [`skip`] (fails under CI, else prints
/// `SKIP test_name: why`), then return from the test.
#[allow(unused_macros)]
macro_rules! skip {
    ($name:expr, $($why:tt)+) => {{
        $crate::common::skip($name, &format!($($why)+));
        return;
    }};
}

/// Leave, saying why, a test that needs root for the lab (fails under CI).
#[allow(unused_macros)]
macro_rules! need_root {
    ($name:literal) => {
        if !$crate::common::is_root() {
            skip!($name, "the lab needs root (network namespaces)");
        }
    };
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
