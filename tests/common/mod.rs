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
                ("[tailscale]", l) if l.starts_with("socket =") => {
                    format!("socket = \"{}\"", dir.join("no-tailscaled.sock").display())
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The example config with state and socket moved into `dir`, everything
/// on: only for daemons inside lab namespaces.
pub fn lab_config_in(dir: &Path) -> String {
    example_config()
        .lines()
        .map(|l| {
            if l.starts_with("state_dir =") {
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

impl Daemon {
    pub fn start() -> Self {
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
        std::fs::write(&config, config_in(dir.path())).unwrap();
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

pub mod lab;

/// Return early, saying why, from a test that needs root for the lab.
#[allow(unused_macros)]
macro_rules! need_root {
    ($name:literal) => {
        if !$crate::common::is_root() {
            eprintln!(concat!(
                "SKIP ",
                $name,
                ": the lab needs root (network namespaces)"
            ));
            return;
        }
    };
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
