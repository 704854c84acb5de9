//! The netcheck actor: a full report at start and every `interval`, a small
//! one after each network change, the idle-mapping lifetime estimate rarely,
//! and an event for every field that changed meaningfully. It hands the RFC
//! 5780 servers it found to portmap's proof and its latest report (for
//! admission and tailscale) through `watch`es of its own, and hears the
//! router's mapping protocols from portmap's `Mapped`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::probe;
use super::report::{LatestReport, Report};
use super::run::{self, History, Kind};
use super::tsmap::{Refreshed, TailscaledMap, TsMapError};
use crate::config::Config;
use crate::deadline::Later;
use crate::netwatch::NetState;
use crate::poke::Poke;
use crate::portmap::model::Mapped;
use crate::resolve::NameResolver;
use crate::shutdown::Shutdown;
use crate::status::{Level, State, StatusHub};

/// Quiet time after a network change before the small run.
const NETWORK_SETTLE: Duration = Duration::from_secs(1);
/// How often the idle-mapping lifetime is estimated (it takes minutes).
const LIFETIME_EVERY: Duration = Duration::from_secs(24 * 3600);
/// Idle times tried for the lifetime estimate.
pub const LIFETIME_CLIFFS: [Duration; 5] = [
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(20),
    Duration::from_secs(40),
    Duration::from_secs(80),
];

/// The channels netcheck is handed beside the common ones: what it owns
/// (the RFC 5780 servers it found, for portmap's proof; its latest report,
/// for admission and tailscale) and what it hears (what portmap has seen of
/// the router).
pub struct Links {
    /// RFC 5780 STUN servers; netcheck is the only sender.
    pub rfc5780: watch::Sender<super::servers::Rfc5780Servers>,
    /// The latest report; netcheck is the only sender.
    pub report: watch::Sender<LatestReport>,
    /// What portmap holds and the router's protocols, from portmap.
    pub mapped: watch::Receiver<Mapped>,
}

/// Run until shutdown; `poke` asks for a full report now.
pub async fn run(
    hub: StatusHub,
    mut config: watch::Receiver<Arc<Config>>,
    mut net: watch::Receiver<NetState>,
    mut shutdown: Shutdown,
    poke: Poke,
    links: Links,
) {
    let Links {
        rfc5780,
        report: report_tx,
        mapped,
    } = links;
    let resolver = NameResolver::from_system();
    let mut sources = Sources::new();
    let mut history = History::default();
    let mut kind = Kind::Full;
    let mut next_full = Instant::now();
    let mut lifetime_due = Instant::now();
    let (lifetime_tx, mut lifetime_rx) = tokio::sync::mpsc::channel::<Option<u64>>(1);
    loop {
        let cfg = config.borrow_and_update().clone();
        let has_route = net.borrow_and_update().default_route.is_some();
        if !has_route {
            hub.update(|s| {
                s.netcheck
                    .health
                    .set(State::Unavailable, Some("no default route yet".into()))
            });
        } else {
            sources.refresh(&hub, &cfg).await;
            match run::plan(&run::effective(&cfg), sources.tailscaled.map(), &resolver).await {
                Err(e) => {
                    // tailscaled may just be starting (at boot it often
                    // comes up after us): ask again soon, not an interval later.
                    if sources.tailscaled_may_come() && matches!(e, run::RunError::NoServers { .. })
                    {
                        next_full = Instant::now().later(super::tsmap::RETRY);
                    }
                    hub.update(|s| {
                        s.netcheck
                            .health
                            .set(State::Unavailable, Some(e.to_string()))
                    })
                }
                Ok(plan) => {
                    // The daemon knows the router's protocols from its
                    // portmap task; no probe of its own.
                    let port_mapping = mapped.borrow().protocols_seen.clone();
                    // The report published before, for the change events.
                    let previous = history.last.clone();
                    // Never the mesh port test here: it binds the mesh port,
                    // which tailscaled may be about to take (see reach.rs).
                    let pm = std::future::ready(port_mapping);
                    match run::run(&plan, kind, &mut history, pm, None).await {
                        Ok(report) => {
                            publish(&hub, &report, previous.as_ref());
                            report_tx.send_replace(Some(Arc::new(report)));
                            rfc5780.send_if_modified(|v| {
                                let changed = *v != history.rfc5780;
                                if changed {
                                    v.clone_from(&history.rfc5780);
                                }
                                changed
                            });
                        }
                        Err(e) => hub.update(|s| {
                            s.netcheck.health.set(State::Degraded, Some(e.to_string()))
                        }),
                    }
                    if kind == Kind::Full {
                        next_full = Instant::now().later(cfg.netcheck.interval.get());
                    }
                    if Instant::now() >= lifetime_due {
                        lifetime_due = Instant::now().later(LIFETIME_EVERY);
                        estimate_lifetime(&plan, &lifetime_tx);
                    }
                }
            }
        }
        kind = Kind::Full;
        // Every outcome (report, error, no route) waits a full interval
        // unless something changes: never a hot loop.
        if next_full <= Instant::now() {
            next_full = Instant::now().later(cfg.netcheck.interval.get());
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = config.changed() => {}
            _ = poke.wait() => {}
            r = net.changed() => {
                // The sender is gone only when the daemon is stopping.
                if r.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(NETWORK_SETTLE) => {}
                }
                kind = Kind::Incremental;
            }
            Some(est) = lifetime_rx.recv() => {
                if let Some(last) = history.last.as_mut() {
                    last.mapping_lifetime_s = est;
                    let snapshot = last.clone();
                    report_tx.send_replace(Some(Arc::new(last.clone())));
                    hub.update(|s| s.netcheck.report = Some(snapshot));
                    if let Some(secs) = est {
                        hub.emit("netcheck", "mapping_lifetime.measured", Level::Info,
                            format!("the NAT keeps an idle UDP mapping at least {secs}s"));
                    }
                }
                // Not a reason to probe again now.
                let wait = next_full.saturating_duration_since(Instant::now());
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = poke.wait() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            _ = tokio::time::sleep_until(next_full) => {}
        }
    }
}

/// Start the idle-mapping lifetime estimate against the first IPv4 server
/// (it takes minutes: its own task, the answer comes back on `tx`).
fn estimate_lifetime(plan: &run::Plan, tx: &tokio::sync::mpsc::Sender<Option<u64>>) {
    if let Some(t) = plan.stun.iter().find(|t| t.addr.is_ipv4()) {
        let (server, tx) = (t.addr, tx.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            let est = probe::mapping_lifetime(server, &LIFETIME_CLIFFS, &mut sent).await;
            let _ = tx.send(est).await;
        });
    }
}

/// Where the STUN servers come from besides the configuration file: a DERP
/// map URL fetched hourly, and tailscaled's own map (see [`super::tsmap`]).
struct Sources {
    fetch_resolver: Arc<NameResolver>,
    next_derp_fetch: Instant,
    derp_fetch_failing: bool,
    tailscaled: TailscaledMap,
    tailscaled_failing: bool,
}

impl Sources {
    fn new() -> Self {
        Self {
            fetch_resolver: Arc::new(NameResolver::from_system()),
            next_derp_fetch: Instant::now(),
            derp_fetch_failing: false,
            tailscaled: TailscaledMap::default(),
            tailscaled_failing: false,
        }
    }

    /// Fetch what is due; an event when a source starts or stops failing.
    async fn refresh(&mut self, hub: &StatusHub, cfg: &Config) {
        let url = &cfg.netcheck.derp_map;
        if super::derpfetch::is_url(url) && Instant::now() >= self.next_derp_fetch {
            self.refresh_url(hub, cfg, url).await;
        }
        if run::wants_tailscaled_map(cfg) {
            self.refresh_tailscaled(hub, cfg).await;
        }
    }

    async fn refresh_url(&mut self, hub: &StatusHub, cfg: &Config, url: &str) {
        let dir = cfg.gateway.state_dir();
        let timeout = Duration::from_secs(10);
        match super::derpfetch::refresh(url, &dir, timeout, self.fetch_resolver.clone()).await {
            Ok(_) => {
                self.next_derp_fetch = Instant::now().later(super::derpfetch::REFRESH);
                if std::mem::replace(&mut self.derp_fetch_failing, false) {
                    hub.emit(
                        "netcheck",
                        "derp_map.fetched",
                        Level::Info,
                        format!("DERP map fetched again from {url}"),
                    );
                }
            }
            Err(e) => {
                self.next_derp_fetch = Instant::now().later(super::derpfetch::RETRY);
                if !std::mem::replace(&mut self.derp_fetch_failing, true) {
                    let kept = if super::derpfetch::cached(&dir).is_some() {
                        "using the copy fetched before"
                    } else {
                        "no copy yet"
                    };
                    hub.emit(
                        "netcheck",
                        "derp_map.fetch_failed",
                        Level::Warn,
                        format!("DERP map not fetched: {e}; {kept}"),
                    );
                }
            }
        }
    }

    async fn refresh_tailscaled(&mut self, hub: &StatusHub, cfg: &Config) {
        let Some(outcome) = self.tailscaled.refresh(cfg).await else {
            return;
        };
        let failing = matches!(outcome, Refreshed::Failed);
        let was_failing = std::mem::replace(&mut self.tailscaled_failing, failing);
        if let (false, Some(e)) = (failing, &self.tailscaled.store_error) {
            tracing::warn!("tailscaled's DERP map not kept in the state directory: {e}");
        }
        match (was_failing, failing) {
            (true, false) => {
                hub.emit(
                    "netcheck",
                    "derp_map.tailscaled_fetched",
                    Level::Info,
                    "STUN servers from tailscaled's DERP map again".to_string(),
                );
            }
            (false, true) => {
                let kept = if self.tailscaled.map().is_ok() {
                    "using the copy it gave before"
                } else {
                    "no copy yet"
                };
                hub.emit(
                    "netcheck",
                    "derp_map.tailscaled_failed",
                    Level::Warn,
                    format!(
                        "tailscaled's DERP map not available: {}; {kept}",
                        self.tailscaled.error()
                    ),
                );
            }
            _ => {}
        }
    }

    /// Whether tailscaled is the source and may still give a map.
    fn tailscaled_may_come(&self) -> bool {
        matches!(
            self.tailscaled.error(),
            TsMapError::LocalApi(_) | TsMapError::NoMap
        )
    }
}

/// The new report into the status, with an event for each change since `old`.
fn publish(hub: &StatusHub, report: &Report, old: Option<&Report>) {
    let (state, reason) = if report.udp {
        (State::Ok, None)
    } else {
        (
            State::Degraded,
            Some(
                "no STUN answer over UDP: UDP is blocked or the servers are unreachable"
                    .to_string(),
            ),
        )
    };
    let new = report.clone();
    hub.update(|s| {
        s.netcheck.health.set(state, reason);
        s.netcheck.runs += 1;
        s.netcheck.report = Some(new);
    });
    for (kind, msg) in changes(old, report) {
        hub.emit("netcheck", kind, Level::Info, msg);
    }
}

/// Field changes worth an event. A hard NAT's port changes every run, so
/// only the public IP counts for `ipv4`.
pub fn changes(old: Option<&Report>, new: &Report) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let ip = |s: &Option<String>| {
        s.as_deref()
            .and_then(|a| a.rsplit_once(':'))
            .map(|(ip, _)| ip.to_string())
    };
    let Some(old) = old else {
        out.push((
            "netcheck.first",
            format!(
                "UDP {}, public {}, hard NAT {}, filtering {}",
                new.udp,
                new.ipv4.as_deref().unwrap_or("none"),
                tri(new.mapping_varies_by_dest_ip),
                new.filtering.map_or("unknown", |f| f.name())
            ),
        ));
        return out;
    };
    if old.udp != new.udp {
        out.push(("udp.changed", format!("UDP {} -> {}", old.udp, new.udp)));
    }
    if ip(&old.ipv4) != ip(&new.ipv4) {
        out.push((
            "public_ip.changed",
            format!("public IPv4 {:?} -> {:?}", ip(&old.ipv4), ip(&new.ipv4)),
        ));
    }
    if old.mapping_varies_by_dest_ip != new.mapping_varies_by_dest_ip {
        out.push((
            "nat_type.changed",
            format!(
                "MappingVariesByDestIP {} -> {}",
                tri(old.mapping_varies_by_dest_ip),
                tri(new.mapping_varies_by_dest_ip)
            ),
        ));
    }
    if old.filtering != new.filtering && new.filtering.is_some() {
        out.push((
            "filtering.changed",
            format!(
                "filtering {} -> {}",
                old.filtering.map_or("unknown", |f| f.name()),
                new.filtering.map_or("unknown", |f| f.name())
            ),
        ));
    }
    if old.preferred_region != new.preferred_region {
        let code = |r: &Option<super::report::RegionRef>| {
            r.as_ref().map_or("none".to_string(), |r| r.code.clone())
        };
        out.push((
            "preferred_region.changed",
            format!(
                "nearest region {} -> {}",
                code(&old.preferred_region),
                code(&new.preferred_region)
            ),
        ));
    }
    if old.port_mapping != new.port_mapping {
        out.push((
            "port_mapping.changed",
            format!(
                "port mapping {:?} -> {:?}",
                old.port_mapping, new.port_mapping
            ),
        ));
    }
    out
}

fn tri(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "true",
        Some(false) => "false",
        None => "unknown",
    }
}
