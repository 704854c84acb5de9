//! `edgereach netcheck --mesh-port` in the lab: the daemon behind the hard
//! NAT maps UDP 41641 (real miniupnpd); nothing holds port 41641 (no
//! tailscaled here), so coturn can answer from its other address to the
//! router's 41641 (RFC 5780 CHANGE-REQUEST + RESPONSE-PORT): true. Then the
//! router silently loses the forwarding rule and its flows while edgereach
//! still lists the mapping (tailscale issue 21208's "listed but dead"):
//! false. Without the flag, or with the port in use, it can't be told: null.

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use common::lab::Lab;

fn netcheck(lab: &Lab, config: &std::path::Path, mesh_port: bool) -> serde_json::Value {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", lab.get("NS_GWHARD"), common::bin()])
        .args(["netcheck", "--format", "json", "--config"])
        .arg(config);
    if mesh_port {
        cmd.arg("--mesh-port");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn mesh_port_reachable_through_the_mapping() {
    need_root!("mesh_port_reachable_through_the_mapping");
    let lab = Lab::up(&[]);
    let d = lab.daemon("gwhard", |c| c);
    d.wait_for("the mapping", Duration::from_secs(15), |s| {
        s["portmap"]["mappings"][0]["state"] == "ok"
    });
    let r = netcheck(&lab, &d.config, false);
    assert_eq!(r["mesh_port_reachable"], serde_json::Value::Null, "{r}");
    let r = netcheck(&lab, &d.config, true);
    eprintln!(
        "through the mapping: mesh_port_reachable {}",
        r["mesh_port_reachable"]
    );
    assert_eq!(r["mesh_port_reachable"], true, "{r}");

    // Port in use (as when tailscaled runs): can't be told.
    let holder = lab.udp_listen("gwhard", 41641, 10);
    let r = netcheck(&lab, &d.config, true);
    assert_eq!(r["mesh_port_reachable"], serde_json::Value::Null, "{r}");
    drop(holder);

    // Dead mapping: the router drops its forwarding rule and its flows (the
    // answer that proved the mapping left a conntrack entry that would carry
    // the next one in without any rule); edgereach still lists the mapping.
    let rhard = lab.get("NS_RHARD").to_string();
    let out = Command::new("ip")
        .args([
            "netns", "exec", &rhard, "nft", "flush", "chain", "inet", "filter",
        ])
        .arg("prerouting_miniupnpd")
        .output()
        .unwrap();
    assert!(out.status.success());
    let _ = Command::new("ip")
        .args(["netns", "exec", &rhard, "conntrack", "-F"])
        .output();
    let r = netcheck(&lab, &d.config, true);
    eprintln!(
        "with the rule gone: mesh_port_reachable {}",
        r["mesh_port_reachable"]
    );
    assert_eq!(r["mesh_port_reachable"], false, "{r}");
    drop(d);
    let (clean, left) = lab.down_and_check();
    assert!(clean, "lab left behind: {left}");
}
