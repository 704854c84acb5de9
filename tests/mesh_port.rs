//! netcheck's `mesh_port_reachable` in the lab: the daemon behind the hard
//! NAT maps UDP 41641 (real miniupnpd) and, while nothing holds port 41641
//! (no tailscaled here), coturn answers from its other address to the
//! router's 41641 (RFC 5780 CHANGE-REQUEST + RESPONSE-PORT): true. Then the
//! router silently loses the forwarding rule while edgereach still lists the
//! mapping (tailscale issue 21208's "listed but dead"), and its conntrack
//! flows are gone: false.

#[macro_use]
mod common;

use std::process::Command;
use std::time::Duration;

use common::lab::Lab;

#[test]
fn mesh_port_reachable_through_the_mapping() {
    need_root!("mesh_port_reachable_through_the_mapping");
    let lab = Lab::up(&[]);
    let d = lab.daemon("gwhard", |c| c);
    let t = d.wait_for("mesh_port_reachable true", Duration::from_secs(30), |s| {
        s["netcheck"]["report"]["mesh_port_reachable"] == true
    });
    eprintln!("mesh port reachable through the mapping, told {t:?} after start");

    // Dead mapping: the router drops its forwarding rule, edgereach still
    // lists the mapping until its next check. A netcheck now says false.
    let rhard = lab.get("NS_RHARD").to_string();
    let out = Command::new("ip")
        .args([
            "netns", "exec", &rhard, "nft", "flush", "chain", "inet", "filter",
        ])
        .arg("prerouting_miniupnpd")
        .output()
        .unwrap();
    assert!(out.status.success());
    // ...and its flows: the answer that proved the mapping left a conntrack
    // entry that would carry the next one in without any rule.
    let _ = Command::new("ip")
        .args(["netns", "exec", &rhard, "conntrack", "-F"])
        .output();
    let r = lab.edgereach_netcheck("gwhard", |c| {
        c.replace(
            &format!(
                "control_socket = \"{}\"",
                lab.path().join("nc-gwhard/control.sock").display()
            ),
            &format!(
                "control_socket = \"{}\"",
                lab.path().join("edgereach-gwhard/control.sock").display()
            ),
        )
    });
    eprintln!(
        "with the rule gone: mesh_port_reachable {}",
        r["mesh_port_reachable"]
    );
    assert_eq!(r["mesh_port_reachable"], false, "{r}");
    drop(d);
    let (clean, left) = lab.down_and_check();
    assert!(clean, "lab left behind: {left}");
}
