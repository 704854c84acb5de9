//! Type=notify: READY once the status exists, watchdog pings while healthy,
//! STOPPING on SIGTERM — read from a notify socket of our own.

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn ready_watchdog_and_stopping_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, config_in(dir.path())).unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 512];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5)
        && !(seen.contains("READY=1") && seen.matches("WATCHDOG=1").count() >= 3)
    {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let stop = Instant::now();
    while stop.elapsed() < Duration::from_secs(2) && !seen.contains("STOPPING=1") {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(seen.contains("READY=1"), "{seen}");
    assert!(
        seen.matches("WATCHDOG=1").count() >= 3,
        "watchdog pings (every 100 ms expected): {seen}"
    );
    assert!(seen.contains("STOPPING=1"), "{seen}");
}
