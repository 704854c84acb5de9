//! `edgereach netcheck` next to `tailscale netcheck` (v1.98) in the same lab
//! namespace, with tailscaled joined to a lab headscale whose DERP map holds
//! the two lab STUN servers as STUN-only regions (tests/lab/mesh.sh).
//!
//! Asserted to agree: UDP, public IPv4 address (ports differ: each tool binds
//! its own socket), MappingVariesByDestIP, and the port-mapping protocols
//! (tailscale's side from `tailscale debug portmap` with the gateway given,
//! see below). Printed only: preferred region
//! (sub-millisecond latencies decide it) and the region latency keys.
//!
//! Known difference, asserted as such: tailscale's portmapper only probes a
//! default gateway inside RFC 1918 (net/netmon/interfaces_linux.go,
//! `likelyHomeRouterIPLinux`: `ip.IsPrivate()`); the lab's LAN gateways are
//! documentation addresses (192.0.2.1, 192.0.2.65), so `tailscale netcheck`
//! reports UPnP/PMP/PCP false there whatever the router offers. That is
//! asserted too (netcheck says none, edgereach sees what the router offers).
//!
//! Needs root and the binaries in /var/cache/edgereach-tools/bin (installed by
//! tests/lab/install-go-tools.sh; never installed from here).

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Command;

use common::lab::Lab;
use common::mesh::{headscale, mesh, mesh_script, missing_tools, text, TOOLS};

fn tailscale_netcheck(lab: &Lab, name: &str) -> serde_json::Value {
    // mesh.sh refuses unless NAME's tailscaled runs and holds the lab DERP map.
    let out = mesh(
        lab,
        "netcheck",
        &[name, "--format", "json"],
        &format!("tailscaled-{name}"),
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("tailscale netcheck JSON: {e}\n{}", text(&out)))
}

fn edgereach_netcheck(lab: &Lab, host: &str) -> serde_json::Value {
    // Same regions as tailscaled's DERP map, nothing else.
    let derp = lab.path().join("derp.json");
    lab.edgereach_netcheck(host, |c| {
        c.lines()
            .map(|l| {
                if l.starts_with("stun_servers =") {
                    "stun_servers = []".to_string()
                } else if l.starts_with("derp_map =") {
                    format!("derp_map = \"{}\"", derp.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// What tailscale's `debug portmap` probe finds when told the gateway
/// explicitly (bypasses the RFC 1918 filter). Informational only.
fn tailscale_portmap_probe(lab: &Lab, name: &str, gw: &str, me: &str) -> String {
    let out = Command::new(mesh_script())
        .arg("cli")
        .arg(lab.path())
        .args([
            name,
            "debug",
            "portmap",
            "--gateway-addr",
            gw,
            "--self-addr",
            me,
        ])
        .args(["--duration", "3s"])
        .env("EDGEREACH_TOOLS", TOOLS)
        .output()
        .expect("run mesh.sh cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Probe: "))
        .unwrap_or("(no probe result)")
        .to_string()
}

/// "{PCP:true PMP:false UPnP:true}" -> {"pcp", "upnp"}
fn parse_probe(probe: &str) -> BTreeSet<String> {
    [
        ("UPnP:true", "upnp"),
        ("PMP:true", "nat-pmp"),
        ("PCP:true", "pcp"),
    ]
    .iter()
    .filter(|(k, _)| probe.contains(k))
    .map(|(_, v)| v.to_string())
    .collect()
}

fn ip_of(hostport: &serde_json::Value) -> Option<Ipv4Addr> {
    let s = hostport.as_str()?;
    s.rsplit_once(':')?.0.parse().ok()
}

fn ts_portmap(ts: &serde_json::Value) -> BTreeSet<String> {
    [("UPnP", "upnp"), ("PMP", "nat-pmp"), ("PCP", "pcp")]
        .iter()
        .filter(|(k, _)| ts[*k] == true)
        .map(|(_, v)| v.to_string())
        .collect()
}

fn er_portmap(er: &serde_json::Value) -> BTreeSet<String> {
    er["port_mapping"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn fmt_set(s: &BTreeSet<String>) -> String {
    format!("[{}]", s.iter().cloned().collect::<Vec<_>>().join(","))
}

#[test]
fn netcheck_matches_tailscale() {
    need_root!("netcheck_matches_tailscale");
    if let Some(why) = missing_tools() {
        skip!("netcheck_matches_tailscale", "{why}");
    }
    let t0 = std::time::Instant::now();
    let lab = Lab::up(&[]);

    let key = headscale(&lab);
    let hosts = [
        ("gwhard", "HARD_LAN_GW", "GWHARD_IP", "HARD_WAN_IP"),
        ("gweasy", "EASY_LAN_GW", "GWEASY_IP", "EASY_WAN_IP"),
    ];
    for (host, ..) in hosts {
        mesh(
            &lab,
            "join",
            &[host, host, &key],
            &format!("tailscaled-{host}"),
        );
    }
    eprintln!("mesh ready after {:?}", t0.elapsed());

    let mut rows: Vec<[String; 4]> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    for (host, gw_key, self_key, wan_key) in hosts {
        let ts = tailscale_netcheck(&lab, host);
        let er = edgereach_netcheck(&lab, host);
        eprintln!("{host} tailscale: {ts}");
        eprintln!("{host} edgereach: {er}");
        let gw: Ipv4Addr = lab.get(gw_key).parse().unwrap();
        // tailscale's own portmapper with the gateway given explicitly; its
        // probe window is short, so up to 3 tries for the set edgereach saw.
        let epm_now = er_portmap(&er);
        let mut probe = String::new();
        let mut probe_set = BTreeSet::new();
        for attempt in 1..=3 {
            probe = tailscale_portmap_probe(&lab, host, lab.get(gw_key), lab.get(self_key));
            probe_set = parse_probe(&probe);
            if probe_set == epm_now {
                break;
            }
            eprintln!("NOTE {host}: tailscale debug portmap try {attempt}: {probe}");
        }
        let mut row = |field: &str, t: String, e: String| {
            rows.push([host.to_string(), field.to_string(), t, e]);
        };

        row("udp", ts["UDP"].to_string(), er["udp"].to_string());
        check(
            ts["UDP"] == true && er["udp"] == true,
            format!("{host}: udp ts={} er={}", ts["UDP"], er["udp"]),
        );

        let (tip, eip) = (ip_of(&ts["GlobalV4"]), ip_of(&er["ipv4"]));
        row(
            "public ipv4",
            ts["GlobalV4"].to_string(),
            er["ipv4"].to_string(),
        );
        let wan: Ipv4Addr = lab.get(wan_key).parse().unwrap();
        check(
            tip == Some(wan) && eip == Some(wan),
            format!("{host}: public IPv4 ts={tip:?} er={eip:?} (router WAN {wan})"),
        );

        row(
            "mapping varies by dest IP",
            ts["MappingVariesByDestIP"].to_string(),
            er["mapping_varies_by_dest_ip"].to_string(),
        );
        check(
            ts["MappingVariesByDestIP"].is_boolean()
                && ts["MappingVariesByDestIP"] == er["mapping_varies_by_dest_ip"],
            format!(
                "{host}: mapping_varies_by_dest_ip ts={} er={}",
                ts["MappingVariesByDestIP"], er["mapping_varies_by_dest_ip"]
            ),
        );

        let (tpm, epm) = (ts_portmap(&ts), er_portmap(&er));
        row("port mapping", fmt_set(&tpm), fmt_set(&epm));
        row(
            "  (ts debug portmap, gw given)",
            probe.clone(),
            String::new(),
        );
        check(
            probe_set == epm,
            format!("{host}: port mapping (tailscale debug portmap, gateway given) ts={probe_set:?} er={epm:?}"),
        );
        if gw.is_private() {
            check(
                tpm == epm,
                format!("{host}: port mapping ts={tpm:?} er={epm:?}"),
            );
        } else {
            // tailscale never probes a non-RFC 1918 gateway: it must say none;
            // edgereach must see what the lab router offers.
            let offered: BTreeSet<String> = if host == "gwhard" {
                [("UPNP", "upnp"), ("NATPMP", "nat-pmp"), ("PCP", "pcp")]
                    .iter()
                    .filter(|(k, _)| lab.get(k) == "yes")
                    .map(|(_, v)| v.to_string())
                    .collect()
            } else {
                BTreeSet::new()
            };
            eprintln!(
                "NOTE {host}: gateway {gw} is not RFC 1918, so tailscale's portmapper skips it \
                 (reports {}); edgereach sees {}",
                fmt_set(&tpm),
                fmt_set(&epm)
            );
            check(
                tpm.is_empty() && epm == offered,
                format!("{host}: port mapping ts={tpm:?} (expected none) er={epm:?} (expected {offered:?})"),
            );
        }

        row(
            "preferred region",
            ts["PreferredDERP"].to_string(),
            er["preferred_region"]["id"].to_string(),
        );
        let (tk, ek) = (keys(&ts["RegionLatency"]), keys(&er["region_latency_ms"]));
        let lat = |v: &serde_json::Value, ns: bool| -> String {
            v.as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, x)| {
                            let ms = x.as_f64().unwrap_or(f64::NAN) / if ns { 1e6 } else { 1.0 };
                            format!("{k}:{ms:.3}ms")
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default()
        };
        row(
            "region latency",
            lat(&ts["RegionLatency"], true),
            lat(&er["region_latency_ms"], false),
        );
        if tk != ek {
            eprintln!("NOTE {host}: region keys differ: ts={tk:?} er={ek:?}");
        }
    }

    let w = [6, 30, 44, 44];
    let line = |r: &[String; 4]| {
        format!(
            "{:<a$} {:<b$} {:<c$} {}",
            r[0],
            r[1],
            r[2],
            r[3],
            a = w[0],
            b = w[1],
            c = w[2]
        )
    };
    eprintln!(
        "\n{}",
        line(&[
            "host".into(),
            "field".into(),
            "tailscale 1.98 netcheck".into(),
            "edgereach netcheck".into()
        ])
    );
    for r in &rows {
        eprintln!("{}", line(r));
    }
    eprintln!("(took {:?} so far)", t0.elapsed());

    let (clean, report) = lab.down_and_check();
    assert!(
        failures.is_empty(),
        "disagreements:\n{}",
        failures.join("\n")
    );
    assert!(clean, "lab left over:\n{report}");
    eprintln!("total {:?}", t0.elapsed());
}
