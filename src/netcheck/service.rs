//! The netcheck actor: a full report at start and every `interval`, a small
//! one after each network change, the idle-mapping lifetime estimate rarely,
//! and an event for every field that changed meaningfully. It hands the RFC
//! 5780 servers it found to portmap's proof and its latest report (for
//! admission and tailscale) through `watch`es of its own, and hears the
//! router's mapping protocols from portmap's `Mapped`.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::probe;
use super::report::{LatestReport, Report};
use super::run::{self, History, Kind};
use super::tsmap::{Refreshed, TailscaledMap, TsMapError};
use crate::actor::Context;
use crate::config::Config;
use crate::deadline::Later;
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
    /// "A full report now" (the page's and the CLI's button).
    pub poke: Poke,
}

/// Run until shutdown.
pub async fn run(ctx: Context, links: Links) {
    let Context {
        hub,
        mut config,
        mut net,
        stop: mut shutdown,
    } = ctx;
    let poke = links.poke.clone();
    let mut actor = Actor::new(hub, links);
    loop {
        let cfg = config.borrow_and_update().clone();
        let has_route = net.borrow_and_update().default_route.is_some();
        actor.look(&cfg, has_route).await;
        actor.kind = Kind::Full;
        // Every outcome (report, error, no route) waits a full interval
        // unless something changes: never a hot loop.
        if actor.next_full <= Instant::now() {
            actor.next_full = Instant::now().later(cfg.netcheck.interval.get());
        }
        // Until something asks for a run. The lifetime estimate coming back
        // is no reason to probe, but must not make the actor deaf to a
        // network change or a new configuration meanwhile: it only waits on.
        let flow = loop {
            tokio::select! {
                _ = shutdown.wait() => break ControlFlow::Break(()),
                _ = config.changed() => break ControlFlow::Continue(()),
                _ = poke.wait() => break ControlFlow::Continue(()),
                // The sender is gone only when the daemon is stopping.
                r = net.changed() => break match r {
                    Ok(()) => actor.network_changed(&mut shutdown).await,
                    Err(_) => ControlFlow::Break(()),
                },
                Some(est) = actor.lifetime_rx.recv() => actor.on_lifetime(est),
                _ = tokio::time::sleep_until(actor.next_full) => break ControlFlow::Continue(()),
            }
        };
        if flow.is_break() {
            return;
        }
    }
}

/// The actor's state from one run to the next.
struct Actor {
    hub: StatusHub,
    links: Links,
    resolver: NameResolver,
    sources: Sources,
    history: History,
    /// What the next run is: full, or small after a network change.
    kind: Kind,
    next_full: Instant,
    lifetime_due: Instant,
    /// The lifetime estimate's answers (it runs in its own task).
    lifetime_tx: mpsc::Sender<Option<u64>>,
    lifetime_rx: mpsc::Receiver<Option<u64>>,
}

impl Actor {
    fn new(hub: StatusHub, links: Links) -> Self {
        let (lifetime_tx, lifetime_rx) = mpsc::channel(1);
        Self {
            hub,
            links,
            resolver: NameResolver::from_system(),
            sources: Sources::new(),
            history: History::default(),
            kind: Kind::Full,
            next_full: Instant::now(),
            lifetime_due: Instant::now(),
            lifetime_tx,
            lifetime_rx,
        }
    }

    /// One report, when there is a route to send it over.
    async fn look(&mut self, cfg: &Config, has_route: bool) {
        if !has_route {
            self.hub.update(|s| {
                s.netcheck
                    .health
                    .set(State::Unavailable, Some("no default route yet".into()))
            });
            return;
        }
        self.sources.refresh(&self.hub, cfg).await;
        let tailscaled = self.sources.tailscaled.map();
        match run::plan(&run::effective(cfg), tailscaled, &self.resolver).await {
            Err(e) => {
                // tailscaled may just be starting (at boot it often
                // comes up after us): ask again soon, not an interval later.
                if self.sources.tailscaled_may_come()
                    && matches!(e, run::RunError::NoServers { .. })
                {
                    self.next_full = Instant::now().later(super::tsmap::RETRY);
                }
                self.hub.update(|s| {
                    s.netcheck
                        .health
                        .set(State::Unavailable, Some(e.to_string()))
                })
            }
            Ok(plan) => self.report(cfg, &plan).await,
        }
    }

    async fn report(&mut self, cfg: &Config, plan: &run::Plan) {
        // The daemon knows the router's protocols from its portmap task; no
        // probe of its own.
        let port_mapping: Vec<String> = (self.links.mapped.borrow().protocols_seen.iter())
            .map(|m| m.name().to_string())
            .collect();
        // The report published before, for the change events.
        let previous = self.history.last.clone();
        // Never the mesh port test here: it binds the mesh port, which
        // tailscaled may be about to take (see reach.rs).
        let pm = std::future::ready(port_mapping);
        match run::run(plan, self.kind, &mut self.history, pm, None).await {
            Ok(report) => {
                publish(&self.hub, &report, previous.as_ref());
                self.links.report.send_replace(Some(Arc::new(report)));
                let found = &self.history.rfc5780;
                self.links.rfc5780.send_if_modified(|v| {
                    let changed = v != found;
                    if changed {
                        v.clone_from(found);
                    }
                    changed
                });
            }
            Err(e) => self
                .hub
                .update(|s| s.netcheck.health.set(State::Degraded, Some(e.to_string()))),
        }
        if self.kind == Kind::Full {
            self.next_full = Instant::now().later(cfg.netcheck.interval.get());
        }
        if Instant::now() >= self.lifetime_due {
            self.lifetime_due = Instant::now().later(LIFETIME_EVERY);
            estimate_lifetime(plan, &self.lifetime_tx);
        }
    }

    /// After a network change: a quiet time, then a small run.
    async fn network_changed(&mut self, shutdown: &mut Shutdown) -> ControlFlow<()> {
        tokio::select! {
            _ = shutdown.wait() => return ControlFlow::Break(()),
            _ = tokio::time::sleep(NETWORK_SETTLE) => {}
        }
        self.kind = Kind::Incremental;
        ControlFlow::Continue(())
    }

    /// The lifetime estimate came back: into the last report (no reason to
    /// probe again before the next full run).
    fn on_lifetime(&mut self, est: Option<u64>) {
        if let Some(last) = self.history.last.as_mut() {
            last.mapping_lifetime_s = est;
            let snapshot = last.clone();
            self.links.report.send_replace(Some(Arc::new(last.clone())));
            self.hub.update(|s| s.netcheck.report = Some(snapshot));
            if let Some(secs) = est {
                self.hub.emit(
                    "netcheck",
                    "mapping_lifetime.measured",
                    Level::Info,
                    format!("the NAT keeps an idle UDP mapping at least {secs}s"),
                );
            }
        }
    }
}

/// Start the idle-mapping lifetime estimate against the first IPv4 server
/// (it takes minutes: its own task, the answer comes back on `tx`).
fn estimate_lifetime(plan: &run::Plan, tx: &mpsc::Sender<Option<u64>>) {
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
