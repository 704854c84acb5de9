//! `edgereach register [--json]` against a loopback responder: one
//! registration, the assignment printed, the auth key and token never.

mod common;

use std::io::{Read, Write};
use std::process::Command;

use common::set_key;
use common::*;

const ANSWER: &str = r#"{"cluster_id":"A","headscale_url":"https://hs-a.example","auth_mode":"authkey","auth_key":"hskey-auth-SECRET42","derp_map":"https://derp.example/map.json","note":"stick to cluster A"}"#;

/// Answer one request with `ANSWER`; returns the URL and the request seen.
fn one_shot() -> (String, std::thread::JoinHandle<String>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("\"account\"") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
            ANSWER.len()
        );
        s.write_all(reply.as_bytes()).unwrap();
        String::from_utf8_lossy(&got).into_owned()
    });
    (url, h)
}

fn register(json: bool) -> (String, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-SECRET77\n").unwrap();
    let (url, seen) = one_shot();
    let cfg = config_in(dir.path());
    let cfg = set_key(&cfg, "admission", "url", &format!("\"{url}\""));
    let cfg = set_key(&cfg, "admission", "account", "\"acme-inc\"");
    let cfg = set_key(&cfg, "admission", "region", "\"ap-sg\"");
    // A loopback stand-in without TLS: the token goes in cleartext on purpose.
    let cfg = set_key(&cfg, "admission", "allow_insecure_http", "true");
    let cfg = set_key(
        &cfg,
        "admission",
        "token_file",
        &format!("\"{}\"", token.display()),
    );
    let path = dir.path().join("edgereach.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["register", "--config"]).arg(&path);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        seen.join().unwrap(),
    )
}

#[test]
fn register_prints_the_assignment_without_secrets() {
    let (text, err, req) = register(false);
    eprintln!("{text}");
    assert!(text.contains("cluster       A"), "{text}");
    assert!(
        text.contains("headscale     https://hs-a.example"),
        "{text}"
    );
    assert!(text.contains("never shown"), "{text}");
    assert!(
        !text.contains("SECRET") && !err.contains("SECRET"),
        "{text}{err}"
    );
    assert!(req.starts_with("POST /api/v1/bootstrap "), "{req}");
    assert!(req.contains("authorization: Bearer tok-SECRET77"), "{req}");
    let body: serde_json::Value =
        serde_json::from_str(req.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["account"], "acme-inc");
    assert_eq!(body["want_region"], "ap-sg");
    assert_eq!(body["agent_version"], env!("CARGO_PKG_VERSION"));
    assert!(body["arch"].as_str().is_some_and(|a| !a.is_empty()));
    assert!(body["gateway_id"].as_str().is_some_and(|g| !g.is_empty()));

    let (json, _, _) = register(true);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["cluster_id"], "A");
    assert_eq!(v["auth_key_received"], true);
    assert_eq!(v["derp_map_url"], "https://derp.example/map.json");
    assert!(!json.contains("SECRET"), "{json}");
}
