//! The tailscale actor: follows tailscaled through its LocalAPI, keeps peer
//! paths warm with disco pings, asks for a re-STUN whenever the router mapping
//! changes, and checks that tailscaled is set up to use that mapping.
//!
//! tailscaled may be missing, restarting or refusing us at any time: each
//! failure is reported in the status and retried with capped, jittered
//! backoff; nothing here ends the task except shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::api::{self, PingPath, PingResult, TsStatus};
use super::client::{IpnBus, LocalApi, LocalApiError};
use super::health::{describe, facts, verdict, version_note};
use super::keepalive::Schedule;
use super::model::{Backend, PeerStatus, PingStatus, SanityCheck, TailscaleStatus};
use super::{peers, sanity, select};
use crate::actor::Context;
use crate::config::Config;
use crate::deadline::Later;
use crate::netcheck::report::LatestReport;
use crate::netwatch::NetState;
use crate::portmap::model::Mapped;
use crate::status::{Level, State, StatusHub, Timestamp};

/// How often the peer list is refreshed while tailscaled answers.
const POLL: Duration = Duration::from_secs(10);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// watch-ipn-bus mask: the current state first, rate-limited netmap updates.
const BUS_MASK: u32 = (1 << 1) | (1 << 8);
const SOURCE: &str = "tailscale";

/// The channels tailscale is handed beside the common ones.
pub struct Links {
    /// What portmap holds and has seen of the router (a new generation:
    /// re-STUN; the setup checks look at the mapping).
    pub mapped: watch::Receiver<Mapped>,
    /// netcheck's latest report (whether the NAT is hard, for the checks).
    pub report: watch::Receiver<LatestReport>,
    /// tailscaled's real UDP port, as its LocalAPI shows it; tailscale is
    /// the only sender.
    pub port: watch::Sender<Option<u16>>,
    /// tailscaled's backend state and control server (for admission);
    /// tailscale is the only sender.
    pub backend: watch::Sender<Backend>,
}

/// Run until shutdown.
pub async fn run(ctx: Context, links: Links) {
    let Context {
        hub,
        mut config,
        mut net,
        stop: mut shutdown,
    } = ctx;
    let Links {
        mut mapped,
        report,
        port,
        backend,
    } = links;
    let chans = Channels {
        port,
        backend,
        net: net.clone(),
        report,
    };
    let mut actor = Actor::new(hub.clone(), config.borrow_and_update().clone(), &chans);
    // What portmap holds now is known, not news: only later generations are.
    actor.mapped = mapped.borrow_and_update().clone();
    loop {
        if !actor.cfg.tailscale.enabled {
            actor.publish_disabled();
            tokio::select! {
                _ = shutdown.wait() => return,
                r = config.changed() => if r.is_err() { return },
            }
            actor = Actor::new(hub.clone(), config.borrow_and_update().clone(), &chans);
            actor.mapped = mapped.borrow().clone();
            continue;
        }
        let next_ping = actor.schedule.next_due();
        let ping_room = actor.pings.len() < usize::from(actor.cfg.tailscale.keepalive_concurrency);
        tokio::select! {
            _ = shutdown.wait() => return,
            r = config.changed() => {
                if r.is_err() { return }
                actor = Actor::new(hub.clone(), config.borrow_and_update().clone(), &chans);
                actor.mapped = mapped.borrow().clone();
            }
            r = net.changed() => {
                if r.is_err() { return }
                // New addresses change what the checks see; look again soon.
                actor.poll_at = Instant::now();
            }
            r = mapped.changed() => {
                // Gone only when the daemon stops (portmap ended first).
                if r.is_err() { return }
                let now = mapped.borrow_and_update().clone();
                actor.on_mapped(&now).await;
            }
            _ = tokio::time::sleep_until(actor.poll_at) => actor.poll().await,
            msg = next_bus(&mut actor.bus) => actor.on_bus(msg).await,
            _ = sleep_until_opt(next_ping), if ping_room && actor.connected => actor.start_due_pings(),
            Some(done) = actor.pings.join_next() => {
                if let Ok((key, result)) = done {
                    actor.on_ping(key, result);
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_bus(bus: &mut Option<IpnBus>) -> Result<Option<api::Notify>, LocalApiError> {
    match bus {
        Some(b) => b.next().await,
        None => std::future::pending().await,
    }
}

type PingOutcome = (String, Result<PingResult, LocalApiError>);

/// The channels every actor (one per configuration) is started with: the
/// two it owns and two it reads whenever it looks at tailscaled.
#[derive(Clone)]
struct Channels {
    /// tailscaled's real UDP port (portmap follows it); only sender.
    port: watch::Sender<Option<u16>>,
    /// tailscaled's backend (admission looks at it); only sender.
    backend: watch::Sender<Backend>,
    /// The machine's addresses, from netwatch.
    net: watch::Receiver<NetState>,
    /// netcheck's latest report.
    report: watch::Receiver<LatestReport>,
}

struct Actor {
    hub: StatusHub,
    cfg: Arc<Config>,
    api: LocalApi,
    selectors: Vec<select::PeerSelector>,
    connected: bool,
    backoff: Duration,
    poll_at: Instant,
    bus: Option<IpnBus>,
    backend_state: Option<String>,
    schedule: Schedule,
    pings: JoinSet<PingOutcome>,
    /// Tailnet IP per peer key, for the pings.
    targets: HashMap<String, std::net::IpAddr>,
    /// What portmap held when last told: its generation and mappings.
    mapped: Mapped,
    /// Where tailscaled's port and backend go, and what the checks read.
    chans: Channels,
    /// The section's peers as last published, with their ping history.
    peers: Vec<PeerStatus>,
    /// The setup checks that failed at the last look.
    checks: Vec<SanityCheck>,
    restun_pending: bool,
    proc_pid: Option<i32>,
    proc_facts: Option<sanity::ProcFacts>,
    /// The last status and version note, to re-judge health after each ping.
    last_seen: Option<(TsStatus, Option<String>)>,
}

impl Actor {
    fn new(hub: StatusHub, cfg: Arc<Config>, chans: &Channels) -> Self {
        let t = &cfg.tailscale;
        let api = LocalApi::new(t.socket.clone(), t.call_timeout.get());
        let selectors = select::parse_all(&t.keepalive_peers);
        let schedule = Schedule::new(t.keepalive_interval.get());
        hub.update(|s| {
            let keep = std::mem::replace(&mut s.tailscale, TailscaleStatus::starting(&t.socket));
            s.tailscale.restuns = keep.restuns;
            s.tailscale.pings_sent = keep.pings_sent;
            s.tailscale.pings_failed = keep.pings_failed;
        });
        // Nothing known of tailscaled yet, as in the section just reset.
        chans.backend.send_if_modified(|b| {
            let known = *b != Backend::default();
            *b = Backend::default();
            known
        });
        Self {
            hub,
            api,
            selectors,
            connected: false,
            backoff: BACKOFF_MIN,
            poll_at: Instant::now(),
            bus: None,
            backend_state: None,
            schedule,
            pings: JoinSet::new(),
            targets: HashMap::new(),
            mapped: Mapped::default(),
            chans: chans.clone(),
            restun_pending: false,
            proc_pid: None,
            proc_facts: None,
            peers: Vec::new(),
            checks: Vec::new(),
            last_seen: None,
            cfg,
        }
    }

    fn publish_disabled(&mut self) {
        self.peers.clear();
        self.hub.update(|s| {
            s.tailscale
                .health
                .set(State::Disabled, Some("tailscale.enabled is false".into()));
            s.tailscale.peers.clear();
        });
    }

    /// Refresh everything from tailscaled; on failure mark it gone and back off.
    async fn poll(&mut self) {
        match self.refresh().await {
            Ok(()) => {
                self.backoff = BACKOFF_MIN;
                self.poll_at = Instant::now().later(POLL);
            }
            Err(e) => self.lost(e),
        }
    }

    async fn refresh(&mut self) -> Result<(), LocalApiError> {
        let st = self.api.status().await?;
        let pid = self.api.daemon_pid().await.unwrap_or(None);
        if !self.connected || pid != self.proc_pid {
            self.proc_pid = pid;
            self.proc_facts = pid.and_then(read_proc);
        }
        // Prefs are optional extras (control URL); status alone is enough.
        let prefs = self.api.prefs().await.ok();
        if self.bus.is_none() {
            self.bus = self.api.watch_ipn_bus(BUS_MASK).await.ok();
        }
        let came_back = !self.connected;
        self.connected = true;
        if came_back {
            self.hub.emit(
                SOURCE,
                "tailscaled.up",
                Level::Info,
                format!(
                    "tailscaled {} answers on {} ({})",
                    st.version,
                    self.api.socket().display(),
                    st.backend_state
                ),
            );
            // Whatever it knew of our endpoints may be stale after a restart.
            self.restun_pending = !self.mapped.mappings.is_empty();
        }
        self.note_backend_state(&st.backend_state);
        // Shown, published and stored in events: never with credentials.
        self.apply_status(&st, prefs.map(|p| crate::redact::url(&p.control_url)));
        if self.restun_pending && st.backend_state == "Running" {
            self.restun("tailscaled (re)started with a router mapping in place")
                .await;
        }
        Ok(())
    }

    fn note_backend_state(&mut self, state: &str) {
        if self.backend_state.as_deref() != Some(state) {
            if let Some(old) = &self.backend_state {
                self.hub.emit(
                    SOURCE,
                    "tailscaled.state",
                    if state == "Running" {
                        Level::Info
                    } else {
                        Level::Warn
                    },
                    format!("tailscaled went from {old} to {state}"),
                );
            }
            self.backend_state = Some(state.to_string());
        }
    }

    fn lost(&mut self, e: LocalApiError) {
        let was = self.connected;
        self.connected = false;
        self.bus = None;
        self.pings.abort_all();
        self.backend_state = None;
        self.last_seen = None;
        let wait = jittered(self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.poll_at = Instant::now().later(wait);
        let reason = format!("{e}; retrying in {:.0?}", wait);
        if was {
            self.hub.emit(
                SOURCE,
                "tailscaled.down",
                Level::Warn,
                format!("lost tailscaled: {e}; keepalive paused, router mappings kept"),
            );
        }
        let state = if e.is_absent() {
            State::Unavailable
        } else {
            State::Degraded
        };
        self.hub.update(|s| {
            s.tailscale.health.set(state, Some(reason));
            s.tailscale.backend_state = None;
            s.tailscale.pid = None;
        });
        self.chans
            .backend
            .send_if_modified(|b| b.state.take().is_some());
    }

    async fn on_bus(&mut self, msg: Result<Option<api::Notify>, LocalApiError>) {
        match msg {
            Ok(Some(n)) => {
                if let Some(state) = n.state {
                    let name = api::state_name(state);
                    if self.backend_state.as_deref() != Some(name) {
                        // A state change: look at everything now.
                        self.poll_at = Instant::now();
                    }
                }
            }
            Ok(None) | Err(_) => {
                // The stream ends when tailscaled stops: find out at once.
                self.bus = None;
                self.poll().await;
            }
        }
    }

    fn apply_status(&mut self, st: &TsStatus, control_url: Option<String>) {
        let me = st.self_node.as_ref();
        let endpoints = me.map(|m| m.addrs.clone()).unwrap_or_default();
        let listen_port = self.listen_port(&endpoints);
        let checks = self.run_checks(listen_port, &endpoints);
        // Peers: keep ping history, refresh what tailscaled says.
        let merged = peers::merge(st, &self.selectors, &self.peers);
        self.targets = merged.targets;
        self.schedule
            .retain_and_add(&merged.selected, Instant::now());
        self.peers = merged.peers;
        let version_note = version_note(&st.version);
        let (state, reason) = verdict(st, &checks, &self.peers, version_note.clone());
        self.last_seen = Some((st.clone(), version_note));
        self.checks = checks;
        self.publish_backend(st, &control_url);
        let listen_port = listen_port.or(self.proc_facts.as_ref().and_then(|p| p.port));
        let (checks, peers) = (self.checks.clone(), self.peers.clone());
        self.hub.update(|s| {
            let t = &mut s.tailscale;
            t.health.set(state, reason);
            t.version = Some(st.version.clone());
            t.backend_state = Some(st.backend_state.clone());
            t.pid = self.proc_pid;
            t.hostname = me.map(|m| m.host_name.clone());
            t.tailnet_ip = me.and_then(|m| m.tailnet_ip()).map(|i| i.to_string());
            if control_url.is_some() {
                t.control_url = control_url;
            }
            t.listen_port = listen_port;
            t.endpoints = endpoints;
            t.checks = checks;
            t.peers = peers;
        });
    }

    /// tailscaled's UDP port as its endpoints on this machine's own
    /// addresses show it; the real port (from there or /proc) goes to
    /// portmap.
    fn listen_port(&self, endpoints: &[String]) -> Option<u16> {
        let local_ips: Vec<std::net::IpAddr> = self
            .chans
            .net
            .borrow()
            .addresses
            .iter()
            .filter_map(|a| a.address.parse().ok())
            .collect();
        let listen_port = sanity::port_from_endpoints(endpoints, &local_ips);
        let real_port = listen_port
            .or(self.proc_facts.as_ref().and_then(|p| p.port))
            .filter(|&p| p != 0);
        if let Some(p) = real_port {
            self.chans
                .port
                .send_if_modified(|old| old.replace(p) != Some(p));
        }
        listen_port
    }

    /// The setup checks now, with an event for each that newly fails.
    fn run_checks(&self, listen_port: Option<u16>, endpoints: &[String]) -> Vec<SanityCheck> {
        let report = self.chans.report.borrow().clone();
        let checks = sanity::check(&facts(
            &self.cfg,
            &self.mapped,
            report.as_deref(),
            self.proc_facts.clone(),
            listen_port,
            endpoints,
        ));
        let new = |c: &&SanityCheck| !self.checks.iter().any(|old| old.check == c.check);
        for c in checks.iter().filter(new) {
            self.hub.emit(
                SOURCE,
                "tailscale.check",
                Level::Warn,
                format!("{} Fix: {}", c.message, c.fix),
            );
        }
        checks
    }

    /// tailscaled's backend state and control server, for admission.
    fn publish_backend(&self, st: &TsStatus, control_url: &Option<String>) {
        self.chans.backend.send_if_modified(|b| {
            let before = b.clone();
            b.state = Some(st.backend_state.clone());
            if control_url.is_some() {
                b.control_url.clone_from(control_url);
            }
            *b != before
        });
    }

    /// Portmap says a mapping was made, came back, moved or was repaired
    /// (a new generation): tailscaled must learn its endpoints anew.
    async fn on_mapped(&mut self, now: &Mapped) {
        let gained = now.generation != self.mapped.generation && !now.mappings.is_empty();
        self.mapped = now.clone();
        if gained && self.cfg.tailscale.restun_on_mapping_change {
            let what = now
                .mappings
                .iter()
                .map(|m| format!("{} {}", m.name, m.external))
                .collect::<Vec<_>>()
                .join(", ");
            if self.connected && self.backend_state.as_deref() == Some("Running") {
                self.restun(&format!("router mapping now {what}")).await;
            } else {
                self.restun_pending = true;
            }
        }
    }

    async fn restun(&mut self, why: &str) {
        match self.api.restun().await {
            Ok(()) => {
                self.restun_pending = false;
                let now = Timestamp::now();
                self.hub.update(|s| {
                    s.tailscale.restuns += 1;
                    s.tailscale.last_restun = Some(now);
                });
                self.hub.emit(
                    SOURCE,
                    "tailscale.restun",
                    Level::Info,
                    format!("asked tailscaled to re-STUN: {why}"),
                );
                // Its endpoints change within a second or two; show them.
                self.poll_at = Instant::now().later(Duration::from_secs(2));
            }
            Err(e) => {
                self.restun_pending = true;
                self.hub.emit(
                    SOURCE,
                    "tailscale.restun_failed",
                    Level::Warn,
                    format!("re-STUN request failed ({why}): {e}"),
                );
            }
        }
    }

    fn start_due_pings(&mut self) {
        let now = Instant::now();
        let room =
            usize::from(self.cfg.tailscale.keepalive_concurrency).saturating_sub(self.pings.len());
        for key in self.schedule.take_due(now, room) {
            let Some(&ip) = self.targets.get(&key) else {
                continue;
            };
            let api = self.api.clone();
            let timeout = self.cfg.tailscale.ping_timeout.get();
            self.pings
                .spawn(async move { (key, api.ping_disco(ip, timeout).await) });
        }
    }

    fn on_ping(&mut self, key: String, result: Result<PingResult, LocalApiError>) {
        let Some(ip) = self.targets.get(&key).map(|ip| ip.to_string()) else {
            return;
        };
        let ping = peers::ping_status(&result);
        let failed = ping.path == PingPath::Failed;
        let transition = peers::record(&mut self.peers, &ip, &ping);
        // The verdict counts pings: judge again with this one in.
        let health = self
            .last_seen
            .as_ref()
            .map(|(st, note)| verdict(st, &self.checks, &self.peers, note.clone()));
        let peers = self.peers.clone();
        self.hub.update(|s| {
            let t = &mut s.tailscale;
            t.pings_sent += 1;
            if failed {
                t.pings_failed += 1;
            }
            t.peers = peers;
            if let Some((state, reason)) = health {
                t.health.set(state, reason);
            }
        });
        if let Some((host, seen_before)) = transition {
            self.ping_event(&host, &ip, &ping, seen_before);
        }
        if let Err(e) = result {
            if e.is_absent() {
                self.lost(e);
            }
        }
    }

    /// The event for a peer that stopped answering pings or answers again.
    fn ping_event(&self, host: &str, ip: &str, ping: &PingStatus, seen_before: bool) {
        if ping.path == PingPath::Failed {
            self.hub.emit(
                SOURCE,
                "keepalive.failed",
                Level::Warn,
                format!(
                    "keepalive ping to {host} ({ip}) got no pong: {}",
                    ping.error.as_deref().unwrap_or("no reply")
                ),
            );
        } else if seen_before {
            self.hub.emit(
                SOURCE,
                "keepalive.recovered",
                Level::Info,
                format!(
                    "keepalive ping to {host} ({ip}) answered again ({})",
                    describe(ping)
                ),
            );
        }
    }
}

/// Jitter between half and all of `d`.
fn jittered(d: Duration) -> Duration {
    crate::entropy::between(d / 2, d)
}

fn read_proc(pid: i32) -> Option<sanity::ProcFacts> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    // environ needs the same uid or root; without it, the port still counts
    // and the port-mapper check is left undecided rather than guessed.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok();
    Some(sanity::parse_proc(&cmdline, environ.as_deref()))
}
