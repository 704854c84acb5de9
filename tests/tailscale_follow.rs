//! A gateway whose tailscaled listens on another UDP port than the
//! configuration names (`--port 41700`, the mapping says 41641): edgereach
//! reads the real port from the LocalAPI and maps that one instead (the same
//! port outside), so tailscaled advertises the router's port by itself and
//! peer A's keepalive pong comes back direct through it. Real tailscaled and
//! headscale in the lab.

#[macro_use]
mod common;

use std::time::Duration;

use common::lab::Lab;
use common::mesh::{mesh_env, missing_tools, peer_a_and_daemon_for_c};

const REAL_PORT: u16 = 41700;

#[test]
fn the_mapping_follows_tailscaleds_real_port() {
    need_root!("the_mapping_follows_tailscaleds_real_port");
    if let Some(why) = missing_tools() {
        skip!("the_mapping_follows_tailscaleds_real_port", "{why}");
    }
    let lab = Lab::up(&[("LAB_LAN", "private")]);
    let (key, d) = peer_a_and_daemon_for_c(&lab);
    d.wait_for("the configured mapping", Duration::from_secs(15), |s| {
        s["portmap"]["mappings"][0]["external"] == "203.0.113.2:41641"
    });
    let port = REAL_PORT.to_string();
    mesh_env(
        &lab,
        "join",
        &["gwhard", "c", &key],
        &[
            ("MESH_TS_ENV", "TS_DISABLE_PORTMAPPER=1"),
            ("MESH_TS_PORT", &port),
        ],
        "tailscaled-c",
    );
    let want = format!("203.0.113.2:{REAL_PORT}");
    let t = d.wait_for(
        "the mapping on tailscaled's real port",
        Duration::from_secs(30),
        |s| {
            let m = &s["portmap"]["mappings"][0];
            m["state"] == "ok"
                && m["external"] == want.as_str()
                && m["internal"]
                    .as_str()
                    .is_some_and(|i| i.ends_with(&format!(":{REAL_PORT}")))
        },
    );
    eprintln!("mapping follows tailscaled's port {REAL_PORT} {t:?} after C joined");
    let s = d.status().unwrap();
    assert_eq!(s["tailscale"]["listen_port"], REAL_PORT);
    let follows = s["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "mapping.follows_tailscaled");
    assert!(follows, "no follow event: {}", s["events"]);
    let t = d.wait_for(
        "a direct pong, tailscaled advertising the followed port",
        Duration::from_secs(45),
        |s| {
            let advertised = s["tailscale"]["endpoints"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e == want.as_str()));
            let a = s["tailscale"]["peers"]
                .as_array()
                .and_then(|p| p.iter().find(|p| p["hostname"] == "a").cloned())
                .unwrap_or_default();
            advertised && a["last_ping"]["path"] == "direct"
        },
    );
    let s = d.status().unwrap();
    eprintln!(
        "advertised {want} and direct {t:?} later; checks {}",
        s["tailscale"]["checks"]
    );
    let checks = s["tailscale"]["checks"].to_string();
    assert!(
        !checks.contains("port-mismatch"),
        "followed, no mismatch: {checks}"
    );
    drop(d);
    let (clean, left) = lab.down_and_check();
    assert!(clean, "lab left behind: {left}");
}
