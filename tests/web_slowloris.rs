//! A short slowloris run (bench/web-slowloris.sh with 200 connections and a
//! 4 s header timeout) in a private network namespace: every slow-header
//! connection is closed by the header timer, and a normal client's requests
//! all succeed meanwhile. The full run (1000 connections, 10 s) is the
//! benchmark itself.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Command;

/// `key=value` out of the script's RESULT line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn slow_headers_are_cut_and_a_normal_client_is_served() {
    need_root!("slow_headers_are_cut_and_a_normal_client_is_served");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/web-slowloris.sh");
    let out = Command::new(script)
        .env("EDGEREACH_BIN", common::bin())
        .env("WEB_SLOWLORIS_CONNECTIONS", "200")
        .env("WEB_HEADER_TIMEOUT", "4s")
        .env("WEB_SLOWLORIS_PHASES", "raised")
        .output()
        .expect("run bench/web-slowloris.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let line = text
        .lines()
        .find(|l| l.starts_with("RESULT phase=raised"))
        .expect("RESULT line");
    let held: u32 = field(line, "held").parse().unwrap();
    let cut: u32 = field(line, "header_timeouts").parse().unwrap();
    let max_open: f64 = field(line, "max_open_s").parse().unwrap();
    assert!(held >= 190, "slowhttptest held only {held} of 200");
    assert!(cut >= held, "header timer closed {cut} of {held}");
    assert!(
        (3.5..=5.0).contains(&max_open),
        "longest slow connection open {max_open} s with a 4 s header timeout"
    );
    // during="summary ok N failed M p50 ..ms p99 ..ms max ..ms"
    let during = line.split("during=\"").nth(1).unwrap();
    let words: Vec<&str> = during.split_whitespace().collect();
    assert_eq!(words[1], "ok");
    let ok: u32 = words[2].parse().unwrap();
    assert_eq!(words[3..5], ["failed", "0"], "{during}");
    assert!(ok >= 40, "{during}");
}
