//! The status page's server in the host namespace (loopback only; port
//! mapping and STUN are off): endpoints, the same JSON as the CLI, metrics
//! through the reference Prometheus parser, caps, timeouts, rate limit and
//! the token-protected actions.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::http::{get, request};
use common::*;

fn web(c: String, pairs: &[(&str, &str)]) -> String {
    pairs.iter().fold(c, |c, (k, v)| set_key(&c, "web", k, v))
}

/// Parse `/metrics` with prometheus_client's parser; the sample lines.
fn parse_metrics(text: &str) -> Vec<String> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/promparse.py");
    let mut child = std::process::Command::new("/usr/bin/python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {stderr}\n{text}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether python3's prometheus_client parser is here; when not, a skip of
/// the parser check (a failure as root, who installs it, and under CI).
fn have_prometheus_parser() -> bool {
    let ok = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import prometheus_client.parser"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let why =
            "python3-prometheus-client is not installed (tests/lab/install-deps.sh installs it)";
        if is_root() {
            panic!("{why}");
        }
        skip(
            "the Prometheus parser check of endpoints_serve_the_one_snapshot",
            why,
        );
    }
    ok
}

#[test]
fn endpoints_serve_the_one_snapshot() {
    let d = Daemon::start();
    let addr = d.web_addr();
    // Netcheck looks again a second after the default route appears.
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.status_json()["netcheck"]["reason"] == "no default route yet"
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }

    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'none'"));
    // Host namespace without tailscaled: the verdict names what is missing.
    assert!(
        page.body.contains("id=\"verdict\">Not reachable<"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("no-tailscaled.sock does not exist"),
        "{}",
        page.body
    );
    assert!(page.body.contains("no STUN servers"), "{}", page.body);
    assert!(!page.body.contains("<form"), "actions are off by default");

    let api: serde_json::Value = serde_json::from_str(&get(addr, "/api/status").body).unwrap();
    let cli = d.status_json();
    for key in [
        "gateway",
        "network",
        "portmap",
        "netcheck",
        "tailscale",
        "admission",
        "telemetry",
    ] {
        assert_eq!(
            api[key], cli[key],
            "{key} differs between /api/status and the CLI"
        );
    }
    let mut keys: Vec<_> = api.as_object().unwrap().keys().collect();
    keys.sort();
    let mut cli_keys: Vec<_> = cli.as_object().unwrap().keys().collect();
    cli_keys.sort();
    assert_eq!(keys, cli_keys);
    assert_eq!(api["web"]["state"], "ok", "{api}");

    let h = get(addr, "/healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    assert_eq!(get(addr, "/nope").status, 404);
    assert_eq!(
        get(addr, "/action/netcheck").status,
        404,
        "actions off: not there"
    );
    assert_eq!(request(addr, "POST", "/", &[], "x=1").status, 405);
    assert_eq!(request(addr, "DELETE", "/api/status", &[], "").status, 405);
    let head = request(addr, "HEAD", "/", &[], "");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());

    let m = get(addr, "/metrics");
    assert_eq!(
        m.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    if have_prometheus_parser() {
        let samples = parse_metrics(&m.body);
        eprintln!("{}", samples.last().unwrap());
        assert!(samples
            .iter()
            .any(|l| l.starts_with("sample edgereach_web_requests_total ")));
        assert!(
            samples
                .iter()
                .any(|l| l == "sample edgereach_section_ok {section=portmap,state=disabled} 0.0"),
            "{samples:?}"
        );
    }
}

/// Read until the server closes; how long that took.
fn time_to_close(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn caps_timeouts_and_rate_limit() {
    let d = Daemon::start_with(|c| {
        web(
            c,
            &[
                ("header_timeout", "\"2s\""),
                ("idle_timeout", "\"1s\""),
                ("max_connections_per_ip", "4"),
                ("requests_per_minute", "60"),
            ],
        )
    });
    let addr: SocketAddr = d.web_addr();

    // Per-client cap: four silent connections are held, the fifth is
    // closed at once.
    let mut held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut fifth = TcpStream::connect(addr).unwrap();
    let closed =
        time_to_close(&mut fifth, Duration::from_secs(1)).expect("fifth connection refused");
    eprintln!("fifth connection closed after {closed:?}");
    // Silent connections are closed by the idle timeout (1 s).
    for s in &mut held {
        let t = time_to_close(s, Duration::from_secs(3)).expect("idle connection closed");
        assert!(t < Duration::from_millis(1500), "{t:?}");
    }

    // Slow headers: a byte every 300 ms keeps it from being idle, but the
    // head is never complete: the header timeout (2 s) closes it.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let start = Instant::now();
    let mut closed_after = None;
    for i in 0..30 {
        std::thread::sleep(Duration::from_millis(300));
        if slow.write_all(format!("X-{i}: y\r\n").as_bytes()).is_err() {
            closed_after = Some(start.elapsed());
            break;
        }
        if time_to_close(&mut slow, Duration::from_millis(1)).is_some() {
            closed_after = Some(start.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("slow-header connection never closed");
    eprintln!("slow-header connection closed after {closed_after:?}");
    assert!(
        closed_after >= Duration::from_millis(1700) && closed_after < Duration::from_secs(3),
        "{closed_after:?}"
    );

    // A head larger than the limit is answered 431.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let r = common::http::raw(addr, big.as_bytes()).unwrap();
    assert_eq!(r.status, 431);

    // 60 a minute: a burst of 10, then 429 with Retry-After.
    let codes: Vec<u16> = (0..16).map(|_| get(addr, "/healthz").status).collect();
    eprintln!("16 quick requests: {codes:?}");
    let limited = codes.iter().filter(|&&c| c == 429).count();
    assert!((5..=7).contains(&limited), "{codes:?}");
    assert!(codes[..9].iter().all(|&c| c == 200), "{codes:?}");
    let r = get(addr, "/healthz");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("10"));

    std::thread::sleep(Duration::from_millis(1200));
    let w = &d.status_json()["web"];
    eprintln!("web status: {w}");
    assert!(w["rejected_per_client"].as_u64().unwrap() >= 1, "{w}");
    assert!(w["idle_closed"].as_u64().unwrap() >= 4, "{w}");
    assert_eq!(w["header_timeouts"].as_u64().unwrap(), 1, "{w}");
    assert!(w["rate_limited"].as_u64().unwrap() >= 6, "{w}");
    // One event says clients were turned away (spaced: not one per refusal).
    let refused: Vec<_> = d.status_json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "clients.refused")
        .cloned()
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
}

#[test]
fn actions_need_post_the_token_and_the_same_origin() {
    let token = "Zq3-test-token-0123456789";
    let d = Daemon::start_with(|c| {
        let file = std::env::temp_dir().join(format!("edgereach-web-token-{}", std::process::id()));
        std::fs::write(&file, format!("{token}\n")).unwrap();
        web(
            c,
            &[
                ("actions_enabled", "true"),
                ("action_token_file", &format!("\"{}\"", file.display())),
            ],
        )
    });
    let addr = d.web_addr();
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let page = get(addr, "/");
    assert_eq!(
        page.body.matches("<form method=\"post\"").count(),
        2,
        "{}",
        page.body
    );

    assert_eq!(get(addr, "/action/netcheck").status, 405);
    assert_eq!(
        request(addr, "POST", "/action/netcheck", &form, "").status,
        403
    );
    assert_eq!(
        request(
            addr,
            "POST",
            "/action/netcheck",
            &form,
            "token=wrong-token-wrong-token"
        )
        .status,
        403
    );
    let evil = [form[0], ("Origin", "http://evil.example")];
    let body = format!("token={token}");
    assert_eq!(
        request(addr, "POST", "/action/remap", &evil, &body).status,
        403
    );
    let cross = [form[0], ("Sec-Fetch-Site", "cross-site")];
    assert_eq!(
        request(addr, "POST", "/action/remap", &cross, &body).status,
        403
    );

    let origin = format!("http://{addr}");
    let same = [
        form[0],
        ("Origin", origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let r = request(addr, "POST", "/action/netcheck", &same, &body);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/?done=netcheck"));
    let r = request(
        addr,
        "POST",
        "/action/remap",
        &[("X-Edgereach-Token", token)],
        "",
    );
    assert_eq!(r.status, 303, "token in a header (scripts): {r:?}");
    assert!(get(addr, "/?done=remap")
        .body
        .contains("Re-mapping was asked for"));

    std::thread::sleep(Duration::from_millis(1200));
    let s = d.status_json();
    assert_eq!(s["web"]["actions_run"], 2, "{}", s["web"]);
    assert_eq!(s["web"]["actions_refused"], 4, "{}", s["web"]);
    let kinds: Vec<&str> = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"action.requested"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "action.refused").count(),
        1,
        "refusal events are spaced: {kinds:?}"
    );
    // The token is a secret: never in the status, the page, the metrics or the log.
    for text in [
        s.to_string(),
        get(addr, "/").body,
        get(addr, "/metrics").body,
        d.log_text(),
    ] {
        assert!(!text.contains(token));
    }
}

#[test]
fn sighup_with_new_web_settings_listens_anew() {
    let d = Daemon::start();
    let before = d.web_addr();
    assert_eq!(get(before, "/healthz").status, 200);
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        set_key(&text, "web", "requests_per_minute", "60"),
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut after = before;
    while after == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(a) = d.status_json()["web"]["listening"][0].as_str() {
            after = a.parse().unwrap();
        }
    }
    assert_ne!(after, before, "still on the old listener");
    assert!(TcpStream::connect(before).is_err(), "old listener closed");
    // The new limit holds: a burst of 10, then 429.
    let codes: Vec<u16> = (0..12).map(|_| get(after, "/healthz").status).collect();
    assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 2, "{codes:?}");
    let s = d.status_json();
    assert!(
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "config.changed" && e["source"] == "web"),
        "{s}"
    );
}

/// A burst of connections (more than `web::trim::BURST_CONNECTIONS` open at
/// once) ends with one heap trim once it has gone quiet; how much memory
/// that returns is measured by bench/web-load.sh, not asserted here.
#[test]
fn a_burst_of_connections_is_trimmed_once_quiet() {
    let d = Daemon::start();
    let addr = d.web_addr();
    let trims = || d.status_json()["web"]["heap_trims"].as_u64().unwrap();
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(trims(), 0, "no burst yet");
    let burst: Vec<TcpStream> = (0..12)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    for mut s in burst.iter() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert!(head.starts_with(b"HTTP/1.1 "), "{head:?}");
    }
    let closed = Instant::now();
    drop(burst);
    let deadline = closed + Duration::from_secs(15);
    while trims() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = closed.elapsed();
    eprintln!("heap trimmed {took:?} after the burst closed");
    assert_eq!(trims(), 1, "one trim after the burst");
    // Quiet means 2 s without a new connection, seen by a 1 s poll.
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let m = get(addr, "/metrics");
    assert!(
        m.body.contains("\nedgereach_web_heap_trims_total 1\n"),
        "{}",
        m.body
    );
}
