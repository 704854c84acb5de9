//! What a hostile or sloppy environment does to the daemon, one class per
//! section (issue 16), so the next decoder, config key or file gets the same
//! treatment: overflowing numbers, special files, cleartext secrets,
//! symlinked or foreign-owned state, userinfo in URLs, hostile web requests.
//! The file-system classes run as root, as the daemon does on a gateway.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn check_config(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_text(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgereach.toml");
    std::fs::write(&path, text).unwrap();
    let (code, err) = check_config(&path);
    (code, err, path.display().to_string())
}

// ---- overflowing numbers --------------------------------------------------

/// Every duration key of the example config, as `(section, key)`.
fn duration_keys() -> Vec<(String, String)> {
    let mut section = String::new();
    let mut keys = Vec::new();
    for l in example_config().lines() {
        if l.starts_with('[') {
            section = l.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        let Some((key, value)) = l.split_once(" = ") else {
            continue;
        };
        let v = value.trim().trim_matches('"');
        let is_duration = !v.is_empty()
            && v.starts_with(|c: char| c.is_ascii_digit())
            && v.ends_with(|c: char| c.is_ascii_alphabetic())
            && !value.contains('.');
        if is_duration && value.trim().starts_with('"') {
            keys.push((section.clone(), key.trim().to_string()));
        }
    }
    keys
}

#[test]
fn overflowing_durations_are_config_errors_with_line() {
    let keys = duration_keys();
    assert!(keys.len() >= 15, "found only {keys:?}");
    for (section, key) in keys {
        for huge in ["\"18446744073709551615s\"", "\"999999999999h\"", "\"31d\""] {
            let text = set_key(&example_config(), &section, &key, huge);
            let line = text
                .lines()
                .position(|l| l.starts_with(&format!("{key} = {huge}")))
                .map(|i| i + 1)
                .unwrap();
            let (code, err, path) = check_text(&text);
            assert_eq!(code, Some(2), "{section}.{key} = {huge}: {err}");
            let prefix = format!("{path}:{line}: {section}.{key}: ");
            assert!(err.starts_with(&prefix), "want {prefix:?}, got {err}");
        }
    }
}

// ---- cleartext secrets ----------------------------------------------------

fn with_http_admission(dir: &Path) -> String {
    let token = dir.join("token");
    std::fs::write(&token, "secret-token\n").unwrap();
    let c = config_in(dir);
    let c = set_key(&c, "admission", "url", "\"http://127.0.0.1:9\"");
    let c = set_key(&c, "admission", "account", "\"acme\"");
    set_key(
        &c,
        "admission",
        "token_file",
        &format!("{:?}", token.display().to_string()),
    )
}

#[test]
fn bearer_token_over_plain_http_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let text = with_http_admission(dir.path());
    let (code, err, path) = check_text(&text);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(&format!("{path}:")) && err.contains("admission.url"),
        "{err}"
    );
    assert!(err.contains("allow_insecure_http"), "{err}");
    let allowed = set_key(&text, "admission", "allow_insecure_http", "true");
    let (code, err, _) = check_text(&allowed);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn allowed_cleartext_token_is_said_in_the_status() {
    let tokdir = tempfile::tempdir().unwrap();
    let token = tokdir.path().join("token");
    std::fs::write(&token, "secret-token\n").unwrap();
    let tf = format!("{:?}", token.display().to_string());
    let d = Daemon::start_with(|c| {
        // Loopback discard port: nothing answers, nothing leaves the host.
        let c = set_key(&c, "admission", "url", "\"http://127.0.0.1:9\"");
        let c = set_key(&c, "admission", "account", "\"acme\"");
        let c = set_key(&c, "admission", "token_file", &tf);
        set_key(&c, "admission", "allow_insecure_http", "true")
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = d.status_json();
        if let Some(why) = s["admission"]["insecure"].as_str() {
            assert!(why.contains("cleartext"), "{why}");
            assert_eq!(s["admission"]["service"], "http://127.0.0.1:9", "{s}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no insecure note: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!d.log_text().contains("secret-token"));
}

// ---- special files --------------------------------------------------------

fn run_bounded(args: &[&str], limit: std::time::Duration) -> (Option<i32>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            return (status.code(), err);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn config_from_dev_zero_is_refused_fast() {
    need_root!("config_from_dev_zero_is_refused_fast");
    let (code, err) = run_bounded(
        &["check-config", "--config", "/dev/zero"],
        std::time::Duration::from_secs(5),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("/dev/zero") && err.contains("regular file"),
        "{err}"
    );
}

#[test]
fn config_from_fifo_does_not_hang() {
    need_root!("config_from_fifo_does_not_hang");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("cfg.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let fifo_s = fifo.display().to_string();
    let (code, err) = run_bounded(
        &["check-config", "--config", &fifo_s],
        std::time::Duration::from_secs(5),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&fifo_s) && err.contains("regular file"),
        "{err}"
    );
}

/// Runs `f` on a thread and fails when it takes longer than `limit` (a read
/// of /dev/zero or a FIFO that never ends).
fn within<T: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("still reading: unbounded read")
}

#[test]
fn token_files_from_special_files_are_refused() {
    need_root!("token_files_from_special_files_are_refused");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("token.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    for path in [std::path::PathBuf::from("/dev/zero"), fifo] {
        let shown = path.display().to_string();
        let p = path.clone();
        let web = within(std::time::Duration::from_secs(5), move || {
            edgereach::web::actions::Token::load(&p)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        });
        assert!(
            web.contains(&shown) && web.contains("regular file"),
            "{web}"
        );
        let adm = within(std::time::Duration::from_secs(5), move || {
            edgereach::admission::client::read_token(&path)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        });
        assert!(
            adm.contains(&shown) && adm.contains("regular file"),
            "{adm}"
        );
    }
}

// ---- hostile web requests -------------------------------------------------

fn get_with_host(addr: std::net::SocketAddr, target: &str, host: &str) -> u16 {
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    common::http::raw(addr, req.as_bytes()).unwrap().status
}

#[test]
fn long_targets_get_414_and_foreign_hosts_421() {
    let d = Daemon::start_with(|c| set_key(&c, "web", "allowed_hosts", "[\"gw7.plant.example\"]"));
    let addr = d.web_addr();
    let here = addr.to_string();
    let long = format!("/?x={}", "a".repeat(7000));
    assert_eq!(get_with_host(addr, &long, &here), 414, "7,000-byte target");
    assert_eq!(get_with_host(addr, "/api/status", &here), 200);
    // What a DNS-rebinding page in a technician's browser sends.
    for evil in [
        "attacker.example",
        "attacker.example:8088",
        "127.0.0.1.attacker.example",
    ] {
        assert_eq!(get_with_host(addr, "/api/status", evil), 421, "{evil}");
        assert_eq!(get_with_host(addr, "/", evil), 421, "{evil}");
        assert_eq!(get_with_host(addr, "/metrics", evil), 421, "{evil}");
    }
    let port = addr.port();
    for good in [
        here.clone(),
        "127.0.0.1".to_string(),
        format!("localhost:{port}"),
        "LOCALHOST".to_string(),
        "gw7.plant.example".to_string(),
        format!("gw7.plant.example:{port}"),
    ] {
        assert_eq!(get_with_host(addr, "/api/status", &good), 200, "{good}");
    }
}
