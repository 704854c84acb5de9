//! The end-to-end proof against the lab's real miniupnpd and coturn: a
//! router whose forwarding rules vanish without a word while its UPnP table
//! still lists the mapping (tailscale #21208: "listed and renewed but dead,
//! only delete + re-add fixed it") is found out within `verify_interval` + 5 s
//! and repaired; with the proof switched off the same loss goes unnoticed
//! (the control).
//!
//! The loss is the router's forward filter rules flushed, its DNAT rules
//! kept: GetSpecificPortMappingEntry reads the DNAT rule and says all is
//! well. (Flushing the DNAT rules too is no silent loss: the UPnP check sees
//! the entry gone; and miniupnpd 2.3.1 re-adds every rule on each PCP or
//! NAT-PMP renewal, so over those the next verification repairs it anyway.)

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::lab::{Lab, LabDaemon};

const PORT: u16 = 41641;
const VERIFY_S: u64 = 5;

fn events(s: &serde_json::Value, kind: &str) -> usize {
    s["events"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|e| e["kind"] == kind).count())
}

/// Datagrams from the outside peer to the mesh port that reach the gateway.
fn reach(lab: &Lab) -> usize {
    let listener = lab.udp_listen("gwhard", PORT, 5);
    lab.udp_send("peer", "203.0.113.2", PORT, 5, 0.1);
    std::thread::sleep(Duration::from_millis(300));
    listener.received().len()
}

/// The router's forward rules vanish; its table and miniupnpd are not told.
fn silent_loss(lab: &Lab) {
    let out = lab.exec(
        "rhard",
        &["nft", "flush", "chain", "inet", "filter", "miniupnpd"],
    );
    assert!(out.status.success(), "flush: {out:?}");
}

fn daemon(lab: &Lab, prove: bool) -> LabDaemon {
    lab.daemon("gwhard", |c| {
        common::set_key(
            &common::set_key(
                &c,
                "portmap",
                "verify_interval",
                &format!("\"{VERIFY_S}s\""),
            ),
            "portmap",
            "prove",
            if prove { "true" } else { "false" },
        )
    })
}

#[test]
fn silent_loss_is_proven_dead_and_repaired() {
    need_root!("silent_loss_is_proven_dead_and_repaired");
    let lab = Lab::up(&[("LAB_NATPMP", "no"), ("LAB_PCP", "no")]);

    // Control: without the proof, the router's word is all there is.
    let mut blind = daemon(&lab, false);
    blind.wait_for("mapped", Duration::from_secs(15), |s| {
        s["portmap"]["mappings"][0]["state"] == "ok"
    });
    assert_eq!(reach(&lab), 5, "the fresh mapping must forward");
    silent_loss(&lab);
    std::thread::sleep(Duration::from_secs(2 * VERIFY_S + 1));
    let s = blind.status().expect("status");
    assert_eq!(reach(&lab), 0, "the flushed router must forward nothing");
    assert_eq!(
        s["portmap"]["mappings"][0]["state"], "ok",
        "without the proof the dead mapping still reads ok (the router says so)"
    );
    eprintln!(
        "control (prove = false): dead for {}s, still reported ok",
        2 * VERIFY_S + 1
    );
    let (ok, _) = blind.stop();
    assert!(ok, "{}", blind.log());

    let d = daemon(&lab, true);
    let took = d.wait_for("proven", Duration::from_secs(20), |s| {
        s["portmap"]["proof"]["state"] == "proven"
            && s["portmap"]["mappings"][0]["proven_at"].is_string()
    });
    eprintln!("proven {took:?} after start");
    let s = d.status().unwrap();
    assert_eq!(s["portmap"]["proof"]["method"], "stun-rfc5780");
    assert_eq!(s["portmap"]["mappings"][0]["proof"], "stun-rfc5780");
    assert!(s["portmap"]["double_nat"].is_null(), "{s}");
    assert_eq!(reach(&lab), 5);

    silent_loss(&lab);
    let lost_at = Instant::now();
    let limit = Duration::from_secs(VERIFY_S + 5);
    d.wait_for("dead mapping repaired", limit, |s| {
        events(s, "mapping.dead_repaired") >= 1 && s["portmap"]["proof"]["state"] == "proven"
    });
    let repaired = lost_at.elapsed();
    let s = d.status().unwrap();
    let ev = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "mapping.dead_repaired")
        .unwrap()
        .clone();
    eprintln!(
        "silent loss repaired {repaired:?} after the flush: {}",
        ev["message"]
    );
    assert!(ev["message"].as_str().unwrap().contains("upnp"), "{ev}");
    assert!(s["portmap"]["proof"]["dead_repairs"].as_u64() >= Some(1));
    assert_eq!(reach(&lab), 5, "forwarding must be back after the repair");
    // No flapping: the next periods prove it again without another repair.
    std::thread::sleep(Duration::from_secs(2 * VERIFY_S));
    let s = d.status().unwrap();
    assert_eq!(s["portmap"]["proof"]["state"], "proven", "{s}");
    assert_eq!(
        events(&s, "mapping.dead_repaired"),
        1,
        "one repair, no flapping"
    );
    let (clean, report) = lab.down_and_check();
    assert!(clean, "{report}");
}
