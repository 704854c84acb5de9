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

/// An edgereach daemon running in one of the lab's hosts.
pub struct LabDaemon {
    pub child: std::process::Child,
    pub config: PathBuf,
    pub name: String,
}

impl Lab {
    /// Start the daemon in `host` with the example config, `edit` applied.
    pub fn daemon(&self, host: &str, edit: impl Fn(String) -> String) -> LabDaemon {
        self.daemon_env(host, &[], edit)
    }

    /// [`Lab::daemon`] with extra environment for the daemon (e.g.
    /// libfaketime's `LD_PRELOAD` and `FAKETIME`).
    pub fn daemon_env(
        &self,
        host: &str,
        env: &[(&str, &str)],
        edit: impl Fn(String) -> String,
    ) -> LabDaemon {
        let dir = self.dir.path().join(format!("edgereach-{host}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("edgereach.toml");
        std::fs::write(&config, edit(super::lab_config_in(&dir))).unwrap();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        let ns = self.get(&format!("NS_{}", host.to_uppercase())).to_string();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                super::bin(),
                "run",
                "--log-level",
                "debug",
                "--config",
            ])
            .arg(&config)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        LabDaemon {
            child,
            config,
            name: host.to_string(),
        }
    }
}

impl LabDaemon {
    pub fn status(&self) -> Option<serde_json::Value> {
        let out = Command::new(super::bin())
            .args(["status", "--json", "--config"])
            .arg(&self.config)
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    }

    /// Poll the status until `pred` holds; panics after `limit`.
    pub fn wait_for(
        &self,
        what: &str,
        limit: std::time::Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> std::time::Duration {
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if self.status().is_some_and(|s| pred(&s)) {
                return start.elapsed();
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "{}: {what} not seen within {limit:?}; status: {}\nlog:\n{}",
            self.name,
            self.status().map(|s| s.to_string()).unwrap_or_default(),
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_file_name("daemon.log")).unwrap_or_default()
    }

    /// SIGTERM and wait; returns (success, time taken).
    pub fn stop(&mut self) -> (bool, std::time::Duration) {
        let start = std::time::Instant::now();
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        while start.elapsed() < std::time::Duration::from_secs(5) {
            if let Ok(Some(st)) = self.child.try_wait() {
                return (st.success(), start.elapsed());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        (false, start.elapsed())
    }
}

impl Drop for LabDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP listener in a lab host, printing what arrives (tests/lab/udpreach.py).
pub struct UdpListener {
    child: std::process::Child,
    out: PathBuf,
}

impl Lab {
    pub fn udp_listen(&self, host: &str, port: u16, seconds: u32) -> UdpListener {
        self.udp_listen_mode(host, port, seconds, "listen")
    }

    /// [`Lab::udp_listen`] on a dual-stack `[::]:port` socket, as tailscaled
    /// listens.
    pub fn udp_listen6(&self, host: &str, port: u16, seconds: u32) -> UdpListener {
        self.udp_listen_mode(host, port, seconds, "listen6")
    }

    fn udp_listen_mode(&self, host: &str, port: u16, seconds: u32, mode: &str) -> UdpListener {
        let out = self.dir.path().join(format!("{mode}-{host}-{port}.txt"));
        let ns = self.get(&format!("NS_{}", host.to_uppercase())).to_string();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/udpreach.py");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/bin/python3"])
            .arg(&script)
            .args([mode, &port.to_string(), &seconds.to_string()])
            .stdout(std::fs::File::create(&out).unwrap())
            .spawn()
            .unwrap();
        let l = UdpListener { child, out };
        for _ in 0..100 {
            if l.text().starts_with("ready") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        l
    }

    /// Send `count` numbered datagrams from `host`, `gap` seconds apart; blocks.
    pub fn udp_send(&self, host: &str, to: &str, port: u16, count: u32, gap: f64) {
        self.udp_send_numbered(host, to, port, count, gap, 0);
    }

    /// As [`Lab::udp_send`], the datagrams numbered from `first` (so a
    /// round's datagrams can be told from a late one of an earlier round).
    pub fn udp_send_numbered(
        &self,
        host: &str,
        to: &str,
        port: u16,
        count: u32,
        gap: f64,
        first: u32,
    ) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/udpreach.py");
        let ns = self.get(&format!("NS_{}", host.to_uppercase())).to_string();
        let st = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/bin/python3"])
            .arg(&script)
            .args([
                "send",
                to,
                &port.to_string(),
                &count.to_string(),
                &gap.to_string(),
                &first.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl UdpListener {
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// (sequence number, arrival time) of every datagram so far.
    pub fn received(&self) -> Vec<(u32, f64)> {
        self.text()
            .lines()
            .filter_map(|l| {
                let mut f = l.strip_prefix("got ")?.split(' ');
                Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
            })
            .collect()
    }
}

impl Drop for UdpListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Lab {
    /// `edgereach netcheck --format json` in `host`, with the lab config
    /// (`edit` applied) kept in its own directory under the lab.
    pub fn edgereach_netcheck(
        &self,
        host: &str,
        edit: impl Fn(String) -> String,
    ) -> serde_json::Value {
        let dir = self.path().join(format!("nc-{host}"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("edgereach.toml");
        std::fs::write(&cfg, edit(super::lab_config_in(&dir))).unwrap();
        let ns = self.get(&format!("NS_{}", host.to_uppercase())).to_string();
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, super::bin()])
            .args(["netcheck", "--format", "json", "--config"])
            .arg(&cfg)
            .output()
            .expect("run edgereach netcheck");
        assert!(
            out.status.success(),
            "edgereach netcheck in {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "edgereach netcheck JSON: {e}\n{}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// Fetches the page's `/metrics` inside a lab host; prints the fetcher's wall
/// clock first.
const FETCH_METRICS: &str = "import sys, time, urllib.request
t = time.time()
body = urllib.request.urlopen('http://127.0.0.1:8088/metrics', timeout=5).read().decode()
print(repr(t))
sys.stdout.write(body)";

impl Lab {
    /// `/metrics` of the daemon in `host` (its page on 127.0.0.1:8088), or
    /// None when nothing answers.
    pub fn metrics(&self, host: &str) -> Option<super::promtest::Capture> {
        let out = self.exec(host, &["/usr/bin/python3", "-c", FETCH_METRICS]);
        if !out.status.success() {
            return None;
        }
        let s = String::from_utf8(out.stdout).ok()?;
        let (wall, text) = s.split_once('\n')?;
        Some(super::promtest::Capture {
            wall: wall.trim().parse().ok()?,
            text: text.to_string(),
        })
    }

    /// Poll [`Lab::metrics`] until `pred` holds; panics after `limit`.
    pub fn wait_metrics(
        &self,
        host: &str,
        what: &str,
        limit: std::time::Duration,
        pred: impl Fn(&str) -> bool,
    ) {
        let start = std::time::Instant::now();
        let mut last = None;
        while start.elapsed() < limit {
            last = self.metrics(host);
            if last.as_ref().is_some_and(|c| pred(&c.text)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!(
            "{host}: {what} not in /metrics within {limit:?}:\n{}",
            last.map(|c| c.text).unwrap_or_default()
        );
    }
}

/// A retained MQTT message as a fresh subscriber gets it.
pub struct Retained {
    /// The broker flagged it retained.
    pub retained: bool,
    /// Its topic.
    pub topic: String,
    /// Its JSON payload.
    pub payload: serde_json::Value,
}

impl Lab {
    /// The retained JSON message on `topic` (wildcards allowed), read by a
    /// fresh `mosquitto_sub` in the peer host; None within 3 s or not JSON.
    pub fn mqtt_retained(&self, topic: &str) -> Option<Retained> {
        let out = self.exec(
            "peer",
            &[
                "mosquitto_sub",
                "-h",
                self.get("MQTT_IP"),
                "-t",
                topic,
                "-C",
                "1",
                "-W",
                "3",
                "-F",
                "%r %t %p",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (r, rest) = text.trim().split_once(' ')?;
        let (topic, payload) = rest.split_once(' ')?;
        Some(Retained {
            retained: r == "1",
            topic: topic.to_string(),
            payload: serde_json::from_str(payload).ok()?,
        })
    }
}
