//! The namespace lab from Rust: `Lab::up()` builds it, dropping it tears it
//! down (even when the test panics), and `leftovers()` proves nothing stayed.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh")
}

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
    down: bool,
}

impl Lab {
    /// Build the lab; `options` are env vars such as ("LAB_UPNP", "no").
    pub fn up(options: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("edgereach-lab")
            .tempdir()
            .unwrap();
        let out = Command::new(lab_script())
            .arg("up")
            .arg(dir.path())
            .envs(options.iter().copied())
            .output()
            .expect("run lab.sh");
        assert!(
            out.status.success(),
            "lab.sh up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env"))
            .expect("LABDIR/env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self {
            dir,
            env,
            down: false,
        }
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("lab env has no {key}"))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Run a lab.sh subcommand.
    pub fn cmd(&self, sub: &str, args: &[&str]) -> Output {
        Command::new(lab_script())
            .arg(sub)
            .arg(self.dir.path())
            .args(args)
            .output()
            .expect("run lab.sh")
    }

    /// Run `cmd` in the namespace of `host` (gwhard, peer, rhard, ...).
    pub fn exec(&self, host: &str, cmd: &[&str]) -> Output {
        let mut args = vec![host];
        args.extend_from_slice(cmd);
        self.cmd("exec", &args)
    }

    /// Tear down now and return whether `leftovers` reports clean.
    pub fn down_and_check(mut self) -> (bool, String) {
        let down = self.cmd("down", &[]);
        self.down = true;
        let left = self.cmd("leftovers", &[]);
        let text = format!(
            "{}{}{}",
            String::from_utf8_lossy(&down.stderr),
            String::from_utf8_lossy(&left.stdout),
            String::from_utf8_lossy(&left.stderr)
        );
        (down.status.success() && left.status.success(), text)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.down {
            let _ = self.cmd("down", &[]);
        }
    }
}
