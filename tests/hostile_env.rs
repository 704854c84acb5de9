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

// ---- symlinked or foreign-owned state -------------------------------------

use edgereach::state::{EventSeqStore, StateDir};
use std::os::unix::fs::symlink;

const NOBODY: u32 = 65534;

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

/// A root-owned file outside the state directory that must stay untouched.
fn victim(dir: &Path) -> (std::path::PathBuf, &'static str) {
    let v = dir.join("victim");
    let text = "root:x:0:0:root:/root:/bin/bash -- this line must survive intact\n";
    std::fs::write(&v, text).unwrap();
    (v, text)
}

#[test]
fn state_dir_that_is_a_symlink_or_foreign_is_refused() {
    need_root!("state_dir_that_is_a_symlink_or_foreign_is_refused");
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("state");
    symlink(&real, &link).unwrap();
    let e = StateDir::open(&link).map(|_| ()).unwrap_err().to_string();
    assert!(
        e.contains(&link.display().to_string()) && e.contains("symbolic link"),
        "{e}"
    );

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    chown(&foreign, NOBODY);
    let e = StateDir::open(&foreign)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&foreign.display().to_string()) && e.contains("owned by uid 65534"),
        "{e}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&foreign).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o755, "not chmodded");
}

#[test]
fn state_files_that_are_symlinks_or_foreign_are_not_written_through() {
    need_root!("state_files_that_are_symlinks_or_foreign_are_not_written_through");
    let tmp = tempfile::tempdir().unwrap();
    let (v, text) = victim(tmp.path());
    let st = tmp.path().join("st");
    let dir = StateDir::open(&st).unwrap();

    // event-seq.last, overwritten in place per event.
    symlink(&v, st.join("event-seq.last")).unwrap();
    let e = EventSeqStore::open(&dir)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("event-seq.last") && e.contains("symbolic link"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(&v).unwrap(),
        text,
        "victim overwritten"
    );
    std::fs::remove_file(st.join("event-seq.last")).unwrap();

    // A stored file read back (the admission assignment, the identity).
    symlink(&v, st.join("admission.json")).unwrap();
    let e = edgereach::admission::assignment::Assignment::load(&dir)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("admission.json") && e.contains("symbolic link"),
        "{e}"
    );
    std::fs::remove_file(st.join("admission.json")).unwrap();
    std::fs::write(st.join("identity.json"), "{}").unwrap();
    chown(&st.join("identity.json"), NOBODY);
    let e = dir
        .read_json::<serde_json::Value>("identity.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("identity.json") && e.contains("owned by uid 65534"),
        "{e}"
    );

    // Predictable temporary names: plant them all as symlinks to the victim.
    for serial in 0..64 {
        let name = format!(".a.json.tmp.{}.{serial}", std::process::id());
        symlink(&v, st.join(name)).unwrap();
    }
    dir.write_json("a.json", &vec![1, 2, 3]).unwrap();
    assert_eq!(
        std::fs::read_to_string(&v).unwrap(),
        text,
        "victim overwritten"
    );
    assert_eq!(
        dir.read_json::<Vec<u32>>("a.json").unwrap(),
        Some(vec![1, 2, 3])
    );
}

#[test]
fn outbox_that_is_a_symlink_or_foreign_is_refused() {
    need_root!("outbox_that_is_a_symlink_or_foreign_is_refused");
    use edgereach::telemetry::outbox::Outbox;
    let tmp = tempfile::tempdir().unwrap();
    let (v, text) = victim(tmp.path());
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).unwrap();
    let link = tmp.path().join("outbox");
    symlink(&real, &link).unwrap();
    let e = Outbox::open(&link, 1 << 20)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("symbolic link"), "{e}");

    let dir = tmp.path().join("ob");
    std::fs::create_dir(&dir).unwrap();
    // A segment the next rotation or a fresh outbox would create.
    symlink(&v, dir.join(format!("seg-{:020}.log", 1))).unwrap();
    let e = Outbox::open(&dir, 1 << 20)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read_to_string(&v).unwrap(), text, "victim written");

    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    chown(&foreign, NOBODY);
    let e = Outbox::open(&foreign, 1 << 20)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(e.contains("owned by uid 65534"), "{e}");
}

// ---- empty or null where "absent" was meant: see hostile_env/absent.rs

#[path = "hostile_env/absent.rs"]
mod absent;

// ---- userinfo in URLs -----------------------------------------------------

#[test]
fn credentials_in_urls_never_reach_status_events_or_log() {
    use edgereach::status::{Level, State, Status, StatusHub};
    let hub = StatusHub::new(Status::starting(edgereach::status::GatewayStatus {
        id: "gw-1".into(),
        site: String::new(),
        version: "0".into(),
        started_at: Default::default(),
        config_path: String::new(),
        state_dir: String::new(),
        last_reload: None,
    }));
    let leaky = "https://user:pw@hs.example:8443/path";
    hub.emit(
        "tailscale",
        "control.changed",
        Level::Info,
        format!("control server now {leaky} (was \"http://a:b@old.example\")"),
    );
    hub.update(|s| {
        s.tailscale.health.set(
            State::Degraded,
            Some(format!("cannot reach {leaky}: refused")),
        );
        let a = edgereach::admission::assignment::Assignment {
            cluster_id: "eu-1".into(),
            headscale_url: leaky.into(),
            auth_mode: edgereach::admission::model::AuthMode::None,
            derp_map_url: Some("https://u:secret@derp.example/map.json".into()),
            derp_map_inline: false,
            note: None,
            registered_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            service: "https://acs.example".into(),
        };
        s.admission.show(&a, false);
    });
    let json = serde_json::to_string(&hub.snapshot()).unwrap();
    for secret in ["user:pw", "pw@", "a:b@", "u:secret", "secret@"] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }
    assert!(json.contains("https://hs.example:8443/path"), "{json}");
    assert!(json.contains("http://old.example"), "{json}");
    assert!(json.contains("https://derp.example/map.json"), "{json}");
}

#[test]
fn credentials_in_config_urls_are_not_echoed_by_check_config() {
    let c = set_key(
        &example_config(),
        "admission",
        "url",
        "\"ftp://user:pw@acs.example\"",
    );
    let c = set_key(&c, "admission", "account", "\"acme\"");
    let (code, err, _) = check_text(&c);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("ftp://acs.example") && !err.contains("user:pw"),
        "{err}"
    );
    let c = set_key(
        &example_config(),
        "telemetry",
        "mqtt_url",
        "\"tcp://user:pw@broker.example\"",
    );
    let (code, err, _) = check_text(&c);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("tcp://broker.example") && !err.contains("user:pw"),
        "{err}"
    );
}
