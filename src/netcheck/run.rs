//! One netcheck run: targets from the configuration and the DERP map,
//! names resolved by TTL, probes, and the report with tailscale's
//! preferred-region stickiness.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::derpmap;
use super::probe::{self, Target};
use super::report::{keep_preferred, ms, RegionRef, Report};
use crate::config::NetcheckConfig;
use crate::primitives::Timestamp;
use crate::resolve::{split_host_port, NameResolver};

/// Total time a report may take (tailscale's ReportTimeout).
pub const REPORT_BUDGET: Duration = Duration::from_secs(5);
/// Time the STUN phase may take.
pub const STUN_BUDGET: Duration = Duration::from_secs(3);
/// Time the router gets to say which port-mapping protocols it speaks, in
/// `edgereach netcheck` (the daemon knows them from its portmap task).
/// tailscale allows 250 ms; this also covers one NAT-PMP/PCP retransmission
/// (the first goes out at 250 ms) and a UPnP description fetch on the LAN.
pub const PORT_MAPPING_BUDGET: Duration = Duration::from_millis(500);
/// Region ids given to configured servers (DERP regions use their own ids).
const CONFIGURED_REGION_BASE: u16 = 900;
/// How long a region's best latency counts for stickiness (tailscale: 5 min).
const HISTORY: Duration = Duration::from_secs(300);
/// Regions an incremental run probes (tailscale: 3).
const INCREMENTAL_REGIONS: usize = 3;
/// Largest DERP map file read.
const MAX_DERP_MAP: u64 = 1024 * 1024;

/// Full run (all regions, filtering test) or a small one after a network change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// All regions, three tries each, plus the filtering test.
    Full,
    /// The fastest few regions, one try each, no filtering test.
    Incremental,
}

/// What is kept between runs.
#[derive(Debug, Default)]
pub struct History {
    best: Vec<(Instant, String, Duration)>,
    preferred: Option<RegionRef>,
    /// The previous report, for incremental runs and change events.
    pub last: Option<Report>,
    /// IPv4 servers that offered an RFC 5780 alternate address at the last
    /// full run, in the order they answered (fastest first).
    pub rfc5780: super::servers::Rfc5780Servers,
}

/// Why no report could be made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Nothing to probe: no source gave a server. Names all three sources,
    /// with why tailscaled's map is unavailable.
    #[error(
        "no STUN servers: netcheck.stun_servers and netcheck.derp_map are empty, the admission \
         service handed over no DERP map, and tailscaled's DERP map is unavailable: {tailscaled}"
    )]
    NoServers {
        /// Why tailscaled gave no map.
        tailscaled: String,
    },
    /// A DERP map is in use but none of its nodes serves STUN.
    #[error("no STUN servers: the DERP map from {0} has no STUN node")]
    NoStunNodes(String),
    /// Targets exist but none could be resolved.
    #[error("no STUN server could be resolved: {0}")]
    Unresolved(String),
    /// The DERP map could not be used.
    #[error("netcheck.derp_map: {0}")]
    DerpMap(String),
    /// A socket failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// The netcheck settings in effect: the configured ones, with the DERP map
/// the admission service handed over (stored in the state directory) when
/// `netcheck.derp_map` is empty. A configured map always wins; a configured
/// URL means the copy last fetched from it (see [`super::derpfetch`]). When
/// this leaves no server and no map, tailscaled's own map is the last source
/// ([`wants_tailscaled_map`], [`super::tsmap`]).
pub fn effective(cfg: &crate::config::Config) -> std::borrow::Cow<'_, NetcheckConfig> {
    if super::derpfetch::is_url(&cfg.netcheck.derp_map) {
        let Some(path) = super::derpfetch::cached(&cfg.gateway.state_dir()) else {
            return std::borrow::Cow::Borrowed(&cfg.netcheck);
        };
        let mut n = cfg.netcheck.clone();
        n.derp_map = path.display().to_string();
        return std::borrow::Cow::Owned(n);
    }
    if !cfg.netcheck.derp_map.is_empty() {
        return std::borrow::Cow::Borrowed(&cfg.netcheck);
    }
    match crate::admission::assignment::stored_derp_map(&cfg.gateway.state_dir()) {
        Some(path) => {
            let mut n = cfg.netcheck.clone();
            n.derp_map = path.display().to_string();
            std::borrow::Cow::Owned(n)
        }
        None => std::borrow::Cow::Borrowed(&cfg.netcheck),
    }
}

/// Whether neither the configuration nor the admission service gives a
/// server, so netcheck takes tailscaled's DERP map (precedence: configured
/// servers or map, then the admission service's map, then tailscaled's).
pub fn wants_tailscaled_map(cfg: &crate::config::Config) -> bool {
    let n = effective(cfg);
    n.stun_servers.is_empty() && n.derp_map.is_empty()
}

/// What one run probes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// STUN servers: configured ones, then the DERP map's STUN nodes.
    pub stun: Vec<Target>,
    /// DERP relays to ask `/generate_204` (captive-portal check).
    pub captive: Vec<std::net::Ipv4Addr>,
}

/// Collect what to probe: configured servers, then the DERP map's STUN nodes
/// and captive-portal endpoints. `tailscaled` is tailscaled's DERP map (or
/// why there is none), used only when `cfg` names no server and no map.
pub async fn plan(
    cfg: &NetcheckConfig,
    tailscaled: Result<&derpmap::DerpMap, &super::tsmap::TsMapError>,
    resolver: &NameResolver,
) -> Result<Plan, RunError> {
    let mut out = Vec::new();
    let mut captive = Vec::new();
    let mut failures = Vec::new();
    configured_targets(cfg, resolver, &mut out, &mut failures).await;
    let loaded;
    let (map, source) = if !cfg.derp_map.is_empty() {
        loaded = load_derp_map(&cfg.derp_map)?;
        (Some(&loaded), cfg.derp_map.as_str())
    } else if cfg.stun_servers.is_empty() {
        let map = tailscaled.map_err(|e| RunError::NoServers {
            tailscaled: e.to_string(),
        })?;
        (Some(map), "tailscaled")
    } else {
        (None, "")
    };
    if let Some(map) = map {
        captive = derpmap::captive_endpoints(map);
        map_targets(map, resolver, &mut out, &mut failures).await;
    }
    if out.is_empty() {
        return Err(match (failures.is_empty(), map.is_some()) {
            (false, _) => RunError::Unresolved(failures.join("; ")),
            (true, true) => RunError::NoStunNodes(source.to_string()),
            (true, false) => RunError::Unresolved("netcheck.stun_servers: no address".into()),
        });
    }
    Ok(Plan { stun: out, captive })
}

/// `netcheck.stun_servers`, resolved; regions numbered from 900.
async fn configured_targets(
    cfg: &NetcheckConfig,
    resolver: &NameResolver,
    out: &mut Vec<Target>,
    failures: &mut Vec<String>,
) {
    for (i, s) in cfg.stun_servers.iter().enumerate() {
        let Some((host, port)) = split_host_port(s) else {
            failures.push(format!("{s}: not host:port"));
            continue;
        };
        let region = RegionRef {
            id: CONFIGURED_REGION_BASE + u16::try_from(i).unwrap_or(99),
            code: s.clone(),
        };
        match resolver.resolve(host).await {
            Ok(r) => {
                if let Some(ip) = r.addrs.iter().find(|a| a.is_ipv4()).or(r.addrs.first()) {
                    out.push(Target {
                        region,
                        addr: SocketAddr::new(*ip, port),
                    });
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
}

/// A DERP map's STUN nodes: fixed addresses as given, names resolved.
async fn map_targets(
    map: &derpmap::DerpMap,
    resolver: &NameResolver,
    out: &mut Vec<Target>,
    failures: &mut Vec<String>,
) {
    for t in derpmap::stun_targets(map) {
        let region = RegionRef {
            id: t.region_id,
            code: t.region_code.clone(),
        };
        let ip = match (t.ipv4, t.ipv6) {
            (Some(v4), _) => Some(v4.into()),
            (None, Some(v6)) => Some(v6.into()),
            (None, None) if t.resolve_ipv4 || t.resolve_ipv6 => resolver
                .resolve(&t.host)
                .await
                .map_err(|e| failures.push(e.to_string()))
                .ok()
                .and_then(|r| {
                    r.addrs.into_iter().find(|a| {
                        (a.is_ipv4() && t.resolve_ipv4) || (a.is_ipv6() && t.resolve_ipv6)
                    })
                }),
            (None, None) => None,
        };
        if let Some(ip) = ip {
            out.push(Target {
                region,
                addr: SocketAddr::new(ip, t.port),
            });
        }
    }
}

fn load_derp_map(source: &str) -> Result<derpmap::DerpMap, RunError> {
    if super::derpfetch::is_url(source) {
        return Err(RunError::DerpMap(format!(
            "{source}: not fetched yet (no copy in the state directory)"
        )));
    }
    let bytes = crate::fsread::read_capped(std::path::Path::new(source), MAX_DERP_MAP)
        .map_err(|e| RunError::DerpMap(e.to_string()))?;
    derpmap::decode(&bytes).map_err(|e| RunError::DerpMap(format!("{source}: {e}")))
}

/// Run one report over `plan`. `port_mapping` finds the router's mapping
/// protocols; it runs beside the probes, bounded by [`REPORT_BUDGET`], and
/// its time is part of the report's. `mesh` (the mesh port's router mapping,
/// when held) comes from the portmap task.
pub async fn run(
    plan: &Plan,
    kind: Kind,
    history: &mut History,
    port_mapping: impl std::future::Future<Output = Vec<String>>,
    mesh: Option<super::reach::MeshMapping>,
) -> Result<Report, RunError> {
    let started = Instant::now();
    // Beside the STUN phase, as tailscale does it: a router without any
    // mapping service then costs no time of its own.
    let port_mapping = async {
        tokio::time::timeout(REPORT_BUDGET, port_mapping)
            .await
            .unwrap_or_default()
    };
    let (report, port_mapping) =
        tokio::join!(measure(plan, kind, history, mesh, started), port_mapping);
    let mut report = report?;
    report.port_mapping = port_mapping;
    if let Some(last) = &history.last {
        report.mapping_lifetime_s = last.mapping_lifetime_s;
        if kind == Kind::Incremental && report.filtering.is_none() {
            report.filtering = last.filtering;
        }
        if kind == Kind::Incremental {
            report.captive_portal = last.captive_portal;
        }
    }
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report.time = Timestamp::now();
    history.last = Some(report.clone());
    Ok(report)
}

/// The probes of one report: STUN (with the captive-portal check beside
/// it), then on full runs the RFC 5780 tests within what is left of the
/// report budget.
async fn measure(
    plan: &Plan,
    kind: Kind,
    history: &mut History,
    mesh: Option<super::reach::MeshMapping>,
    started: Instant,
) -> Result<Report, RunError> {
    // The captive-portal check runs beside the STUN phase, on full runs only.
    let captive = async {
        let mut sent = 0;
        let found = if kind == Kind::Full {
            super::captive::check(&plan.captive, &mut sent).await
        } else {
            None
        };
        (found, sent)
    };
    let chosen = choose(&plan.stun, kind, history.last.as_ref());
    let tries = if kind == Kind::Full { 3 } else { 1 };
    let (outcome, (captive_portal, captive_sent)) =
        tokio::join!(probe::probe(&chosen, tries, STUN_BUDGET), captive);
    let outcome = outcome?;
    let mut report = Report {
        udp: !outcome.answers.is_empty(),
        captive_portal,
        os_has_ipv6: outcome.ipv6_socket,
        bytes_sent: outcome.bytes_sent + captive_sent,
        ignored_packets: outcome.ignored,
        ..Report::default()
    };
    let mut best_here: HashMap<String, Duration> = HashMap::new();
    for a in &outcome.answers {
        let Some(t) = chosen.get(a.target) else {
            continue;
        };
        let e = best_here.entry(t.region.code.clone()).or_insert(a.latency);
        *e = (*e).min(a.latency);
        if a.mapped.is_ipv4() && report.ipv4.is_none() {
            report.ipv4 = Some(a.mapped.to_string());
        }
        if a.mapped.is_ipv6() && report.ipv6.is_none() {
            report.ipv6 = Some(a.mapped.to_string());
        }
    }
    report.mapping_varies_by_dest_ip = mapping_varies(&chosen, &outcome.answers);
    for (code, d) in &best_here {
        report.region_latency_ms.insert(code.clone(), ms(*d));
    }
    report.preferred_region = preferred(&chosen, &best_here, history);
    if kind == Kind::Full {
        history.rfc5780 = rfc5780_servers(&chosen, &outcome.answers);
        rfc5780(&chosen, &outcome.answers, mesh, started, &mut report).await;
    }
    Ok(report)
}

/// Every target on full runs; after a network change only the few regions
/// that were fastest last time.
fn choose(targets: &[Target], kind: Kind, last: Option<&Report>) -> Vec<Target> {
    match (kind, last) {
        (Kind::Incremental, Some(last)) if targets.len() > INCREMENTAL_REGIONS => {
            let mut by_latency: Vec<&Target> = targets.iter().collect();
            let lat = |t: &Target| {
                last.region_latency_ms
                    .get(&t.region.code)
                    .copied()
                    .unwrap_or(f64::MAX)
            };
            by_latency.sort_by(|a, b| lat(a).total_cmp(&lat(b)));
            by_latency
                .into_iter()
                .take(INCREMENTAL_REGIONS)
                .cloned()
                .collect()
        }
        _ => targets.to_vec(),
    }
}

/// The IPv4 servers that offered an RFC 5780 alternate address, in the
/// order they answered, each once (for portmap's proof).
fn rfc5780_servers(chosen: &[Target], answers: &[probe::Answer]) -> super::servers::Rfc5780Servers {
    let mut out = Vec::new();
    for a in answers {
        let Some(addr) = chosen.get(a.target).map(|t| t.addr) else {
            continue;
        };
        let Some(other) = a.other.filter(|o| o.is_ipv4() && *o != addr) else {
            continue;
        };
        let s = super::servers::Rfc5780Server { addr, other };
        if addr.is_ipv4() && !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// The filtering test (and the mesh port test, when asked) against the
/// first IPv4 server that gave an RFC 5780 OTHER-ADDRESS.
async fn rfc5780(
    chosen: &[Target],
    answers: &[probe::Answer],
    mesh: Option<super::reach::MeshMapping>,
    started: Instant,
    report: &mut Report,
) {
    let found = answers
        .iter()
        .find_map(|a| Some((chosen.get(a.target)?.addr, a.other?, a.latency)))
        .filter(|(s, _, _)| s.is_ipv4());
    let Some((server, other, rtt)) = found else {
        return;
    };
    let budget_left = REPORT_BUDGET.saturating_sub(started.elapsed());
    let mut sent = 0;
    report.filtering =
        tokio::time::timeout(budget_left, probe::filtering(server, other, rtt, &mut sent))
            .await
            .ok()
            .flatten();
    if let Some(mesh) = mesh {
        let wait = (rtt * 4).clamp(Duration::from_millis(300), Duration::from_secs(1));
        report.mesh_port_reachable =
            super::reach::mesh_port_reachable(mesh, server, wait, &mut sent).await;
    }
    report.bytes_sent += sent;
}

/// Some(true) when two different destination IPs saw different public
/// addresses for the same socket; None with fewer than two destination IPs.
fn mapping_varies(targets: &[Target], answers: &[probe::Answer]) -> Option<bool> {
    let v4: Vec<(std::net::IpAddr, SocketAddr)> = answers
        .iter()
        .filter_map(|a| Some((targets.get(a.target)?.addr.ip(), a.mapped)))
        .filter(|(dst, _)| dst.is_ipv4())
        .collect();
    let mut dests: Vec<_> = v4.iter().map(|(d, _)| *d).collect();
    dests.sort();
    dests.dedup();
    if dests.len() < 2 {
        return None;
    }
    Some(v4.iter().any(|(_, m)| *m != v4[0].1))
}

fn preferred(
    targets: &[Target],
    now: &HashMap<String, Duration>,
    h: &mut History,
) -> Option<RegionRef> {
    let t = Instant::now();
    h.best.retain(|(at, _, _)| at.elapsed() < HISTORY);
    for (code, d) in now {
        h.best.push((t, code.clone(), *d));
    }
    let mut best_recent: HashMap<&str, Duration> = HashMap::new();
    for (_, code, d) in &h.best {
        let e = best_recent.entry(code.as_str()).or_insert(*d);
        *e = (*e).min(*d);
    }
    let (best_code, best) = best_recent
        .iter()
        .filter(|(c, _)| now.contains_key(**c))
        .min_by_key(|(_, d)| **d)
        .map(|(c, d)| (c.to_string(), *d))?;
    let old = h.preferred.as_ref().map(|r| r.code.clone());
    let keep = old
        .as_ref()
        .is_some_and(|o| *o != best_code && keep_preferred(now.get(o).copied(), best));
    let code = if keep {
        old.unwrap_or(best_code)
    } else {
        best_code
    };
    let region = targets
        .iter()
        .find(|t| t.region.code == code)
        .map(|t| t.region.clone())?;
    h.preferred = Some(region.clone());
    Some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_derp_map_fills_an_empty_setting_only() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::Config::default();
        cfg.gateway.state_dir = Some(tmp.path().to_path_buf());
        assert_eq!(effective(&cfg).derp_map, "");
        let dir = crate::state::StateDir::open(tmp.path()).unwrap();
        crate::admission::assignment::store_derp_map(&dir, &serde_json::json!({"Regions": {}}))
            .unwrap();
        let path = tmp.path().join(crate::admission::assignment::DERP_MAP_FILE);
        assert_eq!(effective(&cfg).derp_map, path.display().to_string());
        cfg.netcheck.derp_map = "/etc/mine.json".into();
        assert_eq!(effective(&cfg).derp_map, "/etc/mine.json");
    }
}
