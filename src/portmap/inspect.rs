//! `edgereach portmap`: probe the router from the CLI and show what it holds
//! next to what the daemon holds (compare `tailscale debug portmap`).

use std::fmt::Write;
use std::sync::Arc;

use serde::Serialize;

use super::pmp::Ignored;
use super::router::Router;
use crate::config::Config;
use crate::netwatch::NetState;
use crate::status::PortmapStatus;

/// What the router says, probed just now.
#[derive(Debug, Serialize)]
pub struct Inspection {
    /// Default gateway probed, if there is a default route.
    pub router: Option<String>,
    /// This host's address toward it.
    pub local: Option<String>,
    /// PCP answered an ANNOUNCE.
    pub pcp: bool,
    /// NAT-PMP's reported public address, when it answered.
    pub nat_pmp_external: Option<String>,
    /// UPnP IGD's reported public address, when found.
    pub upnp_external: Option<String>,
    /// UPnP BOOTID, when found.
    pub upnp_boot_id: Option<u32>,
    /// UPnP table entries for the configured external ports.
    pub upnp_entries: Vec<RouterEntry>,
    /// The IPv6 side: the router pinholes would be asked of.
    pub ipv6: Ipv6Probe,
    /// Datagrams ignored during the probe (foreign source or malformed).
    pub ignored_packets: u64,
    /// The daemon's portmap section.
    pub daemon: Option<PortmapStatus>,
    /// Why the daemon's view could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_error: Option<String>,
}

/// The IPv6 default router, probed just now from each stable address.
#[derive(Debug, Default, Serialize)]
pub struct Ipv6Probe {
    /// `addr%interface` of the IPv6 default router.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub router: Option<String>,
    /// Why there is nothing to open pinholes on (no route, no stable address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each stable global address and whether PCP answered an ANNOUNCE
    /// sent from it (what a pinhole request needs).
    pub addresses: Vec<Ipv6Answer>,
}

/// One address's PCP ANNOUNCE to the IPv6 router.
#[derive(Debug, Serialize)]
pub struct Ipv6Answer {
    /// The stable global address.
    pub address: String,
    /// The router's PCP epoch, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcp_epoch: Option<u32>,
    /// Why PCP did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Ask the IPv6 default router, from each stable address, whether it speaks PCP.
async fn probe_ipv6(ignored: &super::pmp::Ignored) -> Ipv6Probe {
    let target = match super::pinhole::read_target() {
        Ok(t) => t,
        Err(e) => {
            return Ipv6Probe {
                reason: Some(e.to_string()),
                ..Ipv6Probe::default()
            }
        }
    };
    let mut out = Ipv6Probe {
        router: Some(format!("{}%{}", target.router, target.ifname)),
        ..Ipv6Probe::default()
    };
    let budget = std::time::Duration::from_millis(1500);
    for a in &target.addrs {
        let r = super::pmp::pcp_announce_v6(target.router, target.scope, *a, budget, ignored).await;
        out.addresses.push(Ipv6Answer {
            address: a.to_string(),
            error: r.as_ref().err().map(ToString::to_string),
            pcp_epoch: r.ok(),
        });
    }
    out
}

/// One UPnP table entry for a configured mapping.
#[derive(Debug, Serialize)]
pub struct RouterEntry {
    /// Configured mapping name.
    pub name: String,
    /// `udp` or `tcp`.
    pub protocol: String,
    /// External port looked up.
    pub external_port: u16,
    /// `ip:port` it forwards to, or None when the router has no entry.
    pub internal: Option<String>,
    /// Lease left in seconds (0 = permanent).
    pub lease_s: Option<u32>,
    /// Router's description of the entry.
    pub description: Option<String>,
}

/// Probe the router on the current default route.
pub async fn inspect<E: std::fmt::Display>(
    cfg: &Config,
    daemon: Result<PortmapStatus, E>,
) -> Inspection {
    let target = NetState::read()
        .default_route
        .and_then(|r| r.router_and_source());
    let mut out = Inspection {
        router: None,
        local: None,
        pcp: false,
        nat_pmp_external: None,
        upnp_external: None,
        upnp_boot_id: None,
        upnp_entries: Vec::new(),
        ipv6: Ipv6Probe::default(),
        ignored_packets: 0,
        daemon_error: daemon.as_ref().err().map(ToString::to_string),
        daemon: daemon.ok(),
    };
    let ignored = Arc::new(Ignored::default());
    out.ipv6 = probe_ipv6(&ignored).await;
    let Some((gw, local)) = target else {
        out.ignored_packets = ignored.0.load(std::sync::atomic::Ordering::Relaxed);
        return out;
    };
    let router = Router::probe(gw, local, ignored.clone()).await;
    out.router = Some(gw.to_string());
    out.local = Some(local.to_string());
    out.pcp = router.pcp;
    out.nat_pmp_external = router.natpmp.map(|ip| ip.to_string());
    if let Some(igd) = &router.upnp {
        out.upnp_external = igd.external_ip().await.ok().map(|ip| ip.to_string());
        out.upnp_boot_id = igd.boot_id(&ignored).await.ok().flatten();
        for m in &cfg.portmap.mapping {
            let entry = igd
                .specific_entry(m.protocol, m.external_port)
                .await
                .ok()
                .flatten();
            out.upnp_entries.push(RouterEntry {
                name: m.name.clone(),
                protocol: m.protocol.to_string(),
                external_port: m.external_port,
                internal: entry
                    .as_ref()
                    .map(|e| format!("{}:{}", e.internal_client, e.internal_port)),
                lease_s: entry.as_ref().map(|e| e.lease_duration),
                description: entry.map(|e| e.description),
            });
        }
    }
    out.ignored_packets = ignored.0.load(std::sync::atomic::Ordering::Relaxed);
    out
}

/// Which port-mapping protocols the router on the default route speaks,
/// counting only those that answer within `budget`.
pub async fn protocols_within(budget: std::time::Duration) -> Vec<String> {
    let target = NetState::read()
        .default_route
        .and_then(|r| r.router_and_source());
    let Some((gw, local)) = target else {
        return Vec::new();
    };
    let router = Router::probe_within(gw, local, Arc::new(Ignored::default()), budget).await;
    router
        .methods()
        .iter()
        .map(|m| m.name().to_string())
        .collect()
}

/// Text in the spirit of `tailscale debug portmap`.
pub fn render(i: &Inspection) -> String {
    let mut o = String::new();
    match (&i.router, &i.local) {
        (Some(r), Some(l)) => {
            let _ = writeln!(o, "router {r} (this host {l})");
        }
        _ => {
            let _ = writeln!(o, "no default route with a gateway: nothing to probe");
        }
    }
    if i.router.is_some() {
        render_router(&mut o, i);
    }
    render_ipv6(&mut o, &i.ipv6);
    render_daemon(&mut o, i);
    o
}

/// What the router answered to each protocol, and its UPnP table.
fn render_router(o: &mut String, i: &Inspection) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(o, "  pcp      {}", yes(i.pcp));
    let _ = writeln!(
        o,
        "  nat-pmp  {}{}",
        yes(i.nat_pmp_external.is_some()),
        i.nat_pmp_external
            .as_deref()
            .map(|e| format!(", external {e}"))
            .unwrap_or_default()
    );
    let upnp = i.upnp_external.is_some() || i.upnp_boot_id.is_some() || !i.upnp_entries.is_empty();
    let _ = writeln!(
        o,
        "  upnp     {}{}{}",
        yes(upnp),
        i.upnp_external
            .as_deref()
            .map(|e| format!(", external {e}"))
            .unwrap_or_default(),
        i.upnp_boot_id
            .map(|b| format!(", BOOTID {b}"))
            .unwrap_or_default()
    );
    for e in &i.upnp_entries {
        let held = match (&e.internal, e.lease_s) {
            (Some(to), Some(0)) => format!("-> {to}, permanent"),
            (Some(to), Some(l)) => format!("-> {to}, {l}s left"),
            _ => "no entry".to_string(),
        };
        let _ = writeln!(
            o,
            "  upnp table: {} {} {}: {held}",
            e.name, e.protocol, e.external_port
        );
    }
    if i.ignored_packets > 0 {
        let _ = writeln!(
            o,
            "  ignored {} datagrams from other sources or malformed",
            i.ignored_packets
        );
    }
}

/// What the daemon holds, as its control socket said.
fn render_daemon(o: &mut String, i: &Inspection) {
    match (&i.daemon, &i.daemon_error) {
        (Some(p), _) => {
            let _ = writeln!(
                o,
                "daemon: {:?}{}",
                p.health.state,
                p.health
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
            for m in &p.mappings {
                let _ = writeln!(
                    o,
                    "  {} {}, {:?}, lease {}s, verified {}",
                    m.name,
                    m.route(),
                    m.state,
                    m.lease_s.unwrap_or(0),
                    m.last_verified
                        .map_or("never".to_string(), |t| t.to_string())
                );
            }
            for p in &p.pinholes {
                let _ = writeln!(
                    o,
                    "  pinhole {} [{}]:{} by {}, {}, lease {}s, renewed {}",
                    p.protocol,
                    p.address,
                    p.port,
                    p.method,
                    p.state.name(),
                    p.lease_s.unwrap_or(0),
                    p.last_renewed
                        .map_or("never".to_string(), |t| t.to_string())
                );
            }
        }
        (None, e) => {
            let _ = writeln!(o, "daemon: {}", e.as_deref().unwrap_or("no answer"));
        }
    }
}

fn render_ipv6(o: &mut String, v6: &Ipv6Probe) {
    match (&v6.router, &v6.reason) {
        (Some(r), _) => {
            let _ = writeln!(o, "ipv6 router {r}");
        }
        (None, why) => {
            let _ = writeln!(o, "ipv6: {}", why.as_deref().unwrap_or("not probed"));
        }
    }
    for a in &v6.addresses {
        let said = match (a.pcp_epoch, &a.error) {
            (Some(e), _) => format!("yes, epoch {e}"),
            (None, e) => format!("no ({})", e.as_deref().unwrap_or("no answer")),
        };
        let _ = writeln!(o, "  pcp from {}: {said}", a.address);
    }
}
