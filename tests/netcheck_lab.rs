//! Netcheck against real coturn behind the lab's nftables NATs.
//!
//! Expected values come from the lab's rules (tests/lab/lab-conf.sh): the hard
//! router masquerades `fully-random` (endpoint-dependent mapping), the easy
//! router plain `masquerade` (port-preserving); both forward inbound only for
//! `ct state established,related`, i.e. replies from the exact address and
//! port we sent to: address-and-port-dependent filtering. The peer host has
//! no NAT and no filter: endpoint-independent.

#[macro_use]
mod common;

use std::time::Duration;

use common::lab::Lab;

/// `edgereach netcheck --format json` in `host`, with the example config.
fn netcheck(lab: &Lab, host: &str) -> serde_json::Value {
    lab.edgereach_netcheck(host, |c| c)
}

#[test]
fn hard_easy_and_no_nat() {
    need_root!("hard_easy_and_no_nat");
    let lab = Lab::up(&[]);

    let hard = netcheck(&lab, "gwhard");
    eprintln!("hard: {hard}");
    assert_eq!(hard["udp"], true);
    assert!(
        hard["ipv4"].as_str().unwrap().starts_with("203.0.113.2:"),
        "{hard}"
    );
    assert_eq!(hard["mapping_varies_by_dest_ip"], true);
    assert_eq!(hard["filtering"], "address-and-port-dependent");
    assert_eq!(hard["region_latency_ms"].as_object().unwrap().len(), 2);
    let pm: Vec<_> = hard["port_mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(pm, ["pcp", "nat-pmp", "upnp"]);
    assert!(hard["duration_ms"].as_u64().unwrap() <= 5000);

    let easy = netcheck(&lab, "gweasy");
    eprintln!("easy: {easy}");
    assert!(
        easy["ipv4"].as_str().unwrap().starts_with("203.0.113.3:"),
        "{easy}"
    );
    assert_eq!(easy["mapping_varies_by_dest_ip"], false);
    assert_eq!(easy["filtering"], "address-and-port-dependent");
    assert_eq!(easy["port_mapping"].as_array().unwrap().len(), 0);

    let open = netcheck(&lab, "peer");
    eprintln!("no NAT: {open}");
    assert!(
        open["ipv4"].as_str().unwrap().starts_with("203.0.113.50:"),
        "{open}"
    );
    assert_eq!(open["mapping_varies_by_dest_ip"], false);
    assert_eq!(open["filtering"], "endpoint-independent");
}

#[test]
fn udp_blocked_is_reported_within_budget() {
    need_root!("udp_blocked_is_reported_within_budget");
    let lab = Lab::up(&[]);
    assert!(lab.cmd("udp-block", &["on"]).status.success());
    let start = std::time::Instant::now();
    let r = netcheck(&lab, "gwhard");
    let took = start.elapsed();
    eprintln!("UDP blocked: {r} (CLI took {took:?})");
    assert_eq!(r["udp"], false);
    assert!(r["ipv4"].is_null());
    assert!(r["duration_ms"].as_u64().unwrap() <= 5000);
    assert!(took < Duration::from_secs(7), "{took:?}");
}

#[test]
fn daemon_publishes_report_and_lifetime() {
    need_root!("daemon_publishes_report_and_lifetime");
    let lab = Lab::up(&[]);
    // Idle UDP conntrack entries on the hard router die after 12 s, so the
    // estimate must come out as "at least 10 s" (cliffs 5, 10, 20, ...).
    for knob in [
        "nf_conntrack_udp_timeout",
        "nf_conntrack_udp_timeout_stream",
    ] {
        let out = lab.exec(
            "rhard",
            &["sysctl", "-qw", &format!("net.netfilter.{knob}=12")],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let d = lab.daemon("gwhard", |c| c);
    d.wait_for("a report", Duration::from_secs(15), |s| {
        s["netcheck"]["state"] == "ok"
            && s["netcheck"]["report"]["mapping_varies_by_dest_ip"] == true
            && s["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "netcheck.first")
    });
    let took = d.wait_for("mapping lifetime", Duration::from_secs(90), |s| {
        s["netcheck"]["report"]["mapping_lifetime_s"].is_u64()
    });
    let s = d.status().unwrap();
    let lifetime = s["netcheck"]["report"]["mapping_lifetime_s"]
        .as_u64()
        .unwrap();
    eprintln!("mapping lifetime estimate: at least {lifetime}s (after {took:?})");
    assert_eq!(lifetime, 10, "conntrack timeout is 12 s");
}
