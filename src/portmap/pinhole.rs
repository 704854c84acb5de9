//! The IPv6 pinhole actor: an IPv6 router's stateful firewall drops
//! unsolicited inbound just as a NAT does, so for tailscaled's UDP port on
//! each stable global IPv6 address of the gateway, hold a PCP MAP pinhole
//! on the IPv6 default router ("from any remote host"), sent from that
//! address (routers refuse requests for another one). Renew at half-lease
//! and at least every `verify_interval` (a renewal also re-creates what a
//! rebooted router lost, and its epoch tells the reboot), at once on a
//! router announcement, anew when the addresses or the router change, and
//! delete on shutdown. Privacy (temporary), tentative and deprecated
//! addresses are never opened.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::announce;
use super::model::{PinholeState, PinholeStatus};
use super::pmp::{self, Ignored, PmpError};
use super::protocol::pcp::{self, MapRequest};
use super::protocol::pinhole::{self as wire, PinholeGrant};
use super::protocol::Protocol;
use crate::actor::Context;
use crate::config::Config;
use crate::deadline::Later;
use crate::netwatch::NetState;
use crate::status::{Level, StatusHub, Timestamp};

/// Time one PCP exchange may take (retransmits included).
const PCP_BUDGET: Duration = Duration::from_millis(1500);
/// Time all deletions together get on shutdown.
const RELEASE_BUDGET: Duration = Duration::from_millis(1200);
/// Shortest renewal period, whatever lease the router grants.
const MIN_RENEW: Duration = Duration::from_secs(5);
/// Longest wait between attempts while the router refuses.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Announcements closer together than this trigger one renewal.
const HINT_SPACING: Duration = Duration::from_secs(1);

/// Where the pinholes are asked for: the IPv6 default router and the
/// stable global addresses on its interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) router: Ipv6Addr,
    pub(super) ifname: String,
    pub(super) scope: u32,
    pub(super) addrs: Vec<Ipv6Addr>,
}

/// Why no pinhole is asked for (shown as `portmap.pinholes_reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NoPinholes {
    #[error("portmap.enabled or portmap.ipv6_pinholes is false")]
    Off,
    #[error("no mapping follows tailscaled's port")]
    NoPort,
    #[error("no IPv6 default route with a router")]
    NoRoute,
    #[error("no stable global IPv6 address on {0} (privacy addresses are not opened)")]
    NoStableAddress(String),
}

/// The kernel's view now, from `/proc` (re-read on every network change).
pub(super) fn read_target() -> Result<Target, NoPinholes> {
    let routes = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    let route = wire::parse_ipv6_default_route(&routes).ok_or(NoPinholes::NoRoute)?;
    let addrs_text = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
    let all = wire::parse_if_inet6(&addrs_text);
    let on_link: Vec<_> = all.iter().filter(|a| a.ifname == route.ifname).collect();
    let scope = on_link.first().map_or(0, |a| a.ifindex);
    let mut addrs: Vec<Ipv6Addr> = on_link
        .iter()
        .filter(|a| a.pinhole_candidate())
        .map(|a| a.addr)
        .collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(NoPinholes::NoStableAddress(route.ifname));
    }
    Ok(Target {
        router: route.gateway,
        ifname: route.ifname,
        scope,
        addrs,
    })
}

/// tailscaled's UDP port: as its LocalAPI says, else the port of the
/// mapping that follows it.
fn tailscaled_port(cfg: &Config, live: Option<u16>) -> Option<u16> {
    live.filter(|&p| p != 0).or_else(|| {
        let m = &cfg.portmap.mapping;
        m.iter()
            .find(|m| m.follow_tailscaled)
            .or_else(|| m.iter().find(|m| m.name == cfg.tailscale.mapping))
            .map(|m| m.internal_port)
    })
}

struct Hole {
    addr: Ipv6Addr,
    nonce: [u8; 12],
    grant: Option<(PinholeGrant, Instant, SystemTime)>,
    /// Last epoch seen and when.
    epoch: Option<(u32, Instant)>,
    next_at: Instant,
    failures: u32,
    reason: Option<String>,
}

impl Hole {
    fn new(addr: Ipv6Addr, now: Instant) -> Self {
        let mut nonce = [0u8; 12];
        crate::entropy::fill(&mut nonce);
        Self {
            addr,
            nonce,
            grant: None,
            epoch: None,
            next_at: now,
            failures: 0,
            reason: Some("not asked yet".into()),
        }
    }

    fn request(&self, port: u16, lifetime_secs: u32) -> MapRequest {
        MapRequest {
            lifetime_secs,
            client_addr: self.addr.into(),
            nonce: self.nonce,
            protocol: Protocol::Udp,
            internal_port: port,
            suggested_external_port: port,
            suggested_external_addr: None,
        }
    }
}

/// One target (router, interface, port) and the pinholes held on it.
struct Session {
    hub: StatusHub,
    ignored: Arc<Ignored>,
    target: Target,
    port: u16,
    lease: Duration,
    verify: Duration,
    holes: Vec<Hole>,
}

/// The outcome of one MAP, in the words the status uses.
fn describe(e: &PmpError) -> String {
    match e {
        PmpError::Pcp(pcp::PcpError::Server(code)) => {
            format!("router refused the pinhole: PCP {code:?}")
        }
        PmpError::Timeout { .. } => format!("no PCP answer over IPv6: {e}"),
        other => other.to_string(),
    }
}

impl Session {
    fn router_text(&self) -> String {
        format!("{}%{}", self.target.router, self.target.ifname)
    }

    /// Bring the held pinholes in line with the target's addresses: new
    /// ones are asked for at once; ones whose address left are forgotten
    /// (their source address is gone, so they can't be deleted; they
    /// lapse at lease end).
    fn follow_addresses(&mut self, addrs: &[Ipv6Addr]) {
        let now = Instant::now();
        self.holes.retain(|h| addrs.contains(&h.addr));
        for a in addrs {
            if !self.holes.iter().any(|h| h.addr == *a) {
                self.holes.push(Hole::new(*a, now));
            }
        }
        self.target.addrs = addrs.to_vec();
    }

    async fn map(&mut self, i: usize) {
        let lease = u32::try_from(self.lease.as_secs()).unwrap_or(u32::MAX);
        let (router, scope, port) = (self.target.router, self.target.scope, self.port);
        let Some(hole) = self.holes.get(i) else {
            return;
        };
        let req = hole.request(port, lease);
        let answer = pmp::pcp_map_v6(router, scope, &req, PCP_BUDGET, &self.ignored).await;
        let checked = answer
            .map_err(|e| describe(&e))
            .and_then(|g| wire::check_pcp_pinhole(&g, &req).map_err(|e| e.to_string()));
        let now = Instant::now();
        let router_text = self.router_text();
        let verify = self.verify;
        let Some(hole) = self.holes.get_mut(i) else {
            return;
        };
        match checked {
            Ok(g) => {
                let rebooted = hole.epoch.is_some_and(|(e, at)| {
                    pmp::epoch_says_rebooted(e, now.duration_since(at), g.epoch_secs)
                });
                let first = hole.grant.is_none();
                hole.epoch = Some((g.epoch_secs, now));
                hole.grant = Some((g, now, SystemTime::now()));
                hole.failures = 0;
                hole.reason = None;
                let half = Duration::from_secs(u64::from(g.lease_s) / 2).max(MIN_RENEW);
                hole.next_at = now.later(half.min(verify));
                if rebooted {
                    self.hub.emit("portmap", "pinhole.router_restarted", Level::Warn,
                        format!("router {router_text} restarted (PCP epoch went back); pinhole for [{}]:{port} made again", g.addr));
                } else if first {
                    self.hub.emit(
                        "portmap",
                        "pinhole.open",
                        Level::Info,
                        format!(
                            "IPv6 pinhole open for [{}]:{port} on {router_text} by PCP, lease {}s",
                            g.addr, g.lease_s
                        ),
                    );
                }
            }
            Err(reason) => {
                let had = hole.grant.take().is_some();
                hole.failures = hole.failures.saturating_add(1);
                let wait = Duration::from_secs(1u64 << hole.failures.min(6)).min(MAX_BACKOFF);
                hole.next_at = now.later(wait);
                if had || hole.failures == 1 {
                    self.hub.emit(
                        "portmap",
                        "pinhole.failed",
                        Level::Warn,
                        format!(
                            "IPv6 pinhole for [{}]:{port} on {router_text}: {reason}",
                            hole.addr
                        ),
                    );
                }
                hole.reason = Some(reason);
            }
        }
    }

    /// Ask for every pinhole that is due (or all, when `all`).
    async fn step(&mut self, all: bool) {
        let now = Instant::now();
        for i in 0..self.holes.len() {
            if all || self.holes.get(i).is_some_and(|h| now >= h.next_at) {
                self.map(i).await;
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now().later(Duration::from_secs(3600));
        self.holes.iter().map(|h| h.next_at).min().unwrap_or(far)
    }

    /// Delete every granted pinhole (lifetime 0, same nonce), bounded.
    async fn release_all(&mut self) {
        let (router, scope, port) = (self.target.router, self.target.scope, self.port);
        let ignored = self.ignored.clone();
        let router_text = self.router_text();
        let hub = self.hub.clone();
        let held: Vec<_> = self
            .holes
            .iter_mut()
            .filter_map(|h| h.grant.take().map(|_| h.request(port, 0)))
            .collect();
        let released = tokio::time::timeout(RELEASE_BUDGET, async {
            for req in &held {
                let r = pmp::pcp_map_v6(router, scope, req, PCP_BUDGET, &ignored).await;
                let (level, words) = match r {
                    Ok(_) => (Level::Info, "deleted".to_string()),
                    Err(PmpError::Pcp(pcp::PcpError::Server(pcp::ResultCode::NotAuthorized))) => {
                        (Level::Warn, shorten(router, scope, req, &ignored).await)
                    }
                    Err(e) => (
                        Level::Warn,
                        format!(
                            "not deleted ({}); it lapses when its lease ends",
                            describe(&e)
                        ),
                    ),
                };
                hub.emit(
                    "portmap",
                    "pinhole.released",
                    level,
                    format!(
                        "IPv6 pinhole for [{}]:{port} on {router_text}: {words}",
                        req.client_addr
                    ),
                );
            }
        })
        .await;
        if released.is_err() {
            self.hub.emit("portmap", "pinhole.released", Level::Warn,
                format!("deleting the IPv6 pinholes on {router_text} took over {RELEASE_BUDGET:?}; the rest lapse when their leases end"));
        }
    }

    fn status(&self) -> Vec<PinholeStatus> {
        self.holes
            .iter()
            .map(|h| {
                let granted = h.grant.as_ref();
                PinholeStatus {
                    address: h.addr.to_string(),
                    port: self.port,
                    protocol: crate::primitives::Protocol::Udp,
                    method: super::model::Method::Pcp,
                    router: self.router_text(),
                    lease_s: granted.map(|(g, _, _)| u64::from(g.lease_s)),
                    expires: granted.map(|(g, _, at)| {
                        let end = *at + Duration::from_secs(u64::from(g.lease_s));
                        Timestamp::at(end)
                    }),
                    last_renewed: granted.map(|(_, _, at)| Timestamp::at(*at)),
                    failures: h.failures,
                    state: match (granted, h.failures) {
                        (Some(_), _) => PinholeState::Open,
                        (None, 0) => PinholeState::Pending,
                        (None, _) => PinholeState::Failed,
                    },
                    reason: h.reason.clone(),
                }
            })
            .collect()
    }

    fn publish(&self) {
        let list = self.status();
        let ignored = self.ignored.0.load(std::sync::atomic::Ordering::Relaxed);
        self.hub.update(|s| {
            s.portmap.pinholes = list;
            s.portmap.pinholes_reason = None;
            s.portmap.ignored_packets = s.portmap.ignored_packets.max(ignored);
        });
    }
}

/// A router that refuses to delete our pinhole (miniupnpd 2.3.1 does, for
/// a PCP pinhole once renewed) still renews it: ask for the shortest lease
/// it grants, so the pinhole lapses soon instead of at the full lease.
async fn shorten(router: Ipv6Addr, scope: u32, delete: &MapRequest, ignored: &Ignored) -> String {
    let req = MapRequest {
        lifetime_secs: 1,
        ..*delete
    };
    match pmp::pcp_map_v6(router, scope, &req, PCP_BUDGET, ignored).await {
        Ok(g) => format!(
            "router refused the deletion (PCP NotAuthorized); lease cut to {}s, it lapses then",
            g.lifetime_secs
        ),
        Err(e) => format!(
            "router refused the deletion (PCP NotAuthorized) and the shorter lease ({}); it lapses when its lease ends",
            describe(&e)
        ),
    }
}

fn publish_idle(hub: &StatusHub, reason: String) {
    hub.update(|s| {
        s.portmap.pinholes.clear();
        s.portmap.pinholes_reason = Some(reason);
    });
}

/// The IPv4 gateway and our address toward it, for the announcement
/// listener (a router restart is announced over IPv4).
fn v4_gateway(net: &NetState) -> Option<(Ipv4Addr, Ipv4Addr)> {
    net.default_route.as_ref()?.router_and_source()
}

/// The pinhole actor's links to the others.
pub struct Links {
    /// tailscaled's real UDP port, from tailscale (None until known).
    pub tailscaled_port: watch::Receiver<Option<u16>>,
}

/// Run the pinhole actor until shutdown.
pub async fn run(ctx: Context, links: Links) {
    let Context {
        hub,
        mut config,
        mut net,
        stop: mut shutdown,
    } = ctx;
    let mut ts_port = links.tailscaled_port;
    let ignored = Arc::new(Ignored::default());
    let mut session: Option<Session> = None;
    let (hint_tx, mut hints) = mpsc::channel(1);
    let mut listener: Option<(Ipv4Addr, JoinHandle<()>)> = None;
    let mut last_hint = Instant::now() - HINT_SPACING;
    loop {
        let cfg = config.borrow_and_update().clone();
        let port = tailscaled_port(&cfg, *ts_port.borrow_and_update());
        let gw4 = v4_gateway(&net.borrow_and_update());
        if listener.as_ref().map(|(g, _)| *g) != gw4.map(|(g, _)| g) {
            if let Some((_, h)) = listener.take() {
                h.abort();
            }
            listener = gw4.map(|(g, local)| {
                (
                    g,
                    tokio::spawn(announce::listen(g, local, hint_tx.clone(), ignored.clone())),
                )
            });
        }
        let wanted = if !cfg.portmap.enabled || !cfg.portmap.ipv6_pinholes {
            Err(NoPinholes::Off)
        } else if let Some(port) = port {
            read_target().map(|t| (t, port))
        } else {
            Err(NoPinholes::NoPort)
        };
        session = reconcile(session, wanted, &hub, &ignored, &cfg).await;
        if let Some(s) = session.as_mut() {
            s.step(false).await;
            s.publish();
        }
        let wake = session.as_ref().map_or_else(
            || Instant::now().later(Duration::from_secs(3600)),
            Session::next_wake,
        );
        tokio::select! {
            _ = shutdown.wait() => break,
            _ = config.changed() => {}
            r = net.changed() => if r.is_err() { break },
            _ = ts_port.changed() => {}
            Some(()) = hints.recv() => {
                if last_hint.elapsed() >= HINT_SPACING {
                    last_hint = Instant::now();
                    if let Some(s) = session.as_mut() {
                        s.step(true).await;
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
    if let Some((_, h)) = listener.take() {
        h.abort();
    }
    if let Some(mut s) = session {
        s.release_all().await;
        s.publish();
    }
}

/// Keep, adapt, replace or end the session for what is wanted now.
async fn reconcile(
    session: Option<Session>,
    wanted: Result<(Target, u16), NoPinholes>,
    hub: &StatusHub,
    ignored: &Arc<Ignored>,
    cfg: &Config,
) -> Option<Session> {
    let lease = cfg.portmap.pinhole_lease.get();
    let verify = cfg.portmap.verify_interval.get();
    match (session, wanted) {
        (Some(mut s), Ok((t, port)))
            if s.target.router == t.router && s.target.ifname == t.ifname && s.port == port =>
        {
            if s.target.addrs != t.addrs {
                s.follow_addresses(&t.addrs);
            }
            if s.lease != lease || s.verify != verify {
                (s.lease, s.verify) = (lease, verify);
                s.holes.iter_mut().for_each(|h| h.next_at = Instant::now());
            }
            Some(s)
        }
        (old, wanted) => {
            if let Some(mut s) = old {
                s.release_all().await;
            }
            match wanted {
                Ok((target, port)) => {
                    let now = Instant::now();
                    let holes = target.addrs.iter().map(|a| Hole::new(*a, now)).collect();
                    Some(Session {
                        hub: hub.clone(),
                        ignored: ignored.clone(),
                        target,
                        port,
                        lease,
                        verify,
                        holes,
                    })
                }
                Err(reason) => {
                    publish_idle(hub, reason.to_string());
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_from_tailscaled_or_the_following_mapping() {
        let cfg = Config::default();
        assert_eq!(tailscaled_port(&cfg, None), Some(41641));
        assert_eq!(tailscaled_port(&cfg, Some(0)), Some(41641));
        assert_eq!(tailscaled_port(&cfg, Some(5555)), Some(5555));
        let mut none = Config::default();
        none.portmap.mapping.clear();
        assert_eq!(tailscaled_port(&none, None), None);
    }
}
