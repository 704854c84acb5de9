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

// ---- empty or null where "absent" was meant -------------------------------
//
// Property tests over the decoders, hand-rolled (no proptest in the offline
// registry): every optional field of a valid document is, one at a time and
// then in random combinations, removed, `null`, `""` (strings) or `[]`
// (arrays), and the document must still decode; every required field made
// absent, `null` or `""` must still be refused.

use serde_json::{json, Value};

fn at<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Value {
    path.iter().fold(v, |v, k| match v {
        Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
        other => &mut other[*k],
    })
}

/// The field at `path` removed, `null`, and empty when it is a string or array.
fn absent_forms(base: &Value, path: &[&str]) -> Vec<(String, Value)> {
    let (parent, last) = path.split_at(path.len() - 1);
    let mut out = Vec::new();
    let mut removed = base.clone();
    if let Value::Object(m) = at(&mut removed, parent) {
        m.remove(last[0]);
    }
    out.push((format!("{} removed", path.join(".")), removed));
    let mut forms = vec![("null", Value::Null)];
    match at(&mut base.clone(), path) {
        Value::String(_) => forms.push(("\"\"", json!(""))),
        Value::Array(_) => forms.push(("[]", json!([]))),
        _ => {}
    }
    for (name, f) in forms {
        let mut v = base.clone();
        *at(&mut v, path) = f;
        out.push((format!("{} = {name}", path.join(".")), v));
    }
    out
}

struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Checks one decoder: `ok` must accept every absent form of `optional`
/// (alone and 300 random combinations), and refuse `required` fields
/// removed or `null`.
fn check_decoder(
    name: &str,
    base: Value,
    optional: &[&[&str]],
    required: &[&[&str]],
    ok: impl Fn(&[u8]) -> Result<(), String>,
) {
    let bytes = |v: &Value| serde_json::to_vec(v).unwrap();
    ok(&bytes(&base)).unwrap_or_else(|e| panic!("{name}: base refused: {e}"));
    let mut failures = Vec::new();
    for path in optional {
        for (what, v) in absent_forms(&base, path) {
            if let Err(e) = ok(&bytes(&v)) {
                failures.push(format!("{name}: {what}: refused: {e}"));
            }
        }
    }
    for path in required {
        // Absent and null only: whether "" is a value (a peer's empty
        // HostName) or refused (an empty cluster_id) is the decoder's call.
        for (what, v) in absent_forms(&base, path).into_iter().take(2) {
            if ok(&bytes(&v)).is_ok() {
                failures.push(format!("{name}: required {what}: accepted"));
            }
        }
    }
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for _ in 0..300 {
        let mut v = base.clone();
        // Deepest paths first, so a removed parent does not hide a child.
        let mut picked: Vec<_> = optional
            .iter()
            .filter(|_| rng.next().is_multiple_of(2))
            .collect();
        picked.sort_by_key(|p| std::cmp::Reverse(p.len()));
        let mut what = Vec::new();
        for path in picked {
            let forms = absent_forms(&v, path);
            let (w, f) = &forms[(rng.next() % forms.len() as u64) as usize];
            what.push(w.clone());
            v = f.clone();
        }
        if let Err(e) = ok(&bytes(&v)) {
            failures.push(format!("{name}: {}: refused: {e}", what.join(", ")));
            break;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn derp_map_doc() -> Value {
    json!({
        "Regions": {"900": {
            "RegionID": 900, "RegionCode": "lab", "RegionName": "Lab", "Avoid": false,
            "Nodes": [{
                "Name": "900a", "RegionID": 900, "HostName": "derp.lab.example",
                "IPv4": "203.0.113.10", "IPv6": "2001:db8::10", "STUNPort": 3478,
                "STUNOnly": false, "DERPPort": 443, "CanPort80": true
            }]
        }},
        "OmitDefaultRegions": true
    })
}

const DERP_OPTIONAL: &[&[&str]] = &[
    &["OmitDefaultRegions"],
    &["Regions", "900", "RegionCode"],
    &["Regions", "900", "RegionName"],
    &["Regions", "900", "Avoid"],
    &["Regions", "900", "Nodes", "0", "Name"],
    &["Regions", "900", "Nodes", "0", "RegionID"],
    &["Regions", "900", "Nodes", "0", "IPv4"],
    &["Regions", "900", "Nodes", "0", "IPv6"],
    &["Regions", "900", "Nodes", "0", "STUNPort"],
    &["Regions", "900", "Nodes", "0", "STUNOnly"],
    &["Regions", "900", "Nodes", "0", "DERPPort"],
    &["Regions", "900", "Nodes", "0", "CanPort80"],
];

#[test]
fn derp_map_treats_null_and_empty_optionals_as_absent() {
    use edgereach::netcheck::derpmap::decode;
    let ok = |b: &[u8]| decode(b).map(|_| ()).map_err(|e| e.to_string());
    check_decoder(
        "derp map",
        derp_map_doc(),
        DERP_OPTIONAL,
        &[
            &["Regions", "900", "RegionID"],
            &["Regions", "900", "Nodes", "0", "HostName"],
        ],
        ok,
    );
    // Go's nil map, nil slice and nil pointers: none, not an error.
    for doc in [
        json!({"Regions": null}),
        json!({"Regions": {"900": null}}),
        json!({"Regions": {"900": {"RegionID": 900, "Nodes": null}}}),
        json!({"Regions": {"900": {"RegionID": 900, "Nodes": [null]}}}),
    ] {
        let m = decode(&serde_json::to_vec(&doc).unwrap()).unwrap_or_else(|e| panic!("{doc}: {e}"));
        assert!(
            edgereach::netcheck::derpmap::stun_targets(&m).is_empty(),
            "{doc}"
        );
    }
    // `Regions` and `Nodes` themselves stay required.
    assert!(decode(br#"{"OmitDefaultRegions": true}"#).is_err());
    assert!(decode(br#"{"Regions": {"900": {"RegionID": 900}}}"#).is_err());
}

#[test]
fn admission_answer_treats_null_and_empty_optionals_as_absent() {
    use edgereach::admission::codec::{decode_request, decode_response, DerpMapRef};
    let answer = json!({
        "cluster_id": "eu-1", "headscale_url": "https://hs.example", "auth_mode": "authkey",
        "auth_key": "tskey-auth-abc123", "derp_map": "https://hs.example/derp.json", "note": "hi"
    });
    let ok = |b: &[u8]| decode_response(b).map(|_| ()).map_err(|e| e.to_string());
    check_decoder(
        "bootstrap answer",
        answer.clone(),
        &[&["auth_key"], &["derp_map"], &["note"]],
        &[&["cluster_id"], &["headscale_url"], &["auth_mode"]],
        ok,
    );
    for key in ["cluster_id", "headscale_url", "auth_mode"] {
        let mut v = answer.clone();
        v[key] = json!("");
        assert!(
            ok(&serde_json::to_vec(&v).unwrap()).is_err(),
            "{key} = \"\" accepted"
        );
    }
    let mut blank = answer.clone();
    blank["auth_key"] = json!("");
    blank["derp_map"] = json!("");
    let r = decode_response(&serde_json::to_vec(&blank).unwrap()).unwrap();
    assert!(r.auth_key.is_none() && r.derp_map.is_none() && r.note.is_some());
    // An inline DERP map as Go writes it, every optional field absent in turn.
    let mut inline = answer.clone();
    inline["derp_map"] = derp_map_doc();
    let opt: Vec<Vec<&str>> = DERP_OPTIONAL
        .iter()
        .map(|p| {
            std::iter::once("derp_map")
                .chain(p.iter().copied())
                .collect()
        })
        .collect();
    let opt: Vec<&[&str]> = opt.iter().map(Vec::as_slice).collect();
    check_decoder(
        "bootstrap answer, inline DERP map",
        inline.clone(),
        &opt,
        &[],
        ok,
    );
    inline["derp_map"] = json!({"Regions": null});
    let r = decode_response(&serde_json::to_vec(&inline).unwrap()).unwrap();
    assert!(matches!(r.derp_map, Some(DerpMapRef::Inline(_))));

    let request = json!({
        "account": "acme", "plan": "std", "want_region": "eu", "gateway_id": "gw-1",
        "agent_version": "0.1.0", "arch": "aarch64", "current_cluster_id": "eu-1",
        "needs_auth_key": true,
        "netcheck": {"time": "2026-01-01T00:00:00Z", "udp": true, "ipv4": "203.0.113.9:41641",
            "mapping_varies_by_dest_ip": false, "port_mapping": ["upnp"],
            "preferred_region": "eu", "preferred_latency_ms": 12.5}
    });
    let ok = |b: &[u8]| decode_request(b).map(|_| ()).map_err(|e| e.to_string());
    check_decoder(
        "bootstrap request",
        request,
        &[
            &["plan"],
            &["want_region"],
            &["gateway_id"],
            &["agent_version"],
            &["arch"],
            &["current_cluster_id"],
            &["needs_auth_key"],
            &["netcheck"],
            &["netcheck", "time"],
            &["netcheck", "udp"],
            &["netcheck", "ipv4"],
            &["netcheck", "mapping_varies_by_dest_ip"],
            &["netcheck", "port_mapping"],
            &["netcheck", "preferred_region"],
            &["netcheck", "preferred_latency_ms"],
        ],
        &[&["account"]],
        ok,
    );
}

#[test]
fn localapi_answers_treat_null_and_empty_optionals_as_absent() {
    use edgereach::tailscale::api::{decode_notify, decode_ping, decode_prefs, decode_status};
    let peer = json!({
        "PublicKey": "nodekey:ab", "HostName": "gw", "DNSName": "gw.ts.net.",
        "TailscaleIPs": ["100.64.0.1"], "Tags": ["tag:gw"], "Addrs": ["192.0.2.2:41641"],
        "CurAddr": "192.0.2.2:41641", "Relay": "lab", "Online": true, "Active": false
    });
    let status = json!({
        "Version": "1.98.0", "BackendState": "Running", "Self": peer.clone(),
        "Health": ["x"], "Peer": {"nodekey:ab": peer}
    });
    let peer_optional = [
        "DNSName",
        "TailscaleIPs",
        "Tags",
        "Addrs",
        "CurAddr",
        "Relay",
        "Online",
        "Active",
    ];
    let mut optional: Vec<Vec<&str>> = vec![vec!["Self"], vec!["Health"], vec!["Peer"]];
    for f in peer_optional {
        optional.push(vec!["Self", f]);
        optional.push(vec!["Peer", "nodekey:ab", f]);
    }
    let optional: Vec<&[&str]> = optional.iter().map(Vec::as_slice).collect();
    check_decoder(
        "LocalAPI status",
        status,
        &optional,
        &[
            &["Version"],
            &["BackendState"],
            &["Self", "PublicKey"],
            &["Peer", "nodekey:ab", "HostName"],
        ],
        |b| decode_status(b).map(|_| ()).map_err(|e| e.to_string()),
    );
    check_decoder(
        "LocalAPI ping",
        json!({"IP": "100.64.0.2", "Err": "", "LatencySeconds": 0.01, "Endpoint": "192.0.2.3:41641",
            "DERPRegionID": 0, "DERPRegionCode": "", "PeerRelay": ""}),
        &[
            &["Err"],
            &["LatencySeconds"],
            &["Endpoint"],
            &["DERPRegionID"],
            &["DERPRegionCode"],
            &["PeerRelay"],
        ],
        &[&["IP"]],
        |b| decode_ping(b).map(|_| ()).map_err(|e| e.to_string()),
    );
    check_decoder(
        "LocalAPI prefs",
        json!({"ControlURL": "https://hs.example", "WantRunning": true, "LoggedOut": false, "Hostname": "gw"}),
        &[&["LoggedOut"], &["Hostname"]],
        &[&["ControlURL"], &["WantRunning"]],
        |b| decode_prefs(b).map(|_| ()).map_err(|e| e.to_string()),
    );
    check_decoder(
        "LocalAPI notify",
        json!({"Version": "1.98.0", "State": 6, "ErrMessage": "x"}),
        &[&["Version"], &["State"], &["ErrMessage"]],
        &[],
        |b| decode_notify(b).map(|_| ()).map_err(|e| e.to_string()),
    );
    let n = decode_notify(br#"{"Version": "", "ErrMessage": ""}"#).unwrap();
    assert!(n.version.is_none() && n.err_message.is_none());
}

// ---- userinfo in URLs -----------------------------------------------------

#[test]
fn credentials_in_urls_never_reach_status_events_or_log() {
    use edgereach::status::{Level, State, Status, StatusHub};
    let hub = StatusHub::new(Status::starting(edgereach::status::GatewayStatus {
        id: "gw-1".into(),
        site: String::new(),
        version: "0".into(),
        started_at: String::new(),
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
            auth_mode: "none".into(),
            derp_map_url: Some("https://u:secret@derp.example/map.json".into()),
            derp_map_inline: false,
            note: None,
            registered_at: "2026-01-01T00:00:00Z".into(),
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
