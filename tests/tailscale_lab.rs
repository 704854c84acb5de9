//! The tailscale driver against real tailscaled (v1.98) and headscale in the
//! lab: gateway C behind the hard NAT runs tailscaled (--port 41641, its own
//! port mapper off, as edgereach's setup check asks) and edgereach; host A
//! runs tailscaled on a public address. (A behind the lab's easy NAT, which
//! filters by address and port, can't be pinged first from C without a DERP
//! relay to carry CallMeMaybe; the lab's DERP map is STUN-only. That case is
//! the field scenario, tests/field_scenario.rs.)
//!
//! Shown: no setup problem reported, the keepalive reaches A over a direct
//! path, a re-STUN follows the mapping; then tailscaled is killed with
//! SIGKILL: edgereach reports it gone, keeps its router mapping, and resumes
//! the keepalive when tailscaled comes back.

#[macro_use]
mod common;

use std::time::{Duration, Instant};

use common::lab::Lab;
use common::mesh::{join_as_edgereach_asks, mesh, missing_tools, peer_a_and_daemon_for_c};

fn events(s: &serde_json::Value, kind: &str) -> usize {
    s["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["kind"] == kind).count())
        .unwrap_or(0)
}

fn peer_a(s: &serde_json::Value) -> serde_json::Value {
    s["tailscale"]["peers"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["hostname"] == "a").cloned())
        .unwrap_or_default()
}

#[test]
fn keepalive_restun_and_tailscaled_restart() {
    need_root!("keepalive_restun_and_tailscaled_restart");
    if let Some(why) = missing_tools() {
        skip!("keepalive_restun_and_tailscaled_restart", "{why}");
    }
    let lab = Lab::up(&[("LAB_LAN", "private")]);
    let (key, d) = peer_a_and_daemon_for_c(&lab);
    d.wait_for(
        "tailscaled reported missing",
        Duration::from_secs(15),
        |s| {
            s["tailscale"]["state"] == "unavailable"
                && s["tailscale"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("does not exist"))
        },
    );
    d.wait_for("the mapping", Duration::from_secs(15), |s| {
        s["portmap"]["mappings"][0]["state"] == "ok"
    });
    join_as_edgereach_asks(&lab, "gwhard", "c", &key);
    let t = d.wait_for(
        "a direct keepalive pong from A",
        Duration::from_secs(30),
        |s| s["tailscale"]["state"] == "ok" && peer_a(s)["last_ping"]["path"] == "direct",
    );
    let s = d.status().unwrap();
    eprintln!(
        "C joined; first direct keepalive pong within {t:?}: {}",
        peer_a(&s)
    );
    assert_eq!(s["tailscale"]["backend_state"], "Running");
    assert_eq!(s["tailscale"]["listen_port"], 41641);
    assert_eq!(
        s["tailscale"]["checks"],
        serde_json::json!([]),
        "tailscaled runs as asked: no setup problem"
    );
    assert!(s["tailscale"]["restuns"].as_u64().unwrap() >= 1);
    let ext = s["portmap"]["mappings"][0]["external"].clone();
    assert!(
        s["tailscale"]["endpoints"]
            .as_array()
            .unwrap()
            .contains(&ext),
        "tailscaled advertises the mapped endpoint {ext}: {}",
        s["tailscale"]["endpoints"]
    );

    // SIGKILL tailscaled: reported within seconds, mapping kept.
    let killed = Instant::now();
    mesh(&lab, "kill", &["c"], "tailscaled-c");
    let t = d.wait_for("tailscaled reported gone", Duration::from_secs(10), |s| {
        s["tailscale"]["state"] == "unavailable" && events(s, "tailscaled.down") == 1
    });
    eprintln!("tailscaled kill seen after {t:?}");
    let s = d.status().unwrap();
    assert_eq!(s["portmap"]["mappings"][0]["state"], "ok");
    assert_eq!(s["portmap"]["mappings"][0]["external"], ext);
    let pings_before = s["tailscale"]["pings_sent"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(6));
    let s = d.status().unwrap();
    assert_eq!(
        s["tailscale"]["pings_sent"].as_u64().unwrap(),
        pings_before,
        "no pings while tailscaled is gone"
    );
    assert_eq!(s["portmap"]["mappings"][0]["state"], "ok", "mapping kept");

    // Back: keepalive resumes, with a re-STUN for the mapping in place.
    mesh(&lab, "start", &["c"], "tailscaled-c");
    let restarted = killed.elapsed();
    let t = d.wait_for(
        "keepalive resumed after tailscaled returned",
        Duration::from_secs(45),
        |s| {
            s["tailscale"]["state"] == "ok"
                && events(s, "tailscaled.up") == 2
                && s["tailscale"]["pings_sent"].as_u64().unwrap() > pings_before
                && peer_a(s)["last_ping"]["path"] == "direct"
        },
    );
    let s = d.status().unwrap();
    eprintln!(
        "tailscaled back {restarted:?} after the kill; keepalive direct again {t:?} later; restuns {}",
        s["tailscale"]["restuns"]
    );
    assert!(s["tailscale"]["restuns"].as_u64().unwrap() >= 2);
    drop(d);
    let (clean, left) = lab.down_and_check();
    assert!(clean, "lab left behind: {left}");
}
