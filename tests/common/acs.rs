//! The reference admission service (edgereach-acs) in the lab, and config
//! editing for the admission tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::lab::Lab;
use super::mesh::{mesh, text};

/// The edgereach-acs binary next to this test's binary; built (with the
/// `acs` feature) when it is not there yet.
pub fn acs_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory")?;
    let bin = dir.join("edgereach-acs");
    if !bin.is_file() {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--features", "acs", "--bin", "edgereach-acs"])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .output()
            .map_err(|e| format!("cargo build edgereach-acs: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo build edgereach-acs: {}", text(&out)));
        }
    }
    bin.is_file()
        .then_some(bin.clone())
        .ok_or_else(|| format!("{} not built", bin.display()))
}

/// Give the lab's srv namespace one more address.
pub fn srv_addr(lab: &Lab, ip: &str) {
    let ns = lab.get("NS_SRV");
    let st = Command::new("ip")
        .args(["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"])
        .status()
        .expect("ip addr add");
    assert!(st.success(), "cannot add {ip} to srv");
}

/// One edgereach-acs in ns srv, recorded as LABDIR/run/NAME.proc.
pub struct Acs {
    pub name: String,
    pub config: PathBuf,
}

impl Acs {
    /// Write `config` and start the service as `name` in srv.
    pub fn start(lab: &Lab, name: &str, config: &str) -> Self {
        let bin = acs_binary().expect("edgereach-acs binary");
        let dir = lab.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("acs.toml");
        std::fs::write(&path, config).unwrap();
        mesh(
            lab,
            "run",
            &[
                name,
                "srv",
                bin.to_str().unwrap(),
                "--config",
                path.to_str().unwrap(),
            ],
            name,
        );
        let acs = Self {
            name: name.to_string(),
            config: path,
        };
        let listen = config
            .lines()
            .find_map(|l| l.strip_prefix("listen = "))
            .map(|v| v.trim_matches('"').to_string())
            .expect("listen in the ACS config");
        for _ in 0..100 {
            if acs.get(lab, &listen, "/health").is_some() {
                return acs;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{name} does not answer on {listen}");
    }

    /// The service's pid (from its run record).
    pub fn pid(&self, lab: &Lab) -> i32 {
        std::fs::read_to_string(lab.path().join("run").join(format!("{}.proc", self.name)))
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .expect("acs pid")
    }

    /// Rewrite its configuration and make it reload (SIGHUP).
    pub fn reconfigure(&self, lab: &Lab, config: &str) {
        std::fs::write(&self.config, config).unwrap();
        let pid = nix::unistd::Pid::from_raw(self.pid(lab));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP acs");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// Stop it (SIGTERM to its recorded pid).
    pub fn stop(&self, lab: &Lab) {
        let pid = nix::unistd::Pid::from_raw(self.pid(lab));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// GET `path` from `listen` (in srv, with curl); the body when 2xx.
    pub fn get(&self, lab: &Lab, listen: &str, path: &str) -> Option<String> {
        let out = lab.exec(
            "srv",
            &["curl", "-fsS", "-m", "2", &format!("http://{listen}{path}")],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
