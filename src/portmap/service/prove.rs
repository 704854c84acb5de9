//! The end-to-end proof, run by the session every `verify_interval`: the
//! canary mapping (held beside the others, made and renewed the same way)
//! must let a STUN server's changed answer in (see [`crate::portmap::proof`]).
//! A failed proof while the router still claims the mappings means they are
//! dead: every mapping is deleted and re-added, tailscaled is told (through
//! the `Mapped` generation) and the proof runs again at once. A router whose
//! public address is not the one the internet sees sits behind another NAT:
//! then nothing is repaired (it can't help) and the status says so.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime};

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::Session;
use crate::config::{Config, MappingConfig, Protocol};
use crate::deadline::Later;
use crate::portmap::model::{ProofMethod, ProofState, ProofStatus};
use crate::portmap::proof::{self, Outcome, ProofServer};
use crate::status::{Level, Timestamp};

/// Name of the canary mapping in events.
pub(super) const CANARY: &str = "canary";
/// Time one proof exchange may take (three sends).
const EXCHANGE_BUDGET: Duration = Duration::from_millis(900);
/// Servers tried per proof when one can't tell.
const SERVERS_TRIED: usize = 3;
/// Longest wait between repairs that did not help (a router whose forwarding
/// never works must not have its table rewritten every period forever).
const MAX_REPAIR_BACKOFF: Duration = Duration::from_secs(3600);

/// Counters kept across sessions (since start).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counters {
    attempts: u64,
    dead_repairs: u64,
    bytes_sent: u64,
    bytes_received: u64,
}

impl Counters {
    /// A status with these counters and nothing else known.
    pub(super) fn status(&self, state: ProofState) -> ProofStatus {
        ProofStatus {
            state,
            attempts: self.attempts,
            dead_repairs: self.dead_repairs,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            ..ProofStatus::default()
        }
    }
}

/// The proof's state in one session.
pub(super) struct Proof {
    socket: Option<UdpSocket>,
    pub(super) state: ProofState,
    pub(super) reason: Option<String>,
    server: Option<SocketAddr>,
    public: Option<SocketAddr>,
    pub(super) proven_at: Option<SystemTime>,
    last_attempt: Option<SystemTime>,
    /// Plain words, when the router sits behind another NAT.
    pub(super) double_nat: Option<String>,
    pub(super) next_at: Instant,
    pub(super) counters: Counters,
    interval_s: u64,
    /// Repairs in a row after which forwarding still did not work.
    repairs_failed: u32,
    /// No repair before this (backoff after repairs that did not help).
    next_repair: Instant,
}

impl Proof {
    /// Bind the canary socket on our address (a spare port the kernel picks).
    pub(super) fn new(cfg: &Config, local: Ipv4Addr) -> Self {
        let mut p = Self {
            socket: None,
            state: ProofState::Pending,
            reason: None,
            server: None,
            public: None,
            proven_at: None,
            last_attempt: None,
            double_nat: None,
            next_at: Instant::now(),
            counters: Counters::default(),
            interval_s: cfg.portmap.verify_interval.get().as_secs(),
            repairs_failed: 0,
            next_repair: Instant::now(),
        };
        if !cfg.portmap.prove {
            p.state = ProofState::Off;
            p.reason = Some("portmap.prove is false: only the router's answers vouch".into());
            return p;
        }
        match bind_canary(local) {
            Ok(s) => p.socket = Some(s),
            Err(e) => p.undecided(format!("no canary socket on {local}: {e}")),
        }
        p
    }

    /// The canary mapping to hold, when there is a canary socket.
    pub(super) fn canary_config(&self) -> Option<MappingConfig> {
        let port = self.socket.as_ref()?.local_addr().ok()?.port();
        Some(MappingConfig {
            name: CANARY.into(),
            protocol: Protocol::Udp,
            internal_port: port,
            external_port: port,
            follow_tailscaled: false,
        })
    }

    /// netcheck found other servers: prove now unless already proven (a
    /// double NAT told without a server yet gets the address STUN sees).
    pub(super) fn servers_changed(&mut self) {
        if !matches!(self.state, ProofState::Proven | ProofState::Off) {
            self.next_at = Instant::now();
        }
    }

    fn undecided(&mut self, why: String) {
        self.state = ProofState::Undecided;
        self.reason = Some(why);
    }

    /// The status section.
    pub(super) fn status(&self, canary: Option<String>) -> ProofStatus {
        ProofStatus {
            reason: self.reason.clone(),
            method: (self.state != ProofState::Off).then_some(ProofMethod::StunRfc5780),
            server: self.server.map(|s| s.to_string()),
            canary,
            public: self.public.map(|s| s.to_string()),
            proven_at: self.proven_at.map(Timestamp::at),
            last_attempt: self.last_attempt.map(Timestamp::at),
            interval_s: self.interval_s,
            ..self.counters.status(self.state)
        }
    }
}

/// Wait before the next repair after `failed` repairs in a row that did not
/// help: one period, doubling, at most an hour.
fn repair_backoff(period: Duration, failed: u32) -> Duration {
    period
        .saturating_mul(1u32 << failed.min(16))
        .min(MAX_REPAIR_BACKOFF.max(period))
}

fn bind_canary(local: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(SocketAddrV4::new(local, 0))?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Why the router's mapping can't make us reachable: the router's own public
/// address is not global, or the internet sees another one.
fn double_nat(
    gw: Ipv4Addr,
    router_ip: Ipv4Addr,
    port: u16,
    seen: Option<Ipv4Addr>,
) -> Option<String> {
    let seen_words = seen.map_or("another address".to_string(), |s| s.to_string());
    if let Some(kind) = proof::upstream_nat_hint(router_ip) {
        return Some(format!(
            "double NAT: router {gw} maps {port} on {router_ip}, {kind}, but the internet sees \
             {seen_words}; the upstream NAT is not ours, so the mapping can't make this gateway \
             reachable"
        ));
    }
    let seen = seen?;
    (!router_ip.is_unspecified() && seen != router_ip).then(|| {
        format!(
            "double NAT: router {gw} maps {port} on {router_ip}, but the internet sees {seen}; \
             the upstream NAT is not ours, so the mapping can't make this gateway reachable"
        )
    })
}

impl Session {
    /// Index of the canary among the held mappings, when it is granted.
    fn canary_grant(&self) -> Option<(usize, crate::portmap::router::Grant)> {
        self.held
            .iter()
            .enumerate()
            .find(|(_, h)| h.canary)
            .and_then(|(i, h)| Some((i, h.grant?)))
    }

    /// Run the proof now; the next one comes with the next verification
    /// (whatever the proof itself re-granted meanwhile).
    pub(super) async fn prove(&mut self) {
        self.prove_once().await;
        self.proof.next_at = self.next_verify;
    }

    async fn prove_once(&mut self) {
        if self.proof.state == ProofState::Off || self.proof.socket.is_none() {
            return;
        }
        if !self.held.iter().any(|h| !h.canary && h.grant.is_some()) {
            self.proof.state = ProofState::Pending;
            self.proof.reason = Some("no mapping held yet".into());
            return;
        }
        let Some((ci, canary)) = self.canary_grant() else {
            let why = self
                .held
                .iter()
                .find(|h| h.canary)
                .and_then(|h| h.reason.clone());
            self.proof.undecided(format!(
                "the router holds no canary mapping ({}): only its own answers vouch for the \
                 mappings",
                why.unwrap_or_else(|| "not mapped yet".into())
            ));
            return;
        };
        let outcome = self.attempt(canary.external.port()).await;
        let router_ip = *canary.external.ip();
        let port = self.held.first().map_or(0, |h| h.cfg.external_port);
        match outcome {
            Some(Outcome::Forwarded { reflexive }) => self.proven(reflexive),
            Some(Outcome::NotForwarded { reflexive }) => {
                self.proof.public = Some(reflexive);
                let seen = proof::v4_of(reflexive);
                if let Some(words) = double_nat(self.gw, router_ip, port, seen) {
                    self.on_double_nat(words);
                    return;
                }
                // One lost datagram must not cost a repair: ask once more.
                match self.attempt(canary.external.port()).await {
                    Some(Outcome::Forwarded { reflexive }) => self.proven(reflexive),
                    _ if Instant::now() < self.proof.next_repair => self.still_dead(),
                    _ => self.dead(ci).await,
                }
            }
            Some(Outcome::Unsupported) | Some(Outcome::Silent) | None => {
                // No STUN verdict, but a router on a private or shared
                // address is behind another NAT all the same.
                if let Some(words) = double_nat(self.gw, router_ip, port, None) {
                    self.on_double_nat(words);
                }
            }
        }
    }

    /// The router claims the mappings but forwards nothing: delete and
    /// re-add every one, tell tailscaled, and prove again at once.
    async fn dead(&mut self, canary: usize) {
        let since = self.proof.proven_at;
        let method = self.held[canary].grant.map_or("-", |g| g.method.name());
        let why = format!(
            "router {} claims the mappings (by {method}), but a packet from outside did not get through them",
            self.gw
        );
        self.proof.state = ProofState::Failed;
        self.proof.reason = Some(format!("{why}; deleting and re-adding every mapping"));
        self.publish();
        let held_before: Vec<(String, String)> = self
            .held
            .iter()
            .filter(|h| !h.canary)
            .filter_map(|h| Some((h.cfg.name.clone(), h.grant?.external.to_string())))
            .collect();
        if let Some(router) = &self.router {
            for h in self.held.iter_mut().filter(|h| h.grant.is_some()) {
                if let Some(g) = h.grant.take() {
                    let _ = router.unmap(&h.cfg, &g, h.nonce).await;
                    h.lost = true;
                }
            }
        }
        for i in 0..self.held.len() {
            self.ensure(i, false).await;
        }
        self.proof.counters.dead_repairs += 1;
        let dead_for = since
            .and_then(|t| t.elapsed().ok())
            .map_or("since it was made".to_string(), |d| {
                format!("for at most {}s (the last proof before)", d.as_secs())
            });
        let external = self.canary_grant().map(|(_, g)| g.external.port());
        let again = match external {
            Some(port) => self.attempt(port).await,
            None => None,
        };
        let now_ok = matches!(again, Some(Outcome::Forwarded { .. }));
        let after = if let Some(Outcome::Forwarded { reflexive }) = again {
            self.proof.repairs_failed = 0;
            self.proven(reflexive);
            "re-added and proven again".to_string()
        } else {
            self.proof.repairs_failed = self.proof.repairs_failed.saturating_add(1);
            let wait = repair_backoff(
                self.cfg.portmap.verify_interval.get(),
                self.proof.repairs_failed,
            );
            self.proof.next_repair = Instant::now().later(wait);
            self.proof.state = ProofState::Failed;
            self.proof.reason = Some(format!(
                "{why}; deleted and re-added, still nothing gets through: the router's \
                 forwarding is broken (proven again every period, next repair in {}s)",
                wait.as_secs()
            ));
            "re-added, but still nothing gets through".to_string()
        };
        for (name, ext) in held_before {
            self.hub.emit(
                "portmap",
                "mapping.dead_repaired",
                if now_ok { Level::Warn } else { Level::Error },
                format!("{name}: {ext} by {method} was dead {dead_for}; {after}"),
            );
        }
    }

    /// One proof against the first server that can tell; None (and the
    /// state undecided, with why) when none can.
    async fn attempt(&mut self, external_port: u16) -> Option<Outcome> {
        let servers: Vec<ProofServer> = match &self.links {
            Some(l) => l
                .servers
                .borrow()
                .iter()
                .take(SERVERS_TRIED)
                .copied()
                .collect(),
            None => Vec::new(),
        };
        let socket = self.proof.socket.as_ref()?;
        if servers.is_empty() {
            self.proof.undecided(
                "no RFC 5780 STUN server known (netcheck found none): only the router's own \
                 answers vouch for the mappings"
                    .into(),
            );
            return None;
        }
        self.proof.counters.attempts += 1;
        self.proof.last_attempt = Some(SystemTime::now());
        let mut why = Vec::new();
        for server in servers {
            let mut moved = proof::Traffic::default();
            let out =
                proof::prove(socket, server, external_port, EXCHANGE_BUDGET, &mut moved).await;
            self.proof.counters.bytes_sent += moved.sent;
            self.proof.counters.bytes_received += moved.received;
            self.proof.server = Some(server.addr);
            match out {
                Outcome::Unsupported => why.push(format!(
                    "{} does not answer CHANGE-REQUEST to RESPONSE-PORT",
                    server.addr
                )),
                Outcome::Silent => why.push(format!("{} did not answer", server.addr)),
                decided => return Some(decided),
            }
        }
        self.proof.undecided(format!(
            "the proof can't be told ({}): only the router's own answers vouch for the mappings",
            why.join("; ")
        ));
        None
    }

    /// Dead again before the next repair is due: say so, touch nothing.
    fn still_dead(&mut self) {
        let left = self
            .proof
            .next_repair
            .saturating_duration_since(Instant::now());
        self.proof.state = ProofState::Failed;
        self.proof.reason = Some(format!(
            "router {} claims the mappings, but a packet from outside does not get through; \
             {} repairs did not help, the next one in {}s",
            self.gw,
            self.proof.repairs_failed,
            left.as_secs()
        ));
    }

    fn proven(&mut self, reflexive: SocketAddr) {
        self.proof.repairs_failed = 0;
        let was = self.proof.state;
        self.proof.state = ProofState::Proven;
        self.proof.reason = None;
        self.proof.public = Some(reflexive);
        self.proof.proven_at = Some(SystemTime::now());
        self.proof.double_nat = None;
        if was != ProofState::Proven && was != ProofState::Failed {
            self.hub.emit(
                "portmap",
                "mapping.proven",
                Level::Info,
                format!(
                    "a packet from outside got through the router to this gateway \
                     (seen as {reflexive} by {})",
                    self.proof.server.map_or("-".into(), |s| s.to_string())
                ),
            );
        }
    }

    fn on_double_nat(&mut self, words: String) {
        if self.proof.double_nat.as_deref() != Some(words.as_str()) {
            self.hub
                .emit("portmap", "double_nat", Level::Warn, words.clone());
        }
        self.proof.state = ProofState::DoubleNat;
        self.proof.reason = Some(words.clone());
        self.proof.double_nat = Some(words);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_that_do_not_help_back_off_to_an_hour() {
        let p = Duration::from_secs(30);
        assert_eq!(repair_backoff(p, 1), Duration::from_secs(60));
        assert_eq!(repair_backoff(p, 3), Duration::from_secs(240));
        assert_eq!(repair_backoff(p, 40), MAX_REPAIR_BACKOFF);
        let long = Duration::from_secs(7200);
        assert_eq!(repair_backoff(long, 2), long, "never shorter than a period");
    }

    #[test]
    fn double_nat_in_plain_words() {
        let gw = Ipv4Addr::new(10, 0, 0, 1);
        let cg = double_nat(
            gw,
            Ipv4Addr::new(100, 64, 0, 2),
            41641,
            Some(Ipv4Addr::new(203, 0, 113, 9)),
        )
        .unwrap();
        assert!(
            cg.starts_with("double NAT: router 10.0.0.1 maps 41641 on 100.64.0.2"),
            "{cg}"
        );
        assert!(cg.contains("the internet sees 203.0.113.9"), "{cg}");
        let other = double_nat(
            gw,
            Ipv4Addr::new(198, 51, 100, 7),
            41641,
            Some(Ipv4Addr::new(203, 0, 113, 9)),
        )
        .unwrap();
        assert!(
            other.contains("on 198.51.100.7, but the internet sees 203.0.113.9"),
            "{other}"
        );
        let same = Ipv4Addr::new(203, 0, 113, 9);
        assert_eq!(double_nat(gw, same, 41641, Some(same)), None);
        assert_eq!(
            double_nat(gw, Ipv4Addr::UNSPECIFIED, 41641, Some(same)),
            None
        );
        assert!(double_nat(gw, Ipv4Addr::new(192, 168, 0, 2), 41641, None).is_some());
    }
}
