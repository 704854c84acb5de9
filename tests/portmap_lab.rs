//! Port mapping against the lab's real miniupnpd: each protocol, reachability
//! from outside, router reboot, short leases, release on SIGTERM, two gateways
//! wanting the same port, and a hostile fake IGD.

#[macro_use]
mod common;

use std::time::Duration;

use common::lab::{Lab, LabDaemon};

const PORT: u16 = 41641;

fn router_rules(lab: &Lab) -> String {
    String::from_utf8_lossy(&lab.exec("rhard", &["nft", "list", "ruleset"]).stdout).into_owned()
}

/// `method` "any": tests that are not about which protocol wins (with all
/// three on, PCP wins within its grace; on a loaded machine NAT-PMP's answer
/// can beat it, which is correct behaviour too).
fn mapping_ok(s: &serde_json::Value, method: &str) -> bool {
    let m = &s["portmap"]["mappings"][0];
    m["state"] == "ok"
        && (method == "any" || m["method"] == method)
        && m["external"] == "203.0.113.2:41641"
}

fn wait_mapped(d: &LabDaemon, method: &str) -> Duration {
    d.wait_for(
        &format!("mapping via {method}"),
        Duration::from_secs(15),
        |s| mapping_ok(s, method),
    )
}

#[test]
fn each_protocol_maps_reaches_and_releases() {
    need_root!("each_protocol_maps_reaches_and_releases");
    for (method, opts) in [
        (
            "pcp",
            [("LAB_UPNP", "no"), ("LAB_NATPMP", "no"), ("LAB_PCP", "yes")],
        ),
        (
            "nat-pmp",
            [("LAB_UPNP", "no"), ("LAB_NATPMP", "yes"), ("LAB_PCP", "no")],
        ),
        (
            "upnp",
            [("LAB_UPNP", "yes"), ("LAB_NATPMP", "no"), ("LAB_PCP", "no")],
        ),
    ] {
        let lab = Lab::up(&opts);
        let mut d = lab.daemon("gwhard", |c| c);
        let took = wait_mapped(&d, method);
        eprintln!("{method}: mapped and verified {took:?} after start");
        let rules = router_rules(&lab);
        assert!(
            rules.contains("41641"),
            "{method}: no rule on the router:\n{rules}"
        );

        let listener = lab.udp_listen("gwhard", PORT, 10);
        lab.udp_send("peer", "203.0.113.2", PORT, 5, 0.2);
        std::thread::sleep(Duration::from_millis(300));
        let got = listener.received().len();
        eprintln!("{method}: {got}/5 datagrams from outside reached the gateway");
        assert_eq!(got, 5, "{method}: datagrams lost");

        let (ok, took) = d.stop();
        assert!(ok, "{method}: unclean exit:\n{}", d.log());
        eprintln!("{method}: SIGTERM -> exit in {took:?}");
        assert!(took < Duration::from_secs(2));
        let rules = router_rules(&lab);
        assert!(
            !rules.contains("41641"),
            "{method}: mapping left on the router:\n{rules}"
        );
        let (clean, report) = lab.down_and_check();
        assert!(clean, "{report}");
    }
}

/// Largest gap between consecutive arrivals, in seconds.
fn max_gap(arrivals: &[(u32, f64)]) -> f64 {
    arrivals
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .fold(0.0, f64::max)
}

#[test]
fn router_reboot_is_repaired_within_5s() {
    need_root!("router_reboot_is_repaired_within_5s");
    for (method, opts) in [
        ("pcp", vec![]),
        ("upnp", vec![("LAB_NATPMP", "no"), ("LAB_PCP", "no")]),
    ] {
        let lab = Lab::up(&opts);
        let d = lab.daemon("gwhard", |c| c);
        wait_mapped(&d, method);
        let listener = lab.udp_listen("gwhard", PORT, 20);
        std::thread::scope(|s| {
            s.spawn(|| lab.udp_send("peer", "203.0.113.2", PORT, 40, 0.25));
            std::thread::sleep(Duration::from_secs(2));
            let out = lab.cmd("reboot-router", &[]);
            assert!(out.status.success());
        });
        let got = listener.received();
        let gap = max_gap(&got);
        eprintln!(
            "{method}: router reboot: {}/40 datagrams arrived, longest outage {gap:.2}s",
            got.len()
        );
        assert!(
            gap <= 5.0,
            "{method}: outage {gap:.2}s after reboot:\n{}",
            d.log()
        );
        assert!(
            got.last().is_some_and(|(seq, _)| *seq >= 38),
            "{method}: stream did not come back"
        );
        d.wait_for("reboot noticed", Duration::from_secs(5), |s| {
            s["portmap"]["router_reboots"].as_u64() >= Some(1)
                && s["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == "mapping.recovered" || e["kind"] == "router.rebooted")
        });
    }
}

#[test]
fn short_lease_three_periods_no_loss() {
    need_root!("short_lease_three_periods_no_loss");
    // miniupnpd grants PCP/NAT-PMP leases of at least 120 s; UPnP grants 20 s.
    let lab = Lab::up(&[("LAB_NATPMP", "no"), ("LAB_PCP", "no")]);
    let d = lab.daemon("gwhard", |c| c.replace("lease = \"1h\"", "lease = \"20s\""));
    wait_mapped(&d, "upnp");
    let lease = d.status().unwrap()["portmap"]["mappings"][0]["lease_s"].as_u64();
    assert_eq!(lease, Some(20), "router granted the short lease");
    let listener = lab.udp_listen("gwhard", PORT, 65);
    lab.udp_send("peer", "203.0.113.2", PORT, 60, 1.0);
    std::thread::sleep(Duration::from_millis(500));
    let got = listener.received().len();
    eprintln!("20 s lease, 60 datagrams over 60 s: {got} arrived");
    assert_eq!(got, 60, "datagrams lost across renewals:\n{}", d.log());
}

#[test]
fn second_gateway_gets_another_port_and_says_so() {
    need_root!("second_gateway_gets_another_port_and_says_so");
    let lab = Lab::up(&[]);
    let first = lab.daemon("gwhard", |c| c);
    wait_mapped(&first, "any");
    let second = lab.daemon("gwhard2", |c| c);
    second.wait_for("another port", Duration::from_secs(15), |s| {
        let m = &s["portmap"]["mappings"][0];
        m["external"]
            .as_str()
            .is_some_and(|e| !e.ends_with(":41641"))
            && m["same_port"] == false
            && m["state"] == "degraded"
            && m["reason"]
                .as_str()
                .is_some_and(|r| r.contains("instead of 41641"))
    });
    let s = second.status().unwrap();
    eprintln!("second gateway: {}", s["portmap"]["mappings"][0]);
    assert!(s["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "mapping.port_differs"));
}

#[test]
fn fake_igd_on_the_lan_is_ignored() {
    need_root!("fake_igd_on_the_lan_is_ignored");
    // The real router speaks only PCP here; a fake IGD on another LAN host
    // answers SSDP searches and multicasts NOTIFYs.
    let lab = Lab::up(&[("LAB_UPNP", "no"), ("LAB_NATPMP", "no")]);
    let fake = std::process::Command::new("ip")
        .args(["netns", "exec", lab.get("NS_GWHARD2"), "/usr/bin/python3"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/fakeigd.py"))
        .args([lab.get("GWHARD2_IP"), "20"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _fake = Kill(fake);
    std::thread::sleep(Duration::from_millis(500));
    let d = lab.daemon("gwhard", |c| c);
    wait_mapped(&d, "any");
    d.wait_for("fake IGD ignored", Duration::from_secs(10), |s| {
        let seen = s["portmap"]["protocols_seen"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        !seen.iter().any(|p| p == "upnp") && s["portmap"]["ignored_packets"].as_u64() > Some(0)
    });
    let s = d.status().unwrap();
    eprintln!(
        "fake IGD: protocols_seen={} ignored_packets={}",
        s["portmap"]["protocols_seen"], s["portmap"]["ignored_packets"]
    );
}

#[test]
fn portmap_cli_probes_router_and_shows_daemon_view() {
    need_root!("portmap_cli_probes_router_and_shows_daemon_view");
    let lab = Lab::up(&[]);
    let d = lab.daemon("gwhard", |c| c);
    wait_mapped(&d, "any");
    let method = d.status().unwrap()["portmap"]["mappings"][0]["method"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let run = |json: bool| {
        let mut args = vec![
            "netns",
            "exec",
            lab.get("NS_GWHARD"),
            common::bin(),
            "portmap",
        ];
        if json {
            args.push("--json");
        }
        let out = std::process::Command::new("ip")
            .args(&args)
            .arg("--config")
            .arg(&d.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let v: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    assert_eq!(v["router"], "192.0.2.1");
    assert_eq!(v["pcp"], true);
    assert_eq!(v["nat_pmp_external"], "203.0.113.2");
    assert_eq!(v["upnp_external"], "203.0.113.2");
    assert!(v["upnp_boot_id"].is_u64(), "{v}");
    assert_eq!(v["daemon"]["mappings"][0]["external"], "203.0.113.2:41641");
    let text = run(false);
    eprintln!("{text}");
    assert!(
        text.contains("router 192.0.2.1 (this host 192.0.2.10)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "tailscale udp 192.0.2.10:41641 -> 203.0.113.2:41641 via {method}"
        )),
        "{text}"
    );
}

#[test]
fn upnp_wins_back_the_wanted_port_when_freed() {
    need_root!("upnp_wins_back_the_wanted_port_when_freed");
    let lab = Lab::up(&[("LAB_NATPMP", "no"), ("LAB_PCP", "no")]);
    let fast = |c: String| c.replace("verify_interval = \"30s\"", "verify_interval = \"2s\"");
    let mut first = lab.daemon("gwhard", fast);
    wait_mapped(&first, "upnp");
    let second = lab.daemon("gwhard2", fast);
    second.wait_for("another port", Duration::from_secs(15), |s| {
        s["portmap"]["mappings"][0]["same_port"] == false
            && s["portmap"]["mappings"][0]["external"].is_string()
    });
    let (ok, _) = first.stop();
    assert!(ok);
    let took = second.wait_for("wanted port back", Duration::from_secs(10), |s| {
        let m = &s["portmap"]["mappings"][0];
        m["external"] == "203.0.113.2:41641"
            && m["internal"] == "192.0.2.11:41641"
            && m["state"] == "ok"
            && s["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "mapping.port_recovered")
    });
    eprintln!("second gateway got 41641 back {took:?} after the first released it");
    let rules = router_rules(&lab);
    assert!(
        !rules.contains("41642"),
        "the spare port was not given back:\n{rules}"
    );
}

#[test]
fn renumbered_gateway_maps_anew() {
    need_root!("renumbered_gateway_maps_anew");
    let lab = Lab::up(&[]);
    let d = lab.daemon("gwhard", |c| c);
    wait_mapped(&d, "any");
    let sh = |cmd: &str| {
        let out = lab.exec("gwhard", &["sh", "-c", cmd]);
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh("sysctl -qw net.ipv4.conf.eth0.promote_secondaries=1 \
        && ip addr add 192.0.2.12/26 dev eth0 && ip addr del 192.0.2.10/26 dev eth0 \
        && (ip route show default | grep -q . || ip route add default via 192.0.2.1)");
    let took = d.wait_for(
        "mapping for the new address",
        Duration::from_secs(15),
        |s| {
            let m = &s["portmap"]["mappings"][0];
            m["internal"] == "192.0.2.12:41641" && m["external"].is_string()
        },
    );
    let s = d.status().unwrap();
    let external = s["portmap"]["mappings"][0]["external"]
        .as_str()
        .unwrap()
        .to_string();
    eprintln!("renumbered: mapped anew {took:?} later as {external}");
    assert!(s["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "network.changed"));
    let port: u16 = external.rsplit(':').next().unwrap().parse().unwrap();
    let listener = lab.udp_listen("gwhard", PORT, 8);
    lab.udp_send("peer", "203.0.113.2", port, 5, 0.2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        listener.received().len(),
        5,
        "new mapping does not reach the new address"
    );
}

#[test]
fn refresh_deletes_and_readds_without_loss() {
    need_root!("refresh_deletes_and_readds_without_loss");
    let lab = Lab::up(&[("LAB_NATPMP", "no"), ("LAB_PCP", "no")]);
    let d = lab.daemon("gwhard", |c| {
        c.replace("refresh_interval = \"6h\"", "refresh_interval = \"60s\"")
    });
    wait_mapped(&d, "upnp");
    let listener = lab.udp_listen("gwhard", PORT, 75);
    lab.udp_send("peer", "203.0.113.2", PORT, 70, 1.0);
    std::thread::sleep(Duration::from_millis(500));
    let got = listener.received().len();
    let s = d.status().unwrap();
    let refreshed = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "mapping.refreshed")
        .count();
    eprintln!("refresh every 60 s: {refreshed} refresh(es), {got}/70 datagrams arrived");
    assert!(refreshed >= 1, "no refresh happened:\n{}", d.log());
    // The delete and re-add are milliseconds apart; at 1 datagram/s at most
    // one can fall into that gap.
    assert!(got >= 69, "datagrams lost across the refresh: {got}/70");
    assert_eq!(s["portmap"]["mappings"][0]["state"], "ok");
}

#[test]
fn mapping_deleted_behind_our_back_is_restored() {
    need_root!("mapping_deleted_behind_our_back_is_restored");
    let lab = Lab::up(&[("LAB_NATPMP", "no"), ("LAB_PCP", "no")]);
    let d = lab.daemon("gwhard", |c| {
        c.replace("verify_interval = \"30s\"", "verify_interval = \"2s\"")
    });
    wait_mapped(&d, "upnp");
    // Someone on the gateway host removes it (upnpc acts as the same client).
    let out = lab.exec("gwhard", &["upnpc", "-i", "-d", "41641", "UDP"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !router_rules(&lab).contains("41641"),
        "upnpc did not delete it"
    );
    let took = d.wait_for("restored", Duration::from_secs(10), |s| {
        let kinds: Vec<&str> = s["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["kind"].as_str())
            .collect();
        kinds.contains(&"mapping.lost")
            && kinds.contains(&"mapping.recovered")
            && mapping_ok(s, "upnp")
    });
    assert!(
        router_rules(&lab).contains("41641"),
        "not back on the router"
    );
    eprintln!("deleted mapping restored {took:?} later (verify_interval 2 s)");
}
