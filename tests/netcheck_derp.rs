//! netcheck with DERP relays. The captive-portal check against tailscale's real derper (relay
//! with `CanPort80`, started by tests/lab/mesh.sh with MESH_DERP=yes): no
//! portal -> false; then the hard router turns into a captive portal (it
//! redirects every LAN HTTP request to a login page of its own) -> true.
//! Without any port-80 relay in the map the check is not made -> null.

#[macro_use]
mod common;

use std::process::Command;

use common::lab::Lab;
use common::mesh::{headscale, headscale_with_relay, missing_tools};

/// The lab config with STUN servers only from the DERP map at `source`.
fn derp_map_from(source: String) -> impl Fn(String) -> String {
    move |c: String| {
        c.lines()
            .map(|l| {
                if l.starts_with("stun_servers =") {
                    "stun_servers = []".to_string()
                } else if l.starts_with("derp_map =") {
                    format!("derp_map = \"{source}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn with_derp_map(lab: &Lab) -> impl Fn(String) -> String {
    derp_map_from(lab.path().join("derp.json").display().to_string())
}

/// Wait (bounded, 10 s) until `url` answers from `host`: python's start-up
/// takes a while on a loaded machine.
fn http_ready(lab: &Lab, host: &str, url: &str) -> bool {
    let ns = lab.get(&format!("NS_{}", host.to_uppercase())).to_string();
    (0..50).any(|_| {
        let ok = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                "curl",
                "-fs",
                "-m",
                "1",
                "-o",
                "/dev/null",
                url,
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        ok
    })
}

#[test]
fn captive_portal_seen_through_derper() {
    need_root!("captive_portal_seen_through_derper");
    if let Some(why) = missing_tools() {
        skip!("captive_portal_seen_through_derper", "{why}");
    }
    let lab = Lab::up(&[]);
    // Without a relay: STUN-only map, nothing to ask.
    let _ = headscale(&lab);
    let r = lab.edgereach_netcheck("gwhard", with_derp_map(&lab));
    assert_eq!(r["captive_portal"], serde_json::Value::Null, "{r}");
    assert_eq!(r["udp"], true);
    drop(lab);

    let lab = Lab::up(&[]);
    let _ = headscale_with_relay(&lab);
    let r = lab.edgereach_netcheck("gwhard", with_derp_map(&lab));
    eprintln!("through derper: captive_portal {}", r["captive_portal"]);
    assert_eq!(r["captive_portal"], false, "{r}");

    // The router now answers every LAN HTTP request itself, like a hotel
    // portal: a 200 login page instead of derper's 204 with the challenge.
    let rhard = lab.get("NS_RHARD").to_string();
    let gw = lab.get("HARD_LAN_GW").to_string();
    let portal = Command::new("ip")
        .args([
            "netns",
            "exec",
            &rhard,
            "python3",
            "-m",
            "http.server",
            "8081",
            "--bind",
        ])
        .arg(&gw)
        .arg("--directory")
        .arg(lab.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the portal page");
    let mut portal = scopeguard(portal);
    let ready = http_ready(&lab, "gwhard", &format!("http://{gw}:8081/"));
    assert!(ready, "the portal page did not come up");
    let nft = Command::new("ip")
        .args([
            "netns",
            "exec",
            &rhard,
            "nft",
            "add",
            "rule",
            "inet",
            "filter",
            "prerouting",
        ])
        .args([
            "iifname",
            lab.get("HARD_LAN_IF"),
            "tcp",
            "dport",
            "80",
            "dnat",
            "ip",
            "to",
        ])
        .arg(format!("{gw}:8081"))
        .output()
        .unwrap();
    assert!(
        nft.status.success(),
        "{}",
        String::from_utf8_lossy(&nft.stderr)
    );
    let r = lab.edgereach_netcheck("gwhard", with_derp_map(&lab));
    eprintln!("behind the portal: captive_portal {}", r["captive_portal"]);
    assert_eq!(r["captive_portal"], true, "{r}");
    let _ = portal.0.kill();
    let _ = portal.0.wait();
    let (clean, left) = lab.down_and_check();
    assert!(clean, "lab left behind: {left}");
}

/// Kills the child when the test panics.
struct Guard(std::process::Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
fn scopeguard(c: std::process::Child) -> Guard {
    Guard(c)
}

/// `netcheck.derp_map` as a URL: served over HTTP inside the lab, fetched,
/// used (its regions appear in the report), and still used from the kept
/// copy once the server is gone.
#[test]
fn derp_map_by_url_with_last_good_copy() {
    need_root!("derp_map_by_url_with_last_good_copy");
    if let Some(why) = missing_tools() {
        skip!("derp_map_by_url_with_last_good_copy", "{why}");
    }
    let lab = Lab::up(&[]);
    let _ = headscale(&lab); // writes LABDIR/derp.json (two STUN regions)
    let srv = lab.get("NS_SRV").to_string();
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &srv,
            "python3",
            "-m",
            "http.server",
            "8090",
        ])
        .args(["--bind", "203.0.113.30", "--directory"])
        .arg(lab.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = scopeguard(server);
    let url = "http://203.0.113.30:8090/derp.json";
    let up = http_ready(&lab, "gwhard", url);
    assert!(up, "the DERP map server did not come up");
    let by_url = derp_map_from(url.to_string());
    let regions = |r: &serde_json::Value| {
        let mut k: Vec<String> = r["region_latency_ms"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    let r = lab.edgereach_netcheck("gwhard", &by_url);
    assert_eq!(regions(&r), ["lab-a", "lab-b"], "{r}");
    let _ = server.0.kill();
    let _ = server.0.wait();
    let r = lab.edgereach_netcheck("gwhard", &by_url);
    assert_eq!(regions(&r), ["lab-a", "lab-b"], "from the kept copy: {r}");
    eprintln!(
        "DERP map by URL: regions {:?}, also with the server gone",
        regions(&r)
    );
    let (clean, left) = lab.down_and_check();
    assert!(clean, "lab left behind: {left}");
}
