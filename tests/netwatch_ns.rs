//! Network readiness in a namespace of our own: the daemon starts with no
//! network, waits without spinning, and follows the default route via netlink.

#[macro_use]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Netns(String);

impl Netns {
    fn new() -> Self {
        let name = format!("ernw{}", std::process::id());
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Self(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn starts_without_network_and_follows_the_default_route() {
    need_root!("starts_without_network_and_follows_the_default_route");
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, lab_config_in(dir.path())).unwrap();
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0, bin(), "run", "--config"])
        .arg(&config)
        .stderr(log)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Killed by PID even when an assertion fails (declared after the
    // namespace, so it drops first).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(child);
    let status = || -> Option<serde_json::Value> {
        let out = Command::new(bin())
            .args(["status", "--json", "--config"])
            .arg(&config)
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    };
    let wait_for = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool| -> Duration {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Some(s) = status() {
                if pred(&s) {
                    return start.elapsed();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{what} not seen within 10 s: {:?}", status());
    };

    wait_for("no-network state", &|s| {
        s["network"]["state"] == "unavailable"
            && s["network"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("no IPv4 default route")
            && s["portmap"]["reason"]
                .as_str()
                .unwrap_or("")
                .contains("no default route")
    });
    // Idle without a network: no spinning.
    let pid = child.0.id();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    eprintln!("CPU ticks used in 2 s idle without network: {used}");
    assert!(
        used <= 5,
        "daemon spins while waiting for the network: {used} ticks in 2 s"
    );

    ip(&[
        "-n", &ns.0, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
    ]);
    ip(&["-n", &ns.0, "addr", "add", "192.0.2.100/24", "dev", "v0"]);
    ip(&["-n", &ns.0, "link", "set", "v0", "up"]);
    ip(&["-n", &ns.0, "link", "set", "v1", "up"]);
    ip(&[
        "-n",
        &ns.0,
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "dev",
        "v0",
    ]);
    let took = wait_for("default route", &|s| {
        s["network"]["state"] == "ok"
            && s["network"]["default_route"]["gateway"] == "192.0.2.1"
            && s["network"]["default_route"]["source"] == "192.0.2.100"
    });
    eprintln!("default route noticed after {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "netlink should be prompt, took {took:?}"
    );

    ip(&["-n", &ns.0, "route", "del", "default"]);
    wait_for("route loss", &|s| {
        s["network"]["state"] == "unavailable"
            && s["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "default_route.lost")
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "no exit within 2 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
