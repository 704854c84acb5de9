//! The daemon as a user meets it: start, status, reload, stop, refusals.

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;

#[test]
fn status_shows_every_section_with_reasons_and_sigterm_exits_fast() {
    let mut d = Daemon::start();
    // Netcheck looks again a second after the default route appears (it
    // lets the network settle); wait for that instead of racing it.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut s = d.status_json();
    while s["netcheck"]["reason"] == "no default route yet" && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
        s = d.status_json();
    }
    for key in [
        "gateway",
        "network",
        "portmap",
        "netcheck",
        "tailscale",
        "admission",
        "telemetry",
        "web",
        "events",
    ] {
        assert!(s.get(key).is_some(), "missing {key} in {s}");
    }
    assert_eq!(s["gateway"]["id"], "gw-plant7-01");
    for key in [
        "portmap",
        "netcheck",
        "tailscale",
        "admission",
        "telemetry",
        "web",
    ] {
        let state = s[key]["state"].as_str().unwrap();
        assert!(
            ["disabled", "unavailable", "ok", "degraded"].contains(&state),
            "{key}: {state}"
        );
        if state != "ok" {
            let reason = s[key]["reason"].as_str().unwrap_or_default();
            assert!(
                !reason.is_empty() && reason != "starting",
                "{key} has no reason: {s}"
            );
        }
    }
    assert_eq!(s["telemetry"]["state"], "disabled");
    // Host-namespace test: nothing may leave for this machine's real network.
    assert_eq!(s["portmap"]["state"], "disabled");
    assert!(
        s["netcheck"]["reason"]
            .as_str()
            .unwrap()
            .contains("no STUN servers"),
        "{s}"
    );
    assert!(s["tailscale"]["reason"]
        .as_str()
        .unwrap()
        .contains("tailscaled.sock"));
    assert_eq!(s["events"][0]["kind"], "started");

    let text = d.cli(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    for name in [
        "gateway",
        "network",
        "portmap",
        "netcheck",
        "tailscale",
        "admission",
        "telemetry",
        "web",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing in:\n{text}"
        );
    }

    // Idle with every capability unavailable or disabled: no spinning.
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let before = ticks(d.child.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = ticks(d.child.id()) - before;
    eprintln!("idle CPU: {used} ticks in 2 s");
    assert!(used <= 5, "daemon spins when idle: {used} ticks in 2 s");

    d.signal(Signal::SIGTERM);
    let (st, took) = d
        .wait_exit(Duration::from_secs(2))
        .expect("exit within 2 s");
    assert!(st.success(), "exit status {st:?}; log:\n{}", d.log_text());
    eprintln!("SIGTERM -> exit took {took:?}");
    assert!(
        !d.dir.path().join("control.sock").exists(),
        "socket removed"
    );
}

#[test]
fn sighup_reloads_or_keeps_old_config() {
    let mut d = Daemon::start();
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        good.replace("site = \"plant-7\"", "site = \"plant-8\""),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    wait_for(&d, |s| s["gateway"]["site"] == "plant-8");

    let site8 = good.replace("site = \"plant-7\"", "site = \"plant-8\"");
    std::fs::write(&d.config, site8.replace("[web]", "[web]\nlisten_typo = 1")).unwrap();
    d.signal(Signal::SIGHUP);
    // The CLI reads the same (now broken) file, so watch the log instead.
    for _ in 0..200 {
        if d.log_text().contains("config.reload_failed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(d.log_text().contains("web.listen_typo"), "{}", d.log_text());
    std::fs::write(&d.config, &site8).unwrap();
    wait_for(&d, |s| {
        s["gateway"]["last_reload"].as_str().is_some_and(|r| {
            r.contains("kept the old configuration") && r.contains("web.listen_typo")
        })
    });
    let s = d.status_json();
    assert_eq!(s["gateway"]["site"], "plant-8", "old config still in force");
    assert!(s["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "config.reload_failed"));
    d.signal(Signal::SIGTERM);
    assert!(d.wait_exit(Duration::from_secs(2)).unwrap().0.success());
}

fn wait_for(d: &Daemon, pred: impl Fn(&serde_json::Value) -> bool) {
    for _ in 0..200 {
        if pred(&d.status_json()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("condition not met; status: {}", d.status_json());
}

#[test]
fn cli_without_daemon_says_it_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config_in(dir.path())).unwrap();
    let out = std::process::Command::new(bin())
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("daemon is not running"), "{err}");
    assert!(err.contains("control.sock"), "{err}");
}

#[test]
fn a_second_daemon_does_not_steal_the_socket() {
    let d = Daemon::start();
    let out = std::process::Command::new(bin())
        .args(["run", "--config"])
        .arg(&d.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already listening"), "{err}");
    assert!(
        d.status_json()["gateway"].is_object(),
        "first daemon still serves"
    );
}

#[test]
fn other_user_is_refused_by_name_and_uid() {
    if !is_root() {
        skip!(
            "other_user_is_refused_by_name_and_uid",
            "needs root to run the CLI as another uid"
        );
    }
    let d = Daemon::start();
    // The CLI must read the config as that user too.
    std::fs::set_permissions(
        &d.config,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .args(["status", "--config"])
        .arg(&d.config)
        .uid(65534)
        .gid(65534)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("cannot run as uid 65534: {e}"),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("uid 65534"), "{err}");
    assert!(
        err.contains("may not use this daemon's control socket"),
        "{err}"
    );
    assert!(err.contains("root"), "{err}");
}

use std::os::unix::process::CommandExt;
