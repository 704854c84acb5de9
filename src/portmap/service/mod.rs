//! The portmap actor: from the first default route on, hold every configured
//! mapping on the router, renew at half-lease, verify every
//! `verify_interval`, repair at once on a router announcement, refresh
//! (delete + re-add) every `refresh_interval`, and release on shutdown or when
//! the network changes.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

mod prove;
mod publish;
mod repair;

use super::announce;
use super::model::Mapped;
use super::pmp::Ignored;
use super::router::{Grant, ProbeResult, Router};
use crate::actor::Context;
use crate::config::{Config, MappingConfig};
use crate::deadline::Later;
use crate::netcheck::servers::Rfc5780Servers;
use crate::netwatch::NetState;
use crate::poke::Poke;
use crate::shutdown::Shutdown;
use crate::status::{Level, MappingStatus, State, StatusHub};

/// Time all mappings together get to be released.
const RELEASE_BUDGET: Duration = Duration::from_millis(1200);
/// Shortest renewal period, whatever lease the router grants.
const MIN_RENEW: Duration = Duration::from_secs(5);
/// Longest wait between attempts while nothing works.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// After a first protocol answers, how long a preferred one may still answer.
const PREFERRED_GRACE: Duration = Duration::from_millis(250);
/// Announcements closer together than this trigger one check.
const HINT_SPACING: Duration = Duration::from_secs(1);

/// Why a session ended.
enum End {
    Shutdown,
    Changed,
}

/// The channels portmap is handed beside the common ones: what it hears
/// (netcheck's RFC 5780 servers, for the proof) and what it owns (what it
/// holds, for tailscale).
#[derive(Clone)]
pub struct Links {
    /// RFC 5780 STUN servers, from netcheck.
    pub servers: watch::Receiver<Rfc5780Servers>,
    /// What the router holds for us; portmap is the only sender.
    pub mapped: watch::Sender<Mapped>,
    /// tailscaled's real UDP port, from tailscale (None until known).
    pub tailscaled_port: watch::Receiver<Option<u16>>,
    /// "Re-map now" (the page's and the CLI's button); portmap waits on it.
    pub poke: Poke,
}

/// The configuration with every `follow_tailscaled` mapping on tailscaled's
/// real UDP port, on both sides (the same port outside, when free).
fn follow(cfg: Arc<Config>, port: Option<u16>) -> Arc<Config> {
    let Some(port) = port.filter(|&p| p != 0) else {
        return cfg;
    };
    let off = |m: &MappingConfig| m.follow_tailscaled && m.internal_port != port;
    if !cfg.portmap.mapping.iter().any(off) {
        return cfg;
    }
    let mut c = (*cfg).clone();
    for m in c.portmap.mapping.iter_mut().filter(|m| m.follow_tailscaled) {
        m.internal_port = port;
        m.external_port = port;
    }
    Arc::new(c)
}

/// Whether tailscaled's port `now` moves a mapping of `held` that follows it.
fn port_moves(held: &[Held], now: Option<u16>) -> Option<u16> {
    let port = now.filter(|&p| p != 0)?;
    held.iter()
        .any(|h| h.cfg.follow_tailscaled && h.cfg.internal_port != port)
        .then_some(port)
}

/// Run the portmap actor until shutdown; `poke` asks to re-map now.
pub async fn run(ctx: Context, mut links: Links) {
    let Context {
        hub,
        mut config,
        mut net,
        stop: mut shutdown,
    } = ctx;
    let poke = links.poke.clone();
    let ignored = Arc::new(Ignored::default());
    let mut counters = prove::Counters::default();
    loop {
        let cfg = follow(
            config.borrow_and_update().clone(),
            *links.tailscaled_port.borrow_and_update(),
        );
        let target = net
            .borrow_and_update()
            .default_route
            .as_ref()
            .and_then(|r| r.router_and_source());
        let idle_reason = if !cfg.portmap.enabled {
            Some((State::Disabled, "portmap.enabled is false".to_string()))
        } else if target.is_none() {
            Some((
                State::Unavailable,
                "no default route with a gateway and an IPv4 source yet".to_string(),
            ))
        } else {
            None
        };
        if let Some((state, reason)) = idle_reason {
            hub.update(|s| {
                s.portmap.health.set(state, Some(reason));
                s.portmap.mappings.clear();
                s.portmap.double_nat = None;
                s.portmap.proof = counters.status(if cfg.portmap.enabled && cfg.portmap.prove {
                    crate::portmap::model::ProofState::Pending
                } else {
                    crate::portmap::model::ProofState::Off
                });
            });
            links.mapped.send_if_modified(|m| {
                let had = !m.mappings.is_empty();
                m.mappings.clear();
                had
            });
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = config.changed() => {}
                _ = net.changed() => {}
                // Nothing to re-map while idle; the state is looked at again.
                _ = poke.wait() => {}
            }
            continue;
        }
        let Some((gw, local)) = target else { continue };
        let mut session = Session::new(hub.clone(), cfg, gw, local, ignored.clone());
        session.proof.counters = counters;
        session.links = Some(links.clone());
        let end = session
            .run(&mut config, &mut net, &mut shutdown, &poke)
            .await;
        counters = session.proof.counters;
        match end {
            End::Shutdown => return,
            End::Changed => continue,
        }
    }
}

struct Held {
    cfg: MappingConfig,
    /// The proof's canary, not a configured mapping (never shown as one).
    canary: bool,
    nonce: [u8; 12],
    grant: Option<Grant>,
    /// The last grant, kept when the mapping is lost: a router that comes
    /// back with a younger epoch rebooted meanwhile (RFC 6886 §3.6).
    last_grant: Option<Grant>,
    failures: u32,
    /// The router lost it (deleted, rebooted, renewal refused) since it was granted.
    lost: bool,
    last_verified: Option<SystemTime>,
    reason: Option<String>,
    next_retry: Instant,
}

struct Session {
    hub: StatusHub,
    cfg: Arc<Config>,
    gw: Ipv4Addr,
    local: Ipv4Addr,
    ignored: Arc<Ignored>,
    router: Option<Router>,
    /// Probe answers still to come after the first usable one.
    probes: JoinSet<ProbeResult>,
    boot_id: Option<u32>,
    /// When a router reboot was last counted (see `repair::ONE_REBOOT`).
    last_reboot: Option<Instant>,
    held: Vec<Held>,
    next_verify: Instant,
    next_refresh: Instant,
    proof: prove::Proof,
    /// A mapping was made, came back or moved since the last publish.
    moved: bool,
    /// The actor's channels (None only in tests that run no proof).
    links: Option<Links>,
}

impl Session {
    fn new(
        hub: StatusHub,
        cfg: Arc<Config>,
        gw: Ipv4Addr,
        local: Ipv4Addr,
        ignored: Arc<Ignored>,
    ) -> Self {
        let now = Instant::now();
        let proof = prove::Proof::new(&cfg, local);
        let canary = proof.canary_config();
        let held = cfg
            .portmap
            .mapping
            .iter()
            .map(|m| (m, false))
            .chain(canary.iter().map(|m| (m, true)))
            .map(|(m, canary)| {
                let mut nonce = [0u8; 12];
                crate::entropy::fill(&mut nonce);
                Held {
                    cfg: m.clone(),
                    canary,
                    nonce,
                    grant: None,
                    last_grant: None,
                    failures: 0,
                    lost: false,
                    last_verified: None,
                    reason: Some("not mapped yet".into()),
                    next_retry: now,
                }
            })
            .collect();
        Self {
            next_verify: now.later(cfg.portmap.verify_interval.get()),
            next_refresh: now.later(cfg.portmap.refresh_interval.get()),
            hub,
            cfg,
            gw,
            local,
            ignored,
            router: None,
            probes: JoinSet::new(),
            boot_id: None,
            last_reboot: None,
            held,
            proof,
            moved: false,
            links: None,
        }
    }

    async fn run(
        &mut self,
        config: &mut watch::Receiver<Arc<Config>>,
        net: &mut watch::Receiver<NetState>,
        shutdown: &mut Shutdown,
        poke: &Poke,
    ) -> End {
        let (hint_tx, mut hints) = mpsc::channel(1);
        let listener = tokio::spawn(announce::listen(
            self.gw,
            self.local,
            hint_tx,
            self.ignored.clone(),
        ));
        let mut last_hint = Instant::now() - HINT_SPACING;
        let mut servers = self.links.as_ref().map(|l| l.servers.clone());
        let mut ts_port = self.links.as_ref().map(|l| l.tailscaled_port.clone());
        self.publish();
        let end = loop {
            // A step can take seconds (SOAP timeouts); shutdown must not wait
            // for it. What it may have created unrecorded is cleaned up by
            // `release_all`.
            let stopped = tokio::select! {
                _ = shutdown.wait() => true,
                _ = self.step() => false,
            };
            if stopped {
                break End::Shutdown;
            }
            self.publish();
            let wake = self.next_wake();
            tokio::select! {
                _ = shutdown.wait() => break End::Shutdown,
                _ = config.changed() => break End::Changed,
                r = net.changed() => {
                    if r.is_err() { break End::Shutdown; }
                    let still = net.borrow().default_route.as_ref().is_some_and(|r| {
                        r.gateway.as_deref() == Some(&self.gw.to_string())
                            && r.source.as_deref() == Some(&self.local.to_string())
                    });
                    if !still {
                        self.hub.emit("portmap", "network.changed", Level::Info,
                            format!("default route or address changed; releasing mappings on {} and mapping anew", self.gw));
                        break End::Changed;
                    }
                }
                Some(done) = self.probes.join_next(), if !self.probes.is_empty() => {
                    if let Ok(r) = done {
                        self.late_probe(r).await;
                    }
                }
                Some(()) = hints.recv() => {
                    if last_hint.elapsed() >= HINT_SPACING {
                        last_hint = Instant::now();
                        self.on_announcement().await;
                    }
                }
                _ = poke.wait() => self.remap_now(Instant::now()),
                Some(()) = servers_changed(&mut servers) => self.proof.servers_changed(),
                Some(now) = port_changed(&mut ts_port) => {
                    if let Some(port) = port_moves(&self.held, now) {
                        self.hub.emit("portmap", "mapping.follows_tailscaled", Level::Info,
                            format!("tailscaled listens on UDP {port}: mapping it instead (same port outside when free)"));
                        break End::Changed;
                    }
                }
                _ = tokio::time::sleep_until(wake) => {}
            }
        };
        listener.abort();
        self.release_all().await;
        self.publish();
        end
    }

    /// "Re-map now": delete and re-add what is held and retry what is not,
    /// at the next step (which also probes a router that answered nothing).
    fn remap_now(&mut self, now: Instant) {
        self.next_refresh = now;
        for h in &mut self.held {
            if h.grant.is_none() {
                h.next_retry = now;
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut t = self
            .next_verify
            .min(self.next_refresh)
            .min(self.proof.next_at);
        for h in &self.held {
            match &h.grant {
                None => t = t.min(h.next_retry),
                Some(g) if g.lease_s > 0 => t = t.min(renew_at(g)),
                Some(_) => {}
            }
        }
        t
    }

    /// Do whatever is due: probe, create, renew, verify, refresh.
    async fn step(&mut self) {
        let now = Instant::now();
        if self.router.is_none() {
            self.probe().await;
        }
        if now >= self.next_refresh {
            self.next_refresh = now.later(self.cfg.portmap.refresh_interval.get());
            for i in 0..self.held.len() {
                self.refresh(i).await;
            }
        }
        let verify_due = now >= self.next_verify;
        if verify_due {
            self.next_verify = now.later(self.cfg.portmap.verify_interval.get());
            if self.router.is_some() {
                self.check_boot_id(1).await;
            }
        }
        for i in 0..self.held.len() {
            let renew_due = self.held[i]
                .grant
                .is_some_and(|g| g.lease_s > 0 && now >= renew_at(&g));
            let create_due = self.held[i].grant.is_none() && now >= self.held[i].next_retry;
            if create_due || renew_due || verify_due {
                self.ensure(i, renew_due).await;
            }
        }
        if Instant::now() >= self.proof.next_at {
            self.prove().await;
        }
    }

    /// Ask the router what it speaks; return as soon as one protocol answers
    /// (the others keep going and are merged by `late_probe`).
    async fn probe(&mut self) {
        let mut router = Router::unprobed(self.gw, self.local, self.ignored.clone());
        self.probes = router.start_probes();
        // Wait for the first protocol that answers, then a short grace for a
        // preferred one (PCP answers in milliseconds when it is there).
        let mut grace_ends: Option<Instant> = None;
        while !router.pcp {
            let next = match grace_ends {
                None => self.probes.join_next().await,
                Some(end) => match tokio::time::timeout_at(end, self.probes.join_next()).await {
                    Ok(n) => n,
                    Err(_) => break,
                },
            };
            match next {
                Some(Ok(r)) => router.merge(r),
                Some(Err(_)) => {}
                None => break,
            }
            if grace_ends.is_none() && !router.methods().is_empty() {
                grace_ends = Some(Instant::now().later(PREFERRED_GRACE));
            }
        }
        if router.methods().is_empty() {
            let wait = backoff(self.held.first().map_or(0, |h| h.failures));
            for h in &mut self.held {
                h.failures += 1;
                h.reason = Some(format!(
                    "router {} answered none of PCP, NAT-PMP or UPnP IGD",
                    self.gw
                ));
                h.next_retry = Instant::now().later(wait);
            }
            self.publish_protocols(&router);
            return;
        }
        if let Some(igd) = &router.upnp {
            // Compared with the BOOTID from before the router was lost: a
            // router that went away and came back may have rebooted.
            let now = igd.boot_id(&self.ignored).await.ok().flatten();
            self.boot_id_seen(now);
        }
        self.publish_protocols(&router);
        self.router = Some(router);
    }

    /// A probe answer that came after the first usable one.
    async fn late_probe(&mut self, result: ProbeResult) {
        let Some(router) = &mut self.router else {
            return;
        };
        router.merge(result);
        let fresh_igd = router.upnp.is_some() && self.boot_id.is_none();
        if fresh_igd {
            if let Some(igd) = &router.upnp {
                self.boot_id = igd.boot_id(&self.ignored).await.ok().flatten();
            }
        }
        if let Some(router) = &self.router {
            self.publish_protocols(router);
        }
    }
}

fn overall(m: &[MappingStatus]) -> (State, Option<String>) {
    let bad: Vec<String> = m
        .iter()
        .filter(|x| x.state != State::Ok)
        .map(|x| format!("{}: {}", x.name, x.reason.as_deref().unwrap_or("not ok")))
        .collect();
    if bad.is_empty() {
        (State::Ok, None)
    } else if m.iter().any(|x| x.state != State::Unavailable) {
        (State::Degraded, Some(bad.join("; ")))
    } else {
        (State::Unavailable, Some(bad.join("; ")))
    }
}

/// The next change of netcheck's servers; None once its sender is gone
/// (then this branch stays quiet) or when there is no receiver.
async fn servers_changed(rx: &mut Option<watch::Receiver<Rfc5780Servers>>) -> Option<()> {
    match rx {
        Some(r) => match r.changed().await {
            Ok(()) => Some(()),
            Err(_) => {
                *rx = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// The next value of tailscaled's port; quiet once its sender is gone.
async fn port_changed(rx: &mut Option<watch::Receiver<Option<u16>>>) -> Option<Option<u16>> {
    match rx {
        Some(r) => match r.changed().await {
            Ok(()) => Some(*r.borrow_and_update()),
            Err(_) => {
                *rx = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// Renew at half the granted lease, but never more often than every
/// `MIN_RENEW` (a router granting a 1 s lease must not make us spin).
fn renew_at(g: &Grant) -> Instant {
    g.at.later(Duration::from_secs(u64::from(g.lease_s) / 2).max(MIN_RENEW))
}

fn backoff(failures: u32) -> Duration {
    let secs = 1u64 << failures.min(6);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// Run futures one after another and collect their outputs in order.
async fn run_in_turn<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    // Mappings are few (one by default): polling them in turn is enough.
    for f in set {
        out.push(f.await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_that_follow_tailscaled_take_its_real_port() {
        let mut cfg = Config::default();
        cfg.portmap.mapping.push(MappingConfig {
            name: "ssh".into(),
            protocol: crate::config::Protocol::Tcp,
            internal_port: 22,
            external_port: 2222,
            follow_tailscaled: false,
        });
        let cfg = Arc::new(cfg);
        assert!(
            Arc::ptr_eq(&follow(cfg.clone(), None), &cfg),
            "unknown port: as configured"
        );
        assert!(
            Arc::ptr_eq(&follow(cfg.clone(), Some(41641)), &cfg),
            "same port: as configured"
        );
        assert!(
            Arc::ptr_eq(&follow(cfg.clone(), Some(0)), &cfg),
            "0 is no port"
        );
        let moved = follow(cfg.clone(), Some(41700));
        let m = &moved.portmap.mapping;
        assert_eq!((m[0].internal_port, m[0].external_port), (41700, 41700));
        assert_eq!(
            (m[1].internal_port, m[1].external_port),
            (22, 2222),
            "not following"
        );
    }

    /// A session with the default configuration on documentation
    /// addresses, and the hub it publishes into (the unit tests' fixture).
    pub(super) fn test_session() -> (StatusHub, Session) {
        let hub = StatusHub::new(crate::web::test_status());
        let s = Session::new(
            hub.clone(),
            Arc::new(Config::default()),
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 10),
            Arc::new(Ignored::default()),
        );
        (hub, s)
    }

    #[tokio::test]
    async fn remap_now_makes_refresh_and_retries_due() {
        let (_hub, mut s) = test_session();
        let later = Instant::now() + Duration::from_secs(600);
        s.next_refresh = later;
        s.held[0].next_retry = later;
        s.proof.next_at = later;
        let now = Instant::now();
        s.remap_now(now);
        assert_eq!(s.next_refresh, now);
        assert_eq!(s.held[0].next_retry, now);
        assert_eq!(s.next_wake(), now, "the next step runs at once");
    }
}
